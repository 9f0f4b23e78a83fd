//! `run` against `serve` over TCP and TLS on loopback, both backends:
//! calls and digest registrations, the connection modes, session
//! resumption, an untrusted certificate (said once, counted), the report's
//! transport fields against the schema, and bad peers on the server's
//! ports (garbage on TLS, 10,000 clients that never handshake, half-closed
//! and reset connections) that must neither crash it nor grow it without
//! bound.

mod e2e_common;
#[path = "report_support.rs"]
mod report_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use e2e_common::{Server, cert_files, num, report, run_args, show, stream_backends, tmpdir};

#[test]
fn calls_and_registrations_over_tcp_and_tls() {
    for backend in stream_backends() {
        let dir = tmpdir("stream");
        let (cert, key) = cert_files(&dir);
        let server = Server::start_on(
            backend,
            2,
            &["127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"],
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        let tcp = server.stream("tcp");
        let tls = server.stream("tls");
        let ca = cert.to_str().unwrap();
        // (case, args, attempts, connections opened, TLS handshakes)
        type Case<'a> = (&'a str, Vec<&'a str>, u64, Option<u64>, Option<u64>);
        let cases: Vec<Case<'_>> = vec![
            (
                "tcp call, one shared connection per worker",
                vec!["--target", &tcp, "--transport", "tcp", "--scenario", "call"],
                200,
                Some(2),
                Some(0),
            ),
            (
                "tcp register, a pool of 3",
                vec![
                    "--target",
                    &tcp,
                    "--transport",
                    "tcp",
                    "--scenario",
                    "register",
                    "--connections",
                    "3",
                ],
                200,
                Some(6),
                Some(0),
            ),
            (
                "tls call per user",
                vec![
                    "--target",
                    &tls,
                    "--transport",
                    "tls",
                    "--tls-ca",
                    ca,
                    "--scenario",
                    "call",
                    "--connection-mode",
                    "user",
                    "--user-pattern",
                    "u{000..019}",
                ],
                200,
                Some(20),
                Some(20),
            ),
            (
                "tls register, one connection per attempt",
                vec![
                    "--target",
                    &tls,
                    "--transport",
                    "tls",
                    "--tls-ca",
                    ca,
                    "--scenario",
                    "register",
                    "--connection-mode",
                    "call",
                ],
                200,
                Some(200),
                Some(200),
            ),
            (
                "tls register per attempt, resumed",
                vec![
                    "--target",
                    &tls,
                    "--transport",
                    "tls",
                    "--tls-ca",
                    ca,
                    "--scenario",
                    "register",
                    "--connection-mode",
                    "call",
                    "--tls-resume",
                ],
                200,
                Some(200),
                Some(200),
            ),
        ];
        for (case, args, count, opened, handshakes) in cases {
            let out = dir.join(case.replace([' ', ','], "-"));
            let count_s = count.to_string();
            let mut all = args.clone();
            all.extend(["--rate", "400", "--count", &count_s, "--workers", "2"]);
            all.extend(["--backend", backend]);
            let o = run_args(&out, &all);
            let tag = format!("{backend}: {case}\n{}", show(&o));
            assert!(o.status.success(), "{tag}");
            let r = report(&out);
            report_support::assert_valid(&out.join("report.json"));
            let scen = if case.contains("register") {
                "register"
            } else {
                "call"
            };
            assert_eq!(
                num(&r, &format!("/totals/{scen}/attempted")),
                count,
                "{tag}"
            );
            assert_eq!(num(&r, &format!("/totals/{scen}/failed")), 0, "{tag}");
            assert_eq!(num(&r, "/messages/retransmitted"), 0, "{tag}: reliable");
            if let Some(n) = opened {
                assert_eq!(num(&r, "/transport/connections_opened"), n, "{tag}");
            }
            if let Some(n) = handshakes {
                assert_eq!(num(&r, "/transport/tls_handshakes"), n, "{tag}");
            }
            assert_eq!(num(&r, "/transport/connections_failed"), 0, "{tag}");
            assert!(num(&r, "/transport/connect_ms/count") > 0, "{tag}");
            if case.contains("resumed") {
                assert!(num(&r, "/transport/tls_resumed") > 0, "{tag}");
            } else {
                assert_eq!(num(&r, "/transport/tls_resumed"), 0, "{tag}");
            }
            assert_eq!(r["config"]["transport"], args[3], "{tag}");
            let html = std::fs::read_to_string(out.join("report.html")).unwrap();
            assert!(html.contains("Connections over time"), "{tag}");
        }
        server.stop();
    }
}

