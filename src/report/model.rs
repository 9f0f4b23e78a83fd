//! The `report.json` data model (schema `sipstorm.report/v1`) and how it is
//! built from an [`Aggregate`].

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{ReportError, RunInfo, scrub_config, time::format_rfc3339};
use crate::stats::{Aggregate, Counter, Counters, Method, Metric, Slot, encode_histogram};

/// The `schema` value this version writes and reads.
pub const SCHEMA: &str = "sipstorm.report/v1";

/// The whole report. Field names are a contract (SPEC.md "report.json
/// fields"): add fields freely, rename none without bumping [`SCHEMA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Which sipstorm wrote it.
    pub tool: Tool,
    /// `register`, `call`, `mixed`, `options`.
    pub scenario: String,
    /// The effective profile, credentials redacted.
    pub config: serde_json::Value,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Start time as Unix seconds (for merging segmented runs).
    pub started_at_unix_s: f64,
    /// Length of the run, seconds.
    pub duration_s: f64,
    /// Number of segment reports this one was merged from (1 for a run).
    pub segments: u32,
    /// Offered and achieved attempt rate.
    pub rate: Rate,
    /// Attempt outcomes.
    pub totals: Totals,
    /// RFC 6076 delays (service time) and ratios.
    pub rfc6076: Rfc6076,
    /// Every latency metric and its `_co` twin, milliseconds.
    pub latency_ms: BTreeMap<String, LatencyStats>,
    /// Final responses received by status code, all methods.
    pub responses: BTreeMap<String, u64>,
    /// Final responses received by method, then status code.
    pub responses_by_method: BTreeMap<String, BTreeMap<String, u64>>,
    /// Message counters.
    pub messages: Messages,
    /// Transport-level errors.
    pub errors: Errors,
    /// Stream connections (TCP, TLS): counters, failures by reason and
    /// the connect and handshake latencies. All zero over UDP.
    #[serde(default)]
    pub transport: Transport,
    /// CPU and memory of the generator process(es).
    pub process: ProcessUsage,
    /// Whole-run histogram of every slot with samples: base64 of the
    /// HdrHistogram V2 + deflate encoding, values in microseconds. Merged
    /// losslessly by `sipstorm merge`.
    pub histograms: BTreeMap<String, String>,
    /// Per-second series for the plots.
    pub timeseries: TimeSeries,
    /// Things the reader should know (saturation, drops, failures).
    pub warnings: Vec<String>,
    /// A run of a SIPp XML scenario (`--sf`): SIPp's per-message counters
    /// of each step, calls by outcome, named `rtd` latencies. Absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_file: Option<super::scenario::ScenarioFileReport>,
}

impl Report {
    /// Attempts that failed (timeouts included) over registrations, calls
    /// and OPTIONS: exit code 1 when non-zero (SPEC.md "Exit codes").
    /// Cancelled calls were cancelled on purpose and do not count.
    pub fn failed_attempts(&self) -> u64 {
        let t = &self.totals;
        if let Some(sf) = &self.scenario_file {
            // A scenario's calls succeed or fail as SIPp's do; the RFC 6076
            // totals are a view of them.
            return sf.calls.failed;
        }
        t.register
            .failed
            .saturating_add(t.call.failed)
            .saturating_add(t.options.failed)
    }
}

/// `tool.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Crate version.
    pub version: String,
    /// Git commit, `null` if unknown.
    pub git_sha: Option<String>,
}

/// `rate.*`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Attempts per second asked for; `null` in closed-loop mode.
    pub offered_per_s: Option<f64>,
    /// Attempts (of the scenario's kind) started per second of the load
    /// phase.
    pub achieved_per_s: f64,
    /// Length of the load phase (first intended start to the last start
    /// of any worker), seconds; absent in reports from before it existed,
    /// which divided by `duration_s`.
    #[serde(default)]
    pub load_duration_s: Option<f64>,
}

/// `totals.*`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Registrations.
    pub register: RegisterTotals,
    /// Calls.
    pub call: CallTotals,
    /// OPTIONS probes.
    pub options: OptionsTotals,
}

/// `totals.register.*`. `failed` counts every unsuccessful attempt,
/// timeouts included; `timed_out` is the part that failed by Timer F.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RegisterTotals {
    /// Registration attempts started.
    pub attempted: u64,
    /// Ended with a 2xx.
    pub succeeded: u64,
    /// Ended without success (final failure response, timeout, transport).
    pub failed: u64,
    /// Ended by Timer F.
    pub timed_out: u64,
}

