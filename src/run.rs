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
use crate::flow::Flow;
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
    /// A usage or configuration problem found late (exit code 2).
    #[error("{0}")]
    Usage(String),
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
    /// The transport could not deliver to `dest` (ICMP unreachable): end
    /// the attempts waiting on it as transport errors (RFC 3261 §17.1.4).
    fn transport_error(&mut self, _now: Instant, _dest: Flow) {}
    /// The drain deadline passed: end every attempt still in flight as
    /// timed out, so each attempt is counted succeeded or failed.
    fn abandon(&mut self, _now: Instant) {}
    /// Map one event to statistics (the RFC 6076 metrics, counters,
    /// responses).
    fn record(&mut self, event: Self::Event, stats: &mut WorkerStats);
    /// The counter the attempt just started increments (`call.attempted`,
    /// ...; in a mix it depends on the part chosen).
    fn attempt_counter(&self) -> Counter;
    /// Move cumulative endpoint counters (messages, retransmissions,
    /// responses) into `stats` as deltas; called before every snapshot.
    fn flush_counters(&mut self, _stats: &mut WorkerStats) {}
}

/// A serving endpoint (the built-in target).
pub trait LoadServer: SansIo {
    /// Map one event to statistics.
    fn record(&mut self, event: Self::Event, stats: &mut WorkerStats);
    /// As [`LoadClient::flush_counters`].
    fn flush_counters(&mut self, _stats: &mut WorkerStats) {}
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
                        say!("\nsipstorm: stopping: draining in-flight attempts (signal again to stop now)");
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
/// When the endpoint refuses to start an attempt (every user busy), retry
/// after this long.
const REFUSED_RETRY: Duration = Duration::from_millis(1);

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
            (io.send_errors + io.truncated + io.icmp_errors).saturating_sub(
                self.last_io.send_errors + self.last_io.truncated + self.last_io.icmp_errors,
            ),
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
    /// Times the endpoint deferred a start because every user was busy.
    pub refused: u64,
    /// When the load phase ended (see [`Pacer::load_end`]): the achieved
    /// rate is attempts over the load phase, not over the drain that follows.
    pub load_end: Option<Instant>,
    /// See [`Worker::batch_window`].
    batch_window: Duration,
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
            load_end: None,
            batch_window: transport::DEFAULT_BATCH_WINDOW,
        }
    }

    /// Let the loop hold received datagrams back up to this long to handle
    /// them in one turn (`--batch-window`, at most 1 ms): fewer wake-ups per
    /// call; kernel arrival stamps keep measured arrival times exact, but
    /// replies to responses leave up to this much later.
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.batch_window = window.min(Duration::from_millis(1));
        self
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.client.poll_event() {
            self.client.record(ev, &mut self.stats);
        }
    }

    fn finish(&mut self, now: Instant, io: &IoCounters) -> Tick {
        // Whatever is still in flight (drain shorter than 64·T1, a second
        // signal) ends as timed out: every attempt is counted (issue 8).
        self.client.abandon(now);
        self.drain_events();
        self.client.flush_counters(&mut self.stats);
        self.reporter
            .finish(now, &mut self.stats, io, self.client.in_flight());
        Tick::Stop
    }
}

