//! Metrics: HDR histograms and counters per worker, interval snapshots, and
//! the aggregator that merges them.
//!
//! Each worker owns one [`WorkerStats`]. The hot path ([`WorkerStats::record`],
//! [`WorkerStats::count`], [`WorkerStats::response`]) touches only
//! preallocated memory: no allocation, no lock, no atomic. Once a second the
//! worker calls [`WorkerStats::take_interval`] and sends the [`Snapshot`] over
//! a bounded channel to the aggregator thread, which folds it into an
//! [`Aggregate`] (run totals plus a per-second time series) from which
//! `report` writes the report files.
//!
//! Latencies are kept in microseconds, 3 significant digits, from 1 µs to one
//! hour (longer values saturate at one hour). Every [`Metric`] has two
//! histograms: the service time, measured from when the request was actually
//! sent, and the coordinated-omission-corrected twin, measured from the
//! attempt's *intended* start time (`t0 + i/rate`), as wrk2 does. When the
//! generator keeps its schedule the two agree; when it falls behind, only the
//! corrected one shows what a user arriving on schedule would have seen.
//!
//! This module does no I/O and knows nothing about SIP beyond the names of
//! the RFC 6076 metrics and of request methods.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sipstorm::stats::{Aggregate, Counter, Method, Metric, WorkerStats};
//!
//! let start = SystemTime::now();
//! let mut agg = Aggregate::new(start); // on the aggregator thread
//! let mut w = WorkerStats::new(); // one per worker
//! // hot path, per event:
//! w.count(Counter::CallAttempted, 1);
//! w.response(Method::Invite, 180);
//! w.record(Metric::Srd, Duration::from_micros(900), Duration::from_micros(1200));
//! w.response(Method::Invite, 200);
//! w.count(Counter::CallEstablished, 1);
//! // once a second, sent over a bounded crossbeam channel:
//! let snapshot = w.take_interval();
//! agg.add(0, snapshot, Duration::from_secs(1));
//! println!("{}", agg.progress_line(1000.0, 12));
//! // at the end: sipstorm::report::write_report(dir, &info, &agg)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// Lowest discernible latency, in microseconds.
pub const LOWEST_US: u64 = 1;
/// Highest trackable latency, in microseconds (one hour); larger values are
/// recorded as one hour.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A fresh, empty latency histogram with the crate-wide bounds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's preconditions
    // (low >= 1, high >= 2 * low, sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// A latency metric. Each has a service-time and a corrected histogram.
///
/// The first five are the RFC 6076 §4 delay metrics, measured at the
/// originating UA as the RFC prescribes; the rest are per-transaction round
/// trips (request sent to final response, retransmissions not restarting the
/// clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Metric {
    /// Registration Request Delay, RFC 6076 §4.1: "the time of the final
    /// response minus the time of the REGISTER request", from the *first*
    /// REGISTER to its final 200, the 401 challenge round trip included.
    Rrd,
    /// Session Request Delay, RFC 6076 §4.3: from the INVITE to the first
    /// non-100 provisional response (18x) or, if none came, the 200.
    Srd,
    /// Time from the INVITE to its 200 OK (answer), challenges included.
    Answer,
    /// Session Disconnect Delay, RFC 6076 §4.4: from the BYE to its final
    /// response.
    Sdd,
    /// Session Duration Time, RFC 6076 §4.5: from the 200 OK of the INVITE to
    /// the BYE.
    SessionDuration,
    /// REGISTER transaction round trip (each REGISTER, challenged or not).
    RegisterRtt,
    /// INVITE transaction round trip (to the final response).
    InviteRtt,
    /// BYE transaction round trip.
    ByeRtt,
    /// OPTIONS transaction round trip.
    OptionsRtt,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 9] = [
        Metric::Rrd,
        Metric::Srd,
        Metric::Answer,
        Metric::Sdd,
        Metric::SessionDuration,
        Metric::RegisterRtt,
        Metric::InviteRtt,
        Metric::ByeRtt,
        Metric::OptionsRtt,
    ];
    /// Number of metrics.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in `report.json` (`latency_ms.<name>`), in thresholds
    /// and as the interval-log tag.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Rrd => "rrd",
            Metric::Srd => "srd",
            Metric::Answer => "answer",
            Metric::Sdd => "sdd",
            Metric::SessionDuration => "session_duration",
            Metric::RegisterRtt => "register_rtt",
            Metric::InviteRtt => "invite_rtt",
            Metric::ByeRtt => "bye_rtt",
            Metric::OptionsRtt => "options_rtt",
        }
    }

    /// The name of the coordinated-omission-corrected twin (`<name>_co`).
    pub const fn co_name(self) -> &'static str {
        match self {
            Metric::Rrd => "rrd_co",
            Metric::Srd => "srd_co",
            Metric::Answer => "answer_co",
            Metric::Sdd => "sdd_co",
            Metric::SessionDuration => "session_duration_co",
            Metric::RegisterRtt => "register_rtt_co",
            Metric::InviteRtt => "invite_rtt_co",
            Metric::ByeRtt => "bye_rtt_co",
            Metric::OptionsRtt => "options_rtt_co",
        }
    }

    /// A short human label for tables and plots.
    pub const fn label(self) -> &'static str {
        match self {
            Metric::Rrd => "RRD",
            Metric::Srd => "SRD",
            Metric::Answer => "time to 200",
            Metric::Sdd => "SDD",
            Metric::SessionDuration => "session duration",
            Metric::RegisterRtt => "REGISTER rtt",
            Metric::InviteRtt => "INVITE rtt",
            Metric::ByeRtt => "BYE rtt",
            Metric::OptionsRtt => "OPTIONS rtt",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One histogram slot: a metric and whether it is the corrected twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// The metric.
    pub metric: Metric,
    /// `true` for the coordinated-omission-corrected twin.
    pub corrected: bool,
}

