//! The orchestrator: spawn and pin one worker per core, each with its own
//! socket, event loop, endpoint and statistics; collect interval snapshots
//! on an aggregator thread; handle SIGINT/SIGTERM; hand the result to the
//! report writer.
//!
//! Nothing here touches a message. Per message work happens inside a
//! worker's endpoint; per attempt work is one pacer poll and one event
//! mapped to statistics ([`LoadClient::record`]).

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::engine::SansIo;
use crate::schedule::{Hold, Pace, Pacer, Rng};
use crate::stats::{Aggregate, Counter, Snapshot, WorkerStats};
use crate::transport::{self, Backend, IoCounters, SocketOptions, Tick, TransportError, Worker};

/// Errors that end a run before it produces numbers (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker thread panicked")]
    WorkerPanicked,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot write the report: {0}")]
    Report(String),
}

/// A load-generating endpoint as the worker loop sees it: the engine's
/// client (or a test client) behind the sans-IO contract plus attempt
/// control.
pub trait LoadClient: SansIo {
    /// Start one attempt at `now` that was intended at `intended`; `hold` is
    /// how long to hold a call (or keep a registration). False if the
    /// endpoint cannot start one (no free user, resource cap).
    fn start_attempt(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool;
    /// Attempts started and not finished.
    fn in_flight(&self) -> u64;
    /// Wind down: end calls in hold (BYE), unregister, stop retrying.
    fn shutdown(&mut self, now: Instant);
    /// Map one event to statistics (the RFC 6076 metrics, counters,
    /// responses).
    fn record(event: Self::Event, stats: &mut WorkerStats);
}

/// A serving endpoint (the built-in target).
pub trait LoadServer: SansIo {
    /// Map one event to statistics.
    fn record(event: Self::Event, stats: &mut WorkerStats);
}

/// Stop levels shared by the signal thread and the workers.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    pub const RUN: usize = 0;
    /// Stop starting attempts, drain for a bounded time.
    pub const DRAIN: usize = 1;
    /// Stop now, keep what was measured.
    pub const NOW: usize = 2;

    pub fn new() -> StopFlag {
        StopFlag::default()
    }
    pub fn level(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
    /// Raise the level by one (each signal does this).
    pub fn escalate(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set(&self, level: usize) {
        self.0.fetch_max(level, Ordering::Relaxed);
    }

    /// Install SIGINT/SIGTERM handling: a thread that escalates this flag
    /// on each signal. The first drains, the second stops at once; both
    /// still end with the report written.
    pub fn install_signals(&self) -> Result<(), RunError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(RunError::Signals)?;
        let flag = self.clone();
        std::thread::Builder::new()
            .name("sipstorm-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    flag.escalate();
                    if flag.level() == StopFlag::DRAIN {
                        eprintln!("\nsipstorm: stopping: draining in-flight attempts (signal again to stop now)");
                    }
                }
            })
            .map_err(RunError::Thread)?;
        Ok(())
    }
}

/// What a worker sends to the aggregator.
#[derive(Debug)]
pub struct WorkerMsg {
    pub worker: usize,
    pub snapshot: Snapshot,
    /// Time since the run started.
    pub t: Duration,
    pub in_flight: u64,
    /// Cumulative loop counters of this worker.
    pub io: IoCounters,
    /// Last message of this worker.
    pub last: bool,
}

/// How often workers send snapshots.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// After shutdown, how long calls being torn down (BYE, unregister) may take.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Drain limit after a first SIGINT/SIGTERM.
pub const SIGNAL_DRAIN: Duration = Duration::from_secs(3);
/// Most attempts started in one loop turn, so that a worker that fell far
/// behind still receives between starts.
const MAX_STARTS_PER_TURN: usize = 256;

/// Snapshot plumbing shared by client and server workers: take an interval
/// once a second, send it without blocking, keep it if the channel is full.
struct Reporter {
    worker: usize,
    t0: Instant,
    next: Instant,
    tx: Sender<WorkerMsg>,
    pending: Vec<WorkerMsg>,
    last_io: IoCounters,
}

