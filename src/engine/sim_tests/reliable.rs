//! Reliable transports (TCP, TLS, WS, WSS) in virtual time: no request or
//! non-2xx retransmission however late the answer (RFC 3261 §17.1.1.2,
//! §17.1.2.2, §17.2.1), zero-length absorbers (Timers D, I, J, K), Timers
//! B, F, H and L still at 64·T1, the 2xx still retransmitted until its ACK
//! (§13.3.1.4), and a Via naming the transport. Each table also runs over
//! UDP to show what the reliable rows leave out.

use super::*;
use crate::flow::TransportKind::{self, Tcp, Udp};

/// A client over `transport` and the default server.
fn pair_over(
    transport: TransportKind,
    scenario: Scenario,
    sc: ServerConfig,
    net: NetConfig,
) -> Pair {
    let mut cc = ccfg(scenario);
    cc.transport = transport;
    pair(cc, sc, net)
}

/// The top Via of a message, as written.
fn top_via(msg: &[u8]) -> String {
    let m = sip::parse(msg).expect("the engine writes parseable messages");
    String::from_utf8_lossy(m.top_via().expect("every message has a Via").raw).into_owned()
}

/// Answers later than T1 (a round trip of 600 ms) and later than T2 (a
/// round trip of 5 s, or a 200 after a 5 s ring): over TCP the client sends
/// each request once and the server each non-2xx once; only the 2xx of an
/// INVITE goes again while its ACK is on the way (§13.3.1.4), and every
/// such copy is ACKed. Over UDP the same network makes the client
/// retransmit (Timers A and E), except when only the ring is late: the 100
/// Trying stops Timer A.
#[test]
fn reliable_flows_never_retransmit_requests_however_late_the_answer() {
    struct Row {
        scenario: Scenario,
        latency_ms: u64,
        ring_ms: u64,
        /// Requests the client sends over TCP: (start line prefix, count).
        sends: &'static [(&'static str, usize)],
        /// 2xx retransmissions of the server over TCP: T1, 2·T1, 4·T1 …
        /// after the 200 until the ACK is in.
        ok_copies: u64,
        /// Whether the client retransmits over UDP.
        udp_retransmits: bool,
    }
    let rows = [
        Row {
            scenario: Scenario::Register,
            latency_ms: 300,
            ring_ms: 0,
            sends: &[("REGISTER", 2)],
            ok_copies: 0,
            udp_retransmits: true,
        },
        Row {
            scenario: Scenario::Register,
            latency_ms: 2500,
            ring_ms: 0,
            sends: &[("REGISTER", 2)],
            ok_copies: 0,
            udp_retransmits: true,
        },
        Row {
            scenario: Scenario::Options,
            latency_ms: 2500,
            ring_ms: 0,
            sends: &[("OPTIONS", 1)],
            ok_copies: 0,
            udp_retransmits: true,
        },
        // 200 at 0.3 s, again at 0.8 s; the ACK arrives at 0.9 s.
        Row {
            scenario: Scenario::Call,
            latency_ms: 300,
            ring_ms: 0,
            sends: &[("INVITE", 1), ("ACK", 2), ("BYE", 1)],
            ok_copies: 1,
            udp_retransmits: true,
        },
        // 200 at 2.5 s, again at 3, 4 and 6 s; the ACK arrives at 7.5 s.
        Row {
            scenario: Scenario::Call,
            latency_ms: 2500,
            ring_ms: 0,
            sends: &[("INVITE", 1), ("ACK", 4), ("BYE", 1)],
            ok_copies: 3,
            udp_retransmits: true,
        },
        Row {
            scenario: Scenario::Call,
            latency_ms: 5,
            ring_ms: 5000,
            sends: &[("INVITE", 1), ("ACK", 1), ("BYE", 1)],
            ok_copies: 0,
            udp_retransmits: false,
        },
    ];
    for row in &rows {
        for transport in [Tcp, Udp] {
            let mut sc = scfg();
            sc.ring = Delay::Fixed(Duration::from_millis(row.ring_ms));
            let net = NetConfig {
                latency: Duration::from_millis(row.latency_ms),
                ..NetConfig::default()
            };
            let mut p = pair_over(transport, row.scenario, sc, net);
            p.start(1, Duration::ZERO);
            p.run(Duration::from_secs(20));
            let what = format!("{transport} {:?} {} ms", row.scenario, row.latency_ms);
            assert_eq!(p.outcomes(), vec![Outcome::Success], "{what}");
            let client = p.sim.ep(p.c).counters().retransmitted;
            if transport == Tcp {
                let lines = p.lines(C);
                for &(method, n) in row.sends {
                    assert_eq!(count(&lines, method), n, "{what}: {method} in {lines:?}");
                }
                assert_eq!(
                    lines.len(),
                    row.sends.iter().map(|s| s.1).sum::<usize>(),
                    "{what}"
                );
                assert_eq!(client, 0, "{what}");
                assert_eq!(
                    p.sim.ep(p.s).counters().retransmitted,
                    row.ok_copies,
                    "{what}"
                );
            } else {
                assert_eq!(client > 0, row.udp_retransmits, "{what}: {client}");
            }
            p.assert_clean();
        }
    }
}

