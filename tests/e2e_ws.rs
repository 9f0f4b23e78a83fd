//! SIP over WebSocket (RFC 7118) end to end on loopback, both backends:
//! `run --transport ws|wss` against `serve --listen ws:/wss:` (digest
//! registrations and calls in every connection mode, the report's
//! transport fields and `ws_upgrade_ms` against the schema), the headers a
//! browser writes (checked by a WebSocket server in this test, built on
//! tungstenite's protocol layer over a plain socket), a server that does not
//! agree on `sip` (said once, counted), and bad WebSocket peers on serve's
//! port (an Upgrade without `sip`, an oversized frame, a message in too
//! many fragments or past the bound, a client that never masks, abrupt
//! closes): each counted by serve, none crashing it or growing it.

mod e2e_common;
#[path = "report_support.rs"]
mod report_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use e2e_common::{Server, cert_files, num, report, run_args, show, stream_backends, tmpdir};
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Message, Utf8Bytes};

#[test]
fn calls_and_registrations_over_ws_and_wss() {
    for backend in stream_backends() {
        let dir = tmpdir("ws");
        let (cert, key) = cert_files(&dir);
        let server = Server::start_on(
            backend,
            2,
            &["ws:127.0.0.1:0", "wss:127.0.0.1:0"],
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        let ws = server.stream("ws");
        let wss = server.stream("wss");
        let ca = cert.to_str().unwrap();
        // (case, args, attempts, connections opened, TLS handshakes)
        type Case<'a> = (&'a str, Vec<&'a str>, u64, u64, u64);
        let cases: Vec<Case<'_>> = vec![
            (
                "ws call, one shared connection per worker",
                vec!["--target", &ws, "--transport", "ws", "--scenario", "call"],
                200,
                2,
                0,
            ),
            (
                "ws register, a pool of 3, path and origin",
                vec![
                    "--target",
                    &ws,
                    "--transport",
                    "ws",
                    "--scenario",
                    "register",
                    "--connections",
                    "3",
                    "--ws-path",
                    "/sip",
                    "--ws-origin",
                    "https://phone.example",
                ],
                200,
                6,
                0,
            ),
            (
                "wss call per user",
                vec![
                    "--target",
                    &wss,
                    "--transport",
                    "wss",
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
                20,
                20,
            ),
            (
                "wss register, one connection per attempt",
                vec![
                    "--target",
                    &wss,
                    "--transport",
                    "wss",
                    "--tls-ca",
                    ca,
                    "--scenario",
                    "register",
                    "--connection-mode",
                    "call",
                ],
                200,
                200,
                200,
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
            assert_eq!(num(&r, "/transport/connections_opened"), opened, "{tag}");
            assert_eq!(num(&r, "/transport/ws_upgrades"), opened, "{tag}");
            assert_eq!(num(&r, "/transport/ws_upgrade_ms/count"), opened, "{tag}");
            assert_eq!(num(&r, "/transport/connect_ms/count"), opened, "{tag}");
            assert_eq!(num(&r, "/transport/tls_handshakes"), handshakes, "{tag}");
            assert_eq!(num(&r, "/transport/connections_failed"), 0, "{tag}");
            assert_eq!(r["transport"]["ws_errors"], serde_json::json!({}), "{tag}");
            assert_eq!(r["config"]["transport"], args[3], "{tag}");
            let want_path = if case.contains("path") { "/sip" } else { "/" };
            assert_eq!(r["config"]["ws"]["path"], want_path, "{tag}");
            if scen == "register" {
                // The digest challenge was met on every attempt.
                assert!(
                    r["responses"]["401"].as_u64().unwrap_or(0) >= count,
                    "{tag}: {}",
                    r["responses"]
                );
            }
            let summary = String::from_utf8_lossy(&o.stdout);
            assert!(summary.contains("WebSocket  upgrades"), "{tag}");
        }
        let said = server.stop_log();
        assert!(said.contains("ws upgrades"), "{said}");
    }
}

/// The embedded target speaks the run's transport, WSS included (its
/// self-signed certificate trusted in-process).
#[test]
fn embedded_target_over_ws_and_wss() {
    for t in ["ws", "wss"] {
        let out = tmpdir("ws-embedded");
        let o = run_args(
            &out,
            &[
                "--transport",
                t,
                "--count",
                "100",
                "--rate",
                "500",
                "--workers",
                "1",
            ],
        );
        assert!(o.status.success(), "{t}: {}", show(&o));
        let r = report(&out);
        assert_eq!(num(&r, "/totals/call/completed"), 100, "{t}");
        assert_eq!(num(&r, "/transport/ws_upgrades"), 1, "{t}");
        let tls = u64::from(t == "wss");
        assert_eq!(num(&r, "/transport/tls_handshakes"), tls, "{t}");
    }
}

/// Read an HTTP head (up to the blank line) off `s`.
fn read_head(s: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if s.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    lines
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What [`one_connection_server`] saw: the Upgrade's head, the requests.
type Seen = (Vec<String>, Vec<String>);

/// A WebSocket SIP server of this test on one connection: answers the
/// Upgrade (with `Sec-WebSocket-Protocol: sip` when `agree`), then answers
/// every SIP request with 200 OK, and hands back the Upgrade's head and
/// the requests it got.
fn one_connection_server(agree: bool) -> (String, std::thread::JoinHandle<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let head = read_head(&mut r);
        let key = header(&head, "Sec-WebSocket-Key").unwrap_or("").to_string();
        let accept = sipstorm::transport::ws::accept_key(key.as_bytes());
        let proto = if agree {
            "Sec-WebSocket-Protocol: sip\r\n"
        } else {
            ""
        };
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{proto}\r\n"
        )
        .unwrap();
        let mut requests = Vec::new();
        if !agree {
            // The client must fail the connection: nothing more arrives.
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            return (head, requests);
        }
        let mut ws = WebSocket::from_raw_socket(s, Role::Server, None);
        while let Ok(m) = ws.read() {
            let text = match m {
                Message::Text(t) => t.to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => break,
                _ => continue,
            };
            let lines: Vec<&str> = text.split("\r\n").collect();
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "To", "Call-ID", "CSeq", "Contact"] {
                for l in &lines[1..] {
                    if l.split(':')
                        .next()
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
                    {
                        resp.push_str(l);
                        if name == "To" {
                            resp.push_str(";tag=ws1");
                        }
                        resp.push_str("\r\n");
                    }
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            requests.push(text);
            if ws.send(Message::Text(Utf8Bytes::from(resp))).is_err() {
                break;
            }
        }
        (head, requests)
    });
    (addr, h)
}

/// What a browser's SIP client writes (RFC 7118 §5.2, §8.1): the Upgrade
/// offers `sip` on the path and with the origin asked for; Via is
/// `SIP/2.0/WS` with a random `.invalid` host and no port; Contact is a
/// `sip:` URI at that host with `;transport=ws`.
#[test]
fn via_and_contact_as_browsers_write_them() {
    let (addr, h) = one_connection_server(true);
    let out = tmpdir("ws-headers");
    let o = run_args(
        &out,
        &[
            "--target",
            &addr,
            "--transport",
            "ws",
            "--ws-path",
            "/ws?client=load",
            "--ws-origin",
            "https://phone.example",
            "--scenario",
            "register",
            "--count",
            "3",
            "--rate",
            "50",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let (head, requests) = h.join().unwrap();
    assert_eq!(head[0], "GET /ws?client=load HTTP/1.1", "{head:?}");
    assert_eq!(header(&head, "Host"), Some(addr.as_str()), "{head:?}");
    assert_eq!(
        header(&head, "Sec-WebSocket-Protocol"),
        Some("sip"),
        "{head:?}"
    );
    assert_eq!(
        header(&head, "Sec-WebSocket-Version"),
        Some("13"),
        "{head:?}"
    );
    assert_eq!(
        header(&head, "Origin"),
        Some("https://phone.example"),
        "{head:?}"
    );
    assert_eq!(requests.len(), 3, "{requests:?}");
    for req in &requests {
        let lines: Vec<&str> = req.split("\r\n").collect();
        assert!(lines[0].starts_with("REGISTER sip:"), "{req}");
        let via = lines
            .iter()
            .find_map(|l| l.strip_prefix("Via: "))
            .unwrap_or_else(|| panic!("no Via: {req}"));
        let sent_by = via
            .strip_prefix("SIP/2.0/WS ")
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| panic!("{via}"));
        let host = sent_by.strip_suffix(".invalid").unwrap_or("");
        assert!(
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric()),
            "Via sent-by {sent_by}"
        );
        assert!(via.contains(";rport"), "{via}");
        let contact = lines
            .iter()
            .find_map(|l| l.strip_prefix("Contact: "))
            .unwrap_or_else(|| panic!("no Contact: {req}"));
        assert!(
            contact.starts_with("<sip:") && contact.contains(&format!("@{sent_by};transport=ws>")),
            "{contact}"
        );
    }
    let r = report(&out);
    assert_eq!(num(&r, "/totals/register/succeeded"), 3);
    assert_eq!(num(&r, "/transport/ws_upgrades"), 1);
}

/// A server whose 101 does not name `sip`: the client fails every
/// connection (RFC 7118 §4.1), says why once, counts each, exit code 1.
#[test]
fn a_server_without_sip_is_said_once_and_counted() {
    let (addr, h) = one_connection_server(false);
    let out = tmpdir("ws-nosip");
    let o = run_args(
        &out,
        &[
            "--target",
            &addr,
            "--transport",
            "ws",
            "--scenario",
            "register",
            "--count",
            "5",
            "--rate",
            "50",
            "--workers",
            "1",
        ],
    );
    let tag = show(&o);
    assert_eq!(o.status.code(), Some(1), "{tag}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("WebSocket upgrade with").count(), 1, "{tag}");
    let (head, requests) = h.join().unwrap();
    assert!(requests.is_empty(), "{requests:?}");
    assert_eq!(header(&head, "Sec-WebSocket-Protocol"), Some("sip"));
    let r = report(&out);
    report_support::assert_valid(&out.join("report.json"));
    // The listener took one connection; the others were refused.
    assert_eq!(num(&r, "/transport/connect_failures/ws_no_sip"), 1, "{tag}");
    assert_eq!(num(&r, "/totals/register/failed"), 5, "{tag}");
    assert_eq!(num(&r, "/transport/ws_upgrades"), 0, "{tag}");
}

/// Open a WebSocket to `addr` by hand, offering `protocol`; returns the
/// socket and the status line of the answer.
fn upgrade(addr: &str, protocol: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let head = read_head(&mut r);
    (s, head.first().cloned().unwrap_or_default())
}

/// A client frame header: `fin`, `opcode`, payload length `len`, masked
/// with a zero key when `masked` (the payload is then sent as is).
fn frame_head(fin: bool, opcode: u8, len: u64, masked: bool) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        f.push(m | len as u8);
    } else if len <= 0xffff {
        f.push(m | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&len.to_be_bytes());
    }
    if masked {
        f.extend_from_slice(&[0, 0, 0, 0]);
    }
    f
}

