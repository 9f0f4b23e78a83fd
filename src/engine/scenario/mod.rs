//! SIPp XML scenarios (issue 17): a user's `sipp -sf FILE.xml` scenario
//! compiled once into a [`Program`] of steps, then run by every worker as
//! a sibling of the built-in flows inside [`Endpoint`]: the same parser,
//! timing wheel, buffers, outbox and driver, but no RFC 3261 transaction
//! layer, registrar or proxy underneath (SIPp has none either: a scenario
//! sends its own ACKs). Each call is a program counter, its variables and
//! the headers it kept, in a slab of its own keyed by Call-ID.
//!
//! - `xml`: the file to a small element tree with lines (quick-xml);
//! - `compile`: the tree to a [`Program`], every refusal `FILE:LINE`;
//! - `template`: message templates, literal bytes and keyword slots;
//! - `call`: the interpreter (matching, retransmissions, timeouts, aborts);
//! - `actions`: `ereg`, arithmetic, `test`, `strcmp`, `setdest`, `jump`, `log`.
//!
//! What SIPp does and what sipstorm does about it is in
//! `docs/sipp-scenarios.md`; the design in `docs/sipp-scenarios-design.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::users::UserSource;
use crate::flow::Flow;

mod actions;
mod call;
mod compile;
mod program;
mod template;
mod xml;

pub use compile::{CompileOptions, compile_bytes, compile_file};
pub use program::{Program, Role, Shape, StepInfo, StepKindName};

pub(crate) use call::ScenEngine;

/// Most distinct `rtd` timers a scenario may use (each is a pair of HDR
/// histograms in every worker).
pub const MAX_RTDS: usize = 8;

/// What is wrong with a scenario file: always names the file, and the line
/// when there is one (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}:{line}: {msg}")]
    At {
        file: String,
        line: u32,
        msg: String,
    },
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
}

impl ScenarioError {
    pub(crate) fn at(file: &str, line: u32, msg: impl Into<String>) -> Self {
        ScenarioError::At {
            file: file.to_string(),
            line,
            msg: msg.into(),
        }
    }

