//! Calls: INVITE/ACK/BYE, CANCEL, redirects, route sets, error codes,
//! ring delays, IPv6.

use super::*;

#[test]
fn call_flow_and_cleanup() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    p.start(2, Duration::from_secs(3));
    p.run(Duration::from_secs(5));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
    let c = p.lines(C);
    assert_eq!(count(&c, "INVITE"), 2);
    assert_eq!(count(&c, "ACK"), 2);
    assert_eq!(count(&c, "BYE"), 2);
    let s = p.lines(S);
    for code in ["180", "200"] {
        assert!(count(&s, &format!("SIP/2.0 {code}")) >= 2, "{code} {s:?}");
    }
    assert_eq!(
        count(&s, "SIP/2.0 100"),
        0,
        "immediate answer: no 100 needed"
    );
    let ev = p.events().to_vec();
    let mut setup = 0;
    for e in &ev {
        match e {
            Event::CallSetup {
                invite_sent,
                first_provisional_or_200,
                ..
            } => {
                setup += 1;
                assert_eq!(
                    *first_provisional_or_200 - *invite_sent,
                    Duration::from_millis(10)
                );
            }
            Event::CallDone {
                started,
                answered,
                bye_sent,
                bye_done,
                ..
            } => {
                let (a, bs, bd) = (answered.unwrap(), bye_sent.unwrap(), bye_done.unwrap());
                assert_eq!(a - *started, Duration::from_millis(10));
                assert_eq!(bs - a, Duration::from_secs(3), "session duration = hold");
                assert_eq!(bd - bs, Duration::from_millis(10), "SDD");
            }
            _ => {}
        }
    }
    assert_eq!(setup, 2);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}

#[test]
fn cancel_after_provisional() {
    let mut cc = ccfg(Scenario::Call);
    cc.cancel_ratio = 1.0;
    let mut sc = scfg();
    sc.ring = Delay::Fixed(Duration::from_secs(2));
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(3, Duration::from_secs(1));
    p.run(Duration::from_secs(3));
    assert_eq!(p.outcomes(), vec![Outcome::Cancelled; 3]);
    let c = p.lines(C);
    assert_eq!(count(&c, "CANCEL"), 3);
    assert_eq!(count(&c, "ACK"), 3, "the 487 is ACKed");
    assert_eq!(count(&c, "BYE"), 0);
    let s = p.lines(S);
    assert_eq!(count(&s, "SIP/2.0 100"), 3, "ringing: 100 first");
    assert_eq!(count(&s, "SIP/2.0 487"), 3);
    assert_eq!(
        p.sim.ep(p.s).counters().response_sent(200),
        3,
        "200s to CANCEL only"
    );
    // CANCEL never precedes the first provisional.
    let first_prov = p
        .sim
        .trace
        .iter()
        .position(|t| t.3.starts_with(b"SIP/2.0 1"))
        .unwrap();
    let first_cancel = p
        .sim
        .trace
        .iter()
        .position(|t| t.3.starts_with(b"CANCEL"))
        .unwrap();
    assert!(first_prov < first_cancel);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).counters().ack_timeouts, 0);
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}

#[test]
fn cancel_race_with_200_is_acked_and_byed() {
    let mut cc = ccfg(Scenario::Call);
    cc.cancel_ratio = 1.0;
    // ring 0: 100, 180 and 200 leave together, so the 200 crosses the CANCEL.
    let mut p = pair(cc, scfg(), NetConfig::default());
    p.start(2, Duration::from_secs(10));
    p.run(Duration::from_secs(2));
    let ev = p.events().to_vec();
    let done: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::CallDone {
                outcome,
                answered,
                bye_sent,
                bye_done,
                ..
            } => Some((
                *outcome,
                answered.is_some(),
                bye_sent.is_some(),
                bye_done.is_some(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![(Outcome::Cancelled, true, true, true); 2]);
    let c = p.lines(C);
    assert_eq!(count(&c, "CANCEL"), 2);
    assert_eq!(count(&c, "ACK"), 2);
    assert_eq!(count(&c, "BYE"), 2);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}

#[test]
fn no_cancel_without_provisional() {
    // Server silent: the call must time out by Timer B, never CANCEL.
    let mut cc = ccfg(Scenario::Call);
    cc.cancel_ratio = 1.0;
    cc.ring_timeout = Duration::from_secs(5);
    let mut p = pair(cc, scfg(), NetConfig::default());
    let srv = addr(S);
    p.sim.tap = Some(Box::new(move |_, to, _| to == srv));
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(40));
    assert_eq!(p.outcomes(), vec![Outcome::Timeout]);
    assert_eq!(count(&p.lines(C), "CANCEL"), 0);
}

#[test]
fn no_answer_is_cancelled_at_ring_timeout() {
    let mut cc = ccfg(Scenario::Call);
    cc.ring_timeout = Duration::from_secs(5);
    let mut sc = scfg();
    sc.no_answer_ratio = 1.0;
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(6));
    assert_eq!(p.outcomes(), vec![Outcome::Timeout]);
    assert_eq!(count(&p.lines(C), "CANCEL"), 1);
    assert_eq!(count(&p.lines(S), "SIP/2.0 487"), 1);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}

