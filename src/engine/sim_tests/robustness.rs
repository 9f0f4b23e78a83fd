//! Loss, garbage and abuse: lossy networks, bad and mutated requests,
//! absurd inputs, shutdown drains.

use super::*;

#[test]
fn register_and_call_under_loss() {
    let mut p = pair(ccfg(Scenario::Register), scfg(), lossy());
    p.start(60, Duration::ZERO);
    p.run(Duration::from_secs(40));
    let o = p.outcomes();
    assert_eq!(o.len(), 60);
    assert!(o.iter().all(|o| *o == Outcome::Success), "{o:?}");
    assert!(p.sim.ep(p.c).counters().retransmitted > 0);
    p.assert_clean();

    let mut p = pair(ccfg(Scenario::Call), scfg(), lossy());
    p.start(60, Duration::from_secs(1));
    p.run(Duration::from_secs(60));
    let o = p.outcomes();
    assert_eq!(o.len(), 60);
    assert!(o.iter().all(|o| *o == Outcome::Success), "{o:?}");
    assert!(p.sim.ep(p.c).counters().retransmitted > 0);
    assert!(p.sim.ep(p.s).counters().retransmitted > 0);
    // Every duplicate and retransmission is recognised as such.
    for i in [p.c, p.s] {
        let c = p.sim.ep(i).counters().clone();
        assert_eq!((c.unexpected, c.unparseable), (0, 0), "{c:?}");
        assert!(c.duplicates > 0);
    }
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}

#[test]
fn bad_requests_get_errors_without_disturbing_calls() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    let bad = addr("10.0.0.9:5060");
    let replies = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let r2 = replies.clone();
    p.sim.add_script(
        bad,
        Box::new(move |_, d| {
            let end = d.iter().position(|c| *c == b'\r').unwrap_or(d.len());
            r2.borrow_mut()
                .push(String::from_utf8_lossy(&d[..end]).into_owned());
            Vec::new()
        }),
    );
    p.start(2, Duration::from_secs(1));
    let hdr = "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKbad{n}\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCall-ID: bad{n}\nCSeq: 1 {m}\nMax-Forwards: 70\nContent-Length: 0\n\n";
    let mk = |first: &str, m: &str, n: usize| {
        raw_request(&format!(
            "{first}\n{}",
            hdr.replace("{n}", &n.to_string()).replace("{m}", m)
        ))
    };
    let inputs = vec![
        b"garbage\r\n\r\n".to_vec(),
        mk("FOO sip:a@b SIP/2.0", "FOO", 1),
        mk("SUBSCRIBE sip:a@b SIP/2.0", "SUBSCRIBE", 2),
        mk("BYE sip:a@b SIP/2.0", "BYE", 3),
        mk("OPTIONS sip:a@b SIP/3.0", "OPTIONS", 4),
        raw_request(
            "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        ),
        mk("INVITE sip:a@b SIP/2.0", "BYE", 5),
    ];
    let srv = p.s;
    let now = p.sim.now;
    for i in inputs {
        p.sim.ep(srv).handle(now, Flow::udp(bad), &i);
    }
    p.run(Duration::from_secs(3));
    let r = replies.borrow().clone();
    // The unparseable ones are short: their 400s name no detail, which
    // would make them longer than the request (see `bounded_answers`).
    assert_eq!(
        r,
        vec![
            "SIP/2.0 501 Not Implemented",
            "SIP/2.0 405 Method Not Allowed",
            "SIP/2.0 481 Call/Transaction Does Not Exist",
            "SIP/2.0 505 Version Not Supported",
            "SIP/2.0 400 Bad Request",
            "SIP/2.0 400 Bad Request",
        ]
    );
    assert_eq!(p.sim.ep(srv).counters().unparseable, 4);
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
}

/// Mutated real traffic never panics either side, and the engine keeps
/// working afterwards.
#[test]
fn mutated_messages_never_panic() {
    use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    p.start(1, Duration::from_millis(10));
    p.run(Duration::from_secs(1));
    let msgs: Vec<Vec<u8>> = p.sim.trace.iter().map(|t| t.3.clone()).collect();
    proptest!(ProptestConfig::with_cases(200), |(i in 0usize..64, edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8), cut in any::<u16>())| {
        let mut m = msgs[i % msgs.len()].clone();
        for (pos, b) in &edits {
            let n = m.len();
            m[*pos as usize % n] = *b;
        }
        m.truncate(cut as usize % (m.len() + 1) + m.len() / 2);
        let t0 = Instant::now();
        let mut c = Endpoint::client(ccfg(Scenario::Call), t0);
        let mut s = Endpoint::server(scfg(), t0);
        for ep in [&mut c, &mut s] {
            ep.handle(t0, Flow::udp(addr("10.0.0.8:5060")), &m);
            let mut buf = Vec::new();
            while ep.poll_transmit(&mut buf).is_some() {}
            ep.handle_timeout(t0 + Duration::from_secs(100));
            while ep.poll_transmit(&mut buf).is_some() {}
        }
        prop_assert_eq!(c.in_flight(), 0);
    });
}

#[test]
fn absurd_hold_does_not_panic() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    p.start(1, Duration::MAX);
    p.run(Duration::from_secs(1));
    assert_eq!(p.sim.ep(p.c).in_flight(), 1);
    let now = p.sim.now;
    p.sim.ep(p.c).shutdown(now);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
}

#[test]
fn heavy_loss_fails_only_by_timeout() {
    // 30% loss each way: some transactions run out of retransmissions
    // (Timer F), but a lost 200 never turns a right password into a 401.
    let net = NetConfig {
        loss: 0.30,
        ..lossy()
    };
    let mut p = pair(ccfg(Scenario::Register), scfg(), net);
    p.start(100, Duration::ZERO);
    p.run(Duration::from_secs(60));
    let o = p.outcomes();
    assert_eq!(o.len(), 100);
    let bad: Vec<_> = o
        .iter()
        .filter(|o| !matches!(o, Outcome::Success | Outcome::Timeout))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    p.assert_clean();
}

#[test]
fn shutdown_drains_to_zero() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    p.start(5, Duration::from_secs(600));
    p.run(Duration::from_secs(1));
    assert_eq!(p.sim.ep(p.c).in_flight(), 5);
    let now = p.sim.now;
    p.sim.ep(p.c).shutdown(now);
    assert!(!p.sim.ep(p.c).start_attempt(now, now, Duration::ZERO));
    p.run(Duration::from_secs(1));
    assert_eq!(p.sim.ep(p.c).in_flight(), 0);
    assert_eq!(p.outcomes(), vec![Outcome::Success; 5]);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.s).state_sizes().sessions, 0);
}