/// A server certificate the client does not trust: every handshake fails,
/// the reason is said once, the count is in the report, exit code 1.
#[test]
fn untrusted_certificate_is_said_once_and_counted() {
    let server = Server::start_on("epoll", 1, &["tls:127.0.0.1:0"], &[]);
    let out = tmpdir("stream-untrusted");
    let o = run_args(
        &out,
        &[
            "--target",
            &server.stream("tls"),
            "--transport",
            "tls",
            "--scenario",
            "register",
            "--connection-mode",
            "call",
            "--count",
            "20",
            "--rate",
            "100",
            "--workers",
            "1",
        ],
    );
    let tag = show(&o);
    assert_eq!(o.status.code(), Some(1), "{tag}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.matches("certificate not trusted").count(),
        1,
        "{tag}"
    );
    assert!(stderr.contains("--tls-ca"), "{tag}");
    let r = report(&out);
    assert_eq!(
        num(&r, "/transport/connect_failures/tls_certificate"),
        20,
        "{tag}"
    );
    assert_eq!(num(&r, "/transport/connections_failed"), 20, "{tag}");
    assert_eq!(num(&r, "/totals/register/failed"), 20, "{tag}");
    // --tls-insecure gets through, and the report says so.
    let out = tmpdir("stream-insecure");
    let o = run_args(
        &out,
        &[
            "--target",
            &server.stream("tls"),
            "--transport",
            "tls",
            "--tls-insecure",
            "--scenario",
            "register",
            "--count",
            "20",
            "--rate",
            "100",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("--tls-insecure"), "{warnings}");
    server.stop();
}

/// The embedded target speaks the run's transport (and its self-signed
/// certificate is trusted by the client in-process).
#[test]
fn embedded_target_over_tls() {
    let out = tmpdir("stream-embedded");
    let o = run_args(
        &out,
        &[
            "--transport",
            "tls",
            "--count",
            "100",
            "--rate",
            "500",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    assert_eq!(num(&r, "/totals/call/completed"), 100);
    assert_eq!(num(&r, "/transport/tls_handshakes"), 1);
}

/// Flags that make no sense together are usage errors naming the flag.
#[test]
fn stream_flag_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--tls-ca", "x.pem"], "--tls-ca"),
        (
            &["--transport", "udp", "--connection-mode", "call"],
            "--connection-mode",
        ),
        (
            &[
                "--transport",
                "tcp",
                "--connection-mode",
                "user",
                "--connections",
                "2",
            ],
            "--connections",
        ),
        (
            &["--transport", "tcp", "--connection-mode", "often"],
            "--connection-mode",
        ),
        (
            &["--transport", "tls", "--tls-ca", "/nonexistent.pem"],
            "--tls-ca",
        ),
        (
            &["--transport", "tcp", "--scenario", "mixed"],
            "--transport",
        ),
        (&["--transport", "carrier-pigeon"], "--transport"),
    ];
    for (args, flag) in cases {
        let out = tmpdir("stream-flags");
        let o = run_args(&out, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Bad peers on serve's TLS and TCP ports: garbage, 10,000 connections
/// that never handshake, half a message then a half-close, half a message
/// then a reset. serve survives them all, keeps its memory bounded, and
/// still serves a real client.
#[test]
fn bad_peers_do_not_crash_serve_or_grow_it() {
    let server = Server::start_on("epoll", 1, &["tls:127.0.0.1:0", "tcp:127.0.0.1:0"], &[]);
    let (tls, tcp) = (server.stream("tls"), server.stream("tcp"));
    let before = server.rss_kib();
    let mut garbage = TcpStream::connect(&tls).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0])
        .unwrap();
    garbage.write_all(&[0xAB; 4096]).unwrap();
    let mut half = TcpStream::connect(&tcp).unwrap();
    half.write_all(b"REGISTER sip:x SIP/2.0\r\nContent-Length: 10")
        .unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let mut cut = TcpStream::connect(&tcp).unwrap();
    cut.write_all(b"INVITE sip:y SIP/2.0\r\nVia: SIP/2.0/TCP")
        .unwrap();
    // Gone mid-message (the reset itself is covered by the transport's
    // own tests, which can set SO_LINGER).
    drop(cut);
    // 10,000 clients that connect to the TLS port and say nothing.
    let mut silent = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match TcpStream::connect(&tls) {
            Ok(s) => silent.push(s),
            Err(e) => panic!("connect {} failed: {e}", silent.len()),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = server.rss_kib();
    let grown = during.saturating_sub(before);
    // Silent connections cost a table entry each, no TLS state.
    assert!(
        grown < 64 * 1024,
        "serve grew {grown} KiB with 10,000 idle connections"
    );
    let out = tmpdir("stream-bad-peers");
    let o = run_args(
        &out,
        &[
            "--target",
            &tls,
            "--transport",
            "tls",
            "--tls-insecure",
            "--scenario",
            "register",
            "--count",
            "50",
            "--rate",
            "200",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    drop(silent);
    drop(garbage);
    drop(half);
    // Still alive after they all went away.
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(server.child.id(), id if id > 0));
    let o = run_args(
        &out.join("again"),
        &[
            "--target",
            &tcp,
            "--transport",
            "tcp",
            "--scenario",
            "options",
            "--count",
            "20",
            "--rate",
            "200",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    server.stop();
}
