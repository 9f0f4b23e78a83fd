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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One case at a time: two loads at once on a 2-core machine would put each
/// other's scheduling delays into the latency comparison.
static SERIAL: Mutex<()> = Mutex::new(());

/// Upper bound for one case; each normally takes about 7 s (2 s of load at
/// 200/s, start-up, capture stop and analysis).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn tool_present(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .any(|dir| is_executable(&dir.join(tool)))
}

fn ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// `true` when tshark and python3 are there; under CI a missing one fails.
fn tools_available() -> bool {
    let missing: Vec<&str> = ["tshark", "python3"]
        .into_iter()
        .filter(|t| !tool_present(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !ci(),
        "CI=true but {missing:?} not installed: scripts/install-test-deps.sh must run first"
    );
    eprintln!("skipped: {missing:?} missing; run scripts/install-test-deps.sh");
    false
}

/// Runs `scripts/capture-truth.sh ARGS` with a deadline and returns (exit
/// code, output); `None` when killed at the deadline (SIGTERM first, so the
/// script's trap stops tshark and serve).
fn run_script(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let root = repo_root();
    let log_path = std::env::temp_dir().join(format!(
        "sipstorm-capture-truth-{}-{}.log",
        args.first().copied().unwrap_or("x"),
        std::process::id()
    ));
    let log = File::create(&log_path).expect("create the script's log file in the temp dir");
    let log_err = log.try_clone().expect("clone the log file handle");
    let mut child = Command::new("bash")
        .arg(root.join("scripts/capture-truth.sh"))
        .args(args)
        .current_dir(&root)
        .env("SIPSTORM", env!("CARGO_BIN_EXE_sipstorm"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start scripts/capture-truth.sh: {e}"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > SCRIPT_DEADLINE => {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
                std::thread::sleep(Duration::from_secs(3));
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("waiting for scripts/capture-truth.sh: {e}"),
        }
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    eprintln!(
        "scripts/capture-truth.sh {} ({:?}, {:.1?}):\n{output}",
        args.join(" "),
        status,
        start.elapsed()
    );
    (status.and_then(|s| s.code()), output)
}

fn check(scenario: &str, env: &[(&str, &str)]) {
    if !tools_available() {
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
