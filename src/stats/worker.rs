//! Per-worker statistics: the hot path (record, count, response) into
//! preallocated histograms and counters, and the interval snapshot a worker
//! sends once a second.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{Counter, Counters, Method, Metric, Slot, new_histogram};

/// Status codes 100..=699 are counted individually; anything else a broken
/// peer sends is counted under code 0.
const CODE_SLOTS: usize = 601;

fn code_slot(code: u16) -> usize {
    if (100..=699).contains(&code) {
        usize::from(code - 99)
    } else {
        0
    }
}

fn slot_code(slot: usize) -> u16 {
    if slot == 0 {
        0
    } else {
        // slot is < CODE_SLOTS, so this fits.
        u16::try_from(slot + 99).unwrap_or(0)
    }
}

/// Final responses counted per (method, status code).
pub type ResponseCounts = BTreeMap<(Method, u16), u64>;

/// The counters of a SIPp scenario-file run: SIPp's per-message counters
/// of each step, the calls by outcome, and what the RFC 6076 view of a
/// recognisable call or registration counted. Generic: the names of the
/// columns, outcomes and counters travel with the report
/// (`report::ScenarioFileInfo`). Workers send deltas; the aggregate sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioStats {
    /// Per step: sent, received, retransmissions, timeouts, unexpected,
    /// lost, sessions.
    pub steps: Vec<[u64; 7]>,
    /// Calls started, succeeded, then failed by reason (the engine's order).
    pub calls: Vec<u64>,
    /// Out-of-call messages, dead-call messages, auto-answered.
    pub misc: [u64; 3],
    /// The scenario's `counter` values.
    pub counters: Vec<u64>,
    /// RFC 6076 view: call attempted, established, completed, failed,
    /// timed out, cancelled, redirected; registration attempted,
    /// succeeded, failed, timed out.
    pub rfc: [u64; 11],
}

/// Indices into [`ScenarioStats::rfc`].
pub mod rfc_index {
    pub const CALL_ATTEMPTED: usize = 0;
    pub const CALL_ESTABLISHED: usize = 1;
    pub const CALL_COMPLETED: usize = 2;
    pub const CALL_FAILED: usize = 3;
    pub const CALL_TIMED_OUT: usize = 4;
    pub const CALL_CANCELLED: usize = 5;
    pub const CALL_REDIRECTED: usize = 6;
    pub const REGISTER_ATTEMPTED: usize = 7;
    pub const REGISTER_SUCCEEDED: usize = 8;
    pub const REGISTER_FAILED: usize = 9;
    pub const REGISTER_TIMED_OUT: usize = 10;
}

fn add_into(dst: &mut Vec<u64>, src: &[u64]) {
    if dst.len() < src.len() {
        dst.resize(src.len(), 0);
    }
    for (a, b) in dst.iter_mut().zip(src) {
        *a = a.saturating_add(*b);
    }
}

impl ScenarioStats {
    /// Add `other` (vectors grow to the longer one).
    pub fn add(&mut self, other: &ScenarioStats) {
        if self.steps.len() < other.steps.len() {
            self.steps.resize(other.steps.len(), [0; 7]);
        }
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            for (x, y) in a.iter_mut().zip(b) {
                *x = x.saturating_add(*y);
            }
        }
        add_into(&mut self.calls, &other.calls);
        add_into(&mut self.counters, &other.counters);
        for (a, b) in self.misc.iter_mut().zip(&other.misc) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.rfc.iter_mut().zip(&other.rfc) {
            *a = a.saturating_add(*b);
        }
    }
}

/// Per-worker statistics. Not shared: each worker owns one and sends
/// snapshots to the aggregator.
pub struct WorkerStats {
    hist: Vec<Histogram<u64>>,
    /// Scenario-file counters since the last snapshot (`None`: no scenario).
    scenario: Option<ScenarioStats>,
    counters: Counters,
    responses: Box<[[u64; CODE_SLOTS]; Method::COUNT]>,
}

impl fmt::Debug for WorkerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerStats")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl WorkerStats {
    /// Preallocates every histogram and counter, so recording never
    /// allocates.
    pub fn new() -> Self {
        WorkerStats {
            hist: (0..Slot::COUNT).map(|_| new_histogram()).collect(),
            scenario: None,
            counters: Counters::default(),
            responses: Box::new([[0; CODE_SLOTS]; Method::COUNT]),
        }
    }

    /// Record one latency sample: `service` from the actual send,
    /// `corrected` from the intended start time. Values above one hour are
    /// recorded as one hour. No allocation, no lock.
    #[inline]
    pub fn record(&mut self, m: Metric, service: Duration, corrected: Duration) {
        let i = m.index() * 2;
        self.hist[i].saturating_record(duration_us(service));
        self.hist[i + 1].saturating_record(duration_us(corrected));
    }

    /// The scenario-file counters of this interval, created on first use.
    pub fn scenario_mut(&mut self) -> &mut ScenarioStats {
        self.scenario.get_or_insert_with(ScenarioStats::default)
    }

    /// Add `n` to a counter.
    #[inline]
    pub fn count(&mut self, c: Counter, n: u64) {
        self.counters.add(c, n);
    }

    /// Count one final response (`code` >= 200, or a 1xx the caller wants
    /// counted) to a request of `method`. Count each transaction's final
    /// response once: retransmitted responses go to
    /// [`Counter::RetransmissionsReceived`].
    #[inline]
    pub fn response(&mut self, method: Method, code: u16) {
        let v = &mut self.responses[method as usize][code_slot(code)];
        *v = v.saturating_add(1);
    }

    /// What changed since the last call: the interval histograms of the
    /// metrics that got samples, counter deltas and response deltas. Resets
    /// the interval state; cumulative totals are kept by [`Aggregate`].
    /// Allocates only fresh histograms for the metrics that were used.
    pub fn take_interval(&mut self) -> Snapshot {
        let mut hist = Vec::new();
        for slot in Slot::all() {
            let h = &mut self.hist[slot.index()];
            if !h.is_empty() {
                hist.push((slot, std::mem::replace(h, new_histogram())));
            }
        }
        let mut responses = Vec::new();
        for method in Method::ALL {
            for (i, v) in self.responses[method as usize].iter_mut().enumerate() {
                if *v != 0 {
                    responses.push((method, slot_code(i), *v));
                    *v = 0;
                }
            }
        }
        Snapshot {
            hist,
            counters: std::mem::take(&mut self.counters),
            responses,
            scenario: self.scenario.take(),
        }
    }
}

/// One worker's interval: what changed since its previous snapshot. `Send`,
/// sent once a second over a bounded channel.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Interval histograms of the slots that got samples.
    pub hist: Vec<(Slot, Histogram<u64>)>,
    /// Counter deltas.
    pub counters: Counters,
    /// Final responses received in the interval: (method, code, count).
    pub responses: Vec<(Method, u16, u64)>,
    /// Scenario-file counter deltas, if the worker runs a scenario.
    pub scenario: Option<ScenarioStats>,
}
