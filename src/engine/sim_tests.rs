//! Flow tests: client and server engines over the simulated network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sim::{NetConfig, Sim};
use super::*;
use crate::dist::Delay;
use crate::flow::Flow;
use crate::sip;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const C: &str = "10.0.0.1:5060";
const S: &str = "10.0.0.2:5060";

fn ccfg(scenario: Scenario) -> ClientConfig {
    let mut c = ClientConfig::new(scenario, addr(S), addr(C));
    c.users = Arc::new(UserSource::pattern("u{000..099}", "pw-{user}").unwrap());
    c
}

fn scfg() -> ServerConfig {
    ServerConfig {
        local: addr(S),
        ..ServerConfig::default()
    }
}

struct Pair {
    sim: Sim,
    c: usize,
    s: usize,
}

fn pair(cc: ClientConfig, sc: ServerConfig, net: NetConfig) -> Pair {
    let t0 = Instant::now();
    let mut sim = Sim::new(net, t0);
    sim.trace_on = true;
    let c = sim.add(cc.local, Endpoint::client(cc, t0));
    let s = sim.add(sc.local, Endpoint::server(sc, t0));
    Pair { sim, c, s }
}

impl Pair {
    fn start(&mut self, n: usize, hold: Duration) {
        let now = self.sim.now;
        for _ in 0..n {
            assert!(self.sim.ep(self.c).start_attempt(now, now, hold));
        }
    }
    fn run(&mut self, d: Duration) {
        self.sim.run_for(d);
    }
    fn events(&self) -> &[Event] {
        &self.sim.nodes[self.c].events
    }
    fn outcomes(&self) -> Vec<Outcome> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::CallDone { outcome, .. }
                | Event::RegisterDone { outcome, .. }
                | Event::OptionsDone { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect()
    }
    /// Start lines of the datagrams sent by `from`.
    fn lines(&self, from: &str) -> Vec<String> {
        let f = addr(from);
        self.sim
            .trace
            .iter()
            .filter(|t| t.1 == f)
            .map(|t| {
                let end = t.3.iter().position(|c| *c == b'\r').unwrap_or(t.3.len());
                String::from_utf8_lossy(&t.3[..end]).into_owned()
            })
            .collect()
    }
    fn assert_clean(&mut self) {
        // Past every RFC 3261 timer (D = 32 s, J = 64·T1).
        self.run(Duration::from_secs(70));
        for i in [self.c, self.s] {
            let st = self.sim.ep(i).state_sizes();
            assert_eq!(
                (st.transactions, st.absorbers, st.queued),
                (0, 0, 0),
                "node {i} leaked: {st:?}"
            );
        }
        let cs = self.sim.ep(self.c).state_sizes();
        assert_eq!(cs.sessions, 0, "client sessions leaked: {cs:?}");
        assert_eq!(cs.timers, 0, "client timers leaked: {cs:?}");
        let ss = self.sim.ep(self.s).state_sizes();
        if ss.sessions == 0 && ss.bindings == 0 {
            assert_eq!(ss.timers, 0, "server timers leaked: {ss:?}");
        }
        assert_eq!(self.sim.ep(self.c).in_flight(), 0);
    }
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

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
    for e in p.events() {
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
fn options_ping() {
    let mut p = pair(ccfg(Scenario::Options), scfg(), NetConfig::default());
    p.start(4, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 4]);
    p.assert_clean();
}

fn lossy() -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
        loss: 0.10,
        dup: 0.05,
        seed: 11,
    }
}

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
fn proxy_auth_reinvite() {
    let mut sc = scfg();
    sc.auth_invite = true;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(2, Duration::from_millis(500));
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
    let c = p.lines(C);
    assert_eq!(count(&c, "INVITE"), 4);
    assert_eq!(count(&c, "ACK"), 4, "one for the 407, one for the 200");
    assert_eq!(count(&p.lines(S), "SIP/2.0 407"), 2);
    let invites: Vec<_> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"INVITE"))
        .collect();
    let first = sip::parse(&invites[0].3).unwrap();
    assert!(first.proxy_authorization().is_none());
    let second = invites
        .iter()
        .map(|t| sip::parse(&t.3).unwrap())
        .find(|m| m.call_id() == first.call_id() && m.proxy_authorization().is_some())
        .expect("INVITE with Proxy-Authorization, same Call-ID");
    assert_eq!(second.cseq().unwrap().seq, 2);
    p.assert_clean();
}

#[test]
fn busy_and_wrong_password_and_unknown_user() {
    let mut sc = scfg();
    sc.busy_ratio = 1.0;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(2, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(486); 2]);
    assert_eq!(count(&p.lines(C), "ACK"), 2);
    p.assert_clean();

    let mut sc = scfg();
    sc.passwords = Arc::new(UserSource::any("other-{user}").unwrap());
    let mut p = pair(ccfg(Scenario::Register), sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(403)]);

    let mut sc = scfg();
    sc.passwords = Arc::new(UserSource::list(vec![("someone".into(), "x".into())]));
    let mut p = pair(ccfg(Scenario::Register), sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(404)]);
    p.assert_clean();
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

