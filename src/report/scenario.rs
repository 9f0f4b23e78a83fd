//! `scenario_file.*`: what a run of a SIPp XML scenario adds to the report
//! (SIPp's per-message counters of each step, calls by outcome, the
//! scenario's own counters and the names of its response-time timers), and
//! how the summary and the HTML page show it (as SIPp's screen does).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::ScenarioStats;

/// What the run knows about its scenario that the counters do not: names,
/// lines and kinds (filled by the run layer from the compiled program).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioFileInfo {
    /// `<scenario name=...>`.
    pub name: String,
    /// The file as given.
    pub file: String,
    /// `uac` or `uas`.
    pub role: String,
    /// `call`, `register` or `none`: which RFC 6076 view the flow has.
    pub rfc6076: String,
    pub steps: Vec<StepInfo>,
    /// The `rtd` timer names, by id (their latencies are `rtd1`, `rtd2`, …).
    pub rtds: Vec<String>,
    /// The `counter` names, by id.
    pub counters: Vec<String>,
    /// Names of the failure reasons, in the order of the call counters.
    pub fail_reasons: Vec<String>,
}

/// One step as SIPp's screen shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepInfo {
    pub index: usize,
    pub line: u32,
    /// `send`, `recv`, `pause`, `nop`, `timewait`.
    pub kind: String,
    pub label: String,
    pub optional: bool,
    /// A send with `retrans` (its Timeout column is shown).
    pub retrans: bool,
    pub start_rtd: Option<String>,
    pub rtd: Option<String>,
}

/// `scenario_file.calls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioCalls {
    /// Calls started (a client scenario) or taken in (a server one).
    pub attempted: u64,
    /// Calls that reached the end of the scenario without failing.
    pub succeeded: u64,
    /// Calls that failed, every reason.
    pub failed: u64,
    /// Failed calls by reason (SIPp's `Failed…` columns); reasons that
    /// did not occur are left out.
    pub failed_by: BTreeMap<String, u64>,
}

/// `scenario_file.rtds[]`: a response-time timer and the latency metric
/// (`latency_ms.<metric>` and its `_co` twin) that holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RtdReport {
    pub name: String,
    pub metric: String,
}

/// `scenario_file.steps[]`: SIPp's per-message counters of one step. A
/// counter is absent where SIPp's screen has no column for that kind of
/// step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub index: usize,
    pub line: u32,
    pub kind: String,
    pub label: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_rtd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmissions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexpected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
}

/// `scenario_file.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioFileReport {
    pub name: String,
    pub file: String,
    /// `uac` or `uas`.
    pub role: String,
    /// `call`, `register` or `none`: whether `totals` and `rfc6076` come
    /// from a recognisable call or registration.
    pub rfc6076: String,
    pub calls: ScenarioCalls,
    /// Messages whose Call-ID matched no call (SIPp's `OutOfCallMsgs`).
    pub out_of_call: u64,
    /// Messages of calls ended less than 33 s before (`DeadCallMsgs`).
    pub dead_call_msgs: u64,
    /// Unexpected BYE or CANCEL answered 200 (`AutoAnswered`).
    pub auto_answered: u64,
    /// `counter="NAME"` values.
    pub counters: BTreeMap<String, u64>,
    pub rtds: Vec<RtdReport>,
    pub steps: Vec<StepReport>,
}

