//! Threads, cores and sockets: bind the workers' sockets, start one pinned
//! thread per worker running the transport loop, and gather what they
//! measured through the aggregator.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, bounded};

use super::RunError;
use super::plan::RunPlan;
use super::progress::{self, Collected, View};
use super::stop::StopFlag;
use super::worker::{
    ClientSettings, ClientWorker, LoadClient, LoadServer, ServerWorker, WorkerMsg,
};
use crate::config::RunConfig;
use crate::flow::TransportKind;
use crate::schedule::{Pacer, Share};
use crate::transport::tls::ClientTls;
use crate::transport::{
    self, Backend, IoCounters, Listener, SocketOptions, StreamSetup, TransportError,
};

/// What one worker's loop runs on: its UDP socket and, for a server, its
/// TCP, TLS, WS and WSS listeners (no socket is shared between workers).
#[derive(Debug)]
pub struct WorkerSockets {
    pub udp: UdpSocket,
    pub listeners: Vec<Listener>,
}

impl WorkerSockets {
    /// A worker with a UDP socket only.
    pub fn udp(udp: UdpSocket) -> WorkerSockets {
        WorkerSockets {
            udp,
            listeners: Vec::new(),
        }
    }
}

/// Bind `n` workers' listeners for each of `streams` (TCP, TLS, WS, WSS) the
/// way [`bind_sockets`] binds UDP: one `SO_REUSEPORT` group per address
/// ([`Binding::Shared`]: the kernel spreads new connections over the
/// workers' accept queues), or an address per worker. Returns each
/// worker's listeners.
pub fn bind_listeners(
    streams: &[(TransportKind, SocketAddr)],
    n: usize,
    binding: Binding,
) -> Result<Vec<Vec<Listener>>, RunError> {
    let mut per_worker: Vec<Vec<Listener>> = (0..n.max(1)).map(|_| Vec::new()).collect();
    for &(kind, addr) in streams {
        let mut first: Option<SocketAddr> = None;
        for (i, own) in per_worker.iter_mut().enumerate() {
            let at = match (binding, first) {
                (Binding::Shared, Some(f)) => f,
                (Binding::Distinct, _) if addr.port() != 0 => {
                    let port = u16::try_from(usize::from(addr.port()) + i).map_err(|_| {
                        RunError::Usage(format!(
                            "--listen {kind}:{addr}: ports do not fit below 65536 for {n} workers"
                        ))
                    })?;
                    SocketAddr::new(addr.ip(), port)
                }
                _ => addr,
            };
            let l = transport::bind_listener(kind, at, binding == Binding::Shared)?;
            if first.is_none() {
                first = Some(
                    l.socket
                        .local_addr()
                        .map_err(|e| RunError::Transport(TransportError::Socket(e)))?,
                );
            }
            own.push(l);
        }
    }
    Ok(per_worker)
}

/// How the sockets of a set of workers share an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// One `SO_REUSEPORT` group on one address: the kernel's 4-tuple hash
    /// sends every datagram of one peer address to the same socket, so a
    /// dialog's requests (INVITE, ACK, BYE) reach the worker that holds its
    /// state. (Steering by receiving CPU spreads load more evenly but breaks
    /// that for peers whose sending thread migrates between cores, such as
    /// SIPp and Kamailio: their BYEs met 481s.)
    Shared,
    /// One address per worker: the client side, where each worker's own
    /// source port brings answers back to the worker that owns the call,
    /// and the embedded server, whose worker i pairs with client worker i.
    /// Port 0 gives each an ephemeral port; port P gives P, P+1, …
    Distinct,
}