#[test]
fn retransmitted_200_is_reacked() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    let mut dropped = false;
    p.sim.tap = Some(Box::new(move |_, _, d| {
        if !dropped && d.starts_with(b"ACK") {
            dropped = true;
            return true;
        }
        false
    }));
    p.start(1, Duration::from_secs(5));
    p.run(Duration::from_secs(6));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    assert_eq!(count(&p.lines(C), "ACK"), 2);
    assert!(count(&p.lines(S), "SIP/2.0 200") >= 3, "200 retransmitted");
    assert_eq!(p.sim.ep(p.s).counters().ack_timeouts, 0);
    p.assert_clean();
}

/// A redirect server: every INVITE gets 302 to the real server; ACKs are absorbed.
#[test]
fn redirect_follows_contact() {
    let mut cc = ccfg(Scenario::Call);
    let redir = addr("10.0.0.3:5060");
    cc.target = redir;
    let mut p = pair(cc, scfg(), NetConfig::default());
    p.sim.add_script(
        redir,
        Box::new(move |from, d| {
            let Ok(m) = sip::parse(d) else {
                return Vec::new();
            };
            if m.method() != Some(sip::Method::Invite) {
                return Vec::new();
            }
            let mut out = Vec::new();
            let mut b =
                sip::Builder::response_to(&mut out, &m, 302, b"Moved Temporarily", Some(b"r1"));
            b.header(b"Contact", b"<sip:bob@10.0.0.2:5060>");
            b.finish(None, b"");
            vec![(from, out)]
        }),
    );
    p.start(1, Duration::from_millis(100));
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    let invites: Vec<_> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"INVITE"))
        .collect();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].2, addr(S));
    assert!(
        invites[1]
            .3
            .starts_with(b"INVITE sip:bob@10.0.0.2:5060 SIP/2.0")
    );
}

