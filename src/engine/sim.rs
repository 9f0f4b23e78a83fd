//! Virtual-time simulation harness: endpoints exchange datagrams over a
//! simulated network with latency, jitter (hence reordering), loss and
//! duplication, with no sockets and no real clock (the quinn-proto `Pair`
//! idea). Public so benches and other crates' tests can drive engines too.
//!
//! Each message goes over the transport kind of the flow its sender put it
//! on ([`crate::engine::ClientConfig::transport`] picks it for a client; a
//! server answers on the flow the request came in on). Unreliable flows
//! (UDP) suffer the configured loss, duplication and jitter; reliable ones
//! (TCP, TLS, WS, WSS) are lossless and ordered, as a stream connection
//! is, and the receiver sees the connection's [`ConnId`]. The [`Tap`]
//! applies to every flow: it models a peer or middlebox that swallows a
//! message, not the network.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::util::Rng;
use super::{Endpoint, Event, SansIo};
use crate::flow::{ConnId, Flow, TransportKind};

/// Network conditions (of unreliable flows; reliable ones only take the
/// latency).
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// One-way base latency.
    pub latency: Duration,
    /// Extra uniform random delay in `[0, jitter)`; reorders datagrams.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Seed of the network's randomness.
    pub seed: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            dup: 0.0,
            seed: 7,
        }
    }
}

/// A scripted peer: gets each message, returns messages to send (over the
/// transport the message came on).
pub type Script = Box<dyn FnMut(SocketAddr, &[u8]) -> Vec<(SocketAddr, Vec<u8>)>>;

/// Decides per datagram (from, to, bytes) whether the network drops it.
pub type Tap = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> bool>;

enum Peer {
    Engine(Box<Endpoint>),
    Script(Script),
}

/// One simulated host.
pub struct Node {
    /// Its address.
    pub addr: SocketAddr,
    peer: Peer,
    /// Events it reported, in order.
    pub events: Vec<Event>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .field("events", &self.events.len())
            .finish()
    }
}

/// A trace entry: (sent at, from, to, bytes).
pub type Trace = (Instant, SocketAddr, SocketAddr, Vec<u8>);

/// A message on its way.
struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    transport: TransportKind,
    data: Vec<u8>,
}

/// The simulation.
pub struct Sim {
    /// Current virtual time.
    pub now: Instant,
    /// Hosts.
    pub nodes: Vec<Node>,
    /// Network conditions (may be changed between steps).
    pub net: NetConfig,
    rng: Rng,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    packets: Vec<Option<Packet>>,
    free: Vec<usize>,
    /// Connections of reliable flows, by the pair of hosts (in either
    /// order); a connection's [`ConnId`] is its index + 1.
    conns: Vec<(SocketAddr, SocketAddr)>,
    /// Optional selective dropper (true = drop).
    pub tap: Option<Tap>,
    /// Every datagram put on the wire (before loss), when `trace_on`.
    pub trace: Vec<Trace>,
    /// Record `trace`.
    pub trace_on: bool,
    /// Datagrams addressed to nobody.
    pub undeliverable: u64,
    buf: Vec<u8>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.nodes)
            .field("in_flight", &self.queue.len())
            .finish()
    }
}

impl Sim {
    /// An empty simulation starting at `now`.
    pub fn new(net: NetConfig, now: Instant) -> Self {
        Sim {
            now,
            nodes: Vec::new(),
            net,
            rng: Rng::new(net.seed),
            seq: 0,
            queue: BinaryHeap::new(),
            packets: Vec::new(),
            free: Vec::new(),
            conns: Vec::new(),
            tap: None,
            trace: Vec::new(),
            trace_on: false,
            undeliverable: 0,
            buf: Vec::new(),
        }
    }

