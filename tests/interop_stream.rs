//! sipstorm and SIPp over TCP in both roles (issue 15), through
//! `scripts/interop-stream-sipp.sh`: SIPp's `uac -t t1` against `serve
//! --listen tcp:`, and `run --transport tcp` against SIPp's `uas -t t1`.
//! SIPp's TLS cases (`-t l1`) need a SIPp built with OpenSSL, which
//! Debian's sip-tester is not: the script says so and exits 77, and this
//! test requires exactly that answer from such a SIPp.

mod peers;

#[test]
fn sipp_over_tcp_both_roles() {
    if !peers::tools_available(&["sipp", "openssl", "python3"]) {
        return;
    }
    let (code, out) = peers::run_script(
        "interop-stream-sipp.sh",
        &["sipp-uac-tcp", "run-uas-tcp"],
        &[("CALLS", "200"), ("RATE", "200")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PASS: sipp-uac-tcp run-uas-tcp"), "{out}");
}

#[test]
fn sipp_over_tls_runs_or_says_why_not() {
    if !peers::tools_available(&["sipp", "openssl", "python3"]) {
        return;
    }
    let (code, out) = peers::run_script(
        "interop-stream-sipp.sh",
        &["sipp-uac-tls", "run-uas-tls"],
        &[("CALLS", "100"), ("RATE", "100")],
    );
    match code {
        Some(0) => assert!(out.contains("PASS: sipp-uac-tls run-uas-tls"), "{out}"),
        Some(77) => assert!(out.contains("built without OpenSSL"), "{out}"),
        other => panic!("exit {other:?}:\n{out}"),
    }
}
