//! The aggregator's side: run totals and the per-second series merged from
//! every worker's snapshots, and the histogram codec of the interval log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::{
    Counters, HIGHEST_US, LOWEST_US, ResponseCounts, SIGFIG, ScenarioStats, Slot, Snapshot,
    new_histogram,
};

/// Per-second values of one latency slot, summarised once the second is
/// complete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalLatency {
    /// Samples in the second.
    pub count: u64,
    /// Median, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Maximum, microseconds.
    pub max_us: u64,
}

impl IntervalLatency {
    fn of(h: &Histogram<u64>) -> Self {
        IntervalLatency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// One second of the run, all workers added up.
#[derive(Debug, Clone)]
pub struct Second {
    /// Seconds since the start of the run (this is `[index, index+1)`).
    pub index: u64,
    /// Counter deltas in this second.
    pub counters: Counters,
    /// Final responses by status code (all methods) in this second.
    pub responses: BTreeMap<u16, u64>,
    /// Summary per slot with samples.
    pub latency: BTreeMap<Slot, IntervalLatency>,
    /// V2 + deflate serialized interval histograms per slot (what goes in
    /// the interval log).
    pub encoded: BTreeMap<Slot, Vec<u8>>,
}

/// A second still receiving snapshots.
#[derive(Debug, Clone)]
struct OpenSecond {
    counters: Counters,
    responses: BTreeMap<u16, u64>,
    hist: BTreeMap<Slot, Histogram<u64>>,
    contributors: usize,
}

impl OpenSecond {
    fn new() -> Self {
        OpenSecond {
            counters: Counters::default(),
            responses: BTreeMap::new(),
            hist: BTreeMap::new(),
            contributors: 0,
        }
    }
}

/// Error from (de)serializing a histogram.
#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    /// Serialization failed.
    #[error("histogram serialization failed: {0}")]
    Serialize(String),
    /// The bytes are not a V2 (optionally deflated) histogram.
    #[error("histogram deserialization failed: {0}")]
    Deserialize(String),
    /// The histogram has a different range than sipstorm's.
    #[error("histogram addition failed: {0}")]
    Add(String),
}

/// Serialize a histogram as V2 + deflate, the encoding the HdrHistogram
/// interval log uses (cookie `0x1c849304`).
pub fn encode_histogram(h: &Histogram<u64>) -> Result<Vec<u8>, HistogramCodecError> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .map_err(|e| HistogramCodecError::Serialize(format!("{e:?}")))?;
    Ok(out)
}

/// Deserialize a V2 histogram (deflated or not) into sipstorm's bounds, so
/// it can be added to any other sipstorm histogram.
pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, HistogramCodecError> {
    let mut cursor = bytes;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut cursor)
        .map_err(|e| HistogramCodecError::Deserialize(format!("{e:?}")))?;
    if h.low() == LOWEST_US && h.high() == HIGHEST_US && h.sigfig() == SIGFIG {
        // Written by sipstorm: already the right shape.
        return Ok(h);
    }
    let mut out = new_histogram();
    add_histogram(&mut out, &h)?;
    Ok(out)
}

/// Add `src` into `dst` losslessly when the ranges allow it; values beyond
/// `dst`'s range saturate at its maximum instead of failing.
pub fn add_histogram(
    dst: &mut Histogram<u64>,
    src: &Histogram<u64>,
) -> Result<(), HistogramCodecError> {
    if dst.add(src).is_ok() {
        return Ok(());
    }
    for v in src.iter_recorded() {
        let value = src.median_equivalent(v.value_iterated_to());
        dst.saturating_record_n(value.min(HIGHEST_US), v.count_at_value());
    }
    Ok(())
}

/// How many seconds behind the newest one a second stays open for late
/// snapshots before it is summarised and compressed.
const OPEN_WINDOW: u64 = 3;