/// `totals.call.*`. `failed` includes `timed_out`; `cancelled` calls were
/// cancelled on purpose and are not failures.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CallTotals {
    /// Call attempts started.
    pub attempted: u64,
    /// Got a 2xx to the INVITE.
    pub established: u64,
    /// Established and ended with BYE / 2xx.
    pub completed: u64,
    /// Ended without success, timeouts included.
    pub failed: u64,
    /// Ended by Timer B or F.
    pub timed_out: u64,
    /// Cancelled on purpose.
    pub cancelled: u64,
    /// Ended on an unfollowed 3xx (left out of SER and SEER).
    #[serde(default)]
    pub redirected: u64,
}

/// `totals.options.*`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct OptionsTotals {
    /// Probes sent.
    pub attempted: u64,
    /// Answered with a 2xx.
    pub succeeded: u64,
    /// Failed, timeouts included.
    pub failed: u64,
    /// Timed out.
    pub timed_out: u64,
}

/// `messages.*`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Messages {
    /// Sent, retransmissions included.
    pub sent: u64,
    /// Received.
    pub received: u64,
    /// Retransmissions sent.
    pub retransmitted: u64,
    /// Retransmissions received.
    pub retransmissions_received: u64,
    /// Datagrams that did not parse.
    pub unparseable: u64,
    /// Messages that matched no transaction or dialog.
    pub unexpected: u64,
}

/// `errors.*`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Errors {
    /// Transport send/receive errors.
    pub transport: u64,
    /// Datagrams dropped by the kernel.
    pub kernel_drops: u64,
}

/// `transport.*`: the generator's stream connections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transport {
    /// Connections that became ready to carry messages (TCP connected;
    /// TLS: handshake done).
    pub connections_opened: u64,
    /// Connections that never got there (connect or handshake failed or
    /// timed out); by reason in `connect_failures`.
    pub connections_failed: u64,
    /// Opened connections that closed, for any reason.
    pub connections_closed: u64,
    /// Opened connections the peer ended (end of stream, `close_notify`,
    /// reset).
    pub connections_closed_by_peer: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Of those, resumed sessions.
    pub tls_resumed: u64,
    /// Failed opens by errno (`ECONNREFUSED`, `ETIMEDOUT`,
    /// `EHOSTUNREACH`, `other_errno`), TLS cause (`tls_certificate`,
    /// `tls_alert`, `tls_protocol`) or WebSocket Upgrade cause
    /// (`ws_no_sip`, `ws_rejected`, `ws_handshake`); reasons that did not
    /// occur are left out.
    pub connect_failures: BTreeMap<String, u64>,
    /// From the start of each TCP connect to its end, milliseconds.
    pub connect_ms: LatencyStats,
    /// From TCP established to each TLS handshake's end, milliseconds.
    pub tls_handshake_ms: LatencyStats,
    /// WebSocket Upgrades completed (`ws`, `wss`).
    #[serde(default)]
    pub ws_upgrades: u64,
    /// WebSocket pings received and answered.
    #[serde(default)]
    pub ws_pings: u64,
    /// Open WebSocket connections failed, by reason (`frame_too_large`,
    /// `message_too_large`, `too_many_fragments`, `masking`, `protocol`,
    /// `no_close_frame`); reasons that did not occur are left out.
    #[serde(default)]
    pub ws_errors: BTreeMap<String, u64>,
    /// From each WebSocket Upgrade request sent to its 101, milliseconds.
    #[serde(default)]
    pub ws_upgrade_ms: LatencyStats,
}

/// `process.*`: CPU seconds and peak resident set size.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// User CPU seconds (sampled at scheduler ticks: see `cpu_total_s`).
    pub cpu_user_s: f64,
    /// System CPU seconds (sampled at scheduler ticks).
    pub cpu_sys_s: f64,
    /// CPU seconds of every thread of the process, measured exactly
    /// (`CLOCK_PROCESS_CPUTIME_ID`: the scheduler's runtime of all threads,
    /// io_uring's io-wq workers included). On kernels with tick-based CPU
    /// accounting the user/sys split above is a sample of where ticks
    /// landed, scaled to this total, so a run that spends 5 µs of user time
    /// per call may show 0.00 s user; compare CPU cost with this field.
    /// Absent in reports older than it (0).
    #[serde(default)]
    pub cpu_total_s: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

/// Summary of one latency histogram, milliseconds. All but `count` are
/// `null` when there are no samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Number of samples.
    pub count: u64,
    /// Minimum.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Arithmetic mean.
    pub mean: Option<f64>,
}

fn us_to_ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

impl LatencyStats {
    /// Summarise a histogram of microseconds. Percentiles are HdrHistogram's
    /// `value_at_quantile` (the highest value equivalent to the sample at
    /// that rank, within 3 significant digits).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyStats::default();
        }
        LatencyStats {
            count: h.len(),
            min: Some(us_to_ms(h.min())),
            p50: Some(us_to_ms(h.value_at_quantile(0.5))),
            p90: Some(us_to_ms(h.value_at_quantile(0.9))),
            p99: Some(us_to_ms(h.value_at_quantile(0.99))),
            p999: Some(us_to_ms(h.value_at_quantile(0.999))),
            max: Some(us_to_ms(h.max())),
            mean: Some(h.mean() / 1000.0),
        }
    }
}

