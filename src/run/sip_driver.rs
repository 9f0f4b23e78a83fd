//! The SIP engine behind the worker traits: [`EngineClient`] and
//! [`EngineServer`] turn the engine's events and cumulative counters into
//! statistics (the RFC 6076 metrics, counters, responses by code).

use std::time::{Duration, Instant};

use super::worker::{LoadClient, LoadServer};
use crate::config::ScenarioKind;
use crate::engine::{self, Endpoint, Event, MethodKind, Outcome, SansIo};
use crate::flow::Flow;
use crate::schedule::Rng;
use crate::stats::{Counter, Method, Metric, WorkerStats};

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
    messages: MessageFold,
    /// Running a SIPp scenario (`--sf`).
    scenario_file: Option<ScenarioFold>,
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
            messages: MessageFold::default(),
            scenario_file: None,
        }
    }

    /// Run a SIPp scenario (the endpoint was built with one): its calls
    /// are the attempts, and the RFC 6076 events of a recognisable call or
    /// registration go to the scenario's view of the totals. `<log>` lines
    /// are appended to `log` (SIPp's `-trace_logs`).
    pub fn with_scenario_file(mut self, log: Option<std::path::PathBuf>) -> Self {
        self.scenario_file = Some(ScenarioFold::new(log));
        self.last_counter = Counter::ScenarioAttempted;
        self
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
        &self,
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
            }
            Outcome::Failed(_) => stats.count(kind.failed, 1),
            Outcome::Timeout => stats.count(kind.timed_out, 1),
            Outcome::TransportError | Outcome::Cancelled => stats.count(kind.failed, 1),
        }
    }
}

/// The counters and metric of one kind of single-transaction attempt.
struct AttemptKind {
    succeeded: Counter,
    failed: Counter,
    timed_out: Counter,
    metric: Metric,
}

const REGISTER_KIND: AttemptKind = AttemptKind {
    succeeded: Counter::RegisterSucceeded,
    failed: Counter::RegisterFailed,
    timed_out: Counter::RegisterTimedOut,
    metric: Metric::Rrd,
};

const OPTIONS_KIND: AttemptKind = AttemptKind {
    succeeded: Counter::OptionsSucceeded,
    failed: Counter::OptionsFailed,
    timed_out: Counter::OptionsTimedOut,
    metric: Metric::OptionsRtt,
};

fn since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

/// The engine's cumulative message counters folded into statistics as
/// deltas since the previous flush: one fold for client and server.
/// Responses are not folded here: they come from
/// [`Event::FinalResponse`], the one source of truth for them.
#[derive(Debug, Default)]
struct MessageFold {
    last: Box<engine::Counters>,
}

impl MessageFold {
    fn flush(&mut self, now: &engine::Counters, stats: &mut WorkerStats) {
        let last = &self.last;
        let pairs = [
            (Counter::MsgSent, now.sent, last.sent),
            (Counter::MsgReceived, now.received, last.received),
            (
                Counter::Retransmitted,
                now.retransmitted,
                last.retransmitted,
            ),
            (
                Counter::RetransmissionsReceived,
                now.duplicates,
                last.duplicates,
            ),
            (Counter::Unparseable, now.unparseable, last.unparseable),
            (Counter::Unexpected, now.unexpected, last.unexpected),
        ];
        for (counter, now, last) in pairs {
            stats.count(counter, now.saturating_sub(last));
        }
        (*self.last).clone_from(now);
    }
}

/// The statistics method of an engine transaction method.
fn stats_method(m: MethodKind) -> Method {
    match m {
        MethodKind::Register => Method::Register,
        MethodKind::Invite => Method::Invite,
        MethodKind::Bye => Method::Bye,
        MethodKind::Cancel => Method::Cancel,
        MethodKind::Options => Method::Options,
        MethodKind::Ack | MethodKind::Other => Method::Other,
    }
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
    fn prompt_replies(&self) -> bool {
        self.ep.prompt_replies()
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
        if let Some(sf) = &mut self.scenario_file {
            let Some(event) = sf.record(event, stats) else {
                return;
            };
            return self.record_common(event, stats);
        }
        self.record_common(event, stats);
    }

    fn flush_counters(&mut self, stats: &mut WorkerStats) {
        self.messages.flush(self.ep.counters(), stats);
        if let (Some(sf), Some(now)) = (&mut self.scenario_file, self.ep.scenario_counters()) {
            sf.flush(now, stats);
        }
    }

    fn poll_release(&mut self) -> Option<Flow> {
        self.ep.poll_released()
    }
}

