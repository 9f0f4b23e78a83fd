//! Reliability of the real binary against broken targets (sipstorm issue 8):
//! a black hole, a closed port, a garbage-speaking server, a slow one, a
//! target that stops and restarts, garbage floods at `serve`, signals, a
//! closed stdout, and passwords kept out of every output. Loopback only;
//! each case is bounded by Timer B/F at `--t1 100ms` (64·T1 = 6.4 s).

mod e2e_common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use e2e_common::{Server, bin, report, show, tmpdir};
use serde_json::Value;

/// 64·T1 at `--t1 100ms`: the longest any transaction may live.
const TIMER_B: Duration = Duration::from_millis(6400);

/// Run `sipstorm run` against `target` with small timers; return the output,
/// the elapsed time and the report.
fn run_at(target: &str, scenario: &str, extra: &[&str], tag: &str) -> (Output, Duration, Value) {
    let out = tmpdir(tag);
    let t0 = Instant::now();
    let o = bin()
        .args(["run", "--target", target, "--scenario", scenario])
        .args([
            "--t1",
            "100ms",
            "--t2",
            "400ms",
            "--workers",
            "1",
            "--quiet",
        ])
        .args(["--backend", "epoll", "--drain", "8s"])
        .args([
            "--user-pattern",
            "u{000..099}",
            "--password-pattern",
            "pw-{user}",
        ])
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let took = t0.elapsed();
    let r = report(&out);
    (o, took, r)
}

fn n(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} missing in report"))
}

