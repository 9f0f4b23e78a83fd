//! SIPp scenarios in virtual time, checked against what SIPp 3.6.1 itself
//! counted for the same pairs (`tests/sipp_scenarios/reference/*.screen.txt`,
//! its screen's per-message counters): the screens are the oracle.

use super::*;
use crate::engine::scenario::{
    CompileOptions, Program, ScenarioCounters, ScenarioSetup, StepKindName, compile_bytes,
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/sipp_scenarios/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn program(name: &str) -> Arc<Program> {
    Arc::new(compile_bytes(&fixture(name), name, &CompileOptions::default()).unwrap())
}

fn setup(name: &str, pause: Duration) -> ScenarioSetup {
    let mut s = ScenarioSetup::new(program(name));
    s.pid = 4242;
    s.default_pause = Delay::Fixed(pause);
    s
}

/// A client running `uac` against a server running `uas` (`None`: a
/// silent peer).
fn scen_pair(uac: &str, uas: Option<&str>, pause: Duration, net: NetConfig) -> Pair {
    let mut cc = ccfg(Scenario::Call);
    cc.scenario_file = Some(setup(uac, pause));
    let mut sc = scfg();
    sc.scenario_file = uas.map(|u| setup(u, Duration::ZERO));
    let mut p = pair(cc, sc, net);
    if uas.is_none() {
        // Nobody at the server's address.
        p.sim.nodes[p.s].addr = addr("10.0.0.99:5060");
    }
    p
}

fn counters(p: &mut Pair, client: bool) -> ScenarioCounters {
    let node = if client { p.c } else { p.s };
    p.sim.ep(node).scenario_counters().unwrap().clone()
}

/// The rows of one side of a reference screen: the numbers SIPp shows on
/// each step's row, in step order.
fn screen(file: &str, side: &str) -> Vec<Vec<u64>> {
    let text = String::from_utf8(fixture(&format!("reference/{file}"))).unwrap();
    let mut rows = Vec::new();
    let mut on = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            on = line.contains(side);
            continue;
        }
        if !on || line.starts_with('#') || line.starts_with("Last Error") || line.trim().is_empty()
        {
            continue;
        }
        if line.contains("Messages") {
            continue;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        let skip = match toks.iter().position(|t| t.contains("----------")) {
            Some(0) => 2,
            Some(i) => i + 1,
            None => 0,
        };
        rows.push(
            toks[skip..]
                .iter()
                .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
                .map(|t| t.parse().unwrap())
                .collect(),
        );
    }
    rows
}

/// Our counters as SIPp's screen shows them (its columns per kind of row).
fn as_screen(prog: &Program, c: &ScenarioCounters) -> Vec<Vec<u64>> {
    prog.step_infos()
        .iter()
        .zip(&c.steps)
        .map(|(info, s)| match info.kind {
            StepKindName::Send if info.retrans => vec![s.sent, s.retransmissions, s.timeouts],
            StepKindName::Send => vec![s.sent, s.retransmissions],
            StepKindName::Recv => vec![s.received, s.retransmissions, s.timeouts, s.unexpected],
            StepKindName::Pause | StepKindName::TimeWait => vec![s.sessions, s.unexpected],
            StepKindName::Nop => vec![],
        })
        .collect()
}

fn start_paced(p: &mut Pair, n: usize, every: Duration) {
    for _ in 0..n {
        p.start(1, Duration::ZERO);
        p.run(every);
    }
}

