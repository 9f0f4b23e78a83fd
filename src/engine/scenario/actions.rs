//! The actions of a step (`<action>`), run in order when a `recv` matched
//! (with the message as input), or a `nop` or `send` ran. A failed
//! `check_it` marks the call failed (it fails when it ends, as SIPp does)
//! and skips the actions after it.

use std::time::Instant;

use super::FailReason;
use super::call::{ScenEngine, Val};
use super::program::{Action, Check, Compare, JumpTo, Operand, SearchIn, StrOperand};
use crate::engine::endpoint::Endpoint;
use crate::engine::event::Event;
use crate::sip::Message;

/// The text after the `occurrence`-th place `name` occurs in the headers,
/// up to the end of that line.
fn header_text<'m>(
    msg: &'m [u8],
    name: &[u8],
    case_indep: bool,
    occurrence: u16,
    start_line: bool,
) -> Option<&'m [u8]> {
    let head_end = memchr::memmem::find(msg, b"\r\n\r\n").unwrap_or(msg.len());
    let head = &msg[..head_end];
    let mut seen = 0u16;
    let mut i = 0;
    while i + name.len() <= head.len() {
        let w = &head[i..i + name.len()];
        let eq = if case_indep {
            w.eq_ignore_ascii_case(name)
        } else {
            w == name
        };
        if eq && (!start_line || i == 0 || head[i - 1] == b'\n') {
            seen += 1;
            if seen == occurrence {
                let rest = &head[i + name.len()..];
                let end = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                return Some(&rest[..end]);
            }
        }
        i += 1;
    }
    None
}

impl ScenEngine {
    fn operand(&self, ci: u32, o: Operand) -> f64 {
        match o {
            Operand::Const(v) => v,
            Operand::Var(v) => self
                .calls
                .get(ci)
                .and_then(|c| c.vars.get(usize::from(v)))
                .map_or(0.0, Val::num),
        }
    }

    fn set(&mut self, ci: u32, v: u16, val: Val) {
        if let Some(slot) = self
            .calls
            .get_mut(ci)
            .and_then(|c| c.vars.get_mut(usize::from(v)))
        {
            *slot = val;
        }
    }

    fn check_failed(&mut self, ci: u32, reason: FailReason) {
        if let Some(c) = self.calls.get_mut(ci)
            && c.failed.is_none()
        {
            c.failed = Some(reason);
        }
    }

