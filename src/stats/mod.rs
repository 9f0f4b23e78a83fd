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
//! assert_eq!(agg.peek_second(0).unwrap().counters.get(Counter::CallAttempted), 1);
//! // at the end: sipstorm::report::write_report(dir, &info, &agg)
//! ```

use std::fmt;

use hdrhistogram::Histogram;

mod aggregate;
mod worker;

pub use aggregate::{
    Aggregate, HistogramCodecError, IntervalLatency, Second, SecondPeek, add_histogram,
    decode_histogram, encode_histogram, second_of,
};
pub use worker::{ResponseCounts, ScenarioStats, Snapshot, WorkerStats, rfc_index};

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
    /// Stream connect: from the start of the TCP connect to its handshake
    /// done (the connection's SYN to its SYN-ACK seen).
    Connect,
    /// TLS handshake: from TCP established to the handshake done, as the
    /// client sees it (ClientHello out to Finished).
    TlsHandshake,
    /// A SIPp scenario's response-time timers (`start_rtd`/`rtd`), in the
    /// order the scenario names them: SIPp's `rtd="true"` is timer `1`,
    /// other names take the next free one (the report maps names to these
    /// in `scenario_file.rtds`).
    Rtd1,
    Rtd2,
    Rtd3,
    Rtd4,
    Rtd5,
    Rtd6,
    Rtd7,
    Rtd8,
    /// WebSocket Upgrade: from the request sent (TCP, and TLS for `wss`,
    /// up) to its 101 received (RFC 6455 §4, RFC 7118 §4.1).
    WsUpgrade,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 20] = [
        Metric::Rrd,
        Metric::Srd,
        Metric::Answer,
        Metric::Sdd,
        Metric::SessionDuration,
        Metric::RegisterRtt,
        Metric::InviteRtt,
        Metric::ByeRtt,
        Metric::OptionsRtt,
        Metric::Connect,
        Metric::TlsHandshake,
        Metric::Rtd1,
        Metric::Rtd2,
        Metric::Rtd3,
        Metric::Rtd4,
        Metric::Rtd5,
        Metric::Rtd6,
        Metric::Rtd7,
        Metric::Rtd8,
        Metric::WsUpgrade,
    ];
    /// The scenario response-time timers, by id.
    pub const RTD: [Metric; 8] = [
        Metric::Rtd1,
        Metric::Rtd2,
        Metric::Rtd3,
        Metric::Rtd4,
        Metric::Rtd5,
        Metric::Rtd6,
        Metric::Rtd7,
        Metric::Rtd8,
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
            Metric::Connect => "connect",
            Metric::TlsHandshake => "tls_handshake",
            Metric::Rtd1 => "rtd1",
            Metric::Rtd2 => "rtd2",
            Metric::Rtd3 => "rtd3",
            Metric::Rtd4 => "rtd4",
            Metric::Rtd5 => "rtd5",
            Metric::Rtd6 => "rtd6",
            Metric::Rtd7 => "rtd7",
            Metric::Rtd8 => "rtd8",
            Metric::WsUpgrade => "ws_upgrade",
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
            Metric::Connect => "connect_co",
            Metric::TlsHandshake => "tls_handshake_co",
            Metric::Rtd1 => "rtd1_co",
            Metric::Rtd2 => "rtd2_co",
            Metric::Rtd3 => "rtd3_co",
            Metric::Rtd4 => "rtd4_co",
            Metric::Rtd5 => "rtd5_co",
            Metric::Rtd6 => "rtd6_co",
            Metric::Rtd7 => "rtd7_co",
            Metric::Rtd8 => "rtd8_co",
            Metric::WsUpgrade => "ws_upgrade_co",
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
            Metric::Connect => "TCP connect",
            Metric::TlsHandshake => "TLS handshake",
            Metric::Rtd1 => "RTD 1",
            Metric::Rtd2 => "RTD 2",
            Metric::Rtd3 => "RTD 3",
            Metric::Rtd4 => "RTD 4",
            Metric::Rtd5 => "RTD 5",
            Metric::Rtd6 => "RTD 6",
            Metric::Rtd7 => "RTD 7",
            Metric::Rtd8 => "RTD 8",
            Metric::WsUpgrade => "WS upgrade",
        }
    }

    /// A scenario response-time timer (reported only when it got samples).
    pub const fn is_rtd(self) -> bool {
        matches!(
            self,
            Metric::Rtd1
                | Metric::Rtd2
                | Metric::Rtd3
                | Metric::Rtd4
                | Metric::Rtd5
                | Metric::Rtd6
                | Metric::Rtd7
                | Metric::Rtd8
        )
    }

    /// Whether the metric belongs to an attempt with an intended start
    /// time (so its corrected twin differs); connection latencies do not
    /// (their twin records the same value).
    pub const fn has_intended_start(self) -> bool {
        !matches!(
            self,
            Metric::Connect | Metric::TlsHandshake | Metric::WsUpgrade
        )
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
    /// Stream connections ready to carry messages (TCP connected or
    /// accepted; TLS: handshake done).
    ConnOpened,
    /// Stream connections that never got there (connect or handshake
    /// failed or timed out); by reason in the `ConnFail*` counters.
    ConnFailed,
    /// Opened connections that closed, for any reason.
    ConnClosed,
    /// Opened connections the peer ended (end of stream, `close_notify`,
    /// reset).
    ConnClosedByPeer,
    /// Opened connections closed because a bound was passed (read buffer,
    /// write queue) or the peer's bytes did not frame.
    ConnClosedBadPeer,
    /// TLS handshakes completed.
    TlsHandshakes,
    /// Of those, resumed sessions.
    TlsResumed,
    /// Connect failures: `ECONNREFUSED`.
    ConnFailRefused,
    /// Connect or handshake timeouts (`ETIMEDOUT`).
    ConnFailTimedOut,
    /// Connect failures: `EHOSTUNREACH`, `ENETUNREACH`.
    ConnFailUnreachable,
    /// Connect failures with any other errno.
    ConnFailOtherErrno,
    /// TLS handshakes failed on the peer's certificate.
    TlsFailCertificate,
    /// TLS handshakes failed on an alert from the peer.
    TlsFailAlert,
    /// TLS handshakes failed otherwise (protocol error).
    TlsFailProtocol,
    /// A SIPp scenario call started (`run --sf`).
    ScenarioAttempted,
    /// A scenario call reached its end without failing.
    ScenarioSucceeded,
    /// A scenario call failed (unexpected message, timeout, check, ...).
    ScenarioFailed,
    /// WebSocket Upgrades completed (either side).
    WsUpgrades,
    /// WebSocket pings received and answered with a pong.
    WsPings,
    /// Upgrades without agreement on `sip` (RFC 7118 §4.1).
    WsFailNoSip,
    /// Upgrades the server answered with another status than 101.
    WsFailRejected,
    /// Malformed, incomplete or inconsistent Upgrades.
    WsFailHandshake,
    /// Open WebSocket connections failed: a frame past the bound.
    WsFrameTooLarge,
    /// ... a fragmented message past the bound.
    WsMessageTooLarge,
    /// ... a message in too many fragments.
    WsTooManyFragments,
    /// ... a frame masked the wrong way (a client that never masks).
    WsMasking,
    /// ... any other framing violation.
    WsProtocol,
    /// WebSocket connections the peer ended without the closing
    /// handshake (end of stream or reset).
    WsAbrupt,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 51] = [
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
        Counter::ConnOpened,
        Counter::ConnFailed,
        Counter::ConnClosed,
        Counter::ConnClosedByPeer,
        Counter::ConnClosedBadPeer,
        Counter::TlsHandshakes,
        Counter::TlsResumed,
        Counter::ConnFailRefused,
        Counter::ConnFailTimedOut,
        Counter::ConnFailUnreachable,
        Counter::ConnFailOtherErrno,
        Counter::TlsFailCertificate,
        Counter::TlsFailAlert,
        Counter::TlsFailProtocol,
        Counter::ScenarioAttempted,
        Counter::ScenarioSucceeded,
        Counter::ScenarioFailed,
        Counter::WsUpgrades,
        Counter::WsPings,
        Counter::WsFailNoSip,
        Counter::WsFailRejected,
        Counter::WsFailHandshake,
        Counter::WsFrameTooLarge,
        Counter::WsMessageTooLarge,
        Counter::WsTooManyFragments,
        Counter::WsMasking,
        Counter::WsProtocol,
        Counter::WsAbrupt,
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
            Counter::ConnOpened => "transport.connections_opened",
            Counter::ConnFailed => "transport.connections_failed",
            Counter::ConnClosed => "transport.connections_closed",
            Counter::ConnClosedByPeer => "transport.connections_closed_by_peer",
            Counter::ConnClosedBadPeer => "transport.connections_closed_bad_peer",
            Counter::TlsHandshakes => "transport.tls_handshakes",
            Counter::TlsResumed => "transport.tls_resumed",
            Counter::ConnFailRefused => "transport.connect_failures.ECONNREFUSED",
            Counter::ConnFailTimedOut => "transport.connect_failures.ETIMEDOUT",
            Counter::ConnFailUnreachable => "transport.connect_failures.EHOSTUNREACH",
            Counter::ConnFailOtherErrno => "transport.connect_failures.other_errno",
            Counter::TlsFailCertificate => "transport.connect_failures.tls_certificate",
            Counter::TlsFailAlert => "transport.connect_failures.tls_alert",
            Counter::TlsFailProtocol => "transport.connect_failures.tls_protocol",
            Counter::ScenarioAttempted => "scenario_file.attempted",
            Counter::ScenarioSucceeded => "scenario_file.succeeded",
            Counter::ScenarioFailed => "scenario_file.failed",
            Counter::WsUpgrades => "transport.ws_upgrades",
            Counter::WsPings => "transport.ws_pings",
            Counter::WsFailNoSip => "transport.connect_failures.ws_no_sip",
            Counter::WsFailRejected => "transport.connect_failures.ws_rejected",
            Counter::WsFailHandshake => "transport.connect_failures.ws_handshake",
            Counter::WsFrameTooLarge => "transport.ws_errors.frame_too_large",
            Counter::WsMessageTooLarge => "transport.ws_errors.message_too_large",
            Counter::WsTooManyFragments => "transport.ws_errors.too_many_fragments",
            Counter::WsMasking => "transport.ws_errors.masking",
            Counter::WsProtocol => "transport.ws_errors.protocol",
            Counter::WsAbrupt => "transport.ws_errors.no_close_frame",
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

    /// Attempts of every kind (registrations, calls, OPTIONS, scenario
    /// calls).
    pub fn attempts(&self) -> u64 {
        self.get(Counter::RegisterAttempted)
            .saturating_add(self.get(Counter::CallAttempted))
            .saturating_add(self.get(Counter::OptionsAttempted))
            .saturating_add(self.get(Counter::ScenarioAttempted))
    }

    /// Successful attempts of every kind (registered, established,
    /// answered, scenario calls that ended well).
    pub fn successes(&self) -> u64 {
        self.get(Counter::RegisterSucceeded)
            .saturating_add(self.get(Counter::CallEstablished))
            .saturating_add(self.get(Counter::OptionsSucceeded))
            .saturating_add(self.get(Counter::ScenarioSucceeded))
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
            Counter::ScenarioFailed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

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