/// `rfc6076.*`: the RFC 6076 §4 delays (service time, from the actual
/// send) and ratios in percent; a ratio is `null` when its denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rfc6076 {
    /// §4.1 Registration Request Delay.
    pub rrd_ms: LatencyStats,
    /// §4.3 Session Request Delay.
    pub srd_ms: LatencyStats,
    /// §4.4 Session Disconnect Delay.
    pub sdd_ms: LatencyStats,
    /// §4.5 Session Duration Time.
    #[serde(default)]
    pub sdt_ms: LatencyStats,
    /// §4.2 Ineffective Registration Attempts, percent.
    pub ira_pct: Option<f64>,
    /// §4.6 Session Establishment Ratio, percent.
    pub ser_pct: Option<f64>,
    /// §4.7 Session Establishment Effectiveness Ratio, percent.
    pub seer_pct: Option<f64>,
    /// §4.8 Ineffective Session Attempts, percent.
    pub isa_pct: Option<f64>,
    /// §4.9 Session Completion Ratio, percent.
    pub scr_pct: Option<f64>,
}

/// The RFC 6076 ratios, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ratios {
    /// IRA.
    pub ira_pct: Option<f64>,
    /// SER.
    pub ser_pct: Option<f64>,
    /// SEER.
    pub seer_pct: Option<f64>,
    /// ISA.
    pub isa_pct: Option<f64>,
    /// SCR.
    pub scr_pct: Option<f64>,
}

fn pct(num: u64, den: u64) -> Option<f64> {
    if den == 0 {
        None
    } else {
        Some(num as f64 * 100.0 / den as f64)
    }
}

/// Compute the RFC 6076 §4 ratios from the totals and the final responses
/// to INVITE by status code.
///
/// One *attempt* (a registration or a call) counts as one request in the
/// denominators: the REGISTER or INVITE resent with credentials after a
/// 401/407 challenge, and the INVITE sent to a followed 3xx Contact, belong
/// to the same attempt, just as RRD runs from the first REGISTER to the
/// final 200 "401 round trip included" (SPEC.md).
///
/// - IRA, §4.2: "IRA % = (# of IRA / Total # of REGISTER Requests) x 100",
///   an ineffective attempt being one answered by a final failure (4XX other
///   than the 401/402/407 challenges, 5XX, 6XX) or by no final response
///   (timeout). Here: `(register.failed) / register.attempted`, `failed`
///   including timeouts.
/// - SER, §4.6: "SER = (# of INVITE Requests w/ associated 200 OK) /
///   (Total # of INVITE Requests - # of INVITE Requests w/ 3XX Response)
///   x 100". Here: `call.established / (call.attempted - call.redirected)`.
/// - SEER, §4.7: "SEER = (# of INVITE Requests w/ associated 200, 480, 486,
///   600, or 603) / (Total # of INVITE Requests - # of INVITE Requests w/
///   3XX Response) x 100": the responses that show the network did its job
///   even if the user did not answer.
/// - ISA, §4.8: "ISA % = (# of ISA / Total # of Session Requests) x 100",
///   an ineffective session attempt being one answered by 408, 500, 503 or
///   504, or not answered at all (Timer B).
/// - SCR, §4.9: "SCR = (# of Successfully Completed Sessions / Total # of
///   Session Requests) x 100", a session completing successfully when it
///   was established and ended normally with BYE / 2xx.
pub fn ratios(totals: &Totals, invite_codes: &BTreeMap<u16, u64>) -> Ratios {
    let inv = |codes: &[u16]| -> u64 {
        codes
            .iter()
            .map(|c| invite_codes.get(c).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add)
    };
    let call = &totals.call;
    let reg = &totals.register;
    let non_redirected = call.attempted.saturating_sub(call.redirected);
    Ratios {
        ira_pct: pct(reg.failed, reg.attempted),
        ser_pct: pct(call.established, non_redirected),
        seer_pct: pct(
            call.established.saturating_add(inv(&[480, 486, 600, 603])),
            non_redirected,
        ),
        isa_pct: pct(
            inv(&[408, 500, 503, 504]).saturating_add(call.timed_out),
            call.attempted,
        ),
        scr_pct: pct(call.completed, call.attempted),
    }
}

