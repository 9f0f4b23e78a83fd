//! `summary.txt`: the human summary printed at the end of a run.

use std::fmt::Write as _;

use super::model::{LatencyStats, Report};
use crate::stats::Metric;

/// Format milliseconds for a table cell: `-` when absent.
pub(crate) fn ms_cell(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn pct_cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}%"))
        .unwrap_or_else(|| "-".to_string())
}

fn latency_row(out: &mut String, label: &str, s: &LatencyStats) {
    let _ = writeln!(
        out,
        "  {label:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        s.count,
        ms_cell(s.min),
        ms_cell(s.p50),
        ms_cell(s.p90),
        ms_cell(s.p99),
        ms_cell(s.p999),
        ms_cell(s.max),
        ms_cell(s.mean),
    );
}

/// Render the summary text of a report.
pub fn render_summary(r: &Report) -> String {
    let mut out = String::new();
    let sha = r.tool.git_sha.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        out,
        "sipstorm {} ({sha})  scenario {}  started {}  duration {:.1} s{}",
        r.tool.version,
        r.scenario,
        r.started_at,
        r.duration_s,
        if r.segments > 1 {
            format!("  merged from {} segments", r.segments)
        } else {
            String::new()
        }
    );
    let _ = writeln!(out);
    let offered = r
        .rate
        .offered_per_s
        .map(|o| format!("{o:.1}/s"))
        .unwrap_or_else(|| "closed loop".to_string());
    let _ = writeln!(
        out,
        "Rate       offered {offered}   achieved {:.1}/s",
        r.rate.achieved_per_s
    );
    let t = &r.totals;
    if t.register.attempted > 0 {
        let _ = writeln!(
            out,
            "Register   attempted {}  succeeded {}  failed {}  timed out {}",
            t.register.attempted, t.register.succeeded, t.register.failed, t.register.timed_out
        );
    }
    if t.call.attempted > 0 {
        let _ = writeln!(
            out,
            "Call       attempted {}  established {}  completed {}  failed {}  timed out {}  cancelled {}",
            t.call.attempted,
            t.call.established,
            t.call.completed,
            t.call.failed,
            t.call.timed_out,
            t.call.cancelled
        );
    }
    if t.options.attempted > 0 {
        let _ = writeln!(
            out,
            "Options    attempted {}  succeeded {}  failed {}  timed out {}",
            t.options.attempted, t.options.succeeded, t.options.failed, t.options.timed_out
        );
    }
    let m = &r.messages;
    let _ = writeln!(
        out,
        "Messages   sent {}  received {}  retransmitted {}  retransmissions received {}  unparseable {}  unexpected {}",
        m.sent,
        m.received,
        m.retransmitted,
        m.retransmissions_received,
        m.unparseable,
        m.unexpected
    );
    let tr = &r.transport;
    if tr.connections_opened + tr.connections_failed > 0 {
        let fails: Vec<String> = tr
            .connect_failures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "Connections opened {}  failed {}{}  closed {} (by peer {})  TLS handshakes {} (resumed {})",
            tr.connections_opened,
            tr.connections_failed,
            if fails.is_empty() {
                String::new()
            } else {
                format!(" ({})", fails.join(", "))
            },
            tr.connections_closed,
            tr.connections_closed_by_peer,
            tr.tls_handshakes,
            tr.tls_resumed
        );
        if tr.ws_upgrades > 0 || !tr.ws_errors.is_empty() {
            let errs: Vec<String> = tr
                .ws_errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                out,
                "WebSocket  upgrades {}  pings answered {}  errors {}",
                tr.ws_upgrades,
                tr.ws_pings,
                if errs.is_empty() {
                    "0".to_string()
                } else {
                    errs.join(", ")
                }
            );
        }
    }
    if let Some(sf) = &r.scenario_file {
        let _ = writeln!(out, "Scenario   {} ({}, {})", sf.name, sf.file, sf.role);
        out.push_str(&sf.screen());
    }
    let p = &r.process;
    let _ = writeln!(
        out,
        "Process    cpu {:.2} s (user {:.2} s  sys {:.2} s)  max rss {} KiB",
        p.cpu_total_s, p.cpu_user_s, p.cpu_sys_s, p.max_rss_kib
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Latency (ms)               count       min       p50       p90       p99     p99.9       max      mean"
    );
    let mut any = false;
    for metric in Metric::ALL {
        // Connection latencies have no intended start: their twin repeats
        // them.
        let twins: &[(&str, &str)] = if metric.has_intended_start() {
            &[(metric.name(), ""), (metric.co_name(), " (co)")]
        } else {
            &[(metric.name(), "")]
        };
        for &(name, suffix) in twins {
            if let Some(s) = r.latency_ms.get(name).filter(|s| s.count > 0) {
                latency_row(&mut out, &format!("{}{suffix}", metric.label()), s);
                any = true;
            }
        }
    }
    if !any {
        let _ = writeln!(out, "  (no samples)");
    }
    let _ = writeln!(
        out,
        "  (co) = measured from the intended start time (coordinated omission corrected)"
    );
    let _ = writeln!(out);
    let x = &r.rfc6076;
    let _ = writeln!(
        out,
        "RFC 6076   IRA {}  SER {}  SEER {}  ISA {}  SCR {}",
        pct_cell(x.ira_pct),
        pct_cell(x.ser_pct),
        pct_cell(x.seer_pct),
        pct_cell(x.isa_pct),
        pct_cell(x.scr_pct)
    );
    let mut codes: Vec<(&String, &u64)> = r.responses.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !codes.is_empty() {
        let top: Vec<String> = codes
            .iter()
            .take(8)
            .map(|(c, n)| format!("{c} x{n}"))
            .collect();
        let _ = writeln!(out, "Responses  {}", top.join("  "));
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}
