//! `sipstorm compare BASE NEW`: a side-by-side table with deltas, and
//! thresholds that set the exit code.

use std::fmt::Write as _;
use std::path::Path;

use super::model::{LatencyStats, Report};
use super::{ReportError, load_report, threshold::check_thresholds_against};
use crate::stats::Metric;

/// The result of a comparison: the table to print and the thresholds that
/// failed (exit code 1 when non-empty).
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOutcome {
    /// Human table: metric, BASE, NEW, delta, delta %.
    pub table: String,
    /// One message per failed threshold, naming it.
    pub failed: Vec<String>,
}

/// Compare two reports given as directories or `report.json` files.
pub fn compare(
    base: &Path,
    new: &Path,
    thresholds: &[String],
) -> Result<CompareOutcome, ReportError> {
    let b = load_report(base)?;
    let n = load_report(new)?;
    compare_reports(&b, &n, thresholds)
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// Compare two loaded reports.
pub fn compare_reports(
    base: &Report,
    new: &Report,
    thresholds: &[String],
) -> Result<CompareOutcome, ReportError> {
    let failed = check_thresholds_against(base, new, thresholds)?;
    let mut rows: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    let mut push = |name: &str, b: Option<f64>, n: Option<f64>| rows.push((name.to_string(), b, n));
    let u = |v: u64| Some(v as f64);
    push(
        "rate.offered",
        base.rate.offered_per_s,
        new.rate.offered_per_s,
    );
    push(
        "rate.achieved",
        Some(base.rate.achieved_per_s),
        Some(new.rate.achieved_per_s),
    );
    push("duration_s", Some(base.duration_s), Some(new.duration_s));
    let (bt, nt) = (&base.totals, &new.totals);
    if bt.register.attempted + nt.register.attempted > 0 {
        push(
            "register.attempted",
            u(bt.register.attempted),
            u(nt.register.attempted),
        );
        push(
            "register.succeeded",
            u(bt.register.succeeded),
            u(nt.register.succeeded),
        );
        push(
            "register.failed",
            u(bt.register.failed),
            u(nt.register.failed),
        );
        push(
            "register.timed_out",
            u(bt.register.timed_out),
            u(nt.register.timed_out),
        );
    }
    if bt.call.attempted + nt.call.attempted > 0 {
        push("call.attempted", u(bt.call.attempted), u(nt.call.attempted));
        push(
            "call.established",
            u(bt.call.established),
            u(nt.call.established),
        );
        push("call.completed", u(bt.call.completed), u(nt.call.completed));
        push("call.failed", u(bt.call.failed), u(nt.call.failed));
        push("call.timed_out", u(bt.call.timed_out), u(nt.call.timed_out));
        push("call.cancelled", u(bt.call.cancelled), u(nt.call.cancelled));
    }
    if bt.options.attempted + nt.options.attempted > 0 {
        push(
            "options.attempted",
            u(bt.options.attempted),
            u(nt.options.attempted),
        );
        push(
            "options.succeeded",
            u(bt.options.succeeded),
            u(nt.options.succeeded),
        );
        push("options.failed", u(bt.options.failed), u(nt.options.failed));
    }
    let (br, nr) = (&base.rfc6076, &new.rfc6076);
    push("ira_pct", br.ira_pct, nr.ira_pct);
    push("ser_pct", br.ser_pct, nr.ser_pct);
    push("seer_pct", br.seer_pct, nr.seer_pct);
    push("isa_pct", br.isa_pct, nr.isa_pct);
    push("scr_pct", br.scr_pct, nr.scr_pct);
    let empty = LatencyStats::default();
    for m in Metric::ALL {
        for name in [m.name(), m.co_name()] {
            let b = base.latency_ms.get(name).unwrap_or(&empty);
            let n = new.latency_ms.get(name).unwrap_or(&empty);
            if b.count == 0 && n.count == 0 {
                continue;
            }
            for (stat, bv, nv) in [
                ("p50", b.p50, n.p50),
                ("p90", b.p90, n.p90),
                ("p99", b.p99, n.p99),
                ("p999", b.p999, n.p999),
                ("max", b.max, n.max),
            ] {
                push(&format!("{name}.{stat} (ms)"), bv, nv);
            }
        }
    }
    let (bm, nm) = (&base.messages, &new.messages);
    push("messages.sent", u(bm.sent), u(nm.sent));
    push("messages.received", u(bm.received), u(nm.received));
    push(
        "messages.retransmitted",
        u(bm.retransmitted),
        u(nm.retransmitted),
    );
    push("messages.unparseable", u(bm.unparseable), u(nm.unparseable));
    push("messages.unexpected", u(bm.unexpected), u(nm.unexpected));
    push(
        "errors.kernel_drops",
        u(base.errors.kernel_drops),
        u(new.errors.kernel_drops),
    );
    let (bp, np) = (&base.process, &new.process);
    push(
        "process.cpu_user_s",
        Some(bp.cpu_user_s),
        Some(np.cpu_user_s),
    );
    push("process.cpu_sys_s", Some(bp.cpu_sys_s), Some(np.cpu_sys_s));
    push(
        "process.cpu_total_s",
        Some(bp.cpu_total_s),
        Some(np.cpu_total_s),
    );
    push("process.max_rss_kib", u(bp.max_rss_kib), u(np.max_rss_kib));

    let mut table = String::new();
    let label = |r: &Report| {
        format!(
            "{} {}",
            r.tool.version,
            r.tool
                .git_sha
                .as_deref()
                .map(|s| &s[..s.len().min(10)])
                .unwrap_or("")
        )
        .trim()
        .to_string()
    };
    let _ = writeln!(
        table,
        "BASE: {} {} ({})",
        base.scenario,
        base.started_at,
        label(base)
    );
    let _ = writeln!(
        table,
        "NEW:  {} {} ({})",
        new.scenario,
        new.started_at,
        label(new)
    );
    let _ = writeln!(
        table,
        "{:<32} {:>14} {:>14} {:>14} {:>9}",
        "metric", "BASE", "NEW", "delta", "delta %"
    );
    for (name, b, n) in rows {
        let (delta, dpct) = match (b, n) {
            (Some(b), Some(n)) => (
                Some(n - b),
                if b != 0.0 {
                    format!("{:+.1}%", (n - b) * 100.0 / b)
                } else if n == 0.0 {
                    "0.0%".to_string()
                } else {
                    "-".to_string()
                },
            ),
            _ => (None, "-".to_string()),
        };
        let delta_s = match delta {
            Some(d) if d >= 0.0 => format!("+{}", fmt(Some(d))),
            d => fmt(d),
        };
        let _ = writeln!(
            table,
            "{name:<32} {:>14} {:>14} {:>14} {:>9}",
            fmt(b),
            fmt(n),
            delta_s,
            dpct
        );
    }
    if !thresholds.is_empty() {
        let _ = writeln!(table);
        if failed.is_empty() {
            let _ = writeln!(table, "thresholds: all {} held", thresholds.len());
        } else {
            let _ = writeln!(
                table,
                "thresholds: {} of {} failed",
                failed.len(),
                thresholds.len()
            );
            for f in &failed {
                let _ = writeln!(table, "  FAILED {f}");
            }
        }
    }
    Ok(CompareOutcome { table, failed })
}
