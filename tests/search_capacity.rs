//! `sipstorm search` against a target of known capacity: `serve --max-rate
//! 300` answers 503 beyond 300 new attempts per second, so the RFC 7502
//! §4.8 search must find a Registration Rate within 10% of 300/s.
//! Small and bounded: 2 s steps, at most 8 of them, loopback only.

mod e2e_common;
use e2e_common::*;

#[test]
fn search_finds_a_known_capacity() {
    let server = Server::start("auto", 1, &["--max-rate", "300"]);
    let out = tmpdir("search");
    let o = bin()
        .args(["search", "--target", &server.addr, "--scenario", "register"])
        .args(["--rate", "100", "--step", "100", "--duration", "2s"])
        .args(["--drain", "1s", "--workers", "1", "--max-steps", "8"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    server.stop();
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    let s = &r["search"];
    let found = s["max_rate_per_s"].as_f64().expect("a rate was found");
    assert!(
        (270.0..=330.0).contains(&found),
        "found {found}/s for a 300/s capacity\n{}",
        show(&o)
    );
    assert_eq!(s["limited_by"], "target");
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.len() >= 3);
    // Every step is a real run with its own report, and at least one
    // failed (the search went past the capacity to find it).
    assert!(steps.iter().any(|st| st["passed"] == false));
    for st in steps {
        let dir = std::path::Path::new(st["out"].as_str().unwrap());
        assert!(dir.join("report.json").is_file());
    }
    // The search report is a report: compare/report can read it.
    assert_eq!(r["schema"], "sipstorm.report/v1");
    assert!(out.join("summary.txt").is_file());
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(summary.contains("Registration Rate"), "{summary}");
}

#[test]
fn search_says_when_the_generator_is_the_limit() {
    // Without relying on speed: two users, each busy for a 1 s hold, cap
    // the starts the generator can make far below the offered 200/s while
    // every attempt succeeds, which is the generator-limited signature.
    let server = Server::start("auto", 1, &["--ring", "0s"]);
    let out = tmpdir("search-gen");
    let o = bin()
        .args(["search", "--target", &server.addr, "--scenario", "register"])
        .args(["--user-pattern", "g{0..1}", "--hold", "1s"])
        .args(["--rate", "200", "--duration", "1s", "--drain", "3s"])
        .args(["--workers", "1", "--max-steps", "3"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    server.stop();
    let r = report(&out);
    assert_eq!(r["search"]["limited_by"], "generator", "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("the generator, not the target, is the limit"));
}
