//! Small sans-IO endpoints to exercise the event loops without the SIP engine:
//! an echo server and a paced pinger, plus [`Driven`], the adapter that runs
//! any [`SansIo`] endpoint as a transport [`Worker`]. Used by this module's
//! tests and by the end-to-end tests of both backends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::SansIo;
use crate::flow::Flow;

use super::{IoCounters, Tick, Worker};

/// Echoes every datagram back to its sender.
#[derive(Debug, Default)]
pub struct Echo {
    queue: VecDeque<(Flow, Vec<u8>)>,
    /// Datagrams echoed so far.
    pub echoed: u64,
}

impl SansIo for Echo {
    type Event = ();
    fn handle(&mut self, _now: Instant, from: Flow, data: &[u8]) {
        self.queue.push_back((from, data.to_vec()));
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        let (to, data) = self.queue.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&data);
        self.echoed += 1;
        Some(to)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

/// Sends `total` numbered pings to `target`, one every `interval`, and
/// counts the distinct answers. Gives up `grace` after the last send.
#[derive(Debug)]
pub struct Pinger {
    target: SocketAddr,
    total: u64,
    interval: Duration,
    grace: Duration,
    next_send: Instant,
    sent: u64,
    seen: Vec<bool>,
    /// Distinct pings answered.
    pub received: u64,
    last_send: Option<Instant>,
    now: Instant,
    events: VecDeque<u64>,
}

impl Pinger {
    pub fn new(target: SocketAddr, total: u64, interval: Duration, now: Instant) -> Pinger {
        Pinger {
            target,
            total,
            interval,
            grace: Duration::from_secs(2),
            next_send: now,
            sent: 0,
            seen: vec![false; usize::try_from(total).unwrap_or(0)],
            received: 0,
            last_send: None,
            now,
            events: VecDeque::new(),
        }
    }

    /// All answered, or the grace period after the last send is over.
    pub fn done(&self, now: Instant) -> bool {
        self.received == self.total
            || (self.sent == self.total && self.last_send.is_some_and(|t| now >= t + self.grace))
    }
}

impl SansIo for Pinger {
    type Event = u64;
    fn handle(&mut self, _now: Instant, _from: Flow, data: &[u8]) {
        let seq = std::str::from_utf8(data)
            .ok()
            .and_then(|s| s.strip_prefix("ping "))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(slot) = seq.and_then(|i| self.seen.get_mut(i))
            && !*slot
        {
            *slot = true;
            self.received += 1;
            self.events.push_back(self.received);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        let now = self.now;
        if self.sent >= self.total || now < self.next_send {
            return None;
        }
        buf.clear();
        buf.extend_from_slice(format!("ping {}", self.sent).as_bytes());
        self.sent += 1;
        self.next_send += self.interval;
        self.last_send = Some(now);
        Some(Flow::udp(self.target))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (self.sent < self.total).then_some(self.next_send)
    }
    fn poll_event(&mut self) -> Option<u64> {
        self.events.pop_front()
    }
}

/// Runs a [`SansIo`] endpoint as a transport [`Worker`]: timers when due,
/// events counted, stop when `done` says so or the stop flag is raised.
pub struct Driven<E, F> {
    pub endpoint: E,
    done: F,
    stop: Arc<AtomicBool>,
    /// Events drained so far.
    pub events: u64,
    /// The loop counters seen at the last tick.
    pub io: IoCounters,
}

impl<E, F> std::fmt::Debug for Driven<E, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven")
            .field("events", &self.events)
            .field("io", &self.io)
            .finish()
    }
}

impl<E: SansIo, F: FnMut(&E, Instant) -> bool> Driven<E, F> {
    pub fn new(endpoint: E, done: F, stop: Arc<AtomicBool>) -> Self {
        Driven {
            endpoint,
            done,
            stop,
            events: 0,
            io: IoCounters::default(),
        }
    }
}