/// A record-routing UAS script: the ACK and BYE must go to the Record-Route
/// hop with a Route header, with the Contact as Request-URI.
#[test]
fn route_set_from_record_route() {
    let uas = addr("10.0.0.4:5060");
    let proxy = addr("10.0.0.5:5060");
    let mut cc = ccfg(Scenario::Call);
    cc.target = uas;
    let t0 = Instant::now();
    let mut sim = Sim::new(NetConfig::default(), t0);
    sim.trace_on = true;
    let c = sim.add(cc.local, Endpoint::client(cc, t0));
    let script = move |from: SocketAddr, d: &[u8]| -> Vec<(SocketAddr, Vec<u8>)> {
        let Ok(m) = sip::parse(d) else {
            return Vec::new();
        };
        match m.method() {
            Some(sip::Method::Invite) => {
                let mut early = Vec::new();
                sip::Builder::response_to(&mut early, &m, 183, b"Session Progress", Some(b"u1"))
                    .finish(None, b"");
                let mut out = Vec::new();
                let mut b = sip::Builder::response_to(&mut out, &m, 200, b"OK", Some(b"u1"));
                b.header(b"Record-Route", b"<sip:10.0.0.5:5060;lr>");
                b.header(b"Contact", b"<sip:callee@10.0.0.6:5070>");
                b.finish(None, b"");
                vec![(from, early), (from, out)]
            }
            Some(sip::Method::Bye) => {
                let mut out = Vec::new();
                sip::Builder::response_to(&mut out, &m, 200, b"OK", None).finish(None, b"");
                vec![(from, out)]
            }
            _ => Vec::new(),
        }
    };
    sim.add_script(uas, Box::new(script));
    sim.add_script(proxy, Box::new(script));
    let now = sim.now;
    sim.ep(c)
        .start_attempt(now, now, Duration::from_millis(100));
    sim.run_for(Duration::from_secs(1));
    let outs: Vec<_> = sim.nodes[c]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::CallDone {
                    outcome: Outcome::Success,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(outs.len(), 1);
    // SRD ends at the 183 (sent with the 200, so both at 10 ms).
    let setup = sim.nodes[c].events.iter().find_map(|e| match e {
        Event::CallSetup {
            invite_sent,
            first_provisional_or_200,
            ..
        } => Some(*first_provisional_or_200 - *invite_sent),
        _ => None,
    });
    assert_eq!(setup, Some(Duration::from_millis(10)));
    for m in [&b"ACK"[..], b"BYE"] {
        let t = sim.trace.iter().find(|t| t.3.starts_with(m)).unwrap();
        assert_eq!(t.2, proxy);
        let msg = sip::parse(&t.3).unwrap();
        assert_eq!(msg.uri(), Some(&b"sip:callee@10.0.0.6:5070"[..]));
        assert_eq!(msg.header(b"Route"), Some(&b"<sip:10.0.0.5:5060;lr>"[..]));
        assert!(msg.to().unwrap().tag == Some(b"u1"));
    }
}

#[test]
fn server_error_codes_end_the_call() {
    for code in [404u16, 503, 603] {
        let srv = addr("10.0.0.7:5060");
        let mut cc = ccfg(Scenario::Call);
        cc.target = srv;
        let t0 = Instant::now();
        let mut sim = Sim::new(NetConfig::default(), t0);
        sim.trace_on = true;
        let c = sim.add(cc.local, Endpoint::client(cc, t0));
        sim.add_script(
            srv,
            Box::new(move |from, d| {
                let Ok(m) = sip::parse(d) else {
                    return Vec::new();
                };
                if m.method() != Some(sip::Method::Invite) {
                    return Vec::new();
                }
                let mut out = Vec::new();
                sip::Builder::response_to(&mut out, &m, code, sip::reason_phrase(code), Some(b"x"))
                    .finish(None, b"");
                vec![(from, out)]
            }),
        );
        let now = sim.now;
        sim.ep(c).start_attempt(now, now, Duration::ZERO);
        sim.run_for(Duration::from_secs(1));
        let o: Vec<_> = sim.nodes[c]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::CallDone { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect();
        assert_eq!(o, vec![Outcome::Failed(code)]);
        assert_eq!(
            sim.trace.iter().filter(|t| t.3.starts_with(b"ACK")).count(),
            1
        );
        assert_eq!(sim.ep(c).counters().response(code), 1);
    }
}

#[test]
fn ring_delay_is_drawn_per_call() {
    let mut sc = scfg();
    sc.ring = Delay::Uniform(Duration::from_millis(100), Duration::from_millis(900));
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(50, Duration::ZERO);
    p.run(Duration::from_secs(3));
    let waits: Vec<Duration> = p
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::CallAnswered {
                invite_sent,
                answered,
                ..
            } => Some(answered.saturating_duration_since(*invite_sent)),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 50);
    // Inside the bounds (plus the simulated network's delay), and spread.
    assert!(
        waits
            .iter()
            .all(|w| *w >= Duration::from_millis(100) && *w <= Duration::from_millis(950))
    );
    let (lo, hi) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
    assert!(*hi - *lo > Duration::from_millis(400), "{lo:?}..{hi:?}");
    assert_eq!(p.outcomes(), vec![Outcome::Success; 50]);
}

#[test]
fn ipv6_call_and_register() {
    for sc in [Scenario::Call, Scenario::Register, Scenario::Mixed] {
        let (c6, s6) = (addr("[::1]:5070"), addr("[::1]:5060"));
        let mut cc = ClientConfig::new(sc, s6, c6);
        cc.users = Arc::new(UserSource::pattern("u{0..1}", "pw-{user}").unwrap());
        let mut p = pair(
            cc,
            ServerConfig {
                local: s6,
                ..ServerConfig::default()
            },
            NetConfig::default(),
        );
        p.start(2, Duration::from_millis(100));
        p.run(Duration::from_secs(2));
        let o = p.outcomes();
        assert!(
            o.len() >= 2 && o.iter().all(|o| *o == Outcome::Success),
            "{sc:?} {o:?}"
        );
        let now = p.sim.now;
        p.sim.ep(p.c).shutdown(now);
        p.assert_clean();
    }
}

/// Every final response of every client transaction is reported once, with
/// its own method (issue 12: the driver's response counts have one source):
/// the challenge under REGISTER, the BYE's 200 under BYE, a retransmitted
/// 2xx not at all.
#[test]
fn final_responses_are_reported_once_per_transaction() {
    type Case = (Scenario, Duration, Vec<(MethodKind, u16)>);
    let cases: Vec<Case> = vec![
        (
            Scenario::Register,
            Duration::ZERO,
            vec![(MethodKind::Register, 401), (MethodKind::Register, 200)],
        ),
        (
            Scenario::Call,
            Duration::from_millis(100),
            vec![(MethodKind::Invite, 200), (MethodKind::Bye, 200)],
        ),
        (
            Scenario::Options,
            Duration::ZERO,
            vec![(MethodKind::Options, 200)],
        ),
    ];
    for (scenario, hold, want) in cases {
        let mut p = pair(ccfg(scenario), scfg(), NetConfig::default());
        p.start(1, hold);
        p.run(Duration::from_secs(2));
        assert_eq!(p.outcomes(), vec![Outcome::Success], "{scenario:?}");
        assert_eq!(p.final_responses(), want, "{scenario:?}");
    }
    // Lost ACKs make the UAS retransmit its 2xx: still one INVITE 200.
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    p.sim.tap = Some(Box::new(|_, _, d: &[u8]| d.starts_with(b"ACK")));
    p.start(1, Duration::from_secs(2));
    p.run(Duration::from_secs(4));
    let invite_200s = p
        .final_responses()
        .iter()
        .filter(|r| **r == (MethodKind::Invite, 200))
        .count();
    assert_eq!(invite_200s, 1);
    assert!(
        count(&p.lines(S), "SIP/2.0 200") > 2,
        "the 2xx was retransmitted"
    );
}
