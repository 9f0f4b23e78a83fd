//! The compiler and the templates on SIPp's own scenarios and on a table
//! of broken ones: every refusal names its line.

use super::*;
use crate::engine::{ClientConfig, Scenario};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/sipp_scenarios/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn compile(name: &str) -> Result<Program, ScenarioError> {
    compile_bytes(&fixture(name), name, &CompileOptions::default())
}

#[test]
fn sipp_scenarios_compile() {
    // (file, role, steps, shape)
    let cases = [
        ("uac.xml", Role::Uac, 9, Shape::Call),
        ("uas.xml", Role::Uas, 7, Shape::Other),
        ("regexp.xml", Role::Uac, 9, Shape::Call),
        ("branchc.xml", Role::Uac, 14, Shape::Call),
        ("branchs.xml", Role::Uas, 11, Shape::Other),
    ];
    for (f, role, steps, shape) in cases {
        let p = compile(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!((p.role, p.steps(), p.shape), (role, steps, shape), "{f}");
        assert!(p.warnings.is_empty(), "{f}: {:?}", p.warnings);
    }
    let uac = compile("uac.xml").unwrap();
    assert_eq!(uac.rtd_names(), ["1"]);
    assert!(!uac.prompt, "nothing an RTD spans follows a recv");
    let infos = uac.step_infos();
    let labels: Vec<&str> = infos.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "INVITE", "100", "180", "183", "200", "ACK", "Pause", "BYE", "200"
        ]
    );
    assert!(infos[1].optional && !infos[4].optional && infos[0].retrans);
    assert_eq!(infos[4].rtd.as_deref(), Some("1"));
    assert!(compile("regexp.xml").unwrap().prompt);
    assert!(compile("uas.xml").unwrap().prompt);
}

#[test]
fn media_exec_and_3pcc_are_refused_at_their_line() {
    let e = compile("uac_pcap.xml").unwrap_err();
    assert_eq!(e.line(), Some(87), "{e}");
    assert!(e.to_string().contains("media is not supported"), "{e}");
    assert!(e.to_string().starts_with("uac_pcap.xml:87: "), "{e}");
    let e = compile("3pcc-C-A.xml").unwrap_err();
    assert_eq!(e.line(), Some(67), "{e}");
    assert!(e.to_string().contains("3PCC"), "{e}");
}

/// A scenario around `body` (one line of XML per element).
fn scen(body: &str) -> String {
    format!("<?xml version=\"1.0\"?>\n<scenario name=\"t\">\n{body}\n</scenario>\n")
}

const SEND: &str = "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\nCall-ID: [call_id]\n]]></send>";

#[test]
fn refusals_name_the_line() {
    // (body, line, text in the message)
    let cases: &[(&str, u32, &str)] = &[
        ("<foo/>", 3, "the element <foo> is not supported"),
        (
            &format!("{SEND}\n<recv response=\"200\" response_txn=\"a\"/>"),
            7,
            "the attribute response_txn",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n[msg_index]\n]]></send>",
            5,
            "[msg_index] is not supported",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\nX: [no_such]\n]]></send>",
            5,
            "unknown keyword [no_such]",
        ),
        (
            "<send><![CDATA[\n[service] sip:x SIP/2.0\n]]></send>",
            4,
            "literal method",
        ),
        (
            "<nop><action><exec command=\"ls\"/></action></nop>",
            3,
            "exec is not supported",
        ),
        (
            "<nop><action><exec play_pcap_audio=\"g711a.pcap\"/></action></nop>",
            3,
            "media is not supported",
        ),
        ("<sendCmd><![CDATA[x]]></sendCmd>", 3, "3PCC"),
        (
            &format!("{SEND}\n<recv response=\"200\" next=\"nowhere\"/>"),
            7,
            "no <label id=\"nowhere\"/>",
        ),
        ("<label id=\"a\"/>\n<label id=\"a\"/>", 4, "defined twice"),
        (
            &format!("{SEND}\n<nop><action><sample assign_to=\"x\"/></action></nop>"),
            7,
            "the action <sample>",
        ),
        (
            &format!(
                "{SEND}\n<nop><action><ereg regexp=\"(a)\\1\" search_in=\"msg\" assign_to=\"x\"/></action></nop>"
            ),
            7,
            "does not compile",
        ),
        (
            &format!("{SEND}\n<nop><action><divide assign_to=\"x\" value=\"0\"/></action></nop>"),
            7,
            "division by zero",
        ),
        (
            &format!("{SEND}\n<nop><action><jump value=\"9\"/></action></nop>"),
            7,
            "steps",
        ),
        (
            "<timewait milliseconds=\"10\"/>\n<pause/>",
            3,
            "must be the last step",
        ),
        (
            &format!("{SEND}\n<recv response=\"99\"/>"),
            7,
            "status code 100-699",
        ),
        (
            &format!("{SEND}\n<recv response=\"200\" optional=\"global\"/>"),
            7,
            "optional=\"global\"",
        ),
        (&format!("{SEND}\n<pause normal=\"5\"/>"), 7, "old form"),
        (
            &format!("{SEND}\n<pause distribution=\"cauchy\"/>"),
            7,
            "unknown distribution",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n[authentication]\n[authentication]\n]]></send>",
            6,
            "only one [authentication]",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n\nbody [authentication]\n]]></send>",
            6,
            "not the body",
        ),
        (
            &format!(
                "{SEND}\n<nop><action><assign assign_to=\"g\" value=\"1\"/></action></nop>\n<Global variables=\"g\"/>"
            ),
            7,
            "read-only",
        ),
        (
            &format!("{SEND}\n<recv request=\"BYE\"> <![CDATA[x]]></recv>"),
            7,
            "",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\nX: [field1]\n]]></send>",
            5,
            "injection file",
        ),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\nX: [rtpstream_audio_port]\n]]></send>",
            5,
            "media is not supported",
        ),
        ("<User variables=\"a\"/>", 3, "<User>"),
        (
            "<send><![CDATA[\nOPTIONS sip:x SIP/2.0\n]]><action><ereg regexp=\"x\" search_in=\"msg\" assign_to=\"a\"/></action></send>",
            3,
            "<ereg> on a <send>",
        ),
        (
            "<send retrans=\"abc\"><![CDATA[\nOPTIONS sip:x SIP/2.0\n]]></send>",
            3,
            "not a number",
        ),
    ];
    for (body, line, what) in cases {
        let text = scen(body);
        match compile_bytes(text.as_bytes(), "t.xml", &CompileOptions::default()) {
            Ok(_) if what.is_empty() => {}
            Ok(_) => panic!("{body}: compiled"),
            Err(e) => {
                assert!(!what.is_empty(), "{body}: {e}");
                assert_eq!(e.line(), Some(*line), "{body}: {e}");
                assert!(e.to_string().contains(what), "{body}: {e}");
                assert!(e.to_string().starts_with(&format!("t.xml:{line}: ")), "{e}");
            }
        }
    }
}

