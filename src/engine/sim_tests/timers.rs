//! RFC 3261 §17 transaction timers over UDP: A, B, D, E, F, G, H, J and
//! their absorber records, custom timer bases, RTT events.

use super::*;

#[test]
fn silent_peer_times_out_at_64_t1_and_frees_everything() {
    for sc in [Scenario::Call, Scenario::Register, Scenario::Options] {
        let mut p = pair(ccfg(sc), scfg(), NetConfig::default());
        let srv = addr(S);
        p.sim.tap = Some(Box::new(move |_, to, _| to == srv));
        p.start(3, Duration::from_secs(1));
        p.run(Duration::from_secs(40));
        let ev = p.events().to_vec();
        assert_eq!(ev.len(), 3, "{sc:?} {ev:?}");
        for e in ev {
            let (started, finished, outcome) = match e {
                Event::CallDone {
                    started, outcome, ..
                } => (started, p.sim.now, outcome),
                Event::RegisterDone {
                    started,
                    finished,
                    outcome,
                    ..
                }
                | Event::OptionsDone {
                    started,
                    finished,
                    outcome,
                    ..
                } => (started, finished, outcome),
                other => panic!("{other:?}"),
            };
            assert_eq!(outcome, Outcome::Timeout);
            if sc != Scenario::Call {
                assert_eq!(finished - started, Duration::from_secs(32));
            }
        }
        // A: 1 + retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s = 7 INVITEs.
        if sc == Scenario::Call {
            assert_eq!(count(&p.lines(C), "INVITE"), 3 * 7);
        } else {
            // E: 0, .5, 1.5, 3.5, 7.5, then every 4 s up to 32 s: 11 sends.
            assert_eq!(p.lines(C).len(), 3 * 11, "{sc:?}");
        }
        assert_eq!(p.sim.ep(p.c).counters().timeouts, 3);
        p.assert_clean();
    }
}

#[test]
fn invite_timer_b_fires_at_64_t1() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    let srv = addr(S);
    p.sim.tap = Some(Box::new(move |_, to, _| to == srv));
    p.start(1, Duration::ZERO);
    p.run(Duration::from_millis(31_990));
    assert!(p.outcomes().is_empty());
    p.run(Duration::from_millis(20));
    assert_eq!(p.outcomes(), vec![Outcome::Timeout]);
    assert_eq!(p.sim.ep(p.c).state_sizes().sessions, 0);
}

#[test]
fn lost_ack_for_486_is_recovered_by_timer_g() {
    let mut sc = scfg();
    sc.busy_ratio = 1.0;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    let mut dropped = false;
    p.sim.tap = Some(Box::new(move |_, _, d| {
        if !dropped && d.starts_with(b"ACK") {
            dropped = true;
            return true;
        }
        false
    }));
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(486)]);
    assert_eq!(
        count(&p.lines(S), "SIP/2.0 486"),
        2,
        "Timer G retransmission"
    );
    assert_eq!(count(&p.lines(C), "ACK"), 2, "ACK re-sent from Completed");
    assert_eq!(p.sim.ep(p.c).counters().response(486), 1, "counted once");
    assert_eq!(p.sim.ep(p.s).counters().ack_timeouts, 0);
    // Timer D and Timer I state are absorber records, not transactions.
    for i in [p.c, p.s] {
        let st = p.sim.ep(i).state_sizes();
        assert_eq!(st.transactions, 0, "{st:?}");
        assert!(st.absorbers >= 1, "{st:?}");
    }
    p.assert_clean();
}

#[test]
fn no_ack_at_all_ends_by_timer_h() {
    let mut sc = scfg();
    sc.busy_ratio = 1.0;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.sim.tap = Some(Box::new(|_, _, d| d.starts_with(b"ACK")));
    p.start(1, Duration::ZERO);
    p.run(Duration::from_millis(31_900));
    assert_eq!(p.sim.ep(p.s).state_sizes().transactions, 1);
    p.run(Duration::from_millis(200));
    assert_eq!(p.sim.ep(p.s).counters().ack_timeouts, 1);
    assert_eq!(p.sim.ep(p.s).state_sizes().transactions, 0);
    // G: 0.5, 1.5, 3.5, 7.5, 11.5, ... every 4 s (T2) until H at 32 s.
    assert_eq!(count(&p.lines(S), "SIP/2.0 486"), 1 + 10);
}

#[test]
fn retransmitted_bye_gets_200_from_timer_j_record() {
    let mut p = pair(ccfg(Scenario::Call), scfg(), NetConfig::default());
    let mut dropped = false;
    p.sim.tap = Some(Box::new(move |_, _, d| {
        if !dropped
            && d.starts_with(b"SIP/2.0 200")
            && String::from_utf8_lossy(d).contains(" BYE\r\n")
        {
            dropped = true;
            return true;
        }
        false
    }));
    p.start(1, Duration::from_millis(100));
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    assert_eq!(count(&p.lines(C), "BYE"), 2, "Timer E retransmission");
    assert_eq!(
        count(&p.lines(S), "SIP/2.0 481"),
        0,
        "answered from the J record"
    );
    assert_eq!(p.sim.ep(p.s).counters().duplicates, 1);
    p.assert_clean();
}

#[test]
fn custom_timer_bases() {
    let t = Timers {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        t4: Duration::from_secs(1),
    };
    let mut cc = ccfg(Scenario::Options);
    cc.timers = t;
    let mut sc = scfg();
    sc.timers = t;
    let mut p = pair(cc, sc, NetConfig::default());
    let srv = addr(S);
    p.sim.tap = Some(Box::new(move |_, to, _| to == srv));
    p.start(1, Duration::ZERO);
    p.run(Duration::from_millis(6_390));
    assert!(p.outcomes().is_empty());
    p.run(Duration::from_millis(20));
    assert_eq!(p.outcomes(), vec![Outcome::Timeout], "F = 64·T1 = 6.4 s");
    // E: 0, .1, .3, .7, then every T2 = .4 s up to 6.4 s: 1 + 3 + 14 = 18 sends.
    assert_eq!(p.lines(C).len(), 18);
}

#[test]
fn transaction_rtt_events_when_enabled() {
    let mut p = pair(ccfg(Scenario::Register), scfg(), NetConfig::default());
    p.sim.ep(p.c).set_rtt_events(true);
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    let rtts: Vec<_> = p
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::TransactionRtt { method, rtt } => Some((*method, *rtt)),
            _ => None,
        })
        .collect();
    assert_eq!(
        rtts,
        vec![(MethodKind::Register, Duration::from_millis(10)); 2]
    );
}
