//! The interpreter: one [`ScenCall`] per call in a slab keyed by a hash of
//! its Call-ID, driven by received messages and two timers (the wake-up of
//! a pause, timewait or `recv` timeout; the retransmission of a `send`).
//! How messages match steps, what is unexpected, how retransmissions go
//! and how a failed call is aborted follow SIPp as docs/sipp-scenarios.md
//! ("Semantics the implementation must reproduce") describes it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::program::{Mark, Matcher, Pause, Program, Role, Shape, StepKind, Target};
use super::template::{Consts, MsgTemplate, Part, Slot, after_empty_line_start};
use super::{FailReason, MAX_RTDS, ScenarioCounters, ScenarioSetup, StepCounters};
use crate::engine::endpoint::Endpoint;
use crate::engine::event::{Event, MethodKind, Outcome};
use crate::engine::timers::{TimerKind, later};
use crate::engine::users::UserSource;
use crate::engine::util::{IdHash, Rng, Slab, hex16};
use crate::engine::wheel::TimerId;
use crate::engine::wire::method_kind;
use crate::flow::{Flow, TransportKind};
use crate::sip::{self, Message};

/// No step.
const NONE: u16 = u16::MAX;

/// SIPp keeps ended Call-IDs this long to absorb late messages (`-deadcall_wait`).
const DEAD_CALL_WAIT: Duration = Duration::from_secs(33);

/// Retransmissions of a `retrans` send before it times out (SIPp's
/// `-max_invite_retrans` and `-max_non_invite_retrans` defaults).
const MAX_INVITE_RETRANS: u8 = 5;
const MAX_NON_INVITE_RETRANS: u8 = 9;

/// A variable's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum Val {
    #[default]
    Unset,
    /// A string or a regexp capture.
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
}

impl Val {
    /// `test="v"`: a capture or string is set once it has a value, a
    /// boolean when true, a number once assigned.
    pub fn is_set(&self) -> bool {
        match self {
            Val::Unset => false,
            Val::Bool(b) => *b,
            _ => true,
        }
    }
    /// As a number: a string is parsed (0 when it is none); unset is 0.
    pub fn num(&self) -> f64 {
        match self {
            Val::Num(v) => *v,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0.0),
            Val::Unset => 0.0,
        }
    }
    /// `[$v]`: strings as they are, numbers with six decimals (SIPp's
    /// `%lf`), booleans `true`/`false`, unset nothing.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Val::Unset => {}
            Val::Str(s) => out.extend_from_slice(s),
            Val::Num(v) => out.extend_from_slice(format!("{v:.6}").as_bytes()),
            Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
    }
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum CallState {
    #[default]
    Running,
    /// At a `recv` (or a run of optional ones starting at `pc`).
    WaitRecv,
    /// In a pause; the wake-up timer moves it on.
    Paused,
    /// In the final timewait.
    TimeWait,
    /// At a `send` while an earlier one is still retransmitted.
    Blocked,
}

/// (start, len) in one of a call's buffers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span(pub u32, pub u32);

/// One call of a scenario. Buffers keep their capacity when the slot is
/// reused.
#[derive(Debug, Default)]
pub(super) struct ScenCall {
    pub key: u64,
    pub pc: u16,
    pub state: CallState,
    /// A `check_it` failed: the call fails when it ends.
    pub failed: Option<FailReason>,
    pub call_number: u64,
    /// Global index of the call's user (client).
    pub user: u32,
    pub cseq: u32,
    pub nonce_count: u32,
    pub dest: Option<Flow>,
    pub intended_ns: u64,
    pub started_ns: u64,
    /// 0: wake-up (pause, timewait, recv timeout); 1: retransmission.
    pub timers: [TimerId; 2],
    /// The `send` being retransmitted (NONE: none), its count, interval.
    pub rtx_step: u16,
    pub rtx_count: u8,
    pub rtx_interval: Duration,
    pub rtx_msg: Vec<u8>,
    /// Hash of the last matched message and its step; the first request
    /// and the latest response sent after it (a retransmission of it gets
    /// them again).
    pub last_hash: u64,
    pub last_step: u16,
    pub first_req_after: u16,
    pub latest_resp_after: u16,
    pub call_id: Vec<u8>,
    /// Values of `Program::last_headers` from the last matched message.
    pub lbuf: Vec<u8>,
    pub last: Vec<Span>,
    pub last_ruri: Span,
    pub last_cseq: u32,
    pub last_code: u16,
    pub peer_tag: Vec<u8>,
    pub routes: Vec<u8>,
    pub target: Vec<u8>,
    pub rrs_done: bool,
    pub challenge: Vec<u8>,
    pub challenge_proxy: bool,
    pub vars: Vec<Val>,
    pub rtd_start: [u64; MAX_RTDS],
    pub rtd_done: u8,
    /// RFC 6076: INVITE sent, first 18x/200, 2xx, BYE, as ns + 1 since
    /// the endpoint's epoch (0: not yet).
    pub invite_ns: u64,
    pub setup_done: bool,
    pub answered_ns: u64,
    pub invite_final: u16,
    pub bye_ns: u64,
    pub bye_done_ns: u64,
    pub register_ns: u64,
    pub register_done: bool,
    /// An INVITE went and no ACK after it yet (abort: ACK or CANCEL).
    pub invite_open: bool,
    /// A `jump` action ran: where the call goes after this step.
    pub jump: Option<Target>,
    /// Steps (mod 64) that matched a message in this call.
    pub matched: u64,
}

impl ScenCall {
    fn reset(&mut self, n_vars: usize, n_last: usize) {
        let mut keep = std::mem::take(self);
        for v in [
            &mut keep.rtx_msg,
            &mut keep.call_id,
            &mut keep.lbuf,
            &mut keep.peer_tag,
            &mut keep.routes,
            &mut keep.target,
            &mut keep.challenge,
        ] {
            v.clear();
        }
        keep.last.clear();
        keep.last.resize(n_last, Span::default());
        keep.vars.clear();
        keep.vars.resize(n_vars, Val::Unset);
        *self = ScenCall {
            rtx_msg: keep.rtx_msg,
            call_id: keep.call_id,
            lbuf: keep.lbuf,
            last: keep.last,
            peer_tag: keep.peer_tag,
            routes: keep.routes,
            target: keep.target,
            challenge: keep.challenge,
            vars: keep.vars,
            rtx_step: NONE,
            last_step: NONE,
            first_req_after: NONE,
            latest_resp_after: NONE,
            ..ScenCall::default()
        };
    }

    pub fn lget(&self, s: Span) -> &[u8] {
        self.lbuf
            .get(s.0 as usize..(s.0 + s.1) as usize)
            .unwrap_or(&[])
    }
}

/// One worker's scenario state.
#[derive(Debug)]
pub(crate) struct ScenEngine {
    pub(super) prog: Arc<Program>,
    pub(super) setup: ScenarioSetup,
    /// Each step's template bound to this worker (sends only).
    pub(super) tpls: Vec<Option<MsgTemplate>>,
    pub(super) consts: Consts,
    pub(super) calls: Slab<ScenCall>,
    pub(super) index: HashMap<u64, u32, IdHash>,
    /// Ended calls: Call-ID hash → expiry (ns), and their order.
    pub(super) dead: HashMap<u64, u64, IdHash>,
    pub(super) dead_fifo: VecDeque<(u64, u64)>,
    pub(super) counters: ScenarioCounters,
    pub(super) next_k: u64,
    pub(super) rng: Rng,
    pub(super) transport: TransportKind,
    pub(super) t2: Duration,
    pub(super) users: Arc<UserSource>,
    pub(super) scratch: Vec<u8>,
    pub(super) scratch2: Vec<u8>,
    pub(super) header_end: memchr::memmem::Finder<'static>,
}

