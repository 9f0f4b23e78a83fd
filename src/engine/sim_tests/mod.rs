//! Flow tests: client and server engines over the simulated network, by
//! theme. This module has the shared fixtures: a client and a server
//! endpoint on a [`Sim`], and helpers to read what they sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sim::{NetConfig, Sim};
use super::*;
use crate::dist::Delay;
use crate::flow::Flow;
use crate::sip;

mod auth;
mod call;
mod mixed;
mod reach;
mod register;
mod reliable;
mod robustness;
mod scenario;
mod timers;
mod trust;

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
    /// The client's attempt-level events (final responses left out; see
    /// [`Self::final_responses`]).
    fn events(&self) -> Vec<Event> {
        self.sim.nodes[self.c]
            .events
            .iter()
            .filter(|e| !matches!(e, Event::FinalResponse { .. }))
            .cloned()
            .collect()
    }
    /// Every final response the client's transactions got, in order.
    fn final_responses(&self) -> Vec<(MethodKind, u16)> {
        self.sim.nodes[self.c]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::FinalResponse { method, code } => Some((*method, *code)),
                _ => None,
            })
            .collect()
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

fn pair(cc: ClientConfig, sc: ServerConfig, net: NetConfig) -> Pair {
    let t0 = Instant::now();
    let mut sim = Sim::new(net, t0);
    sim.trace_on = true;
    let c = sim.add(cc.local, Endpoint::client(cc, t0));
    let s = sim.add(sc.local, Endpoint::server(sc, t0));
    Pair { sim, c, s }
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
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

fn raw_request(lines: &str) -> Vec<u8> {
    lines.replace('\n', "\r\n").into_bytes()
}
