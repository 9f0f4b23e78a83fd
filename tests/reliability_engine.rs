//! Reliability of the sans-IO engine in virtual time (sipstorm issue 8):
//! a black hole over a long run (state flat, freed at Timer B/F), heavy
//! loss, a slow network, an outage and restart, a garbage-speaking server,
//! mutated traffic injected mid-flow, and the registrar's security rules
//! (wrong passwords, stale nonces, increasing nonce counts, bounded
//! bindings). No sockets, no real clock: fast and deterministic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sipstorm::auth::{Ha1, parse_challenge, write_authorization};
use sipstorm::engine::sim::{NetConfig, Sim};
use sipstorm::engine::{
    ClientConfig, Endpoint, Event, Outcome, SansIo, Scenario, ServerConfig, UserSource,
};
use sipstorm::flow::Flow;
use sipstorm::sip;

const C: &str = "10.0.0.1:5060";
const S: &str = "10.0.0.2:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ccfg(sc: Scenario) -> ClientConfig {
    let mut c = ClientConfig::new(sc, addr(S), addr(C));
    c.users = Arc::new(UserSource::pattern("u{00000..09999}", "pw-{user}").unwrap());
    c
}

fn scfg() -> ServerConfig {
    ServerConfig {
        local: addr(S),
        ..ServerConfig::default()
    }
}