impl<C: LoadClient> Worker for ClientWorker<C> {
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        self.client.handle(now, from, data);
    }

    fn batch_window(&self) -> Duration {
        self.batch_window
    }

    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        let level = self.stop.level();
        if level >= StopFlag::NOW {
            return self.finish(now, io);
        }
        if level >= StopFlag::DRAIN && self.phase == Phase::Load {
            self.pacer.stop();
            self.phase = Phase::Drain(now + self.drain.min(SIGNAL_DRAIN));
            self.load_end = Some(now);
        }
        let mut wake = self.client.poll_timeout();
        let mut soon = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.phase == Phase::Load {
            let mut started = 0;
            loop {
                match self.pacer.poll(now, self.client.in_flight()) {
                    Pace::Start(intended) => {
                        let hold = self.hold.sample(&mut self.rng);
                        if self.client.start_attempt(now, intended, hold) {
                            self.stats.count(self.client.attempt_counter(), 1);
                        } else {
                            // No free user (or the endpoint is winding
                            // down): the attempt stays due and is retried
                            // shortly, keeping its intended time.
                            self.pacer.unstart();
                            self.refused += 1;
                            soon(now + REFUSED_RETRY);
                            break;
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
                        self.load_end = Some(self.pacer.load_end(now));
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
                    return self.finish(now, io);
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
                    return self.finish(now, io);
                }
                soon(deadline);
            }
        }
        if now >= self.reporter.next {
            self.client.flush_counters(&mut self.stats);
            self.reporter
                .maybe_send(now, &mut self.stats, io, in_flight);
        }
        soon(self.reporter.next);
        Tick::Continue(wake)
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        self.client.poll_transmit(buf)
    }

    fn unreachable(&mut self, now: Instant, dest: Flow, _errno: i32) {
        self.client.transport_error(now, dest);
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
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        self.server.handle(now, from, data);
    }

    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick {
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        while let Some(ev) = self.server.poll_event() {
            self.server.record(ev, &mut self.stats);
        }
        if self.stop.level() >= StopFlag::DRAIN {
            self.server.flush_counters(&mut self.stats);
            self.reporter.finish(now, &mut self.stats, io, 0);
            return Tick::Stop;
        }
        if now >= self.reporter.next {
            self.server.flush_counters(&mut self.stats);
            self.reporter.maybe_send(now, &mut self.stats, io, 0);
        }
        let next = self.reporter.next;
        Tick::Continue(Some(
            self.server.poll_timeout().map_or(next, |t| t.min(next)),
        ))
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
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

/// Pinning is on unless `SIPSTORM_NO_PIN` is set: on a machine shared with
/// other busy processes a pinned worker cannot move away from a crowded
/// core, so benchmarks there may do better unpinned.
fn pinning() -> bool {
    std::env::var_os("SIPSTORM_NO_PIN").is_none()
}

/// Pin the calling thread to core `i` modulo the cores present.
pub fn pin(i: usize) {
    if !pinning() {
        return;
    }
    if let Some(ids) = core_affinity::get_core_ids()
        && !ids.is_empty()
    {
        core_affinity::set_for_current(ids[i % ids.len()]);
    }
}

/// Pin the calling thread to core `i` counted from the *last* core.
///
/// Client workers take cores from the first up and server workers from the
/// last down, so `run` and `serve` on one machine (separate processes that
/// cannot coordinate) do not stack their first workers on core 0.
pub fn pin_from_last(i: usize) {
    if !pinning() {
        return;
    }
    if let Some(ids) = core_affinity::get_core_ids()
        && !ids.is_empty()
    {
        let n = ids.len();
        core_affinity::set_for_current(ids[n - 1 - (i % n)]);
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
    // The kernel's 4-tuple hash sends every datagram of one peer address to
    // the same socket, so a dialog's requests (INVITE, ACK, BYE) reach the
    // worker that holds its state. Steering by receiving CPU spreads load
    // more evenly but breaks that for peers whose sending thread migrates
    // between cores (SIPp, Kamailio): their BYEs met 481s.
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
                pin_from_last(i + pin_offset);
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
    /// Tick of the open-loop schedule (see `Pacer::with_resolution`).
    pub pacing_resolution: Duration,
    /// See [`Worker::batch_window`].
    pub batch_window: Duration,
    /// Load stages instead of a constant rate.
    pub stages: Option<Arc<crate::schedule::Stages>>,
}

/// The outcome of a client fleet.
#[derive(Debug)]
pub struct FleetResult {
    pub collected: Collected,
    /// Wall-clock start of the load.
    pub started_at: SystemTime,
    pub elapsed: Duration,
    /// From the first intended start to the last worker's end of load
    /// (no more starts); `elapsed` when a worker never got there.
    pub load_elapsed: Duration,
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
            .spawn(move || -> Result<(u64, Option<Instant>), TransportError> {
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
                )
                .with_resolution(fleet.pacing_resolution);
                let pacer = match &fleet.stages {
                    Some(st) => pacer.with_stages(st.clone(), i, n),
                    None => pacer,
                };
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
                )
                .with_batch_window(fleet.batch_window);
                let r = transport::run_loop(fleet.backend, &sock, &mut w);
                if r.is_err() {
                    // Make sure the aggregator is not left waiting.
                    w.reporter
                        .finish(Instant::now(), &mut w.stats, &IoCounters::default(), 0);
                }
                r.map(|_| (w.refused, w.load_end))
            })
            .map_err(RunError::Thread)?;
        handles.push(h);
    }
    drop(tx);
    let mut refused = 0;
    let mut load_end: Option<Option<Instant>> = None;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((r, end))) => {
                refused += r;
                // A worker without an end of load makes the whole run's
                // load phase unknown: fall back to the elapsed time.
                load_end = Some(match (load_end.unwrap_or(end), end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                });
            }
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
    // The drain can end before a count-limited load's last slot does.
    let elapsed = t0.elapsed().max(
        load_end
            .flatten()
            .map_or(Duration::ZERO, |e| e.saturating_duration_since(t0)),
    );
    Ok(FleetResult {
        collected,
        started_at,
        elapsed,
        load_elapsed: load_end
            .flatten()
            .map_or(elapsed, |e| e.saturating_duration_since(t0)),
        refused,
    })
}

// ---------------------------------------------------------------------------
// The SIP engine behind the worker traits, and the commands.
// ---------------------------------------------------------------------------

use crate::config::{RunConfig, ScenarioKind, ServeConfig};
use crate::engine::{self, Endpoint, Event, MethodKind, Outcome};
use crate::stats::{Method, Metric};

/// Codes of final responses, as the engine counts them (index = code).
const CODES: usize = 700;

/// The engine's UAC endpoint with the bookkeeping that turns its events and
/// cumulative counters into statistics.
pub struct EngineClient {
    ep: Endpoint,
    scenario: ScenarioKind,
    /// A weighted mix (`scenario` is `Mix`): its parts, the cycle choosing
    /// among them and the generator of per-part holds.
    mix: Option<MixPlan>,
    /// The counter of the attempt started last (see `attempt_counter`).
    last_counter: Counter,
    /// Engine counters at the previous flush.
    last: Box<engine::Counters>,
    /// Final responses this interval already counted from events, by code,
    /// so the counter deltas add only the rest (challenges, BYE answers).
    attributed: Box<[u64; CODES]>,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClient")
            .field("scenario", &self.scenario)
            .finish_non_exhaustive()
    }
}

/// The parts of a weighted mix as one worker runs them.
#[derive(Debug)]
struct MixPlan {
    parts: Vec<crate::config::MixEntry>,
    cycle: crate::schedule::WeightedCycle,
    rng: Rng,
}

/// What starting an attempt of a (non-mix) scenario counts.
fn attempted_counter(s: ScenarioKind) -> Counter {
    match s {
        ScenarioKind::Register => Counter::RegisterAttempted,
        ScenarioKind::Options => Counter::OptionsAttempted,
        ScenarioKind::Call | ScenarioKind::Mixed | ScenarioKind::Mix => Counter::CallAttempted,
    }
}