impl<E: SansIo, F: FnMut(&E, Instant) -> bool> Worker for Driven<E, F> {
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        self.endpoint.handle(now, from, data);
    }
    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        self.io = *io;
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        while self.endpoint.poll_event().is_some() {
            self.events += 1;
        }
        if self.stop.load(Ordering::Relaxed) || (self.done)(&self.endpoint, now) {
            return Tick::Stop;
        }
        Tick::Continue(self.endpoint.poll_timeout())
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        self.endpoint.poll_transmit(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Backend, MAX_DATAGRAM, SocketOptions, bind_udp, run_loop};

    /// Echo server on one thread, pinger on this one, both on `backend`.
    fn ping_pong(backend: Backend, total: u64, interval: Duration) {
        let server = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
        let target = server.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let echo = std::thread::spawn(move || {
            let mut w = Driven::new(Echo::default(), |_: &Echo, _| false, s2);
            run_loop(backend, &server, &mut w).unwrap();
            w.endpoint.echoed
        });
        let client = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
        let now = Instant::now();
        let never = Arc::new(AtomicBool::new(false));
        let mut w = Driven::new(
            Pinger::new(target, total, interval, now),
            |p: &Pinger, now| p.done(now),
            never,
        );
        let io = run_loop(backend, &client, &mut w).unwrap();
        stop.store(true, Ordering::Relaxed);
        let echoed = echo.join().unwrap();
        assert_eq!(w.endpoint.received, total, "{backend}: io {io:?}");
        assert_eq!(w.events, total);
        assert_eq!(io.datagrams_sent, total);
        assert_eq!(io.datagrams_received, total);
        assert_eq!(echoed, total);
        assert_eq!(io.truncated, 0);
    }

    #[test]
    fn uring_ping_pong_paced() {
        if Backend::Uring.resolve().is_err() {
            eprintln!("io_uring unavailable: skipped");
            return;
        }
        ping_pong(Backend::Uring, 200, Duration::from_micros(200));
    }

    #[test]
    fn uring_ping_pong_burst() {
        if Backend::Uring.resolve().is_err() {
            return;
        }
        // More than the send-slot pool in one turn: exercises slot recycling.
        ping_pong(Backend::Uring, 3000, Duration::ZERO);
    }

    #[test]
    fn epoll_ping_pong_paced() {
        ping_pong(Backend::Epoll, 200, Duration::from_micros(200));
    }

    #[test]
    fn epoll_ping_pong_burst() {
        ping_pong(Backend::Epoll, 3000, Duration::ZERO);
    }

    /// Sends one datagram of each size from a plain socket to the loop's
    /// socket, the next once the loop has accounted for the last one
    /// (handed it over or counted it truncated), and records what the
    /// worker got for each: its bytes, or `None` when truncated.
    struct SizeTable {
        sender: std::net::UdpSocket,
        to: SocketAddr,
        sizes: VecDeque<usize>,
        waiting: Option<usize>,
        delivered: Vec<Vec<u8>>,
        truncated_seen: u64,
        got: Vec<(usize, Option<Vec<u8>>)>,
        deadline: Instant,
    }

    /// The payload of a datagram of `size` bytes (differs by size and
    /// position).
    fn pattern(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 + size) as u8).collect()
    }

    impl Worker for SizeTable {
        fn handle(&mut self, _now: Instant, _from: Flow, data: &[u8]) {
            self.delivered.push(data.to_vec());
        }
        fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
            if let Some(size) = self.waiting {
                if !self.delivered.is_empty() {
                    for d in self.delivered.drain(..) {
                        self.got.push((size, Some(d)));
                    }
                    self.waiting = None;
                } else if io.truncated > self.truncated_seen {
                    self.truncated_seen = io.truncated;
                    self.got.push((size, None));
                    self.waiting = None;
                }
            }
            if now >= self.deadline {
                return Tick::Stop;
            }
            if self.waiting.is_none() {
                let Some(size) = self.sizes.pop_front() else {
                    return Tick::Stop;
                };
                self.sender.send_to(&pattern(size), self.to).unwrap();
                self.waiting = Some(size);
            }
            Tick::Continue(Some(now + Duration::from_millis(1)))
        }
        fn poll_transmit(&mut self, _buf: &mut Vec<u8>) -> Option<Flow> {
            None
        }
    }

    /// Over real loopback sockets, IPv4 and IPv6, both backends deliver the
    /// same bytes for every size up to [`MAX_DATAGRAM`] and count the same
    /// larger ones (up to the largest UDP payload) as truncated.
    #[test]
    fn datagram_size_table_is_the_same_on_both_backends() {
        let l = MAX_DATAGRAM;
        let sizes = [1, 2, 100, 1300, 1500, l - 1, l, l + 1, 9000, 65_507];
        let want: Vec<(usize, Option<Vec<u8>>)> = sizes
            .iter()
            .map(|&n| (n, (n <= l).then(|| pattern(n))))
            .collect();
        let delivered = sizes.iter().filter(|&&n| n <= l);
        let backends = if Backend::Uring.resolve().is_ok() {
            vec![Backend::Epoll, Backend::Uring]
        } else {
            eprintln!("io_uring unavailable: only the epoll half runs");
            vec![Backend::Epoll]
        };
        for ip in ["127.0.0.1", "::1"] {
            let Ok(sender) = std::net::UdpSocket::bind((ip, 0)) else {
                continue; // no IPv6 loopback here
            };
            let mut per_backend = Vec::new();
            for &backend in &backends {
                let sock = bind_udp((ip, 0).into_addr(), SocketOptions::default()).unwrap();
                let mut w = SizeTable {
                    sender: sender.try_clone().unwrap(),
                    to: sock.local_addr().unwrap(),
                    sizes: sizes.iter().copied().collect(),
                    waiting: None,
                    delivered: Vec::new(),
                    truncated_seen: 0,
                    got: Vec::new(),
                    deadline: Instant::now() + Duration::from_secs(5),
                };
                let io = run_loop(backend, &sock, &mut w).unwrap();
                let tag = format!("{backend} {ip}: {io:?}");
                let got_sizes: Vec<(usize, Option<usize>)> = w
                    .got
                    .iter()
                    .map(|(n, d)| (*n, d.as_ref().map(Vec::len)))
                    .collect();
                assert!(
                    w.got == want,
                    "{tag}: got (size, delivered length) {got_sizes:?}"
                );
                assert_eq!(io.truncated, 3, "{tag}");
                assert_eq!(
                    io.datagrams_received,
                    delivered.clone().count() as u64,
                    "{tag}"
                );
                assert_eq!(
                    io.bytes_received,
                    delivered.clone().sum::<usize>() as u64,
                    "{tag}"
                );
                per_backend.push(w.got);
            }
            assert!(per_backend.windows(2).all(|p| p[0] == p[1]), "{ip}");
        }
    }

    /// Sends one message a turn from `plan`; records what the loop reports
    /// undeliverable.
    struct Mixed {
        plan: VecDeque<Flow>,
        reports: Vec<(Flow, i32)>,
        deadline: Instant,
    }

    impl Worker for Mixed {
        fn handle(&mut self, _now: Instant, _from: Flow, _data: &[u8]) {}
        fn tick(&mut self, now: Instant, _io: &IoCounters) -> Tick {
            if (self.plan.is_empty() && !self.reports.is_empty()) || now >= self.deadline {
                return Tick::Stop;
            }
            Tick::Continue(Some(now + Duration::from_millis(1)))
        }
        fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
            let flow = self.plan.pop_front()?;
            buf.clear();
            buf.extend_from_slice(format!("to {flow}").as_bytes());
            Some(flow)
        }
        fn unreachable(&mut self, _now: Instant, dest: Flow, errno: i32) {
            self.reports.push((dest, errno));
        }
    }

    /// A message on a stream flow never reaches the peer as a datagram on
    /// the UDP-only loop: it is counted as a send error and reported to
    /// the worker; the datagrams around it go out.
    #[test]
    fn stream_flows_are_not_sent_as_datagrams() {
        use crate::flow::{ConnId, TransportKind};
        for backend in [Backend::Epoll, Backend::Uring] {
            if backend.resolve().is_err() {
                continue;
            }
            let live = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            live.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let peer = live.local_addr().unwrap();
            let tcp = Flow::new(TransportKind::Tcp, peer, ConnId(1));
            let tls = Flow::new(TransportKind::Tls, peer, ConnId::ANY);
            let plan = [Flow::udp(peer), tcp, Flow::udp(peer), tls, Flow::udp(peer)];
            let sock = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
            let mut w = Mixed {
                plan: plan.into(),
                reports: Vec::new(),
                deadline: Instant::now() + Duration::from_secs(2),
            };
            let io = run_loop(backend, &sock, &mut w).unwrap();
            let tag = format!("{backend}: {io:?}");
            assert_eq!(
                w.reports,
                [(tcp, libc::EPROTONOSUPPORT), (tls, libc::EPROTONOSUPPORT)],
                "{tag}"
            );
            assert_eq!((io.send_errors, io.datagrams_sent), (2, 3), "{tag}");
            let mut b = [0u8; 128];
            let mut got = Vec::new();
            while let Ok(n) = live.recv(&mut b) {
                got.push(String::from_utf8_lossy(&b[..n]).into_owned());
            }
            assert_eq!(got, vec![format!("to {}", Flow::udp(peer)); 3], "{tag}");
        }
    }

    /// Sends `plan` (one destination per datagram, `per_turn` a turn) and
    /// records every [`Worker::unreachable`] report; stops when `want`
    /// reports arrived or after two seconds.
    struct Bouncer {
        plan: VecDeque<SocketAddr>,
        per_turn: usize,
        budget: usize,
        want: usize,
        reports: Vec<(SocketAddr, i32)>,
        deadline: Instant,
    }

    impl Bouncer {
        fn new(plan: Vec<SocketAddr>, per_turn: usize, want: usize) -> Bouncer {
            Bouncer {
                plan: plan.into(),
                per_turn,
                budget: 0,
                want,
                reports: Vec::new(),
                deadline: Instant::now() + Duration::from_secs(2),
            }
        }
    }

    impl Worker for Bouncer {
        fn handle(&mut self, _now: Instant, _from: Flow, _data: &[u8]) {}
        fn tick(&mut self, now: Instant, _io: &IoCounters) -> Tick {
            if (self.plan.is_empty() && self.reports.len() >= self.want) || now >= self.deadline {
                return Tick::Stop;
            }
            self.budget = self.per_turn;
            // Paced: one turn every 2 ms, so errors also arrive while idle.
            Tick::Continue(Some(now + Duration::from_millis(2)))
        }
        fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
            if self.budget == 0 {
                return None;
            }
            let to = self.plan.pop_front()?;
            self.budget -= 1;
            buf.clear();
            buf.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
            Some(Flow::udp(to))
        }
        fn unreachable(&mut self, _now: Instant, dest: Flow, errno: i32) {
            self.reports.push((dest.peer, errno));
        }
    }

    /// A port that was just free: nothing listens on it.
    fn closed_port(ip: &str) -> SocketAddr {
        std::net::UdpSocket::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// Datagrams to a closed port come back as ICMP port unreachable: each
    /// is reported to the worker with its destination and ECONNREFUSED,
    /// on both backends, IPv4 and IPv6, paced (errors arrive while the
    /// loop waits) and in bursts (errors arrive between sends). Datagrams
    /// to a live peer interleaved with them all arrive: a send refused by
    /// another destination's pending error is sent again.
    #[test]
    fn icmp_port_unreachable_is_reported_with_its_destination() {
        for backend in [Backend::Epoll, Backend::Uring] {
            if backend.resolve().is_err() {
                continue;
            }
            for ip in ["127.0.0.1", "::1"] {
                let Ok(live) = std::net::UdpSocket::bind((ip, 0)) else {
                    continue; // no IPv6 loopback here
                };
                live.set_nonblocking(true).unwrap();
                let live_addr = live.local_addr().unwrap();
                let closed = closed_port(ip);
                for per_turn in [1, 64] {
                    let n = 40;
                    let plan: Vec<SocketAddr> = (0..2 * n)
                        .map(|i| if i % 2 == 0 { closed } else { live_addr })
                        .collect();
                    let sock = bind_udp((ip, 0).into_addr(), SocketOptions::default()).unwrap();
                    let mut w = Bouncer::new(plan, per_turn, n);
                    let io = run_loop(backend, &sock, &mut w).unwrap();
                    let tag = format!("{backend} {ip} per_turn {per_turn}: {io:?}");
                    assert_eq!(w.reports.len(), n, "{tag}");
                    assert!(
                        w.reports
                            .iter()
                            .all(|&(d, e)| d == closed && e == libc::ECONNREFUSED),
                        "{tag}: {:?}",
                        w.reports
                    );
                    assert_eq!(io.icmp_errors, n as u64, "{tag}");
                    assert_eq!(io.send_errors, 0, "{tag}");
                    assert_eq!(io.datagrams_sent, 2 * n as u64, "{tag}");
                    let mut got = 0;
                    let mut b = [0u8; 64];
                    while live.recv_from(&mut b).is_ok() {
                        got += 1;
                    }
                    assert_eq!(got, n, "{tag}");
                }
            }
        }
    }

    /// Without `recv_errors` the kernel drops ICMP errors for an
    /// unconnected socket: nothing is reported (the old behaviour, kept
    /// for callers that opt out).
    #[test]
    fn icmp_errors_ignored_without_recv_errors() {
        for backend in [Backend::Epoll, Backend::Uring] {
            if backend.resolve().is_err() {
                continue;
            }
            let closed = closed_port("127.0.0.1");
            let opts = SocketOptions {
                recv_errors: false,
                ..SocketOptions::default()
            };
            let sock = bind_udp("127.0.0.1:0".parse().unwrap(), opts).unwrap();
            let mut w = Bouncer::new(vec![closed; 5], 5, 1);
            w.deadline = Instant::now() + Duration::from_millis(200);
            let io = run_loop(backend, &sock, &mut w).unwrap();
            assert!(w.reports.is_empty(), "{backend}");
            assert_eq!(io.icmp_errors, 0, "{backend}");
            assert_eq!(io.datagrams_sent, 5, "{backend}");
        }
    }

    trait IntoAddr {
        fn into_addr(self) -> SocketAddr;
    }
    impl IntoAddr for (&str, u16) {
        fn into_addr(self) -> SocketAddr {
            SocketAddr::new(self.0.parse().unwrap(), self.1)
        }
    }
}