/// The aggregator's state: run totals and the per-second series.
pub struct Aggregate {
    start: SystemTime,
    totals: Vec<Histogram<u64>>,
    used: [bool; Slot::COUNT],
    counters: Counters,
    responses: ResponseCounts,
    workers: BTreeMap<usize, Duration>,
    open: BTreeMap<u64, OpenSecond>,
    sealed: BTreeMap<u64, Second>,
    elapsed: Duration,
    codec_errors: u64,
    scenario: Option<ScenarioStats>,
}

impl fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregate")
            .field("start", &self.start)
            .field("elapsed", &self.elapsed)
            .field("counters", &self.counters)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// The second a snapshot taken `t` after the start belongs to. Workers send
/// at about `k` seconds; half a second of slack puts a snapshot taken a bit
/// early or a bit late into the same second `k-1`.
pub fn second_of(t: Duration) -> u64 {
    let s = t.as_secs_f64() - 0.5;
    if s <= 0.0 { 0 } else { s.floor() as u64 }
}

impl Aggregate {
    /// An empty aggregate for a run that started at `start` (wall clock).
    pub fn new(start: SystemTime) -> Self {
        Aggregate {
            start,
            totals: (0..Slot::COUNT).map(|_| new_histogram()).collect(),
            used: [false; Slot::COUNT],
            counters: Counters::default(),
            responses: BTreeMap::new(),
            workers: BTreeMap::new(),
            open: BTreeMap::new(),
            sealed: BTreeMap::new(),
            elapsed: Duration::ZERO,
            codec_errors: 0,
            scenario: None,
        }
    }

    /// Fold in one snapshot of `worker`, taken `t` after the start.
    pub fn add(&mut self, worker: usize, s: Snapshot, t: Duration) {
        self.workers.insert(worker, t);
        self.elapsed = self.elapsed.max(t);
        let k = second_of(t);
        self.counters.add_all(&s.counters);
        if let Some(sc) = &s.scenario {
            self.scenario
                .get_or_insert_with(ScenarioStats::default)
                .add(sc);
        }
        for &(method, code, n) in &s.responses {
            let v = self.responses.entry((method, code)).or_insert(0);
            *v = v.saturating_add(n);
        }
        for (slot, h) in &s.hist {
            self.used[slot.index()] = true;
            // Same bounds on both sides: cannot fail.
            let _ = add_histogram(&mut self.totals[slot.index()], h);
        }
        if let Some(sealed) = self.sealed.remove(&k) {
            // A very late snapshot: reopen its second.
            let reopened = self.reopen(sealed);
            self.open.insert(k, reopened);
        }
        let sec = self.open.entry(k).or_insert_with(OpenSecond::new);
        sec.contributors += 1;
        sec.counters.add_all(&s.counters);
        for &(_, code, n) in &s.responses {
            let v = sec.responses.entry(code).or_insert(0);
            *v = v.saturating_add(n);
        }
        for (slot, h) in s.hist {
            match sec.hist.get_mut(&slot) {
                Some(dst) => {
                    let _ = add_histogram(dst, &h);
                }
                None => {
                    sec.hist.insert(slot, h);
                }
            }
        }
        let newest = self.open.keys().next_back().copied().unwrap_or(k);
        let stale: Vec<u64> = self
            .open
            .keys()
            .copied()
            .filter(|&i| i + OPEN_WINDOW < newest)
            .collect();
        for i in stale {
            if let Some(open) = self.open.remove(&i) {
                let sealed = self.seal(i, &open);
                self.sealed.insert(i, sealed);
            }
        }
    }

    fn seal(&mut self, index: u64, open: &OpenSecond) -> Second {
        let mut latency = BTreeMap::new();
        let mut encoded = BTreeMap::new();
        for (slot, h) in &open.hist {
            latency.insert(*slot, IntervalLatency::of(h));
            match encode_histogram(h) {
                Ok(bytes) => {
                    encoded.insert(*slot, bytes);
                }
                Err(_) => self.codec_errors += 1,
            }
        }
        Second {
            index,
            counters: open.counters,
            responses: open.responses.clone(),
            latency,
            encoded,
        }
    }

