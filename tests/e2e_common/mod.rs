//! Helpers shared by the end-to-end tests: run the real binary over real
//! loopback sockets, short and small.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipstorm"));
    c.env_remove("SIPSTORM_BACKEND");
    c
}

/// A fresh empty directory under the target's temp area.
pub fn tmpdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "sipstorm-e2e-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `sipstorm serve` child on an ephemeral loopback port.
pub struct Server {
    pub child: Child,
    /// The UDP address (when it listens on UDP).
    pub addr: String,
    /// `(transport, address)` of each `tcp:`/`tls:` listener.
    pub streams: Vec<(String, String)>,
    /// Every stderr line after the listening line (for what serve says
    /// when it stops).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(backend: &str, workers: u32, extra: &[&str]) -> Server {
        Server::start_on(backend, workers, &["127.0.0.1:0"], extra)
    }

    /// With `--listen` for each of `listen` (`udp:`, `tcp:`, `tls:`).
    pub fn start_on(backend: &str, workers: u32, listen: &[&str], extra: &[&str]) -> Server {
        let mut child = bin()
            .arg("serve")
            .args(listen.iter().flat_map(|l| ["--listen", l]))
            .args(["--quiet", "--backend", backend])
            .args(["--workers", &workers.to_string()])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut words = None;
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let upto = rest.split(" with ").next().unwrap_or("");
                words = Some(
                    upto.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                );
                break;
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        let words = words.expect("serve printed its addresses");
        let pairs: Vec<(String, String)> = words
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        let addr = pairs
            .iter()
            .find(|(k, _)| k == "udp")
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        let streams = pairs.into_iter().filter(|(k, _)| k != "udp").collect();
        Server {
            child,
            addr,
            streams,
            log,
            drain: Some(drain),
        }
    }

    /// The address of the listener of `kind` (`tcp`, `tls`).
    pub fn stream(&self, kind: &str) -> String {
        self.streams
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("serve has no {kind} listener: {:?}", self.streams))
    }

    /// Resident memory of the server process, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        self.stop_inner();
    }

    /// Stop it and return what it said on stderr after listening.
    pub fn stop_log(mut self) -> String {
        self.stop_inner();
        // The drain thread reads to end of file once the child is gone.
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        self.log.lock().unwrap().join("\n")
    }

    fn stop_inner(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("serve did not stop on SIGTERM");
    }
}

impl Drop for Server {
    /// A failing test must not leave its server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Send signal `name` (INT, TERM) to our own child `pid` with kill(1), so
/// the tests need no unsafe code.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// `sipstorm run --quiet ARGS --out OUT`, waited for.
pub fn run_to(out: &std::path::Path, args: &[&std::ffi::OsStr]) -> Output {
    bin()
        .arg("run")
        .arg("--quiet")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Parse `DIR/report.json`.
pub fn report(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).unwrap()
}

pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The io_uring backend is usable on this machine.
pub fn uring_ok() -> bool {
    sipstorm::transport::Backend::Uring.resolve().is_ok()
}

/// The backends to run on: epoll, and io_uring where the kernel allows it.
pub fn stream_backends() -> Vec<&'static str> {
    if uring_ok() {
        vec!["epoll", "uring"]
    } else {
        vec!["epoll"]
    }
}

/// A certificate and key for `serve --tls-cert/--tls-key`, written into
/// `dir`; returns (cert, key) paths.
pub fn cert_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let id = sipstorm::transport::tls::ServerIdentity::self_signed(&[]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, id.cert_pem()).unwrap();
    std::fs::write(&k, id.key_pem()).unwrap();
    (c, k)
}

/// [`run_to`] with string arguments.
pub fn run_args(out: &std::path::Path, args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run_to(out, &args)
}

/// The number at JSON pointer `ptr` of `v`; panics naming it when absent.
pub fn num(v: &serde_json::Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}
