//! The stream core alone (framing, bounds, pings) and both loops over
//! real loopback connections (TCP and TLS, keys, release, resumption,
//! refused connects, untrusted certificates, timeouts, garbage, resets).

use super::*;
use crate::transport::conn::ConnLimits;
use crate::transport::tls::{ClientTls, ServerIdentity};
use crate::transport::{
    Backend, IoCounters, SocketOptions, Tick, bind_listener, bind_udp, run_worker_loop,
};
use std::collections::VecDeque;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Newline-framed test messages; CRLFCRLF is a ping, CRLF a pong, a NUL
/// byte unframeable.
fn line_frame(buf: &[u8]) -> Frame {
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::Ping(4);
    }
    if buf.starts_with(b"\r\n") {
        return if buf.len() >= 4 || buf.len() == 2 {
            Frame::Skip(2)
        } else {
            Frame::Partial
        };
    }
    if buf.contains(&0) {
        return Frame::Invalid;
    }
    match memchr::memchr(b'\n', buf) {
        Some(i) => Frame::Message {
            start: 0,
            end: i + 1,
        },
        None => Frame::Partial,
    }
}

/// Records what the stream core tells a worker; echoes what it gets when
/// `echo` is set; sends `script` on its flows when a client.
#[derive(Default)]
struct Probe {
    echo: bool,
    got: Vec<(Flow, Vec<u8>)>,
    out: VecDeque<(Flow, Vec<u8>)>,
    opened: Vec<(Flow, Opened)>,
    closed: Vec<(Flow, CloseReason)>,
    unreachable: Vec<(Flow, i32)>,
    release: VecDeque<Flow>,
    stop: Option<Arc<AtomicBool>>,
    /// Client: the messages to send, in rounds: each round's messages go
    /// out once the previous round is all answered; after a round its
    /// flows are released when `release_rounds`.
    rounds: VecDeque<Vec<(Flow, Vec<u8>)>>,
    release_rounds: bool,
    waiting: usize,
    deadline: Option<Instant>,
    last_io: IoCounters,
}

impl Worker for Probe {
    fn handle(&mut self, _now: Instant, from: Flow, data: &[u8]) {
        self.got.push((from, data.to_vec()));
        if self.echo {
            self.out.push_back((from, data.to_vec()));
        }
        self.waiting = self.waiting.saturating_sub(1);
    }

    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        self.last_io = *io;
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Tick::Stop;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return Tick::Stop;
        }
        if !self.echo && self.waiting == 0 {
            if let Some(round) = self.rounds.pop_front() {
                self.waiting = round.len();
                for (f, m) in round {
                    if self.release_rounds && !self.release.contains(&f) {
                        self.release.push_back(f);
                    }
                    self.out.push_back((f, m));
                }
            } else if self.stop.is_none() && self.release.is_empty() {
                return Tick::Stop;
            }
        }
        Tick::Continue(Some(now + Duration::from_millis(5)))
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        let (f, m) = self.out.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&m);
        Some(f)
    }

    fn unreachable(&mut self, _now: Instant, dest: Flow, errno: i32) {
        self.unreachable.push((dest, errno));
        self.waiting = self.waiting.saturating_sub(1);
    }

    fn closed(&mut self, _now: Instant, flow: Flow, reason: CloseReason) {
        self.closed.push((flow, reason));
        if reason.is_open_failure() {
            self.waiting = self.waiting.saturating_sub(1);
        }
    }

    fn opened(&mut self, _now: Instant, flow: Flow, info: Opened) {
        self.opened.push((flow, info));
    }

    fn frame(&mut self, buf: &[u8]) -> Frame {
        line_frame(buf)
    }

    fn poll_release(&mut self) -> Option<Flow> {
        // Only once the round that used them is answered.
        if self.waiting == 0 && self.out.is_empty() {
            self.release.pop_front()
        } else {
            None
        }
    }
}

