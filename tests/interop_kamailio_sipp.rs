//! Interop tests with real peers only: Debian's Kamailio and SIPp, started and
//! stopped by the scripts under `scripts/` on 127.0.0.1.
//!
//! They prove the test infrastructure that the sipstorm ↔ Kamailio / SIPp
//! tests (issue 7) build on: the project's Kamailio config is a working
//! digest registrar (RFC 3261 §10, §22) and an authenticating, record-routing
//! stateful proxy (RFC 3261 §16, §22.3), as seen by SIPp, a client that is
//! not ours.
//!
//! When `sipp`/`kamailio`/`kamcmd` are missing, the tests fail under CI
//! (`CI=true`: `scripts/test.sh` installs them first) and are skipped with a
//! message elsewhere.

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

/// Runs `scripts/NAME ARGS` with a deadline and returns (success, output).
/// On timeout the script gets SIGTERM, so its trap still stops Kamailio/SIPp.
fn run_script(name: &str, args: &[&str]) -> (bool, String) {
    let root = repo_root();
    let log_path = std::env::temp_dir().join(format!(
        "sipstorm-{}-{}.log",
        name.trim_end_matches(".sh"),
        std::process::id()
    ));
    let log = File::create(&log_path).expect("create the script's log file in the temp dir");
    let log_err = log.try_clone().expect("clone the log file handle");
    let mut child = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .current_dir(&root)
        .env("SIPP_TIMEOUT", "40")
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
    let ok = status.is_some_and(|s| s.success());
    let verdict = match status {
        Some(s) => format!("exit status {s}"),
        None => format!("killed after {SCRIPT_DEADLINE:?}"),
    };
    eprintln!(
        "scripts/{name} ({verdict}, {:.1?}):\n{output}",
        start.elapsed()
    );
    (ok, output)
}

/// SIPp registers 1000 users with digest (MD5, qop=auth) at Kamailio: every
/// REGISTER gets 401 then 200, and Kamailio's own location table (read with
/// kamcmd through the ctl module) holds exactly those 1000 AoRs, each bound
/// to SIPp's socket. Wrong passwords are rejected and bind nothing.
#[test]
fn kamailio_registrar_accepts_sipp_digest_registrations() {
    if !peers_available() {
        return;
    }
    let (ok, output) = run_script("interop-kamailio-register-sipp.sh", &["1000", "500"]);
    assert!(ok, "interop-kamailio-register-sipp.sh failed:\n{output}");
    assert!(
        output.contains("PASS: 1000 registrations"),
        "no PASS line:\n{output}"
    );
    assert!(
        output.contains("kamailio: 1000/1000 AoRs found"),
        "Kamailio's table was not checked:\n{output}"
    );
}

/// A SIPp UAC calls, through Kamailio, callees registered there for a SIPp
/// UAS: INVITE → 407 → ACK, INVITE with Proxy-Authorization → 180/200 with
/// Record-Route → ACK and BYE via the route set. Every call completes on
/// both sides.
#[test]
fn kamailio_proxy_routes_sipp_calls_with_407_and_record_route() {
    if !peers_available() {
        return;
    }
    let (ok, output) = run_script("interop-kamailio-call-sipp.sh", &["100", "50"]);
    assert!(ok, "interop-kamailio-call-sipp.sh failed:\n{output}");
    assert!(
        output.contains("PASS: 100 calls"),
        "no PASS line:\n{output}"
    );
}