/// RFC 3261 sets Timers D, I, J and K to zero on reliable transports: the
/// waiting states after a final response leave no absorber record. Over
/// UDP the same flows leave records that live on after the flow ended.
#[test]
fn reliable_flows_keep_no_absorber_records() {
    struct Row {
        scenario: Scenario,
        busy: bool,
        /// Which absorbers UDP leaves (Timer J for the 200s of REGISTER and
        /// of the unregistering REGISTER, or of BYE; Timer D at the client
        /// and Timer I at the server for the ACKed 486).
        udp_client: usize,
        udp_server: usize,
    }
    let rows = [
        Row {
            scenario: Scenario::Register,
            busy: false,
            udp_client: 0,
            udp_server: 2,
        },
        Row {
            scenario: Scenario::Call,
            busy: false,
            udp_client: 0,
            udp_server: 1,
        },
        Row {
            scenario: Scenario::Call,
            busy: true,
            udp_client: 1,
            udp_server: 1,
        },
    ];
    for row in &rows {
        for transport in [Tcp, Udp] {
            let mut sc = scfg();
            sc.busy_ratio = if row.busy { 1.0 } else { 0.0 };
            let mut p = pair_over(transport, row.scenario, sc, NetConfig::default());
            p.start(1, Duration::from_millis(100));
            p.run(Duration::from_secs(2));
            let what = format!("{transport} {:?} busy={}", row.scenario, row.busy);
            let outcome = if row.busy {
                Outcome::Failed(486)
            } else {
                Outcome::Success
            };
            assert_eq!(p.outcomes(), vec![outcome], "{what}");
            let (c, s) = (p.sim.ep(p.c).state_sizes(), p.sim.ep(p.s).state_sizes());
            assert_eq!((c.transactions, s.transactions), (0, 0), "{what}");
            let expect = if transport.is_reliable() {
                (0, 0)
            } else {
                (row.udp_client, row.udp_server)
            };
            assert_eq!((c.absorbers, s.absorbers), expect, "{what}");
            p.assert_clean();
        }
    }
}

