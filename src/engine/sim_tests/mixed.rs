//! Mixed mode and the built-in proxy, OPTIONS, and one endpoint running
//! every part of a mix.

use super::*;

#[test]
fn options_ping() {
    let mut p = pair(ccfg(Scenario::Options), scfg(), NetConfig::default());
    p.start(4, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 4]);
    p.assert_clean();
}

#[test]
fn mixed_registers_then_calls_through_the_proxy() {
    let mut cc = ccfg(Scenario::Mixed);
    cc.users = Arc::new(UserSource::pattern("u{000..003}", "pw-{user}").unwrap());
    cc.answer_ring = Delay::Fixed(Duration::from_millis(200));
    let mut p = pair(cc, scfg(), NetConfig::default());
    p.start(4, Duration::from_secs(1));
    p.run(Duration::from_secs(3));
    let ev = p.events().to_vec();
    let regs = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::RegisterDone {
                    outcome: Outcome::Success,
                    ..
                }
            )
        })
        .count();
    assert_eq!(regs, 4, "{ev:?}");
    let calls: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::CallDone { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec![Outcome::Success; 4], "{ev:?}");
    // The INVITEs went through the target and came back to our UAS side.
    let c = addr(C);
    let s = addr(S);
    let via_proxy = p
        .sim
        .trace
        .iter()
        .filter(|t| t.1 == s && t.2 == c && t.3.starts_with(b"INVITE"))
        .count();
    assert_eq!(via_proxy, 4);
    assert_eq!(p.sim.ep(p.c).counters().answered, 4);
    assert!(
        p.sim.ep(p.s).counters().proxied >= 4 * 4,
        "INVITE, 100, 180, 200 at least"
    );
    // Shutdown unregisters every user.
    let now = p.sim.now;
    p.sim.ep(p.c).shutdown(now);
    p.run(Duration::from_secs(1));
    let unreg = p
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Unregistered {
                    outcome: Outcome::Success,
                    ..
                }
            )
        })
        .count();
    assert_eq!(unreg, 4);
    assert_eq!(p.sim.ep(p.s).state_sizes().bindings, 0);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.c).state_sizes().sessions, 0);
}

#[test]
fn mixed_with_proxy_auth_and_cancel() {
    let mut cc = ccfg(Scenario::Mixed);
    cc.users = Arc::new(UserSource::pattern("u{000..001}", "pw-{user}").unwrap());
    cc.answer_ring = Delay::Fixed(Duration::from_secs(2));
    cc.cancel_ratio = 1.0;
    let mut sc = scfg();
    sc.auth_invite = true;
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(2, Duration::from_secs(1));
    p.run(Duration::from_secs(3));
    let calls: Vec<_> = p
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::CallDone { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec![Outcome::Cancelled; 2]);
    assert_eq!(count(&p.lines(S), "SIP/2.0 407"), 2);
    let now = p.sim.now;
    p.sim.ep(p.c).shutdown(now);
    p.assert_clean();
    assert_eq!(p.sim.ep(p.c).state_sizes().sessions, 0);
}

#[test]
fn proxy_forwards_to_binding_and_refuses_max_forwards_zero() {
    let mut p = pair(ccfg(Scenario::Register), scfg(), NetConfig::default());
    p.start(1, Duration::ZERO); // binds u000 → 10.0.0.1:5060
    p.run(Duration::from_secs(1));
    let other = addr("10.0.0.9:5060");
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let g2 = got.clone();
    p.sim.add_script(
        other,
        Box::new(move |_, d| {
            let end = d.iter().position(|c| *c == b'\r').unwrap_or(d.len());
            g2.borrow_mut()
                .push(String::from_utf8_lossy(&d[..end]).into_owned());
            Vec::new()
        }),
    );
    // (OPTIONS with Max-Forwards 0 may be answered by the proxy itself,
    // §16.3 step 3, so the refused one is an INFO.)
    let inv = |m: &str, mf: u32| {
        raw_request(&format!(
            "{m} sip:u000@10.0.0.2:5060 SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKmf{mf}\n\
             From: <sip:x@y>;tag=1\nTo: <sip:u000@10.0.0.2>\nCall-ID: mf{mf}\nCSeq: 1 {m}\n\
             Max-Forwards: {mf}\nContent-Length: 0\n\n"
        ))
    };
    let now = p.sim.now;
    let srv = p.s;
    p.sim.trace.clear();
    p.sim.ep(srv).handle(now, Flow::udp(other), &inv("INFO", 0));
    p.sim
        .ep(srv)
        .handle(now, Flow::udp(other), &inv("OPTIONS", 5));
    p.run(Duration::from_millis(100));
    // The MF 0 one is refused; the other is forwarded to the binding with MF 4,
    // answered by the client's UAS side, and the answer comes back through us.
    assert_eq!(got.borrow()[0], "SIP/2.0 483 Too Many Hops");
    let fwd = p
        .sim
        .trace
        .iter()
        .find(|t| t.2 == addr(C))
        .expect("forwarded");
    let m = sip::parse(&fwd.3).unwrap();
    assert_eq!(m.uri(), Some(&b"sip:u000@10.0.0.1:5060"[..]));
    assert_eq!(m.max_forwards(), Some(4));
    assert_eq!(m.vias().count(), 2);
    assert_eq!(got.borrow()[1], "SIP/2.0 200 OK");
}

#[test]
fn one_endpoint_runs_every_part_of_a_mix() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    let now = p.sim.now;
    for s in [
        Scenario::Register,
        Scenario::Call,
        Scenario::Options,
        Scenario::Register,
    ] {
        assert!(
            p.sim.ep(p.c).start_attempt_as(s, now, now, Duration::ZERO),
            "{s:?}"
        );
    }
    p.run(Duration::from_secs(2));
    let (mut regs, mut calls, mut pings) = (0, 0, 0);
    for e in &p.events() {
        match e {
            Event::RegisterDone { outcome, .. } => {
                assert_eq!(*outcome, Outcome::Success);
                regs += 1;
            }
            Event::CallDone { outcome, .. } => {
                assert_eq!(*outcome, Outcome::Success);
                calls += 1;
            }
            Event::OptionsDone { outcome, .. } => {
                assert_eq!(*outcome, Outcome::Success);
                pings += 1;
            }
            _ => {}
        }
    }
    assert_eq!((regs, calls, pings), (2, 1, 1));
    p.assert_clean();
}