/// A connected TCP pair on loopback: (our end as a raw fd, the peer).
fn tcp_pair() -> (RawFd, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    (ours.into_raw_fd(), peer)
}

fn small_limits() -> StreamSetup {
    StreamSetup {
        limits: ConnLimits {
            max_conns: 16,
            read_buf: 256,
            write_queue: 1024,
        },
        enabled: true,
        ..StreamSetup::new()
    }
}

#[test]
fn framing_bounds_and_pings() {
    // (case, reads as they arrive, messages handed over, close reason,
    // pongs queued)
    type Case = (
        &'static str,
        &'static [&'static [u8]],
        &'static [&'static [u8]],
        Option<CloseReason>,
        usize,
    );
    const B600: &[u8] = &[b'y'; 600];
    const B150: &[u8] = &[b'x'; 150];
    let cases: Vec<Case> = vec![
        ("one whole message", &[b"hello\n"], &[b"hello\n"], None, 0),
        (
            "two in one read",
            &[b"one\ntwo\n"],
            &[b"one\n", b"two\n"],
            None,
            0,
        ),
        (
            "split over three reads",
            &[b"sp", b"li", b"t\n"],
            &[b"split\n"],
            None,
            0,
        ),
        (
            "a message and the start of the next",
            &[b"a\nb", b"c\n"],
            &[b"a\n", b"bc\n"],
            None,
            0,
        ),
        (
            "ping between messages",
            &[b"a\n\r\n\r\nb\n"],
            &[b"a\n", b"b\n"],
            None,
            1,
        ),
        ("pong dropped", &[b"\r\nz\n"], &[b"z\n"], None, 0),
        (
            "unframeable bytes close",
            &[b"bad\0 bytes\n"],
            &[],
            Some(CloseReason::Malformed),
            0,
        ),
        (
            "past the read bound closes",
            &[B150, B150],
            &[],
            Some(CloseReason::ReadOverflow),
            0,
        ),
        (
            "a read larger than the bound is framed piece by piece",
            &[b"m1\nm2\n", B600, b"\n"],
            &[b"m1\n", b"m2\n"],
            Some(CloseReason::ReadOverflow),
            0,
        ),
    ];
    for (case, reads, want, reason, pongs) in cases {
        let mut s = Streams::new(small_limits());
        let mut w = Probe::default();
        let now = Instant::now();
        let (fd, _peer) = tcp_pair();
        s.accepted(now, TransportKind::Tcp, fd, Some(&mut w));
        let id = s.table.iter().next().unwrap().id();
        assert_eq!(w.opened.len(), 1, "{case}");
        assert!(w.opened[0].1.inbound, "{case}");
        s.take_todo();
        for r in reads {
            s.on_data(now, id, r, Some(&mut w));
        }
        let got: Vec<&[u8]> = w.got.iter().map(|(_, m)| &m[..]).collect();
        assert_eq!(got, want.to_vec(), "{case}");
        assert_eq!(w.closed.first().map(|c| c.1), reason, "{case}");
        if reason.is_none() {
            let c = s.table.get(id).unwrap();
            assert_eq!(c.write.queued(), 2 * pongs, "{case}: pongs");
        }
        for (f, _) in &w.got {
            assert_eq!(*f, Flow::new(TransportKind::Tcp, f.peer, id), "{case}");
        }
    }
}

/// A server worker of `kinds` listeners (echo) on its own thread; returns
/// the listener addresses, its stop flag and its join handle.
#[allow(clippy::type_complexity)]
fn echo_server(
    backend: Backend,
    kinds: &[TransportKind],
    setup: StreamSetup,
) -> (
    Vec<SocketAddr>,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Probe>,
) {
    let listeners: Vec<Listener> = kinds
        .iter()
        .map(|&k| bind_listener(k, "127.0.0.1:0".parse().unwrap(), false).unwrap())
        .collect();
    let addrs = listeners
        .iter()
        .map(|l| l.socket.local_addr().unwrap())
        .collect();
    let udp = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut w = Probe {
            echo: true,
            stop: Some(s2),
            ..Probe::default()
        };
        run_worker_loop(backend, &udp, &listeners, &setup, &mut w).unwrap();
        w
    });
    (addrs, stop, h)
}