impl EngineClient {
    pub fn new(ep: Endpoint, scenario: ScenarioKind) -> Self {
        EngineClient {
            ep,
            scenario,
            mix: None,
            last_counter: attempted_counter(scenario),
            last: Box::default(),
            attributed: Box::new([0; CODES]),
        }
    }

    /// Run a weighted mix: each attempt is one of `parts`, chosen by weight
    /// (exact proportions, see [`crate::schedule::WeightedCycle`]).
    pub fn with_mix(mut self, parts: Vec<crate::config::MixEntry>, seed: u64) -> Self {
        if !parts.is_empty() {
            let weights: Vec<u32> = parts.iter().map(|p| p.weight).collect();
            self.mix = Some(MixPlan {
                cycle: crate::schedule::WeightedCycle::new(&weights),
                parts,
                rng: Rng::new(seed ^ 0x6d69_7870_6c61_6e00),
            });
        }
        self
    }

    /// Counts the end of a one-transaction attempt (register, options) and
    /// records its latency from the actual send and from the intended start.
    fn transaction_done(
        &mut self,
        stats: &mut WorkerStats,
        kind: &AttemptKind,
        outcome: Outcome,
        (intended, started, finished): (Instant, Instant, Instant),
    ) {
        match outcome {
            Outcome::Success => {
                stats.count(kind.succeeded, 1);
                stats.record(
                    kind.metric,
                    since(finished, started),
                    since(finished, intended),
                );
                self.response(stats, kind.method, 200);
            }
            Outcome::Failed(code) => {
                stats.count(kind.failed, 1);
                self.response(stats, kind.method, code);
            }
            Outcome::Timeout => stats.count(kind.timed_out, 1),
            Outcome::TransportError | Outcome::Cancelled => stats.count(kind.failed, 1),
        }
    }

    fn response(&mut self, stats: &mut WorkerStats, method: Method, code: u16) {
        stats.response(method, code);
        if let Some(a) = self.attributed.get_mut(usize::from(code)) {
            *a += 1;
        }
    }
}

/// The counters, metric and method of one kind of single-transaction attempt.
struct AttemptKind {
    succeeded: Counter,
    failed: Counter,
    timed_out: Counter,
    metric: Metric,
    method: Method,
}

const REGISTER_KIND: AttemptKind = AttemptKind {
    succeeded: Counter::RegisterSucceeded,
    failed: Counter::RegisterFailed,
    timed_out: Counter::RegisterTimedOut,
    metric: Metric::Rrd,
    method: Method::Register,
};

const OPTIONS_KIND: AttemptKind = AttemptKind {
    succeeded: Counter::OptionsSucceeded,
    failed: Counter::OptionsFailed,
    timed_out: Counter::OptionsTimedOut,
    metric: Metric::OptionsRtt,
    method: Method::Options,
};

fn since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

/// Add the engine's cumulative counters to `stats` as deltas since `last`;
/// responses not yet attributed to a method by events go to `rest`.
fn flush_engine_counters(
    now: &engine::Counters,
    last: &mut engine::Counters,
    attributed: &mut [u64; CODES],
    rest: Method,
    stats: &mut WorkerStats,
) {
    stats.count(Counter::MsgSent, now.sent.saturating_sub(last.sent));
    stats.count(
        Counter::MsgReceived,
        now.received.saturating_sub(last.received),
    );
    stats.count(
        Counter::Retransmitted,
        now.retransmitted.saturating_sub(last.retransmitted),
    );
    stats.count(
        Counter::RetransmissionsReceived,
        now.duplicates.saturating_sub(last.duplicates),
    );
    stats.count(
        Counter::Unparseable,
        now.unparseable.saturating_sub(last.unparseable),
    );
    stats.count(
        Counter::Unexpected,
        now.unexpected.saturating_sub(last.unexpected),
    );
    for (code, seen) in attributed.iter_mut().enumerate().skip(100) {
        let delta = now.responses[code].saturating_sub(last.responses[code]);
        let extra = delta.saturating_sub(*seen);
        if extra > 0
            && let Ok(c) = u16::try_from(code)
        {
            for _ in 0..extra.min(1_000_000) {
                stats.response(rest, c);
            }
        }
        *seen = 0;
    }
    last.clone_from(now);
}