/// Bind `n` UDP sockets for workers on `addr`.
pub fn bind_sockets(
    addr: SocketAddr,
    n: usize,
    binding: Binding,
) -> Result<Vec<UdpSocket>, RunError> {
    let opts = SocketOptions {
        reuse_port: binding == Binding::Shared,
        ..SocketOptions::default()
    };
    let mut socks: Vec<UdpSocket> = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let at = match (binding, socks.first()) {
            // The group's address is the first socket's (port 0 picked one).
            (Binding::Shared, Some(first)) => first
                .local_addr()
                .map_err(|e| RunError::Transport(TransportError::Socket(e)))?,
            (Binding::Distinct, _) if addr.port() != 0 => {
                let port = u16::try_from(usize::from(addr.port()) + i).map_err(|_| {
                    RunError::Usage(format!(
                        "ports {}..{} do not fit below 65536 for {n} workers",
                        addr.port(),
                        usize::from(addr.port()) + n
                    ))
                })?;
                SocketAddr::new(addr.ip(), port)
            }
            _ => addr,
        };
        socks.push(transport::bind_udp(at, opts)?);
    }
    Ok(socks)
}

/// The bound address of each socket.
pub fn local_addrs(socks: &[UdpSocket]) -> Result<Vec<SocketAddr>, RunError> {
    socks
        .iter()
        .map(|s| {
            s.local_addr()
                .map_err(|e| RunError::Transport(TransportError::Socket(e)))
        })
        .collect()
}

/// Which end of the core list a set of workers is pinned from.
///
/// Client workers take cores from the first up and server workers from the
/// last down, so `run` and `serve` on one machine (separate processes that
/// cannot coordinate) do not stack their first workers on core 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFrom {
    First,
    Last,
}

/// Pin the calling thread to core `i` (modulo the cores present) counted
/// from `from`. Off when `SIPSTORM_NO_PIN` is set: on a machine shared with
/// other busy processes a pinned worker cannot move away from a crowded
/// core, so benchmarks there may do better unpinned.
pub fn pin(i: usize, from: PinFrom) {
    if std::env::var_os("SIPSTORM_NO_PIN").is_some() {
        return;
    }
    if let Some(ids) = core_affinity::get_core_ids()
        && !ids.is_empty()
    {
        let n = ids.len();
        let k = match from {
            PinFrom::First => i % n,
            PinFrom::Last => n - 1 - (i % n),
        };
        core_affinity::set_for_current(ids[k]);
    }
}

/// Start a named worker thread pinned to core `i` from `from`.
fn spawn_pinned<T: Send + 'static>(
    name: String,
    i: usize,
    from: PinFrom,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            pin(i, from);
            body()
        })
        .map_err(RunError::Thread)
}

/// A server worker thread; yields its loop counters.
pub type ServerHandle = JoinHandle<Result<IoCounters, TransportError>>;

/// Start one pinned server worker per socket set; worker `i`'s endpoint
/// is `make(i, its UDP address)`; `streams` sets up its listeners'
/// connections (the TLS server configuration is shared read-only, the
/// connections are each worker's own).
pub fn spawn_servers<S, F>(
    sockets: Vec<WorkerSockets>,
    streams: StreamSetup,
    backend: Backend,
    make: F,
    tx: Sender<WorkerMsg>,
    stop: StopFlag,
) -> Result<Vec<ServerHandle>, RunError>
where
    S: LoadServer + 'static,
    F: Fn(usize, SocketAddr) -> S + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(sockets.len());
    for (i, sock) in sockets.into_iter().enumerate() {
        let (make, tx, stop) = (make.clone(), tx.clone(), stop.clone());
        handles.push(spawn_pinned(
            format!("sipstorm-serve-{i}"),
            i,
            PinFrom::Last,
            {
                let streams = streams.clone();
                move || {
                    let local = sock.udp.local_addr().map_err(TransportError::Socket)?;
                    let mut w = ServerWorker::new(i, make(i, local), t0, tx, stop);
                    transport::run_worker_loop(
                        backend,
                        &sock.udp,
                        &sock.listeners,
                        &streams,
                        &mut w,
                    )
                }
            },
        )?);
    }
    Ok(handles)
}