/// `timeseries.*`: one entry per second of the run, index `i` covering
/// `[t_s[i], t_s[i]+1)` seconds after the start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Second offsets.
    pub t_s: Vec<u64>,
    /// Attempts started (all kinds).
    pub attempted: Vec<u64>,
    /// Attempts succeeded (registered, established, answered).
    pub succeeded: Vec<u64>,
    /// Attempts failed, timeouts included.
    pub failed: Vec<u64>,
    /// Attempts timed out.
    pub timed_out: Vec<u64>,
    /// Retransmissions sent.
    pub retransmitted: Vec<u64>,
    /// Stream connections open at the end of each second (opened minus
    /// closed so far, over the whole run).
    #[serde(default)]
    pub connections_open: Vec<u64>,
    /// Stream connections opened in each second.
    #[serde(default)]
    pub connections_opened: Vec<u64>,
    /// Per-second latency by slot name (`srd`, `srd_co`, ...), milliseconds.
    pub latency_ms: BTreeMap<String, LatencySeries>,
    /// Final responses per second by status code.
    pub responses: BTreeMap<String, Vec<u64>>,
}

/// Per-second latency of one slot, `null` in seconds without samples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySeries {
    /// Samples per second.
    pub count: Vec<u64>,
    /// Median.
    pub p50: Vec<Option<f64>>,
    /// 99th percentile.
    pub p99: Vec<Option<f64>>,
    /// Maximum.
    pub max: Vec<Option<f64>>,
}

/// Totals from the aggregated counters. The report's `failed` adds the
/// disjoint `*Failed` and `*TimedOut` counters.
pub(crate) fn totals_of(c: &Counters) -> Totals {
    Totals {
        register: RegisterTotals {
            attempted: c.get(Counter::RegisterAttempted),
            succeeded: c.get(Counter::RegisterSucceeded),
            failed: c
                .get(Counter::RegisterFailed)
                .saturating_add(c.get(Counter::RegisterTimedOut)),
            timed_out: c.get(Counter::RegisterTimedOut),
        },
        call: CallTotals {
            attempted: c.get(Counter::CallAttempted),
            established: c.get(Counter::CallEstablished),
            completed: c.get(Counter::CallCompleted),
            failed: c
                .get(Counter::CallFailed)
                .saturating_add(c.get(Counter::CallTimedOut)),
            timed_out: c.get(Counter::CallTimedOut),
            cancelled: c.get(Counter::CallCancelled),
            redirected: c.get(Counter::CallRedirected),
        },
        options: OptionsTotals {
            attempted: c.get(Counter::OptionsAttempted),
            succeeded: c.get(Counter::OptionsSucceeded),
            failed: c
                .get(Counter::OptionsFailed)
                .saturating_add(c.get(Counter::OptionsTimedOut)),
            timed_out: c.get(Counter::OptionsTimedOut),
        },
    }
}

/// The RFC 6076 totals of a scenario run: what its recognisable calls or
/// registrations counted.
pub(crate) fn totals_of_scenario(s: &crate::stats::ScenarioStats) -> Totals {
    use crate::stats::rfc_index as i;
    let r = &s.rfc;
    Totals {
        register: RegisterTotals {
            attempted: r[i::REGISTER_ATTEMPTED],
            succeeded: r[i::REGISTER_SUCCEEDED],
            failed: r[i::REGISTER_FAILED] + r[i::REGISTER_TIMED_OUT],
            timed_out: r[i::REGISTER_TIMED_OUT],
        },
        call: CallTotals {
            attempted: r[i::CALL_ATTEMPTED],
            established: r[i::CALL_ESTABLISHED],
            completed: r[i::CALL_COMPLETED],
            failed: r[i::CALL_FAILED] + r[i::CALL_TIMED_OUT],
            timed_out: r[i::CALL_TIMED_OUT],
            cancelled: r[i::CALL_CANCELLED],
            redirected: r[i::CALL_REDIRECTED],
        },
        options: OptionsTotals::default(),
    }
}

/// `n` per second of `secs` (0 for an empty interval).
pub(crate) fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Attempts of the scenario's own kind: what `--rate` paces.
pub(crate) fn primary_attempts(scenario: &str, t: &Totals) -> u64 {
    match scenario {
        "register" => t.register.attempted,
        "call" | "mixed" => t.call.attempted,
        "options" => t.options.attempted,
        _ => t
            .register
            .attempted
            .saturating_add(t.call.attempted)
            .saturating_add(t.options.attempted),
    }
}

/// Latency stats of every slot from the given histograms (missing =
/// empty); a scenario's response-time timers only when they got samples.
pub(crate) fn latency_map(hist: &BTreeMap<Slot, Histogram<u64>>) -> BTreeMap<String, LatencyStats> {
    Slot::all()
        .filter(|slot| !slot.metric.is_rtd() || hist.contains_key(slot))
        .map(|slot| {
            let stats = hist.get(&slot).map(LatencyStats::of).unwrap_or_default();
            (slot.name().to_string(), stats)
        })
        .collect()
}

