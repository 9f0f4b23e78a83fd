//! Weighted scenario mixes, ring-delay distributions and digest options,
//! end to end: the real binary over loopback, against the embedded target
//! and against `sipstorm serve`.

mod e2e_common;
use e2e_common::*;

fn totals(r: &serde_json::Value, kind: &str, field: &str) -> u64 {
    r["totals"][kind][field].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_mix_runs_each_part_in_exactly_its_weight() {
    let out = tmpdir("mix");
    let o = bin()
        .args(["run", "--mix", "register=1,call=2,options=1"])
        .args(["--count", "400", "--rate", "400", "--workers", "2"])
        .args(["--quiet", "--drain", "5s", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    assert_eq!(r["scenario"], "mix");
    // Two workers with 200 attempts each; every 4 consecutive attempts of a
    // worker hold each part exactly its weight.
    assert_eq!(totals(&r, "register", "attempted"), 100);
    assert_eq!(totals(&r, "register", "succeeded"), 100);
    assert_eq!(totals(&r, "call", "attempted"), 200);
    assert_eq!(totals(&r, "call", "completed"), 200);
    assert_eq!(totals(&r, "options", "attempted"), 100);
    assert_eq!(totals(&r, "options", "succeeded"), 100);
    assert_eq!(r["config"]["mix"][1]["scenario"], "call");
    assert_eq!(r["config"]["mix"][1]["weight"], 2);
}

#[test]
fn a_profile_mix_gives_parts_their_own_hold() {
    let dir = tmpdir("mix-profile");
    let p = dir.join("mix.toml");
    std::fs::write(
        &p,
        "# test mix\nrate = 100.0\ncount = 60\ndrain = \"5s\"\n\
         [[mix]]\nscenario = \"register\"\nweight = 1\nhold = \"0s\"\n\
         [[mix]]\nscenario = \"call\"\nweight = 2\nhold = \"uniform(200ms,400ms)\"\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = run_to(
        &out,
        &[
            "--workers".as_ref(),
            "1".as_ref(),
            "--profile".as_ref(),
            p.as_ref(),
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    assert_eq!(totals(&r, "register", "succeeded"), 20);
    assert_eq!(totals(&r, "call", "completed"), 40);
    // Calls were held 200-400 ms (the part's hold), measured 200 → BYE.
    let sd = &r["latency_ms"]["session_duration"];
    let (lo, hi) = (sd["min"].as_f64().unwrap(), sd["max"].as_f64().unwrap());
    assert!(lo >= 199.0 && hi <= 450.0, "session duration {lo}..{hi} ms");
    // A --scenario flag replaces the profile's mix.
    let out2 = dir.join("out2");
    let o = bin()
        .args([
            "run",
            "--workers",
            "1",
            "--quiet",
            "--scenario",
            "options",
            "--profile",
        ])
        .arg(&p)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out2);
    assert_eq!(r["scenario"], "options");
    assert_eq!(totals(&r, "options", "succeeded"), 60);
    // A bad part names the profile, the key and the problem.
    std::fs::write(&p, "# bad\n[[mix]]\nscenario = \"call\"\nweight = 0\n").unwrap();
    let o = bin()
        .args(["run", "--quiet", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mix.toml") && err.contains("key `mix`") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn ring_delay_distribution_reaches_the_time_to_answer() {
    let out = tmpdir("ring");
    let o = bin()
        .args([
            "run",
            "--scenario",
            "call",
            "--ring",
            "uniform(100ms,300ms)",
        ])
        .args(["--count", "40", "--rate", "80", "--workers", "1"])
        .args(["--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    assert_eq!(totals(&r, "call", "completed"), 40);
    let answer = &r["latency_ms"]["answer"];
    let (lo, hi) = (
        answer["min"].as_f64().unwrap(),
        answer["max"].as_f64().unwrap(),
    );
    assert!(lo >= 99.0 && hi < 400.0, "time to 200 {lo}..{hi} ms");
    assert!(hi - lo > 50.0, "ring delays not spread: {lo}..{hi} ms");
    // SRD (INVITE → 180) does not include the ring delay.
    let srd = r["latency_ms"]["srd"]["p50"].as_f64().unwrap();
    assert!(srd < lo, "srd p50 {srd} ms vs answer min {lo} ms");
    assert_eq!(r["config"]["ring"], "uniform(100ms,300ms)");
}

#[test]
fn digest_algorithm_and_qop_options_on_both_sides() {
    let backend = if uring_ok() { "uring" } else { "epoll" };
    let server = Server::start(
        backend,
        1,
        &[
            "--digest-algorithm",
            "SHA-256",
            "--digest-qop",
            "auth-int",
            "--ring",
            "exp(20ms)",
        ],
    );
    let run = |algs: &str, tag: &str| {
        let out = tmpdir(tag);
        let o = bin()
            .args(["run", "--target", &server.addr, "--scenario", "register"])
            .args(["--digest-algorithm", algs, "--count", "20", "--rate", "100"])
            .args(["--workers", "1", "--quiet", "--drain", "3s", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        (o, report(&out))
    };
    // Accepting SHA-256 (preferred over MD5): all register.
    let (o, r) = run("SHA-256,MD5", "digest-ok");
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(totals(&r, "register", "succeeded"), 20);
    // Accepting MD5 only: the SHA-256 challenge is refused, every attempt
    // fails with the 401 and the run exits 1.
    let (o, r) = run("MD5", "digest-refused");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(totals(&r, "register", "failed"), 20);
    assert_eq!(totals(&r, "register", "succeeded"), 0);
    // Calls through the exponential ring delay are answered (other users:
    // serve proxies calls to the users registered above, whose contacts are
    // gone).
    let out = tmpdir("digest-call");
    let o = bin()
        .args(["run", "--target", &server.addr, "--scenario", "call"])
        .args(["--user-pattern", "c{000..099}"])
        .args([
            "--count",
            "20",
            "--rate",
            "100",
            "--workers",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(totals(&report(&out), "call", "completed"), 20);
    server.stop();
}