fn raw_request(lines: &str) -> Vec<u8> {
    lines.replace('\n', "\r\n").into_bytes()
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
    assert_eq!(
        r,
        vec![
            "SIP/2.0 501 Not Implemented",
            "SIP/2.0 405 Method Not Allowed",
            "SIP/2.0 481 Call/Transaction Does Not Exist",
            "SIP/2.0 505 Version Not Supported",
            "SIP/2.0 400 Bad Request - missing mandatory header Call-ID",
            "SIP/2.0 400 Bad Request - CSeq method does not match the request method",
        ]
    );
    assert_eq!(p.sim.ep(srv).counters().unparseable, 4);
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
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
fn every_digest_algorithm_registers_and_authenticates_invites() {
    for (alg, int) in crate::auth::Algorithm::ALL
        .into_iter()
        .flat_map(|a| [(a, false), (a, true)])
    {
        let mut sc = scfg();
        sc.algorithm = alg;
        sc.qop_auth_int = int;
        let mut p = pair(ccfg(Scenario::Register), sc.clone(), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Success; 2], "{alg:?}");
        let ch = p
            .sim
            .trace
            .iter()
            .find(|t| t.3.starts_with(b"SIP/2.0 401"))
            .unwrap();
        assert!(
            String::from_utf8_lossy(&ch.3).contains(alg.as_str()),
            "{alg:?}"
        );
        let qop = if int { "qop=auth-int" } else { "qop=auth," };
        let reg = p
            .sim
            .trace
            .iter()
            .find(|t| {
                t.3.starts_with(b"REGISTER") && sip::parse(&t.3).unwrap().authorization().is_some()
            })
            .unwrap();
        assert!(
            String::from_utf8_lossy(&reg.3).contains(qop),
            "{alg:?} {int}"
        );

        sc.auth_invite = true;
        let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
        p.start(1, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Success], "{alg:?}");
    }
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
fn client_digest_preferences_pick_and_refuse_algorithms() {
    // The server offers SHA-256 with qop auth-int only.
    let mut sc = scfg();
    sc.algorithm = crate::auth::Algorithm::Sha256;
    sc.qop_auth_int = true;
    let cases = [
        (vec![], Outcome::Success),
        (
            vec![crate::auth::Algorithm::Md5, crate::auth::Algorithm::Sha256],
            Outcome::Success,
        ),
        // Required MD5 only: the SHA-256 challenge is not answered.
        (vec![crate::auth::Algorithm::Md5], Outcome::Failed(401)),
    ];
    for (prefs, want) in cases {
        let mut cc = ccfg(Scenario::Register);
        cc.digest_algorithms = prefs.clone();
        let mut p = pair(cc, sc.clone(), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![want; 2], "{prefs:?}");
    }
}

/// A 401 carrying one challenge per algorithm, MD5 first.
fn two_challenges() -> Vec<u8> {
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
      From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth,auth-int\"\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n3\", algorithm=SHA-512-256\r\n\
      Content-Length: 0\r\n\r\n"
        .to_vec()
}

#[test]
fn challenge_choice_follows_rfc8760_order_and_preferences() {
    use crate::auth::Algorithm::{Md5, Sha256, Sha256Sess};
    let raw = two_challenges();
    let msg = sip::parse(&raw).unwrap();
    let nonce = |prefs: Vec<crate::auth::Algorithm>| {
        let mut cc = ccfg(Scenario::Register);
        cc.digest_algorithms = prefs;
        super::uac::pick_challenge(Some(&cc), &msg, false)
            .map(|v| crate::auth::parse_challenge(v).unwrap().nonce.to_vec())
    };
    // No preference: the server's order (topmost supported).
    assert_eq!(nonce(vec![]), Some(b"n1".to_vec()));
    assert_eq!(nonce(vec![Sha256, Md5]), Some(b"n2".to_vec()));
    assert_eq!(nonce(vec![Md5, Sha256]), Some(b"n1".to_vec()));
    assert_eq!(nonce(vec![Sha256Sess]), None);
    // Proxy-Authenticate is looked up for 407 only.
    assert!(super::uac::pick_challenge(None, &msg, true).is_none());
}

#[test]
fn client_answers_auth_int_when_preferred_and_offered() {
    // The engine's server offers one qop; check the choice through the
    // Authorization the client writes for a challenge offering both.
    let raw = two_challenges();
    let msg = sip::parse(&raw).unwrap();
    let v = super::uac::pick_challenge(None, &msg, false).unwrap();
    let mut ch = crate::auth::parse_challenge(v).unwrap();
    assert_eq!(ch.chosen_qop(), Some(crate::auth::Qop::Auth));
    ch.qop_auth = false;
    assert_eq!(ch.chosen_qop(), Some(crate::auth::Qop::AuthInt));
    // End to end: a client preferring auth-int against a server offering
    // auth-int registers (and says qop=auth-int).
    let mut sc = scfg();
    sc.qop_auth_int = true;
    let mut cc = ccfg(Scenario::Register);
    cc.digest_qop = crate::auth::Qop::AuthInt;
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    assert!(
        p.sim.trace.iter().any(|t| t.3.starts_with(b"REGISTER")
            && String::from_utf8_lossy(&t.3).contains("qop=auth-int"))
    );
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
    for e in p.events() {
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