impl Reporter {
    fn new(worker: usize, t0: Instant, tx: Sender<WorkerMsg>) -> Reporter {
        Reporter {
            worker,
            t0,
            next: t0 + INTERVAL,
            tx,
            pending: Vec::new(),
            last_io: IoCounters::default(),
        }
    }

    /// Move the loop's counters into the statistics as deltas.
    fn fold_io(&mut self, stats: &mut WorkerStats, io: &IoCounters) {
        stats.count(
            Counter::KernelDrops,
            io.kernel_drops.saturating_sub(self.last_io.kernel_drops),
        );
        stats.count(
            Counter::TransportError,
            (io.send_errors + io.truncated)
                .saturating_sub(self.last_io.send_errors + self.last_io.truncated),
        );
        self.last_io = *io;
    }

    fn maybe_send(
        &mut self,
        now: Instant,
        stats: &mut WorkerStats,
        io: &IoCounters,
        in_flight: u64,
    ) {
        if now < self.next {
            return;
        }
        while self.next <= now {
            self.next += INTERVAL;
        }
        self.fold_io(stats, io);
        let msg = WorkerMsg {
            worker: self.worker,
            snapshot: stats.take_interval(),
            t: now.saturating_duration_since(self.t0),
            in_flight,
            io: *io,
            last: false,
        };
        self.pending.push(msg);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            let msg = self.pending.remove(0);
            match self.tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.pending.insert(0, m);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// The final snapshot, sent blocking (the aggregator is draining).
    fn finish(&mut self, now: Instant, stats: &mut WorkerStats, io: &IoCounters, in_flight: u64) {
        self.fold_io(stats, io);
        let msg = WorkerMsg {
            worker: self.worker,
            snapshot: stats.take_interval(),
            t: now.saturating_duration_since(self.t0),
            in_flight,
            io: *io,
            last: true,
        };
        for m in self.pending.drain(..).chain(std::iter::once(msg)) {
            let _ = self.tx.send(m);
        }
    }
}

/// Phases of a client worker's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Starting attempts as the pacer says.
    Load,
    /// No more starts; in-flight attempts may finish until the deadline.
    Drain(Instant),
    /// `shutdown` was called; teardown may take until the deadline.
    Shutdown(Instant),
}

/// One client worker: endpoint, pacer, hold distribution, statistics.
pub struct ClientWorker<C: LoadClient> {
    pub client: C,
    pacer: Pacer,
    hold: Hold,
    rng: Rng,
    stats: WorkerStats,
    reporter: Reporter,
    stop: StopFlag,
    drain: Duration,
    phase: Phase,
    /// Attempts the endpoint refused to start.
    pub refused: u64,
}

impl<C: LoadClient> std::fmt::Debug for ClientWorker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientWorker")
            .field("pacer", &self.pacer)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<C: LoadClient> ClientWorker<C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker: usize,
        client: C,
        pacer: Pacer,
        hold: Hold,
        seed: u64,
        t0: Instant,
        tx: Sender<WorkerMsg>,
        stop: StopFlag,
        drain: Duration,
    ) -> Self {
        ClientWorker {
            client,
            pacer,
            hold,
            rng: Rng::new(seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            stats: WorkerStats::new(),
            reporter: Reporter::new(worker, t0, tx),
            stop,
            drain,
            phase: Phase::Load,
            refused: 0,
        }
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.client.poll_event() {
            C::record(ev, &mut self.stats);
        }
    }
}

