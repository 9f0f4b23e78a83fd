//! `sipstorm search` against targets of known capacity, over real loopback
//! sockets: `serve --max-rate 300` answers 503 beyond 300 new attempts per
//! second, so the RFC 7502 §4.8 search (×2 while steps pass, then bisect)
//! must find a Registration Rate within 10% of 300/s and blame the target;
//! an unlimited `serve` never fails, so a short search must say it ran out
//! of steps, never that the target is the limit. Small and bounded: 1–2 s
//! steps, at most 8 of them, loopback only.

mod e2e_common;
use e2e_common::*;
use std::process::Output;

#[path = "report_support.rs"]
mod support;

fn rates(search: &serde_json::Value) -> Vec<f64> {
    search["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["rate"].as_f64().unwrap())
        .collect()
}

/// `sipstorm search --target SERVER --scenario SCENARIO ARGS --workers 1
/// --out OUT`, waited for; the server is stopped afterwards.
fn search(server: Server, scenario: &str, args: &[&str], out: &std::path::Path) -> Output {
    let o = bin()
        .args(["search", "--target", &server.addr, "--scenario", scenario])
        .args(args)
        .args(["--workers", "1", "--out"])
        .arg(out)
        .output()
        .unwrap();
    server.stop();
    o
}

#[test]
fn search_finds_a_known_capacity() {
    let server = Server::start("auto", 1, &["--max-rate", "300"]);
    let out = tmpdir("search");
    let o = search(
        server,
        "register",
        &[
            "--rate",
            "100",
            "--step",
            "2",
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--max-steps",
            "8",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    let s = &r["search"];
    let found = s["max_rate_per_s"].as_f64().expect("a rate was found");
    assert!(
        (270.0..=330.0).contains(&found),
        "found {found}/s for a 300/s capacity\n{}",
        show(&o)
    );
    assert_eq!(s["limited_by"], "target", "{}", show(&o));
    // Doubling until the first failure (400/s), then bisection below it.
    let tried = rates(s);
    assert_eq!(tried[..3], [100.0, 200.0, 400.0], "{tried:?}");
    assert!(
        tried[3..].iter().all(|&r| r > 200.0 && r < 400.0),
        "{tried:?}"
    );
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.iter().any(|st| st["verdict"] == "fail"));
    let upper = s["upper_bound_per_s"].as_f64().unwrap();
    assert!(upper - found <= 0.05 * found, "{found}..{upper}");
    // Every step is a real run with its own report.
    for st in steps {
        let dir = std::path::Path::new(st["out"].as_str().unwrap());
        assert!(dir.join("report.json").is_file());
    }
    // The search report is a report: the schema holds, compare/report can
    // read it, and no temporary file is left.
    support::assert_valid(&out.join("report.json"));
    assert_eq!(r["schema"], "sipstorm.report/v1");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(summary.contains("Registration Rate"), "{summary}");
    assert!(summary.contains("limited by: the target"), "{summary}");
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "left behind: {name}");
    }
}

#[test]
fn search_without_a_failure_never_blames_the_target() {
    // The bug this replaces: twenty passing steps ended in "limited by:
    // the target". Two passing steps must end in max_steps.
    let server = Server::start("auto", 1, &[]);
    let out = tmpdir("search-no-failure");
    let o = search(
        server,
        "options",
        &[
            "--rate",
            "50",
            "--step",
            "2",
            "--duration",
            "1s",
            "--drain",
            "1s",
            "--max-steps",
            "2",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", show(&o));
    let s = &report(&out)["search"];
    assert_eq!(s["limited_by"], "max_steps", "{}", show(&o));
    assert_eq!(rates(s), [50.0, 100.0]);
    assert_eq!(s["max_rate_per_s"], 100.0);
    assert!(s["upper_bound_per_s"].is_null());
    assert!(s["note"].as_str().unwrap().contains("no step failed"));
    support::assert_valid(&out.join("report.json"));
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
        .args([
            "--rate",
            "200",
            "--step",
            "2",
            "--duration",
            "1s",
            "--drain",
            "3s",
        ])
        .args(["--workers", "1", "--max-steps", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    server.stop();
    let r = report(&out);
    let s = &r["search"];
    assert_eq!(s["limited_by"], "generator", "{}", show(&o));
    // Not a pass: the search backs off below it.
    assert_eq!(rates(s), [200.0, 100.0]);
    assert_eq!(s["steps"][0]["verdict"], "generator_limited");
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("the generator, not the target, is the limit"));
}
