//! Registration: digest, 423, refresh with a stale nonce, unregister, the
//! registrar's bindings.

use super::*;

#[test]
fn register_with_digest() {
    let mut p = pair(ccfg(Scenario::Register), scfg(), NetConfig::default());
    p.start(3, Duration::ZERO);
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 3]);
    let s = p.lines(S);
    assert_eq!(count(&s, "SIP/2.0 401"), 3);
    assert_eq!(count(&s, "SIP/2.0 200"), 3);
    // Same Call-ID, CSeq + 1 for the authenticated retry.
    let regs: Vec<sip::Message<'_>> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"REGISTER"))
        .map(|t| sip::parse(&t.3).unwrap())
        .collect();
    assert_eq!(regs.len(), 6);
    let first = &regs[0];
    let retry = regs
        .iter()
        .find(|m| m.call_id() == first.call_id() && m.authorization().is_some())
        .expect("authenticated retry");
    assert_eq!(retry.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    // RRD covers both round trips (2 × 2 × 5 ms).
    for e in &p.events() {
        if let Event::RegisterDone {
            started, finished, ..
        } = e
        {
            assert_eq!(*finished - *started, Duration::from_millis(20));
        }
    }
    let sz = p.sim.ep(p.s).state_sizes();
    assert_eq!(sz.bindings, 3);
    let b = p.sim.ep(p.s).bindings_of(b"u000");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1, Some(Flow::udp(addr(C))));
    p.assert_clean();
}

#[test]
fn register_423_retries_with_min_expires() {
    let mut cc = ccfg(Scenario::Register);
    cc.expires = 30;
    let mut p = pair(cc, scfg(), NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    let regs: Vec<_> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"REGISTER"))
        .map(|t| sip::parse(&t.3).unwrap().expires())
        .collect();
    assert_eq!(regs, vec![Some(30), Some(30), Some(60)]);
    assert_eq!(count(&p.lines(S), "SIP/2.0 423"), 1);
}

#[test]
fn refresh_with_stale_nonce_then_unregister() {
    let mut cc = ccfg(Scenario::Register);
    cc.expires = 60;
    let mut sc = scfg();
    sc.nonce_lifetime = Duration::from_secs(10);
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::from_secs(100));
    p.run(Duration::from_secs(101));
    let ev = p.events().to_vec();
    assert!(
        matches!(
            ev[0],
            Event::RegisterDone {
                outcome: Outcome::Success,
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(
        matches!(
            ev[1],
            Event::Unregistered {
                outcome: Outcome::Success,
                ..
            }
        ),
        "{ev:?}"
    );
    assert_eq!(p.sim.ep(p.c).counters().refresh_failed, 0);
    let s: Vec<_> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"SIP/2.0 401"))
        .collect();
    // initial challenge, stale at the 48 s refresh, stale at the 96 s refresh;
    // the unregister at 100 s reuses the fresh nonce of 96 s.
    assert!(s.len() >= 3, "{}", s.len());
    assert!(
        s.iter()
            .skip(1)
            .all(|t| String::from_utf8_lossy(&t.3).contains("stale="))
    );
    let last_reg = p
        .sim
        .trace
        .iter()
        .rev()
        .find(|t| t.3.starts_with(b"REGISTER"))
        .unwrap();
    assert_eq!(sip::parse(&last_reg.3).unwrap().expires(), Some(0));
    assert_eq!(p.sim.ep(p.s).state_sizes().bindings, 0, "unregistered");
    p.assert_clean();
}

#[test]
fn register_200_lists_the_binding() {
    let mut p = pair(ccfg(Scenario::Register), scfg(), NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    let ok = p
        .sim
        .trace
        .iter()
        .find(|t| t.3.starts_with(b"SIP/2.0 200"))
        .unwrap();
    let m = sip::parse(&ok.3).unwrap();
    let c: Vec<_> = m.contacts().collect();
    assert_eq!(c.len(), 1);
    match c[0] {
        sip::Contact::Addr { addr, expires, .. } => {
            assert_eq!(addr.uri, b"sip:u000@10.0.0.1:5060");
            assert_eq!(expires, Some(3600));
        }
        sip::Contact::Star => panic!("star"),
    }
}

#[test]
fn bindings_expire() {
    let mut cc = ccfg(Scenario::Register);
    cc.expires = 120;
    let mut p = pair(cc, scfg(), NetConfig::default());
    p.start(2, Duration::ZERO);
    p.run(Duration::from_secs(119));
    assert_eq!(p.sim.ep(p.s).state_sizes().bindings, 2);
    p.run(Duration::from_secs(2));
    assert_eq!(p.sim.ep(p.s).state_sizes().bindings, 0);
    assert!(p.sim.ep(p.s).bindings_of(b"u000").is_empty());
}