impl EngineClient {
    fn record_common(&mut self, event: Event, stats: &mut WorkerStats) {
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
                    Outcome::Failed(code) => stats.count(
                        if (300..400).contains(&code) {
                            Counter::CallRedirected
                        } else {
                            Counter::CallFailed
                        },
                        1,
                    ),
                    Outcome::Timeout => stats.count(Counter::CallTimedOut, 1),
                    Outcome::TransportError => stats.count(Counter::CallFailed, 1),
                    Outcome::Cancelled => stats.count(Counter::CallCancelled, 1),
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
            Event::FinalResponse { method, code } => stats.response(stats_method(method), code),
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
            Event::Rtd {
                id,
                service,
                corrected,
            } => {
                if let Some(&m) = Metric::RTD.get(usize::from(id)) {
                    stats.record(m, service, corrected);
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// What a scenario run adds to the event → statistics mapping: the
/// scenario's counters folded as deltas, the RFC 6076 view of its calls,
/// and its `<log>` lines.
#[derive(Debug)]
struct ScenarioFold {
    last: engine::scenario::ScenarioCounters,
    log_path: Option<std::path::PathBuf>,
    log: Option<std::io::LineWriter<std::fs::File>>,
}

impl ScenarioFold {
    fn new(log_path: Option<std::path::PathBuf>) -> Self {
        ScenarioFold {
            last: engine::scenario::ScenarioCounters::default(),
            log_path,
            log: None,
        }
    }

    /// Take the events whose counting differs in a scenario run; hand the
    /// rest back.
    fn record(&mut self, event: Event, stats: &mut WorkerStats) -> Option<Event> {
        use crate::stats::rfc_index as i;
        let rfc = |stats: &mut WorkerStats, k: usize| stats.scenario_mut().rfc[k] += 1;
        match event {
            Event::RegisterDone {
                intended,
                started,
                finished,
                outcome,
            } => {
                rfc(stats, i::REGISTER_ATTEMPTED);
                match outcome {
                    Outcome::Success => {
                        rfc(stats, i::REGISTER_SUCCEEDED);
                        stats.record(
                            Metric::Rrd,
                            since(finished, started),
                            since(finished, intended),
                        );
                    }
                    Outcome::Timeout => rfc(stats, i::REGISTER_TIMED_OUT),
                    _ => rfc(stats, i::REGISTER_FAILED),
                }
                None
            }
            Event::CallAnswered {
                intended,
                invite_sent,
                answered,
            } => {
                rfc(stats, i::CALL_ESTABLISHED);
                stats.record(
                    Metric::Answer,
                    since(answered, invite_sent),
                    since(answered, intended),
                );
                None
            }
            Event::CallDone {
                outcome,
                bye_sent,
                bye_done,
                answered,
                ..
            } => {
                rfc(stats, i::CALL_ATTEMPTED);
                rfc(
                    stats,
                    match outcome {
                        Outcome::Success => i::CALL_COMPLETED,
                        Outcome::Failed(c) if (300..400).contains(&c) => i::CALL_REDIRECTED,
                        Outcome::Timeout => i::CALL_TIMED_OUT,
                        Outcome::Cancelled => i::CALL_CANCELLED,
                        Outcome::Failed(_) | Outcome::TransportError => i::CALL_FAILED,
                    },
                );
                if let (Some(s), Some(d)) = (bye_sent, bye_done) {
                    stats.record(Metric::Sdd, since(d, s), since(d, s));
                }
                if let (Some(a), Some(s)) = (answered, bye_sent) {
                    stats.record(Metric::SessionDuration, since(s, a), since(s, a));
                }
                None
            }
            Event::ScenarioLog(line) => {
                self.write_log(&line);
                None
            }
            other => Some(other),
        }
    }

    fn write_log(&mut self, line: &[u8]) {
        use std::io::Write as _;
        if self.log.is_none()
            && let Some(p) = self.log_path.take()
        {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
            {
                Ok(f) => self.log = Some(std::io::LineWriter::new(f)),
                Err(e) => crate::say!("sipstorm: scenario log {}: {e}", p.display()),
            }
        }
        if let Some(w) = &mut self.log {
            let _ = w.write_all(line);
            let _ = w.write_all(b"\n");
        }
    }

    /// The engine's cumulative scenario counters as deltas since the last
    /// flush.
    fn flush(&mut self, now: &engine::scenario::ScenarioCounters, stats: &mut WorkerStats) {
        let last = &self.last;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let steps = now
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let b = last.steps.get(k).copied().unwrap_or_default().to_array();
                let a = s.to_array();
                std::array::from_fn(|j| d(a[j], b[j]))
            })
            .collect();
        let mut calls = vec![
            d(now.started, last.started),
            d(now.succeeded, last.succeeded),
        ];
        calls.extend(now.failed.iter().zip(&last.failed).map(|(a, b)| d(*a, *b)));
        let counters = now
            .counters
            .iter()
            .enumerate()
            .map(|(k, a)| d(*a, last.counters.get(k).copied().unwrap_or(0)))
            .collect();
        let delta = crate::stats::ScenarioStats {
            steps,
            calls,
            misc: [
                d(now.out_of_call, last.out_of_call),
                d(now.dead_call, last.dead_call),
                d(now.auto_answered, last.auto_answered),
            ],
            counters,
            rfc: [0; 11],
        };
        stats.count(Counter::ScenarioSucceeded, d(now.succeeded, last.succeeded));
        stats.count(
            Counter::ScenarioFailed,
            d(now.failed_total(), last.failed_total()),
        );
        stats.scenario_mut().add(&delta);
        self.last.clone_from(now);
    }
}

/// The engine's UAS/registrar endpoint for `serve`.
pub struct EngineServer {
    ep: Endpoint,
    messages: MessageFold,
    scenario_file: Option<ScenarioFold>,
}

impl std::fmt::Debug for EngineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineServer").finish_non_exhaustive()
    }
}

