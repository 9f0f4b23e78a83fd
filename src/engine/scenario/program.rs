//! What a scenario compiles into: an immutable program of steps shared by
//! every worker (behind an `Arc`), with labels resolved to step indices,
//! variables, timers and counters to dense ids, and message templates
//! already split into literals and slots.

use std::time::Duration;

use super::template::MsgTemplate;
use crate::dist::PauseDist;
use crate::engine::MethodKind;

/// A variable's dense id.
pub(crate) type VarId = u16;

/// Whether the scenario is a client or a server: its first `send` or
/// `recv` decides (pauses and nops before it do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts with a `send`: `sipstorm run --sf`.
    Uac,
    /// Starts with a `recv`: `sipstorm serve --sf`.
    Uas,
}

impl Role {
    /// `uac` or `uas`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Uac => "uac",
            Role::Uas => "uas",
        }
    }
}

/// What kind of step, for reports (SIPp's screen rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKindName {
    Send,
    Recv,
    Pause,
    Nop,
    TimeWait,
}

impl StepKindName {
    /// `send`, `recv`, `pause`, `nop`, `timewait`.
    pub fn name(self) -> &'static str {
        match self {
            StepKindName::Send => "send",
            StepKindName::Recv => "recv",
            StepKindName::Pause => "pause",
            StepKindName::Nop => "nop",
            StepKindName::TimeWait => "timewait",
        }
    }
}

/// How a step shows in reports: what SIPp's screen writes on its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// SIPp's message index.
    pub index: usize,
    /// Line in the file.
    pub line: u32,
    pub kind: StepKindName,
    /// The method or status code (send/recv), or the pause's length.
    pub label: String,
    /// An optional `recv`.
    pub optional: bool,
    /// A `send` with `retrans` (SIPp shows its Timeout column then).
    pub retrans: bool,
    /// `start_rtd` / `rtd` names, for the B-RTD/E-RTD marks.
    pub start_rtd: Option<String>,
    pub rtd: Option<String>,
}

/// Where `next`, `ontimeout` and `jump` go: a step index; the number of
/// steps means "past the last step".
pub(crate) type Target = u16;

/// A message that arrives before the step that expects it, or the
/// values it is compared against.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// `request="M"`.
    Method(Box<[u8]>),
    /// `request="RE" regexp_match="true"`.
    MethodRe(regex::bytes::Regex),
    /// `response="CODE"`: and the CSeq method is one of the methods sent
    /// before this step in the file (bits of `Program::methods`; all ones
    /// for step 0).
    Code { code: u16, methods: u64 },
    /// `response="RE" regexp_match="true"`.
    CodeRe {
        re: regex::bytes::Regex,
        methods: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Send {
    pub tpl: MsgTemplate,
    /// The request's method (`None`: a response).
    pub method: Option<(Box<[u8]>, MethodKind)>,
    /// The response's status code (0 for a request).
    pub code: u16,
    /// `[cseq]` goes up before this send (a request other than ACK and
    /// CANCEL).
    pub bumps_cseq: bool,
    /// `retrans="T1"` in ms.
    pub retrans: Option<u32>,
    /// `lost="PCT"` as a probability.
    pub lost: f64,
    /// The message starts with `INVITE` (its retransmission interval is
    /// not capped at T2).
    pub is_invite: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Recv {
    pub matcher: Matcher,
    pub optional: bool,
    pub timeout: Option<Duration>,
    pub rrs: bool,
    pub auth: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Pause {
    /// `<pause/>`: the run's `--hold` (SIPp's `-d`).
    Default,
    Dist(PauseDist),
    Var(VarId),
}

#[derive(Debug, Clone)]
pub(crate) enum StepKind {
    Send(Box<Send>),
    Recv(Box<Recv>),
    Pause(Pause),
    Nop,
    TimeWait(Duration),
}

/// Operand of the arithmetic and comparison actions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Operand {
    Const(f64),
    Var(VarId),
}

/// `check_it` / `check_it_inverse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    It,
    Inverse,
}

/// What `ereg` searches.
#[derive(Debug, Clone)]
pub(crate) enum SearchIn {
    Msg,
    Body,
    Var(VarId),
    /// The rest of the line after the `occurrence`-th place `name` occurs
    /// in the headers (a literal substring search).
    Hdr {
        name: Box<[u8]>,
        case_indep: bool,
        occurrence: u16,
        start_line: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
    Ereg {
        re: regex::bytes::Regex,
        search: SearchIn,
        assign: Box<[VarId]>,
        check: Check,
    },
    Log(MsgTemplate),
    Assign(VarId, Operand),
    Add(VarId, Operand),
    Multiply(VarId, Operand),
    Divide(VarId, Operand),
    Test {
        to: Option<VarId>,
        left: VarId,
        op: Compare,
        right: Operand,
        check: Check,
    },
    Strcmp {
        to: Option<VarId>,
        left: VarId,
        right: StrOperand,
        check: Check,
    },
    ToDouble(VarId, VarId),
    SetDest {
        host: MsgTemplate,
        port: MsgTemplate,
    },
    Jump(JumpTo),
}

#[derive(Debug, Clone)]
pub(crate) enum StrOperand {
    Lit(Box<[u8]>),
    Var(VarId),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum JumpTo {
    Index(Target),
    Var(VarId),
}

/// RFC 6076 roles of steps, when the flow is recognisably a call or a
/// registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mark {
    #[default]
    None,
    /// The first INVITE sent (SRD starts).
    Invite,
    /// A BYE sent (SDD starts).
    Bye,
    /// A REGISTER sent.
    Register,
}

/// What the flow is recognisably (RFC 6076 metrics, totals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A client sending INVITE, ACK and BYE.
    Call,
    /// A client whose only requests are REGISTER.
    Register,
    /// Anything else: only the scenario's own counters.
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub line: u32,
    pub kind: StepKind,
    pub next: Option<Target>,
    pub test: Option<VarId>,
    pub chance: Option<f64>,
    pub start_rtd: Option<u8>,
    pub rtd: Option<u8>,
    pub repeat_rtd: bool,
    pub counter: Option<u16>,
    pub ontimeout: Option<Target>,
    pub actions: Box<[Action]>,
    pub mark: Mark,
}

/// `[authentication ...]`: username and password templates (`None`: the
/// call's user, then `-s`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthSpec {
    pub user: Option<MsgTemplate>,
    pub password: Option<MsgTemplate>,
}