impl<C: LoadClient> Worker for ClientWorker<C> {
    fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.client.handle(now, from, data);
    }

    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        let level = self.stop.level();
        if level >= StopFlag::NOW {
            self.drain_events();
            self.reporter
                .finish(now, &mut self.stats, io, self.client.in_flight());
            return Tick::Stop;
        }
        if level >= StopFlag::DRAIN && self.phase == Phase::Load {
            self.pacer.stop();
            self.phase = Phase::Drain(now + self.drain.min(SIGNAL_DRAIN));
        }
        let mut wake = self.client.poll_timeout();
        let mut soon = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.phase == Phase::Load {
            let mut started = 0;
            loop {
                match self.pacer.poll(now, self.client.in_flight()) {
                    Pace::Start(intended) => {
                        let hold = self.hold.sample(&mut self.rng);
                        if !self.client.start_attempt(now, intended, hold) {
                            self.refused += 1;
                        }
                        started += 1;
                        if started >= MAX_STARTS_PER_TURN {
                            soon(now);
                            break;
                        }
                    }
                    Pace::WaitUntil(t) => {
                        soon(t);
                        break;
                    }
                    Pace::WaitForSlot => break,
                    Pace::Done => {
                        self.phase = Phase::Drain(now + self.drain);
                        break;
                    }
                }
            }
        }
        self.drain_events();
        let in_flight = self.client.in_flight();
        match self.phase {
            Phase::Load => {}
            Phase::Drain(deadline) => {
                if in_flight == 0 {
                    self.reporter.finish(now, &mut self.stats, io, 0);
                    return Tick::Stop;
                }
                if now >= deadline {
                    self.client.shutdown(now);
                    self.drain_events();
                    self.phase = Phase::Shutdown(now + SHUTDOWN_GRACE);
                }
                soon(deadline.max(now));
            }
            Phase::Shutdown(deadline) => {
                if in_flight == 0 || now >= deadline {
                    self.reporter.finish(now, &mut self.stats, io, in_flight);
                    return Tick::Stop;
                }
                soon(deadline);
            }
        }
        self.reporter
            .maybe_send(now, &mut self.stats, io, in_flight);
        soon(self.reporter.next);
        Tick::Continue(wake)
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        self.client.poll_transmit(buf)
    }
}

/// One server worker: endpoint and statistics, until the stop flag.
pub struct ServerWorker<S: LoadServer> {
    pub server: S,
    stats: WorkerStats,
    reporter: Reporter,
    stop: StopFlag,
}

impl<S: LoadServer> std::fmt::Debug for ServerWorker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerWorker").finish_non_exhaustive()
    }
}

impl<S: LoadServer> ServerWorker<S> {
    pub fn new(
        worker: usize,
        server: S,
        t0: Instant,
        tx: Sender<WorkerMsg>,
        stop: StopFlag,
    ) -> Self {
        ServerWorker {
            server,
            stats: WorkerStats::new(),
            reporter: Reporter::new(worker, t0, tx),
            stop,
        }
    }
}

impl<S: LoadServer> Worker for ServerWorker<S> {
    fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.server.handle(now, from, data);
    }

    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        while let Some(ev) = self.server.poll_event() {
            S::record(ev, &mut self.stats);
        }
        if self.stop.level() >= StopFlag::DRAIN {
            self.reporter.finish(now, &mut self.stats, io, 0);
            return Tick::Stop;
        }
        self.reporter.maybe_send(now, &mut self.stats, io, 0);
        let next = self.reporter.next;
        Tick::Continue(Some(
            self.server.poll_timeout().map_or(next, |t| t.min(next)),
        ))
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        self.server.poll_transmit(buf)
    }
}

/// What the aggregator hands back at the end.
#[derive(Debug)]
pub struct Collected {
    pub aggregate: Aggregate,
    /// Final loop counters per worker.
    pub io: Vec<IoCounters>,
}