pub(crate) fn rfc6076_of(
    latency: &BTreeMap<String, LatencyStats>,
    totals: &Totals,
    invite_codes: &BTreeMap<u16, u64>,
) -> Rfc6076 {
    let get = |m: Metric| latency.get(m.name()).copied().unwrap_or_default();
    let r = ratios(totals, invite_codes);
    Rfc6076 {
        rrd_ms: get(Metric::Rrd),
        srd_ms: get(Metric::Srd),
        sdd_ms: get(Metric::Sdd),
        sdt_ms: get(Metric::SessionDuration),
        ira_pct: r.ira_pct,
        ser_pct: r.ser_pct,
        seer_pct: r.seer_pct,
        isa_pct: r.isa_pct,
        scr_pct: r.scr_pct,
    }
}

pub(crate) fn invite_codes(
    by_method: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<u16, u64> {
    by_method
        .get(Method::Invite.name())
        .map(|m| {
            m.iter()
                .filter_map(|(code, n)| code.parse::<u16>().ok().map(|c| (c, *n)))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn encode_b64(h: &Histogram<u64>) -> Result<String, ReportError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(encode_histogram(h)?))
}

/// Decode the `histograms` map of a report.
pub(crate) fn decode_histograms(report: &Report) -> Result<BTreeMap<Slot, Histogram<u64>>, String> {
    let mut out = BTreeMap::new();
    for (name, b64) in &report.histograms {
        let slot = Slot::from_name(name).ok_or_else(|| format!("unknown histogram `{name}`"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("histogram `{name}`: {e}"))?;
        let h = crate::stats::decode_histogram(&bytes).map_err(|e| format!("`{name}`: {e}"))?;
        out.insert(slot, h);
    }
    Ok(out)
}

/// The warnings every report gets, derived from its numbers.
pub(crate) fn derive_warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(offered) = r.rate.offered_per_s
        && offered > 0.0
        && r.rate.achieved_per_s < 0.95 * offered
    {
        w.push(format!(
            "the generator itself was saturated: achieved rate {:.1}/s fell short of offered {:.1}/s ({:.1}%); the numbers describe the generator, not only the target (or the --concurrency cap was reached)",
            r.rate.achieved_per_s,
            offered,
            r.rate.achieved_per_s * 100.0 / offered
        ));
    }
    // Open-loop attempts start on pacing ticks, up to one tick after their
    // intended time: that lateness is the generator's by design, so only a
    // gap beyond it says the schedule slipped.
    let tick_ms = r
        .config
        .get("pacing_resolution_ms")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    for m in Metric::ALL {
        let (Some(s), Some(c)) = (
            r.latency_ms.get(m.name()).and_then(|s| s.p99),
            r.latency_ms.get(m.co_name()).and_then(|s| s.p99),
        ) else {
            continue;
        };
        if c > 2.0 * s && c - s > 1.0 + tick_ms {
            w.push(format!(
                "{}: p99 measured from the intended start ({c:.2} ms) is {:.1}x the service-time p99 ({s:.2} ms): the generator fell behind its schedule, trust the _co figures",
                m.label(),
                c / s.max(0.001)
            ));
        }
    }
    let t = &r.totals;
    let failed = t.register.failed + t.call.failed + t.options.failed;
    if failed > 0 {
        let timed_out = t.register.timed_out + t.call.timed_out + t.options.timed_out;
        w.push(format!("{failed} attempts failed ({timed_out} timed out)"));
    }
    if r.errors.kernel_drops > 0 {
        w.push(format!(
            "the kernel dropped {} datagrams (socket buffer overflow): raise the socket buffers or lower the rate",
            r.errors.kernel_drops
        ));
    }
    if r.errors.transport > 0 {
        w.push(format!("{} transport errors", r.errors.transport));
    }
    if r.messages.unparseable > 0 {
        w.push(format!(
            "{} datagrams could not be parsed as SIP",
            r.messages.unparseable
        ));
    }
    if r.messages.sent > 0 && r.messages.retransmitted * 100 > r.messages.sent {
        w.push(format!(
            "{:.1}% of the messages sent were retransmissions: the target or the network is losing or delaying messages",
            r.messages.retransmitted as f64 * 100.0 / r.messages.sent as f64
        ));
    }
    w
}

/// Build the report of a finished run.
pub(crate) fn build(info: &RunInfo, agg: &Aggregate) -> Result<Report, ReportError> {
    let c = agg.counters();
    let scenario_file = info
        .scenario_file
        .as_ref()
        .map(|i| super::scenario::ScenarioFileReport::build(i, agg.scenario()));
    let totals = match agg.scenario() {
        Some(s) if scenario_file.is_some() => totals_of_scenario(s),
        _ => totals_of(c),
    };
    let mut hist = BTreeMap::new();
    for slot in Slot::all() {
        if agg.has_samples(slot) {
            hist.insert(slot, agg.histogram(slot).clone());
        }
    }
    let latency_ms = latency_map(&hist);
    let mut histograms = BTreeMap::new();
    for (slot, h) in &hist {
        histograms.insert(slot.name().to_string(), encode_b64(h)?);
    }
    let mut responses_by_method: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (&(method, code), &n) in agg.responses() {
        *responses_by_method
            .entry(method.name().to_string())
            .or_default()
            .entry(code.to_string())
            .or_insert(0) += n;
    }
    let responses = agg
        .responses_by_code()
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    let rfc6076 = rfc6076_of(&latency_ms, &totals, &invite_codes(&responses_by_method));
    let duration_s = info.duration.as_secs_f64();
    let load_s = info.load_duration.map_or(duration_s, |d| d.as_secs_f64());
    let attempts = match &scenario_file {
        Some(sf) => sf.calls.attempted,
        None => primary_attempts(&info.scenario, &totals),
    };
    let achieved = per_second(attempts, load_s);
    let started_at_unix_s = info
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut report = Report {
        schema: SCHEMA.to_string(),
        tool: Tool {
            version: info.tool_version.clone(),
            git_sha: info.git_sha.clone(),
        },
        scenario: info.scenario.clone(),
        config: scrub_config(&info.config),
        started_at: format_rfc3339(info.started_at),
        started_at_unix_s,
        duration_s,
        segments: 1,
        rate: Rate {
            offered_per_s: info.offered_rate,
            achieved_per_s: achieved,
            load_duration_s: Some(load_s),
        },
        totals,
        rfc6076,
        latency_ms,
        responses,
        responses_by_method,
        messages: Messages {
            sent: c.get(Counter::MsgSent),
            received: c.get(Counter::MsgReceived),
            retransmitted: c.get(Counter::Retransmitted),
            retransmissions_received: c.get(Counter::RetransmissionsReceived),
            unparseable: c.get(Counter::Unparseable),
            unexpected: c.get(Counter::Unexpected),
        },
        errors: Errors {
            transport: c.get(Counter::TransportError),
            kernel_drops: c.get(Counter::KernelDrops),
        },
        transport: Transport::of(c, &hist),
        process: info.process,
        histograms,
        timeseries: timeseries_of(agg),
        warnings: Vec::new(),
        scenario_file,
    };
    report.warnings = info.notes.clone();
    report.warnings.extend(derive_warnings(&report));
    if agg.codec_errors() > 0 {
        report.warnings.push(format!(
            "{} interval histograms could not be encoded and are missing from the time series",
            agg.codec_errors()
        ));
    }
    Ok(report)
}

fn timeseries_of(agg: &Aggregate) -> TimeSeries {
    let seconds = agg.seconds();
    let n = seconds.len();
    let mut ts = TimeSeries::default();
    let used: Vec<Slot> = Slot::all().filter(|s| agg.has_samples(*s)).collect();
    for slot in &used {
        ts.latency_ms.insert(
            slot.name().to_string(),
            LatencySeries {
                count: vec![0; n],
                p50: vec![None; n],
                p99: vec![None; n],
                max: vec![None; n],
            },
        );
    }
    let codes: Vec<u16> = agg.responses_by_code().keys().copied().collect();
    for code in &codes {
        ts.responses.insert(code.to_string(), vec![0; n]);
    }
    for (i, s) in seconds.iter().enumerate() {
        ts.t_s.push(s.index);
        ts.attempted.push(s.counters.attempts());
        ts.succeeded.push(s.counters.successes());
        ts.failed.push(s.counters.failures());
        ts.timed_out.push(s.counters.timeouts());
        ts.retransmitted
            .push(s.counters.get(Counter::Retransmitted));
        let opened = s.counters.get(Counter::ConnOpened);
        let closed = s.counters.get(Counter::ConnClosed);
        let before = ts.connections_open.last().copied().unwrap_or(0);
        ts.connections_open
            .push((before + opened).saturating_sub(closed));
        ts.connections_opened.push(opened);
        for (slot, lat) in &s.latency {
            if let Some(series) = ts.latency_ms.get_mut(slot.name()) {
                series.count[i] = lat.count;
                series.p50[i] = Some(us_to_ms(lat.p50_us));
                series.p99[i] = Some(us_to_ms(lat.p99_us));
                series.max[i] = Some(us_to_ms(lat.max_us));
            }
        }
        for (code, n) in &s.responses {
            if let Some(v) = ts.responses.get_mut(&code.to_string()) {
                v[i] = *n;
            }
        }
    }
    ts
}

impl Transport {
    /// From the run's counters and histograms.
    pub(crate) fn of(c: &Counters, hist: &BTreeMap<Slot, Histogram<u64>>) -> Transport {
        let failures = [
            (Counter::ConnFailRefused, "ECONNREFUSED"),
            (Counter::ConnFailTimedOut, "ETIMEDOUT"),
            (Counter::ConnFailUnreachable, "EHOSTUNREACH"),
            (Counter::ConnFailOtherErrno, "other_errno"),
            (Counter::TlsFailCertificate, "tls_certificate"),
            (Counter::TlsFailAlert, "tls_alert"),
            (Counter::TlsFailProtocol, "tls_protocol"),
            (Counter::WsFailNoSip, "ws_no_sip"),
            (Counter::WsFailRejected, "ws_rejected"),
            (Counter::WsFailHandshake, "ws_handshake"),
        ];
        let ws_errors = [
            (Counter::WsFrameTooLarge, "frame_too_large"),
            (Counter::WsMessageTooLarge, "message_too_large"),
            (Counter::WsTooManyFragments, "too_many_fragments"),
            (Counter::WsMasking, "masking"),
            (Counter::WsProtocol, "protocol"),
            (Counter::WsAbrupt, "no_close_frame"),
        ];
        let present = |list: &[(Counter, &str)]| {
            list.iter()
                .filter(|(k, _)| c.get(*k) > 0)
                .map(|(k, name)| (name.to_string(), c.get(*k)))
                .collect()
        };
        let stats = |m: Metric| {
            hist.get(&Slot::service(m))
                .map(LatencyStats::of)
                .unwrap_or_default()
        };
        Transport {
            connections_opened: c.get(Counter::ConnOpened),
            connections_failed: c.get(Counter::ConnFailed),
            connections_closed: c.get(Counter::ConnClosed),
            connections_closed_by_peer: c.get(Counter::ConnClosedByPeer),
            tls_handshakes: c.get(Counter::TlsHandshakes),
            tls_resumed: c.get(Counter::TlsResumed),
            connect_failures: present(&failures),
            connect_ms: stats(Metric::Connect),
            tls_handshake_ms: stats(Metric::TlsHandshake),
            ws_upgrades: c.get(Counter::WsUpgrades),
            ws_pings: c.get(Counter::WsPings),
            ws_errors: present(&ws_errors),
            ws_upgrade_ms: stats(Metric::WsUpgrade),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_us(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::stats::new_histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_match_hand_computed_ranks() {
        // 1..=1000 µs: every value is exactly representable (< 2048), so
        // the p-th percentile is the value of rank ceil(p * 1000).
        let s = LatencyStats::of(&hist_us(1..=1000));
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, Some(0.001));
        assert_eq!(s.p50, Some(0.5));
        assert_eq!(s.p90, Some(0.9));
        assert_eq!(s.p99, Some(0.99));
        assert_eq!(s.p999, Some(0.999));
        assert_eq!(s.max, Some(1.0));
        assert!((s.mean.unwrap() - 0.5005).abs() < 1e-9);
    }

    #[test]
    fn percentiles_table() {
        // (samples in µs, expected p50, p99, max in ms)
        let cases: &[(&[u64], f64, f64, f64)] = &[
            (&[7], 0.007, 0.007, 0.007),
            (&[1, 2, 3, 4], 0.002, 0.004, 0.004),
            (&[10, 10, 10, 1000], 0.01, 1.0, 1.0),
            (&[100; 99], 0.1, 0.1, 0.1),
        ];
        for &(samples, p50, p99, max) in cases {
            let s = LatencyStats::of(&hist_us(samples.iter().copied()));
            assert_eq!(s.p50, Some(p50), "{samples:?}");
            assert_eq!(s.p99, Some(p99), "{samples:?}");
            assert_eq!(s.max, Some(max), "{samples:?}");
        }
        // Large values stay within 0.1% (3 significant digits).
        let s = LatencyStats::of(&hist_us([1_234_567]));
        let p = s.p50.unwrap();
        assert!((p - 1234.567).abs() / 1234.567 < 1e-3, "{p}");
    }

    proptest::proptest! {
        /// Oracle: below 2048 µs every value is exact, so the q-quantile is
        /// the sorted sample of rank ceil(q * n) (integer arithmetic).
        #[test]
        fn percentiles_match_sorted_oracle(mut v in proptest::collection::vec(1u64..2048, 1..400)) {
            let s = LatencyStats::of(&hist_us(v.iter().copied()));
            v.sort_unstable();
            let n = v.len() as u64;
            let rank = |per_mille: u64| -> f64 {
                let r = (per_mille * n).div_ceil(1000).max(1);
                v[(r - 1) as usize] as f64 / 1000.0
            };
            proptest::prop_assert_eq!(s.count, n);
            proptest::prop_assert_eq!(s.p50, Some(rank(500)));
            proptest::prop_assert_eq!(s.p90, Some(rank(900)));
            proptest::prop_assert_eq!(s.p99, Some(rank(990)));
            proptest::prop_assert_eq!(s.p999, Some(rank(999)));
            proptest::prop_assert_eq!(s.min, Some(v[0] as f64 / 1000.0));
            proptest::prop_assert_eq!(s.max, Some(v[v.len() - 1] as f64 / 1000.0));
        }
    }

    /// Corrected latency up to one pacing tick above service time is the
    /// schedule's design, not a slip; beyond it the report warns.
    #[test]
    fn fell_behind_warning_allows_one_pacing_tick() {
        use crate::stats::WorkerStats;
        use std::time::Duration;
        let cases = [
            // (service ms, corrected ms, pacing tick ms, warns)
            (0.5, 1.4, 1.0, false),
            (0.5, 2.2, 1.0, false),
            (0.5, 2.2, 0.0, true),
            (0.5, 3.0, 1.0, true),
        ];
        for (service, corrected, tick, warns) in cases {
            let start = std::time::UNIX_EPOCH + Duration::from_secs(1_795_305_600);
            let mut w = WorkerStats::new();
            for _ in 0..100 {
                w.record(
                    Metric::Srd,
                    Duration::from_secs_f64(service / 1e3),
                    Duration::from_secs_f64(corrected / 1e3),
                );
            }
            let mut agg = Aggregate::new(start);
            agg.add(0, w.take_interval(), Duration::from_secs(1));
            let info = RunInfo::new(
                "call",
                Some(100.0),
                serde_json::json!({ "pacing_resolution_ms": tick }),
                start,
                Duration::from_secs(1),
            );
            let r = build(&info, &agg).unwrap();
            let warned = r.warnings.iter().any(|w| w.contains("fell behind"));
            assert_eq!(
                warned, warns,
                "{service} {corrected} {tick}: {:?}",
                r.warnings
            );
        }
    }

    #[test]
    fn empty_histogram_has_null_stats() {
        let s = LatencyStats::of(&crate::stats::new_histogram());
        assert_eq!(s.count, 0);
        assert_eq!(s.p99, None);
        assert_eq!(s.mean, None);
    }

    fn totals(reg: (u64, u64, u64), call: (u64, u64, u64, u64, u64, u64)) -> Totals {
        Totals {
            register: RegisterTotals {
                attempted: reg.0,
                succeeded: reg.1,
                failed: reg.2,
                timed_out: 0,
            },
            call: CallTotals {
                attempted: call.0,
                established: call.1,
                completed: call.2,
                failed: call.3,
                timed_out: call.4,
                cancelled: 0,
                redirected: call.5,
            },
            options: OptionsTotals::default(),
        }
    }

    #[test]
    fn ratios_hand_computed() {
        // 200 registrations, 190 ok, 10 failed -> IRA 5%.
        // 100 calls: 5 ended on an unfollowed 3xx, 80 established, 75
        // completed; INVITE finals: 486 x6, 603 x2, 503 x3, 408 x1, 500 x0;
        // 3 Timer B timeouts.
        // SER  = 80 / (100-5) = 84.2105...
        // SEER = (80+6+2) / 95 = 92.6315...
        // ISA  = (3+1+3) / 100 = 7
        // SCR  = 75 / 100 = 75
        let t = totals((200, 190, 10), (100, 80, 75, 15, 3, 5));
        let codes: BTreeMap<u16, u64> =
            [(200, 80), (302, 5), (486, 6), (603, 2), (503, 3), (408, 1)]
                .into_iter()
                .collect();
        let r = ratios(&t, &codes);
        assert_eq!(r.ira_pct, Some(5.0));
        assert!((r.ser_pct.unwrap() - 8000.0 / 95.0).abs() < 1e-9);
        assert!((r.seer_pct.unwrap() - 8800.0 / 95.0).abs() < 1e-9);
        assert_eq!(r.isa_pct, Some(7.0));
        assert_eq!(r.scr_pct, Some(75.0));
    }

    #[test]
    fn ratios_with_no_attempts_are_null() {
        let r = ratios(&Totals::default(), &BTreeMap::new());
        assert_eq!(r, Ratios::default());
        // Only registrations: call ratios null, IRA 0.
        let r = ratios(&totals((10, 10, 0), (0, 0, 0, 0, 0, 0)), &BTreeMap::new());
        assert_eq!(r.ira_pct, Some(0.0));
        assert_eq!(r.ser_pct, None);
        // All calls redirected: SER's denominator is 0.
        let r = ratios(&totals((0, 0, 0), (4, 0, 0, 0, 0, 4)), &BTreeMap::new());
        assert_eq!(r.ser_pct, None);
        assert_eq!(r.scr_pct, Some(0.0));
    }
}