fn run_client(backend: Backend, setup: &StreamSetup, mut w: Probe) -> Probe {
    let udp = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    w.deadline = Some(Instant::now() + Duration::from_secs(10));
    run_worker_loop(backend, &udp, &[], setup, &mut w).unwrap();
    w
}

fn backends() -> Vec<Backend> {
    [Backend::Epoll, Backend::Uring]
        .into_iter()
        .filter(|b| b.resolve().is_ok())
        .collect()
}

fn tls_pair() -> (StreamSetup, StreamSetup) {
    let id = ServerIdentity::self_signed(&[]).unwrap();
    let server = StreamSetup {
        server_tls: Some(id.server_config().unwrap()),
        handshake_timeout: Duration::from_millis(300),
        ..StreamSetup::new()
    };
    let client_cfg = ClientTls {
        ca: id.chain.clone(),
        resume: true,
        ..ClientTls::default()
    };
    let client = StreamSetup {
        client_tls: Some((client_cfg.build().unwrap(), None)),
        enabled: true,
        ..StreamSetup::new()
    };
    (server, client)
}

/// Rounds of `per_key` messages on each of `keys`, `rounds` times with new
/// keys each round.
fn script(kind: TransportKind, to: SocketAddr, rounds: u32, keys: u32, per_key: u32) -> Probe {
    let mut r = VecDeque::new();
    for round in 0..rounds {
        let mut msgs = Vec::new();
        for k in 0..keys {
            let f = Flow::new(kind, to, ConnId::key(round * keys + k));
            for i in 0..per_key {
                msgs.push((f, format!("r{round} k{k} m{i}\n").into_bytes()));
            }
        }
        r.push_back(msgs);
    }
    Probe {
        rounds: r,
        release_rounds: true,
        ..Probe::default()
    }
}

fn echo_round_trip(backend: Backend, kind: TransportKind) {
    let (server_setup, client_setup) = if kind.is_secure() {
        tls_pair()
    } else {
        (
            StreamSetup::new(),
            StreamSetup {
                enabled: true,
                ..StreamSetup::new()
            },
        )
    };
    let (addrs, stop, h) = echo_server(backend, &[kind], server_setup);
    let w = run_client(backend, &client_setup, script(kind, addrs[0], 3, 4, 25));
    // Let the server see the closes.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let server = h.join().unwrap();
    let tag = format!("{backend} {kind}");
    assert_eq!(w.got.len(), 300, "{tag}: {:?}", w.closed);
    assert!(w.unreachable.is_empty(), "{tag}: {:?}", w.unreachable);
    // One connection per key, each opened once, answered on itself.
    assert_eq!(w.opened.len(), 12, "{tag}");
    for (f, info) in &w.opened {
        assert!(f.conn.is_key() && !info.inbound, "{tag}");
        assert!(info.connect.is_some(), "{tag}");
        assert_eq!(info.tls_handshake.is_some(), kind.is_secure(), "{tag}");
        // WebSocket: the Upgrade's round trip is measured.
        assert_eq!(info.ws_upgrade.is_some(), is_ws(kind), "{tag}");
    }
    assert_eq!(server.opened.len(), 12, "{tag}");
    assert!(server.opened.iter().all(|(_, i)| i.inbound), "{tag}");
    // Answers come back on the connection the message went out on
    // (its id, not its key).
    assert!(
        w.got
            .iter()
            .all(|(f, _)| !f.conn.is_key() && !f.conn.is_any()),
        "{tag}"
    );
    // Released connections closed here; the server saw each end.
    let peer_closes = server
        .closed
        .iter()
        .filter(|(_, r)| *r == CloseReason::Peer)
        .count();
    assert_eq!(peer_closes, 12, "{tag}: {:?}", server.closed);
    if kind.is_secure() {
        // Later rounds resume the sessions of earlier ones.
        let resumed = w.opened.iter().filter(|(_, i)| i.resumed).count();
        assert!(resumed >= 4, "{tag}: {resumed} resumed");
    }
}