/// A UDP socket that receives everything and never answers.
struct BlackHole {
    addr: String,
    stop: Arc<AtomicBool>,
    got: Arc<AtomicU64>,
    h: Option<thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = s.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicU64::new(0));
        let (st, g) = (stop.clone(), got.clone());
        let h = thread::spawn(move || {
            let mut b = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                if s.recv_from(&mut b).is_ok() {
                    g.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        BlackHole {
            addr,
            stop,
            got,
            h: Some(h),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

/// A scripted UDP server: `answer(request) -> datagrams`, optionally after
/// a delay per request.
fn scripted_server(
    delay: Duration,
    answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (String, Arc<AtomicBool>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let addr = s.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    thread::spawn(move || {
        let mut b = vec![0u8; 65536];
        let mut pending: Vec<(Instant, std::net::SocketAddr, Vec<Vec<u8>>)> = Vec::new();
        while !st.load(Ordering::Relaxed) {
            if let Ok((len, from)) = s.recv_from(&mut b) {
                pending.push((Instant::now() + delay, from, answer(&b[..len])));
            }
            let now = Instant::now();
            pending.retain(|(at, from, msgs)| {
                if *at > now {
                    return true;
                }
                for m in msgs {
                    let _ = s.send_to(m, from);
                }
                false
            });
        }
    });
    (addr, stop)
}

/// Header value of `name` in a SIP message (first occurrence, exact case).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// A well-formed 200 OK to an OPTIONS/REGISTER request (echoing Via, From,
/// To, Call-ID, CSeq), optionally with one header value replaced.
fn ok_for(req: &[u8], replace: Option<(&str, &str)>) -> Vec<u8> {
    let r = String::from_utf8_lossy(req);
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let mut v = header(&r, h).unwrap_or("").to_string();
        if let Some((name, val)) = replace
            && name == h
        {
            v = val.to_string();
        }
        if h == "To" {
            v.push_str(";tag=srv");
        }
        out.push_str(&format!("{h}: {v}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// A server that never answers: every attempt times out at Timer F, the
/// run ends within count/rate + 64·T1 + slack, exit 1, report written.
#[test]
fn black_hole_times_out_within_timer_f() {
    let bh = BlackHole::start();
    let (o, took, r) = run_at(
        &bh.addr,
        "options",
        &["--rate", "50", "--count", "10"],
        "bh",
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(n(&r, "totals.options.attempted"), 10);
    assert_eq!(n(&r, "totals.options.failed"), 10);
    assert_eq!(n(&r, "totals.options.timed_out"), 10);
    assert!(n(&r, "messages.retransmitted") > 0);
    assert!(bh.got.load(Ordering::Relaxed) >= 10);
    assert!(took < TIMER_B + Duration::from_secs(5), "took {took:?}");
}

/// Run `sipstorm` with `args`, stdout discarded; panic (after killing it)
/// if it has not exited within `guard`. Returns the exit code, the time it
/// took and its stderr.
fn run_guarded(args: &[&str], guard: Duration) -> (Option<i32>, Duration, String) {
    let t0 = Instant::now();
    let mut child = bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {guard:?}: {args:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code(), took, err)
}

/// Nothing listens on the port: the kernel answers ICMP port unreachable,
/// which the transport reads from the socket's error queue (RFC 3261 §18.4)
/// and the engine turns into transport errors (§17.1.4). Every attempt
/// fails at once as a transport error, none as a timeout, on both
/// backends and for each scenario; exit 1, report written. At `--t1 2s`
/// Timer B/F is 128 s, so finishing before the 60 s guard proves the
/// attempts did not wait for it.
#[test]
fn port_not_listening_fails_fast_as_transport_error() {
    // Bind then drop: a port that was just free and now refuses.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let mut backends = vec!["epoll"];
    if e2e_common::uring_ok() {
        backends.push("uring");
    }
    for backend in backends {
        for sc in ["register", "call", "options"] {
            let out = tmpdir(&format!("closed-{backend}-{sc}"));
            let out_s = out.display().to_string();
            let (code, took, err) = run_guarded(
                &[
                    "run",
                    "--target",
                    &target,
                    "--scenario",
                    sc,
                    "--count",
                    "20",
                    "--rate",
                    "100",
                    "--t1",
                    "2s",
                    "--t2",
                    "4s",
                    "--workers",
                    "1",
                    "--quiet",
                    "--backend",
                    backend,
                    "--out",
                    &out_s,
                ],
                Duration::from_secs(60),
            );
            let tag = format!("{backend} {sc} took {took:?}");
            assert_eq!(code, Some(1), "{tag}: {err}");
            let r = report(&out);
            let t = &r["totals"][sc];
            assert_eq!(n(&r, &format!("totals.{sc}.attempted")), 20, "{tag} {t}");
            assert_eq!(n(&r, &format!("totals.{sc}.failed")), 20, "{tag} {t}");
            assert_eq!(n(&r, &format!("totals.{sc}.timed_out")), 0, "{tag} {t}");
            let ok = if sc == "call" {
                "established"
            } else {
                "succeeded"
            };
            assert_eq!(n(&r, &format!("totals.{sc}.{ok}")), 0, "{tag} {t}");
            // One ICMP error per attempt's first (and only) request.
            assert!(n(&r, "errors.transport") >= 20, "{tag} {}", r["errors"]);
            assert_eq!(n(&r, "messages.retransmitted"), 0, "{tag}");
        }
    }
}

/// A broken server answers every request with garbage, a truncated copy,
/// a 200 with a foreign branch and a 200 with our branch but another
/// Call-ID: all counted (unparseable / unexpected), none completes an
/// attempt, exit 1 within Timer F, report written.
#[test]
fn broken_server_garbage_is_counted_never_matched() {
    let (addr, stop) = scripted_server(Duration::ZERO, |req| {
        vec![
            b"\x00\xffgarbage\r\n\r\n".to_vec(),
            req[..req.len() / 2].to_vec(),
            ok_for(
                req,
                Some(("Via", "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKforeign")),
            ),
            ok_for(req, Some(("Call-ID", "not-yours"))),
            vec![b'x'; 60_000],
        ]
    });
    let (o, took, r) = run_at(
        &addr,
        "options",
        &["--rate", "50", "--count", "10"],
        "broken",
    );
    stop.store(true, Ordering::Relaxed);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(n(&r, "totals.options.succeeded"), 0);
    assert_eq!(n(&r, "totals.options.failed"), 10);
    assert_eq!(n(&r, "totals.options.timed_out"), 10);
    assert!(n(&r, "messages.unparseable") >= 20, "{}", r["messages"]);
    assert!(n(&r, "messages.unexpected") >= 20, "{}", r["messages"]);
    assert!(r["responses"].get("200").is_none(), "{}", r["responses"]);
    assert!(took < TIMER_B + Duration::from_secs(5), "took {took:?}");
}

/// A slow server (answers after 250 ms, past T1 = 100 ms): retransmissions
/// are sent, duplicates absorbed, every attempt still succeeds, exit 0.
#[test]
fn slow_server_is_retransmitted_to_and_succeeds() {
    let (addr, stop) = scripted_server(Duration::from_millis(250), |req| vec![ok_for(req, None)]);
    let (o, took, r) = run_at(&addr, "options", &["--rate", "50", "--count", "10"], "slow");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(n(&r, "totals.options.succeeded"), 10);
    assert!(n(&r, "messages.retransmitted") >= 10, "{}", r["messages"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// The target stops mid-run and restarts on the same port: the attempts
/// during the outage fail (ICMP port unreachable: transport errors, at
/// once), the others succeed, the counts add up, exit 1.
#[test]
fn target_stops_and_restarts_mid_run() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let serve = |l: &str| {
        bin()
            .args([
                "serve",
                "--listen",
                l,
                "--workers",
                "1",
                "--quiet",
                "--backend",
                "epoll",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut s1 = serve(&listen);
    thread::sleep(Duration::from_millis(300));
    let out = tmpdir("restart");
    let t0 = Instant::now();
    let run = bin()
        .args(["run", "--target", &listen, "--scenario", "options"])
        .args(["--t1", "20ms", "--t2", "80ms", "--workers", "1", "--quiet"])
        .args(["--backend", "epoll", "--rate", "50", "--duration", "4s"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(800));
    let _ = s1.kill();
    let _ = s1.wait();
    // Down for 2 s, longer than Timer F at T1 = 20 ms (1.28 s).
    thread::sleep(Duration::from_millis(2000));
    let mut s2 = serve(&listen);
    let o = run.wait_with_output().unwrap();
    let took = t0.elapsed();
    let _ = s2.kill();
    let _ = s2.wait();
    let r = report(&out);
    let (att, ok, failed, to) = (
        n(&r, "totals.options.attempted"),
        n(&r, "totals.options.succeeded"),
        n(&r, "totals.options.failed"),
        n(&r, "totals.options.timed_out"),
    );
    assert_eq!(att, ok + failed, "{}", r["totals"]);
    assert!(ok > 0 && failed > 0, "{}", r["totals"]);
    // The closed port answered with ICMP: the attempts of the outage failed
    // as transport errors, not at Timer F. A request lost in the instant
    // of the kill may still time out.
    assert!(n(&r, "errors.transport") > 0, "{}", r["errors"]);
    assert!(failed > to, "{} {}", r["totals"], r["errors"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(took < Duration::from_secs(4) + TIMER_B, "took {took:?}");
}

/// `serve` under a flood of garbage, truncated, oversized (64 KiB) and
/// mutated datagrams keeps serving a valid `run`: zero failures there,
/// and a 400 naming the problem for malformed requests it can answer.
#[test]
fn serve_keeps_serving_under_garbage_flood() {
    let srv = Server::start("epoll", 1, &["--password-pattern", "pw-{user}"]);
    let target = srv.addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let t2 = target.clone();
    let flood = thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let valid = "REGISTER sip:example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKflood\r\n\
            From: <sip:u001@example.com>;tag=f\r\nTo: <sip:u001@example.com>\r\n\
            Call-ID: flood\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut sent, mut got400) = (0u64, 0u64);
        let mut b = vec![0u8; 65536];
        while !st.load(Ordering::Relaxed) {
            let kind = rnd() % 5;
            let d: Vec<u8> = match kind {
                0 => (0..(rnd() % 1400) as usize).map(|_| rnd() as u8).collect(),
                1 => valid.as_bytes()[..(rnd() as usize % valid.len())].to_vec(),
                2 => {
                    let mut v = valid.as_bytes().to_vec();
                    v.extend(std::iter::repeat_n(b'a', 65_000));
                    v
                }
                3 => {
                    let mut v = valid.as_bytes().to_vec();
                    for _ in 0..3 {
                        let i = rnd() as usize % v.len();
                        v[i] = rnd() as u8;
                    }
                    v
                }
                _ => valid
                    .replace("CSeq: 1 REGISTER", "CSeq: x REGISTER")
                    .into_bytes(),
            };
            if s.send_to(&d, &t2).is_ok() {
                sent += 1;
            }
            while let Ok((len, _)) = s.recv_from(&mut b) {
                if b[..len].starts_with(b"SIP/2.0 400 Bad Request - ") {
                    got400 += 1;
                }
            }
        }
        (sent, got400)
    });
    thread::sleep(Duration::from_millis(200));
    let (o, _took, r) = run_at(
        &target,
        "register",
        &["--rate", "200", "--count", "400"],
        "flood",
    );
    stop.store(true, Ordering::Relaxed);
    let (sent, got400) = flood.join().unwrap();
    srv.stop();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(n(&r, "totals.register.succeeded"), 400);
    assert_eq!(n(&r, "totals.register.failed"), 0);
    assert!(sent > 100, "flood sent only {sent}");
    assert!(got400 > 0, "no 400 for malformed requests ({sent} sent)");
}

/// SIGTERM and SIGINT during a run: the report is still written, bounded.
#[test]
fn signals_during_run_write_the_report() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let bh = BlackHole::start();
        let out = tmpdir("sig");
        let t0 = Instant::now();
        let child = bin()
            .args(["run", "--target", &bh.addr, "--scenario", "options"])
            .args([
                "--t1",
                "100ms",
                "--workers",
                "1",
                "--quiet",
                "--backend",
                "epoll",
            ])
            .args(["--rate", "50", "--duration", "60s", "--drain", "2s"])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(800));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let o = child.wait_with_output().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(12), "sig {sig}");
        assert!(
            o.status.code().is_some(),
            "killed by a signal: {:?}",
            o.status
        );
        let r = report(&out);
        assert!(n(&r, "totals.options.attempted") > 0);
        assert!(out.join("summary.txt").exists());
    }
}

/// A closed stdout (reader gone: SIGPIPE / EPIPE) never kills a run.
/// Fails with exit 101 (panic in `println!`) until patch 1 of
/// results/2026-11-22-reliability/run-patches.md is applied to run.rs.
#[test]
fn closed_stdout_never_kills_a_run() {
    let bh = BlackHole::start();
    let out = tmpdir("pipe");
    let mut child = bin()
        .args(["run", "--target", &bh.addr, "--scenario", "options"])
        .args(["--t1", "50ms", "--workers", "1", "--backend", "epoll"])
        .args(["--rate", "50", "--count", "20"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is printed
    drop(child.stderr.take());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "hung");
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(n(&report(&out), "totals.options.timed_out"), 20);
}

fn grep_dir(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let b = std::fs::read(e.path()).unwrap_or_default();
        if b.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(e.path().display().to_string());
        }
    }
    hits
}

/// Passwords from a pattern, a users file and a wrong one never appear in
/// the report files, progress, logs; wrong passwords are rejected for real.
#[test]
fn passwords_never_leak_and_wrong_ones_fail() {
    let secret = "Zq7-SeCrEt";
    let srv = Server::start(
        "epoll",
        1,
        &["--password-pattern", &format!("{secret}{{user}}")],
    );
    // Right password from the pattern: all succeed, nothing leaks.
    let out = tmpdir("pw");
    let o = bin()
        .args(["run", "--target", &srv.addr, "--scenario", "register"])
        .args(["--t1", "100ms", "--workers", "1", "--backend", "epoll"])
        .args([
            "--rate",
            "100",
            "--count",
            "20",
            "--user-pattern",
            "u{00..09}",
        ])
        .args(["--password-pattern", &format!("{secret}{{user}}")])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        grep_dir(&out, secret).is_empty(),
        "{:?}",
        grep_dir(&out, secret)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(secret));

    // Wrong password from a users file (plain and SIPp keyword forms).
    let dir = tmpdir("pwfile");
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        format!(
            "SEQUENTIAL\nu01;{secret}wrong\nu02;[authentication username=u02 password={secret}bad]\n"
        ),
    )
    .unwrap();
    let out2 = tmpdir("pw2");
    let o = bin()
        .args(["run", "--target", &srv.addr, "--scenario", "register"])
        .args(["--t1", "100ms", "--workers", "1", "--backend", "epoll"])
        .args(["--rate", "100", "--count", "4"])
        .arg("--users")
        .arg(&users)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    srv.stop();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let r = report(&out2);
    assert_eq!(n(&r, "totals.register.failed"), 4, "{}", r["totals"]);
    assert_eq!(n(&r, "totals.register.succeeded"), 0);
    assert!(
        grep_dir(&out2, secret).is_empty(),
        "{:?}",
        grep_dir(&out2, secret)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(secret));
}

/// Bad usage of a broken profile never panics: exit 2 with a message.
#[test]
fn hostile_flag_values_are_usage_errors() {
    for args in [
        vec!["--t1", "0ms"],
        vec!["--rate", "-5"],
        vec!["--hold", "exp(-1s)"],
        vec!["--target", "127.0.0.1:99999"],
    ] {
        let o: Output = Command::new(env!("CARGO_BIN_EXE_sipstorm"))
            .args(["run", "--scenario", "options", "--count", "1", "--quiet"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
    }
}

/// Resident memory of `sipstorm run` against a black hole is flat once
/// Timer F (64·T1 = 1.28 s at T1 = 20 ms) frees the oldest attempts: the
/// short form of scripts/soak-blackhole.sh.
#[test]
fn black_hole_rss_is_flat() {
    let bh = BlackHole::start();
    let out = tmpdir("rss");
    let mut child = bin()
        .args(["run", "--target", &bh.addr, "--scenario", "register"])
        .args(["--t1", "20ms", "--t2", "80ms", "--workers", "1", "--quiet"])
        .args(["--backend", "epoll", "--rate", "2000", "--duration", "8s"])
        .args([
            "--user-pattern",
            "u{000000..099999}",
            "--password-pattern",
            "pw-{user}",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_millis(7500) {
        thread::sleep(Duration::from_millis(500));
        samples.push((t0.elapsed().as_secs_f64(), rss(child.id())));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let r = report(&out);
    assert_eq!(
        n(&r, "totals.register.attempted"),
        n(&r, "totals.register.timed_out")
    );
    // Steady state from 3 s on (two Timer F windows): growth under 20 %.
    let steady: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= 3.0)
        .map(|s| s.1)
        .collect();
    let (first, max) = (steady[0], *steady.iter().max().unwrap());
    assert!(max <= first + first / 5, "rss grew: {samples:?}");
}

/// A drain shorter than Timer F (here 1 s against 64·T1 = 32 s at the
/// default T1): the attempts still in flight at the deadline are counted
/// as timed out, so attempted = succeeded + failed. Needs patch 2 of
/// results/2026-11-22-reliability/run-patches.md (run.rs calls
/// `Endpoint::abandon` at the end; config.rs defaults --drain to 64·T1+1 s).
#[test]
fn short_drain_still_counts_every_attempt() {
    let bh = BlackHole::start();
    let out = tmpdir("drain");
    let t0 = Instant::now();
    let o = bin()
        .args(["run", "--target", &bh.addr, "--scenario", "options"])
        .args(["--workers", "1", "--quiet", "--backend", "epoll"])
        .args(["--rate", "50", "--count", "5", "--drain", "1s"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(t0.elapsed() < Duration::from_secs(8));
    let r = report(&out);
    assert_eq!(n(&r, "totals.options.attempted"), 5);
    assert_eq!(n(&r, "totals.options.timed_out"), 5, "{}", r["totals"]);
}
