//! sipstorm against real peers (issue 7): `sipstorm run` → Kamailio registrar
//! and proxy, SIPp → `sipstorm serve`, `sipstorm run` → `sipp -sn uas`.
//! Each test runs one case of `scripts/interop-sipstorm.sh`, which starts the
//! peers on 127.0.0.1, checks `report.json` and the peer's own view (Kamailio's
//! location table through kamcmd, SIPp's statistics) and stops everything.
//!
//! SWITCHED OFF (`#[ignore]`) until `sipstorm run` and `sipstorm serve` are
//! merged: remove the `#[ignore]` lines to make them part of `scripts/test.sh`
//! and CI. `cargo test --test interop_sipstorm -- --ignored` runs them now;
//! the script exits 77 ("not available yet") while the commands are missing.
//! Against branch `runtime` (00:28 UTC): register-kamailio,
//! mixed-cancel-kamailio, sipp-uac-serve, sipp-register-serve and
//! run-sipp-uas pass; register-kamailio-csv needs
//! `--users`; mixed-kamailio's calls pass but its report has
//! `totals.register.attempted == 0` with 200 succeeded.

mod peers;

/// The programs the scripts run.
const TOOLS: &[&str] = &["sipp", "kamailio", "kamcmd", "python3"];

/// Runs one case of `scripts/interop-sipstorm.sh` and asserts it passed.
fn run_case(case: &str) {
    if !peers::tools_available(TOOLS) {
        return;
    }
    let (code, output) =
        peers::run_script("interop-sipstorm.sh", &[case], &[("SIPP_TIMEOUT", "40")]);
    if code == Some(77) {
        assert!(
            !peers::ci(),
            "CI=true but sipstorm run/serve are not available:\n{output}"
        );
        eprintln!("skipped: sipstorm run/serve not available yet");
        return;
    }
    assert_eq!(
        code,
        Some(0),
        "interop-sipstorm.sh {case} failed:\n{output}"
    );
    assert!(
        output.contains("PASS: sipstorm interop"),
        "no PASS line:\n{output}"
    );
}

/// `sipstorm run --scenario register` → Kamailio: 2000 users registered with
/// digest at 500/s, zero failures in report.json, and every binding present
/// in Kamailio's location table (kamcmd through the ctl module).
#[test]
fn sipstorm_registers_thousands_at_kamailio() {
    run_case("register-kamailio");
}

/// The same with the users read from SIPp's injection file
/// (`--users scripts/sipp/users.csv`, extra fields after the password).
#[test]
fn sipstorm_registers_users_file_at_kamailio() {
    run_case("register-kamailio-csv");
}

/// `sipstorm run --scenario mixed` → Kamailio proxy: users register, then
/// call each other through the proxy with 407 authentication; ACK and BYE
/// follow the Record-Route set (RFC 3261 §12.2.1.1); zero failed calls.
#[test]
fn sipstorm_mixed_calls_through_kamailio_proxy() {
    run_case("mixed-kamailio");
}

/// `sipstorm run --scenario mixed --cancel-ratio 0.25` → Kamailio proxy:
/// CANCEL after the first provisional response (RFC 3261 §9.1); every call
/// ends completed or cancelled, none failed.
#[test]
fn sipstorm_cancels_calls_through_kamailio_proxy() {
    run_case("mixed-cancel-kamailio");
}

/// `sipp -sn uac` → `sipstorm serve`: every call succeeds.
#[test]
fn sipp_uac_calls_sipstorm_serve() {
    run_case("sipp-uac-serve");
}

/// SIPp's own `[authentication]` digest REGISTER → `sipstorm serve`: all
/// 200; REGISTERs with a wrong password are rejected (401/403).
#[test]
fn sipp_digest_register_at_sipstorm_serve() {
    run_case("sipp-register-serve");
}

/// `sipstorm run --scenario call` → `sipp -sn uas`: all calls complete.
#[test]
fn sipstorm_calls_sipp_uas() {
    run_case("run-sipp-uas");
}

/// `sipstorm run` → Kamailio hosting `example.test` (scripts/kamailio/hosted.cfg)
/// over 127.0.0.1: registrations with `--domain`, a required `--header`
/// and the users file's digest usernames (bindings `user@example.test`
/// checked with kamcmd at the `--local-port`); calls to dialled numbers
/// through a `--route` to Kamailio itself on to a SIPp UAS (both sides
/// count them); mixed calls answered by sipstorm; a 403 for each setting
/// left out.
#[test]
fn sipstorm_reaches_a_hosted_domain_on_kamailio() {
    run_case("hosted-kamailio");
}

/// The same over IPv6 (`::1`): URIs, Via, Contact and SDP with IPv6
/// addresses.
#[test]
fn sipstorm_reaches_a_hosted_domain_on_kamailio_over_ipv6() {
    run_case("hosted-kamailio-v6");
}
