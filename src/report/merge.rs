//! `sipstorm merge OUT IN...`: merge the reports of a segmented run
//! (`--segment I/N` on several machines) into one.
//!
//! Counters are summed; whole-run histograms are added losslessly from the
//! histograms embedded in each `report.json`; the per-second series are
//! aligned on wall-clock seconds and summed; when every input directory has
//! its `intervals.hlog`, the interval histograms are added too, so merged
//! per-second percentiles are exact. Rates are combined over the common
//! time span: from the earliest start to the latest end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::hlog::{self, Interval};
use super::model::{
    self, LatencySeries, Report, TimeSeries, decode_histograms, derive_warnings, encode_b64,
    invite_codes, latency_map, per_second, primary_attempts, rfc6076_of,
};
use super::{INTERVALS_HLOG, ReportError, load_report, report_json_path, scrub_config};
use crate::stats::{Slot, add_histogram, new_histogram};

fn add_map(dst: &mut BTreeMap<String, u64>, src: &BTreeMap<String, u64>) {
    for (k, v) in src {
        let e = dst.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*v);
    }
}

fn add_vec(dst: &mut Vec<u64>, src: &[u64], offset: usize) {
    if dst.len() < offset + src.len() {
        dst.resize(offset + src.len(), 0);
    }
    for (i, v) in src.iter().enumerate() {
        dst[offset + i] = dst[offset + i].saturating_add(*v);
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Seconds between the merged start and this report's start.
fn offset_of(r: &Report, start: f64) -> usize {
    let d = (r.started_at_unix_s - start).round();
    if d <= 0.0 { 0 } else { d as usize }
}

/// Merge loaded reports (no interval logs: per-second percentiles are the
/// maximum over the segments, an upper bound).
pub fn merge_reports(reports: &[Report]) -> Result<Report, ReportError> {
    let first = reports
        .first()
        .ok_or_else(|| ReportError::Merge("no input reports".to_string()))?;
    if let Some(other) = reports.iter().find(|r| r.scenario != first.scenario) {
        return Err(ReportError::Merge(format!(
            "segments ran different scenarios (`{}` and `{}`)",
            first.scenario, other.scenario
        )));
    }
    let start = reports
        .iter()
        .map(|r| r.started_at_unix_s)
        .fold(f64::INFINITY, f64::min);
    let end = reports
        .iter()
        .map(|r| r.started_at_unix_s + r.duration_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let duration_s = (end - start).max(0.0);

    let mut totals = model::Totals::default();
    let mut hist: BTreeMap<Slot, Histogram<u64>> = BTreeMap::new();
    let mut responses = BTreeMap::new();
    let mut by_method: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut messages = model::Messages::default();
    let mut errors = model::Errors::default();
    let mut transport = model::Transport::default();
    let mut process = model::ProcessUsage::default();
    let mut offered: Option<f64> = None;
    let mut segments = 0u32;
    let mut ts = TimeSeries::default();
    for (i, r) in reports.iter().enumerate() {
        let t = &r.totals;
        let tt = &mut totals;
        tt.register.attempted += t.register.attempted;
        tt.register.succeeded += t.register.succeeded;
        tt.register.failed += t.register.failed;
        tt.register.timed_out += t.register.timed_out;
        tt.call.attempted += t.call.attempted;
        tt.call.established += t.call.established;
        tt.call.completed += t.call.completed;
        tt.call.failed += t.call.failed;
        tt.call.timed_out += t.call.timed_out;
        tt.call.cancelled += t.call.cancelled;
        tt.call.redirected += t.call.redirected;
        tt.options.attempted += t.options.attempted;
        tt.options.succeeded += t.options.succeeded;
        tt.options.failed += t.options.failed;
        tt.options.timed_out += t.options.timed_out;
        let decoded = decode_histograms(r).map_err(|reason| ReportError::InvalidReport {
            path: PathBuf::from(format!("input #{}", i + 1)),
            reason,
        })?;
        for (slot, h) in decoded {
            add_histogram(hist.entry(slot).or_insert_with(new_histogram), &h)?;
        }
        add_map(&mut responses, &r.responses);
        for (m, codes) in &r.responses_by_method {
            add_map(by_method.entry(m.clone()).or_default(), codes);
        }
        let m = &r.messages;
        messages.sent += m.sent;
        messages.received += m.received;
        messages.retransmitted += m.retransmitted;
        messages.retransmissions_received += m.retransmissions_received;
        messages.unparseable += m.unparseable;
        messages.unexpected += m.unexpected;
        errors.transport += r.errors.transport;
        errors.kernel_drops += r.errors.kernel_drops;
        let (tr, rt) = (&mut transport, &r.transport);
        tr.connections_opened += rt.connections_opened;
        tr.connections_failed += rt.connections_failed;
        tr.connections_closed += rt.connections_closed;
        tr.connections_closed_by_peer += rt.connections_closed_by_peer;
        tr.tls_handshakes += rt.tls_handshakes;
        tr.tls_resumed += rt.tls_resumed;
        tr.ws_upgrades += rt.ws_upgrades;
        tr.ws_pings += rt.ws_pings;
        add_map(&mut tr.connect_failures, &rt.connect_failures);
        add_map(&mut tr.ws_errors, &rt.ws_errors);
        process.cpu_user_s += r.process.cpu_user_s;
        process.cpu_sys_s += r.process.cpu_sys_s;
        process.cpu_total_s += r.process.cpu_total_s;
        // Peak RSS of separate processes on separate machines: the largest
        // one is what a single machine needed.
        process.max_rss_kib = process.max_rss_kib.max(r.process.max_rss_kib);
        if let Some(o) = r.rate.offered_per_s {
            offered = Some(offered.unwrap_or(0.0) + o);
        }
        segments = segments.saturating_add(r.segments.max(1));

        let off = offset_of(r, start);
        let s = &r.timeseries;
        add_vec(&mut ts.attempted, &s.attempted, off);
        add_vec(&mut ts.succeeded, &s.succeeded, off);
        add_vec(&mut ts.failed, &s.failed, off);
        add_vec(&mut ts.timed_out, &s.timed_out, off);
        add_vec(&mut ts.retransmitted, &s.retransmitted, off);
        add_vec(&mut ts.connections_open, &s.connections_open, off);
        add_vec(&mut ts.connections_opened, &s.connections_opened, off);
        for (code, v) in &s.responses {
            add_vec(ts.responses.entry(code.clone()).or_default(), v, off);
        }
        for (name, series) in &s.latency_ms {
            let dst = ts.latency_ms.entry(name.clone()).or_default();
            add_vec(&mut dst.count, &series.count, off);
            for (dv, sv) in [
                (&mut dst.p50, &series.p50),
                (&mut dst.p99, &series.p99),
                (&mut dst.max, &series.max),
            ] {
                if dv.len() < off + sv.len() {
                    dv.resize(off + sv.len(), None);
                }
                for (j, v) in sv.iter().enumerate() {
                    dv[off + j] = max_opt(dv[off + j], *v);
                }
            }
        }
    }
    normalise_lengths(&mut ts);

    let latency_ms = latency_map(&hist);
    // Connect and handshake latencies from the merged histograms.
    transport.connect_ms = latency_ms.get("connect").copied().unwrap_or_default();
    transport.tls_handshake_ms = latency_ms.get("tls_handshake").copied().unwrap_or_default();
    transport.ws_upgrade_ms = latency_ms.get("ws_upgrade").copied().unwrap_or_default();
    let mut histograms = BTreeMap::new();
    for (slot, h) in &hist {
        histograms.insert(slot.name().to_string(), encode_b64(h)?);
    }
    let rfc6076 = rfc6076_of(&latency_ms, &totals, &invite_codes(&by_method));
    // The merged load phase runs from the first segment's start to the last
    // segment's end of load, as if one run had started them all.
    let load_s = reports
        .iter()
        .map(|r| r.started_at_unix_s + r.rate.load_duration_s.unwrap_or(r.duration_s) - start)
        .fold(0.0, f64::max);
    // A scenario run's sections add up step by step.
    let mut scenario_file = first.scenario_file.clone();
    if let Some(sf) = &mut scenario_file {
        for r in &reports[1..] {
            match &r.scenario_file {
                Some(o) if o.steps.len() == sf.steps.len() && o.name == sf.name => sf.add(o),
                _ => {
                    return Err(ReportError::Merge(
                        "segments ran different scenario files".to_string(),
                    ));
                }
            }
        }
    }
    let attempts = match &scenario_file {
        Some(sf) => sf.calls.attempted,
        None => primary_attempts(&first.scenario, &totals),
    };
    let achieved = per_second(attempts, load_s);
    let started = UNIX_EPOCH + Duration::from_secs_f64(start.max(0.0));
    let git_sha = if reports.iter().all(|r| r.tool.git_sha == first.tool.git_sha) {
        first.tool.git_sha.clone()
    } else {
        None
    };
    let mut report = Report {
        schema: model::SCHEMA.to_string(),
        tool: model::Tool {
            version: first.tool.version.clone(),
            git_sha,
        },
        scenario: first.scenario.clone(),
        config: scrub_config(&first.config),
        started_at: super::format_rfc3339(started),
        started_at_unix_s: start,
        duration_s,
        segments,
        rate: model::Rate {
            offered_per_s: offered,
            achieved_per_s: achieved,
            load_duration_s: Some(load_s),
        },
        totals,
        rfc6076,
        latency_ms,
        responses,
        responses_by_method: by_method,
        messages,
        errors,
        transport,
        process,
        histograms,
        timeseries: ts,
        warnings: Vec::new(),
        scenario_file,
    };
    report.warnings = derive_warnings(&report);
    if reports.iter().any(|r| r.tool.git_sha != first.tool.git_sha) {
        report
            .warnings
            .push("the segments were produced by different sipstorm builds".to_string());
    }
    Ok(report)
}

/// Make every per-second vector as long as `t_s`, which covers them all.
fn normalise_lengths(ts: &mut TimeSeries) {
    let mut n = ts.attempted.len();
    for v in ts.responses.values() {
        n = n.max(v.len());
    }
    for s in ts.latency_ms.values() {
        n = n.max(s.count.len()).max(s.p99.len());
    }
    ts.t_s = (0..n as u64).collect();
    for v in [
        &mut ts.attempted,
        &mut ts.succeeded,
        &mut ts.failed,
        &mut ts.timed_out,
        &mut ts.retransmitted,
        &mut ts.connections_open,
        &mut ts.connections_opened,
    ] {
        v.resize(n, 0);
    }
    for v in ts.responses.values_mut() {
        v.resize(n, 0);
    }
    for s in ts.latency_ms.values_mut() {
        s.count.resize(n, 0);
        s.p50.resize(n, None);
        s.p99.resize(n, None);
        s.max.resize(n, None);
    }
}

/// Put one second's exact percentiles of `slot` into `series`.
fn record_second(
    series: &mut BTreeMap<String, LatencySeries>,
    n: usize,
    second: u64,
    slot: Slot,
    hist: &Histogram<u64>,
) {
    let i = usize::try_from(second).unwrap_or(usize::MAX);
    if i >= n || hist.is_empty() {
        return;
    }
    let s = series
        .entry(slot.name().to_string())
        .or_insert_with(|| LatencySeries {
            count: vec![0; n],
            p50: vec![None; n],
            p99: vec![None; n],
            max: vec![None; n],
        });
    s.count[i] = hist.len();
    s.p50[i] = Some(hist.value_at_quantile(0.5) as f64 / 1000.0);
    s.p99[i] = Some(hist.value_at_quantile(0.99) as f64 / 1000.0);
    s.max[i] = Some(hist.max() as f64 / 1000.0);
}

/// `sipstorm merge OUT IN...`: merge the reports (directories or
/// `report.json` files) and write the four files into `out`.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<Report, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::Merge("no input reports".to_string()));
    }
    let reports: Vec<Report> = inputs
        .iter()
        .map(|p| load_report(p))
        .collect::<Result<_, _>>()?;
    let mut merged = merge_reports(&reports)?;
    let start = merged.started_at_unix_s;

    // Interval logs live next to each report.json.
    let mut logs = Vec::new();
    let mut missing = Vec::new();
    for (p, r) in inputs.iter().zip(&reports) {
        let json = report_json_path(p);
        let hlog_path = json
            .parent()
            .map(|d| d.join(INTERVALS_HLOG))
            .unwrap_or_else(|| PathBuf::from(INTERVALS_HLOG));
        if hlog_path.is_file() {
            let parsed = hlog::read(&hlog_path)?;
            let base = parsed.base_unix_s.unwrap_or(r.started_at_unix_s);
            let off = (base - start).round().max(0.0) as u64;
            logs.push((off, parsed.intervals));
        } else {
            missing.push(p.display().to_string());
        }
    }
    // Group the encoded intervals by (second, slot); add each group and
    // write it out before the next, so only one decoded histogram is alive
    // at a time, and take the per-second percentiles on the way.
    let mut groups: BTreeMap<(u64, Slot), Vec<Interval>> = BTreeMap::new();
    for (off, ivs) in logs {
        for mut iv in ivs {
            iv.second += off;
            groups.entry((iv.second, iv.slot)).or_default().push(iv);
        }
    }
    let n = merged.timeseries.t_s.len();
    let mut series: BTreeMap<String, LatencySeries> = BTreeMap::new();
    std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, e))?;
    let started = UNIX_EPOCH + Duration::from_secs_f64(start.max(0.0));
    let mut files = vec![hlog::stage_with(
        &out.join(INTERVALS_HLOG),
        started,
        &merged.tool.version,
        |emit| {
            for ((second, slot), parts) in &groups {
                let mut iter = parts.iter();
                let mut sum = match iter.next() {
                    Some(first) => first.decode()?,
                    None => continue,
                };
                for p in iter {
                    add_histogram(&mut sum, &p.decode()?)?;
                }
                record_second(&mut series, n, *second, *slot, &sum);
                emit(*second, *slot, &sum)?;
            }
            Ok(())
        },
    )?];
    if missing.is_empty() {
        merged.timeseries.latency_ms = series;
    } else {
        merged.warnings.push(format!(
            "no intervals.hlog for {}: per-second percentiles are the maximum over segments, and the merged interval log lacks those segments",
            missing.join(", ")
        ));
    }
    files.extend(super::stage_rendered(out, &merged)?);
    super::atomic::commit_all(files)?;
    Ok(merged)
}
