//! SIP over WebSocket (issue 16, RFC 7118) with peers that are not
//! sipstorm: a real Kamailio with Debian's kamailio-websocket-modules
//! (xhttp and websocket; wss with a certificate its start script makes),
//! through `scripts/interop-kamailio-stream.sh`: digest registrations over
//! ws and wss, each binding checked in Kamailio's location table with its
//! `;transport=ws` Contact, and calls through the proxy with 407 and
//! Record-Route to a SIPp UAS; and an independent client on the Python
//! `websockets` library (Debian's python3-websockets) with digest auth from
//! hashlib, through `scripts/interop-ws-python.sh`, registering with
//! `serve` over ws and wss.

mod peers;

#[test]
fn kamailio_over_ws_and_wss() {
    if !peers::tools_available(&["kamailio", "kamcmd", "sipp", "python3", "openssl"]) {
        return;
    }
    let (code, out) = peers::run_script(
        "interop-kamailio-stream.sh",
        &["register-ws", "register-wss", "call-ws", "call-wss"],
        &[
            ("REG_COUNT", "200"),
            ("CALLS", "60"),
            ("SIPP_TIMEOUT", "60"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("PASS: register-ws register-wss call-ws call-wss"),
        "{out}"
    );
    for line in [
        "register-ws: 200 AoRs bound, Contacts with ';transport=ws'",
        "register-wss: 200 AoRs bound, Contacts with ';transport=ws'",
        "call-ws: 60 calls through Kamailio with 407",
        "call-wss: 60 calls through Kamailio with 407",
    ] {
        assert!(out.contains(line), "missing '{line}':\n{out}");
    }
}

#[test]
fn python_websockets_client_registers_with_serve() {
    if !peers::tools_available(&["openssl"]) {
        return;
    }
    let (code, out) = peers::run_script("interop-ws-python.sh", &[], &[("USERS", "50")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PASS: ws wss"), "{out}");
    for kind in ["ws", "wss"] {
        let line = format!("ws-register: 50/50 registered over {kind}");
        assert!(out.contains(&line), "missing '{line}':\n{out}");
    }
    assert_eq!(out.matches("ws upgrades 50").count(), 2, "{out}");
}