impl SansIo for EngineClient {
    type Event = Event;
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        self.ep.handle(now, from, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        self.ep.poll_transmit(buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.ep.poll_event()
    }
}

impl LoadClient for EngineClient {
    fn start_attempt(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool {
        let Some(plan) = &mut self.mix else {
            return self.ep.start_attempt(now, intended, hold);
        };
        let Some(part) = plan.parts.get(plan.cycle.peek()) else {
            return false;
        };
        let hold = part.hold.map_or(hold, |h| h.sample(&mut plan.rng));
        let kind = part.scenario;
        if !self
            .ep
            .start_attempt_as(engine_scenario(kind), now, intended, hold)
        {
            return false;
        }
        plan.cycle.take();
        self.last_counter = attempted_counter(kind);
        true
    }
    fn in_flight(&self) -> u64 {
        self.ep.in_flight() as u64
    }
    fn shutdown(&mut self, now: Instant) {
        self.ep.shutdown(now);
    }
    fn transport_error(&mut self, now: Instant, dest: Flow) {
        self.ep.transport_error(now, dest);
    }
    fn abandon(&mut self, now: Instant) {
        self.ep.abandon(now);
    }
    fn attempt_counter(&self) -> Counter {
        self.last_counter
    }

    /// The event → statistics mapping. Service time runs from the actual
    /// first send, corrected time from the intended start (wrk2's
    /// coordinated-omission correction). RFC 6076: RRD §4.1 first REGISTER →
    /// final 200 (challenge included); SRD §4.2 INVITE → first 18x or 200;
    /// SDD §4.3 BYE → its final response; session duration §4.5 200 → BYE.
    fn record(&mut self, event: Event, stats: &mut WorkerStats) {
        // In `mixed` the engine registers its users by itself (attempt
        // starts count calls), so those registrations count as attempted
        // when they end.
        if matches!(event, Event::RegisterDone { .. }) && self.scenario == ScenarioKind::Mixed {
            stats.count(Counter::RegisterAttempted, 1);
        }
        match event {
            Event::RegisterDone {
                intended,
                started,
                finished,
                outcome,
            } => self.transaction_done(
                stats,
                &REGISTER_KIND,
                outcome,
                (intended, started, finished),
            ),
            Event::Unregistered { .. } => {}
            Event::CallSetup {
                intended,
                invite_sent,
                first_provisional_or_200,
            } => {
                stats.record(
                    Metric::Srd,
                    since(first_provisional_or_200, invite_sent),
                    since(first_provisional_or_200, intended),
                );
            }
            Event::CallAnswered {
                intended,
                invite_sent,
                answered,
            } => {
                stats.count(Counter::CallEstablished, 1);
                stats.record(
                    Metric::Answer,
                    since(answered, invite_sent),
                    since(answered, intended),
                );
                self.response(stats, Method::Invite, 200);
            }
            Event::CallDone {
                outcome,
                bye_sent,
                bye_done,
                answered,
                ..
            } => {
                match outcome {
                    Outcome::Success => stats.count(Counter::CallCompleted, 1),
                    Outcome::Failed(code) => {
                        stats.count(
                            if (300..400).contains(&code) {
                                Counter::CallRedirected
                            } else {
                                Counter::CallFailed
                            },
                            1,
                        );
                        if answered.is_none() {
                            self.response(stats, Method::Invite, code);
                        }
                    }
                    Outcome::Timeout => stats.count(Counter::CallTimedOut, 1),
                    Outcome::TransportError => stats.count(Counter::CallFailed, 1),
                    Outcome::Cancelled => {
                        stats.count(Counter::CallCancelled, 1);
                        if answered.is_none() {
                            self.response(stats, Method::Invite, 487);
                        }
                    }
                }
                if let (Some(s), Some(d)) = (bye_sent, bye_done) {
                    stats.record(Metric::Sdd, since(d, s), since(d, s));
                }
                if let (Some(a), Some(s)) = (answered, bye_sent) {
                    stats.record(Metric::SessionDuration, since(s, a), since(s, a));
                }
            }
            Event::OptionsDone {
                intended,
                started,
                finished,
                outcome,
            } => {
                self.transaction_done(stats, &OPTIONS_KIND, outcome, (intended, started, finished))
            }
            Event::TransactionRtt { method, rtt } => {
                let m = match method {
                    MethodKind::Register => Some(Metric::RegisterRtt),
                    MethodKind::Invite => Some(Metric::InviteRtt),
                    MethodKind::Bye => Some(Metric::ByeRtt),
                    _ => None,
                };
                if let Some(m) = m {
                    stats.record(m, rtt, rtt);
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn flush_counters(&mut self, stats: &mut WorkerStats) {
        let rest = match self.scenario {
            ScenarioKind::Register => Method::Register,
            ScenarioKind::Options => Method::Options,
            ScenarioKind::Call | ScenarioKind::Mixed | ScenarioKind::Mix => Method::Other,
        };
        flush_engine_counters(
            self.ep.counters(),
            &mut self.last,
            &mut self.attributed,
            rest,
            stats,
        );
    }
}

/// The engine's UAS/registrar endpoint for `serve`.
pub struct EngineServer {
    ep: Endpoint,
    last: Box<engine::Counters>,
    attributed: Box<[u64; CODES]>,
    /// `serve --max-rate`: 503s waiting to be sent, and the shared limit.
    throttle: Option<engine::throttle::Gate>,
}

impl std::fmt::Debug for EngineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineServer").finish_non_exhaustive()
    }
}

impl EngineServer {
    pub fn new(ep: Endpoint) -> Self {
        EngineServer {
            ep,
            last: Box::default(),
            attributed: Box::new([0; CODES]),
            throttle: None,
        }
    }

    /// Answer new attempts beyond the shared limit with 503.
    pub fn with_throttle(mut self, t: Option<engine::throttle::Throttle>) -> Self {
        self.throttle = t.map(engine::throttle::Gate::new);
        self
    }
}

impl SansIo for EngineServer {
    type Event = Event;
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        if let Some(g) = &mut self.throttle
            && g.intercept(now, from, data)
        {
            return;
        }
        self.ep.handle(now, from, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        if let Some(to) = self.throttle.as_mut().and_then(|g| g.poll_transmit(buf)) {
            return Some(to);
        }
        self.ep.poll_transmit(buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.ep.poll_event()
    }
}

impl LoadServer for EngineServer {
    fn record(&mut self, _event: Event, _stats: &mut WorkerStats) {}
    fn flush_counters(&mut self, stats: &mut WorkerStats) {
        // The server receives requests; the responses it *sends* are what a
        // reader of its progress wants, counted under OTHER.
        let now = self.ep.counters();
        stats.count(Counter::MsgSent, now.sent.saturating_sub(self.last.sent));
        stats.count(
            Counter::MsgReceived,
            now.received.saturating_sub(self.last.received),
        );
        stats.count(
            Counter::Retransmitted,
            now.retransmitted.saturating_sub(self.last.retransmitted),
        );
        stats.count(
            Counter::RetransmissionsReceived,
            now.duplicates.saturating_sub(self.last.duplicates),
        );
        stats.count(
            Counter::Unparseable,
            now.unparseable.saturating_sub(self.last.unparseable),
        );
        stats.count(
            Counter::Unexpected,
            now.unexpected.saturating_sub(self.last.unexpected),
        );
        self.attributed.fill(0);
        (*self.last).clone_from(now);
    }
}

/// What `run` ends with.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Every attempt succeeded and every threshold held (exit code 0).
    pub all_ok: bool,
    /// Where the report went.
    pub out: std::path::PathBuf,
    /// Failed threshold messages.
    pub failed_thresholds: Vec<String>,
}

fn engine_scenario(s: ScenarioKind) -> engine::Scenario {
    match s {
        ScenarioKind::Register => engine::Scenario::Register,
        ScenarioKind::Call => engine::Scenario::Call,
        ScenarioKind::Options => engine::Scenario::Options,
        ScenarioKind::Mixed => engine::Scenario::Mixed,
        // Never handed to the engine: a mix starts its parts' scenarios.
        ScenarioKind::Mix => engine::Scenario::Call,
    }
}

fn engine_timers(t: &crate::config::TimerValues) -> engine::Timers {
    engine::Timers {
        t1: t.t1,
        t2: t.t2,
        t4: t.t4,
    }
}

/// The embedded default when no `--target` is given and no load shape is
/// set: a short, laptop-sized run (SPEC: "a new user sees real numbers with
/// one command").
pub const EMBEDDED_RATE: f64 = 2000.0;
/// Duration of the embedded default run.
pub const EMBEDDED_DURATION: Duration = Duration::from_secs(5);

/// Resolve the backend once for the process, printing the fallback note.
fn resolve_backend(b: Backend) -> Result<Backend, RunError> {
    let (backend, note) = b.resolve()?;
    if let Some(note) = note {
        say!("sipstorm: {note}");
    }
    Ok(backend)
}

/// Default report directory: `results/<YYYYmmdd-HHMMSS>-<scenario>/`.
fn default_out(started: SystemTime, scenario: ScenarioKind) -> std::path::PathBuf {
    let stamp: String = crate::report::format_rfc3339(started)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect::<String>()
        .replace('T', "-");
    std::path::Path::new("results").join(format!("{stamp}-{}", scenario.name()))
}

fn server_config(cfg: &ServeConfig, local: SocketAddr) -> Result<engine::ServerConfig, RunError> {
    let passwords = engine::UserSource::any(&cfg.password_pattern)
        .map_err(|e| RunError::Usage(format!("--password-pattern: {e}")))?;
    Ok(engine::ServerConfig {
        local,
        realm: cfg.realm.clone(),
        auth: cfg.auth,
        passwords: Arc::new(passwords),
        ring: cfg.ring,
        algorithm: cfg.algorithm,
        qop_auth_int: cfg.qop == crate::auth::Qop::AuthInt,
        busy_ratio: cfg.busy_ratio,
        no_answer_ratio: cfg.no_answer_ratio,
        seed: cfg.seed,
        ..engine::ServerConfig::default()
    })
}

/// A running set of server workers.
struct Servers {
    /// Every worker's own address (all equal with `SO_REUSEPORT`).
    addrs: Vec<SocketAddr>,
    handles: Vec<std::thread::JoinHandle<Result<IoCounters, TransportError>>>,
    agg: std::thread::JoinHandle<()>,
    stop: StopFlag,
    addr: SocketAddr,
}

impl Servers {
    /// `distinct`: one port per worker instead of one `SO_REUSEPORT` group,
    /// so the embedded run can pair client worker i with server worker i
    /// (the kernel's 4-tuple hash may put two clients on one server socket).
    fn start(
        cfg: &ServeConfig,
        backend: Backend,
        progress: bool,
        pin_offset: usize,
        distinct: bool,
    ) -> Result<Servers, RunError> {
        let (socks, addr) = if distinct {
            let mut socks = Vec::new();
            for _ in 0..cfg.workers {
                socks.push(transport::bind_udp(cfg.listen, SocketOptions::default())?);
            }
            let addr = socks[0]
                .local_addr()
                .map_err(|e| RunError::Transport(TransportError::Socket(e)))?;
            (socks, addr)
        } else {
            bind_server_sockets(cfg.listen, cfg.workers)?
        };
        let addrs = socks
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect::<Vec<_>>();
        // Validate once before spawning.
        let _ = server_config(cfg, addr)?;
        let stop = StopFlag::new();
        let (tx, rx) = bounded::<WorkerMsg>(cfg.workers * 8 + 8);
        let n = socks.len();
        let agg = std::thread::Builder::new()
            .name("sipstorm-serve-progress".into())
            .spawn(move || serve_progress(rx, n, progress))
            .map_err(RunError::Thread)?;
        let cfg2 = cfg.clone();
        let throttle = cfg.max_rate.map(engine::throttle::Throttle::new);
        let make = move |i: usize, local: SocketAddr| {
            let mut sc = server_config(&cfg2, local).unwrap_or_default();
            sc.seed = cfg2.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9);
            EngineServer::new(Endpoint::server(sc, Instant::now())).with_throttle(throttle.clone())
        };
        let handles = spawn_servers(
            socks,
            backend,
            make,
            Instant::now(),
            tx,
            stop.clone(),
            pin_offset,
        )?;
        Ok(Servers {
            addrs,
            handles,
            agg,
            stop,
            addr,
        })
    }

    fn stop(self) -> Result<(), RunError> {
        self.stop.set(StopFlag::DRAIN);
        let mut first = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(RunError::Transport(e));
                }
                Err(_) => {
                    first.get_or_insert(RunError::WorkerPanicked);
                }
            }
        }
        let _ = self.agg.join();
        first.map_or(Ok(()), Err)
    }
}

