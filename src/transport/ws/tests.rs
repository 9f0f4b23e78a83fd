//! The WebSocket layer alone: the Upgrade both ways (table of requests
//! and responses), frames between a client and a server layer, and every
//! kind of bad input with its reason.

use super::*;

/// RFC 6455 §1.3's example key and accept value.
#[test]
fn accept_key_of_the_rfc_example() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:5066\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

#[test]
fn server_answers_upgrades() {
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    // (case, request, accepted, failure, status line)
    let cases: Vec<(&str, String, Option<WsFailure>, &str)> = vec![
        (
            "sip offered",
            request(&format!("{v13}Sec-WebSocket-Protocol: sip\r\n")),
            None,
            "HTTP/1.1 101",
        ),
        (
            "sip among others, any case",
            request(&format!("{v13}Sec-WebSocket-Protocol: msrp, SIP\r\n")),
            None,
            "HTTP/1.1 101",
        ),
        (
            "no subprotocol",
            request(v13),
            Some(WsFailure::NoSip),
            "HTTP/1.1 400",
        ),
        (
            "another subprotocol",
            request(&format!("{v13}Sec-WebSocket-Protocol: xmpp\r\n")),
            Some(WsFailure::NoSip),
            "HTTP/1.1 400",
        ),
        (
            "version 8",
            request("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: sip\r\n"),
            Some(WsFailure::Handshake),
            "HTTP/1.1 426",
        ),
        (
            "POST",
            request(&format!("{v13}Sec-WebSocket-Protocol: sip\r\n")).replacen("GET", "POST", 1),
            Some(WsFailure::Handshake),
            "HTTP/1.1 400",
        ),
        (
            "HTTP/1.0",
            request(&format!("{v13}Sec-WebSocket-Protocol: sip\r\n"))
                .replacen("HTTP/1.1", "HTTP/1.0", 1),
            Some(WsFailure::Handshake),
            "HTTP/1.1 400",
        ),
        (
            "no Upgrade header",
            request(&format!("{v13}Sec-WebSocket-Protocol: sip\r\n")).replacen(
                "Upgrade: websocket\r\n",
                "",
                1,
            ),
            Some(WsFailure::Handshake),
            "HTTP/1.1 400",
        ),
        (
            "short key",
            request(&format!("{v13}Sec-WebSocket-Protocol: sip\r\n")).replacen(KEY, "c2hvcnQ=", 1),
            Some(WsFailure::Handshake),
            "HTTP/1.1 400",
        ),
        (
            "not HTTP",
            "REGISTER sip:x SIP/2.0\r\n\r\n".into(),
            Some(WsFailure::Handshake),
            "HTTP/1.1 400",
        ),
    ];
    for (case, req, failure, status) in cases {
        match (answer_request(req.as_bytes()), failure) {
            (Upgrade::Accept { len, response }, None) => {
                assert_eq!(len, req.len(), "{case}");
                let r = String::from_utf8(response).unwrap();
                assert!(r.starts_with(status), "{case}: {r}");
                assert!(r.contains("Sec-WebSocket-Protocol: sip\r\n"), "{case}");
                assert!(
                    r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                    "{case}"
                );
            }
            (
                Upgrade::Reject {
                    failure: f,
                    response,
                },
                Some(want),
            ) => {
                assert_eq!(f, want, "{case}");
                let r = String::from_utf8(response).unwrap();
                assert!(r.starts_with(status), "{case}: {r}");
                if want == WsFailure::NoSip {
                    assert!(r.contains("Sec-WebSocket-Protocol: sip\r\n"), "{case}");
                }
            }
            (other, want) => panic!("{case}: {other:?}, wanted {want:?}"),
        }
        // Every shorter prefix of a request is incomplete, never a verdict.
        for cut in [0, 1, req.len() / 2, req.len() - 1] {
            if req.starts_with("GET") {
                assert_eq!(
                    answer_request(&req.as_bytes()[..cut]),
                    Upgrade::Partial,
                    "{case} cut {cut}"
                );
            }
        }
    }
}