/// A variable.
#[derive(Debug, Clone)]
pub(crate) struct VarInfo {
    pub name: String,
    /// Declared `<Global variables=...>`: read-only, its value from `-set`.
    pub global: bool,
    pub set: Option<Vec<u8>>,
}

/// A scenario compiled once; see the module documentation of [`super`].
#[derive(Debug)]
pub struct Program {
    /// `<scenario name=...>` (or the file's stem).
    pub name: String,
    /// The file as given.
    pub file: String,
    pub role: Role,
    pub shape: Shape,
    pub(crate) steps: Box<[Step]>,
    pub(crate) vars: Box<[VarInfo]>,
    pub(crate) rtds: Box<[String]>,
    pub(crate) counters: Box<[String]>,
    /// Request methods the scenario sends (bits of `Matcher::Code`).
    pub(crate) methods: Box<[Box<[u8]>]>,
    /// Header names whose last value a call keeps, lower case (Via,
    /// From, To, Call-ID and CSeq first: the abort messages need them).
    pub(crate) last_headers: Box<[Box<[u8]>]>,
    /// `[last_X:]` as spelled: (index into `last_headers`, name as written).
    pub(crate) last_spellings: Box<[(u16, Box<[u8]>)]>,
    pub(crate) auths: Box<[AuthSpec]>,
    pub(crate) key_values: Box<[Vec<u8>]>,
    /// A reply a measured latency spans may follow a received message:
    /// the driver should handle received messages at once.
    pub prompt: bool,
    /// Further `-inf` files named by `[fieldN file=...]` (index k-1 for
    /// file k).
    pub(crate) inf_names: Box<[String]>,
    /// Warnings found while compiling (text outside CDATA, ...), each
    /// `FILE:LINE: ...`.
    pub warnings: Vec<String>,
}

impl Program {
    /// Number of steps (SIPp's message indices `0..steps()`).
    pub fn steps(&self) -> usize {
        self.steps.len()
    }

    /// The `rtd` timer names, by id.
    pub fn rtd_names(&self) -> &[String] {
        &self.rtds
    }

    /// The further `-inf` files `[fieldN file=...]` names, in the order
    /// [`super::ScenarioSetup::inf`] must hold them.
    pub fn inf_names(&self) -> &[String] {
        &self.inf_names
    }

    /// The `counter` names, by id.
    pub fn counter_names(&self) -> &[String] {
        &self.counters
    }

    /// How each step shows in reports.
    pub fn step_infos(&self) -> Vec<StepInfo> {
        self.steps
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let (kind, label, optional, retrans) = match &s.kind {
                    StepKind::Send(x) => (
                        StepKindName::Send,
                        match &x.method {
                            Some((m, _)) => String::from_utf8_lossy(m).into_owned(),
                            None => x.code.to_string(),
                        },
                        false,
                        x.retrans.is_some(),
                    ),
                    StepKind::Recv(r) => (
                        StepKindName::Recv,
                        match &r.matcher {
                            Matcher::Method(m) => String::from_utf8_lossy(m).into_owned(),
                            Matcher::MethodRe(re) => re.as_str().to_string(),
                            Matcher::Code { code, .. } => code.to_string(),
                            Matcher::CodeRe { re, .. } => re.as_str().to_string(),
                        },
                        r.optional,
                        false,
                    ),
                    StepKind::Pause(p) => (
                        StepKindName::Pause,
                        match p {
                            Pause::Default => "Pause".to_string(),
                            Pause::Dist(PauseDist::Fixed(v)) => format!("Pause {v}ms"),
                            Pause::Dist(d) => format!("Pause {:.0}ms mean", d.mean_ms()),
                            Pause::Var(v) => format!(
                                "Pause ${}",
                                self.vars.get(usize::from(*v)).map_or("", |x| &x.name)
                            ),
                        },
                        false,
                        false,
                    ),
                    StepKind::Nop => (StepKindName::Nop, "Nop".to_string(), false, false),
                    StepKind::TimeWait(d) => (
                        StepKindName::TimeWait,
                        format!("Timewait {}ms", d.as_millis()),
                        false,
                        false,
                    ),
                };
                let rtd_name =
                    |r: Option<u8>| r.and_then(|i| self.rtds.get(usize::from(i)).cloned());
                StepInfo {
                    index,
                    line: s.line,
                    kind,
                    label,
                    optional,
                    retrans,
                    start_rtd: rtd_name(s.start_rtd),
                    rtd: rtd_name(s.rtd),
                }
            })
            .collect()
    }
}