#[test]
fn uac_against_uas_counts_as_sipp() {
    let mut p = scen_pair(
        "uac.xml",
        Some("uas.xml"),
        Duration::from_millis(200),
        NetConfig::default(),
    );
    start_paced(&mut p, 20, Duration::from_millis(100));
    p.run(Duration::from_secs(10));
    let (c, s) = (counters(&mut p, true), counters(&mut p, false));
    assert_eq!(
        as_screen(&program("uac.xml"), &c),
        screen("uac-vs-uas.screen.txt", "UAC")
    );
    assert_eq!(
        as_screen(&program("uas.xml"), &s),
        screen("uac-vs-uas.screen.txt", "UAS")
    );
    assert_eq!((c.started, c.succeeded, c.failed_total()), (20, 20, 0));
    assert_eq!((s.started, s.succeeded, s.failed_total()), (20, 20, 0));
    // RFC 6076: recognisably a call.
    let done = p.outcomes();
    assert_eq!(done, vec![Outcome::Success; 20]);
    let rtds = p.sim.nodes[p.c]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Rtd { id: 0, .. }))
        .count();
    assert_eq!(rtds, 20, "rtd=\"true\" on the 200, once per call");
    for e in &p.sim.nodes[p.c].events {
        if let Event::Rtd { service, .. } = e {
            // INVITE sent → 200 received: one round trip of 2 × 5 ms.
            assert_eq!(*service, Duration::from_millis(10));
        }
    }
    // Nothing left behind (timewait over, timers gone).
    p.run(Duration::from_secs(40));
    assert_eq!(p.sim.ep(p.c).in_flight(), 0);
    assert_eq!(p.sim.ep(p.s).state_sizes().timers, 0);
    assert_eq!(p.sim.ep(p.c).state_sizes().timers, 0);
}

#[test]
fn branchc_against_branchs_counts_as_sipp() {
    let mut p = scen_pair(
        "branchc.xml",
        Some("branchs.xml"),
        Duration::ZERO,
        NetConfig::default(),
    );
    start_paced(&mut p, 30, Duration::from_millis(100));
    p.run(Duration::from_secs(20));
    let (c, s) = (counters(&mut p, true), counters(&mut p, false));
    assert_eq!(
        as_screen(&program("branchc.xml"), &c),
        screen("branchc-vs-branchs.screen.txt", "client")
    );
    assert_eq!(
        as_screen(&program("branchs.xml"), &s),
        screen("branchc-vs-branchs.screen.txt", "server")
    );
    assert_eq!((c.succeeded, s.succeeded), (30, 30));
}

#[test]
fn regexp_against_uas_counts_as_sipp() {
    let mut p = scen_pair(
        "regexp.xml",
        Some("uas.xml"),
        Duration::ZERO,
        NetConfig::default(),
    );
    start_paced(&mut p, 10, Duration::from_millis(100));
    p.run(Duration::from_secs(10));
    let c = counters(&mut p, true);
    assert_eq!(
        as_screen(&program("regexp.xml"), &c),
        screen("regexp-vs-uas.screen.txt", "client")
    );
    assert_eq!((c.succeeded, c.failed_total()), (10, 0), "{c:?}");
    // RTD 1 runs from the 200 of the INVITE to the 200 of the BYE, the
    // 1 s pause included.
    for e in &p.sim.nodes[p.c].events {
        if let Event::Rtd { service, .. } = e {
            assert_eq!(*service, Duration::from_millis(1010));
        }
    }
}

#[test]
fn an_unexpected_486_is_counted_acked_and_fails_the_call() {
    let text = fixture("reference/busy_486.xml");
    let busy = Arc::new(compile_bytes(&text, "busy_486.xml", &CompileOptions::default()).unwrap());
    let mut cc = ccfg(Scenario::Call);
    cc.scenario_file = Some(setup("uac.xml", Duration::ZERO));
    let mut sc = scfg();
    let mut ss = ScenarioSetup::new(busy.clone());
    ss.pid = 1;
    sc.scenario_file = Some(ss);
    let mut p = pair(cc, sc, NetConfig::default());
    start_paced(&mut p, 2, Duration::from_millis(200));
    p.run(Duration::from_secs(5));
    let (c, s) = (counters(&mut p, true), counters(&mut p, false));
    assert_eq!(
        as_screen(&program("uac.xml"), &c),
        screen("uac-vs-busy486.screen.txt", "client")
    );
    assert_eq!(
        as_screen(&busy, &s),
        screen("uac-vs-busy486.screen.txt", "server")
    );
    assert_eq!(c.failed[FailReasonIdx::UNEXPECTED], 2);
    assert_eq!(p.outcomes(), vec![Outcome::Failed(486); 2]);
}

struct FailReasonIdx;
impl FailReasonIdx {
    const UNEXPECTED: usize = crate::engine::scenario::FailReason::UnexpectedMessage as usize;
    const MAX_RETRANS: usize = crate::engine::scenario::FailReason::MaxUdpRetrans as usize;
}

