//! Digest authentication end to end: 407 re-INVITE, wrong passwords and
//! unknown users, every algorithm, RFC 8760 challenge choice, auth-int.

use super::*;

#[test]
fn proxy_auth_reinvite() {
    let mut sc = scfg();
    sc.auth_invite = true;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(2, Duration::from_millis(500));
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
    let c = p.lines(C);
    assert_eq!(count(&c, "INVITE"), 4);
    assert_eq!(count(&c, "ACK"), 4, "one for the 407, one for the 200");
    assert_eq!(count(&p.lines(S), "SIP/2.0 407"), 2);
    let invites: Vec<_> = p
        .sim
        .trace
        .iter()
        .filter(|t| t.3.starts_with(b"INVITE"))
        .collect();
    let first = sip::parse(&invites[0].3).unwrap();
    assert!(first.proxy_authorization().is_none());
    let second = invites
        .iter()
        .map(|t| sip::parse(&t.3).unwrap())
        .find(|m| m.call_id() == first.call_id() && m.proxy_authorization().is_some())
        .expect("INVITE with Proxy-Authorization, same Call-ID");
    assert_eq!(second.cseq().unwrap().seq, 2);
    p.assert_clean();
}

#[test]
fn busy_and_wrong_password_and_unknown_user() {
    let mut sc = scfg();
    sc.busy_ratio = 1.0;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(2, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(486); 2]);
    assert_eq!(count(&p.lines(C), "ACK"), 2);
    p.assert_clean();

    let mut sc = scfg();
    sc.passwords = Arc::new(UserSource::any("other-{user}").unwrap());
    let mut p = pair(ccfg(Scenario::Register), sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(403)]);

    let mut sc = scfg();
    sc.passwords = Arc::new(UserSource::list(vec![("someone".into(), "x".into())]));
    let mut p = pair(ccfg(Scenario::Register), sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Failed(404)]);
    p.assert_clean();
}

#[test]
fn every_digest_algorithm_registers_and_authenticates_invites() {
    for (alg, int) in crate::auth::Algorithm::ALL
        .into_iter()
        .flat_map(|a| [(a, false), (a, true)])
    {
        let mut sc = scfg();
        sc.algorithm = alg;
        sc.qop_auth_int = int;
        let mut p = pair(ccfg(Scenario::Register), sc.clone(), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Success; 2], "{alg:?}");
        let ch = p
            .sim
            .trace
            .iter()
            .find(|t| t.3.starts_with(b"SIP/2.0 401"))
            .unwrap();
        assert!(
            String::from_utf8_lossy(&ch.3).contains(alg.as_str()),
            "{alg:?}"
        );
        let qop = if int { "qop=auth-int" } else { "qop=auth," };
        let reg = p
            .sim
            .trace
            .iter()
            .find(|t| {
                t.3.starts_with(b"REGISTER") && sip::parse(&t.3).unwrap().authorization().is_some()
            })
            .unwrap();
        assert!(
            String::from_utf8_lossy(&reg.3).contains(qop),
            "{alg:?} {int}"
        );

        sc.auth_invite = true;
        let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
        p.start(1, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Success], "{alg:?}");
    }
}

#[test]
fn client_digest_preferences_pick_and_refuse_algorithms() {
    // The server offers SHA-256 with qop auth-int only.
    let mut sc = scfg();
    sc.algorithm = crate::auth::Algorithm::Sha256;
    sc.qop_auth_int = true;
    let cases = [
        (vec![], Outcome::Success),
        (
            vec![crate::auth::Algorithm::Md5, crate::auth::Algorithm::Sha256],
            Outcome::Success,
        ),
        // Required MD5 only: the SHA-256 challenge is not answered.
        (vec![crate::auth::Algorithm::Md5], Outcome::Failed(401)),
    ];
    for (prefs, want) in cases {
        let mut cc = ccfg(Scenario::Register);
        cc.digest_algorithms = prefs.clone();
        let mut p = pair(cc, sc.clone(), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![want; 2], "{prefs:?}");
    }
}

/// A 401 carrying one challenge per algorithm, MD5 first.
fn two_challenges() -> Vec<u8> {
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
      From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth,auth-int\"\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"\r\n\
      WWW-Authenticate: Digest realm=\"r\", nonce=\"n3\", algorithm=SHA-512-256\r\n\
      Content-Length: 0\r\n\r\n"
        .to_vec()
}

