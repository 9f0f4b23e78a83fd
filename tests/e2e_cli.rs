//! Errors a user can make: one clear line naming the flag, exit code 2 for
//! usage and configuration, 3 for fatal runtime problems, never a backtrace.

mod e2e_common;
use e2e_common::*;

fn check(args: &[&str], code: i32, needle: &str) {
    let o = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", show(&o));
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