/// Join server workers: the first error, if any.
pub fn join_servers(handles: Vec<ServerHandle>) -> Result<(), RunError> {
    let mut first = None;
    for h in handles {
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
    first.map_or(Ok(()), Err)
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
    /// Starts that waited for a free user.
    pub refused: u64,
}

/// Run `plan.workers` pinned client workers, each on its own socket (its
/// own source port, so answers come back to the worker that owns the
/// call), until every pacer is done and the attempts drained, or `stop`
/// says so. Worker `i`'s endpoint is `make(i, its address, t0)`. Over a
/// stream transport each worker opens its own connections (bound to
/// `--local-ip`); with TLS each builds its own client configuration from
/// `tls`, so its session cache is its own.
pub fn run_clients<C, F>(
    cfg: &RunConfig,
    plan: &RunPlan,
    backend: Backend,
    stop: &StopFlag,
    tls: Option<ClientTls>,
    make: F,
) -> Result<FleetResult, RunError>
where
    C: LoadClient + 'static,
    F: Fn(usize, SocketAddr, Instant) -> C + Send + Sync + 'static,
{
    let n = plan.workers.max(1);
    let sockets = bind_sockets(
        SocketAddr::new(cfg.local_ip, cfg.reach.local_port),
        n,
        Binding::Distinct,
    )?;
    let (tx, rx) = bounded::<WorkerMsg>(n * 8);
    let started_at = SystemTime::now();
    // Give the threads a moment to start and pin before the first intended
    // start, so the schedule does not begin with a backlog.
    let t0 = Instant::now() + Duration::from_millis(20);
    let view = View::Client {
        offered: plan.offered_rate(),
    };
    let print = !cfg.quiet;
    let agg = std::thread::Builder::new()
        .name("sipstorm-aggregate".into())
        .spawn(move || progress::collect(rx, n, started_at, view, print))
        .map_err(RunError::Thread)?;
    let settings = ClientSettings {
        hold: cfg.hold,
        seed: cfg.seed,
        drain: cfg.drain,
        batch_window: cfg.batch_window,
        tick_wait: cfg.transport == TransportKind::Udp,
    };
    let make = Arc::new(make);
    let mut handles = Vec::with_capacity(n);
    let base = StreamSetup {
        local_ip: Some(cfg.local_ip),
        enabled: cfg.transport.is_stream(),
        // WebSocket: the Upgrade's Host is the target as the user named it
        // (the peer's address when it is the embedded server).
        ws: cfg
            .ws
            .clone()
            .map(|mut w| {
                w.host = cfg.target.and(cfg.target_text.clone());
                w
            })
            .unwrap_or_default(),
        ..StreamSetup::new()
    };
    for (i, sock) in sockets.into_iter().enumerate() {
        let (make, tx, stop) = (make.clone(), tx.clone(), stop.clone());
        let pacer = Pacer::new(t0, &plan.schedule, Share::new(i, n));
        let mut streams = base.clone();
        if let Some(t) = &tls {
            let target = cfg
                .target
                .unwrap_or_else(|| SocketAddr::new(cfg.local_ip, 0));
            let name = t.sni.as_ref().map(|_| t.server_name(target)).transpose();
            streams.client_tls = Some((
                t.build().map_err(TransportError::from)?,
                name.map_err(TransportError::from)?,
            ));
        }
        handles.push(spawn_pinned(
            format!("sipstorm-run-{i}"),
            i,
            PinFrom::First,
            move || -> Result<(u64, Option<Instant>), TransportError> {
                let local = sock.local_addr().map_err(TransportError::Socket)?;
                let client = make(i, local, t0);
                let mut w = ClientWorker::new(i, client, pacer, settings, t0, tx, stop);
                let r = transport::run_worker_loop(backend, &sock, &[], &streams, &mut w);
                if r.is_err() {
                    w.abort(Instant::now());
                }
                r.map(|_| (w.refused, w.load_end))
            },
        )?);
    }
    drop(tx);
    let mut refused = 0;
    // None: no worker joined yet; Some(None): some worker has no end of
    // load, which makes the whole run's load phase unknown.
    let mut load_end: Option<Option<Instant>> = None;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((r, end))) => {
                refused += r;
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
    let load_end = load_end.flatten();
    // The drain can end before a count-limited load's last slot does.
    let elapsed = t0
        .elapsed()
        .max(load_end.map_or(Duration::ZERO, |e| e.saturating_duration_since(t0)));
    Ok(FleetResult {
        collected,
        started_at,
        elapsed,
        load_elapsed: load_end.map_or(elapsed, |e| e.saturating_duration_since(t0)),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunValues;
    use crate::engine::SansIo;
    use crate::flow::Flow;
    use crate::schedule::{Load, Schedule};
    use crate::stats::{Counter, Metric, WorkerStats};
    use crate::transport::testing::Echo;
    use crossbeam_channel::Receiver;
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
    ) -> (Vec<ServerHandle>, SocketAddr, Receiver<WorkerMsg>) {
        let socks = bind_sockets("127.0.0.1:0".parse().unwrap(), n, Binding::Shared).unwrap();
        let addr = socks[0].local_addr().unwrap();
        let (stx, srx) = bounded(16);
        let socks = socks.into_iter().map(WorkerSockets::udp).collect();
        let servers = spawn_servers(
            socks,
            StreamSetup::new(),
            backend,
            |_, _| Echo::default(),
            stx,
            stop.clone(),
        )
        .unwrap();
        (servers, addr, srx)
    }

    /// A quiet loopback run configuration and the plan of `load` over
    /// `workers`; callers set count and duration.
    fn test_fleet(
        backend: Backend,
        workers: usize,
        load: Load,
        count: Option<u64>,
        duration: Duration,
        drain: &str,
    ) -> (RunConfig, RunPlan, Backend) {
        let cfg = RunConfig::build(RunValues {
            target: Some("127.0.0.1:9".into()),
            workers: Some(workers),
            quiet: Some(true),
            seed: Some(1),
            drain: Some(drain.into()),
            ..RunValues::default()
        })
        .unwrap();
        let plan = RunPlan {
            schedule: Schedule {
                load,
                count,
                duration: Some(duration),
                resolution: Duration::ZERO,
            },
            workers,
            workers_reason: crate::run::plan::WorkerReason::Flag,
            segment: Share::WHOLE,
            embedded: false,
            origin: crate::run::plan::LoadOrigin::Given,
        };
        (cfg, plan, backend)
    }

    fn pinger(addr: SocketAddr) -> impl Fn(usize, SocketAddr, Instant) -> PingClient + Send + Sync {
        move |_, _, _| PingClient {
            target: addr,
            next: 0,
            open: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn fleet_vs_echo(backend: Backend, workers: usize) {
        let stop = StopFlag::new();
        let (servers, addr, srx) = echo_servers(backend, 2, &stop);
        let agg = std::thread::spawn(move || {
            progress::collect(srx, 2, SystemTime::now(), View::Server, false)
        });
        let (cfg, plan, backend) = test_fleet(
            backend,
            workers,
            Load::Open {
                rate: 2000.0,
                cap: None,
            },
            Some(300),
            Duration::from_secs(5),
            "2s",
        );
        let r = run_clients(&cfg, &plan, backend, &StopFlag::new(), None, pinger(addr)).unwrap();
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
        let (cfg, plan, backend) = test_fleet(
            Backend::Epoll,
            1,
            Load::Open {
                rate: 100.0,
                cap: None,
            },
            None,
            Duration::from_secs(60),
            "10s",
        );
        let client_stop = StopFlag::new();
        let s2 = client_stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            s2.escalate();
        });
        let r = run_clients(&cfg, &plan, backend, &client_stop, None, pinger(addr)).unwrap();
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
            let (cfg, plan, backend) = test_fleet(
                backend,
                1,
                Load::Closed { concurrency: 512 },
                None,
                Duration::from_secs(3),
                "2s",
            );
            let r =
                run_clients(&cfg, &plan, backend, &StopFlag::new(), None, pinger(addr)).unwrap();
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