/// Per-second server progress: messages in and out.
fn serve_progress(rx: Receiver<WorkerMsg>, workers: usize, print: bool) {
    let mut done = 0;
    let mut counters = crate::stats::Counters::default();
    let mut last = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    while done < workers {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => {
                counters.add_all(&m.snapshot.counters);
                if m.last {
                    done += 1;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if print && last.elapsed() >= INTERVAL {
            let secs = last.elapsed().as_secs_f64();
            last = Instant::now();
            let line = format!(
                "{:>6.1}s  received {:>9.0}/s  sent {:>9.0}/s  retransmitted {}  unparseable {}",
                start.elapsed().as_secs_f64(),
                counters.get(Counter::MsgReceived) as f64 / secs,
                counters.get(Counter::MsgSent) as f64 / secs,
                counters.get(Counter::Retransmitted),
                counters.get(Counter::Unparseable),
            );
            counters = crate::stats::Counters::default();
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
        }
    }
}

/// `sipstorm serve`: run the built-in target until SIGINT/SIGTERM.
pub fn serve_command(cfg: &ServeConfig) -> Result<(), RunError> {
    let backend = resolve_backend(cfg.backend)?;
    let signals = StopFlag::new();
    signals.install_signals()?;
    let servers = Servers::start(cfg, backend, !cfg.quiet, 0, false)?;
    say!(
        "sipstorm serve: listening on udp {} with {} worker(s), {} backend, auth {}",
        servers.addr,
        cfg.workers,
        backend,
        if cfg.auth { "on" } else { "off" }
    );
    while signals.level() == StopFlag::RUN {
        std::thread::sleep(Duration::from_millis(50));
    }
    servers.stop()?;
    say!("\nsipstorm serve: stopped");
    Ok(())
}

/// `sipstorm run`: drive load, write the report, decide the exit code.
pub fn run_command(cfg: &RunConfig) -> Result<RunOutcome, RunError> {
    // Everything a user can get wrong is checked before the first socket.
    for t in &cfg.thresholds {
        crate::report::Threshold::parse(t)
            .map_err(|e| RunError::Usage(format!("--threshold: {e}")))?;
    }
    let users = Arc::new(match &cfg.users {
        // A users file: this segment's contiguous block of it.
        Some(file) => {
            let range = cfg
                .segment
                .unwrap_or(crate::segment::Segment::WHOLE)
                .user_range(file.users.len());
            let list = file.users[range]
                .iter()
                .map(|u| (u.name.clone(), u.password.expose().to_string()))
                .collect::<Vec<_>>();
            if list.is_empty() {
                return Err(RunError::Usage("--users: this segment has no users".into()));
            }
            engine::UserSource::list(list)
        }
        None => engine::UserSource::pattern(&cfg.user_pattern, &cfg.password_pattern)
            .map_err(|e| RunError::Usage(format!("--user-pattern/--password-pattern: {e}")))?,
    });
    let backend = resolve_backend(cfg.backend)?;
    let stop = StopFlag::new();
    stop.install_signals()?;

    let mut cfg = cfg.clone();
    let mut embedded_targets: Vec<SocketAddr> = Vec::new();
    let embedded = match cfg.target {
        Some(_) => None,
        None => {
            let sc = ServeConfig {
                listen: SocketAddr::new(cfg.local_ip, 0),
                workers: cfg.workers,
                realm: "sipstorm".into(),
                auth: true,
                password_pattern: cfg.password_pattern.clone(),
                ring: cfg.ring,
                // The embedded target offers what the client prefers.
                algorithm: cfg
                    .digest
                    .algorithms
                    .first()
                    .copied()
                    .unwrap_or(crate::auth::Algorithm::Md5),
                qop: cfg.digest.qop,
                busy_ratio: 0.0,
                no_answer_ratio: 0.0,
                backend,
                quiet: true,
                seed: cfg.seed ^ 0xC0FFEE,
                max_rate: None,
            };
            let s = Servers::start(&sc, backend, false, 0, true)?;
            embedded_targets = s.addrs.clone();
            cfg.target = Some(s.addr);
            if cfg.rate.is_none()
                && cfg.concurrency.is_none()
                && cfg.count.is_none()
                && cfg.duration.is_none()
            {
                cfg.rate = Some(EMBEDDED_RATE);
                cfg.duration = Some(EMBEDDED_DURATION);
            }
            if !cfg.quiet {
                say!(
                    "sipstorm: embedded server on udp {}; {} at {}/s{}",
                    s.addr,
                    cfg.scenario.name(),
                    cfg.rate.map_or("closed-loop".into(), |r| format!("{r}")),
                    cfg.duration
                        .map_or(String::new(), |d| format!(" for {d:?}")),
                );
            }
            Some(s)
        }
    };
    let target = cfg
        .target
        .ok_or_else(|| RunError::Usage("--target is required".into()))?;
    if cfg.rate.is_none() && cfg.concurrency.is_none() {
        // SIPp's habit: a modest default rate rather than an unbounded loop.
        cfg.rate = Some(10.0);
    }
    // Generated users: segment s of N and worker i of W use the users
    // s + N·(i + W·k), disjoint across segments and workers. A users file
    // was already cut to this segment's block above.
    let (seg_index, seg_count) = match (&cfg.segment, &cfg.users) {
        (Some(seg), None) => (seg.index as usize, seg.count as usize),
        _ => (0, 1),
    };
    if let Some(st) = cfg.stages.clone() {
        // Stages set the rate; the report's offered rate is their mean.
        let st = match cfg.segment {
            Some(seg) => Arc::new(st.scaled(seg.share_rate(1.0))),
            None => st,
        };
        cfg.rate = Some(st.mean_rate() * cfg.segment.map_or(1.0, |s| f64::from(s.count)));
        cfg.stages = Some(st);
    }
    if let Some(seg) = cfg.segment {
        cfg.rate = cfg.rate.map(|r| seg.share_rate(r));
        cfg.count = cfg.count.map(|c| seg.share_count(c).max(1));
        cfg.concurrency = cfg.concurrency.map(|c| seg.share_count(c).max(1));
    }
    // Each worker needs at least one slot of the concurrency cap: fewer
    // slots than workers means fewer workers.
    if let Some(c) = cfg.concurrency {
        cfg.workers = cfg
            .workers
            .min(usize::try_from(c).unwrap_or(usize::MAX))
            .max(1);
    }
    let fleet = Fleet {
        workers: cfg.workers,
        local_ip: cfg.local_ip,
        backend,
        rate: cfg.rate,
        concurrency: cfg.concurrency,
        count: cfg.count,
        duration: cfg.duration,
        hold: cfg.hold,
        seed: cfg.seed,
        drain: cfg.drain,
        quiet: cfg.quiet,
        pacing_resolution: cfg.pacing_resolution,
        batch_window: cfg.batch_window,
        stages: cfg.stages.clone(),
    };
    let (scenario, timers, workers) = (cfg.scenario, engine_timers(&cfg.timers), cfg.workers);
    let (cancel_ratio, expires, seed) = (cfg.cancel_ratio, cfg.expires, cfg.seed);
    let (ring, digest, mix) = (cfg.ring, cfg.digest.clone(), cfg.mix.clone());
    let make = move |i: usize, local: SocketAddr, now: Instant| {
        // Embedded: client worker i talks to server worker i.
        let target = embedded_targets
            .get(i % embedded_targets.len().max(1))
            .copied()
            .unwrap_or(target);
        let mut cc = engine::ClientConfig::new(engine_scenario(scenario), target, local);
        cc.users = users.clone();
        cc.user_offset = seg_index + seg_count * i;
        cc.user_stride = seg_count * workers;
        cc.cancel_ratio = cancel_ratio;
        cc.expires = expires;
        cc.timers = timers;
        cc.seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        cc.answer_ring = ring;
        cc.digest_algorithms = digest.algorithms.clone();
        cc.digest_qop = digest.qop;
        let cc_seed = cc.seed;
        EngineClient::new(Endpoint::client(cc, now), scenario).with_mix(mix.clone(), cc_seed)
    };
    let result = run_clients(&fleet, make, &stop);
    let server_result = embedded.map(Servers::stop);
    let r = result?;
    if let Some(Err(e)) = server_result {
        return Err(e);
    }
    let out = cfg
        .out
        .clone()
        .unwrap_or_else(|| default_out(r.started_at, cfg.scenario));
    let mut info = crate::report::RunInfo::new(
        cfg.scenario.name(),
        cfg.rate,
        cfg.to_json(),
        r.started_at,
        r.elapsed,
    );
    info.load_duration = Some(r.load_elapsed);
    info.process = process_usage();
    let report = crate::report::write_report(&out, &info, &r.collected.aggregate)
        .map_err(|e| RunError::Report(e.to_string()))?;
    // A closed stdout (`| head`, a gone reader) must not kill the run:
    // the report is already on disk and the exit code still matters.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        crate::report::render_summary(&report)
    );
    let failed_thresholds = crate::report::check_thresholds(&report, &cfg.thresholds)
        .map_err(|e| RunError::Usage(format!("--threshold: {e}")))?;
    for f in &failed_thresholds {
        say!("sipstorm: threshold failed: {f}");
    }
    let interrupted = stop.level() > StopFlag::RUN;
    let c = r.collected.aggregate.counters();
    let attempts = c.attempts();
    let failures = c.failures();
    let unfinished = attempts.saturating_sub(
        c.get(Counter::RegisterSucceeded)
            + c.get(Counter::CallCompleted)
            + c.get(Counter::CallCancelled)
            + c.get(Counter::OptionsSucceeded)
            + failures
            + c.get(Counter::CallRedirected),
    );
    if unfinished > 0 && !interrupted {
        say!(
            "sipstorm: {unfinished} attempt(s) had no outcome when the drain limit ({:?}) ended the run; \
             --drain extends it (a silent target times out only after 64*T1 = {:?})",
            cfg.drain,
            cfg.timers.t1 * 64
        );
    }
    if r.refused > 0 {
        say!(
            "sipstorm: {} start(s) waited for a free user; more users (--user-pattern, --users) would keep the schedule",
            r.refused
        );
    }
    say!("sipstorm: report written to {}", out.display());
    let interrupted = stop.level() > StopFlag::RUN;
    Ok(RunOutcome {
        all_ok: failures == 0
            && (unfinished == 0 || interrupted)
            && failed_thresholds.is_empty()
            && attempts > 0,
        out,
        failed_thresholds,
    })
}

fn report_err(e: crate::report::ReportError) -> RunError {
    if e.is_usage() {
        RunError::Usage(e.to_string())
    } else {
        RunError::Report(e.to_string())
    }
}

/// `sipstorm report DIR`.
pub fn report_command(dir: &std::path::Path) -> Result<bool, RunError> {
    crate::report::render_dir(dir).map_err(report_err)?;
    say!("sipstorm: re-rendered {}", dir.display());
    Ok(true)
}

/// `sipstorm compare BASE NEW`: prints the table; false when a threshold failed.
pub fn compare_command(
    base: &std::path::Path,
    new: &std::path::Path,
    thresholds: &[String],
) -> Result<bool, RunError> {
    let o = crate::report::compare(base, new, thresholds).map_err(report_err)?;
    let _ = writeln!(std::io::stdout().lock(), "{}", o.table);
    for f in &o.failed {
        say!("sipstorm: threshold failed: {f}");
    }
    Ok(o.failed.is_empty())
}

/// `sipstorm merge OUT IN...`.
pub fn merge_command(
    out: &std::path::Path,
    inputs: &[std::path::PathBuf],
) -> Result<bool, RunError> {
    let r = crate::report::merge(out, inputs).map_err(report_err)?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        crate::report::render_summary(&r)
    );
    Ok(true)
}