#[test]
fn client_checks_the_101() {
    let accept = accept_key(KEY.as_bytes());
    let ok = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    );
    type Case = (&'static str, String, Result<Option<usize>, WsFailure>);
    let cases: Vec<Case> = vec![
        ("accepted", ok.clone(), Ok(Some(ok.len()))),
        (
            "accepted, frames behind it",
            format!("{ok}\u{81}\u{0}"),
            Ok(Some(ok.len())),
        ),
        ("partial", ok[..ok.len() - 2].to_string(), Ok(None)),
        (
            "no subprotocol in the 101",
            ok.replacen("Sec-WebSocket-Protocol: sip\r\n", "", 1),
            Err(WsFailure::NoSip),
        ),
        (
            "another subprotocol",
            ok.replacen("protocol: sip", "protocol: chat", 1).replacen(
                "Protocol: sip",
                "Protocol: chat",
                1,
            ),
            Err(WsFailure::NoSip),
        ),
        (
            "wrong accept",
            ok.replacen(&accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1),
            Err(WsFailure::Handshake),
        ),
        (
            "an extension not asked for",
            ok.replacen(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                1,
            ),
            Err(WsFailure::Handshake),
        ),
        (
            "400 (Kamailio without sip)",
            "HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Protocol: sip\r\n\r\n".into(),
            Err(WsFailure::Rejected(400)),
        ),
        (
            "404",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
            Err(WsFailure::Rejected(404)),
        ),
        (
            "not HTTP",
            "SIP/2.0 200 OK\r\n\r\n".into(),
            Err(WsFailure::Handshake),
        ),
    ];
    for (case, resp, want) in cases {
        assert_eq!(check_response(resp.as_bytes(), &accept), want, "{case}");
    }
}

#[test]
fn upgrade_request_carries_path_origin_and_sip() {
    let setup = WsClientSetup {
        path: "/sip/ws?x=1".into(),
        origin: Some("https://phone.example".into()),
        host: None,
    };
    let r = String::from_utf8(upgrade_request(&setup, "sip.example:443", KEY)).unwrap();
    assert!(
        r.starts_with("GET /sip/ws?x=1 HTTP/1.1\r\nHost: sip.example:443\r\n"),
        "{r}"
    );
    for h in [
        "Upgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        "Sec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Protocol: sip\r\n",
        "Origin: https://phone.example\r\n",
    ] {
        assert!(r.contains(h), "{h} missing in {r}");
    }
    // A server layer accepts it.
    assert!(matches!(
        answer_request(r.as_bytes()),
        Upgrade::Accept { .. }
    ));
}

const MAX: usize = 1024;

/// A client and a server layer after a successful Upgrade.
fn pair() -> (Ws, Ws) {
    let mut c = Ws::client(MAX, 4096);
    let mut s = Ws::server(MAX, 4096);
    let req = c.start(Instant::now(), &WsClientSetup::default(), "127.0.0.1:1");
    let (n, resp) = s.handshake(&req).unwrap().unwrap();
    assert_eq!(n, req.len());
    let (m, none) = c.handshake(&resp).unwrap().unwrap();
    assert_eq!((m, none.len()), (resp.len(), 0));
    assert!(c.is_open() && s.is_open());
    (c, s)
}

/// Feed `bytes` to `ws`, collecting messages and what it writes back.
fn feed(ws: &mut Ws, bytes: &[u8]) -> (Result<Fed, WsFailure>, Vec<Vec<u8>>, Vec<u8>) {
    let mut out = Vec::new();
    let mut got = Vec::new();
    let r = ws.feed(bytes, &mut out, |m| got.push(m.to_vec()));
    (r, got, out)
}

/// One frame as a client sends it, masked with `mask` (all zero leaves
/// the payload as it is), or unmasked.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(k) = mask {
        f.extend_from_slice(&k);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

const Z: Option<[u8; 4]> = Some([0; 4]);

