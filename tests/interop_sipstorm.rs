//! sipstorm against real peers (issue 7): `sipstorm run` → Kamailio registrar
//! and proxy, SIPp → `sipstorm serve`, `sipstorm run` → `sipp -sn uas`.
//! Each test runs one case of `scripts/interop-sipstorm.sh`, which starts the
//! peers on 127.0.0.1, checks `report.json` and the peer's own view (Kamailio's
//! location table through kamcmd, SIPp's statistics) and stops everything.
//!
//! SWITCHED OFF (`#[ignore]`) until `sipstorm run` and `sipstorm serve` are
//! merged: remove the `#[ignore]` lines to make them part of `scripts/test.sh`
//! and CI. `cargo test --test interop_sipstorm -- --ignored` runs them now;
//! the script exits 77 ("not available yet") while the commands are missing.
//! Against branch `runtime` (00:28 UTC): register-kamailio,
//! mixed-cancel-kamailio, sipp-uac-serve, sipp-register-serve and
//! run-sipp-uas pass; register-kamailio-csv needs
//! `--users`; mixed-kamailio's calls pass but its report has
//! `totals.register.attempted == 0` with 200 succeeded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The programs the scripts run.
const TOOLS: &[&str] = &["sipp", "kamailio", "kamcmd", "python3"];

/// Upper bound for one script; each normally takes a few seconds.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `tool` is an executable file in `PATH` or the sbin directories
/// (Kamailio installs into `/usr/sbin`, which a non-login `PATH` may lack).
fn tool_present(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/local/sbin"]
                .iter()
                .map(PathBuf::from),
        )
        .any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `true` when the tests may run; under CI a missing tool is a failure.
fn peers_available() -> bool {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !tool_present(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false);
    assert!(
        !ci,
        "CI=true but {missing:?} not installed: scripts/install-test-deps.sh must run first \
         (scripts/test.sh calls it)"
    );
    eprintln!("skipped: {missing:?} not installed; run scripts/install-test-deps.sh");
    false
}

/// Runs `scripts/NAME ARGS` with a deadline and returns (exit code, output);
/// the exit code is `None` when the script was killed at the deadline.
/// On timeout the script gets SIGTERM, so its trap still stops Kamailio/SIPp.
fn run_script(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let root = repo_root();
    // One log per call: the tests of this file run in parallel in one process.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let log_path = std::env::temp_dir().join(format!(
        "sipstorm-{}-{}-{}.log",
        name.trim_end_matches(".sh"),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let log = File::create(&log_path).expect("create the script's log file in the temp dir");
    let log_err = log.try_clone().expect("clone the log file handle");
    let mut child = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .current_dir(&root)
        .env("SIPP_TIMEOUT", "40")
        .env("SIPSTORM", env!("CARGO_BIN_EXE_sipstorm"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start scripts/{name}: {e}"));

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
            Err(e) => panic!("waiting for scripts/{name}: {e}"),
        }
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let code = status.and_then(|s| s.code());
    let verdict = match status {
        Some(s) => format!("exit status {s}"),
        None => format!("killed after {SCRIPT_DEADLINE:?}"),
    };
    eprintln!(
        "scripts/{name} ({verdict}, {:.1?}):\n{output}",
        start.elapsed()
    );
    (code, output)
}

/// Runs one case of `scripts/interop-sipstorm.sh` and asserts it passed.
fn run_case(case: &str) {
    if !peers_available() {
        return;
    }
    let (code, output) = run_script("interop-sipstorm.sh", &[case]);
    if code == Some(77) {
        let ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        assert!(
            !ci,
            "CI=true but sipstorm run/serve are not available:\n{output}"
        );
        eprintln!("skipped: sipstorm run/serve not available yet");
        return;
    }
    assert_eq!(
        code,
        Some(0),
        "interop-sipstorm.sh {case} failed:\n{output}"
    );
    assert!(
        output.contains("PASS: sipstorm interop"),
        "no PASS line:\n{output}"
    );
}

/// `sipstorm run --scenario register` → Kamailio: 2000 users registered with
/// digest at 500/s, zero failures in report.json, and every binding present
/// in Kamailio's location table (kamcmd through the ctl module).
#[test]
fn sipstorm_registers_thousands_at_kamailio() {
    run_case("register-kamailio");
}

/// The same with the users read from SIPp's injection file
/// (`--users scripts/sipp/users.csv`, extra fields after the password).
#[test]
fn sipstorm_registers_users_file_at_kamailio() {
    run_case("register-kamailio-csv");
}

/// `sipstorm run --scenario mixed` → Kamailio proxy: users register, then
/// call each other through the proxy with 407 authentication; ACK and BYE
/// follow the Record-Route set (RFC 3261 §12.2.1.1); zero failed calls.
#[test]
fn sipstorm_mixed_calls_through_kamailio_proxy() {
    run_case("mixed-kamailio");
}

/// `sipstorm run --scenario mixed --cancel-ratio 0.25` → Kamailio proxy:
/// CANCEL after the first provisional response (RFC 3261 §9.1); every call
/// ends completed or cancelled, none failed.
#[test]
fn sipstorm_cancels_calls_through_kamailio_proxy() {
    run_case("mixed-cancel-kamailio");
}

/// `sipp -sn uac` → `sipstorm serve`: every call succeeds.
#[test]
fn sipp_uac_calls_sipstorm_serve() {
    run_case("sipp-uac-serve");
}

/// SIPp's own `[authentication]` digest REGISTER → `sipstorm serve`: all
/// 200; REGISTERs with a wrong password are rejected (401/403).
#[test]
fn sipp_digest_register_at_sipstorm_serve() {
    run_case("sipp-register-serve");
}

/// `sipstorm run --scenario call` → `sipp -sn uas`: all calls complete.
#[test]
fn sipstorm_calls_sipp_uas() {
    run_case("run-sipp-uas");
}
