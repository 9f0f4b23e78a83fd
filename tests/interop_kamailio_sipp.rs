//! Interop tests with real peers only: Debian's Kamailio and SIPp, started and
//! stopped by the scripts under `scripts/` on 127.0.0.1.
//!
//! They prove the test infrastructure that the sipstorm ↔ Kamailio / SIPp
//! tests (issue 7) build on: the project's Kamailio config is a working
//! digest registrar (RFC 3261 §10, §22) and an authenticating, record-routing
//! stateful proxy (RFC 3261 §16, §22.3), as seen by SIPp, a client that is
//! not ours.
//!
//! When `sipp`/`kamailio`/`kamcmd` are missing, the tests fail under CI
//! (`CI=true`: `scripts/test.sh` installs them first) and are skipped with a
//! message elsewhere.

mod peers;

/// The programs the scripts run.
const TOOLS: &[&str] = &["sipp", "kamailio", "kamcmd", "python3"];

/// Runs `scripts/NAME ARGS`: (success, output).
fn run_script(name: &str, args: &[&str]) -> (bool, String) {
    let (code, output) = peers::run_script(name, args, &[("SIPP_TIMEOUT", "40")]);
    (code == Some(0), output)
}

/// SIPp registers 1000 users with digest (MD5, qop=auth) at Kamailio: every
/// REGISTER gets 401 then 200, and Kamailio's own location table (read with
/// kamcmd through the ctl module) holds exactly those 1000 AoRs, each bound
/// to SIPp's socket. Wrong passwords are rejected and bind nothing.
#[test]
fn kamailio_registrar_accepts_sipp_digest_registrations() {
    if !peers::tools_available(TOOLS) {
        return;
    }
    let (ok, output) = run_script("interop-kamailio-register-sipp.sh", &["1000", "500"]);
    assert!(ok, "interop-kamailio-register-sipp.sh failed:\n{output}");
    assert!(
        output.contains("PASS: 1000 registrations"),
        "no PASS line:\n{output}"
    );
    assert!(
        output.contains("kamailio: 1000/1000 AoRs found"),
        "Kamailio's table was not checked:\n{output}"
    );
}

/// A SIPp UAC calls, through Kamailio, callees registered there for a SIPp
/// UAS: INVITE → 407 → ACK, INVITE with Proxy-Authorization → 180/200 with
/// Record-Route → ACK and BYE via the route set. Every call completes on
/// both sides.
#[test]
fn kamailio_proxy_routes_sipp_calls_with_407_and_record_route() {
    if !peers::tools_available(TOOLS) {
        return;
    }
    let (ok, output) = run_script("interop-kamailio-call-sipp.sh", &["100", "50"]);
    assert!(ok, "interop-kamailio-call-sipp.sh failed:\n{output}");
    assert!(
        output.contains("PASS: 100 calls"),
        "no PASS line:\n{output}"
    );
}