#[test]
fn keys_sets_and_files() {
    let text = scen(
        "<Global variables=\"g\"/>\n<send><![CDATA[\nOPTIONS sip:[mykey]@x SIP/2.0\nX: [$g] [field1 file=\"more.csv\"]\n]]></send>",
    );
    let opts = CompileOptions {
        keys: vec![("mykey".into(), "v1".into())],
        sets: vec![("g".into(), "7".into())],
        inf_files: vec!["users.csv".into(), "dir/more.csv".into()],
        recv_timeout: None,
    };
    let p = compile_bytes(text.as_bytes(), "t.xml", &opts).unwrap();
    assert_eq!(p.inf_names(), ["dir/more.csv"]);
    let bad = CompileOptions {
        sets: vec![("h".into(), "1".into())],
        ..opts.clone()
    };
    let e = compile_bytes(text.as_bytes(), "t.xml", &bad).unwrap_err();
    assert!(e.to_string().contains("-set h"), "{e}");
    let no_key = CompileOptions {
        keys: Vec::new(),
        ..opts
    };
    let e = compile_bytes(text.as_bytes(), "t.xml", &no_key).unwrap_err();
    assert!(e.to_string().contains("unknown keyword [mykey]"), "{e}");
}

/// The INVITE of `uac.xml` for SIPp's call 1 from 127.0.0.1:5071 (pid
/// 12539) is byte for byte what SIPp 3.6.1 sent
/// (`reference/uac-one-call.messages.log`), `[len]` padding included.
#[test]
fn uac_invite_bytes_equal_sipps() {
    let log = String::from_utf8(fixture("reference/uac-one-call.messages.log")).unwrap();
    let start = log.find("INVITE sip:").unwrap();
    let end = start + log[start..].find("\n\n-----").unwrap();
    let want: String = log[start..end + 1].replace('\n', "\r\n");
    let p = std::sync::Arc::new(compile("uac.xml").unwrap());
    let mut setup = ScenarioSetup::new(p);
    setup.pid = 12539;
    let mut cc = ClientConfig::new(
        Scenario::Call,
        "127.0.0.1:5070".parse().unwrap(),
        "127.0.0.1:5071".parse().unwrap(),
    );
    cc.scenario_file = Some(setup);
    let t0 = std::time::Instant::now();
    let mut ep = Endpoint::client(cc, t0);
    if let Some(se) = ep.scen.as_deref_mut() {
        // SIPp's media port for call 1 of this capture.
        se.consts.media_port = 6004;
        se.tpls = se
            .prog
            .steps
            .iter()
            .map(|s| match &s.kind {
                program::StepKind::Send(x) => Some(x.tpl.bind(&se.consts)),
                _ => None,
            })
            .collect();
    }
    assert!(ep.start_attempt(t0, t0, std::time::Duration::ZERO));
    let mut buf = Vec::new();
    use crate::engine::SansIo;
    let flow = ep.poll_transmit(&mut buf).unwrap();
    assert_eq!(flow.peer, "127.0.0.1:5070".parse().unwrap());
    assert_eq!(String::from_utf8_lossy(&buf), want);
    assert_eq!(buf.len(), 509);
}

proptest::proptest! {
    /// Whatever the bytes, compiling never panics (and an error always
    /// names the file).
    #[test]
    fn compile_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        if let Err(e) = compile_bytes(&bytes, "f.xml", &CompileOptions::default()) {
            proptest::prop_assert!(e.to_string().starts_with("f.xml"));
        }
    }

    /// Mutations of SIPp's `uac.xml` (a byte replaced, a range cut) never
    /// panic the compiler.
    #[test]
    fn mutated_scenarios_never_panic(pos in 0usize..4500, len in 0usize..40, b in proptest::prelude::any::<u8>()) {
        let mut x = fixture("uac.xml");
        let p = pos.min(x.len().saturating_sub(1));
        x[p] = b;
        let q = (p + len).min(x.len());
        x.drain(p..q);
        let _ = compile_bytes(&x, "f.xml", &CompileOptions::default());
    }
}