impl EngineServer {
    pub fn new(ep: Endpoint) -> Self {
        let scenario_file = ep.scenario_counters().map(|_| ScenarioFold::new(None));
        EngineServer {
            ep,
            messages: MessageFold::default(),
            scenario_file,
        }
    }

    /// Write a scenario's `<log>` lines to `log` (`-trace_logs`).
    pub fn with_scenario_log(mut self, log: Option<std::path::PathBuf>) -> Self {
        if let Some(sf) = &mut self.scenario_file {
            sf.log_path = log;
        }
        self
    }
}

impl SansIo for EngineServer {
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

impl LoadServer for EngineServer {
    /// A scenario server's response-time timers and logs; the built-in
    /// server measures nothing (its clients do).
    fn record(&mut self, event: Event, stats: &mut WorkerStats) {
        let Some(sf) = &mut self.scenario_file else {
            return;
        };
        match sf.record(event, stats) {
            Some(Event::Rtd {
                id,
                service,
                corrected,
            }) => {
                if let Some(&m) = Metric::RTD.get(usize::from(id)) {
                    stats.record(m, service, corrected);
                }
            }
            Some(Event::FinalResponse { method, code }) => {
                stats.response(stats_method(method), code)
            }
            _ => {}
        }
    }
    fn transport_error(&mut self, now: Instant, dest: Flow) {
        self.ep.transport_error(now, dest);
    }
    fn flush_counters(&mut self, stats: &mut WorkerStats) {
        self.messages.flush(self.ep.counters(), stats);
        if let (Some(sf), Some(now)) = (&mut self.scenario_file, self.ep.scenario_counters()) {
            sf.flush(now, stats);
        }
    }
    fn stop(&mut self, now: Instant) {
        self.ep.scenario_stop(now);
    }
}

pub(super) fn engine_scenario(s: ScenarioKind) -> engine::Scenario {
    match s {
        ScenarioKind::Register => engine::Scenario::Register,
        ScenarioKind::Call => engine::Scenario::Call,
        ScenarioKind::Options => engine::Scenario::Options,
        ScenarioKind::Mixed => engine::Scenario::Mixed,
        // Never handed to the engine: a mix starts its parts' scenarios.
        ScenarioKind::Mix => engine::Scenario::Call,
    }
}

pub(super) fn engine_timers(t: &crate::config::TimerValues) -> engine::Timers {
    engine::Timers {
        t1: t.t1,
        t2: t.t2,
        t4: t.t4,
    }
}
