//! The worker loop's side of a run: what a load-generating or serving
//! endpoint must offer ([`LoadClient`], [`LoadServer`]), and the transport
//! [`Worker`]s that drive them ([`ClientWorker`]: pacer, hold times,
//! phases of load, drain and shutdown; [`ServerWorker`]), each sending an
//! interval snapshot of its statistics once a second.

use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::stop::StopFlag;
use crate::engine::SansIo;
use crate::flow::{Flow, TransportKind};
use crate::schedule::{Hold, Pace, Pacer, Rng};
use crate::stats::{Counter, Metric, Snapshot, WorkerStats};
use crate::transport::{
    self, CloseReason, Frame, IoCounters, Opened, Tick, TlsFailure, Worker, WsFailure,
};

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
    /// Whether a message received now may need an answer that a measured
    /// latency includes (the REGISTER after a 401): the loop then wakes for
    /// it within the batch window instead of at the next tick.
    fn prompt_replies(&self) -> bool {
        true
    }
    /// The counter the attempt just started increments (`call.attempted`,
    /// ...; in a mix it depends on the part chosen).
    fn attempt_counter(&self) -> Counter;
    /// Move cumulative endpoint counters (messages, retransmissions,
    /// responses) into `stats` as deltas; called before every snapshot.
    fn flush_counters(&mut self, _stats: &mut WorkerStats) {}
    /// A per-attempt connection whose attempt ended (see
    /// [`Worker::poll_release`]).
    fn poll_release(&mut self) -> Option<Flow> {
        None
    }
}

/// SIP over a stream (RFC 3261 §18.3): a message ends where its
/// Content-Length says; CRLFCRLF between messages is a keep-alive ping
/// and CRLF its pong (RFC 5626 §3.5.1).
pub fn sip_frame(buf: &[u8]) -> Frame {
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::Ping(4);
    }
    if buf.first() == Some(&b'\r') || buf.first() == Some(&b'\n') {
        // A CRLF that may still become a ping waits for more bytes.
        if buf.len() < 4 && buf.iter().all(|&b| b == b'\r' || b == b'\n') {
            return Frame::Partial;
        }
        return Frame::Skip(if buf.starts_with(b"\r\n") { 2 } else { 1 });
    }
    match crate::sip::frame(buf) {
        Ok(crate::sip::Status::Complete(n)) => Frame::Message { start: 0, end: n },
        Ok(crate::sip::Status::Partial) => Frame::Partial,
        Err(_) => Frame::Invalid,
    }
}

/// Whether the first TLS certificate failure was told already: it is said
/// once per process, with what to do; the count is in the report.
static CERT_FAILURE_TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The same for the first failed WebSocket Upgrade.
static WS_FAILURE_TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Count a connection that became ready: `transport.connections_opened`,
/// the handshake counters and the `connect`/`tls_handshake`/`ws_upgrade`
/// latencies (from the connect's start to its end, from TCP established
/// to the TLS handshake's end, from the Upgrade sent to its 101: see
/// [`Opened`]).
fn note_opened(stats: &mut WorkerStats, flow: Flow, info: Opened) {
    stats.count(Counter::ConnOpened, 1);
    if matches!(flow.transport, TransportKind::Ws | TransportKind::Wss) {
        stats.count(Counter::WsUpgrades, 1);
    }
    if let Some(d) = info.ws_upgrade {
        stats.record(Metric::WsUpgrade, d, d);
    }
    if let Some(d) = info.connect {
        stats.record(Metric::Connect, d, d);
    }
    if let Some(d) = info.tls_handshake {
        stats.count(Counter::TlsHandshakes, 1);
        if info.resumed {
            stats.count(Counter::TlsResumed, 1);
        }
        stats.record(Metric::TlsHandshake, d, d);
    }
}