    fn reopen(&mut self, s: Second) -> OpenSecond {
        let mut hist = BTreeMap::new();
        for (slot, bytes) in &s.encoded {
            match decode_histogram(bytes) {
                Ok(h) => {
                    hist.insert(*slot, h);
                }
                Err(_) => self.codec_errors += 1,
            }
        }
        OpenSecond {
            counters: s.counters,
            responses: s.responses,
            hist,
            contributors: 0,
        }
    }

    /// Wall-clock start of the run.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    /// The latest snapshot time seen (time since start).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Run totals of every counter.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The scenario-file counters of the whole run, if it ran one.
    pub fn scenario(&self) -> Option<&ScenarioStats> {
        self.scenario.as_ref()
    }

    /// Final responses of the whole run by (method, code).
    pub fn responses(&self) -> &ResponseCounts {
        &self.responses
    }

    /// Final responses of the whole run by code, all methods together.
    pub fn responses_by_code(&self) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        for (&(_, code), &n) in &self.responses {
            let v = out.entry(code).or_insert(0u64);
            *v = v.saturating_add(n);
        }
        out
    }

    /// The whole-run histogram of one slot (empty if never recorded).
    pub fn histogram(&self, slot: Slot) -> &Histogram<u64> {
        &self.totals[slot.index()]
    }

    /// Whether a slot got any sample.
    pub fn has_samples(&self, slot: Slot) -> bool {
        self.used[slot.index()]
    }

    /// Histograms that could not be encoded (should be 0).
    pub fn codec_errors(&self) -> u64 {
        self.codec_errors
    }

    /// Every second from 0 to the last one with data, in order, open ones
    /// summarised on the fly. Seconds with no snapshot come out empty.
    pub fn seconds(&self) -> Vec<Second> {
        let last = self.open.keys().chain(self.sealed.keys()).copied().max();
        let Some(last) = last else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(usize::try_from(last + 1).unwrap_or(0));
        for i in 0..=last {
            if let Some(s) = self.sealed.get(&i) {
                out.push(s.clone());
            } else if let Some(open) = self.open.get(&i) {
                let mut latency = BTreeMap::new();
                let mut encoded = BTreeMap::new();
                for (slot, h) in &open.hist {
                    latency.insert(*slot, IntervalLatency::of(h));
                    if let Ok(bytes) = encode_histogram(h) {
                        encoded.insert(*slot, bytes);
                    }
                }
                out.push(Second {
                    index: i,
                    counters: open.counters,
                    responses: open.responses.clone(),
                    latency,
                    encoded,
                });
            } else {
                out.push(Second {
                    index: i,
                    counters: Counters::default(),
                    responses: BTreeMap::new(),
                    latency: BTreeMap::new(),
                    encoded: BTreeMap::new(),
                });
            }
        }
        out
    }

    /// Second `index` as it stands now, open or sealed: its counters and
    /// a latency summary per slot. For live progress; the interval log
    /// reads [`Self::seconds`].
    pub fn peek_second(&self, index: u64) -> Option<SecondPeek> {
        if let Some(open) = self.open.get(&index) {
            return Some(SecondPeek {
                counters: open.counters,
                latency: open
                    .hist
                    .iter()
                    .map(|(slot, h)| (*slot, IntervalLatency::of(h)))
                    .collect(),
            });
        }
        self.sealed.get(&index).map(|s| SecondPeek {
            counters: s.counters,
            latency: s.latency.clone(),
        })
    }
}

/// What [`Aggregate::peek_second`] shows of one second.
#[derive(Debug, Clone, Default)]
pub struct SecondPeek {
    /// Counter deltas in the second, all workers.
    pub counters: Counters,
    /// Latency summary per slot with samples.
    pub latency: BTreeMap<Slot, IntervalLatency>,
}