    /// Run the actions of step `i`; `msg` is the message a `recv` matched.
    pub(super) fn actions(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        ci: u32,
        i: u16,
        msg: Option<&Message<'_>>,
    ) {
        let prog = self.prog.clone();
        let step = &prog.steps[usize::from(i)];
        let _ = now;
        for a in step.actions.iter() {
            if self.calls.get(ci).is_none() {
                return;
            }
            match a {
                Action::Ereg {
                    re,
                    search,
                    assign,
                    check,
                } => {
                    let mut text = std::mem::take(&mut self.scratch2);
                    text.clear();
                    let mut hdr_missing = false;
                    match (search, msg) {
                        (SearchIn::Msg, Some(m)) => text.extend_from_slice(m.as_bytes()),
                        (SearchIn::Body, Some(m)) => text.extend_from_slice(m.body()),
                        (
                            SearchIn::Hdr {
                                name,
                                case_indep,
                                occurrence,
                                start_line,
                            },
                            Some(m),
                        ) => match header_text(
                            m.as_bytes(),
                            name,
                            *case_indep,
                            *occurrence,
                            *start_line,
                        ) {
                            Some(t) => text.extend_from_slice(t),
                            None => hdr_missing = true,
                        },
                        (SearchIn::Var(v), _) => {
                            if let Some(Val::Str(s)) =
                                self.calls.get(ci).and_then(|c| c.vars.get(usize::from(*v)))
                            {
                                text.extend_from_slice(s);
                            }
                        }
                        (_, None) => hdr_missing = matches!(search, SearchIn::Hdr { .. }),
                    }
                    let caps = if hdr_missing {
                        None
                    } else {
                        re.captures(&text)
                    };
                    let found = caps.is_some();
                    if let Some(caps) = caps {
                        for (k, v) in assign.iter().enumerate() {
                            if let Some(g) = caps.get(k) {
                                self.set(ci, *v, Val::Str(g.as_bytes().to_vec()));
                            } else {
                                self.set(ci, *v, Val::Str(Vec::new()));
                            }
                        }
                    }
                    self.scratch2 = text;
                    let bad = match (check, found) {
                        (Check::It, false) if hdr_missing => Some(FailReason::RegexpHdrNotFound),
                        (Check::It, false) => Some(FailReason::RegexpDoesntMatch),
                        (Check::Inverse, true) => Some(FailReason::RegexpShouldntMatch),
                        _ => None,
                    };
                    if let Some(r) = bad {
                        self.check_failed(ci, r);
                        return;
                    }
                }
                Action::Log(t) => {
                    if self.setup.log {
                        let mut out = Vec::new();
                        if self.render(ep, ci, t, i, &mut out).is_ok() {
                            ep.emit(Event::ScenarioLog(out.into()));
                        }
                    }
                }
                Action::Assign(to, o) => {
                    let v = self.operand(ci, *o);
                    self.set(ci, *to, Val::Num(v));
                }
                Action::Add(to, o) => {
                    let v = self.operand(ci, Operand::Var(*to)) + self.operand(ci, *o);
                    self.set(ci, *to, Val::Num(v));
                }
                Action::Multiply(to, o) => {
                    let v = self.operand(ci, Operand::Var(*to)) * self.operand(ci, *o);
                    self.set(ci, *to, Val::Num(v));
                }
                Action::Divide(to, o) => {
                    // Dividing by zero leaves the variable as it was (SIPp
                    // warns and does the same).
                    let d = self.operand(ci, *o);
                    if d != 0.0 {
                        let v = self.operand(ci, Operand::Var(*to)) / d;
                        self.set(ci, *to, Val::Num(v));
                    }
                }
                Action::Test {
                    to,
                    left,
                    op,
                    right,
                    check,
                } => {
                    let (l, r) = (
                        self.operand(ci, Operand::Var(*left)),
                        self.operand(ci, *right),
                    );
                    let res = match op {
                        Compare::Equal => l == r,
                        Compare::NotEqual => l != r,
                        Compare::Greater => l > r,
                        Compare::Less => l < r,
                        Compare::GreaterEqual => l >= r,
                        Compare::LessEqual => l <= r,
                    };
                    if let Some(to) = to {
                        self.set(ci, *to, Val::Bool(res));
                    }
                    let bad = match (check, res) {
                        (Check::It, false) => Some(FailReason::TestDoesntMatch),
                        (Check::Inverse, true) => Some(FailReason::TestShouldntMatch),
                        _ => None,
                    };
                    if let Some(r) = bad {
                        self.check_failed(ci, r);
                        return;
                    }
                }
                Action::Strcmp {
                    to,
                    left,
                    right,
                    check,
                } => {
                    let Some(c) = self.calls.get(ci) else { return };
                    let text = |v: &Val| -> Vec<u8> {
                        let mut o = Vec::new();
                        v.write(&mut o);
                        o
                    };
                    let l = c.vars.get(usize::from(*left)).map(text).unwrap_or_default();
                    let r = match right {
                        StrOperand::Lit(b) => b.to_vec(),
                        StrOperand::Var(v) => {
                            c.vars.get(usize::from(*v)).map(text).unwrap_or_default()
                        }
                    };
                    let ord = l.cmp(&r) as i8;
                    if let Some(to) = to {
                        self.set(ci, *to, Val::Num(f64::from(ord)));
                    }
                    let bad = match (check, ord == 0) {
                        (Check::It, false) => Some(FailReason::StrcmpDoesntMatch),
                        (Check::Inverse, true) => Some(FailReason::StrcmpShouldntMatch),
                        _ => None,
                    };
                    if let Some(r) = bad {
                        self.check_failed(ci, r);
                        return;
                    }
                }
                Action::ToDouble(to, from) => {
                    let parsed = match self
                        .calls
                        .get(ci)
                        .and_then(|c| c.vars.get(usize::from(*from)))
                    {
                        Some(Val::Str(s)) => std::str::from_utf8(s)
                            .ok()
                            .and_then(|t| t.trim().parse::<f64>().ok()),
                        Some(Val::Num(v)) => Some(*v),
                        _ => None,
                    };
                    if let Some(v) = parsed {
                        self.set(ci, *to, Val::Num(v));
                    }
                }
                Action::SetDest { host, port } => {
                    let (mut h, mut p) = (Vec::new(), Vec::new());
                    let ok = self.render(ep, ci, host, i, &mut h).is_ok()
                        && self.render(ep, ci, port, i, &mut p).is_ok();
                    let h = String::from_utf8_lossy(&h).into_owned();
                    let h = h
                        .trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    let addr = std::str::from_utf8(&p)
                        .ok()
                        .and_then(|p| p.trim().parse::<u16>().ok())
                        .and_then(|port| h.parse::<std::net::IpAddr>().ok().map(|ip| (ip, port)));
                    match (ok, addr) {
                        (true, Some((ip, port))) => {
                            let t = self.transport;
                            if let Some(c) = self.calls.get_mut(ci) {
                                c.dest = Some(crate::flow::Flow::new(
                                    t,
                                    std::net::SocketAddr::new(ip, port),
                                    crate::flow::ConnId::ANY,
                                ));
                            }
                        }
                        // The engine resolves no names: a host that is not
                        // an IP address cannot be sent to.
                        _ => {
                            self.check_failed(ci, FailReason::CannotSend);
                            return;
                        }
                    }
                }
                Action::Jump(j) => {
                    let to = match j {
                        JumpTo::Index(t) => *t,
                        JumpTo::Var(v) => {
                            let n = self.operand(ci, Operand::Var(*v));
                            if n.is_finite() && n >= 0.0 {
                                (n as usize).min(prog.steps.len()) as u16
                            } else {
                                prog.steps.len() as u16
                            }
                        }
                    };
                    if let Some(c) = self.calls.get_mut(ci) {
                        c.jump = Some(to);
                    }
                }
            }
        }
    }
}