impl ScenarioFileReport {
    /// The section of a run from its static info and summed counters.
    pub fn build(info: &ScenarioFileInfo, s: Option<&ScenarioStats>) -> ScenarioFileReport {
        let empty = ScenarioStats::default();
        let s = s.unwrap_or(&empty);
        let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        let failed_by: BTreeMap<String, u64> = info
            .fail_reasons
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), at(&s.calls, 2 + i)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let steps = info
            .steps
            .iter()
            .map(|st| {
                let c = s.steps.get(st.index).copied().unwrap_or([0; 7]);
                let [
                    sent,
                    received,
                    retrans,
                    timeouts,
                    unexpected,
                    lost,
                    sessions,
                ] = c;
                let mut r = StepReport {
                    index: st.index,
                    line: st.line,
                    kind: st.kind.clone(),
                    label: st.label.clone(),
                    optional: st.optional,
                    start_rtd: st.start_rtd.clone(),
                    rtd: st.rtd.clone(),
                    ..StepReport::default()
                };
                match st.kind.as_str() {
                    "send" => {
                        r.sent = Some(sent);
                        r.retransmissions = Some(retrans);
                        r.timeouts = st.retrans.then_some(timeouts);
                        r.lost = (lost > 0).then_some(lost);
                    }
                    "recv" => {
                        r.received = Some(received);
                        r.retransmissions = Some(retrans);
                        r.timeouts = Some(timeouts);
                        r.unexpected = Some(unexpected);
                    }
                    "pause" | "timewait" => {
                        r.sessions = Some(sessions);
                        r.unexpected = Some(unexpected);
                    }
                    _ => {}
                }
                r
            })
            .collect();
        ScenarioFileReport {
            name: info.name.clone(),
            file: info.file.clone(),
            role: info.role.clone(),
            rfc6076: info.rfc6076.clone(),
            calls: ScenarioCalls {
                attempted: at(&s.calls, 0),
                succeeded: at(&s.calls, 1),
                failed: s.calls.iter().skip(2).sum(),
                failed_by,
            },
            out_of_call: s.misc[0],
            dead_call_msgs: s.misc[1],
            auto_answered: s.misc[2],
            counters: info
                .counters
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), at(&s.counters, i)))
                .collect(),
            rtds: info
                .rtds
                .iter()
                .enumerate()
                .map(|(i, n)| RtdReport {
                    name: n.clone(),
                    metric: format!("rtd{}", i + 1),
                })
                .collect(),
            steps,
        }
    }

    /// Add another segment's section of the same scenario.
    pub fn add(&mut self, o: &ScenarioFileReport) {
        let add = |a: &mut Option<u64>, b: Option<u64>| {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0) + b);
            }
        };
        self.calls.attempted += o.calls.attempted;
        self.calls.succeeded += o.calls.succeeded;
        self.calls.failed += o.calls.failed;
        for (k, v) in &o.calls.failed_by {
            *self.calls.failed_by.entry(k.clone()).or_insert(0) += v;
        }
        self.out_of_call += o.out_of_call;
        self.dead_call_msgs += o.dead_call_msgs;
        self.auto_answered += o.auto_answered;
        for (k, v) in &o.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
        for (a, b) in self.steps.iter_mut().zip(&o.steps) {
            add(&mut a.sent, b.sent);
            add(&mut a.received, b.received);
            add(&mut a.retransmissions, b.retransmissions);
            add(&mut a.timeouts, b.timeouts);
            add(&mut a.unexpected, b.unexpected);
            add(&mut a.lost, b.lost);
            add(&mut a.sessions, b.sessions);
        }
    }

    /// The per-step table as SIPp's screen writes it (arrows, RTD marks,
    /// Messages / Retrans / Timeout / Unexpected columns).
    pub fn screen(&self) -> String {
        let mut out = String::new();
        let uas = self.role == "uas";
        let _ = writeln!(
            out,
            "{:<40}{:>10}{:>10}{:>10}{:>12}",
            "", "Messages", "Retrans", "Timeout", "Unexpected"
        );
        let cell = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        for s in &self.steps {
            let mark = match (&s.start_rtd, &s.rtd) {
                (Some(b), _) => format!("B-RTD{b}"),
                (None, Some(e)) => format!("E-RTD{e}"),
                _ => String::new(),
            };
            let head = match (s.kind.as_str(), uas) {
                ("send", false) => format!("{:>10} ---------->", s.label),
                ("recv", false) => format!("{:>10} <----------", s.label),
                ("send", true) => format!("  <---------- {:<10}", s.label),
                ("recv", true) => format!("  ----------> {:<10}", s.label),
                _ => format!("  {:<24}", s.label),
            };
            let first = s.sent.or(s.received).or(s.sessions);
            let opt = if s.optional { " (opt)" } else { "" };
            let _ = writeln!(
                out,
                "{:<40}{:>10}{:>10}{:>10}{:>12}",
                format!("{head} {mark}{opt}"),
                cell(first),
                cell(s.retransmissions),
                cell(s.timeouts),
                cell(s.unexpected)
            );
        }
        let c = &self.calls;
        let _ = write!(
            out,
            "calls: {} {}, {} succeeded, {} failed",
            c.attempted,
            if uas { "incoming" } else { "started" },
            c.succeeded,
            c.failed
        );
        if !c.failed_by.is_empty() {
            let by: Vec<String> = c
                .failed_by
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = write!(out, " ({})", by.join(", "));
        }
        let _ = writeln!(out);
        if self.out_of_call + self.dead_call_msgs + self.auto_answered > 0 {
            let _ = writeln!(
                out,
                "out-of-call messages {}, dead-call messages {}, auto-answered {}",
                self.out_of_call, self.dead_call_msgs, self.auto_answered
            );
        }
        if !self.counters.is_empty() {
            let cs: Vec<String> = self
                .counters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "counters: {}", cs.join(" "));
        }
        for r in &self.rtds {
            let _ = writeln!(
                out,
                "rtd {} = latency {} (and {}_co)",
                r.name, r.metric, r.metric
            );
        }
        out
    }

    /// The per-step table as HTML (for `report.html`).
    pub fn html_table(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut h = String::from(
            "<table class=\"steps\">\n<tr><th>#</th><th>line</th><th>step</th><th>RTD</th>\
             <th>messages</th><th>retrans</th><th>timeout</th><th>unexpected</th><th>lost</th></tr>\n",
        );
        let cell = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let uas = self.role == "uas";
        for s in &self.steps {
            let arrow = match (s.kind.as_str(), uas) {
                ("send", false) | ("recv", true) => "&rarr;",
                ("recv", false) | ("send", true) => "&larr;",
                _ => "",
            };
            let mark = match (&s.start_rtd, &s.rtd) {
                (Some(b), _) => format!("B-RTD {}", esc(b)),
                (None, Some(e)) => format!("E-RTD {}", esc(e)),
                _ => String::new(),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{} {} {}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.index,
                s.line,
                esc(&s.kind),
                arrow,
                esc(&s.label),
                if s.optional { " (optional)" } else { "" },
                mark,
                cell(s.sent.or(s.received).or(s.sessions)),
                cell(s.retransmissions),
                cell(s.timeouts),
                cell(s.unexpected),
                cell(s.lost)
            );
        }
        h.push_str("</table>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ScenarioFileInfo {
        let step = |index, kind: &str, label: &str, retrans| StepInfo {
            index,
            line: 10 + index as u32,
            kind: kind.into(),
            label: label.into(),
            optional: false,
            retrans,
            start_rtd: None,
            rtd: (index == 1).then(|| "1".to_string()),
        };
        ScenarioFileInfo {
            name: "t".into(),
            file: "t.xml".into(),
            role: "uac".into(),
            rfc6076: "call".into(),
            steps: vec![
                step(0, "send", "INVITE", true),
                step(1, "recv", "200", false),
                step(2, "pause", "Pause", false),
            ],
            rtds: vec!["1".into()],
            counters: vec!["c".into()],
            fail_reasons: vec!["unexpected_message".into(), "recv_timeout".into()],
        }
    }

    #[test]
    fn columns_follow_sipps_screen_and_segments_add_up() {
        let stats = ScenarioStats {
            steps: vec![
                [5, 0, 2, 1, 0, 0, 0],
                [0, 4, 0, 0, 1, 0, 0],
                [0, 0, 0, 0, 0, 0, 4],
            ],
            calls: vec![5, 3, 1, 1],
            misc: [2, 1, 0],
            counters: vec![7],
            rfc: [0; 11],
        };
        let r = ScenarioFileReport::build(&info(), Some(&stats));
        assert_eq!(
            (r.calls.attempted, r.calls.succeeded, r.calls.failed),
            (5, 3, 2)
        );
        assert_eq!(r.calls.failed_by.len(), 2);
        assert_eq!(
            r.steps[0].timeouts,
            Some(1),
            "a send with retrans shows Timeout"
        );
        assert_eq!(r.steps[0].received, None);
        assert_eq!(r.steps[1].unexpected, Some(1));
        assert_eq!(r.steps[2].sessions, Some(4));
        assert_eq!(r.rtds[0].metric, "rtd1");
        assert_eq!(r.counters["c"], 7);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["steps"][0].get("received").is_none());
        let mut twice = r.clone();
        twice.add(&r);
        assert_eq!(twice.calls.attempted, 10);
        assert_eq!(twice.steps[0].retransmissions, Some(4));
        assert_eq!(twice.calls.failed_by["recv_timeout"], 2);
        let screen = r.screen();
        assert!(screen.contains("INVITE ---------->"), "{screen}");
        assert!(screen.contains("E-RTD1"), "{screen}");
        assert!(r.html_table().contains("&rarr;"));
    }
}
