//! Issue 13 from the outside: `serve`'s secrets come from the OS unless
//! `--seed N` asks for a reproducible server, and a `serve` reachable
//! beyond loopback with the well-known default passwords says so once.
//! The servers listen on loopback (or the unspecified address, which only
//! binds); every datagram goes to 127.0.0.1.

mod e2e_common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e_common::{Server, bin, signal};

/// The 401 a fresh server sends to a first REGISTER: its nonce and To-tag.
fn challenge(srv: &Server) -> (String, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The same request bytes for every server (the server answers the
    // source address, whatever the Via says).
    let req = format!(
        "REGISTER sip:{a} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKsecret1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:u000001@{a}>;tag=f1\r\nTo: <sip:u000001@{a}>\r\n\
         Call-ID: secret-test\r\nCSeq: 1 REGISTER\r\nContact: <sip:u000001@127.0.0.1:5099>\r\n\
         Content-Length: 0\r\n\r\n",
        a = "sipstorm.test"
    );
    s.send_to(req.as_bytes(), &srv.addr).unwrap();
    let mut b = [0u8; 4096];
    let (n, _) = s.recv_from(&mut b).expect("a 401");
    let resp = String::from_utf8_lossy(&b[..n]).into_owned();
    assert!(resp.starts_with("SIP/2.0 401"), "{resp}");
    let nonce = resp
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let tag = resp
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap()
        .to_string();
    (nonce, tag)
}

/// Issue 13 item 3: the nonce secret was the constant 0x5eed_5eed and the
/// tags and hash keys derived from 0xC0FFEE, so every `serve` minted the
/// same nonces and tags (anyone could mint valid nonces offline). Now two
/// servers share nothing unless both are given the same `--seed`.
#[test]
fn secrets_come_from_the_os_unless_seeded() {
    // (flags of one server, of the other, whether their first 401s are identical)
    let cases: [(&[&str], &[&str], bool); 3] = [
        (&[], &[], false),
        (&["--seed", "7"], &["--seed", "7"], true),
        (&["--seed", "7"], &["--seed", "8"], false),
    ];
    for (extra, other, same) in cases {
        let a = Server::start("epoll", 1, extra);
        let b = Server::start("epoll", 1, other);
        let (na, ta) = challenge(&a);
        let (nb, tb) = challenge(&b);
        a.stop();
        b.stop();
        // The time stamp, worker and counter (first 28 hex digits) may
        // agree; the MAC differs with the secret.
        assert_eq!(na[28..] == nb[28..], same, "{extra:?}: nonces {na} {nb}");
        assert_eq!(ta == tb, same, "{extra:?}: tags {ta} {tb}");
    }
}

/// Issue 13 item 6: listening beyond loopback with the default password
/// pattern (`pw-{user}`) says once that this is a test target with
/// well-known passwords; `--password-pattern` silences it.
#[test]
fn non_loopback_with_default_passwords_warns_once() {
    // (listen, extra flags, warning expected)
    let cases: [(&str, &[&str], bool); 4] = [
        ("0.0.0.0:0", &[], true),
        ("0.0.0.0:0", &["--password-pattern", "pw-{user}"], false),
        ("0.0.0.0:0", &["--password-pattern", "s3cret-{user}"], false),
        ("127.0.0.1:0", &[], false),
    ];
    for (listen, extra, want) in cases {
        let mut child = bin()
            .args(["serve", "--listen", listen, "--workers", "1", "--quiet"])
            .args(["--backend", "epoll"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Long enough to start and print; then SIGINT ends it.
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(400));
        signal(child.id(), "INT");
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(20));
        assert!(status.success(), "{listen} {extra:?}: {lines:?}");
        let warnings = lines
            .iter()
            .filter(|l| l.contains("passwords anyone can guess"))
            .count();
        assert_eq!(warnings, usize::from(want), "{listen} {extra:?}: {lines:?}");
        if want {
            // It names the flag that silences it, and never a password.
            assert!(lines.iter().any(|l| l.contains("--password-pattern")));
            assert!(!lines.iter().any(|l| l.contains("pw-")), "{lines:?}");
        }
    }
}