/// Timers B (INVITE), F (non-INVITE), H (no ACK for a non-2xx) and L (no
/// ACK for a 2xx) still end their transactions at 64·T1 = 32 s over a
/// reliable flow; only the copies sent on the way differ: one over TCP,
/// Timer A/E/G's over UDP, and the 2xx's on both (§13.3.1.4).
#[test]
fn timers_b_f_h_and_l_fire_at_64_t1_over_reliable_flows() {
    #[derive(Debug, Clone, Copy)]
    enum Silence {
        /// Nothing reaches the server: Timer B or F at the client.
        Server,
        /// The client's ACKs are lost: Timer H or L at the server.
        Acks,
    }
    struct Row {
        scenario: Scenario,
        busy: bool,
        silence: Silence,
        /// The message whose copies are counted, from whom.
        sender: &'static str,
        message: &'static str,
        tcp_copies: usize,
        udp_copies: usize,
    }
    let rows = [
        // A: 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        Row {
            scenario: Scenario::Call,
            busy: false,
            silence: Silence::Server,
            sender: C,
            message: "INVITE",
            tcp_copies: 1,
            udp_copies: 7,
        },
        // E: 0, .5, 1.5, 3.5, 7.5, then every 4 s (T2) up to 32 s.
        Row {
            scenario: Scenario::Register,
            busy: false,
            silence: Silence::Server,
            sender: C,
            message: "REGISTER",
            tcp_copies: 1,
            udp_copies: 11,
        },
        Row {
            scenario: Scenario::Options,
            busy: false,
            silence: Silence::Server,
            sender: C,
            message: "OPTIONS",
            tcp_copies: 1,
            udp_copies: 11,
        },
        // G like E.
        Row {
            scenario: Scenario::Call,
            busy: true,
            silence: Silence::Acks,
            sender: S,
            message: "SIP/2.0 486",
            tcp_copies: 1,
            udp_copies: 11,
        },
        // The 2xx like G, over either transport.
        Row {
            scenario: Scenario::Call,
            busy: false,
            silence: Silence::Acks,
            sender: S,
            message: "SIP/2.0 200",
            tcp_copies: 11,
            udp_copies: 11,
        },
    ];
    for row in &rows {
        for transport in [Tcp, Udp] {
            let mut sc = scfg();
            sc.busy_ratio = if row.busy { 1.0 } else { 0.0 };
            let mut p = pair_over(transport, row.scenario, sc, NetConfig::default());
            let srv = addr(S);
            p.sim.tap = Some(match row.silence {
                Silence::Server => Box::new(move |_, to, _| to == srv),
                Silence::Acks => Box::new(|_, _, d| d.starts_with(b"ACK")),
            });
            // A long hold keeps the answered call from ending by BYE first.
            p.start(1, Duration::from_secs(60));
            let what = format!("{transport} {row:?}", row = (row.scenario, row.silence));
            let fired = |p: &mut Pair| match row.silence {
                Silence::Server => !p.outcomes().is_empty(),
                Silence::Acks => p.sim.ep(p.s).counters().ack_timeouts == 1,
            };
            p.run(Duration::from_millis(31_990));
            assert!(!fired(&mut p), "{what}: before 64·T1");
            p.run(Duration::from_millis(30));
            assert!(fired(&mut p), "{what}: at 64·T1");
            if let Silence::Server = row.silence {
                assert_eq!(p.outcomes(), vec![Outcome::Timeout], "{what}");
                assert_eq!(p.sim.ep(p.c).counters().timeouts, 1, "{what}");
            }
            let copies = if transport.is_reliable() {
                row.tcp_copies
            } else {
                row.udp_copies
            };
            let lines = p.lines(row.sender);
            assert_eq!(count(&lines, row.message), copies, "{what}: {lines:?}");
            assert_eq!(p.sim.ep(p.s).state_sizes().transactions, 0, "{what}");
        }
    }
}

/// Every request's Via names the transport it goes on (RFC 3261 §18.1.1,
/// §20.42; RFC 7118 for WS/WSS): out-of-dialog requests over
/// `ClientConfig::transport`, ACK and BYE over the dialog's; the server
/// answers on the flow each request came in on, with that Via copied.
#[test]
fn via_names_the_transport() {
    for transport in TransportKind::ALL {
        for scenario in [Scenario::Register, Scenario::Call, Scenario::Options] {
            let mut p = pair_over(transport, scenario, scfg(), NetConfig::default());
            p.start(1, Duration::from_millis(100));
            p.run(Duration::from_secs(2));
            let what = format!("{transport} {scenario:?}");
            assert_eq!(p.outcomes(), vec![Outcome::Success], "{what}");
            let want = format!("SIP/2.0/{} ", transport.via_token());
            let ws = matches!(transport, TransportKind::Ws | TransportKind::Wss);
            let (c, s) = (addr(C), addr(S));
            let mut requests = 0;
            for (_, from, _, msg) in &p.sim.trace {
                assert!(*from == c || *from == s, "{what}");
                let via = top_via(msg);
                let sent_by = via
                    .strip_prefix(&want)
                    .and_then(|v| v.split(';').next())
                    .unwrap_or_else(|| panic!("{what}: {via}"));
                if ws {
                    // RFC 7118 §5.2: a random host under .invalid, no port.
                    let host = sent_by.strip_suffix(".invalid").unwrap_or("");
                    assert!(
                        host.len() == 12 && host.bytes().all(|b| b.is_ascii_alphanumeric()),
                        "{what}: {via}"
                    );
                } else {
                    assert_eq!(sent_by, "10.0.0.1:5060", "{what}: {via}");
                }
                requests += usize::from(*from == c);
            }
            assert!(requests >= 1, "{what}");
            p.assert_clean();
        }
    }
}

