//! What the engine reports: per-attempt events with the timestamps RFC 6076
//! metrics need, and cumulative counters.

use std::time::{Duration, Instant};

/// How an attempt (or one of its phases) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The final response was 2xx.
    Success,
    /// A final failure response with this code (3xx not followed, 4xx, 5xx, 6xx).
    Failed(u16),
    /// No final response: Timer B or F fired (64·T1), or a call rang past
    /// `ring_timeout`.
    Timeout,
    /// The destination could not be used (for example a 3xx Contact or a
    /// route whose host is not an IP address: the engine does no DNS), or
    /// the transport reported it unreachable (ICMP port/host unreachable
    /// via `IP_RECVERR`; RFC 3261 §17.1.4 ends the transaction at once).
    TransportError,
    /// The call was cancelled on purpose (`cancel_ratio`) and ended with 487,
    /// or with BYE when a 200 crossed the CANCEL.
    Cancelled,
}

impl Outcome {
    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// The request method of a transaction, for [`Event::TransactionRtt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MethodKind {
    /// INVITE
    Invite = 0,
    /// ACK
    Ack = 1,
    /// BYE
    Bye = 2,
    /// CANCEL
    Cancel = 3,
    /// REGISTER
    Register = 4,
    /// OPTIONS
    Options = 5,
    /// Anything else.
    Other = 6,
}

/// Events for the driver's statistics. Every attempt-level event carries
/// `intended`, the start time the schedule asked for, so latency can be
/// corrected for coordinated omission (measured from `intended` rather than
/// from the actual send).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A registration attempt ended (RFC 6076 §4.1 RRD = `finished - started`,
    /// from the first REGISTER to the final response, challenge round trip
    /// included).
    RegisterDone {
        /// Scheduled start.
        intended: Instant,
        /// First REGISTER sent.
        started: Instant,
        /// Final response (or timeout) received.
        finished: Instant,
        /// Result.
        outcome: Outcome,
    },
    /// The unregistration (`Expires: 0`) at the end of a held registration ended.
    Unregistered {
        /// Scheduled start of the attempt.
        intended: Instant,
        /// Unregistering REGISTER sent.
        started: Instant,
        /// Its final response.
        finished: Instant,
        /// Result.
        outcome: Outcome,
    },
    /// First 18x or 200 to an INVITE (RFC 6076 §4.2 SRD = `first_provisional_or_200 - invite_sent`).
    CallSetup {
        /// Scheduled start.
        intended: Instant,
        /// First INVITE sent.
        invite_sent: Instant,
        /// The first 180/183 (not 100) or the 200.
        first_provisional_or_200: Instant,
    },
    /// 200 to the INVITE.
    CallAnswered {
        /// Scheduled start.
        intended: Instant,
        /// First INVITE sent.
        invite_sent: Instant,
        /// The 200 received.
        answered: Instant,
    },
    /// A call attempt ended; exactly one per call.
    CallDone {
        /// Scheduled start.
        intended: Instant,
        /// First INVITE sent.
        started: Instant,
        /// Result of the attempt.
        outcome: Outcome,
        /// BYE sent (RFC 6076 §4.3 SDD = `bye_done - bye_sent`).
        bye_sent: Option<Instant>,
        /// Final response to the BYE.
        bye_done: Option<Instant>,
        /// 200 to the INVITE; session duration = `bye_sent - answered`.
        answered: Option<Instant>,
    },
    /// An OPTIONS ping ended.
    OptionsDone {
        /// Scheduled start.
        intended: Instant,
        /// OPTIONS sent.
        started: Instant,
        /// Final response (or timeout).
        finished: Instant,
        /// Result.
        outcome: Outcome,
    },
    /// A client transaction got its final response (2xx–6xx), once per
    /// transaction: every challenge, redirect, BYE and CANCEL answer
    /// included. The driver's response counts come only from these, so no
    /// response is counted twice or attributed to the wrong method.
    FinalResponse {
        /// The transaction's method.
        method: MethodKind,
        /// Status code.
        code: u16,
    },
    /// A scenario's `rtd` timer stopped (SIPp's response time `id`):
    /// `service` from its `start_rtd` (or the call's start), `corrected`
    /// the same shifted back by how late the call started.
    Rtd {
        /// Index into the program's RTD names.
        id: u8,
        /// From the timer's start.
        service: Duration,
        /// From the intended start's equivalent.
        corrected: Duration,
    },
    /// A scenario's `<log message=...>` text, expanded (only when logs
    /// were asked for).
    ScenarioLog(Box<[u8]>),
    /// A client transaction got its final response on the first try (no
    /// retransmission, so the round trip is unambiguous).
    TransactionRtt {
        /// Request method.
        method: MethodKind,
        /// Request sent → final response received.
        rtt: Duration,
    },
}

/// Cumulative counters of one endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to the driver (first sends and retransmissions).
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// Of `sent`, retransmissions (Timers A, E, G and 2xx retransmission).
    pub retransmitted: u64,
    /// Retransmitted requests or responses received and absorbed.
    pub duplicates: u64,
    /// Datagrams that did not parse as SIP.
    pub unparseable: u64,
    /// Parsed messages that matched nothing (stray responses, unknown dialogs).
    pub unexpected: u64,
    /// Final responses received, by status code (index = code, 100..=699).
    pub responses: [u64; 700],
    /// Final responses sent, by status code.
    pub responses_sent: [u64; 700],
    /// Client transactions ended by Timer B or F.
    pub timeouts: u64,
    /// Server transactions ended by Timer H or L without an ACK.
    pub ack_timeouts: u64,
    /// Registration refreshes that failed (the user is then unregistered).
    pub refresh_failed: u64,
    /// Calls answered on the UAS side.
    pub answered: u64,
    /// Requests and responses forwarded by the built-in proxy.
    pub proxied: u64,
    /// Requests refused as malformed (400), unsupported (405/501, 505) or unknown (481).
    pub rejected: u64,
    /// Answers not sent because they would have been larger than the
    /// request they answered, which proved nothing about its source.
    pub unanswered: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            sent: 0,
            received: 0,
            retransmitted: 0,
            duplicates: 0,
            unparseable: 0,
            unexpected: 0,
            responses: [0; 700],
            responses_sent: [0; 700],
            timeouts: 0,
            ack_timeouts: 0,
            refresh_failed: 0,
            answered: 0,
            proxied: 0,
            rejected: 0,
            unanswered: 0,
        }
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes = |a: &[u64; 700]| {
            a.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| (c, *n))
                .collect::<Vec<_>>()
        };
        f.debug_struct("Counters")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .field("retransmitted", &self.retransmitted)
            .field("duplicates", &self.duplicates)
            .field("unparseable", &self.unparseable)
            .field("unexpected", &self.unexpected)
            .field("responses", &codes(&self.responses))
            .field("responses_sent", &codes(&self.responses_sent))
            .field("timeouts", &self.timeouts)
            .field("ack_timeouts", &self.ack_timeouts)
            .field("refresh_failed", &self.refresh_failed)
            .field("answered", &self.answered)
            .field("proxied", &self.proxied)
            .field("rejected", &self.rejected)
            .field("unanswered", &self.unanswered)
            .finish()
    }
}

impl Counters {
    /// Final responses received with this code.
    pub fn response(&self, code: u16) -> u64 {
        self.responses.get(code as usize).copied().unwrap_or(0)
    }
    /// Final responses sent with this code.
    pub fn response_sent(&self, code: u16) -> u64 {
        self.responses_sent.get(code as usize).copied().unwrap_or(0)
    }
}