/// Count a connection that closed or failed to open, by reason.
/// `client`: this side opened the connection (a load generator's).
fn note_closed(stats: &mut WorkerStats, flow: Flow, reason: CloseReason, client: bool) {
    match reason {
        CloseReason::ConnectFailed(e) => {
            stats.count(Counter::ConnFailed, 1);
            stats.count(
                match e {
                    libc::ECONNREFUSED => Counter::ConnFailRefused,
                    libc::ETIMEDOUT => Counter::ConnFailTimedOut,
                    libc::EHOSTUNREACH | libc::ENETUNREACH => Counter::ConnFailUnreachable,
                    _ => Counter::ConnFailOtherErrno,
                },
                1,
            );
        }
        CloseReason::HandshakeFailed(t) => {
            stats.count(Counter::ConnFailed, 1);
            stats.count(
                match t {
                    TlsFailure::Certificate(_) => Counter::TlsFailCertificate,
                    TlsFailure::AlertReceived(_) => Counter::TlsFailAlert,
                    TlsFailure::Protocol => Counter::TlsFailProtocol,
                },
                1,
            );
            if let TlsFailure::Certificate(_) = t
                && !CERT_FAILURE_TOLD.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                crate::say!(
                    "sipstorm: TLS handshake with {} failed: {t}; every such failure is counted in \
                     transport.connect_failures.tls_certificate (--tls-ca FILE trusts the server's CA, \
                     --tls-sni NAME sets the name checked, --tls-insecure skips verification)",
                    flow.peer
                );
            }
        }
        CloseReason::UpgradeFailed(f) => {
            stats.count(Counter::ConnFailed, 1);
            stats.count(
                match f {
                    WsFailure::NoSip => Counter::WsFailNoSip,
                    WsFailure::Rejected(_) => Counter::WsFailRejected,
                    _ => Counter::WsFailHandshake,
                },
                1,
            );
            // Said once (the count is in the report): a client whose
            // server does not speak SIP over WebSocket, or not on this path.
            if client && !WS_FAILURE_TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                crate::say!(
                    "sipstorm: WebSocket upgrade with {} failed: {f}; every such failure is counted in \
                     transport.connect_failures ({}; --ws-path sets the resource asked for)",
                    flow.peer,
                    f.name()
                );
            }
        }
        r => {
            stats.count(Counter::ConnClosed, 1);
            if r.is_by_peer() {
                stats.count(Counter::ConnClosedByPeer, 1);
            }
            let ws = matches!(flow.transport, TransportKind::Ws | TransportKind::Wss);
            if let CloseReason::Ws(f) = r {
                stats.count(
                    match f {
                        WsFailure::FrameTooLarge => Counter::WsFrameTooLarge,
                        WsFailure::MessageTooLarge => Counter::WsMessageTooLarge,
                        WsFailure::TooManyFragments => Counter::WsTooManyFragments,
                        WsFailure::Masking => Counter::WsMasking,
                        WsFailure::NoCloseFrame => Counter::WsAbrupt,
                        _ => Counter::WsProtocol,
                    },
                    1,
                );
                if f != WsFailure::NoCloseFrame {
                    stats.count(Counter::ConnClosedBadPeer, 1);
                }
            } else if ws && matches!(r, CloseReason::Error(libc::ECONNRESET | libc::EPIPE)) {
                // A reset is an abrupt close too.
                stats.count(Counter::WsAbrupt, 1);
            }
            if matches!(
                r,
                CloseReason::ReadOverflow | CloseReason::WriteOverflow | CloseReason::Malformed
            ) {
                stats.count(Counter::ConnClosedBadPeer, 1);
            }
        }
    }
}

/// A serving endpoint (the built-in target).
pub trait LoadServer: SansIo {
    /// Map one event to statistics.
    fn record(&mut self, event: Self::Event, stats: &mut WorkerStats);
    /// The transport could not deliver to `dest` (ICMP unreachable): end
    /// the server transactions answering it (RFC 3261 §17.2.4), so their
    /// responses stop going to a closed port.
    fn transport_error(&mut self, _now: Instant, _dest: Flow) {}
    /// As [`LoadClient::flush_counters`].
    fn flush_counters(&mut self, _stats: &mut WorkerStats) {}
    /// The server stops now: end what it keeps (a scenario's calls), so
    /// the last snapshot counts them.
    fn stop(&mut self, _now: Instant) {}
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
        stats.count(
            Counter::WsPings,
            io.ws_pings.saturating_sub(self.last_io.ws_pings),
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
    /// Hold received messages until the next tick when no measured reply
    /// may be due (see `batch_window`).
    tick_wait: bool,
}

impl<C: LoadClient> std::fmt::Debug for ClientWorker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientWorker")
            .field("pacer", &self.pacer)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// What every client worker of one run shares.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// Hold time of each attempt (calls; registrations with a lifetime).
    pub hold: Hold,
    /// Seed of the hold-time draws (each worker mixes in its index).
    pub seed: u64,
    /// How long attempts in flight may finish after the last start.
    pub drain: Duration,
    /// How long the loop may hold received datagrams back to handle them in
    /// one turn (`--batch-window`, at most 1 ms): fewer wake-ups per call;
    /// kernel arrival stamps keep measured arrival times exact, but replies
    /// to responses leave up to this much later.
    pub batch_window: Duration,
    /// Whether the loop may hold received messages until the next tick
    /// when no measured reply is due (issue 18's one wake-up per tick).
    /// UDP only: over TCP, TLS and WebSocket, holding received bytes for
    /// a tick broke connections under load (measured: TCP at 10,000
    /// calls/s with one client worker failed 27,463 of 50,000 calls with
    /// 4 transport errors; 0 failed when woken on every receive).
    pub tick_wait: bool,
}