#[test]
fn challenge_choice_follows_rfc8760_order_and_preferences() {
    use crate::auth::Algorithm::{Md5, Sha256, Sha256Sess};
    let raw = two_challenges();
    let msg = sip::parse(&raw).unwrap();
    let nonce = |prefs: Vec<crate::auth::Algorithm>| {
        let mut cc = ccfg(Scenario::Register);
        cc.digest_algorithms = prefs;
        super::uac::pick_challenge(Some(&cc), &msg, false)
            .map(|v| crate::auth::parse_challenge(v).unwrap().nonce.to_vec())
    };
    // No preference: the server's order (topmost supported).
    assert_eq!(nonce(vec![]), Some(b"n1".to_vec()));
    assert_eq!(nonce(vec![Sha256, Md5]), Some(b"n2".to_vec()));
    assert_eq!(nonce(vec![Md5, Sha256]), Some(b"n1".to_vec()));
    assert_eq!(nonce(vec![Sha256Sess]), None);
    // Proxy-Authenticate is looked up for 407 only.
    assert!(super::uac::pick_challenge(None, &msg, true).is_none());
}

#[test]
fn client_answers_auth_int_when_preferred_and_offered() {
    // The engine's server offers one qop; check the choice through the
    // Authorization the client writes for a challenge offering both.
    let raw = two_challenges();
    let msg = sip::parse(&raw).unwrap();
    let v = super::uac::pick_challenge(None, &msg, false).unwrap();
    let mut ch = crate::auth::parse_challenge(v).unwrap();
    assert_eq!(ch.chosen_qop(), Some(crate::auth::Qop::Auth));
    ch.qop_auth = false;
    assert_eq!(ch.chosen_qop(), Some(crate::auth::Qop::AuthInt));
    // End to end: a client preferring auth-int against a server offering
    // auth-int registers (and says qop=auth-int).
    let mut sc = scfg();
    sc.qop_auth_int = true;
    let mut cc = ccfg(Scenario::Register);
    cc.digest_qop = crate::auth::Qop::AuthInt;
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    assert!(
        p.sim.trace.iter().any(|t| t.3.starts_with(b"REGISTER")
            && String::from_utf8_lossy(&t.3).contains("qop=auth-int"))
    );
}

/// Issue 18: the endpoint says when a received message may need a reply a
/// measured latency includes — a REGISTER waiting for its challenge, an
/// INVITE once INVITEs are known to be challenged, anything to an
/// answering UAS — so the driver wakes for it at once and otherwise waits
/// for its next tick.
#[test]
fn prompt_replies_only_while_a_measured_reply_may_be_due() {
    // (scenario, INVITE auth at the server, prompt right after the start,
    // prompt once the first round trip is back, prompt when all is done)
    let cases = [
        (Scenario::Register, false, true, false, false),
        (Scenario::Call, false, false, false, false),
        (Scenario::Options, false, false, false, false),
        (Scenario::Call, true, false, false, false),
    ];
    for (scenario, auth_invite, at_start, after_rtt, at_end) in cases {
        let mut sc = scfg();
        sc.auth_invite = auth_invite;
        // 5 ms each way: the first answer is back after 10 ms.
        let mut p = pair(ccfg(scenario), sc, NetConfig::default());
        p.start(1, Duration::from_millis(50));
        let name = format!("{scenario:?} auth_invite={auth_invite}");
        assert_eq!(p.sim.ep(p.c).prompt_replies(), at_start, "{name}: start");
        p.run(Duration::from_millis(11));
        assert_eq!(p.sim.ep(p.c).prompt_replies(), after_rtt, "{name}: rtt");
        p.run(Duration::from_secs(2));
        assert_eq!(p.outcomes(), vec![Outcome::Success], "{name}");
        assert_eq!(p.sim.ep(p.c).prompt_replies(), at_end, "{name}: end");
        // The server side always answers at once.
        assert!(p.sim.ep(p.s).prompt_replies(), "{name}: server");
    }
    // Once an INVITE was challenged, the next unauthenticated INVITE may be
    // too: its challenge is then answered at once.
    let mut sc = scfg();
    sc.auth_invite = true;
    let mut p = pair(ccfg(Scenario::Call), sc, NetConfig::default());
    p.start(1, Duration::from_millis(10));
    p.run(Duration::from_secs(1));
    p.start(1, Duration::from_millis(10));
    assert!(p.sim.ep(p.c).prompt_replies());
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
    assert!(!p.sim.ep(p.c).prompt_replies());
    // Mixed mode answers calls itself.
    let mut p = pair(ccfg(Scenario::Mixed), scfg(), NetConfig::default());
    assert!(p.sim.ep(p.c).prompt_replies());
}