impl ScenEngine {
    /// The scenario engine of one worker: `local` is its address, `remote`
    /// the target of a client.
    pub fn new(
        setup: ScenarioSetup,
        transport: TransportKind,
        local: std::net::SocketAddr,
        remote: Option<std::net::SocketAddr>,
        users: Arc<UserSource>,
        t2: Duration,
        seed: u64,
    ) -> ScenEngine {
        let prog = setup.program.clone();
        let host = |a: std::net::SocketAddr| -> Vec<u8> {
            match a {
                std::net::SocketAddr::V4(v) => v.ip().to_string().into_bytes(),
                std::net::SocketAddr::V6(v) => format!("[{}]", v.ip()).into_bytes(),
            }
        };
        let consts = Consts {
            remote_ip: remote.map(host),
            remote_port: remote.map(|r| r.port()),
            local_ip: host(local),
            local_ip_type: if local.is_ipv4() { b"4" } else { b"6" },
            local_port: local.port(),
            transport: transport.via_token().as_bytes(),
            media_ip: local.ip().to_string().into_bytes(),
            media_port: crate::engine::template::MEDIA_PORT,
            service: setup.service.clone().into_bytes(),
            pid: setup.pid,
            keys: prog.key_values.to_vec(),
        };
        let tpls = prog
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Send(x) => Some(x.tpl.bind(&consts)),
                _ => None,
            })
            .collect();
        let n_steps = prog.steps.len();
        let n_counters = prog.counters.len();
        ScenEngine {
            tpls,
            consts,
            calls: Slab::default(),
            index: HashMap::default(),
            dead: HashMap::default(),
            dead_fifo: VecDeque::new(),
            counters: ScenarioCounters {
                steps: vec![StepCounters::default(); n_steps],
                counters: vec![0; n_counters],
                ..ScenarioCounters::default()
            },
            next_k: 0,
            rng: Rng::new(seed ^ 0x5c3e_a710),
            transport,
            t2,
            users,
            scratch: Vec::new(),
            scratch2: Vec::new(),
            header_end: memchr::memmem::Finder::new(b"\r\n\r\n").into_owned(),
            prog,
            setup,
        }
    }

    /// Whether replies should leave at once (see `Program::prompt`).
    pub(crate) fn prompt(&self) -> bool {
        self.prog.prompt
    }

    fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }

    fn new_call(&mut self, ep: &mut Endpoint, now: Instant) -> u32 {
        let number = self.setup.number_offset + self.next_k * self.setup.number_stride.max(1) + 1;
        self.next_k += 1;
        let (ci, _, c) = self.calls.insert();
        c.reset(self.prog.vars.len(), self.prog.last_headers.len());
        c.call_number = number;
        for (i, v) in self.prog.vars.iter().enumerate() {
            if let Some(s) = &v.set {
                c.vars[i] = Val::Str(s.clone());
            }
        }
        c.started_ns = ep.to_ns(now);
        c.intended_ns = c.started_ns;
        self.counters.started += 1;
        ci
    }

    /// Start a client call (`start_attempt`).
    pub fn start(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        intended: Instant,
        hold: Duration,
    ) -> bool {
        let _ = hold;
        if self.prog.role != Role::Uac || ep.shutting_down {
            return false;
        }
        let user = ep.next_user().map_or(0, |k| ep.global_user(k));
        let Some(target) = ep.role.client().map(|c| c.target_flow()) else {
            return false;
        };
        let dest = ep.keyed_flow(target, user);
        let ci = self.new_call(ep, now);
        let intended_ns = ep.to_ns(intended);
        let via_host = ep.wire.via_host.clone();
        let Some(c) = self.calls.get_mut(ci) else {
            return false;
        };
        c.user = user;
        c.dest = Some(dest);
        c.intended_ns = intended_ns.min(c.started_ns);
        // SIPp's shape: `<call_number>-<pid>@<local_ip>` (unique: call
        // numbers are unique in a run, the pid across runs).
        let mut d = [0u8; 20];
        c.call_id
            .extend_from_slice(crate::engine::util::dec(c.call_number, &mut d));
        c.call_id.push(b'-');
        c.call_id
            .extend_from_slice(crate::engine::util::dec(u64::from(self.setup.pid), &mut d));
        c.call_id.push(b'@');
        c.call_id.extend_from_slice(&via_host);
        let key = ep.hash(&c.call_id);
        c.key = key;
        self.index.insert(key, ci);
        self.run(ep, now, ci);
        true
    }

    // ---- timers -------------------------------------------------------

    fn arm(&mut self, ep: &mut Endpoint, at: Instant, retransmit: bool, ci: u32) {
        let g = self.calls.generation(ci);
        let slot = usize::from(retransmit);
        let Some(old) = self.calls.get(ci).map(|c| c.timers[slot]) else {
            return;
        };
        ep.wheel.cancel(old);
        let kind = if retransmit {
            TimerKind::ScenRetransmit
        } else {
            TimerKind::ScenWake
        };
        let id = ep.arm(at, kind, ci, g);
        if let Some(c) = self.calls.get_mut(ci) {
            c.timers[slot] = id;
        }
    }

    fn disarm(&mut self, ep: &mut Endpoint, ci: u32, retransmit: bool) {
        if let Some(c) = self.calls.get_mut(ci) {
            let slot = usize::from(retransmit);
            ep.wheel.cancel(c.timers[slot]);
            c.timers[slot] = TimerId::default();
        }
    }

    /// A timer of call `idx` fired (`generation` as armed).
    pub fn timer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        retransmit: bool,
        ci: u32,
        generation: u32,
    ) {
        if self.calls.get(ci).is_none() || self.calls.generation(ci) & 0x00ff_ffff != generation {
            return;
        }
        if retransmit {
            self.retransmit(ep, now, ci);
            return;
        }
        let Some(c) = self.calls.get(ci) else { return };
        let pc = c.pc;
        match c.state {
            CallState::Paused => {
                let next = self.next_after(ci, pc);
                self.goto(ci, next);
                self.run(ep, now, ci);
            }
            CallState::TimeWait => self.end(ep, now, ci, None),
            CallState::WaitRecv => {
                if let Some(s) = self.counters.steps.get_mut(usize::from(pc)) {
                    s.timeouts += 1;
                }
                match self.prog.steps[usize::from(pc)].ontimeout {
                    Some(t) if usize::from(t) < self.prog.steps.len() => {
                        self.goto(ci, t);
                        self.run(ep, now, ci);
                    }
                    _ => self.fail(ep, now, ci, FailReason::RecvTimeout),
                }
            }
            CallState::Running | CallState::Blocked => {}
        }
    }

    fn retransmit(&mut self, ep: &mut Endpoint, now: Instant, ci: u32) {
        let Some(c) = self.calls.get(ci) else { return };
        let step = c.rtx_step;
        if step == NONE {
            return;
        }
        let StepKind::Send(x) = &self.prog.steps[usize::from(step)].kind else {
            return;
        };
        let max = if x.is_invite {
            MAX_INVITE_RETRANS
        } else {
            MAX_NON_INVITE_RETRANS
        };
        if c.rtx_count >= max {
            self.counters.steps[usize::from(step)].timeouts += 1;
            self.stop_rtx(ep, ci);
            match self.prog.steps[usize::from(step)].ontimeout {
                Some(t) if usize::from(t) < self.prog.steps.len() => {
                    self.disarm(ep, ci, false);
                    self.goto(ci, t);
                    self.run(ep, now, ci);
                }
                _ => self.fail(ep, now, ci, FailReason::MaxUdpRetrans),
            }
            return;
        }
        let is_invite = x.is_invite;
        let t2 = self.t2;
        let mut b = ep.take_buf();
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        b.extend_from_slice(&c.rtx_msg);
        c.rtx_count += 1;
        c.rtx_interval = if is_invite {
            c.rtx_interval * 2
        } else {
            (c.rtx_interval * 2).min(t2)
        };
        let (dest, interval) = (c.dest, c.rtx_interval);
        self.counters.steps[usize::from(step)].retransmissions += 1;
        ep.counters.retransmitted += 1;
        match dest {
            Some(d) => ep.send(d, b),
            None => ep.put_buf(b),
        }
        self.arm(ep, later(now, interval), true, ci);
    }

    fn stop_rtx(&mut self, ep: &mut Endpoint, ci: u32) {
        self.disarm(ep, ci, true);
        if let Some(c) = self.calls.get_mut(ci) {
            c.rtx_step = NONE;
            c.rtx_msg.clear();
            if c.rtx_msg.capacity() > 4096 {
                c.rtx_msg.shrink_to(1024);
            }
        }
    }

    // ---- moving through the steps ---------------------------------------

    fn goto(&mut self, ci: u32, pc: Target) {
        if let Some(c) = self.calls.get_mut(ci) {
            c.pc = pc;
            c.state = CallState::Running;
        }
    }

    /// Where the call goes after step `i`: its `next` when `test` holds and
    /// `chance` draws it, else the following step; a `jump` wins.
    fn next_after(&mut self, ci: u32, i: u16) -> Target {
        let Some(c) = self.calls.get_mut(ci) else {
            return i + 1;
        };
        if let Some(j) = c.jump.take() {
            return j;
        }
        let s = &self.prog.steps[usize::from(i)];
        let Some(next) = s.next else {
            return i + 1;
        };
        if let Some(v) = s.test
            && !c.vars.get(usize::from(v)).is_some_and(Val::is_set)
        {
            return i + 1;
        }
        if let Some(p) = s.chance
            && !self.rng.chance(p)
        {
            return i + 1;
        }
        next
    }

    /// Run steps from the call's `pc` until one waits (or the call ends).
    fn run(&mut self, ep: &mut Endpoint, now: Instant, ci: u32) {
        let prog = self.prog.clone();
        for _ in 0..10_000 {
            let Some(c) = self.calls.get(ci) else { return };
            let pc = c.pc;
            let Some(step) = prog.steps.get(usize::from(pc)) else {
                let failed = c.failed;
                self.end(ep, now, ci, failed);
                return;
            };
            match &step.kind {
                StepKind::Send(_) => {
                    if c.rtx_step != NONE {
                        if let Some(c) = self.calls.get_mut(ci) {
                            c.state = CallState::Blocked;
                        }
                        return;
                    }
                    self.common(ep, now, ci, pc);
                    if !self.send_step(ep, now, ci, pc, false) {
                        return;
                    }
                    self.actions(ep, now, ci, pc, None);
                    if self.calls.get(ci).is_none() {
                        return;
                    }
                    let next = self.next_after(ci, pc);
                    self.goto(ci, next);
                }
                StepKind::Recv(r) => {
                    let timeout = r.timeout;
                    if let Some(c) = self.calls.get_mut(ci) {
                        c.state = CallState::WaitRecv;
                    }
                    match timeout {
                        Some(t) => self.arm(ep, later(now, t), false, ci),
                        None => self.disarm(ep, ci, false),
                    }
                    return;
                }
                StepKind::Pause(p) => {
                    self.counters.steps[usize::from(pc)].sessions += 1;
                    self.common(ep, now, ci, pc);
                    let d = match p {
                        Pause::Default => self.setup.default_pause.sample(&mut self.rng),
                        Pause::Dist(d) => d.sample(&mut self.rng),
                        Pause::Var(v) => {
                            let ms = self
                                .calls
                                .get(ci)
                                .and_then(|c| c.vars.get(usize::from(*v)))
                                .map_or(0.0, Val::num);
                            crate::dist::PauseDist::Fixed(ms).sample(&mut self.rng)
                        }
                    };
                    if d.is_zero() {
                        let next = self.next_after(ci, pc);
                        self.goto(ci, next);
                        continue;
                    }
                    if let Some(c) = self.calls.get_mut(ci) {
                        c.state = CallState::Paused;
                    }
                    self.arm(ep, later(now, d), false, ci);
                    return;
                }
                StepKind::Nop => {
                    self.common(ep, now, ci, pc);
                    self.actions(ep, now, ci, pc, None);
                    if self.calls.get(ci).is_none() {
                        return;
                    }
                    let next = self.next_after(ci, pc);
                    self.goto(ci, next);
                }
                StepKind::TimeWait(d) => {
                    self.counters.steps[usize::from(pc)].sessions += 1;
                    let d = *d;
                    if let Some(c) = self.calls.get_mut(ci) {
                        c.state = CallState::TimeWait;
                    }
                    self.arm(ep, later(now, d), false, ci);
                    return;
                }
            }
        }
        // A loop of steps that never waits (nop → jump back): fail it
        // rather than spin.
        self.fail(ep, now, ci, FailReason::Abandoned);
    }

    /// `counter`, `start_rtd`, `rtd` of step `i`, reached now.
    fn common(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, i: u16) {
        let s = &self.prog.steps[usize::from(i)];
        if let Some(k) = s.counter
            && let Some(n) = self.counters.counters.get_mut(usize::from(k))
        {
            *n += 1;
        }
        let now_ns = ep.to_ns(now);
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        if let Some(r) = s.rtd {
            let bit = 1u8 << r;
            if c.rtd_done & bit == 0 || s.repeat_rtd {
                c.rtd_done |= bit;
                let start = match c.rtd_start[usize::from(r)] {
                    0 => c.started_ns,
                    t => t - 1,
                };
                // The corrected twin: the same interval shifted back by
                // how late the call started.
                let lag = c.started_ns.saturating_sub(c.intended_ns);
                let service = Duration::from_nanos(now_ns.saturating_sub(start));
                ep.emit(Event::Rtd {
                    id: r,
                    service,
                    corrected: service + Duration::from_nanos(lag),
                });
            }
        }
        if let Some(r) = s.start_rtd {
            c.rtd_start[usize::from(r)] = now_ns + 1;
        }
    }

    /// Build and send step `i` (again when `resend`). False when the call
    /// ended.
    fn send_step(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        ci: u32,
        i: u16,
        resend: bool,
    ) -> bool {
        let StepKind::Send(x) = &self.prog.steps[usize::from(i)].kind else {
            return true;
        };
        let (bumps, retrans, lost, is_request, mark) = (
            x.bumps_cseq,
            x.retrans,
            x.lost,
            x.method.is_some(),
            self.prog.steps[usize::from(i)].mark,
        );
        let kind = x.method.as_ref().map(|m| m.1);
        if !resend
            && bumps
            && let Some(c) = self.calls.get_mut(ci)
        {
            c.cseq += 1;
        }
        let mut out = ep.take_buf();
        let tpl = self.tpls[usize::from(i)].take();
        let r = match &tpl {
            Some(t) => self.render(ep, ci, t, i, &mut out),
            None => Ok(()),
        };
        self.tpls[usize::from(i)] = tpl;
        if let Err(reason) = r {
            ep.put_buf(out);
            self.fail(ep, now, ci, reason);
            return false;
        }
        let now_ns = ep.to_ns(now);
        let reliable = self.reliable();
        let no_retrans = self.setup.no_retrans;
        let Some(c) = self.calls.get_mut(ci) else {
            ep.put_buf(out);
            return false;
        };
        let dest = c.dest;
        if resend {
            self.counters.steps[usize::from(i)].retransmissions += 1;
            ep.counters.retransmitted += 1;
        } else {
            if is_request {
                if c.first_req_after == NONE {
                    c.first_req_after = i;
                }
            } else {
                c.latest_resp_after = i;
            }
            match kind {
                Some(MethodKind::Invite) => c.invite_open = true,
                Some(MethodKind::Ack) => c.invite_open = false,
                _ => {}
            }
            match mark {
                Mark::Invite if c.invite_ns == 0 => c.invite_ns = now_ns + 1,
                Mark::Bye if c.bye_ns == 0 => c.bye_ns = now_ns + 1,
                Mark::Register if c.register_ns == 0 => c.register_ns = now_ns + 1,
                _ => {}
            }
            if let Some(t) = retrans
                && !reliable
                && !no_retrans
            {
                c.rtx_step = i;
                c.rtx_count = 0;
                c.rtx_interval = Duration::from_millis(u64::from(t));
                c.rtx_msg.clear();
                c.rtx_msg.extend_from_slice(&out);
            }
        }
        let armed = !resend && c.rtx_step == i;
        let interval = c.rtx_interval;
        if armed {
            self.arm(ep, later(now, interval), true, ci);
        }
        if !resend && lost > 0.0 && self.rng.chance(lost) {
            self.counters.steps[usize::from(i)].lost += 1;
            ep.put_buf(out);
            return true;
        }
        if !resend {
            self.counters.steps[usize::from(i)].sent += 1;
        }
        match dest {
            Some(d) => ep.send(d, out),
            None => ep.put_buf(out),
        }
        true
    }

    // ---- receiving --------------------------------------------------------

    /// Every message received by a scenario endpoint.
    pub fn on_message(&mut self, ep: &mut Endpoint, now: Instant, from: Flow, data: &[u8]) {
        let msg = match sip::parse(data) {
            Ok(m) => m,
            Err(_) => {
                ep.counters.unparseable += 1;
                return;
            }
        };
        let Some(cid) = msg.call_id() else {
            self.out_of_call(ep);
            return;
        };
        let mut key = ep.hash(cid);
        let mut found = self.index.get(&key).copied();
        if found.is_none()
            && let Some(p) = memchr::memmem::rfind(cid, b"///")
        {
            // SIPp's rule: `anything///ID` belongs to the call ID.
            let k2 = ep.hash(&cid[p + 3..]);
            if let Some(&ci) = self.index.get(&k2) {
                key = k2;
                found = Some(ci);
            }
        }
        let ci = match found {
            Some(ci) => ci,
            None => {
                let now_ns = ep.to_ns(now);
                self.sweep_dead(now_ns);
                if self.dead.get(&key).is_some_and(|&exp| exp > now_ns) {
                    self.counters.dead_call += 1;
                    ep.counters.duplicates += 1;
                    return;
                }
                if self.prog.role != Role::Uas || ep.shutting_down {
                    self.out_of_call(ep);
                    return;
                }
                let ci = self.new_call(ep, now);
                let Some(c) = self.calls.get_mut(ci) else {
                    return;
                };
                c.call_id.extend_from_slice(cid);
                c.key = key;
                c.dest = Some(from);
                self.index.insert(key, ci);
                self.run(ep, now, ci);
                if self.calls.get(ci).is_none() {
                    return;
                }
                ci
            }
        };
        // A retransmission of the last matched message (UDP only).
        let h = if self.reliable() { 0 } else { ep.hash(data) };
        if !self.reliable() && !self.setup.no_retrans {
            let Some(c) = self.calls.get(ci) else { return };
            if c.last_step != NONE && h == c.last_hash {
                let (last, again) = if msg.is_request() {
                    (c.last_step, c.latest_resp_after)
                } else {
                    (c.last_step, c.first_req_after)
                };
                self.counters.steps[usize::from(last)].retransmissions += 1;
                ep.counters.duplicates += 1;
                // A retransmitted request gets the latest response sent
                // since (RFC 3261 §17.2.1); a retransmitted response only
                // its ACK again (§13.2.2.4): re-sending any other request
                // could ping-pong with the peer.
                let resend = again != NONE
                    && (msg.is_request()
                        || matches!(
                            &self.prog.steps[usize::from(again)].kind,
                            StepKind::Send(x) if x.method.as_ref().is_some_and(|m| m.1 == MethodKind::Ack)
                        ));
                if resend {
                    self.send_step(ep, now, ci, again, true);
                }
                return;
            }
        }
        self.track_response(ep, now, ci, &msg);
        self.dispatch(ep, now, ci, &msg, h);
    }

    fn out_of_call(&mut self, ep: &mut Endpoint) {
        self.counters.out_of_call += 1;
        ep.counters.unexpected += 1;
    }

    fn sweep_dead(&mut self, now_ns: u64) {
        while let Some(&(exp, k)) = self.dead_fifo.front() {
            if exp > now_ns {
                break;
            }
            self.dead_fifo.pop_front();
            if self.dead.get(&k) == Some(&exp) {
                self.dead.remove(&k);
            }
        }
    }

    /// What every (non-retransmitted) response tells the call, matched or
    /// not: the peer's tag, and the RFC 6076 moments of a call or a
    /// registration.
    fn track_response(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, msg: &Message<'_>) {
        let Some(code) = msg.status() else { return };
        let method = msg.cseq().map(|c| method_kind(&c.method));
        let now_ns = ep.to_ns(now);
        let shape = self.prog.shape;
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        c.last_code = code;
        c.peer_tag.clear();
        if let Some(tag) = msg.to().and_then(|t| t.tag) {
            c.peer_tag.extend_from_slice(tag);
        }
        let (intended, started) = (ep.to_instant(c.intended_ns), ep.to_instant(c.started_ns));
        if code >= 200
            && let Some(m) = method
        {
            ep.emit(Event::FinalResponse { method: m, code });
        }
        match (shape, method) {
            (Shape::Call, Some(MethodKind::Invite)) if c.invite_ns != 0 => {
                let invite_sent = ep.to_instant(c.invite_ns - 1);
                if !c.setup_done && (code >= 180 || (200..300).contains(&code)) && code < 300 {
                    c.setup_done = true;
                    ep.emit(Event::CallSetup {
                        intended,
                        invite_sent,
                        first_provisional_or_200: now,
                    });
                }
                if (200..300).contains(&code) && c.answered_ns == 0 {
                    c.answered_ns = now_ns + 1;
                    ep.emit(Event::CallAnswered {
                        intended,
                        invite_sent,
                        answered: now,
                    });
                }
                if code >= 200 && c.invite_final == 0 {
                    c.invite_final = code;
                }
            }
            (Shape::Call, Some(MethodKind::Bye))
                if code >= 200 && c.bye_ns != 0 && c.bye_done_ns == 0 =>
            {
                c.bye_done_ns = now_ns + 1;
            }
            (Shape::Register, Some(MethodKind::Register))
                if code >= 200
                    && code != 401
                    && code != 407
                    && !c.register_done
                    && c.register_ns != 0 =>
            {
                c.register_done = true;
                let outcome = if (200..300).contains(&code) {
                    Outcome::Success
                } else {
                    Outcome::Failed(code)
                };
                let _ = started;
                ep.emit(Event::RegisterDone {
                    intended,
                    started: ep.to_instant(c.register_ns - 1),
                    finished: now,
                    outcome,
                });
            }
            _ => {}
        }
    }

    fn matches(&self, i: usize, msg: &Message<'_>) -> bool {
        let StepKind::Recv(r) = &self.prog.steps[i].kind else {
            return false;
        };
        match &r.matcher {
            Matcher::Method(m) => msg.method().is_some_and(|x| x.as_bytes() == &m[..]),
            Matcher::MethodRe(re) => msg.method().is_some_and(|x| re.is_match(x.as_bytes())),
            Matcher::Code { code, methods } => {
                msg.status() == Some(*code) && self.method_ok(*methods, msg)
            }
            Matcher::CodeRe { re, methods } => {
                msg.status()
                    .is_some_and(|c| re.is_match(c.to_string().as_bytes()))
                    && self.method_ok(*methods, msg)
            }
        }
    }

    fn method_ok(&self, methods: u64, msg: &Message<'_>) -> bool {
        if methods == u64::MAX {
            return true;
        }
        let Some(cs) = msg.cseq() else { return false };
        let m = cs.method.as_bytes();
        self.prog
            .methods
            .iter()
            .enumerate()
            .any(|(i, x)| i < 64 && methods & (1 << i) != 0 && &x[..] == m)
    }

    fn is_optional(&self, i: usize) -> bool {
        matches!(&self.prog.steps[i].kind, StepKind::Recv(r) if r.optional)
    }

    /// Find the step a message matches, from where the call is (docs: "How
    /// recv matches"), and move the call.
    fn dispatch(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, msg: &Message<'_>, hash: u64) {
        let Some(c) = self.calls.get(ci) else { return };
        let pc = usize::from(c.pc);
        let waiting = c.state == CallState::WaitRecv;
        let n = self.prog.steps.len();
        let mut matched = None;
        if waiting {
            let mut i = pc;
            while i < n {
                if self.matches(i, msg) {
                    matched = Some(i);
                    break;
                }
                if self.is_optional(i) {
                    i += 1;
                    continue;
                }
                break;
            }
        }
        let mut late_optional = false;
        if matched.is_none() {
            // A late optional message right before where the call is.
            let mut j = pc;
            while j > 0 && self.is_optional(j - 1) {
                j -= 1;
                if self.matches(j, msg) {
                    matched = Some(j);
                    late_optional = true;
                    break;
                }
            }
        }
        if matched.is_none() {
            // An optional message of an earlier step arriving after the
            // call moved on (a 180 overtaken by its 200): counted on that
            // step (as a retransmission if the step matched already) and
            // otherwise ignored; the call stays where it is.
            for j in (0..pc.min(n)).rev() {
                if self.is_optional(j) && self.matches(j, msg) {
                    let seen = c.matched & (1u64 << (j % 64)) != 0;
                    let s = &mut self.counters.steps[j];
                    if seen {
                        s.retransmissions += 1;
                        ep.counters.duplicates += 1;
                    } else {
                        s.received += 1;
                    }
                    if let Some(c) = self.calls.get_mut(ci) {
                        c.matched |= 1u64 << (j % 64);
                    }
                    return;
                }
            }
        }
        let Some(m) = matched else {
            // A response to an INVITE whose ACK step went already: ACK again.
            if msg.status().is_some_and(|c| c >= 200)
                && msg
                    .cseq()
                    .is_some_and(|c| method_kind(&c.method) == MethodKind::Invite)
            {
                for j in (0..pc.min(n)).rev() {
                    if self.matches(j, msg)
                        && let Some(s) = self.prog.steps.get(j + 1)
                        && let StepKind::Send(x) = &s.kind
                        && x.method.as_ref().is_some_and(|m| m.1 == MethodKind::Ack)
                    {
                        self.counters.steps[j].retransmissions += 1;
                        ep.counters.duplicates += 1;
                        self.send_step(ep, now, ci, (j + 1) as u16, true);
                        return;
                    }
                }
            }
            self.unexpected(ep, now, ci, msg);
            return;
        };
        self.accept(ep, now, ci, m, msg, hash);
        if self.calls.get(ci).is_none() {
            return;
        }
        let StepKind::Recv(_) = &self.prog.steps[m].kind else {
            return;
        };
        let s = &self.prog.steps[m];
        let optional = self.is_optional(m);
        let takes_next = s.next.is_some();
        if late_optional || (optional && !takes_next) {
            // The call stays at the first step of its optional run; a
            // `jump` in the actions is ignored on a recv (as SIPp).
            if let Some(c) = self.calls.get_mut(ci) {
                c.jump = None;
            }
            if optional && takes_next && !late_optional {
                unreachable!();
            }
            return;
        }
        if let Some(c) = self.calls.get_mut(ci) {
            c.jump = None;
        }
        let next = self.next_after(ci, m as u16);
        if optional && next == m as u16 + 1 && takes_next {
            // An optional step whose `next` did not apply (test or chance)
            // leaves the call where it was.
            return;
        }
        self.disarm(ep, ci, false);
        self.goto(ci, next);
        self.run(ep, now, ci);
    }

    /// A message matched step `m`: count it, run its actions, keep what
    /// later steps read.
    fn accept(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        ci: u32,
        m: usize,
        msg: &Message<'_>,
        hash: u64,
    ) {
        self.common(ep, now, ci, m as u16);
        self.counters.steps[m].received += 1;
        if let Some(c) = self.calls.get_mut(ci) {
            c.matched |= 1u64 << (m % 64);
        }
        let StepKind::Recv(r) = &self.prog.steps[m].kind else {
            return;
        };
        let (rrs, auth) = (r.rrs, r.auth);
        self.keep_last(ci, msg);
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        c.last_hash = hash;
        c.last_step = m as u16;
        c.first_req_after = NONE;
        c.latest_resp_after = NONE;
        if let (true, Some(cs)) = (msg.is_request(), msg.cseq()) {
            c.cseq = c.cseq.max(cs.seq);
        }
        // Stop a pending retransmission (docs: Retransmissions).
        if c.rtx_step != NONE && m > usize::from(c.rtx_step) {
            let stop = match msg.status() {
                Some(code) => {
                    code >= 200
                        || msg
                            .cseq()
                            .is_some_and(|cs| method_kind(&cs.method) == MethodKind::Invite)
                }
                None => msg.method().is_some_and(|x| {
                    matches!(
                        x,
                        sip::Method::Ack
                            | sip::Method::Cancel
                            | sip::Method::Bye
                            | sip::Method::Prack
                    )
                }),
            };
            let provisional = msg.status().is_some_and(|c| c < 200);
            if stop {
                self.stop_rtx(ep, ci);
                if let Some(c) = self.calls.get_mut(ci)
                    && c.state == CallState::Blocked
                {
                    c.state = CallState::Running;
                }
            } else if provisional {
                let t2 = self.t2;
                if let Some(c) = self.calls.get_mut(ci) {
                    c.rtx_interval = t2;
                }
                self.arm(ep, later(now, t2), true, ci);
            }
        }
        if rrs {
            self.record_routes(ci, msg);
        }
        if auth && matches!(msg.status(), Some(401 | 407)) {
            let proxy = msg.status() == Some(407);
            let prefs = ep.role.client();
            let ch = crate::engine::uac::pick_challenge(prefs, msg, proxy)
                .or_else(|| crate::engine::uac::pick_challenge(prefs, msg, !proxy));
            if let (Some(ch), Some(c)) = (ch, self.calls.get_mut(ci)) {
                c.challenge.clear();
                c.challenge.extend_from_slice(ch);
                c.challenge_proxy = msg.proxy_authenticate().is_some();
                c.nonce_count = 0;
            }
        }
        self.actions(ep, now, ci, m as u16, Some(msg));
    }

    /// Keep the headers later steps read (`[last_X:]`), the To URI and the
    /// CSeq number.
    fn keep_last(&mut self, ci: u32, msg: &Message<'_>) {
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        c.lbuf.clear();
        // Several occurrences of a header are joined with ", ", as SIPp
        // writes them. One pass over the headers notes the wanted ones (on
        // the stack), then each name's values are copied in order; a
        // message with more wanted lines than that holds falls back to one
        // scan per name.
        let names = &self.prog.last_headers;
        let mut found: [(u16, &[u8]); 32] = [(0, &[]); 32];
        let mut n_found = 0;
        let mut overflow = false;
        for (n, v) in msg.all_headers() {
            if let Some(k) = names.iter().position(|h| header_is(n, h)) {
                if n_found == found.len() {
                    overflow = true;
                    break;
                }
                found[n_found] = (k as u16, v);
                n_found += 1;
            }
        }
        for (k, (name, span)) in names.iter().zip(c.last.iter_mut()).enumerate() {
            let start = c.lbuf.len();
            let mut push = |v: &[u8]| {
                if c.lbuf.len() > start {
                    c.lbuf.extend_from_slice(b", ");
                }
                c.lbuf.extend_from_slice(v);
            };
            if overflow {
                msg.all_headers()
                    .filter(|(n, _)| header_is(n, name))
                    .for_each(|(_, v)| push(v));
            } else {
                found[..n_found]
                    .iter()
                    .filter(|(kk, _)| usize::from(*kk) == k)
                    .for_each(|(_, v)| push(v));
            }
            *span = Span(start as u32, (c.lbuf.len() - start) as u32);
        }
        let start = c.lbuf.len();
        if let Some(to) = msg.header(b"To")
            && let (Some(a), Some(b)) = (memchr::memchr(b'<', to), memchr::memchr(b'>', to))
            && a < b
        {
            c.lbuf.extend_from_slice(&to[a + 1..b]);
        }
        c.last_ruri = Span(start as u32, (c.lbuf.len() - start) as u32);
        c.last_cseq = msg.cseq().map_or(0, |cs| cs.seq);
    }

    /// `rrs="true"`: the route set and remote target, once per call.
    fn record_routes(&mut self, ci: u32, msg: &Message<'_>) {
        let Some(c) = self.calls.get_mut(ci) else {
            return;
        };
        if c.rrs_done {
            return;
        }
        c.rrs_done = true;
        let mut rr: Vec<&[u8]> = msg.record_routes().map(|r| r.raw).collect();
        if msg.status().is_some() {
            rr.reverse();
        }
        let contact = msg.header(b"Contact").unwrap_or(b"").trim_ascii();
        let contact_uri = match (memchr::memchr(b'<', contact), memchr::memchr(b'>', contact)) {
            (Some(a), Some(b)) if a < b => &contact[a + 1..b],
            _ => contact,
        };
        c.routes.clear();
        c.target.clear();
        let strict = rr.first().is_some_and(|r| !contains_ci(r, b";lr"));
        if strict {
            let first = rr.remove(0);
            let uri = match (memchr::memchr(b'<', first), memchr::memchr(b'>', first)) {
                (Some(a), Some(b)) if a < b => &first[a + 1..b],
                _ => first,
            };
            c.target.extend_from_slice(uri);
            rr.push(contact);
        } else {
            c.target.extend_from_slice(contact_uri);
        }
        for (i, r) in rr.iter().enumerate() {
            if i > 0 {
                c.routes.extend_from_slice(b", ");
            }
            c.routes.extend_from_slice(r);
        }
    }

    /// A message that matched no step.
    fn unexpected(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, msg: &Message<'_>) {
        let Some(c) = self.calls.get(ci) else { return };
        let at = usize::from(c.pc).min(self.prog.steps.len().saturating_sub(1));
        self.counters.steps[at].unexpected += 1;

        ep.counters.unexpected += 1;
        self.keep_last(ci, msg);
        if matches!(msg.method(), Some(sip::Method::Bye | sip::Method::Cancel)) {
            // SIPp answers an unexpected BYE or CANCEL with 200.
            self.answer_200(ep, ci);
            self.counters.auto_answered += 1;
            self.end(ep, now, ci, Some(FailReason::UnexpectedMessage));
            return;
        }
        self.fail(ep, now, ci, FailReason::UnexpectedMessage);
    }

    // ---- ending -----------------------------------------------------------

    /// Fail the call and, as a client, abort it as SIPp does: ACK a final
    /// response to an open INVITE (and BYE after a 2xx), CANCEL one that
    /// only had provisional responses, BYE an established call.
    pub(super) fn fail(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, reason: FailReason) {
        if self.prog.role == Role::Uac
            && let Some(c) = self.calls.get(ci)
        {
            let (open, code, established) = (c.invite_open, c.last_code, c.answered_ns != 0);
            if open {
                if code >= 300 {
                    self.abort_request(ep, ci, b"ACK");
                } else if (200..300).contains(&code) {
                    self.abort_request(ep, ci, b"ACK");
                    self.abort_request(ep, ci, b"BYE");
                } else if code >= 100 {
                    self.abort_request(ep, ci, b"CANCEL");
                }
            } else if established && c.bye_ns == 0 {
                self.abort_request(ep, ci, b"BYE");
            }
        }
        self.end(ep, now, ci, Some(reason));
    }

    /// SIPp's default ACK, BYE and CANCEL, from the last message kept.
    fn abort_request(&mut self, ep: &mut Endpoint, ci: u32, method: &[u8]) {
        let Some(c) = self.calls.get(ci) else { return };
        let Some(dest) = c.dest else { return };
        let mut out = ep.take_buf();
        out.extend_from_slice(method);
        out.push(b' ');
        let ruri = if c.target.is_empty() {
            c.lget(c.last_ruri)
        } else {
            &c.target[..]
        };
        out.extend_from_slice(ruri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        if method == b"BYE" {
            out.extend_from_slice(b"Via: SIP/2.0/");
            out.extend_from_slice(self.consts.transport);
            out.push(b' ');
            out.extend_from_slice(&self.consts.local_ip);
            out.push(b':');
            out.extend_from_slice(self.consts.local_port.to_string().as_bytes());
            out.extend_from_slice(b";branch=z9hG4bK-");
            out.extend_from_slice(&hex16(ep.new_id()));
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"Via: ");
            out.extend_from_slice(c.lget(c.last[0]));
            out.extend_from_slice(b"\r\n");
        }
        for (name, k) in [(&b"From: "[..], 1usize), (b"To: ", 2)] {
            out.extend_from_slice(name);
            out.extend_from_slice(c.lget(c.last[k]));
            out.extend_from_slice(b"\r\n");
        }
        if !c.routes.is_empty() {
            out.extend_from_slice(b"Route: ");
            out.extend_from_slice(&c.routes);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Call-ID: ");
        out.extend_from_slice(&c.call_id);
        out.extend_from_slice(b"\r\nCSeq: ");
        let seq = if method == b"BYE" {
            c.cseq + 1
        } else {
            c.last_cseq
        };
        out.extend_from_slice(seq.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(method);
        out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        ep.send(dest, out);
    }

    /// 200 to an unexpected BYE or CANCEL.
    fn answer_200(&mut self, ep: &mut Endpoint, ci: u32) {
        let Some(c) = self.calls.get(ci) else { return };
        let Some(dest) = c.dest else { return };
        let mut out = ep.take_buf();
        out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
        for (name, k) in [
            (&b"Via: "[..], 0usize),
            (b"From: ", 1),
            (b"To: ", 2),
            (b"Call-ID: ", 3),
            (b"CSeq: ", 4),
        ] {
            out.extend_from_slice(name);
            out.extend_from_slice(c.lget(c.last[k]));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        ep.send(dest, out);
        ep.count_sent_response(200);
    }

    /// The call is over: count it, report its RFC 6076 outcome, free it
    /// and remember its Call-ID for a while.
    fn end(&mut self, ep: &mut Endpoint, now: Instant, ci: u32, failed: Option<FailReason>) {
        let Some(c) = self.calls.get(ci) else { return };
        match failed {
            None => self.counters.succeeded += 1,
            Some(r) => self.counters.failed[r as usize] += 1,
        }
        let at = |ns: u64| (ns != 0).then(|| ep.to_instant(ns - 1));
        let (intended, started) = (ep.to_instant(c.intended_ns), ep.to_instant(c.started_ns));
        let timeout_like = matches!(
            failed,
            Some(FailReason::RecvTimeout | FailReason::MaxUdpRetrans | FailReason::Abandoned)
        );
        match self.prog.shape {
            Shape::Call if c.invite_ns != 0 => {
                let outcome = match (c.invite_final, failed) {
                    (200..=299, None) => Outcome::Success,
                    (200..=299, Some(_)) if timeout_like => Outcome::Timeout,
                    (200..=299, Some(FailReason::CannotSend)) => Outcome::TransportError,
                    (200..=299, Some(_)) => Outcome::Failed(0),
                    (code @ 300.., _) => Outcome::Failed(code),
                    (_, Some(FailReason::CannotSend)) => Outcome::TransportError,
                    (_, _) if timeout_like => Outcome::Timeout,
                    (_, _) => Outcome::Failed(0),
                };
                ep.emit(Event::CallDone {
                    intended,
                    started: at(c.invite_ns).unwrap_or(started),
                    outcome,
                    bye_sent: at(c.bye_ns),
                    bye_done: at(c.bye_done_ns),
                    answered: at(c.answered_ns),
                });
            }
            Shape::Register if c.register_ns != 0 && !c.register_done => {
                let outcome = match failed {
                    None => Outcome::Success,
                    Some(FailReason::CannotSend) => Outcome::TransportError,
                    Some(_) if timeout_like => Outcome::Timeout,
                    Some(_) => Outcome::Failed(0),
                };
                ep.emit(Event::RegisterDone {
                    intended,
                    started: at(c.register_ns).unwrap_or(started),
                    finished: now,
                    outcome,
                });
            }
            _ => {}
        }
        let (key, timers, dest) = (c.key, c.timers, c.dest);
        for t in timers {
            ep.wheel.cancel(t);
        }
        if self.index.get(&key) == Some(&ci) {
            self.index.remove(&key);
        }
        let exp = ep.to_ns(now) + DEAD_CALL_WAIT.as_nanos() as u64;
        self.dead.insert(key, exp);
        self.dead_fifo.push_back((exp, key));
        if let Some(d) = dest
            && d.conn.is_key()
            && self.prog.role == Role::Uac
            && ep
                .role
                .client()
                .is_some_and(|c| c.connection == crate::flow::ConnectionMode::Call)
        {
            ep.released.push_back(d);
        }
        self.calls.remove(ci);
    }

    /// Stopping: calls in their timewait succeed, the others are abandoned.
    pub fn close(&mut self, ep: &mut Endpoint, now: Instant) {
        let live: Vec<u32> = self.calls.live_indices().collect();
        for ci in live {
            let tw = self
                .calls
                .get(ci)
                .is_some_and(|c| c.state == CallState::TimeWait);
            let failed = self.calls.get(ci).and_then(|c| c.failed);
            let reason = if tw {
                failed
            } else {
                Some(FailReason::Abandoned)
            };
            self.end(ep, now, ci, reason);
        }
    }

    /// The drain is over: every live call fails as abandoned.
    pub fn abandon(&mut self, ep: &mut Endpoint, now: Instant) {
        let live: Vec<u32> = self.calls.live_indices().collect();
        for ci in live {
            self.end(ep, now, ci, Some(FailReason::Abandoned));
        }
    }

    /// The transport could not deliver to `dest`: its calls fail.
    pub fn transport_error(&mut self, ep: &mut Endpoint, now: Instant, dest: Flow) {
        let doomed: Vec<u32> = self
            .calls
            .live_indices()
            .filter(|&ci| {
                self.calls.get(ci).and_then(|c| c.dest).is_some_and(|d| {
                    d.peer == dest.peer
                        && d.transport == dest.transport
                        && (dest.conn.is_any() || d.conn == dest.conn)
                })
            })
            .collect();
        for ci in doomed {
            self.end(ep, now, ci, Some(FailReason::CannotSend));
        }
    }

    // ---- templates ----------------------------------------------------------

    /// Render template `t` of step `step` for call `ci` into `out`:
    /// literals copied, slots written, `[len]` patched, `[authentication]`
    /// computed over the final message.
    pub(super) fn render(
        &mut self,
        ep: &mut Endpoint,
        ci: u32,
        t: &MsgTemplate,
        step: u16,
        out: &mut Vec<u8>,
    ) -> Result<(), FailReason> {
        let base = out.len();
        let mut skip_ws = false;
        let mut len_at: Option<(usize, i32)> = None;
        let mut auth_at: Option<(usize, AuthSrc)> = None;
        let Some(c) = self.calls.get(ci) else {
            return Ok(());
        };
        for p in &t.parts {
            match p {
                Part::Lit(l) => {
                    let l = after_empty_line_start(l, std::mem::take(&mut skip_ws));
                    out.extend_from_slice(l);
                }
                Part::Slot {
                    slot,
                    offset,
                    line_start,
                } => {
                    let before = out.len();
                    let off = i64::from(*offset);
                    match slot {
                        Slot::Len => {
                            len_at = Some((out.len(), *offset));
                            out.extend_from_slice(b"     ");
                        }
                        Slot::Auth(i) => auth_at = Some((out.len(), AuthSrc::Spec(*i))),
                        Slot::Field { file, n } => {
                            let start = out.len();
                            self.write_field(c, *file, *n, out);
                            // A users-file field in SIPp's keyword form acts
                            // as that keyword, with its own credentials.
                            if out[start..].starts_with(b"[authentication") {
                                let inner = String::from_utf8_lossy(
                                    out[start + 1..]
                                        .strip_suffix(b"]")
                                        .unwrap_or(&out[start + 1..]),
                                )
                                .into_owned();
                                out.truncate(start);
                                let kw = super::template::parse_keyword(&inner).unwrap_or_default();
                                let get = |k: &str| {
                                    kw.attrs
                                        .iter()
                                        .find(|(n, _)| n == k)
                                        .map(|(_, v)| v.as_bytes().to_vec())
                                };
                                auth_at = Some((
                                    start,
                                    AuthSrc::Inline(get("username"), get("password")),
                                ));
                                skip_ws = false;
                                continue;
                            }
                        }
                        _ => self.write_slot(c, slot, off, step, out),
                    }
                    skip_ws = *line_start
                        && out.len() == before
                        && !matches!(slot, Slot::Auth(_) | Slot::Len);
                }
            }
        }
        if let Some((pos, src)) = auth_at {
            self.auth_header(ep, ci, out, base, pos, src, step)?;
            if let Some((lp, o)) = &mut len_at
                && *lp >= pos
            {
                // The header went in before `[len]`.
                let _ = o;
                *lp += self.scratch2.len();
            }
        }
        if let Some((at, offset)) = len_at {
            let body = self
                .header_end
                .find(&out[base..])
                .map_or(0, |p| out.len() - (base + p + 4));
            let mut d = [0u8; 20];
            let v =
                crate::engine::util::dec((body as i64 + i64::from(offset)).max(0) as u64, &mut d);
            let field = &mut out[at..at + 5];
            if v.len() <= 5 {
                field[5 - v.len()..].copy_from_slice(v);
            } else {
                let v = v.to_vec();
                out.splice(at..at + 5, v);
            }
        }
        Ok(())
    }

    fn write_field(&self, c: &ScenCall, file: u8, n: u16, out: &mut Vec<u8>) {
        if file == 0 {
            self.users.write_field(c.user as usize, usize::from(n), out);
        } else if let Some(f) = self.setup.inf.get(usize::from(file) - 1)
            && !f.is_empty()
        {
            let line = ((c.call_number - 1) % f.len() as u64) as usize;
            f.write_field(line, usize::from(n), out);
        }
    }

    fn write_slot(&self, c: &ScenCall, slot: &Slot, off: i64, step: u16, out: &mut Vec<u8>) {
        // Integers are formatted on the stack: no allocation per message.
        let num = |out: &mut Vec<u8>, v: i64| {
            if v < 0 {
                out.push(b'-');
            }
            let mut d = [0u8; 20];
            out.extend_from_slice(crate::engine::util::dec(v.unsigned_abs(), &mut d));
        };
        match slot {
            Slot::CallId => out.extend_from_slice(&c.call_id),
            Slot::CallNumber => num(out, c.call_number as i64 + off),
            Slot::Cseq => num(out, i64::from(c.cseq) + off),
            Slot::Branch => {
                out.extend_from_slice(b"z9hG4bK-");
                num(out, i64::from(self.consts.pid));
                out.push(b'-');
                num(out, c.call_number as i64);
                out.push(b'-');
                num(out, i64::from(step) + off);
            }
            Slot::PeerTagParam => {
                if !c.peer_tag.is_empty() {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(&c.peer_tag);
                }
            }
            Slot::LastHeader(i) => {
                if let Some((k, spelled)) = self.prog.last_spellings.get(usize::from(*i)) {
                    let v = c.lget(c.last[usize::from(*k)]);
                    if !v.is_empty() {
                        out.extend_from_slice(spelled);
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(v);
                    }
                }
            }
            Slot::LastRequestUri => out.extend_from_slice(c.lget(c.last_ruri)),
            Slot::LastCseqNumber => num(out, i64::from(c.last_cseq) + off),
            Slot::Routes => {
                if !c.routes.is_empty() {
                    out.extend_from_slice(b"Route: ");
                    out.extend_from_slice(&c.routes);
                }
            }
            Slot::NextUrl => {
                if c.target.is_empty() {
                    out.extend_from_slice(c.lget(c.last_ruri));
                } else {
                    out.extend_from_slice(&c.target);
                }
            }
            Slot::Var(v) => {
                if let Some(v) = c.vars.get(usize::from(*v)) {
                    v.write(out);
                }
            }
            Slot::AutoMediaPort => num(
                out,
                i64::from(self.consts.media_port)
                    + 4 * ((c.call_number.saturating_sub(1) % 2500) as i64)
                    + off,
            ),
            Slot::RemoteIp => match (&self.consts.remote_ip, c.dest) {
                (Some(ip), _) => out.extend_from_slice(ip),
                (None, Some(d)) => match d.peer {
                    std::net::SocketAddr::V4(v) => {
                        out.extend_from_slice(v.ip().to_string().as_bytes())
                    }
                    std::net::SocketAddr::V6(v) => {
                        out.extend_from_slice(format!("[{}]", v.ip()).as_bytes())
                    }
                },
                (None, None) => {}
            },
            Slot::RemotePort => match (self.consts.remote_port, c.dest) {
                (Some(p), _) => num(out, i64::from(p) + off),
                (None, Some(d)) => num(out, i64::from(d.peer.port()) + off),
                (None, None) => {}
            },
            Slot::LocalIp => out.extend_from_slice(&self.consts.local_ip),
            Slot::LocalIpType | Slot::MediaIpType => {
                out.extend_from_slice(self.consts.local_ip_type)
            }
            Slot::LocalPort => num(out, i64::from(self.consts.local_port) + off),
            Slot::Transport => out.extend_from_slice(self.consts.transport),
            Slot::MediaIp => out.extend_from_slice(&self.consts.media_ip),
            Slot::MediaPort => num(out, i64::from(self.consts.media_port) + off),
            Slot::Service => out.extend_from_slice(&self.consts.service),
            Slot::Pid => num(out, i64::from(self.consts.pid)),
            Slot::Key(k) => {
                if let Some(v) = self.consts.keys.get(usize::from(*k)) {
                    out.extend_from_slice(v);
                }
            }
            Slot::Len | Slot::Auth(_) | Slot::Field { .. } => {}
        }
    }

    /// Insert the `Authorization`/`Proxy-Authorization` line answering the
    /// kept challenge at `pos` (sipstorm's digest code, `src/auth`).
    #[allow(clippy::too_many_arguments)]
    fn auth_header(
        &mut self,
        ep: &mut Endpoint,
        ci: u32,
        out: &mut Vec<u8>,
        base: usize,
        pos: usize,
        src: AuthSrc,
        step: u16,
    ) -> Result<(), FailReason> {
        let prog = self.prog.clone();
        let Some(c) = self.calls.get(ci) else {
            return Ok(());
        };
        if c.challenge.is_empty() {
            return Err(FailReason::AuthWithoutChallenge);
        }
        let call_user = c.user as usize;
        // Username and password: the keyword's, else the user's (its
        // users-file keyword form included), else `-s` and "password".
        let mut user = std::mem::take(&mut self.scratch);
        let mut pass = Vec::new();
        user.clear();
        let (spec, inline) = match src {
            AuthSrc::Spec(i) => (prog.auths.get(usize::from(i)), (None, None)),
            AuthSrc::Inline(u, p) => (None, (u, p)),
        };
        let client = ep.role.client().is_some();
        let mut tmp = Vec::new();
        match (spec.and_then(|s| s.user.as_ref()), inline.0) {
            (_, Some(u)) => user.extend_from_slice(&u),
            (Some(t), None) => {
                let _ = self.render(ep, ci, t, step, &mut tmp);
                user.extend_from_slice(&tmp);
            }
            (None, None) if client => self.users.write_auth_name(call_user, &mut user),
            (None, None) => user.extend_from_slice(&self.consts.service),
        }
        tmp.clear();
        match (spec.and_then(|s| s.password.as_ref()), inline.1) {
            (_, Some(p)) => pass.extend_from_slice(&p),
            (Some(t), None) => {
                let _ = self.render(ep, ci, t, step, &mut tmp);
                pass.extend_from_slice(&tmp);
            }
            (None, None) if client => self.users.write_password(call_user, &mut pass),
            (None, None) => pass.extend_from_slice(b"password"),
        }
        let Some(c) = self.calls.get_mut(ci) else {
            return Ok(());
        };
        c.nonce_count += 1;
        let nc = c.nonce_count;
        let proxy = c.challenge_proxy;
        let cnonce = hex16(ep.new_id());
        let msg = &out[base..];
        let line_end = memchr::memmem::find(msg, b"\r\n").unwrap_or(msg.len());
        let first = &msg[..line_end];
        let mut it = first.split(|&b| b == b' ');
        let method = it.next().unwrap_or(b"");
        let uri = it.next().unwrap_or(b"");
        let body_start = self.header_end.find(msg).map_or(msg.len(), |p| p + 4);
        let body = &msg[body_start..];
        let mut hdr = std::mem::take(&mut self.scratch2);
        hdr.clear();
        hdr.extend_from_slice(if proxy {
            b"Proxy-Authorization: "
        } else {
            b"Authorization: "
        });
        let ok = match crate::auth::parse_challenge(&c.challenge) {
            Ok(ch) => {
                let ha1 = crate::auth::Ha1::from_challenge(&ch, &user, &pass);
                crate::auth::write_authorization(
                    &mut hdr, &ch, &user, &ha1, method, uri, body, nc, &cnonce,
                )
                .is_ok()
            }
            Err(_) => false,
        };
        self.scratch = user;
        if !ok {
            self.scratch2 = hdr;
            return Err(FailReason::AuthWithoutChallenge);
        }
        out.splice(pos..pos, hdr.iter().copied());
        self.scratch2 = hdr;
        Ok(())
    }
}

/// Where `[authentication]` takes its credentials: the keyword's own
/// attributes (index into `Program::auths`), or a users-file field in
/// SIPp's keyword form.
#[derive(Debug)]
enum AuthSrc {
    Spec(u16),
    Inline(Option<Vec<u8>>, Option<Vec<u8>>),
}

/// Whether header name `n` (as received) is `lower` (lower case, long
/// form), compact forms included.
fn header_is(n: &[u8], lower: &[u8]) -> bool {
    if n.eq_ignore_ascii_case(lower) {
        return true;
    }
    if n.len() != 1 {
        return false;
    }
    let long: &[u8] = match n[0].to_ascii_lowercase() {
        b'v' => b"via",
        b'f' => b"from",
        b't' => b"to",
        b'i' => b"call-id",
        b'm' => b"contact",
        b'l' => b"content-length",
        b'c' => b"content-type",
        b'e' => b"content-encoding",
        b's' => b"subject",
        b'k' => b"supported",
        _ => return false,
    };
    long == lower
}

fn contains_ci(h: &[u8], needle: &[u8]) -> bool {
    h.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