#[test]
fn an_unanswered_invite_is_retransmitted_as_sipp_then_fails() {
    let mut p = scen_pair("uac.xml", None, Duration::ZERO, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(40));
    let c = counters(&mut p, true);
    assert_eq!(
        as_screen(&program("uac.xml"), &c),
        screen("uac-no-answer.screen.txt", "INVITE sent")
    );
    assert_eq!(c.failed[FailReasonIdx::MAX_RETRANS], 1);
    // Sends at 0, 0.5, 1.5, 3.5, 7.5 and 15.5 s (T1 = 500 ms doubling).
    let t0 = p.sim.trace[0].0;
    let at: Vec<u128> = p.sim.trace.iter().map(|t| (t.0 - t0).as_millis()).collect();
    assert_eq!(at, [0, 500, 1500, 3500, 7500, 15500]);
    assert_eq!(p.outcomes(), vec![Outcome::Timeout]);
    assert_eq!(p.sim.ep(p.c).in_flight(), 0);
}

/// Loss on the way: the UAC's INVITE and the UAS's 200 are retransmitted
/// (`retrans="500"`), retransmissions received get the message that
/// answered them again, and every call still succeeds on both sides.
#[test]
fn lossy_network_retransmits_and_every_call_succeeds() {
    let net = NetConfig {
        loss: 0.15,
        dup: 0.05,
        jitter: Duration::from_millis(3),
        ..NetConfig::default()
    };
    let mut p = scen_pair("uac.xml", Some("uas.xml"), Duration::from_millis(100), net);
    start_paced(&mut p, 40, Duration::from_millis(50));
    p.run(Duration::from_secs(60));
    let (c, s) = (counters(&mut p, true), counters(&mut p, false));
    let retrans: u64 = c
        .steps
        .iter()
        .chain(&s.steps)
        .map(|x| x.retransmissions)
        .sum();
    assert!(retrans > 0, "{c:?} {s:?}");
    // A lost ACK or BYE cannot be recovered by uac.xml (no retrans on
    // them): those calls fail on one side as they would with SIPp; the
    // rest succeed.
    assert_eq!(c.started, 40);
    assert_eq!(c.succeeded + c.failed_total(), 40);
    assert!(c.succeeded >= 25, "{c:?}");
    assert_eq!(p.sim.ep(p.c).in_flight(), 0);
}

/// A retransmitted INVITE after the 180 and the 200 gets the 200 again
/// (sipstorm re-sends the latest response; SIPp would abort the call, see
/// docs/sipp-scenarios.md). The client takes that 200 as a retransmission
/// of the one it matched, so its second `recv 200` times out, as SIPp's
/// did (`reference/invite-retransmitted-late.screen.txt`).
#[test]
fn a_late_invite_retransmission_gets_the_latest_response() {
    let text = fixture("reference/invite_retransmitted_late.xml");
    let rtx = Arc::new(compile_bytes(&text, "rtx.xml", &CompileOptions::default()).unwrap());
    let mut cc = ccfg(Scenario::Call);
    let mut cs = ScenarioSetup::new(rtx);
    cs.pid = 7;
    cc.scenario_file = Some(cs);
    let mut sc = scfg();
    sc.scenario_file = Some(setup("uas.xml", Duration::ZERO));
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(3));
    let (c, s) = (counters(&mut p, true), counters(&mut p, false));
    assert_eq!(
        c.failed[crate::engine::scenario::FailReason::RecvTimeout as usize],
        1,
        "{c:?}"
    );
    // The re-sent 200, then the UAS's own retransmissions at +0.5 s and +1.5 s
    // (no ACK comes).
    assert_eq!(
        (c.steps[2].retransmissions, c.steps[4].timeouts),
        (3, 1),
        "{c:?}"
    );
    assert_eq!(s.steps[0].retransmissions, 1, "the INVITE, seen again");
    assert_eq!(
        s.steps[2].retransmissions, 3,
        "the 200, sent again and by its timer"
    );
    assert_eq!(s.steps[3].unexpected, 0);
}