/// Merge worker snapshots; print one progress line a second to stderr
/// (rewritten in place on a terminal, plain lines otherwise). Returns when
/// every worker has sent its last message or dropped its sender.
pub fn aggregate(
    rx: Receiver<WorkerMsg>,
    workers: usize,
    start: SystemTime,
    offered: f64,
    quiet: bool,
) -> Collected {
    let mut agg = Aggregate::new(start);
    let mut in_flight = vec![0u64; workers];
    let mut io = vec![IoCounters::default(); workers];
    let mut done = 0;
    let tty = std::io::stderr().is_terminal();
    let mut last_print = Instant::now();
    let mut printed = false;
    while done < workers {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => {
                if let Some(slot) = in_flight.get_mut(m.worker) {
                    *slot = m.in_flight;
                }
                if let Some(slot) = io.get_mut(m.worker) {
                    *slot = m.io;
                }
                if m.last {
                    done += 1;
                }
                agg.add(m.worker, m.snapshot, m.t);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if !quiet && last_print.elapsed() >= INTERVAL {
            last_print = Instant::now();
            let line = agg.progress_line(offered, in_flight.iter().sum());
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
            printed = true;
        }
    }
    if printed && tty {
        let _ = writeln!(std::io::stderr());
    }
    Collected { aggregate: agg, io }
}

/// Pin the calling thread to core `i` modulo the cores present.
pub fn pin(i: usize) {
    if let Some(ids) = core_affinity::get_core_ids() {
        if !ids.is_empty() {
            core_affinity::set_for_current(ids[i % ids.len()]);
        }
    }
}

/// Bind `n` server sockets on `listen` with `SO_REUSEPORT` (port 0 picks
/// one ephemeral port for all). Returns the sockets and the bound address.
pub fn bind_server_sockets(
    listen: SocketAddr,
    n: usize,
) -> Result<(Vec<UdpSocket>, SocketAddr), RunError> {
    let opts = SocketOptions {
        reuse_port: true,
        ..SocketOptions::default()
    };
    let first = transport::bind_udp(listen, opts)?;
    let addr = first
        .local_addr()
        .map_err(|e| RunError::Transport(TransportError::Socket(e)))?;
    let mut socks = vec![first];
    for _ in 1..n {
        socks.push(transport::bind_udp(addr, opts)?);
    }
    Ok((socks, addr))
}

/// Start `sockets.len()` server workers on their own pinned threads. Each
/// worker's endpoint is made by `make(i, local_addr)`. Returns the join
/// handles (each yields the worker's loop counters).
pub fn spawn_servers<S, F>(
    sockets: Vec<UdpSocket>,
    backend: Backend,
    make: F,
    t0: Instant,
    tx: Sender<WorkerMsg>,
    stop: StopFlag,
    pin_offset: usize,
) -> Result<Vec<std::thread::JoinHandle<Result<IoCounters, TransportError>>>, RunError>
where
    S: LoadServer + 'static,
    F: Fn(usize, SocketAddr) -> S + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut handles = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (make, tx, stop) = (make.clone(), tx.clone(), stop.clone());
        let h = std::thread::Builder::new()
            .name(format!("sipstorm-serve-{i}"))
            .spawn(move || {
                pin(i + pin_offset);
                let local = sock.local_addr().map_err(TransportError::Socket)?;
                let mut w = ServerWorker::new(i, make(i, local), t0, tx, stop);
                transport::run_loop(backend, &sock, &mut w)
            })
            .map_err(RunError::Thread)?;
        handles.push(h);
    }
    Ok(handles)
}

/// Parameters of a client fleet that do not depend on the endpoint type.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub workers: usize,
    pub local_ip: std::net::IpAddr,
    pub backend: Backend,
    pub rate: Option<f64>,
    pub concurrency: Option<u64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub hold: Hold,
    pub seed: u64,
    pub drain: Duration,
    pub quiet: bool,
}

/// The outcome of a client fleet.
#[derive(Debug)]
pub struct FleetResult {
    pub collected: Collected,
    /// Wall-clock start of the load.
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub refused: u64,
}

