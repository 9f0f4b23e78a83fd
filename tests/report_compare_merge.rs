//! `compare` and `merge` on real report directories written from synthetic
//! runs, and `check_thresholds` on a single report.

#[path = "report_support.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use sipstorm::report::{self, INTERVALS_HLOG, REPORT_JSON, Report, ReportError};
use sipstorm::stats::{Aggregate, WorkerStats};
use support::*;

fn write(dir: &Path, start: SystemTime, srd_ms: u64, busy: u64) -> Report {
    let (info, agg) = synthetic_run(start, 4, 2, 40, srd_ms, busy);
    report::write_report(dir, &info, &agg).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn compare_table_and_thresholds() {
    let root = tmpdir("report-compare");
    let (base, new) = (root.join("base"), root.join("new"));
    let b = write(&base, t0(), 10, 0);
    let n = write(&new, t0(), 20, 1);
    assert!(n.latency_ms["srd"].p99 > b.latency_ms["srd"].p99);

    // No thresholds: a table, nothing failed.
    let out = report::compare(&base, &new, &[]).unwrap();
    assert!(out.failed.is_empty());
    for row in [
        "rate.achieved",
        "call.failed",
        "srd.p99 (ms)",
        "srd_co.p99 (ms)",
        "ser_pct",
    ] {
        assert!(out.table.contains(row), "{row} missing:\n{}", out.table);
    }
    // The call.failed row shows 0 -> 8.
    let failed_row = out
        .table
        .lines()
        .find(|l| l.starts_with("call.failed"))
        .unwrap();
    assert!(
        failed_row.contains(" 0 ") && failed_row.contains(" 8 ") && failed_row.contains("+8"),
        "{failed_row}"
    );

    // Thresholds: which fail is named.
    let th = strings(&[
        "call.failed==0",     // fails: 8
        "srd.p99<+10%",       // fails: about +80%
        "rate.achieved>=-5%", // holds: same rate
        "rrd.p99<50ms",       // fails: no registrations, no samples
        "srd.p99<100ms",      // holds
    ]);
    let out = report::compare(&base, &new.join(REPORT_JSON), &th).unwrap();
    assert_eq!(out.failed.len(), 3, "{:#?}", out.failed);
    assert!(out.failed[0].contains("call.failed==0"));
    assert!(out.failed[1].contains("srd.p99<+10%"));
    assert!(out.failed[2].contains("rrd.p99<50ms"));
    assert!(out.table.contains("3 of 5 failed"));

    // Comparing a report with itself holds every relative threshold.
    let out = report::compare(
        &base,
        &base,
        &strings(&["srd.p99<=+0%", "rate.achieved>=-0%"]),
    )
    .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);

    // Unknown metric: an error (exit 2), never a silent pass.
    let e = report::compare(&base, &new, &strings(&["call.failed==0", "srd.p98<5ms"])).unwrap_err();
    assert!(
        matches!(e, ReportError::UnknownMetric { .. }) && e.is_usage(),
        "{e}"
    );
    // A missing file is a usage error too.
    let e = report::compare(&base, &root.join("nope"), &[]).unwrap_err();
    assert!(e.is_usage(), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn check_thresholds_on_one_report() {
    let root = tmpdir("report-check");
    let r = write(&root, t0(), 10, 1);
    let failed = report::check_thresholds(
        &r,
        &strings(&[
            "call.failed==0",
            "srd.p99<50ms",
            "ser_pct>=90",
            "responses.486<=8",
        ]),
    )
    .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("call.failed==0") && failed[0].contains("is 8"),
        "{failed:?}"
    );
    // Relative forms need a base.
    let e = report::check_thresholds(&r, &strings(&["srd.p99<+10%"])).unwrap_err();
    assert!(matches!(e, ReportError::RelativeWithoutBase { .. }) && e.is_usage());
    std::fs::remove_dir_all(&root).ok();
}

/// Two segments of one test, the second started 2 s after the first. The
/// merged report must equal what one aggregator fed by both would give.
#[test]
fn merge_is_lossless_and_aligns_time() {
    let root = tmpdir("report-merge");
    let (a_dir, b_dir, out) = (root.join("a"), root.join("b"), root.join("merged"));
    let start_b = t0() + Duration::from_secs(2);
    let (ia, aa) = synthetic_run(t0(), 4, 2, 40, 10, 1);
    let (mut ib, ab) = synthetic_run(start_b, 4, 1, 30, 25, 0);
    ib.process.max_rss_kib = 30_000;
    let ra = report::write_report(&a_dir, &ia, &aa).unwrap();
    let rb = report::write_report(&b_dir, &ib, &ab).unwrap();

    let m = report::merge(&out, &[a_dir.clone(), b_dir.join(REPORT_JSON)]).unwrap();
    assert_eq!(m.segments, 2);
    assert_eq!(
        m.totals.call.attempted,
        ra.totals.call.attempted + rb.totals.call.attempted
    );
    assert_eq!(m.totals.call.failed, 8);
    assert_eq!(m.responses["486"], 8);
    assert_eq!(m.duration_s, 6.0);
    assert_eq!(m.started_at, ra.started_at);
    assert_eq!(m.rate.offered_per_s, Some(80.0 + 30.0));
    assert_eq!(m.rate.achieved_per_s, (320.0 + 120.0) / 6.0);
    assert_eq!(m.process.cpu_user_s, 3.0);
    assert_eq!(m.process.max_rss_kib, 30_000);

    // Oracle: one aggregate fed by the three workers of both segments, with
    // segment B's snapshots shifted by its 2 s offset.
    let mut oracle = Aggregate::new(t0());
    let mut workers: Vec<WorkerStats> = (0..3).map(|_| WorkerStats::new()).collect();
    for sec in 1..=6u64 {
        for (i, w) in workers.iter_mut().enumerate() {
            let (in_a, local) = if i < 2 {
                (sec <= 4, sec)
            } else {
                (sec >= 3, sec.wrapping_sub(2))
            };
            if !in_a {
                continue;
            }
            if i < 2 {
                call_second(w, 40, 10 + local % 3, 1);
            } else {
                call_second(w, 30, 25 + local % 3, 0);
            }
            agg_add(&mut oracle, i, w, sec);
        }
    }
    let (oi, _) = synthetic_run(t0(), 6, 1, 1, 1, 0);
    let oracle_dir = root.join("oracle");
    let o = report::write_report(&oracle_dir, &oi, &oracle).unwrap();
    assert_eq!(m.latency_ms, o.latency_ms, "merged histograms are lossless");
    assert_eq!(m.histograms, o.histograms);
    assert_eq!(m.rfc6076.srd_ms, o.rfc6076.srd_ms);
    assert_eq!(m.timeseries.t_s, o.timeseries.t_s);
    assert_eq!(m.timeseries.attempted, o.timeseries.attempted);
    assert_eq!(m.timeseries.responses, o.timeseries.responses);
    assert_eq!(
        m.timeseries.latency_ms, o.timeseries.latency_ms,
        "exact per-second percentiles from the hlogs"
    );
    assert_eq!(m.rfc6076.ser_pct, o.rfc6076.ser_pct);

    // The merged directory is complete and its report passes the schema.
    assert!(out.join(INTERVALS_HLOG).is_file());
    assert!(out.join("report.html").is_file());
    let merged_hlog = std::fs::read_to_string(out.join(INTERVALS_HLOG)).unwrap();
    let oracle_hlog = std::fs::read_to_string(oracle_dir.join(INTERVALS_HLOG)).unwrap();
    let tagged = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("Tag="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(tagged(&merged_hlog), tagged(&oracle_hlog));
    // (floats re-parsed from JSON may differ in the last bit: compare the
    // exact parts.)
    assert_valid(&out.join(REPORT_JSON));
    let reloaded = report::load_report(&out).unwrap();
    assert_eq!(reloaded.totals, m.totals);
    assert_eq!(reloaded.histograms, m.histograms);
    assert_eq!(reloaded.timeseries.attempted, m.timeseries.attempted);

    // Merging without interval logs still works, with a warning.
    std::fs::remove_file(b_dir.join(INTERVALS_HLOG)).unwrap();
    let m2 = report::merge(&root.join("merged2"), &[a_dir.clone(), b_dir.clone()]).unwrap();
    assert_eq!(m2.latency_ms, m.latency_ms);
    assert!(m2.warnings.iter().any(|w| w.contains("no intervals.hlog")));

    // Usage errors.
    assert!(report::merge(&root.join("x"), &[]).unwrap_err().is_usage());
    assert!(
        report::merge(&root.join("x"), &[root.join("missing")])
            .unwrap_err()
            .is_usage()
    );
    std::fs::remove_dir_all(&root).ok();
}

fn agg_add(agg: &mut Aggregate, worker: usize, w: &mut WorkerStats, sec: u64) {
    let t = Duration::from_millis(sec * 1000 + worker as u64 * 3);
    agg.add(worker, w.take_interval(), t);
}