#[test]
fn tcp_echo_both_backends() {
    for b in backends() {
        echo_round_trip(b, TransportKind::Tcp);
    }
}

#[test]
fn tls_echo_both_backends() {
    for b in backends() {
        echo_round_trip(b, TransportKind::Tls);
    }
}

#[test]
fn ws_echo_both_backends() {
    for b in backends() {
        echo_round_trip(b, TransportKind::Ws);
    }
}

#[test]
fn wss_echo_both_backends() {
    for b in backends() {
        echo_round_trip(b, TransportKind::Wss);
    }
}

#[test]
fn refused_connect_then_backoff() {
    for backend in backends() {
        // A port nothing listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut w = script(TransportKind::Tcp, closed, 2, 1, 1);
        w.release_rounds = false;
        let setup = StreamSetup {
            enabled: true,
            ..StreamSetup::new()
        };
        let w = run_client(backend, &setup, w);
        assert_eq!(
            w.closed.first().map(|c| c.1),
            Some(CloseReason::ConnectFailed(libc::ECONNREFUSED)),
            "{backend}"
        );
        // The second round's message meets the backoff: refused at once.
        assert_eq!(
            w.unreachable.first().map(|u| u.1),
            Some(libc::ECONNREFUSED),
            "{backend}: {:?}",
            w.unreachable
        );
    }
}

/// A send that overflows the write queue shuts the connection where no
/// worker is at hand; the close must still reach the worker (counted as
/// closed, its transactions failed), not only the refused send. Before the
/// fix the worker heard `unreachable` and never `closed`: a run counted 4
/// transport errors and 5 connections opened but 0 closed.
#[test]
fn write_overflow_is_reported_closed() {
    for backend in backends() {
        // Accepts (the backlog) but never reads or answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let f = Flow::new(TransportKind::Tcp, to, ConnId::key(1));
        // 3 × 400 bytes in one turn: past small_limits()' 1,024-byte queue.
        let round: Vec<_> = (0..3)
            .map(|i| (f, format!("{i:0>399}\n").into_bytes()))
            .collect();
        let mut w = Probe {
            rounds: VecDeque::from([round]),
            ..Probe::default()
        };
        w.deadline = Some(Instant::now() + Duration::from_millis(500));
        let udp = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
        run_worker_loop(backend, &udp, &[], &small_limits(), &mut w).unwrap();
        assert_eq!(
            w.unreachable.iter().map(|u| (u.0, u.1)).collect::<Vec<_>>(),
            vec![(f, libc::ENOBUFS)],
            "{backend}"
        );
        assert_eq!(
            w.closed,
            vec![(f, CloseReason::WriteOverflow)],
            "{backend}: the overflowed connection is reported closed once"
        );
        drop(l);
    }
}