impl Slot {
    /// Number of slots (two per metric).
    pub const COUNT: usize = Metric::COUNT * 2;

    /// The slot of `metric` measured from the actual send.
    pub const fn service(metric: Metric) -> Slot {
        Slot {
            metric,
            corrected: false,
        }
    }

    /// Every slot in report order: `rrd`, `rrd_co`, `srd`, `srd_co`, ...
    pub fn all() -> impl Iterator<Item = Slot> {
        Metric::ALL.into_iter().flat_map(|metric| {
            [false, true]
                .into_iter()
                .map(move |corrected| Slot { metric, corrected })
        })
    }

    /// The name used in reports and as the interval-log tag.
    pub const fn name(self) -> &'static str {
        if self.corrected {
            self.metric.co_name()
        } else {
            self.metric.name()
        }
    }

    /// Parse a slot name (`srd`, `srd_co`, ...).
    pub fn from_name(s: &str) -> Option<Slot> {
        Slot::all().find(|slot| slot.name() == s)
    }

    /// Dense index in `0..Slot::COUNT`.
    pub fn index(self) -> usize {
        self.metric.index() * 2 + usize::from(self.corrected)
    }
}

/// An event counter.
///
/// How the engine should count an attempt: `*Attempted` once when it
/// starts, then exactly one ending: `RegisterSucceeded` / `OptionsSucceeded`
/// / (`CallEstablished` and later `CallCompleted`), or `*Failed`, or
/// `*TimedOut`, or `CallCancelled`, or `CallRedirected` (an established
/// call whose BYE fails counts `CallEstablished` then `CallFailed` or
/// `CallTimedOut`). `*Failed` and `*TimedOut` are disjoint here; the
/// report's `failed` totals add them up and `timed_out` shows the part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Counter {
    /// A registration attempt started (the first REGISTER; a challenge
    /// resend is part of the same attempt).
    RegisterAttempted,
    /// A registration attempt ended with a 2xx.
    RegisterSucceeded,
    /// A registration attempt ended with a final failure response (other
    /// than a challenge that was answered) or a transport error.
    RegisterFailed,
    /// A registration attempt ended because Timer F fired (RFC 3261 §17.1.2.2).
    RegisterTimedOut,
    /// A call attempt started (the first INVITE; a 407 resend or a followed
    /// 3xx is part of the same attempt).
    CallAttempted,
    /// A call attempt received a 2xx to its INVITE.
    CallEstablished,
    /// An established call ended normally: BYE answered with a 2xx.
    CallCompleted,
    /// A call attempt ended with a final failure response to the INVITE, a
    /// failed BYE, or a transport error.
    CallFailed,
    /// A call attempt ended because Timer B (INVITE) or Timer F (BYE) fired.
    CallTimedOut,
    /// A call was cancelled on purpose (`--cancel-ratio`) and ended with the
    /// expected 487.
    CallCancelled,
    /// A call attempt ended on a 3xx that was not followed (no usable
    /// Contact). RFC 6076 §4.6/§4.7 leave such INVITEs out of SER and SEER.
    CallRedirected,
    /// An OPTIONS probe was sent.
    OptionsAttempted,
    /// An OPTIONS probe got a 2xx.
    OptionsSucceeded,
    /// An OPTIONS probe got a final failure response or a transport error.
    OptionsFailed,
    /// An OPTIONS probe timed out (Timer F).
    OptionsTimedOut,
    /// SIP messages sent (first transmissions and retransmissions).
    MsgSent,
    /// SIP messages received.
    MsgReceived,
    /// Retransmissions sent (Timer A/E/G firing).
    Retransmitted,
    /// Retransmissions received (a request or response seen again).
    RetransmissionsReceived,
    /// Datagrams that did not parse as SIP.
    Unparseable,
    /// Well-formed messages that matched no transaction or dialog.
    Unexpected,
    /// Send or receive errors reported by the transport.
    TransportError,
    /// Datagrams the kernel reports as dropped (receive buffer overflow).
    KernelDrops,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 23] = [
        Counter::RegisterAttempted,
        Counter::RegisterSucceeded,
        Counter::RegisterFailed,
        Counter::RegisterTimedOut,
        Counter::CallAttempted,
        Counter::CallEstablished,
        Counter::CallCompleted,
        Counter::CallFailed,
        Counter::CallTimedOut,
        Counter::CallCancelled,
        Counter::CallRedirected,
        Counter::OptionsAttempted,
        Counter::OptionsSucceeded,
        Counter::OptionsFailed,
        Counter::OptionsTimedOut,
        Counter::MsgSent,
        Counter::MsgReceived,
        Counter::Retransmitted,
        Counter::RetransmissionsReceived,
        Counter::Unparseable,
        Counter::Unexpected,
        Counter::TransportError,
        Counter::KernelDrops,
    ];
    /// Number of counters.
    pub const COUNT: usize = Self::ALL.len();

    /// A stable dotted name (`call.failed`, `messages.sent`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RegisterAttempted => "register.attempted",
            Counter::RegisterSucceeded => "register.succeeded",
            Counter::RegisterFailed => "register.failed",
            Counter::RegisterTimedOut => "register.timed_out",
            Counter::CallAttempted => "call.attempted",
            Counter::CallEstablished => "call.established",
            Counter::CallCompleted => "call.completed",
            Counter::CallFailed => "call.failed",
            Counter::CallTimedOut => "call.timed_out",
            Counter::CallCancelled => "call.cancelled",
            Counter::CallRedirected => "call.redirected",
            Counter::OptionsAttempted => "options.attempted",
            Counter::OptionsSucceeded => "options.succeeded",
            Counter::OptionsFailed => "options.failed",
            Counter::OptionsTimedOut => "options.timed_out",
            Counter::MsgSent => "messages.sent",
            Counter::MsgReceived => "messages.received",
            Counter::Retransmitted => "messages.retransmitted",
            Counter::RetransmissionsReceived => "messages.retransmissions_received",
            Counter::Unparseable => "messages.unparseable",
            Counter::Unexpected => "messages.unexpected",
            Counter::TransportError => "errors.transport",
            Counter::KernelDrops => "errors.kernel_drops",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counter values indexed by [`Counter`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Counters([u64; Counter::COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; Counter::COUNT])
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for c in Counter::ALL {
            if self.get(c) != 0 {
                m.entry(&c.name(), &self.get(c));
            }
        }
        m.finish()
    }
}

