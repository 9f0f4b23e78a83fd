//! sipstorm against a real Kamailio over TCP and TLS (issue 15), through
//! `scripts/interop-kamailio-stream.sh`: digest registrations over TCP
//! (one connection per worker) and over TLS (one connection per attempt,
//! sessions resumed), each binding checked in Kamailio's location table
//! with its `;transport=tcp` or `sips:` Contact; and calls through the
//! proxy with 407 and Record-Route over TCP and over TLS, to a SIPp UAS.
//! Kamailio's TLS is Debian's kamailio-tls-modules (OpenSSL), with a
//! certificate the script makes and sipstorm trusts with `--tls-ca`.

mod peers;

#[test]
fn kamailio_over_tcp_and_tls() {
    if !peers::tools_available(&["kamailio", "kamcmd", "sipp", "python3", "openssl"]) {
        return;
    }
    let (code, out) = peers::run_script(
        "interop-kamailio-stream.sh",
        &[],
        &[
            ("REG_COUNT", "300"),
            ("CALLS", "100"),
            ("SIPP_TIMEOUT", "60"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("PASS: register-tcp register-tls call-tcp call-tls"),
        "{out}"
    );
    for line in [
        "register-tcp: 300 AoRs bound, Contacts with ';transport=tcp'",
        "register-tls: 300 AoRs bound, Contacts with 'sips:'",
        "call-tcp: 100 calls through Kamailio with 407",
        "call-tls: 100 calls through Kamailio with 407",
    ] {
        assert!(out.contains(line), "missing '{line}':\n{out}");
    }
}