#[test]
fn messages_both_ways_masked_from_the_client() {
    let (mut c, mut s) = pair();
    let msg = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    let mut wire = Vec::new();
    c.send(msg, &mut wire).unwrap();
    // One text frame, masked (RFC 6455 §5.3): the payload is not in clear.
    assert_eq!(wire[0], 0x81);
    assert_eq!(wire[1] & 0x80, 0x80);
    assert!(!wire.windows(7).any(|w| w == b"OPTIONS"));
    let (r, got, _) = feed(&mut s, &wire);
    assert_eq!(r, Ok(Fed::default()));
    assert_eq!(got, vec![msg.to_vec()]);
    // The server's answer is unmasked, and a binary body goes in a binary
    // frame.
    let mut back = Vec::new();
    s.send(b"SIP/2.0 200 OK\r\n\r\n\xff", &mut back).unwrap();
    assert_eq!(back[0], 0x82);
    assert_eq!(back[1] & 0x80, 0);
    let (r, got, _) = feed(&mut c, &back);
    assert!(r.is_ok());
    assert_eq!(got, vec![b"SIP/2.0 200 OK\r\n\r\n\xff".to_vec()]);
    // Byte by byte, the same.
    let mut wire = Vec::new();
    c.send(msg, &mut wire).unwrap();
    let mut got_all = Vec::new();
    for b in &wire {
        let (r, got, _) = feed(&mut s, std::slice::from_ref(b));
        assert!(r.is_ok());
        got_all.extend(got);
    }
    assert_eq!(got_all, vec![msg.to_vec()]);
}