impl Counters {
    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c.index()]
    }

    /// Add `n` to one counter (saturating).
    pub fn add(&mut self, c: Counter, n: u64) {
        let v = &mut self.0[c.index()];
        *v = v.saturating_add(n);
    }

    /// Add every counter of `other`.
    pub fn add_all(&mut self, other: &Counters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Attempts of every kind (registrations, calls, OPTIONS).
    pub fn attempts(&self) -> u64 {
        self.get(Counter::RegisterAttempted)
            .saturating_add(self.get(Counter::CallAttempted))
            .saturating_add(self.get(Counter::OptionsAttempted))
    }

    /// Successful attempts of every kind (registered, established, answered).
    pub fn successes(&self) -> u64 {
        self.get(Counter::RegisterSucceeded)
            .saturating_add(self.get(Counter::CallEstablished))
            .saturating_add(self.get(Counter::OptionsSucceeded))
    }

    /// Failed attempts of every kind, timeouts included.
    pub fn failures(&self) -> u64 {
        [
            Counter::RegisterFailed,
            Counter::RegisterTimedOut,
            Counter::CallFailed,
            Counter::CallTimedOut,
            Counter::OptionsFailed,
            Counter::OptionsTimedOut,
        ]
        .into_iter()
        .fold(0u64, |acc, c| acc.saturating_add(self.get(c)))
    }

    /// Timed-out attempts of every kind.
    pub fn timeouts(&self) -> u64 {
        self.get(Counter::RegisterTimedOut)
            .saturating_add(self.get(Counter::CallTimedOut))
            .saturating_add(self.get(Counter::OptionsTimedOut))
    }
}