fn outcomes(sim: &Sim, node: usize) -> Vec<Outcome> {
    sim.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallDone { outcome, .. }
            | Event::RegisterDone { outcome, .. }
            | Event::OptionsDone { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// Start `rate` attempts per virtual second for `secs` seconds.
fn drive(
    sim: &mut Sim,
    c: usize,
    rate: u32,
    secs: u32,
    hold: Duration,
    mut each: impl FnMut(&mut Sim, u32),
) -> u32 {
    let mut started = 0;
    for s in 0..secs {
        for i in 0..rate {
            let now = sim.now;
            if sim.ep(c).start_attempt(now, now, hold) {
                started += 1;
            }
            sim.run_for(Duration::from_secs(1) / rate);
            let _ = i;
        }
        each(sim, s);
    }
    started
}

/// A black hole over 200 virtual seconds: every attempt times out at
/// 64·T1, live state stays flat once the first Timer B/F window has
/// passed, and everything is freed at the end.
#[test]
fn black_hole_state_is_flat_and_freed() {
    for sc in [Scenario::Options, Scenario::Register, Scenario::Call] {
        let t0 = Instant::now();
        let mut sim = Sim::new(NetConfig::default(), t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        let srv = addr(S);
        sim.tap = Some(Box::new(move |_, to, _| to == srv));
        let mut samples = Vec::new();
        let started = drive(&mut sim, c, 50, 200, Duration::from_secs(1), |sim, s| {
            if s % 10 == 9 {
                samples.push(sim.ep(c).state_sizes());
            }
        });
        // After 40 s the steady state holds 32 s of attempts (rate × 64·T1).
        let steady: Vec<_> = samples[4..].iter().collect();
        let max_sess = steady.iter().map(|s| s.sessions).max().unwrap();
        let min_sess = steady.iter().map(|s| s.sessions).min().unwrap();
        assert!(max_sess <= 50 * 33, "{sc:?} sessions {max_sess}");
        assert!(
            max_sess - min_sess <= 50,
            "{sc:?} not flat: {min_sess}..{max_sess}"
        );
        let b0 = steady[0].approx_bytes;
        let b1 = steady.iter().map(|s| s.approx_bytes).max().unwrap();
        assert!(b1 <= b0 + b0 / 5, "{sc:?} bytes grew {b0} -> {b1}");
        sim.run_for(Duration::from_secs(70));
        let st = sim.ep(c).state_sizes();
        assert_eq!(
            (st.sessions, st.transactions, st.timers),
            (0, 0, 0),
            "{sc:?} {st:?}"
        );
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started, "{sc:?}");
        assert!(o.iter().all(|o| *o == Outcome::Timeout), "{sc:?}");
        assert_eq!(sim.ep(c).counters().timeouts, u64::from(started));
    }
}

/// Heavy loss, duplication and reordering: every attempt ends (success or
/// a counted failure), nothing leaks on either side.
#[test]
fn heavy_loss_every_attempt_accounted_and_freed() {
    for (sc, loss) in [
        (Scenario::Call, 0.3),
        (Scenario::Register, 0.5),
        (Scenario::Options, 0.7),
    ] {
        let net = NetConfig {
            loss,
            dup: 0.1,
            jitter: Duration::from_millis(30),
            ..NetConfig::default()
        };
        let t0 = Instant::now();
        let mut sim = Sim::new(net, t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        let s = sim.add(addr(S), Endpoint::server(scfg(), t0));
        let started = drive(&mut sim, c, 20, 10, Duration::from_millis(200), |_, _| {});
        let now = sim.now;
        sim.ep(c).shutdown(now);
        sim.run_for(Duration::from_secs(120));
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started, "{sc:?} {loss}");
        assert!(
            o.iter().any(|o| o.is_success()),
            "{sc:?} {loss}: none succeeded"
        );
        assert_eq!(sim.ep(c).in_flight(), 0);
        for n in [c, s] {
            let st = sim.ep(n).state_sizes();
            assert_eq!(
                (st.transactions, st.absorbers, st.queued),
                (0, 0, 0),
                "{sc:?} node {n} {st:?}"
            );
        }
        assert_eq!(sim.ep(c).state_sizes().sessions, 0);
    }
}

/// A slow network (one-way 700 ms > T1): retransmissions, duplicates
/// absorbed, every attempt still succeeds.
#[test]
fn slow_target_succeeds_with_retransmissions() {
    let net = NetConfig {
        latency: Duration::from_millis(700),
        ..NetConfig::default()
    };
    for sc in [Scenario::Options, Scenario::Register, Scenario::Call] {
        let t0 = Instant::now();
        let mut sim = Sim::new(net, t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        sim.add(addr(S), Endpoint::server(scfg(), t0));
        let started = drive(&mut sim, c, 10, 3, Duration::from_millis(100), |_, _| {});
        sim.run_for(Duration::from_secs(70));
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started);
        assert!(o.iter().all(|o| o.is_success()), "{sc:?} {o:?}");
        assert!(sim.ep(c).counters().retransmitted > 0, "{sc:?}");
    }
}

/// The target goes away for 40 s (longer than Timer B/F) and comes back:
/// attempts started during the outage time out, the others succeed.
#[test]
fn outage_and_restart() {
    let t0 = Instant::now();
    let mut sim = Sim::new(NetConfig::default(), t0);
    let c = sim.add(addr(C), Endpoint::client(ccfg(Scenario::Register), t0));
    sim.add(addr(S), Endpoint::server(scfg(), t0));
    let (down, up) = (t0 + Duration::from_secs(5), t0 + Duration::from_secs(45));
    let srv = addr(S);
    let clock = std::rc::Rc::new(std::cell::Cell::new(t0));
    let ck = clock.clone();
    sim.tap = Some(Box::new(move |_, to, _| {
        let now = ck.get();
        to == srv && now >= down && now < up
    }));
    for _ in 0..60 * 10 {
        let now = sim.now;
        clock.set(now);
        sim.ep(c).start_attempt(now, now, Duration::ZERO);
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(70));
    let o = outcomes(&sim, c);
    let ok = o.iter().filter(|o| o.is_success()).count();
    let to = o.iter().filter(|o| **o == Outcome::Timeout).count();
    assert_eq!(ok + to, o.len(), "{o:?}");
    // Down 40 s at 10/s. Attempts whose Timer F (32 s) ran out during the
    // outage fail: those started in its first 8 s (plus up to one T2 of
    // retransmission spacing); later ones are retransmitted into the
    // restarted target and succeed.
    assert!(
        (70..=130).contains(&to),
        "timed out {to} ok {ok} of {} {:?}",
        o.len(),
        sim.ep(c)
            .counters()
            .responses
            .iter()
            .enumerate()
            .filter(|x| *x.1 > 0)
            .collect::<Vec<_>>()
    );
    assert!(ok >= 150, "succeeded {ok}");
    assert_eq!(sim.ep(c).in_flight(), 0);
}

/// A broken server: garbage, truncated copies, a 200 with a foreign
/// branch, a 200 with our branch but a foreign Call-ID. All counted as
/// unparseable or unexpected; no attempt is completed by them.
#[test]
fn broken_server_is_counted_never_matched() {
    for sc in [Scenario::Options, Scenario::Register, Scenario::Call] {
        let t0 = Instant::now();
        let mut sim = Sim::new(NetConfig::default(), t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        sim.add_script(
            addr(S),
            Box::new(|from, req| {
                let text = String::from_utf8_lossy(req).into_owned();
                let ok = |find: &str, repl: &str| {
                    let mut r = text.replacen(find, repl, 1);
                    let first_end = r.find("\r\n").unwrap_or(0);
                    r.replace_range(..first_end, "SIP/2.0 200 OK");
                    r.into_bytes()
                };
                let call_id = text
                    .lines()
                    .find(|l| l.starts_with("Call-ID:"))
                    .unwrap_or("Call-ID: x")
                    .to_string();
                vec![
                    (from, b"\x00\xff garbage".to_vec()),
                    (from, req[..req.len() / 3].to_vec()),
                    (from, ok("branch=z9hG4bK", "branch=z9hG4bKx")),
                    (from, ok(&call_id, "Call-ID: not-yours")),
                ]
            }),
        );
        let started = drive(&mut sim, c, 10, 2, Duration::from_millis(100), |_, _| {});
        sim.run_for(Duration::from_secs(70));
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started, "{sc:?}");
        assert!(o.iter().all(|o| *o == Outcome::Timeout), "{sc:?} {o:?}");
        let k = sim.ep(c).counters();
        assert!(k.unparseable >= 2 * u64::from(started), "{sc:?} {k:?}");
        assert!(
            k.unexpected >= 2 * u64::from(started),
            "{sc:?} unexpected {}",
            k.unexpected
        );
        assert_eq!(k.responses[200], 0, "{sc:?}");
        let st = sim.ep(c).state_sizes();
        assert_eq!((st.sessions, st.transactions), (0, 0), "{sc:?}");
    }
}

/// One mutation of a datagram: byte edits, an insertion, a deletion and a
/// cut, driven by proptest.
fn mutate(m: &[u8], edits: &[(u16, u8)], ins: (u16, u8, u8), del: (u16, u8), cut: u16) -> Vec<u8> {
    let mut v = m.to_vec();
    if v.is_empty() {
        return v;
    }
    for (p, b) in edits {
        let n = v.len();
        v[*p as usize % n] = *b;
    }
    let p = ins.0 as usize % (v.len() + 1);
    v.splice(p..p, std::iter::repeat_n(ins.1, ins.2 as usize % 40));
    if !v.is_empty() {
        let p = del.0 as usize % v.len();
        let e = (p + del.1 as usize % 40).min(v.len());
        v.drain(p..e);
    }
    let keep = cut as usize % (v.len() + 1);
    v.truncate(keep.max(v.len() / 2));
    v
}

/// Mutated real traffic injected into live endpoints mid-flow (extends
/// `engine::sim_tests::robustness::mutated_messages_never_panic`, which feeds fresh
/// endpoints): no panic, and the calls in progress still finish and free.
#[test]
fn mutations_injected_mid_flow_never_panic_or_leak() {
    let t0 = Instant::now();
    let mut sim = Sim::new(NetConfig::default(), t0);
    sim.trace_on = true;
    let c = sim.add(addr(C), Endpoint::client(ccfg(Scenario::Call), t0));
    let s = sim.add(addr(S), Endpoint::server(scfg(), t0));
    drive(&mut sim, c, 5, 2, Duration::from_millis(300), |_, _| {});
    sim.run_for(Duration::from_secs(2));
    let msgs: Vec<Vec<u8>> = sim.trace.iter().map(|t| t.3.clone()).collect();
    assert!(msgs.len() > 20);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    let strat = (
        0usize..1000,
        proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        (any::<u16>(), any::<u8>(), any::<u8>()),
        (any::<u16>(), any::<u8>()),
        any::<u16>(),
    );
    let sim = std::cell::RefCell::new(sim);
    runner
        .run(&strat, |(i, edits, ins, del, cut)| {
            let mut sim = sim.borrow_mut();
            let m = mutate(&msgs[i % msgs.len()], &edits, ins, del, cut);
            let now = sim.now;
            // New calls keep starting while mutated datagrams arrive.
            if i % 7 == 0 {
                sim.ep(c)
                    .start_attempt(now, now, Duration::from_millis(200));
            }
            for (node, from) in [(c, addr(S)), (s, addr(C))] {
                sim.ep(node).handle(now, Flow::udp(from), &m);
            }
            for node in [c, s] {
                sim.flush(node);
            }
            sim.run_for(Duration::from_millis(20));
            Ok(())
        })
        .unwrap();
    let mut sim = sim.into_inner();
    let now = sim.now;
    sim.ep(c).shutdown(now);
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.ep(c).in_flight(), 0);
    for n in [c, s] {
        let st = sim.ep(n).state_sizes();
        assert_eq!(
            (st.transactions, st.absorbers, st.queued),
            (0, 0, 0),
            "node {n} {st:?}"
        );
    }
    assert_eq!(sim.ep(c).state_sizes().sessions, 0);
    let ok = outcomes(&sim, c).iter().filter(|o| o.is_success()).count();
    assert!(ok >= 10, "only {ok} calls succeeded");
}

// ---- registrar security -------------------------------------------------

fn register(branch: u32, cseq: u32, user: &str, extra: &str, contacts: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:10.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsec{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@10.0.0.2>;tag=t1\r\nTo: <sip:{user}@10.0.0.2>\r\n\
         Call-ID: sec-{user}\r\nCSeq: {cseq} REGISTER\r\n{contacts}{extra}\
         Expires: 600\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Send one request to the server endpoint, return its responses.
fn ask(srv: &mut Endpoint, now: Instant, req: &[u8]) -> Vec<Vec<u8>> {
    srv.handle(now, Flow::udp(addr(C)), req);
    let mut out = Vec::new();
    let mut b = Vec::new();
    while srv.poll_transmit(&mut b).is_some() {
        out.push(b.clone());
    }
    out
}

fn status(r: &[Vec<u8>]) -> u16 {
    assert_eq!(
        r.len(),
        1,
        "{:?}",
        r.iter()
            .map(|m| String::from_utf8_lossy(m))
            .collect::<Vec<_>>()
    );
    sip::parse(&r[0]).unwrap().status().unwrap()
}

fn challenge_of(r: &[u8]) -> Vec<u8> {
    sip::parse(r)
        .unwrap()
        .header(b"WWW-Authenticate")
        .expect("a challenge")
        .to_vec()
}

fn auth_header(ch: &[u8], user: &str, pw: &str, nc: u32) -> String {
    let ch = parse_challenge(ch).unwrap();
    let ha1 = Ha1::from_challenge(&ch, user.as_bytes(), pw.as_bytes());
    let mut a = Vec::new();
    write_authorization(
        &mut a,
        &ch,
        user.as_bytes(),
        &ha1,
        b"REGISTER",
        b"sip:10.0.0.2",
        b"",
        nc,
        b"cn0",
    )
    .unwrap();
    format!("Authorization: {}\r\n", String::from_utf8(a).unwrap())
}

/// Wrong passwords are rejected; a replayed nonce count is refused; the
/// nonce goes stale after its lifetime; bindings per user are bounded.
#[test]
fn registrar_verifies_credentials_for_real() {
    let t0 = Instant::now();
    let mut sc = scfg();
    sc.nonce_lifetime = Duration::from_secs(30);
    let mut srv = Endpoint::server(sc, t0);
    let ct = "Contact: <sip:u1@10.0.0.1:5060>\r\n";
    let r = ask(&mut srv, t0, &register(1, 1, "u1", "", ct));
    assert_eq!(status(&r), 401);
    let ch = challenge_of(&r[0]);
    assert!(String::from_utf8_lossy(&ch).contains("qop"), "expects qop");

    // Wrong password: 403, and it does not leak into the response.
    let r = ask(
        &mut srv,
        t0,
        &register(2, 2, "u1", &auth_header(&ch, "u1", "wrong-pw", 1), ct),
    );
    assert_eq!(status(&r), 403);
    assert!(!String::from_utf8_lossy(&r[0]).contains("wrong-pw"));

    // Right password, nc=1: 200.
    let ok1 = auth_header(&ch, "u1", "pw-u1", 1);
    assert_eq!(
        status(&ask(&mut srv, t0, &register(3, 3, "u1", &ok1, ct))),
        200
    );
    // The same credentials replayed in a new transaction: refused, stale.
    let r = ask(&mut srv, t0, &register(4, 4, "u1", &ok1, ct));
    assert_eq!(status(&r), 401);
    assert!(
        String::from_utf8_lossy(&challenge_of(&r[0]))
            .to_ascii_lowercase()
            .contains("stale=true"),
        "{}",
        String::from_utf8_lossy(&r[0])
    );
    // nc=2: accepted; nc=2 again: refused.
    let ok2 = auth_header(&ch, "u1", "pw-u1", 2);
    assert_eq!(
        status(&ask(&mut srv, t0, &register(5, 5, "u1", &ok2, ct))),
        200
    );
    assert_eq!(
        status(&ask(&mut srv, t0, &register(6, 6, "u1", &ok2, ct))),
        401
    );

    // Past the nonce lifetime: stale even with a growing nc.
    let later = t0 + Duration::from_secs(40);
    let r = ask(
        &mut srv,
        later,
        &register(7, 7, "u1", &auth_header(&ch, "u1", "pw-u1", 3), ct),
    );
    assert_eq!(status(&r), 401);
    let fresh = challenge_of(&r[0]);
    assert!(
        String::from_utf8_lossy(&fresh)
            .to_ascii_lowercase()
            .contains("stale=true")
    );
    // The fresh nonce works.
    let r = ask(
        &mut srv,
        later,
        &register(8, 8, "u1", &auth_header(&fresh, "u1", "pw-u1", 1), ct),
    );
    assert_eq!(status(&r), 200);

    // Unknown realm user with a forged nonce: challenged, never 200.
    let forged = String::from_utf8_lossy(&ch).replace("nonce=\"", "nonce=\"f");
    let r = ask(
        &mut srv,
        later,
        &register(
            9,
            9,
            "u1",
            &auth_header(forged.as_bytes(), "u1", "pw-u1", 1),
            ct,
        ),
    );
    assert_eq!(status(&r), 401);
}

/// One peer registering hundreds of Contacts for one user cannot make the
/// registrar hold more than its per-AOR bound (`max_bindings_per_aor`,
/// default 16): a REGISTER beyond it is refused whole with 403 (issue 13;
/// before, the excess was dropped silently behind a 200).
#[test]
fn bindings_per_user_are_bounded() {
    let t0 = Instant::now();
    let sc = ServerConfig {
        auth: false,
        ..scfg()
    };
    let cap = sc.max_bindings_per_aor;
    let mut srv = Endpoint::server(sc, t0);
    let contacts = |round: u32, n: usize| -> String {
        (0..n)
            .map(|i| format!("Contact: <sip:u1@10.0.{round}.{i}:5060>\r\n"))
            .collect()
    };
    let r = ask(&mut srv, t0, &register(99, 1, "u1", "", &contacts(99, cap)));
    assert_eq!(status(&r), 200);
    for round in 0..5u32 {
        let r = ask(
            &mut srv,
            t0,
            &register(100 + round, 1 + round, "u1", "", &contacts(round, 100)),
        );
        assert_eq!(status(&r), 403, "round {round}");
        assert_eq!(srv.bindings_of(b"u1").len(), cap, "round {round}");
    }
    assert_eq!(srv.state_sizes().bindings, 1);
    assert!(srv.state_sizes().approx_bytes < 1 << 20);
}

/// One peer holding calls open (no BYE for a long hold) cannot make the
/// server hold more than `max_calls_per_peer`: the excess gets 503, and
/// once the held calls end the peer is served again.
#[test]
fn pending_calls_per_peer_are_bounded() {
    let t0 = Instant::now();
    let mut sim = Sim::new(NetConfig::default(), t0);
    let c = sim.add(addr(C), Endpoint::client(ccfg(Scenario::Call), t0));
    let sc = ServerConfig {
        max_calls_per_peer: 5,
        ..scfg()
    };
    let s = sim.add(addr(S), Endpoint::server(sc, t0));
    for _ in 0..12 {
        let now = sim.now;
        assert!(sim.ep(c).start_attempt(now, now, Duration::from_secs(20)));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(2));
    assert!(sim.ep(s).state_sizes().sessions <= 5);
    let rejected = outcomes(&sim, c)
        .iter()
        .filter(|o| **o == Outcome::Failed(503))
        .count();
    assert_eq!(rejected, 7, "{:?}", outcomes(&sim, c));
    // The held calls end (BYE after 20 s); the same peer is served again.
    sim.run_for(Duration::from_secs(25));
    let now = sim.now;
    assert!(
        sim.ep(c)
            .start_attempt(now, now, Duration::from_millis(100))
    );
    sim.run_for(Duration::from_secs(70));
    let o = outcomes(&sim, c);
    assert_eq!(o.iter().filter(|o| o.is_success()).count(), 6, "{o:?}");
    assert_eq!(sim.ep(s).state_sizes().sessions, 0);
}

/// `abandon` ends every attempt still in flight exactly once (a driver
/// whose drain deadline comes before Timer B/F), and the timers that fire
/// later report nothing more.
#[test]
fn abandon_ends_every_attempt_exactly_once() {
    for sc in [Scenario::Options, Scenario::Register, Scenario::Call] {
        let t0 = Instant::now();
        let mut sim = Sim::new(NetConfig::default(), t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        let srv = addr(S);
        sim.tap = Some(Box::new(move |_, to, _| to == srv));
        let started = drive(&mut sim, c, 10, 1, Duration::from_secs(1), |_, _| {});
        sim.run_for(Duration::from_secs(3));
        let now = sim.now;
        sim.ep(c).abandon(now);
        sim.flush(c);
        assert_eq!(sim.ep(c).in_flight(), 0, "{sc:?}");
        assert_eq!(outcomes(&sim, c).len() as u32, started, "{sc:?}");
        sim.run_for(Duration::from_secs(70));
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started, "{sc:?} events after abandon");
        assert!(o.iter().all(|o| *o == Outcome::Timeout));
        let st = sim.ep(c).state_sizes();
        assert_eq!((st.sessions, st.transactions), (0, 0), "{sc:?} {st:?}");
    }
}

/// Outcomes by kind and the client's live state after the wheel has run
/// long enough for any forgotten timer (70 s > 64·T1 + Timer D/K).
fn settle(sim: &mut Sim, c: usize) -> sipstorm::engine::StateSizes {
    sim.run_for(Duration::from_secs(70));
    sim.ep(c).state_sizes()
}

/// A transport error (ICMP port unreachable) for the target ends every
/// attempt waiting on it at once, exactly once, with
/// `Outcome::TransportError` (RFC 3261 §17.1.4), not at Timer B/F; its
/// state is freed; an error for another destination ends nothing.
#[test]
fn transport_error_ends_waiting_attempts_at_once() {
    for sc in [Scenario::Options, Scenario::Register, Scenario::Call] {
        let t0 = Instant::now();
        let mut sim = Sim::new(NetConfig::default(), t0);
        let c = sim.add(addr(C), Endpoint::client(ccfg(sc), t0));
        let srv = addr(S);
        // Nothing listens at the target: every datagram to it is lost.
        sim.tap = Some(Box::new(move |_, to, _| to == srv));
        let started = drive(&mut sim, c, 10, 1, Duration::from_secs(1), |_, _| {});
        sim.run_for(Duration::from_millis(500));
        assert!(started > 0 && outcomes(&sim, c).is_empty(), "{sc:?}");
        let now = sim.now;
        assert_eq!(
            sim.ep(c)
                .transport_error(now, Flow::udp(addr("10.0.0.9:5060"))),
            0,
            "{sc:?}: another destination"
        );
        assert_eq!(sim.ep(c).in_flight() as u32, started, "{sc:?}");
        let ended = sim.ep(c).transport_error(now, Flow::udp(srv));
        sim.flush(c);
        assert_eq!(ended as u32, started, "{sc:?}");
        assert_eq!(sim.ep(c).in_flight(), 0, "{sc:?}");
        let o = outcomes(&sim, c);
        assert_eq!(o.len() as u32, started, "{sc:?}");
        assert!(
            o.iter().all(|o| *o == Outcome::TransportError),
            "{sc:?} {o:?}"
        );
        let st = sim.ep(c).state_sizes();
        assert_eq!((st.sessions, st.transactions), (0, 0), "{sc:?} {st:?}");
        // A second report finds nothing; the cancelled timers report
        // nothing more and drain from the wheel.
        assert_eq!(sim.ep(c).transport_error(now, Flow::udp(srv)), 0, "{sc:?}");
        let st = settle(&mut sim, c);
        assert_eq!(
            outcomes(&sim, c).len() as u32,
            started,
            "{sc:?} late events"
        );
        assert_eq!(
            (st.sessions, st.transactions, st.timers, st.queued),
            (0, 0, 0, 0),
            "{sc:?} {st:?}"
        );
        assert_eq!(sim.ep(c).counters().timeouts, 0, "{sc:?}");
    }
}

/// Calls past the first transaction: a transport error ends ringing calls
/// (INVITE in Proceeding: nothing listens where the final response would
/// come from) and calls whose BYE is outstanding, each once with
/// `Outcome::TransportError`; calls in hold (no transaction) are left
/// alone and end normally.
#[test]
fn transport_error_ends_ringing_and_byeing_calls() {
    let t0 = Instant::now();
    let srv = addr(S);
    // Ringing: the server rings 5 s before answering.
    let mut sim = Sim::new(NetConfig::default(), t0);
    let c = sim.add(addr(C), Endpoint::client(ccfg(Scenario::Call), t0));
    let ring = ServerConfig {
        ring: sipstorm::dist::Delay::Fixed(Duration::from_secs(5)),
        ..scfg()
    };
    sim.add(srv, Endpoint::server(ring, t0));
    let started = drive(&mut sim, c, 5, 1, Duration::from_secs(1), |_, _| {});
    sim.run_for(Duration::from_millis(300));
    assert_eq!(sim.ep(c).in_flight() as u32, started);
    let now = sim.now;
    assert_eq!(
        sim.ep(c).transport_error(now, Flow::udp(srv)) as u32,
        started
    );
    sim.flush(c);
    let o = outcomes(&sim, c);
    assert_eq!(o.len() as u32, started);
    assert!(o.iter().all(|o| *o == Outcome::TransportError), "{o:?}");
    assert_eq!(sim.ep(c).state_sizes().sessions, 0);

    // Byeing: answered at once, held 2 s; the target vanishes during hold.
    let mut sim = Sim::new(NetConfig::default(), t0);
    let c = sim.add(addr(C), Endpoint::client(ccfg(Scenario::Call), t0));
    sim.add(srv, Endpoint::server(scfg(), t0));
    let gone = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = gone.clone();
    sim.tap = Some(Box::new(move |_, to, _| to == srv && g.get()));
    let started = drive(&mut sim, c, 5, 1, Duration::from_secs(2), |_, _| {});
    sim.run_for(Duration::from_millis(200));
    // In hold: no transaction to fail.
    let now = sim.now;
    assert_eq!(sim.ep(c).transport_error(now, Flow::udp(srv)), 0);
    assert_eq!(sim.ep(c).in_flight() as u32, started);
    gone.set(true);
    sim.run_for(Duration::from_secs(2));
    // Every BYE is out and unanswered.
    assert!(outcomes(&sim, c).is_empty());
    let now = sim.now;
    assert_eq!(
        sim.ep(c).transport_error(now, Flow::udp(srv)) as u32,
        started
    );
    sim.flush(c);
    let o = outcomes(&sim, c);
    assert_eq!(o.len() as u32, started);
    assert!(o.iter().all(|o| *o == Outcome::TransportError), "{o:?}");
    let st = settle(&mut sim, c);
    assert_eq!(outcomes(&sim, c).len() as u32, started, "late events");
    assert_eq!(
        (st.sessions, st.transactions, st.timers),
        (0, 0, 0),
        "{st:?}"
    );
}