#[test]
fn untrusted_certificate_fails_the_handshake() {
    for backend in backends() {
        let (server_setup, _) = tls_pair();
        let (addrs, stop, h) = echo_server(backend, &[TransportKind::Tls], server_setup);
        // Trusts another CA.
        let other = ServerIdentity::self_signed(&[]).unwrap();
        let client = StreamSetup {
            client_tls: Some((
                ClientTls {
                    ca: other.chain,
                    ..ClientTls::default()
                }
                .build()
                .unwrap(),
                None,
            )),
            enabled: true,
            ..StreamSetup::new()
        };
        let mut w = script(TransportKind::Tls, addrs[0], 1, 1, 1);
        w.release_rounds = false;
        w.deadline = None;
        let udp = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
        w.deadline = Some(Instant::now() + Duration::from_secs(3));
        w.stop = None;
        // It ends when the closed connection fails its one message.
        run_worker_loop(backend, &udp, &[], &client, &mut w).unwrap();
        stop.store(true, Ordering::Relaxed);
        let server = h.join().unwrap();
        // Both certificates name the same issuer, so webpki finds the
        // other one's and its signature does not verify.
        let reason = w.closed.first().map(|c| c.1);
        assert!(
            matches!(
                reason,
                Some(CloseReason::HandshakeFailed(TlsFailure::Certificate(4 | 5)))
            ),
            "{backend}: {:?}",
            w.closed
        );
        assert_eq!(TlsFailure::certificate_name(4), "UnknownIssuer");
        // The server heard the client's alert.
        assert!(
            server.closed.iter().any(|(_, r)| matches!(
                r,
                CloseReason::HandshakeFailed(TlsFailure::AlertReceived(_))
            )),
            "{backend}: {:?}",
            server.closed
        );
    }
}

