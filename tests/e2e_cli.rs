//! Errors a user can make: one clear line naming the flag, exit code 2 for
//! usage and configuration, 3 for fatal runtime problems, never a backtrace.

mod e2e_common;
use e2e_common::*;

fn check(args: &[&str], code: i32, needle: &str) {
    // In a directory of its own: a usage error must leave nothing behind
    // (no claimed, empty report directory).
    let cwd = tmpdir("cli");
    let o = bin().current_dir(&cwd).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", show(&o));
    if code == 2 {
        let left: Vec<_> = std::fs::read_dir(&cwd)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?} behind");
    }
    let _ = std::fs::remove_dir_all(&cwd);
    assert!(
        err.contains(needle),
        "{args:?}: stderr should mention {needle:?}: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn bad_values_name_the_flag_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--rate", "-5"], "--rate"),
        (&["run", "--rate", "fast"], "--rate"),
        (&["run", "--duration", "soon"], "--duration"),
        (&["run", "--hold", "uniform(5s,1s)"], "--hold"),
        (&["run", "--cancel-ratio", "2"], "--cancel-ratio"),
        (&["run", "--scenario", "dance"], "--scenario"),
        (&["run", "--workers", "0"], "--workers"),
        (&["run", "--target", "localhost"], "--target"),
        (
            &["run", "--target", "no-such-host.invalid:5060"],
            "--target",
        ),
        (&["run", "--backend", "kqueue"], "--backend"),
        (&["run", "--threshold", "nonsense"], "--threshold"),
        (
            &["run", "--profile", "/nonexistent/profile.toml"],
            "profile",
        ),
        (&["run", "--bogus-flag"], "--bogus-flag"),
        (&["serve", "--auth", "maybe"], "--auth"),
        (&["serve", "--listen", "not-an-address"], "--listen"),
        (&["search", "--precision", "2"], "--precision"),
        (&["serve", "--max-rate", "0"], "--max-rate"),
        (&["report", "/nonexistent/dir"], "/nonexistent/dir"),
    ];
    for (args, needle) in cases {
        check(args, 2, needle);
    }
}

#[test]
fn port_in_use_is_exit_3() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    check(&["serve", "--listen", &addr, "--workers", "1"], 3, &addr);
}

#[test]
fn help_and_version_succeed() {
    for args in [&["--help"][..], &["--version"], &["run", "--help"]] {
        let o = bin().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    }
}

#[test]
fn without_io_uring_auto_falls_back_to_epoll_with_one_line() {
    let out = tmpdir("fallback");
    let o = bin()
        .env("SIPSTORM_SIMULATE_NO_URING", "1")
        .args([
            "run",
            "--scenario",
            "options",
            "--rate",
            "200",
            "--count",
            "50",
            "--workers",
            "1",
        ])
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("io_uring unavailable").count(), 1, "{err}");
    assert!(err.contains("epoll"), "{err}");
    // Forcing the unusable backend is a fatal runtime error (exit 3).
    let o = bin()
        .env("SIPSTORM_SIMULATE_NO_URING", "1")
        .args(["run", "--backend", "uring", "--count", "1", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
}

/// Bad reach settings (issue 14): a malformed pattern, header, route,
/// domain, SDP template or users line exits 2 with one line naming the flag
/// (or file:line) and what is wrong, before any socket exists.
#[test]
fn bad_reach_settings_name_the_flag_or_file_line_and_exit_2() {
    let dir = tmpdir("reach-cli");
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let sdp_unknown = file("unknown.sdp", "v=0\nc=IN IP4 {media_ip}\ns={sesion}\n");
    let sdp_unclosed = file("unclosed.sdp", "v=0\nm=audio {media_port RTP/AVP 0\n");
    let users_bad = file(
        "bad.csv",
        "SEQUENTIAL\nu1;p1\nu2;[authentication username=a2 password=p w]\n",
    );
    let users_unclosed = file(
        "unclosed.csv",
        "SEQUENTIAL\nu1;p1\nu2;p2\nu3;[authentication password=\"p3]\n",
    );
    let users_space = file("space.csv", "SEQUENTIAL\nu 1;p1\n");
    let users_short = file("short.csv", "SEQUENTIAL\nu1;p1;t1\nu2;p2\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--callee", "{1000..99}"],
            "--callee: '{1000..99}': bad range",
        ),
        (vec!["--callee", "1{1..2}{3..4}"], "--callee"),
        (
            vec!["--callee", "sip:9999"],
            "--callee: 'sip:9999' is not a SIP user part",
        ),
        (vec!["--callee", "field:two"], "--callee: 'field:two'"),
        (vec!["--caller", "a b"], "--caller"),
        (
            vec!["--header", "X-Test"],
            "--header: 'X-Test' is not 'Name: value'",
        ),
        (
            vec!["--header", "X Test: 1"],
            "--header: 'X Test' is not a header name",
        ),
        (
            vec!["--header", "X-Test: {usr}"],
            "--header: X-Test: unknown placeholder {usr}",
        ),
        (
            vec!["--header", "X-Test: {user"],
            "--header: X-Test: '{' at byte 0",
        ),
        (vec!["--header", "Via: x"], "--header: Via cannot be set"),
        (
            vec!["--header", "X-Tok: {field:2}"],
            "--header: field 2 needs --users",
        ),
        (
            vec!["--route", "sip:proxy.example.test"],
            "--route: 'sip:proxy.example.test' has no ;lr",
        ),
        (vec!["--route", "proxy.example.test;lr"], "--route"),
        (vec!["--domain", "bad domain"], "--domain"),
        (vec!["--from-display", "a\u{7}b"], "--from-display"),
        (
            vec!["--sdp", &sdp_unknown],
            "unknown.sdp:3: unknown placeholder {sesion}",
        ),
        (vec!["--sdp", &sdp_unclosed], "unclosed.sdp:2: '{' at byte"),
        (
            vec!["--sdp", "/nonexistent/offer.sdp"],
            "--sdp: /nonexistent/offer.sdp: cannot read",
        ),
        (vec!["--content-type", "application/sdp"], "--content-type"),
        (
            vec!["--local-port", "65535", "--workers", "2"],
            "--local-port",
        ),
        (
            vec!["--users", &users_bad],
            "bad.csv:3: [authentication ...] has a word that is not KEY=VALUE",
        ),
        (
            vec!["--users", &users_unclosed],
            "unclosed.csv:4: field 1 starts with '['",
        ),
        (
            vec!["--users", &users_space],
            "space.csv:2: field 0 \"u 1\" is not a SIP user part",
        ),
        (
            vec!["--users", &users_short, "--callee", "field:2"],
            "--callee: ",
        ),
        (vec!["--scenario", "mixed", "--callee", "9999"], "--callee"),
    ];
    for (args, needle) in &cases {
        let mut all = vec!["run", "--target", "127.0.0.1:9"];
        all.extend(args.iter().copied());
        check(&all, 2, needle);
        if args[0] == "--users" && args.len() == 2 {
            // The file:line is named for serve --users too.
            check(&["serve", "--users", args[1]], 2, needle);
        }
    }
    check(
        &[
            "run",
            "--users",
            &users_short,
            "--callee",
            "field:2",
            "--target",
            "127.0.0.1:9",
        ],
        2,
        "short.csv:3: has 2 fields (0..1), no field 2",
    );
    check(
        &["serve", "--domain", "example.test:5080"],
        2,
        "--domain: 'example.test:5080': a domain served is a host",
    );
    check(&["serve", "--domain", "a b"], 2, "--domain");
}