/// The request method a final response answered, so RFC 6076 ratios can
/// count INVITE outcomes separately from REGISTER outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Method {
    /// REGISTER.
    Register,
    /// INVITE.
    Invite,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// OPTIONS.
    Options,
    /// Anything else.
    Other,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 6] = [
        Method::Register,
        Method::Invite,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Other,
    ];
    const COUNT: usize = Self::ALL.len();

    /// The SIP method name (`OTHER` for the catch-all).
    pub const fn name(self) -> &'static str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// Parse a method name as written by [`Method::name`].
    pub fn from_name(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }
}

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

/// Per-worker statistics. Not shared: each worker owns one and sends
/// snapshots to the aggregator.
pub struct WorkerStats {
    hist: Vec<Histogram<u64>>,
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
}

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
        }
    }

    /// Fold in one snapshot of `worker`, taken `t` after the start.
    pub fn add(&mut self, worker: usize, s: Snapshot, t: Duration) {
        self.workers.insert(worker, t);
        self.elapsed = self.elapsed.max(t);
        let k = second_of(t);
        self.counters.add_all(&s.counters);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn record_and_take_interval_resets() {
        let mut w = WorkerStats::new();
        w.record(Metric::Srd, ms(10), ms(12));
        w.record(Metric::Srd, ms(20), ms(25));
        w.count(Counter::CallAttempted, 2);
        w.response(Method::Invite, 200);
        w.response(Method::Invite, 200);
        w.response(Method::Register, 999);
        let s = w.take_interval();
        assert_eq!(s.hist.len(), 2);
        assert_eq!(s.hist[0].0.name(), "srd");
        assert_eq!(s.hist[0].1.len(), 2);
        assert_eq!(s.hist[1].0.name(), "srd_co");
        assert_eq!(s.counters.get(Counter::CallAttempted), 2);
        assert!(s.responses.contains(&(Method::Invite, 200, 2)));
        assert!(s.responses.contains(&(Method::Register, 0, 1)));
        let s2 = w.take_interval();
        assert!(s2.hist.is_empty());
        assert_eq!(s2.counters, Counters::default());
        assert!(s2.responses.is_empty());
    }

    #[test]
    fn snapshot_and_aggregate_cross_threads() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Snapshot>();
        assert_send::<Aggregate>();
        assert_send::<WorkerStats>();
    }

    #[test]
    fn slot_names_round_trip() {
        for slot in Slot::all() {
            assert_eq!(Slot::from_name(slot.name()), Some(slot));
        }
        assert_eq!(Slot::all().count(), Slot::COUNT);
        let idx: Vec<usize> = Slot::all().map(Slot::index).collect();
        assert_eq!(idx, (0..Slot::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn huge_values_saturate() {
        let mut w = WorkerStats::new();
        w.record(Metric::SessionDuration, Duration::from_secs(100_000), ms(1));
        let s = w.take_interval();
        let h = &s.hist[0].1;
        assert!(h.max() >= HIGHEST_US - HIGHEST_US / 1000);
    }

    #[test]
    fn codec_round_trip() {
        let mut h = new_histogram();
        for v in [1u64, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let bytes = encode_histogram(&h).unwrap();
        let back = decode_histogram(&bytes).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram(b"garbage").is_err());
    }

    proptest::proptest! {
        /// Merging encoded histograms is lossless: decode(encode(A)) + B
        /// equals the histogram of every sample of A and B.
        #[test]
        fn merge_of_encoded_histograms_is_lossless(
            a in proptest::collection::vec(0u64..HIGHEST_US, 0..200),
            b in proptest::collection::vec(0u64..HIGHEST_US, 0..200),
        ) {
            let mut ha = new_histogram();
            let mut hb = new_histogram();
            let mut all = new_histogram();
            for &v in &a { ha.record(v).unwrap(); all.record(v).unwrap(); }
            for &v in &b { hb.record(v).unwrap(); all.record(v).unwrap(); }
            let mut merged = decode_histogram(&encode_histogram(&ha).unwrap()).unwrap();
            add_histogram(&mut merged, &decode_histogram(&encode_histogram(&hb).unwrap()).unwrap()).unwrap();
            proptest::prop_assert_eq!(merged, all);
        }
    }

    #[test]
    fn aggregate_buckets_by_second_and_totals() {
        let mut agg = Aggregate::new(SystemTime::UNIX_EPOCH);
        for worker in 0..2 {
            for sec in 1..=3u64 {
                let mut w = WorkerStats::new();
                w.count(Counter::RegisterAttempted, 10);
                w.count(Counter::RegisterSucceeded, 9);
                w.count(Counter::RegisterFailed, 1);
                w.record(Metric::Rrd, ms(sec), ms(sec));
                w.response(Method::Register, 200);
                let t = Duration::from_millis(sec * 1000 + worker as u64 * 7);
                agg.add(worker, w.take_interval(), t);
            }
        }
        assert_eq!(agg.counters().get(Counter::RegisterAttempted), 60);
        let secs = agg.seconds();
        assert_eq!(secs.len(), 3);
        for (i, s) in secs.iter().enumerate() {
            assert_eq!(s.index, i as u64);
            assert_eq!(s.counters.get(Counter::RegisterAttempted), 20);
            let lat = s.latency[&Slot {
                metric: Metric::Rrd,
                corrected: false,
            }];
            assert_eq!(lat.count, 2);
        }
        let h = agg.histogram(Slot {
            metric: Metric::Rrd,
            corrected: false,
        });
        assert_eq!(h.len(), 6);
        assert_eq!(agg.responses_by_code()[&200], 6);
        let peek = agg.peek_second(0).unwrap();
        assert_eq!(peek.counters.get(Counter::RegisterAttempted), 20);
        assert_eq!(peek.latency[&Slot::service(Metric::Rrd)].count, 2);
        assert!(agg.peek_second(99).is_none());
    }

    #[test]
    fn late_snapshot_reopens_sealed_second() {
        let mut agg = Aggregate::new(SystemTime::UNIX_EPOCH);
        for sec in 1..=8u64 {
            let mut w = WorkerStats::new();
            w.count(Counter::CallAttempted, 1);
            w.record(Metric::Srd, ms(5), ms(5));
            agg.add(0, w.take_interval(), Duration::from_secs(sec));
        }
        // second 0 is sealed by now; a late worker reports for it.
        let mut w = WorkerStats::new();
        w.count(Counter::CallAttempted, 4);
        w.record(Metric::Srd, ms(7), ms(7));
        agg.add(1, w.take_interval(), Duration::from_millis(1000));
        let secs = agg.seconds();
        assert_eq!(secs[0].counters.get(Counter::CallAttempted), 5);
        let slot = Slot {
            metric: Metric::Srd,
            corrected: false,
        };
        assert_eq!(secs[0].latency[&slot].count, 2);
        assert_eq!(agg.codec_errors(), 0);
    }
}