/// Wait until the server closes `s` (end of stream or reset).
fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

/// Bad WebSocket peers on serve's ws port, each failed with its reason and
/// counted (serve says the counts when it stops); serve survives them,
/// keeps its memory bounded and still serves a real client.
#[test]
fn bad_websocket_peers_are_counted_and_survived() {
    let server = Server::start_on("epoll", 1, &["ws:127.0.0.1:0"], &[]);
    let ws = server.stream("ws");
    let before = server.rss_kib();
    // An Upgrade without sip: 400 naming the subprotocol it speaks.
    let (s, status) = upgrade(&ws, "chat");
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    drop(s);
    // A frame claiming 1 GiB: failed on its header, nothing buffered.
    let (mut s, status) = upgrade(&ws, "sip");
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    s.write_all(&frame_head(true, 1, 1 << 30, true)).unwrap();
    s.write_all(&[b'x'; 1024]).unwrap();
    assert!(closed_by_server(s));
    // A client that never masks.
    let (mut s, _) = upgrade(&ws, "sip");
    let mut f = frame_head(true, 1, 7, false);
    f.extend_from_slice(b"OPTIONS");
    s.write_all(&f).unwrap();
    assert!(closed_by_server(s));
    // One message in 1,000 one-byte fragments.
    let (mut s, _) = upgrade(&ws, "sip");
    let mut f = frame_head(false, 1, 1, true);
    f.push(b'O');
    for _ in 0..1000 {
        f.extend(frame_head(false, 0, 1, true));
        f.push(b'P');
    }
    let _ = s.write_all(&f);
    assert!(closed_by_server(s));
    // A fragmented message past the bound, in frames within it.
    let (mut s, _) = upgrade(&ws, "sip");
    let part = vec![b'a'; 40_000];
    let mut f = frame_head(false, 1, part.len() as u64, true);
    f.extend_from_slice(&part);
    f.extend(frame_head(true, 0, part.len() as u64, true));
    f.extend_from_slice(&part);
    let _ = s.write_all(&f);
    assert!(closed_by_server(s));
    // Abrupt closes: gone after the Upgrade, and mid-frame.
    let (s, _) = upgrade(&ws, "sip");
    drop(s);
    let (mut s, _) = upgrade(&ws, "sip");
    s.write_all(&frame_head(true, 1, 100, true)).unwrap();
    s.write_all(b"REGISTER sip:").unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "serve grew {grown} KiB");
    // Still serving.
    let out = tmpdir("ws-bad-peers");
    let o = run_args(
        &out,
        &[
            "--target",
            &ws,
            "--transport",
            "ws",
            "--scenario",
            "register",
            "--count",
            "20",
            "--rate",
            "200",
            "--workers",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let said = server.stop_log();
    let line = said
        .lines()
        .find(|l| l.contains("connections opened"))
        .unwrap_or_else(|| panic!("{said}"));
    for want in [
        "ws_no_sip 1",
        "frame_too_large 1",
        "masking 1",
        "too_many_fragments 1",
        "message_too_large 1",
        "no_close_frame 2",
    ] {
        assert!(line.contains(want), "{want}: {line}");
    }
}

/// Flags that make no sense together are usage errors naming the flag.
#[test]
fn ws_flag_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--ws-path", "/ws"], "--ws-path"),
        (
            &["--transport", "tcp", "--ws-origin", "https://a"],
            "--ws-origin",
        ),
        (&["--transport", "ws", "--ws-path", "ws"], "--ws-path"),
        (&["--transport", "ws", "--ws-path", "/a b"], "--ws-path"),
        (&["--transport", "ws", "--tls-insecure"], "--tls-insecure"),
        (&["--transport", "ws", "--scenario", "mixed"], "--transport"),
    ];
    for (args, flag) in cases {
        let out = tmpdir("ws-flags");
        let o = run_args(&out, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