/// Garbage on a TLS port, a client that never handshakes, half a message
/// then a reset, a half-close: the server closes each with its reason and
/// still serves a good client afterwards.
#[test]
fn bad_peers_on_a_tls_port() {
    for backend in backends() {
        let (server_setup, client_setup) = tls_pair();
        let (addrs, stop, h) = echo_server(
            backend,
            &[TransportKind::Tls, TransportKind::Tcp],
            server_setup,
        );
        let (tls_addr, tcp_addr) = (addrs[0], addrs[1]);
        let mut garbage = std::net::TcpStream::connect(tls_addr).unwrap();
        garbage.write_all(&[0x55; 512]).unwrap();
        let _silent = std::net::TcpStream::connect(tls_addr).unwrap();
        let mut half = std::net::TcpStream::connect(tcp_addr).unwrap();
        half.write_all(b"half a mess").unwrap();
        half.shutdown(std::net::Shutdown::Write).unwrap();
        let reset = std::net::TcpStream::connect(tcp_addr).unwrap();
        (&reset).write_all(b"cut in the mid").unwrap();
        // SO_LINGER 0: close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `linger` is valid for the call; the socket is open.
        unsafe {
            libc::setsockopt(
                reset.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(reset);
        // Past the handshake timeout (300 ms).
        std::thread::sleep(Duration::from_millis(600));
        let w = run_client(
            backend,
            &client_setup,
            script(TransportKind::Tls, tls_addr, 1, 2, 5),
        );
        stop.store(true, Ordering::Relaxed);
        let server = h.join().unwrap();
        assert_eq!(w.got.len(), 10, "{backend}: {:?}", w.closed);
        let reasons: Vec<CloseReason> = server.closed.iter().map(|c| c.1).collect();
        let has = |r: CloseReason| reasons.contains(&r);
        assert!(
            has(CloseReason::HandshakeFailed(TlsFailure::Protocol)),
            "{backend}: {reasons:?}"
        );
        assert!(
            has(CloseReason::ConnectFailed(libc::ETIMEDOUT)),
            "{backend}: {reasons:?}"
        );
        assert!(has(CloseReason::Peer), "{backend}: {reasons:?}");
        assert!(
            has(CloseReason::Error(libc::ECONNRESET)),
            "{backend}: {reasons:?}"
        );
        // Nothing of the bad peers reached the worker as a message.
        assert!(
            server
                .got
                .iter()
                .all(|(f, _)| f.transport == TransportKind::Tls),
            "{backend}"
        );
        drop(garbage);
    }
}

/// A TLS 1.2-only client (as old SIP phones are) against the server
/// configuration `serve` uses: the handshake completes, messages go both
/// ways, and a later connection resumes the session (RFC 5077 ticket).
#[test]
fn tls12_client_round_trip_and_resumption() {
    for backend in backends() {
        let id = ServerIdentity::self_signed(&[]).unwrap();
        let server = StreamSetup {
            server_tls: Some(id.server_config().unwrap()),
            ..StreamSetup::new()
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(id.chain[0].clone()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = StreamSetup {
            client_tls: Some((Arc::new(cfg), None)),
            enabled: true,
            ..StreamSetup::new()
        };
        let (addrs, stop, h) = echo_server(backend, &[TransportKind::Tls], server);
        let w = run_client(
            backend,
            &client,
            script(TransportKind::Tls, addrs[0], 3, 1, 5),
        );
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert_eq!(w.got.len(), 15, "{backend}: {:?}", w.closed);
        assert_eq!(w.opened.len(), 3, "{backend}");
        let resumed = w.opened.iter().filter(|(_, i)| i.resumed).count();
        assert!(resumed >= 1, "{backend}: TLS 1.2 sessions did not resume");
    }
}

/// A raw client of a `ws` listener: its Upgrade (offering `protocol`)
/// and the server's answer, read up to the end of the head.
fn raw_upgrade(addr: SocketAddr, protocol: Option<&str>) -> (std::net::TcpStream, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let proto = protocol.map_or(String::new(), |p| {
        format!("Sec-WebSocket-Protocol: {p}\r\n")
    });
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// A client frame, masked with zeros unless `masked` is false.
fn ws_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    let m = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        f.extend_from_slice(&[0; 4]);
    }
    f.extend_from_slice(payload);
    f
}

/// Every kind of bad WebSocket peer: each is closed with its own reason,
/// nothing of them reaches the worker, pings are answered, and a good
/// client is still served afterwards.
#[test]
fn bad_peers_on_a_ws_port() {
    use std::io::Read;
    for backend in backends() {
        let setup = StreamSetup {
            handshake_timeout: Duration::from_millis(300),
            limits: ConnLimits {
                read_buf: 4096,
                ..ConnLimits::default()
            },
            ..StreamSetup::new()
        };
        let (addrs, stop, h) = echo_server(backend, &[TransportKind::Ws], setup);
        let addr = addrs[0];
        // No `sip` offered: 400 naming the subprotocol it speaks.
        let (_no_sip, head) = raw_upgrade(addr, Some("chat"));
        assert!(head.starts_with("HTTP/1.1 400"), "{backend}: {head}");
        assert!(
            head.contains("Sec-WebSocket-Protocol: sip"),
            "{backend}: {head}"
        );
        let (_none, head) = raw_upgrade(addr, None);
        assert!(head.starts_with("HTTP/1.1 400"), "{backend}: {head}");
        // Upgraded, then each sends one bad thing.
        let bad: Vec<Vec<u8>> = vec![
            ws_frame(true, 0x1, b"OPTIONS sip:x SIP/2.0\r\n\r\n", false),
            ws_frame(true, 0x2, &[b'z'; 5000], true),
            {
                let mut v = ws_frame(false, 0x1, &[b'a'; 3000], true);
                v.extend(ws_frame(true, 0x0, &[b'b'; 3000], true));
                v
            },
            {
                let mut v = ws_frame(false, 0x1, b"a", true);
                for _ in 0..200 {
                    v.extend(ws_frame(false, 0x0, b"", true));
                }
                v
            },
            ws_frame(true, 0x1, b"\xff\xfe", true),
        ];
        let mut keep = Vec::new();
        for frame in &bad {
            let (mut s, head) = raw_upgrade(addr, Some("sip"));
            assert!(head.starts_with("HTTP/1.1 101"), "{backend}: {head}");
            s.write_all(frame).unwrap();
            // The server fails it with a Close saying why, then closes.
            let mut back = Vec::new();
            let _ = s.read_to_end(&mut back);
            assert_eq!(back.first(), Some(&0x88), "{backend}: {back:?}");
            keep.push(s);
        }
        // A ping is answered; then the client leaves without a Close.
        let (mut pinger, _) = raw_upgrade(addr, Some("sip"));
        pinger.write_all(&ws_frame(true, 0x9, b"hb", true)).unwrap();
        let mut pong = [0u8; 4];
        pinger.read_exact(&mut pong).unwrap();
        assert_eq!(pong, [0x8a, 2, b'h', b'b'], "{backend}");
        drop(pinger);
        // One that never upgrades, past the handshake timeout.
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        // A good client still gets its echo.
        let w = run_client(
            backend,
            &StreamSetup {
                enabled: true,
                ..StreamSetup::new()
            },
            script(TransportKind::Ws, addr, 1, 2, 3),
        );
        assert_eq!(w.got.len(), 6, "{backend}: {:?}", w.closed);
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let server = h.join().unwrap();
        let reasons: Vec<CloseReason> = server.closed.iter().map(|c| c.1).collect();
        let count = |r: CloseReason| reasons.iter().filter(|&&x| x == r).count();
        for (r, n) in [
            (CloseReason::UpgradeFailed(WsFailure::NoSip), 2),
            (CloseReason::Ws(WsFailure::Masking), 1),
            (CloseReason::Ws(WsFailure::FrameTooLarge), 1),
            (CloseReason::Ws(WsFailure::MessageTooLarge), 1),
            (CloseReason::Ws(WsFailure::TooManyFragments), 1),
            (CloseReason::Ws(WsFailure::Protocol), 1),
            (CloseReason::Ws(WsFailure::NoCloseFrame), 1),
            (CloseReason::ConnectFailed(libc::ETIMEDOUT), 1),
            (CloseReason::Peer, 2),
        ] {
            assert_eq!(count(r), n, "{backend}: {r:?} in {reasons:?}");
        }
        assert_eq!(server.last_io.ws_pings, 1, "{backend}");
        assert_eq!(server.got.len(), 6, "{backend}: only the good client's");
    }
}

/// A server that answers the Upgrade without `sip`, or refuses it: the
/// client fails the connection with that reason.
#[test]
fn ws_client_fails_without_sip() {
    use std::io::Read;
    let answers = [
        (
            "101 without sip",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n",
            WsFailure::NoSip,
        ),
        (
            "400",
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            WsFailure::Rejected(400),
        ),
        (
            "wrong accept",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
            WsFailure::Handshake,
        ),
    ];
    for backend in backends() {
        for (case, answer, want) in answers {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let key = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or("")
                    .to_string();
                let accept = super::super::ws::accept_key(key.as_bytes());
                s.write_all(answer.replace("{accept}", &accept).as_bytes())
                    .unwrap();
                std::thread::sleep(Duration::from_millis(200));
                text
            });
            let mut w = script(TransportKind::Ws, addr, 1, 1, 1);
            w.release_rounds = false;
            let setup = StreamSetup {
                enabled: true,
                ws: WsClientSetup {
                    path: "/ws".into(),
                    origin: Some("https://example.test".into()),
                    host: Some("sip.example.test".into()),
                },
                ..StreamSetup::new()
            };
            let w = run_client(backend, &setup, w);
            let request = t.join().unwrap();
            assert!(request.starts_with("GET /ws HTTP/1.1\r\n"), "{request}");
            assert!(request.contains("Host: sip.example.test\r\n"), "{request}");
            assert!(
                request.contains("Origin: https://example.test\r\n"),
                "{request}"
            );
            assert!(
                request.contains("Sec-WebSocket-Protocol: sip\r\n"),
                "{request}"
            );
            assert_eq!(
                w.closed.first().map(|c| c.1),
                Some(CloseReason::UpgradeFailed(want)),
                "{backend} {case}: {:?}",
                w.closed
            );
            assert!(CloseReason::UpgradeFailed(want).is_open_failure());
            assert!(w.got.is_empty() && w.opened.is_empty(), "{backend} {case}");
        }
    }
}