impl<C: LoadClient> ClientWorker<C> {
    pub fn new(
        worker: usize,
        client: C,
        pacer: Pacer,
        settings: ClientSettings,
        t0: Instant,
        tx: Sender<WorkerMsg>,
        stop: StopFlag,
    ) -> Self {
        ClientWorker {
            client,
            pacer,
            hold: settings.hold,
            rng: Rng::new(settings.seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            stats: WorkerStats::new(),
            reporter: Reporter::new(worker, t0, tx),
            stop,
            drain: settings.drain,
            phase: Phase::Load,
            refused: 0,
            load_end: None,
            batch_window: settings.batch_window.min(Duration::from_millis(1)),
            tick_wait: settings.tick_wait && std::env::var_os("SIPSTORM_WAKE_ON_RECEIVE").is_none(),
        }
    }

    /// The run's loop hit a fatal error: send what was measured so the
    /// aggregator is not left waiting.
    pub fn abort(&mut self, now: Instant) {
        self.reporter
            .finish(now, &mut self.stats, &IoCounters::default(), 0);
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

    /// The configured window while a reply that a measured latency spans
    /// may be due ([`LoadClient::prompt_replies`]); otherwise received
    /// messages wait for the next pacing tick (or timer): their arrival
    /// stamps keep every latency exact, and the loop wakes once per tick
    /// instead of once per datagram.
    ///
    /// `SIPSTORM_WAKE_ON_RECEIVE=1` turns the tick wait off (every received
    /// message ends the wait after the batch window, as before issue 18),
    /// to measure what it buys.
    fn batch_window(&self) -> Duration {
        if !self.tick_wait || self.client.prompt_replies() {
            self.batch_window
        } else {
            transport::UNTIL_DEADLINE
        }
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

    fn opened(&mut self, _now: Instant, flow: Flow, info: Opened) {
        note_opened(&mut self.stats, flow, info);
    }

    /// RFC 3261 §18.4: transactions waiting on a connection that broke or
    /// never opened fail now; a connection this side released or closed
    /// has none waiting.
    fn closed(&mut self, now: Instant, flow: Flow, reason: CloseReason) {
        note_closed(&mut self.stats, flow, reason, true);
        if reason != CloseReason::Local {
            self.client.transport_error(now, flow);
        }
    }

    fn frame(&mut self, buf: &[u8]) -> Frame {
        sip_frame(buf)
    }

    fn poll_release(&mut self) -> Option<Flow> {
        self.client.poll_release()
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
            self.server.stop(now);
            while let Some(ev) = self.server.poll_event() {
                self.server.record(ev, &mut self.stats);
            }
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

    fn opened(&mut self, _now: Instant, flow: Flow, info: Opened) {
        note_opened(&mut self.stats, flow, info);
    }

    fn closed(&mut self, _now: Instant, flow: Flow, reason: CloseReason) {
        note_closed(&mut self.stats, flow, reason, false);
    }

    fn frame(&mut self, buf: &[u8]) -> Frame {
        sip_frame(buf)
    }

    /// ICMP unreachable for `dest`: the engine ends its server transactions
    /// to it (RFC 3261 §17.1.4, §18.4). Before issue 13 this was ignored, so a spoofed INVITE's 2xx went on
    /// being retransmitted at a closed port for 64·T1.
    fn unreachable(&mut self, now: Instant, dest: Flow, _errno: i32) {
        self.server.transport_error(now, dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Endpoint, ServerConfig};
    use crate::run::sip_driver::EngineServer;

    /// Issue 13: `ServerWorker` ignored ICMP unreachable, so the engine never
    /// heard of it and a spoofed INVITE's 2xx went on at a closed port for
    /// 64·T1. The worker now hands it to the endpoint, which ends the
    /// server transaction: nothing more is sent there.
    #[test]
    fn server_worker_forwards_unreachable_to_the_engine() {
        let t0 = Instant::now();
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let sc = ServerConfig::default();
        let (tx, _rx) = crossbeam_channel::bounded(8);
        let mut w = ServerWorker::new(
            0,
            EngineServer::new(Endpoint::server(sc, t0)),
            t0,
            tx,
            StopFlag::new(),
        );
        let invite = "INVITE sip:callee@127.0.0.1:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKicmp\r\nMax-Forwards: 70\r\n\
            From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:callee@127.0.0.1:5060>\r\n\
            Call-ID: icmp\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:40000>\r\n\
            Content-Length: 0\r\n\r\n";
        w.handle(t0, Flow::udp(peer), invite.as_bytes());
        let mut buf = Vec::new();
        let mut sent = 0;
        while w.poll_transmit(&mut buf).is_some() {
            sent += 1;
        }
        assert!(sent > 0, "the INVITE was answered");
        w.unreachable(t0, Flow::udp(peer), libc::ECONNREFUSED);
        // Past every retransmission of the 2xx (T1 doubling up to T2) and Timer L.
        let io = IoCounters::default();
        let mut t = t0;
        for _ in 0..80 {
            t += Duration::from_millis(500);
            w.tick(t, &io);
            assert!(
                w.poll_transmit(&mut buf).is_none(),
                "sent to the closed port at {:?}",
                t - t0
            );
        }
    }
}