/// Run `fleet.workers` pinned client workers, each on its own socket (its
/// own source port, so answers come back to the worker that owns the call),
/// until the pacer is done and the attempts drained, or `stop` says so.
pub fn run_clients<C, F>(fleet: &Fleet, make: F, stop: &StopFlag) -> Result<FleetResult, RunError>
where
    C: LoadClient + 'static,
    F: Fn(usize, SocketAddr, Instant) -> C + Send + Sync + 'static,
{
    let n = fleet.workers.max(1);
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(transport::bind_udp(
            SocketAddr::new(fleet.local_ip, 0),
            SocketOptions::default(),
        )?);
    }
    let (tx, rx) = bounded::<WorkerMsg>(n * 8);
    let started_at = SystemTime::now();
    // Give the threads a moment to start and pin before the first intended
    // start, so the schedule does not begin with a backlog.
    let t0 = Instant::now() + Duration::from_millis(20);
    let offered = fleet.rate.unwrap_or(0.0);
    let quiet = fleet.quiet;
    let agg = std::thread::Builder::new()
        .name("sipstorm-aggregate".into())
        .spawn(move || aggregate(rx, n, started_at, offered, quiet))
        .map_err(RunError::Thread)?;
    let make = Arc::new(make);
    let mut handles = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (make, tx, stop, fleet) = (make.clone(), tx.clone(), stop.clone(), fleet.clone());
        let h = std::thread::Builder::new()
            .name(format!("sipstorm-run-{i}"))
            .spawn(move || -> Result<u64, TransportError> {
                pin(i);
                let local = sock.local_addr().map_err(TransportError::Socket)?;
                let pacer = Pacer::new(
                    t0,
                    fleet.rate,
                    fleet.concurrency,
                    fleet.count,
                    fleet.duration,
                    i,
                    n,
                );
                let client = make(i, local, t0);
                let mut w = ClientWorker::new(
                    i,
                    client,
                    pacer,
                    fleet.hold,
                    fleet.seed,
                    t0,
                    tx,
                    stop,
                    fleet.drain,
                );
                let r = transport::run_loop(fleet.backend, &sock, &mut w);
                if r.is_err() {
                    // Make sure the aggregator is not left waiting.
                    w.reporter
                        .finish(Instant::now(), &mut w.stats, &IoCounters::default(), 0);
                }
                r.map(|_| w.refused)
            })
            .map_err(RunError::Thread)?;
        handles.push(h);
    }
    drop(tx);
    let mut refused = 0;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => refused += r,
            Ok(Err(e)) => {
                stop.set(StopFlag::NOW);
                first_err.get_or_insert(RunError::Transport(e));
            }
            Err(_) => {
                stop.set(StopFlag::NOW);
                first_err.get_or_insert(RunError::WorkerPanicked);
            }
        }
    }
    let collected = agg.join().map_err(|_| RunError::WorkerPanicked)?;
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(FleetResult {
        collected,
        started_at,
        elapsed: t0.elapsed(),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metric;
    use crate::transport::testing::Echo;
    use std::collections::{HashMap, VecDeque};

    /// A client whose attempt is one datagram answered by an echo server.
    struct PingClient {
        target: SocketAddr,
        next: u64,
        open: HashMap<u64, (Instant, Instant)>,
        out: VecDeque<u64>,
        events: VecDeque<(Instant, Instant, Instant)>,
    }

    impl SansIo for PingClient {
        type Event = (Instant, Instant, Instant);
        fn handle(&mut self, now: Instant, _from: SocketAddr, data: &[u8]) {
            let id = std::str::from_utf8(data)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            if let Some((intended, started)) = id.and_then(|id| self.open.remove(&id)) {
                self.events.push_back((intended, started, now));
            }
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
            let id = self.out.pop_front()?;
            buf.clear();
            buf.extend_from_slice(id.to_string().as_bytes());
            Some(self.target)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_event(&mut self) -> Option<Self::Event> {
            self.events.pop_front()
        }
    }

    impl LoadClient for PingClient {
        fn start_attempt(&mut self, now: Instant, intended: Instant, _hold: Duration) -> bool {
            self.open.insert(self.next, (intended, now));
            self.out.push_back(self.next);
            self.next += 1;
            true
        }
        fn in_flight(&self) -> u64 {
            self.open.len() as u64
        }
        fn shutdown(&mut self, _now: Instant) {
            self.open.clear();
        }
        fn record((intended, started, finished): Self::Event, stats: &mut WorkerStats) {
            stats.count(Counter::OptionsAttempted, 1);
            stats.count(Counter::OptionsSucceeded, 1);
            stats.record(Metric::OptionsRtt, finished - started, finished - intended);
        }
    }

    impl LoadServer for Echo {
        fn record(_: (), _: &mut WorkerStats) {}
    }

    fn fleet_vs_echo(backend: Backend, workers: usize) {
        let stop = StopFlag::new();
        let (socks, addr) = bind_server_sockets("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let (stx, srx) = bounded(16);
        let servers = spawn_servers(
            socks,
            backend,
            |_, _| Echo::default(),
            Instant::now(),
            stx,
            stop.clone(),
            0,
        )
        .unwrap();
        let agg = std::thread::spawn(move || aggregate(srx, 2, SystemTime::now(), 0.0, true));
        let fleet = Fleet {
            workers,
            local_ip: "127.0.0.1".parse().unwrap(),
            backend,
            rate: Some(2000.0),
            concurrency: None,
            count: Some(300),
            duration: Some(Duration::from_secs(5)),
            hold: Hold::Fixed(Duration::ZERO),
            seed: 1,
            drain: Duration::from_secs(2),
            quiet: true,
        };
        let client_stop = StopFlag::new();
        let r = run_clients(
            &fleet,
            move |_, _, _| PingClient {
                target: addr,
                next: 0,
                open: HashMap::new(),
                out: VecDeque::new(),
                events: VecDeque::new(),
            },
            &client_stop,
        )
        .unwrap();
        stop.set(StopFlag::DRAIN);
        for h in servers {
            h.join().unwrap().unwrap();
        }
        agg.join().unwrap();
        let c = r.collected.aggregate.counters();
        assert_eq!(c.get(Counter::OptionsSucceeded), 300, "{backend}");
        let h = r.collected.aggregate.histogram(crate::stats::Slot {
            metric: Metric::OptionsRtt,
            corrected: true,
        });
        assert_eq!(h.len(), 300);
        let sent: u64 = r.collected.io.iter().map(|io| io.datagrams_sent).sum();
        assert_eq!(sent, 300);
        // The schedule was honoured: 300 attempts at 2000/s take ~150 ms.
        assert!(r.elapsed >= Duration::from_millis(140), "{:?}", r.elapsed);
    }

    #[test]
    fn fleet_epoll_two_workers() {
        fleet_vs_echo(Backend::Epoll, 2);
    }

    #[test]
    fn fleet_uring_two_workers() {
        if Backend::Uring.resolve().is_ok() {
            fleet_vs_echo(Backend::Uring, 2);
        }
    }

    #[test]
    fn stop_flag_now_ends_a_long_run_quickly() {
        let stop = StopFlag::new();
        let (socks, addr) = bind_server_sockets("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let (stx, srx) = bounded(16);
        let servers = spawn_servers(
            socks,
            Backend::Epoll,
            |_, _| Echo::default(),
            Instant::now(),
            stx,
            stop.clone(),
            0,
        )
        .unwrap();
        let fleet = Fleet {
            workers: 1,
            local_ip: "127.0.0.1".parse().unwrap(),
            backend: Backend::Epoll,
            rate: Some(100.0),
            concurrency: None,
            count: None,
            duration: Some(Duration::from_secs(60)),
            hold: Hold::Fixed(Duration::ZERO),
            seed: 1,
            drain: Duration::from_secs(10),
            quiet: true,
        };
        let client_stop = StopFlag::new();
        let s2 = client_stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            s2.escalate();
        });
        let make = move |_, _, _| PingClient {
            target: addr,
            next: 0,
            open: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        let r = run_clients(&fleet, make, &client_stop).unwrap();
        assert!(r.elapsed < Duration::from_secs(5));
        assert!(
            r.collected
                .aggregate
                .counters()
                .get(Counter::OptionsSucceeded)
                > 5
        );
        stop.set(StopFlag::DRAIN);
        for h in servers {
            h.join().unwrap().unwrap();
        }
        drop(srx);
    }
}