/// The network's loss, duplication and jitter hit UDP flows only: over TCP
/// the same lossy network delivers every message once and in order, so 60
/// registrations and 60 calls succeed with no retransmission and no
/// duplicate at either end (over UDP, `robustness::register_and_call_under_loss`).
#[test]
fn reliable_flows_are_lossless_and_ordered_in_the_sim() {
    for scenario in [Scenario::Register, Scenario::Call] {
        let mut p = pair_over(Tcp, scenario, scfg(), lossy());
        p.start(60, Duration::from_secs(1));
        p.run(Duration::from_secs(10));
        let o = p.outcomes();
        assert_eq!(o, vec![Outcome::Success; 60], "{scenario:?}");
        for i in [p.c, p.s] {
            let c = p.sim.ep(i).counters().clone();
            assert_eq!(
                (c.retransmitted, c.duplicates, c.unexpected),
                (0, 0, 0),
                "{scenario:?} node {i}: {c:?}"
            );
        }
        p.assert_clean();
    }
}

/// Connection keys (`ClientConfig::connection`): one per attempt, released
/// when the attempt ends (`-t tn`); one per user or per pool slot, never
/// released (they stay open for the run); none over UDP. Contacts name
/// the transport: `;transport=tcp` over TCP, `sips:` over TLS (RFC 5630),
/// `;transport=ws` over WS and WSS (RFC 7118 §5.2), on both sides when the
/// server listens on that transport.
#[test]
fn connection_keys_and_contacts_per_transport() {
    use crate::flow::{ConnectionMode, TransportKind::Tls};
    // (mode, transport, attempts, released, Contact fragment)
    let rows: [(ConnectionMode, TransportKind, usize, usize, &str); 7] = [
        (ConnectionMode::Call, Tcp, 3, 3, ";transport=tcp>"),
        (
            ConnectionMode::Call,
            TransportKind::Ws,
            2,
            2,
            ";transport=ws>",
        ),
        (
            ConnectionMode::Shared(1),
            TransportKind::Wss,
            2,
            0,
            ";transport=ws>",
        ),
        (ConnectionMode::User, Tcp, 3, 0, ";transport=tcp>"),
        (ConnectionMode::Shared(2), Tls, 3, 0, "<sips:"),
        (ConnectionMode::Call, Tls, 2, 2, "<sips:"),
        (ConnectionMode::Call, Udp, 2, 0, "<sip:"),
    ];
    for (mode, transport, n, released, contact) in rows {
        for scenario in [Scenario::Register, Scenario::Call] {
            let mut cc = ccfg(scenario);
            cc.transport = transport;
            cc.connection = mode;
            let mut sc = scfg();
            sc.listen = vec![(transport, addr(S))];
            let mut p = pair(cc, sc, NetConfig::default());
            p.start(n, Duration::from_millis(50));
            p.run(Duration::from_secs(2));
            let what = format!("{mode} {transport} {scenario:?}");
            assert_eq!(p.outcomes(), vec![Outcome::Success; n], "{what}");
            let mut keys = Vec::new();
            while let Some(f) = p.sim.ep(p.c).poll_released() {
                assert!(f.conn.is_key(), "{what}: {f}");
                assert_eq!((f.transport, f.peer), (transport, addr(S)), "{what}");
                keys.push(f.conn);
            }
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), released, "{what}: one key per attempt");
            // Every Contact this pair wrote (client REGISTER/INVITE, server
            // 200) names the transport.
            let contacts: Vec<String> = p
                .sim
                .trace
                .iter()
                .filter_map(|t| {
                    let m = sip::parse(&t.3).ok()?;
                    m.header(b"Contact")
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                })
                .collect();
            assert!(!contacts.is_empty(), "{what}");
            for c in &contacts {
                assert!(c.contains(contact), "{what}: {c}");
                if transport == Udp {
                    assert!(
                        !c.contains("transport=") && !c.contains("sips:"),
                        "{what}: {c}"
                    );
                }
            }
        }
    }
}