/// This process's CPU time and peak RSS, as the report records them.
pub fn process_usage() -> crate::report::ProcessUsage {
    let u = transport::resource_usage();
    crate::report::ProcessUsage {
        cpu_user_s: u.user_s,
        cpu_sys_s: u.sys_s,
        max_rss_kib: u.max_rss_kib,
    }
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
        fn handle(&mut self, now: Instant, _from: Flow, data: &[u8]) {
            let id = std::str::from_utf8(data)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            if let Some((intended, started)) = id.and_then(|id| self.open.remove(&id)) {
                self.events.push_back((intended, started, now));
            }
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
            let id = self.out.pop_front()?;
            buf.clear();
            buf.extend_from_slice(id.to_string().as_bytes());
            Some(Flow::udp(self.target))
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
        fn record(&mut self, (intended, started, finished): Self::Event, stats: &mut WorkerStats) {
            stats.count(Counter::OptionsSucceeded, 1);
            stats.record(Metric::OptionsRtt, finished - started, finished - intended);
        }
        fn attempt_counter(&self) -> Counter {
            Counter::OptionsAttempted
        }
    }

    impl LoadServer for Echo {
        fn record(&mut self, _: (), _: &mut WorkerStats) {}
    }

    /// `n` echo server workers on one loopback port, their address and the
    /// receiver of their statistics.
    #[allow(clippy::type_complexity)]
    fn echo_servers(
        backend: Backend,
        n: usize,
        stop: &StopFlag,
    ) -> (
        Vec<std::thread::JoinHandle<Result<IoCounters, TransportError>>>,
        SocketAddr,
        Receiver<WorkerMsg>,
    ) {
        let (socks, addr) = bind_server_sockets("127.0.0.1:0".parse().unwrap(), n).unwrap();
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
        (servers, addr, srx)
    }

    /// A quiet loopback fleet with test defaults; callers set the load.
    fn test_fleet(backend: Backend, workers: usize) -> Fleet {
        Fleet {
            workers,
            local_ip: "127.0.0.1".parse().unwrap(),
            backend,
            rate: None,
            concurrency: None,
            count: None,
            duration: None,
            hold: Hold::Fixed(Duration::ZERO),
            seed: 1,
            drain: Duration::from_secs(2),
            quiet: true,
            pacing_resolution: Duration::ZERO,
            batch_window: transport::DEFAULT_BATCH_WINDOW,
            stages: None,
        }
    }

    fn fleet_vs_echo(backend: Backend, workers: usize) {
        let stop = StopFlag::new();
        let (servers, addr, srx) = echo_servers(backend, 2, &stop);
        let agg = std::thread::spawn(move || aggregate(srx, 2, SystemTime::now(), 0.0, true));
        let fleet = Fleet {
            rate: Some(2000.0),
            concurrency: None,
            count: Some(300),
            duration: Some(Duration::from_secs(5)),
            drain: Duration::from_secs(2),
            ..test_fleet(backend, workers)
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
        let (servers, addr, srx) = echo_servers(Backend::Epoll, 1, &stop);
        let fleet = Fleet {
            rate: Some(100.0),
            concurrency: None,
            count: None,
            duration: Some(Duration::from_secs(60)),
            drain: Duration::from_secs(10),
            ..test_fleet(Backend::Epoll, 1)
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

    /// Not a test: the transport's datagram round-trip capacity, one client
    /// worker against one echo worker, closed loop. Run with
    /// `cargo test --release --lib transport_capacity -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn transport_capacity() {
        for backend in [Backend::Uring, Backend::Epoll] {
            if backend.resolve().is_err() {
                continue;
            }
            let stop = StopFlag::new();
            let (servers, addr, srx) = echo_servers(backend, 1, &stop);
            let fleet = Fleet {
                rate: None,
                concurrency: Some(512),
                count: None,
                duration: Some(Duration::from_secs(3)),
                drain: Duration::from_secs(2),
                ..test_fleet(backend, 1)
            };
            let make = move |_, _, _| PingClient {
                target: addr,
                next: 0,
                open: HashMap::new(),
                out: VecDeque::new(),
                events: VecDeque::new(),
            };
            let r = run_clients(&fleet, make, &StopFlag::new()).unwrap();
            stop.set(StopFlag::DRAIN);
            for h in servers {
                h.join().unwrap().unwrap();
            }
            drop(srx);
            let n = r
                .collected
                .aggregate
                .counters()
                .get(Counter::OptionsSucceeded);
            let io = r.collected.io[0];
            println!(
                "{backend}: {:.0} round trips/s ({n} in {:?}), {:.1} datagrams per loop turn",
                n as f64 / r.elapsed.as_secs_f64(),
                r.elapsed,
                (io.datagrams_received + io.datagrams_sent) as f64 / io.turns.max(1) as f64
            );
        }
    }
}
