//! Issue 17: SIPp XML scenarios, end to end. Refusals and usage errors
//! exit 2 naming FILE:LINE (or the flag) before any traffic; SIPp's own
//! flag spellings work; `run --sf` against `serve --sf` over loopback
//! writes `scenario_file.*` in a report that validates against the schema;
//! and, with real peers, SIPp in both roles and a digest REGISTER scenario
//! at Kamailio (`scripts/interop-sipp-scenarios.sh`,
//! `scripts/interop-kamailio-register-sf.sh`).

mod e2e_common;
mod peers;
#[path = "report_support.rs"]
mod report_support;

use e2e_common::*;
use std::process::Stdio;
use std::time::Duration;

fn scen(name: &str) -> String {
    format!("{}/tests/sipp_scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = bin().args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A scenario file in a temp dir.
fn write(dir: &std::path::Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("<?xml version=\"1.0\"?>\n<scenario name=\"t\">\n{body}\n</scenario>\n"),
    )
    .unwrap();
    p.display().to_string()
}

/// `serve --sf FILE` on a free loopback port with WORKERS workers, its
/// closing screen on a pipe; returns it and the port once it listens.
fn serve_sf(file: &str, workers: &str) -> (std::process::Child, u16) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let serve = bin()
        .args([
            "serve",
            "--sf",
            file,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--workers", workers, "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    (serve, port)
}

#[test]
fn refusals_exit_2_with_file_and_line_before_any_traffic() {
    let dir = tmpdir("sf-refusals");
    let d = dir.as_path();
    // A target nobody listens on: nothing may be sent, so nothing fails
    // there; the refusal comes first.
    let cases: Vec<(String, &str)> = vec![
        (
            scen("uac_pcap.xml"),
            "uac_pcap.xml:87: <exec play_pcap_audio=\"pcap/g711a.pcap\">: media is not supported",
        ),
        (
            scen("3pcc-C-A.xml"),
            "3pcc-C-A.xml:67: <sendCmd>: 3PCC (sendCmd/recvCmd) is not supported",
        ),
        (
            write(
                d,
                "exec.xml",
                "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n]]></send>\n<nop><action><exec command=\"rm -rf /\"/></action></nop>",
            ),
            "exec.xml:6: ",
        ),
        (
            write(d, "elem.xml", "<bogus/>"),
            "elem.xml:3: the element <bogus> is not supported",
        ),
        (
            write(
                d,
                "attr.xml",
                "<send foo=\"1\"><![CDATA[\nOPTIONS sip:x SIP/2.0\n]]></send>",
            ),
            "attr.xml:3: <send foo=\"1\">: the attribute foo",
        ),
        (
            write(
                d,
                "kw.xml",
                "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\nX: [nope]\n]]></send>",
            ),
            "kw.xml:5: unknown keyword [nope]",
        ),
        (
            write(
                d,
                "act.xml",
                "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n]]></send>\n<nop><action><sample assign_to=\"x\"/></action></nop>",
            ),
            "act.xml:6: the action <sample>",
        ),
        (scen("uas.xml"), "a server (UAS) scenario"),
        (
            "/nonexistent/x.xml".to_string(),
            "/nonexistent/x.xml: cannot read",
        ),
    ];
    for (file, want) in cases {
        let (code, _, err) = run(&[
            "run",
            "--target",
            "127.0.0.1:9",
            "--sf",
            &file,
            "--quiet",
            "-m",
            "1",
        ]);
        assert_eq!(code, Some(2), "{file}: {err}");
        assert!(err.contains(want), "{file}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // serve takes server scenarios only.
    let (code, _, err) = run(&["serve", "--sf", &scen("uac.xml"), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a client (UAC) scenario"), "{err}");
    // Flags that would have no effect are refused with --sf, and SIPp's
    // flags without one.
    let flag_cases: &[(&[&str], &str)] = &[
        (
            &["run", "--sf", "X", "--scenario", "register"],
            "--scenario: has no effect with --sf",
        ),
        (
            &["run", "--sf", "X", "--header", "X-A: 1"],
            "--header: has no effect with --sf",
        ),
        (
            &["run", "-key", "a", "b"],
            "-key: only with a scenario file",
        ),
        (
            &["run", "-s", "1000"],
            "-s/--service: only with a scenario file",
        ),
        (
            &["serve", "--sf", "X", "--auth", "on"],
            "--auth: has no effect with --sf",
        ),
        (
            &["serve", "-set", "a", "1"],
            "-set: only with a scenario file",
        ),
        (
            &["run", "--sf", "X", "--recv-timeout", "soon"],
            "--recv-timeout",
        ),
    ];
    let uac = scen("uac.xml");
    for (args, want) in flag_cases {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "X" { uac.as_str() } else { a })
            .collect();
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `run --sf uac.xml` (SIPp spellings: `-sf`, `-m`, `-r`, `-d`) against
/// `serve --sf uas.xml` on loopback: every call succeeds on both sides,
/// the report has SIPp's per-step counters and the named RTD, validates
/// against the schema, and the RFC 6076 view of the call is filled.
#[test]
fn run_sf_against_serve_sf_writes_scenario_counters() {
    let (serve, port) = serve_sf(&scen("uas.xml"), "2");
    let out = tmpdir("sf-run");
    let (code, stdout, err) = run(&[
        "run",
        "--target",
        &format!("127.0.0.1:{port}"),
        "-sf",
        &scen("uac.xml"),
        "-m",
        "60",
        "-r",
        "200",
        "-d",
        "50",
        "--workers",
        "2",
        "--quiet",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    // uas.xml's timewait is 4 s: let it pass, then stop serve.
    std::thread::sleep(Duration::from_millis(4300));
    signal(serve.id(), "INT");
    let so = String::from_utf8_lossy(&serve.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        so.contains("calls: 60 incoming, 60 succeeded, 0 failed"),
        "{so}"
    );
    assert!(so.contains("----------> INVITE"), "{so}");
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    report_support::assert_valid(&out.join("report.json"));
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    let sf = &r["scenario_file"];
    assert_eq!(r["scenario"], "scenario_file");
    assert_eq!(sf["role"], "uac");
    assert_eq!(sf["rfc6076"], "call");
    assert_eq!(sf["calls"]["attempted"], 60);
    assert_eq!(sf["calls"]["succeeded"], 60);
    let steps = sf["steps"].as_array().unwrap();
    let sent: Vec<u64> = steps
        .iter()
        .map(|s| {
            s["sent"]
                .as_u64()
                .or(s["received"].as_u64())
                .or(s["sessions"].as_u64())
                .unwrap()
        })
        .collect();
    assert_eq!(sent, [60, 0, 60, 0, 60, 60, 60, 60, 60]);
    assert_eq!(steps[4]["rtd"], "1");
    assert_eq!(sf["rtds"][0]["metric"], "rtd1");
    assert_eq!(r["latency_ms"]["rtd1"]["count"], 60);
    assert_eq!(r["latency_ms"]["rtd1_co"]["count"], 60);
    assert_eq!(r["totals"]["call"]["completed"], 60);
    assert_eq!(r["rfc6076"]["srd_ms"]["count"], 60);
    assert!(
        r["latency_ms"].get("rtd2").is_none(),
        "unused timers are left out"
    );
    let hlog = std::fs::read_to_string(out.join("intervals.hlog")).unwrap();
    assert!(hlog.contains("Tag=rtd1,") && hlog.contains("Tag=rtd1_co,"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table class=\"steps\">"));
    assert!(stdout.contains("INVITE ---------->"), "{stdout}");
}

/// SIPp's flags take effect, not only parse: `-s`, `-key`, `-set` and
/// `-inf` fill `[service]`, `[mykey]`, `[$g]` and `[field0]` in the
/// client's OPTIONS, and the server scenario checks each with
/// `<ereg check_it="true">`; a wrong `-s` fails exactly those calls at the
/// server with SIPp's reason. `-l` is the concurrency cap in the config.
#[test]
fn sipp_flags_fill_the_scenario() {
    let dir = tmpdir("sf-flags");
    let d = dir.as_path();
    let client = write(
        d,
        "c.xml",
        r#"<Global variables="g" />
<send retrans="500"><![CDATA[
OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:a@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
X-Service: [service]
X-Key: [mykey]
X-Set: [$g]
X-User: [field0]
Content-Length: 0
]]></send>
<recv response="200" />"#,
    );
    let server = write(
        d,
        "s.xml",
        r#"<recv request="OPTIONS"><action>
<ereg regexp="X-Service: svc42" search_in="msg" check_it="true" assign_to="a" />
<ereg regexp="X-Key: keyval" search_in="msg" check_it="true" assign_to="b" />
<ereg regexp="X-Set: setval" search_in="msg" check_it="true" assign_to="c" />
<ereg regexp="X-User: u00000[12]" search_in="msg" check_it="true" assign_to="d" />
</action></recv>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>"#,
    );
    let users = d.join("users.csv");
    std::fs::write(&users, "SEQUENTIAL\nu000001;x\nu000002;y\n").unwrap();
    let (serve, port) = serve_sf(&server, "1");
    let target = format!("127.0.0.1:{port}");
    let users = users.display().to_string();
    let mut reports = Vec::new();
    for (service, count) in [("svc42", "20"), ("svc41", "5")] {
        let out = d.join(service);
        let (code, stdout, err) = run(&[
            "run",
            "--target",
            &target,
            "-sf",
            &client,
            "-s",
            service,
            "-key",
            "mykey",
            "keyval",
            "-set",
            "g",
            "setval",
            "-inf",
            &users,
            "-m",
            count,
            "-r",
            "200",
            "-l",
            "4",
            "--quiet",
            "--out",
            &out.display().to_string(),
        ]);
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        reports.push(r);
    }
    signal(serve.id(), "INT");
    let so = String::from_utf8_lossy(&serve.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        so.contains("calls: 25 incoming, 20 succeeded, 5 failed (regexp_doesnt_match 5)"),
        "{so}"
    );
    assert_eq!(reports[0]["scenario_file"]["calls"]["succeeded"], 20);
    assert_eq!(reports[0]["config"]["concurrency"], 4);
    assert_eq!(reports[1]["scenario_file"]["calls"]["attempted"], 5);
}

/// SIPp in both roles against sipstorm's scenarios, and sipstorm's
/// scenarios against SIPp, counted on both sides; `uac_pcap.xml` refused.
#[test]
fn sipp_in_both_roles() {
    if !peers::tools_available(&["sipp", "python3"]) {
        return;
    }
    let (code, output) = peers::run_script(
        "interop-sipp-scenarios.sh",
        &["100", "100"],
        &[("SIPP_TIMEOUT", "40")],
    );
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("PASS: SIPp scenarios in both roles"),
        "{output}"
    );
}

/// A digest REGISTER scenario with `[authentication]` and a users file at
/// real Kamailio: sipstorm's report and Kamailio's table agree.
#[test]
fn digest_register_scenario_at_kamailio() {
    if !peers::tools_available(&["kamailio", "kamcmd", "python3"]) {
        return;
    }
    let (code, output) = peers::run_script("interop-kamailio-register-sf.sh", &["300", "300"], &[]);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("PASS: 300 digest registrations"),
        "{output}"
    );
}
