//! Measurement truth (issue 7): a `sipstorm run` against `sipstorm serve` on
//! loopback, captured with tshark, and `report.json` checked against the
//! capture. "A load generator whose numbers disagree with the wire is worse
//! than none."
//!
//! Each test runs `scripts/capture-truth.sh SCENARIO 200 400` with this
//! build's binary (`SIPSTORM`), which captures `udp port P` on `lo`, runs
//! serve and run, and has `scripts/capture-truth.py` compare:
//! messages sent/received/retransmitted, new INVITE/REGISTER/ACK/BYE
//! transactions, attempts, established/completed/failed/succeeded and final
//! responses by code, all exactly; RFC 6076 SRD (call) or RRD (register)
//! sample count exactly and p50/p90/p99 within the one-sided tolerance
//! documented in the script (the report's delay includes the client's own
//! turn time on top of the wire's, never less).
//!
//! Counts are never retried. When only a percentile is out of tolerance
//! (script exit 4), the case runs once more: a burst of CPU from other
//! processes on a shared 2-core machine delays the client, which the report
//! measures and the wire does not.
//!
//! Without tshark the tests print "skipped" and pass, except under `CI=true`
//! (scripts/install-test-deps.sh installs it there).

mod peers;

use std::sync::Mutex;

use peers::{ci, tools_available};

/// One case at a time: two loads at once on a 2-core machine would put each
/// other's scheduling delays into the latency comparison.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `scripts/capture-truth.sh ARGS`: (exit code, output).
fn run_script(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    peers::run_script("capture-truth.sh", args, env)
}

fn check(scenario: &str, env: &[(&str, &str)]) {
    if !tools_available(&["tshark", "python3"]) {
        return;
    }
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (mut code, mut output) = run_script(&[scenario, "200", "400"], env);
    if code == Some(4) {
        // Every count agreed, only a latency percentile was out of
        // tolerance: the client's scheduling latency is in the report but not
        // on the wire, and another process's burst of CPU can push it past
        // the tolerance. Once more; a second miss is a failure.
        eprintln!("latency percentiles out of tolerance, counts exact: running once more");
        (code, output) = run_script(&[scenario, "200", "400"], env);
    }
    if code == Some(77) {
        assert!(
            !ci(),
            "CI=true but tshark is missing or may not capture on lo:\n{output}"
        );
        eprintln!("skipped: run scripts/install-test-deps.sh (and capture as root)");
        return;
    }
    assert_eq!(
        code,
        Some(0),
        "report disagrees with the wire ({scenario}):\n{output}"
    );
    assert!(
        output.contains(&format!("PASS: capture truth {scenario}")),
        "no PASS line:\n{output}"
    );
}

/// 400 calls at 200/s: INVITE/ACK/BYE counts, 200s, messages and SRD
/// percentiles in report.json agree with the capture.
#[test]
fn call_report_matches_the_wire() {
    check("call", &[]);
}

/// 400 digest registrations at 200/s: REGISTER counts (two per attempt),
/// 401s and 200s, messages and RRD percentiles agree with the capture.
#[test]
fn register_report_matches_the_wire() {
    check("register", &[]);
}

/// Retransmissions: serve is frozen (SIGSTOP) for 30 ms every 200 ms while
/// the client runs with T1 = 5 ms, so REGISTERs are retransmitted (RFC 3261
/// §17.1.2.2 Timer E) and serve answers each buffered copy. The report's
/// `messages.retransmitted` and `retransmissions_received` must equal the
/// duplicates on the wire, and `responses` must count each final once.
#[test]
fn register_retransmissions_match_the_wire() {
    check(
        "register",
        &[("TRUTH_STALL_MS", "30"), ("EXTRA_RUN_ARGS", "--t1 5ms")],
    );
}