    /// The line the problem is on, if it has one.
    pub fn line(&self) -> Option<u32> {
        match self {
            ScenarioError::At { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// How one worker runs a scenario: the program and what the run adds.
#[derive(Debug, Clone)]
pub struct ScenarioSetup {
    pub program: Arc<Program>,
    /// `-s`/`--service`: `[service]`, and the default digest username.
    pub service: String,
    /// `[pid]`: the process id (the engine reads no OS state).
    pub pid: u32,
    /// This worker's calls are numbered `number_offset + k·number_stride + 1`
    /// (k = 0, 1, …), so `[call_number]` is unique across workers and
    /// segments.
    pub number_offset: u64,
    pub number_stride: u64,
    /// The length of a `<pause/>` without attributes (`--hold`, SIPp's `-d`).
    pub default_pause: crate::dist::Delay,
    /// The further `-inf` files, in the order of `Program`'s names.
    pub inf: Vec<Arc<UserSource>>,
    /// Emit [`super::Event::ScenarioLog`] for `<log>` actions.
    pub log: bool,
    /// `-nr`: no retransmission of `retrans` sends and no detection of
    /// received retransmissions.
    pub no_retrans: bool,
    /// The users of `[fieldN]` and `[authentication]` when not the
    /// endpoint's own (a server's first `-inf` file).
    pub users: Option<Arc<UserSource>>,
}

impl ScenarioSetup {
    /// A setup with defaults for everything but the program.
    pub fn new(program: Arc<Program>) -> Self {
        ScenarioSetup {
            program,
            service: "service".into(),
            pid: 0,
            number_offset: 0,
            number_stride: 1,
            default_pause: crate::dist::Delay::default(),
            inf: Vec::new(),
            log: false,
            no_retrans: false,
            users: None,
        }
    }
}

/// Why a scenario call failed (SIPp's `Failed…` columns of `-trace_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FailReason {
    /// A message that matched no step (`FailedUnexpectedMessage`).
    UnexpectedMessage,
    /// `retrans` ran out (`FailedMaxUDPRetrans`).
    MaxUdpRetrans,
    /// A `recv` timed out without `ontimeout` (`FailedTimeoutOnRecv`).
    RecvTimeout,
    RegexpDoesntMatch,
    RegexpShouldntMatch,
    RegexpHdrNotFound,
    TestDoesntMatch,
    TestShouldntMatch,
    StrcmpDoesntMatch,
    StrcmpShouldntMatch,
    /// The transport could not deliver (ICMP unreachable, a connection
    /// that failed): `FailedCannotSendMessage`.
    CannotSend,
    /// `[authentication]` with no challenge kept (SIPp stops; sipstorm
    /// fails the call).
    AuthWithoutChallenge,
    /// Still running when the run's drain ended.
    Abandoned,
}

impl FailReason {
    /// Every reason, in report order.
    pub const ALL: [FailReason; 13] = [
        FailReason::UnexpectedMessage,
        FailReason::MaxUdpRetrans,
        FailReason::RecvTimeout,
        FailReason::RegexpDoesntMatch,
        FailReason::RegexpShouldntMatch,
        FailReason::RegexpHdrNotFound,
        FailReason::TestDoesntMatch,
        FailReason::TestShouldntMatch,
        FailReason::StrcmpDoesntMatch,
        FailReason::StrcmpShouldntMatch,
        FailReason::CannotSend,
        FailReason::AuthWithoutChallenge,
        FailReason::Abandoned,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The report name (`scenario_file.calls.failed_by.<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            FailReason::UnexpectedMessage => "unexpected_message",
            FailReason::MaxUdpRetrans => "max_udp_retrans",
            FailReason::RecvTimeout => "recv_timeout",
            FailReason::RegexpDoesntMatch => "regexp_doesnt_match",
            FailReason::RegexpShouldntMatch => "regexp_shouldnt_match",
            FailReason::RegexpHdrNotFound => "regexp_hdr_not_found",
            FailReason::TestDoesntMatch => "test_doesnt_match",
            FailReason::TestShouldntMatch => "test_shouldnt_match",
            FailReason::StrcmpDoesntMatch => "strcmp_doesnt_match",
            FailReason::StrcmpShouldntMatch => "strcmp_shouldnt_match",
            FailReason::CannotSend => "cannot_send",
            FailReason::AuthWithoutChallenge => "auth_without_challenge",
            FailReason::Abandoned => "abandoned",
        }
    }
}

/// SIPp's per-message counters of one step (its screen's columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounters {
    /// `send`: first transmissions.
    pub sent: u64,
    /// `recv`: messages matched by this step.
    pub received: u64,
    /// Retransmissions sent (send) or received (recv).
    pub retransmissions: u64,
    /// `recv` timeouts; for a `send` with `retrans`, retransmissions that
    /// ran out.
    pub timeouts: u64,
    /// Unexpected messages while a call was at this step.
    pub unexpected: u64,
    /// Dropped by `lost`.
    pub lost: u64,
    /// Calls that entered this pause (or timewait).
    pub sessions: u64,
}

impl StepCounters {
    /// The counters in the order of [`STEP_COLUMNS`].
    pub fn to_array(&self) -> [u64; 7] {
        [
            self.sent,
            self.received,
            self.retransmissions,
            self.timeouts,
            self.unexpected,
            self.lost,
            self.sessions,
        ]
    }
}

/// Names of the step counters, as `report.json` writes them.
pub const STEP_COLUMNS: [&str; 7] = [
    "sent",
    "received",
    "retransmissions",
    "timeouts",
    "unexpected",
    "lost",
    "sessions",
];

/// Cumulative scenario counters of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioCounters {
    pub steps: Vec<StepCounters>,
    /// Calls started (client) or taken in (server).
    pub started: u64,
    pub succeeded: u64,
    /// Failed calls by [`FailReason`] (index = reason as u8).
    pub failed: [u64; FailReason::COUNT],
    /// Messages whose Call-ID matched no call (`OutOfCallMsgs`).
    pub out_of_call: u64,
    /// Messages for a call that ended less than 33 s ago (`DeadCallMsgs`).
    pub dead_call: u64,
    /// Unexpected BYE/CANCEL answered 200 (`AutoAnswered`).
    pub auto_answered: u64,
    /// `counter="NAME"` by id.
    pub counters: Vec<u64>,
}

impl ScenarioCounters {
    /// Failed calls, every reason.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }
}

impl Endpoint {
    /// The endpoint's scenario counters, if it runs a scenario file.
    pub fn scenario_counters(&self) -> Option<&ScenarioCounters> {
        self.scen.as_deref().map(|s| &s.counters)
    }

    /// Live scenario calls.
    pub(super) fn scen_live(&self) -> usize {
        self.scen.as_deref().map_or(0, |s| s.calls.len())
    }

    pub(super) fn scen_handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        if let Some(mut se) = self.scen.take() {
            se.on_message(self, now, from, data);
            self.scen = Some(se);
        }
    }

    pub(super) fn scen_start(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool {
        let Some(mut se) = self.scen.take() else {
            return false;
        };
        let ok = se.start(self, now, intended, hold);
        self.scen = Some(se);
        ok
    }

    pub(super) fn scen_timer(&mut self, now: Instant, retransmit: bool, idx: u32, generation: u32) {
        if let Some(mut se) = self.scen.take() {
            se.timer(self, now, retransmit, idx, generation);
            self.scen = Some(se);
        }
    }

    /// A scenario server stops: calls in their final timewait succeed (as
    /// SIPp counts them), the others end as abandoned.
    pub fn scenario_stop(&mut self, now: Instant) {
        if let Some(mut se) = self.scen.take() {
            se.close(self, now);
            self.scen = Some(se);
        }
    }

    pub(super) fn scen_abandon(&mut self, now: Instant) {
        if let Some(mut se) = self.scen.take() {
            se.abandon(self, now);
            self.scen = Some(se);
        }
    }

    pub(super) fn scen_transport_error(&mut self, now: Instant, dest: Flow) {
        if let Some(mut se) = self.scen.take() {
            se.transport_error(self, now, dest);
            self.scen = Some(se);
        }
    }
}

#[cfg(test)]
mod tests;