/// SIPp's digest REGISTER (`scripts/sipp/register.xml`: `recv 401
/// auth="true"`, then `[field2]` in the users file's keyword form) against
/// sipstorm's registrar: sipstorm's digest code answers the challenge,
/// every registration succeeds, and RFC 6076 sees registrations (RRD from
/// the first REGISTER to the 200, the 401 round trip included). The wrong
/// passwords of field 3 are refused.
#[test]
fn digest_register_with_authentication_keyword() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let users = crate::users::Users::load(std::path::Path::new(&format!(
        "{dir}/scripts/sipp/users.csv"
    )))
    .unwrap();
    let lines = UserSource::lines(
        users
            .users
            .iter()
            .map(|u| ListUser {
                fields: u.fields.clone(),
                auth_name: u.auth_name.clone(),
                password: u.password.expose().to_string(),
            })
            .collect(),
    );
    let text = std::fs::read(format!("{dir}/scripts/sipp/register.xml")).unwrap();
    let opts = CompileOptions {
        inf_files: vec!["users.csv".into()],
        ..CompileOptions::default()
    };
    for (field, ok) in [("[field2]", true), ("[field3]", false)] {
        let t = String::from_utf8(text.clone())
            .unwrap()
            .replace("[field2]", field);
        let prog = Arc::new(compile_bytes(t.as_bytes(), "register.xml", &opts).unwrap());
        assert_eq!(prog.shape, crate::engine::scenario::Shape::Register);
        assert!(prog.prompt, "the REGISTER after the 401 is part of RRD");
        let mut cc = ccfg(Scenario::Call);
        cc.users = Arc::new(lines.clone());
        let mut s = ScenarioSetup::new(prog);
        s.pid = 9;
        cc.scenario_file = Some(s);
        let mut p = pair(cc, scfg(), NetConfig::default());
        start_paced(&mut p, 5, Duration::from_millis(10));
        p.run(Duration::from_secs(5));
        let c = counters(&mut p, true);
        if ok {
            assert_eq!((c.succeeded, c.failed_total()), (5, 0), "{c:?}");
            assert_eq!(p.outcomes(), vec![Outcome::Success; 5]);
            for e in p.events() {
                if let Event::RegisterDone {
                    started, finished, ..
                } = e
                {
                    // Two round trips of 2 × 5 ms: the 401's and the 200's.
                    assert_eq!(finished - started, Duration::from_millis(20));
                }
            }
        } else {
            // 403 for a wrong password: unexpected (the scenario waits
            // for 200), so every call fails.
            assert_eq!((c.succeeded, c.failed_total()), (0, 5), "{c:?}");
        }
    }
}

/// `[last_X:]` joins every occurrence of a header with ", " in the order
/// received, however many there are (the engine notes them on the stack
/// and falls back to a scan per name beyond 32): a server scenario echoes
/// the request's `X-H` lines in one header, and the client checks the
/// whole list with `<ereg check_it="true">`.
#[test]
fn last_header_keeps_every_occurrence() {
    for n in [3usize, 32, 40] {
        let lines: String = (1..=n).map(|i| format!("X-H: {i}\n")).collect();
        let list = (1..=n)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let client = format!(
            r#"<?xml version="1.0"?>
<scenario name="c">
<send retrans="500"><![CDATA[
OPTIONS sip:s@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:c@[local_ip]>;tag=[call_number]
To: <sip:s@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
{lines}Content-Length: 0
]]></send>
<recv response="200"><action>
<ereg regexp="\r\nX-H: {list}\r\n" search_in="msg" check_it="true" assign_to="x"/>
</action></recv>
</scenario>"#
        );
        let server = r#"<?xml version="1.0"?>
<scenario name="s">
<recv request="OPTIONS"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=s[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_X-H:]
Content-Length: 0
]]></send>
</scenario>"#;
        let prog = |text: &str, name: &str| {
            let p = compile_bytes(text.as_bytes(), name, &CompileOptions::default()).unwrap();
            ScenarioSetup::new(Arc::new(p))
        };
        let mut cc = ccfg(Scenario::Call);
        cc.scenario_file = Some(prog(&client, "c.xml"));
        let mut sc = scfg();
        sc.scenario_file = Some(prog(server, "s.xml"));
        let mut p = pair(cc, sc, NetConfig::default());
        start_paced(&mut p, 2, Duration::from_millis(10));
        p.run(Duration::from_secs(2));
        let c = counters(&mut p, true);
        assert_eq!((c.succeeded, c.failed_total()), (2, 0), "{n} lines: {c:?}");
    }
}