    /// Add an engine at `addr`; returns its node index.
    pub fn add(&mut self, addr: SocketAddr, ep: Endpoint) -> usize {
        self.nodes.push(Node {
            addr,
            peer: Peer::Engine(Box::new(ep)),
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Add a scripted peer at `addr`.
    pub fn add_script(&mut self, addr: SocketAddr, s: Script) -> usize {
        self.nodes.push(Node {
            addr,
            peer: Peer::Script(s),
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The engine of node `i`.
    ///
    /// # Panics
    /// If node `i` is a scripted peer (a test bug).
    pub fn ep(&mut self, i: usize) -> &mut Endpoint {
        match &mut self.nodes[i].peer {
            Peer::Engine(e) => e,
            Peer::Script(_) => panic!("node {i} is scripted"),
        }
    }

    fn schedule(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        transport: TransportKind,
        data: Vec<u8>,
    ) {
        if self.trace_on {
            self.trace.push((self.now, from, to, data.clone()));
        }
        if let Some(t) = &mut self.tap
            && t(from, to, &data)
        {
            return;
        }
        let reliable = transport.is_reliable();
        if !reliable && self.rng.chance(self.net.loss) {
            return;
        }
        let copies = if !reliable && self.rng.chance(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            // Reliable flows take no jitter: with the latency alone, and the
            // sequence number breaking ties, they arrive in order.
            let jitter = if reliable || self.net.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.net.jitter.mul_f64(self.rng.next_f64())
            };
            let at = self.now + self.net.latency + jitter;
            let pkt = Packet {
                from,
                to,
                transport,
                data: data.clone(),
            };
            let slot = match self.free.pop() {
                Some(s) => {
                    self.packets[s] = Some(pkt);
                    s
                }
                None => {
                    self.packets.push(Some(pkt));
                    self.packets.len() - 1
                }
            };
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, slot)));
        }
    }

    /// The flow a message from `from` to `to` over `transport` arrives on:
    /// a reliable one names the connection between the two hosts.
    fn arrival_flow(&mut self, from: SocketAddr, to: SocketAddr, transport: TransportKind) -> Flow {
        if !transport.is_reliable() {
            return Flow::new(transport, from, ConnId::ANY);
        }
        let i = match self
            .conns
            .iter()
            .position(|&(a, b)| (a, b) == (from, to) || (a, b) == (to, from))
        {
            Some(i) => i,
            None => {
                self.conns.push((from, to));
                self.conns.len() - 1
            }
        };
        Flow::new(transport, from, ConnId(i as u32 + 1))
    }

    /// Move node `i`'s queued datagrams onto the network and its events
    /// into `events`.
    pub fn flush(&mut self, i: usize) {
        let from = self.nodes[i].addr;
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            let dest = match &mut self.nodes[i].peer {
                Peer::Engine(e) => e.poll_transmit(&mut buf),
                Peer::Script(_) => None,
            };
            let Some(dest) = dest else {
                self.buf = buf;
                break;
            };
            self.schedule(from, dest.peer, dest.transport, buf.clone());
            self.buf = buf;
        }
        let node = &mut self.nodes[i];
        if let Peer::Engine(e) = &mut node.peer {
            while let Some(ev) = e.poll_event() {
                node.events.push(ev);
            }
        }
    }

    /// Earliest pending thing: a delivery or a node timer.
    pub fn next_time(&self) -> Option<Instant> {
        let mut t = self.queue.peek().map(|Reverse((at, _, _))| *at);
        for n in &self.nodes {
            if let Peer::Engine(e) = &n.peer
                && let Some(d) = e.poll_timeout()
            {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        }
        t
    }

    /// Process the next instant with work, if it is not after `limit`.
    /// Returns false when nothing is left before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
        let Some(t) = self.next_time() else {
            return false;
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        while let Some(Reverse((at, _, slot))) = self.queue.peek().copied() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let Some(Packet {
                from,
                to,
                transport,
                data,
            }) = self.packets.get_mut(slot).and_then(Option::take)
            else {
                continue;
            };
            self.free.push(slot);
            let Some(j) = self.nodes.iter().position(|n| n.addr == to) else {
                self.undeliverable += 1;
                continue;
            };
            let now = self.now;
            let flow = self.arrival_flow(from, to, transport);
            let out = match &mut self.nodes[j].peer {
                Peer::Engine(e) => {
                    e.handle(now, flow, &data);
                    Vec::new()
                }
                Peer::Script(s) => s(from, &data),
            };
            for (dest, d) in out {
                self.schedule(to, dest, transport, d);
            }
            self.flush(j);
        }
        let now = self.now;
        for i in 0..self.nodes.len() {
            if let Peer::Engine(e) = &mut self.nodes[i].peer
                && e.poll_timeout().is_some_and(|d| d <= now)
            {
                e.handle_timeout(now);
            }
            self.flush(i);
        }
        true
    }

    /// Run until virtual time `t` (or until nothing is left to do).
    pub fn run_until(&mut self, t: Instant) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }
}
