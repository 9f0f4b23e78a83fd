//! `run` against `serve` over real loopback sockets: each scenario, both
//! backends, several workers; SIGINT; the embedded default. Short and small.

mod e2e_common;
use e2e_common::*;

use std::time::{Duration, Instant};

fn backends() -> Vec<&'static str> {
    if uring_ok() {
        vec!["uring", "epoll"]
    } else {
        vec!["epoll"]
    }
}

fn run_against(
    server: &Server,
    backend: &str,
    scenario: &str,
    count: u32,
    extra: &[&str],
) -> serde_json::Value {
    let out = tmpdir(scenario);
    let o = bin()
        .args([
            "run",
            "--target",
            &server.addr,
            "--scenario",
            scenario,
            "--backend",
            backend,
        ])
        .args([
            "--rate",
            "400",
            "--count",
            &count.to_string(),
            "--workers",
            "2",
            "--quiet",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{scenario}/{backend}: {}",
        show(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.trim().is_empty(), "summary printed");
    for f in [
        "report.json",
        "summary.txt",
        "report.html",
        "intervals.hlog",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    report(&out)
}

#[test]
fn register_call_options_on_both_backends_with_two_workers() {
    for backend in backends() {
        let server = Server::start(backend, 2, &[]);
        // `--hold` unregisters at the end: `serve` also proxies INVITEs to
        // registered users, and the calls below must reach `serve` itself,
        // not the finished register run's Contacts.
        let r = run_against(&server, backend, "register", 60, &["--hold", "100ms"]);
        assert_eq!(r["totals"]["register"]["attempted"], 60, "{backend}: {r}");
        assert_eq!(r["totals"]["register"]["succeeded"], 60, "{backend}");
        assert!(
            r["rfc6076"]["rrd_ms"]["count"].as_u64() == Some(60),
            "{backend}: {}",
            r["rfc6076"]
        );

        let r = run_against(&server, backend, "call", 40, &["--hold", "100ms"]);
        assert_eq!(r["totals"]["call"]["attempted"], 40, "{backend}: {r}");
        assert_eq!(r["totals"]["call"]["completed"], 40, "{backend}");
        assert_eq!(r["totals"]["call"]["failed"], 0, "{backend}");

        let r = run_against(&server, backend, "options", 50, &[]);
        assert_eq!(r["totals"]["options"]["attempted"], 50, "{backend}: {r}");
        server.stop();
    }
}

#[test]
fn failures_make_exit_code_1() {
    let server = Server::start("epoll", 1, &["--busy-ratio", "1"]);
    let out = tmpdir("busy");
    let o = bin()
        .args([
            "run",
            "--target",
            &server.addr,
            "--scenario",
            "call",
            "--rate",
            "100",
            "--count",
            "10",
        ])
        .args(["--workers", "1", "--quiet", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let r = report(&out);
    assert_eq!(r["totals"]["call"]["failed"], 10, "{r}");
    assert_eq!(r["responses"]["486"], 10, "{}", r["responses"]);
    server.stop();
}

#[test]
fn sigint_drains_and_writes_the_report() {
    let out = tmpdir("sigint");
    let child = bin()
        .args([
            "run",
            "--scenario",
            "call",
            "--rate",
            "200",
            "--duration",
            "60s",
            "--workers",
            "2",
            "--quiet",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    signal(child.id(), "INT");
    let o = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stopped in bounded time"
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    let r = report(&out);
    let attempted = r["totals"]["call"]["attempted"].as_u64().unwrap();
    assert!(attempted > 50 && attempted < 2000, "{attempted}");
}

#[test]
fn embedded_default_runs_with_no_arguments() {
    // `sipstorm run` alone: embedded server, default load (2000 calls/s for
    // 5 s), summary on stdout, report under results/ of the working
    // directory. The exit code depends on whether this machine keeps up
    // with the default rate (a debug build on a busy box may not), so only
    // "finished" is asserted, not "all succeeded".
    let dir = tmpdir("embedded");
    let o = bin()
        .arg("run")
        .arg("--quiet")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("SRD"),
        "{}",
        show(&o)
    );
    let results: Vec<_> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(results.len(), 1);
    let r = report(&results[0].path());
    assert!(
        r["totals"]["call"]["established"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert_eq!(r["config"]["target"], "embedded");
    assert_eq!(r["rate"]["offered_per_s"], 2000.0);
}

#[test]
fn users_file_and_segment_share_the_work() {
    let server = Server::start("epoll", 1, &[]);
    let dir = tmpdir("users");
    let users = dir.join("users.csv");
    let mut text = String::from("SEQUENTIAL\n# name;password\n");
    for i in 0..10 {
        if i % 2 == 0 {
            text.push_str(&format!("user{i};pw-user{i}\n"));
        } else {
            text.push_str(&format!(
                "user{i};[authentication username=user{i} password=pw-user{i}]\n"
            ));
        }
    }
    std::fs::write(&users, text).unwrap();
    let out = dir.join("report");
    let o = bin()
        .args([
            "run",
            "--target",
            &server.addr,
            "--scenario",
            "register",
            "--rate",
            "200",
        ])
        .args([
            "--count",
            "21",
            "--segment",
            "1/2",
            "--workers",
            "2",
            "--quiet",
        ])
        .args([
            "--users",
            users.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let r = report(&out);
    // Segment 1 of 2 takes 10 of the 21 attempts (segment 0 takes 11).
    assert_eq!(r["totals"]["register"]["attempted"], 10, "{r}");
    assert_eq!(r["totals"]["register"]["succeeded"], 10);
    assert_eq!(r["config"]["segment"], "1/2");
    server.stop();
}

#[test]
fn second_sigint_stops_at_once_and_still_writes_the_report() {
    // Calls held for a minute: the first signal starts a bounded drain, the
    // second ends it at once; the report is written either way.
    let out = tmpdir("sigint2");
    let child = bin()
        .args([
            "run",
            "--scenario",
            "call",
            "--rate",
            "100",
            "--hold",
            "60s",
            "--duration",
            "60s",
        ])
        .args(["--workers", "1", "--quiet", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    signal(child.id(), "INT");
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    let r = report(&out);
    assert!(
        r["totals"]["call"]["established"].as_u64().unwrap() > 20,
        "{r}"
    );
}
