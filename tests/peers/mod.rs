//! Shared by the tests that drive real peers (SIPp, Kamailio, tshark)
//! through the scripts under `scripts/`: finding the tools (under CI a
//! missing one fails, elsewhere the test is skipped with a message) and
//! running a script with a deadline, its output captured.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Upper bound for one script; each normally takes a few seconds.
pub const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this is a CI run (`CI=true`), where skipping is failing.
pub fn ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Whether `tool` is an executable file in `PATH` or the sbin directories
/// (Kamailio installs into `/usr/sbin`, which a non-login `PATH` may lack).
pub fn tool_present(tool: &str) -> bool {
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

/// `true` when every tool is there; under CI a missing one is a failure,
/// elsewhere the test prints why it is skipped.
pub fn tools_available(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !tool_present(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !ci(),
        "CI=true but {missing:?} not installed: scripts/install-test-deps.sh must run first \
         (scripts/test.sh calls it)"
    );
    eprintln!("skipped: {missing:?} not installed; run scripts/install-test-deps.sh");
    false
}

/// Runs `scripts/NAME ARGS` (with `SIPSTORM` set to this build's binary and
/// `env` added) under [`SCRIPT_DEADLINE`] and returns (exit code, output);
/// the code is `None` when the script was killed at the deadline. On timeout
/// the script gets SIGTERM first, so its trap still stops its peers.
pub fn run_script(name: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    // One log per call: the tests of one file run in parallel in one process.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let root = repo_root();
    let log_path = std::env::temp_dir().join(format!(
        "sipstorm-{}-{}-{}.log",
        name.trim_end_matches(".sh"),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let log = File::create(&log_path).expect("create the script's log file in the temp dir");
    let log_err = log.try_clone().expect("clone the log file handle");
    let mut child = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .current_dir(&root)
        .env("SIPSTORM", env!("CARGO_BIN_EXE_sipstorm"))
        .envs(env.iter().copied())
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
    let verdict = match status {
        Some(s) => format!("exit status {s}"),
        None => format!("killed after {SCRIPT_DEADLINE:?}"),
    };
    eprintln!(
        "scripts/{name} {} ({verdict}, {:.1?}):\n{output}",
        args.join(" "),
        start.elapsed()
    );
    (status.and_then(|s| s.code()), output)
}