#[test]
fn held_until_the_handshake_then_sent_in_order() {
    let mut c = Ws::client(MAX, 100);
    let mut out = Vec::new();
    c.send(b"first", &mut out).unwrap();
    c.send(b"second", &mut out).unwrap();
    assert!(out.is_empty(), "nothing goes before the 101");
    assert_eq!(
        c.send(&[b'x'; 95], &mut out),
        Err(WsFailure::MessageTooLarge),
        "past the bound of what may wait"
    );
    let mut s = Ws::server(MAX, 100);
    let req = c.start(Instant::now(), &WsClientSetup::default(), "h:1");
    let (_, resp) = s.handshake(&req).unwrap().unwrap();
    c.handshake(&resp).unwrap().unwrap();
    c.release_held(&mut out).unwrap();
    let (r, got, _) = feed(&mut s, &out);
    assert!(r.is_ok());
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn ping_pong_and_the_close_handshake() {
    let (mut c, mut s) = pair();
    // A client's ping is answered with a pong carrying its data.
    let (r, got, out) = feed(&mut s, &frame(true, 0x9, b"hb", Z));
    assert_eq!(r.map(|f| f.pings), Ok(1));
    assert!(got.is_empty());
    assert_eq!(out, [0x8a, 2, b'h', b'b']);
    // The client starts closing; the server answers with its Close and is
    // done; the client is done when that answer comes.
    let mut wire = Vec::new();
    assert!(c.close(&mut wire));
    assert!(!c.close_done());
    let (r, _, reply) = feed(&mut s, &wire);
    assert_eq!(r.map(|f| f.closed), Ok(true));
    assert_eq!(reply[0], 0x88);
    assert!(s.close_done());
    let (r, _, _) = feed(&mut c, &reply);
    assert_eq!(r.map(|f| f.closed), Ok(true));
    assert!(c.close_done());
    // Nothing is sent after a Close.
    assert!(c.send(b"late", &mut Vec::new()).is_err());
}

#[test]
fn bad_frames_fail_with_their_reason() {
    let big = vec![b'a'; MAX + 1];
    let part = vec![b'p'; MAX / 2 + 1];
    let mut many = frame(false, 0x1, b"a", Z);
    for _ in 0..MAX_FRAGMENTS {
        many.extend(frame(false, 0x0, b"", Z));
    }
    let cases: Vec<(&str, Vec<u8>, WsFailure)> = vec![
        (
            "a client that never masks",
            frame(true, 0x1, b"REGISTER", None),
            WsFailure::Masking,
        ),
        (
            "a frame over the bound",
            frame(true, 0x1, &big, Z),
            WsFailure::FrameTooLarge,
        ),
        (
            "only the header of a frame over the bound",
            frame(true, 0x2, &big, Z)[..8].to_vec(),
            WsFailure::FrameTooLarge,
        ),
        (
            "a fragmented message over the bound",
            [frame(false, 0x1, &part, Z), frame(true, 0x0, &part, Z)].concat(),
            WsFailure::MessageTooLarge,
        ),
        ("too many fragments", many, WsFailure::TooManyFragments),
        (
            "a continuation without a start",
            frame(true, 0x0, b"x", Z),
            WsFailure::Protocol,
        ),
        (
            "a fragmented ping",
            frame(false, 0x9, b"x", Z),
            WsFailure::Protocol,
        ),
        (
            "a reserved opcode",
            frame(true, 0x3, b"x", Z),
            WsFailure::Protocol,
        ),
        (
            "text that is not UTF-8",
            frame(true, 0x1, b"\xff\xfe", Z),
            WsFailure::Protocol,
        ),
        (
            "reserved bits",
            {
                let mut f = frame(true, 0x1, b"x", Z);
                f[0] |= 0x40;
                f
            },
            WsFailure::Protocol,
        ),
    ];
    for (case, bytes, want) in cases {
        let (_, mut s) = pair();
        let (r, got, _) = feed(&mut s, &bytes);
        assert_eq!(r, Err(want), "{case}");
        assert!(got.is_empty(), "{case}");
        // Failing sends a Close with the status that says why.
        let mut out = Vec::new();
        s.fail(want, &mut out);
        if let Some(code) = want.close_code() {
            assert_eq!(out[0], 0x88, "{case}");
            let status = u16::from_be_bytes([out[2], out[3]]);
            assert_eq!(status, u16::from(code), "{case}");
        }
    }
    // A server's masked frame fails the client.
    let (mut c, _) = pair();
    let (r, _, _) = feed(&mut c, &frame(true, 0x1, b"x", Z));
    assert_eq!(r, Err(WsFailure::Masking));
}

#[test]
fn fragments_within_the_bounds_are_reassembled() {
    let (_, mut s) = pair();
    let mut wire = frame(false, 0x1, b"INVITE ", Z);
    // A ping may come between fragments (§5.4).
    wire.extend(frame(true, 0x9, b"", Z));
    wire.extend(frame(false, 0x0, b"sip:b ", Z));
    wire.extend(frame(true, 0x0, b"SIP/2.0", Z));
    let (r, got, out) = feed(&mut s, &wire);
    assert_eq!(r.map(|f| f.pings), Ok(1));
    assert_eq!(got, vec![b"INVITE sip:b SIP/2.0".to_vec()]);
    assert_eq!(out, [0x8a, 0]);
}

proptest::proptest! {
    /// Any bytes after a good handshake: no panic, and what is delivered
    /// never exceeds the bound.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
        proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..8)) {
        let (_, mut s) = pair();
        for c in chunks {
            let mut out = Vec::new();
            let r = s.feed(&c, &mut out, |m| assert!(m.len() <= MAX));
            if r.is_err() {
                break;
            }
        }
    }

    /// The scan agrees with a naive oracle on where frames end: frames of
    /// random sizes, split at random points, are all passed over with
    /// nothing left pending.
    #[test]
    fn scan_follows_frame_boundaries(sizes in proptest::collection::vec(0usize..300, 1..6),
        cut in 0usize..2000) {
        let mut wire = Vec::new();
        for n in &sizes {
            wire.extend(frame(true, 0x2, &vec![7u8; *n], Z));
        }
        let cut = cut.min(wire.len());
        let mut scan = Scan::default();
        scan.scan(&wire[..cut], MAX, true).unwrap();
        scan.scan(&wire[cut..], MAX, true).unwrap();
        proptest::prop_assert_eq!((scan.head_len, scan.skip, scan.open), (0, 0, None));
    }
}
