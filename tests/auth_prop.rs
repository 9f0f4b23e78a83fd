//! Property tests for `sipstorm::auth`: a naive `format!`-based oracle for
//! the response, write → parse → verify round trips, and byte-level mutation
//! of valid header values (must never panic).

use md5::{Digest, Md5};
use proptest::prelude::*;
use sha2::Sha256;
use sipstorm::auth::{
    Algorithm, Challenge, Ha1, escape_into, parse_authorization, parse_challenge, verify, wire_eq,
    write_authorization, write_challenge,
};

fn hex(d: &[u8]) -> Vec<u8> {
    d.iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

fn h(alg: Algorithm, parts: &[&[u8]]) -> Vec<u8> {
    let joined = parts.join(&b':');
    if alg.hash() == sipstorm::auth::HashKind::Md5 {
        hex(&Md5::digest(&joined))
    } else {
        hex(&Sha256::digest(&joined))
    }
}

/// The RFC 7616 §3.4 formulas written as plainly as possible.
#[allow(clippy::too_many_arguments)]
fn oracle(
    alg: Algorithm,
    qop: Option<&str>,
    user: &[u8],
    realm: &[u8],
    pw: &[u8],
    method: &[u8],
    uri: &[u8],
    body: &[u8],
    nonce: &[u8],
    nc: u32,
    cnonce: &[u8],
) -> Vec<u8> {
    let mut ha1 = h(alg, &[user, realm, pw]);
    if alg.is_sess() {
        ha1 = h(alg, &[&ha1, nonce, cnonce]);
    }
    let ha2 = if qop == Some("auth-int") {
        h(alg, &[method, uri, &h(alg, &[body])])
    } else {
        h(alg, &[method, uri])
    };
    match qop {
        Some(q) => {
            let ncs = format!("{nc:08x}");
            h(
                alg,
                &[&ha1, nonce, ncs.as_bytes(), cnonce, q.as_bytes(), &ha2],
            )
        }
        None => h(alg, &[&ha1, nonce, &ha2]),
    }
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

/// Arbitrary bytes except CR and LF (which a header cannot carry).
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |c| *c != b'\r' && *c != b'\n'),
        0..24,
    )
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    "[A-Za-z0-9+/=._-]{1,40}".prop_map(String::into_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_matches_oracle(
        alg in algorithm(),
        qop_sel in 0u8..4,
        user in text(), realm in text(), pw in text(), wrong in text(),
        method in "[A-Z]{3,9}", uri in text(), body in prop::collection::vec(any::<u8>(), 0..200),
        nonce in token(), cnonce in token(), nc in any::<u32>(), opaque in prop::option::of(token()),
    ) {
        let (qop_auth, qop_auth_int) = [(false, false), (true, false), (false, true), (true, true)][usize::from(qop_sel)];
        let mut realm_wire = Vec::new();
        escape_into(&mut realm_wire, &realm);
        let ch = Challenge { opaque: opaque.as_deref(), qop_auth, qop_auth_int,
                             ..Challenge::new(&realm_wire, &nonce, alg) };
        let mut www = Vec::new();
        write_challenge(&mut www, &ch);
        let got = parse_challenge(&www).unwrap();
        prop_assert_eq!(got, ch);

        // Client.
        let ha1 = Ha1::from_challenge(&got, &user, &pw);
        let mut authz = Vec::new();
        write_authorization(&mut authz, &got, &user, &ha1, method.as_bytes(), &uri, &body, nc, &cnonce).unwrap();

        // Server.
        let c = parse_authorization(&authz).unwrap();
        prop_assert!(wire_eq(c.username, &user));
        prop_assert!(wire_eq(c.realm, &realm));
        prop_assert!(wire_eq(c.uri, &uri));
        prop_assert_eq!(c.algorithm, alg);
        prop_assert_eq!(c.opaque, opaque.as_deref());
        let qop = got.chosen_qop().map(|q| q.as_str());
        prop_assert_eq!(c.qop.map(|q| q.as_str()), qop);
        let want = oracle(alg, qop, &user, &realm, &pw, method.as_bytes(), &uri, &body, &nonce, nc, &cnonce);
        prop_assert_eq!(c.response, &want[..]);

        let server_ha1 = Ha1::new(alg, &user, &realm, &pw);
        prop_assert_eq!(server_ha1, ha1);
        prop_assert!(verify(&c, &server_ha1, method.as_bytes(), &body));
        if wrong != pw {
            prop_assert!(!verify(&c, &Ha1::new(alg, &user, &realm, &wrong), method.as_bytes(), &body));
        }
    }
}

const CHALLENGES: &[&[u8]] = &[
    br#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    br#"Digest realm="a \"b\" c", nonce=abc/def==, algorithm=SHA-256-sess, stale=TRUE, domain="sip:x sip:y""#,
    b"digest   NONCE = \"n\" ,\r\n REALM=r,,",
];

const AUTHORIZATIONS: &[&[u8]] = &[
    br#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    br#"Digest username="u\"x", realm="r", nonce="n", uri="sip:x", response="00", algorithm=MD5-sess, cnonce="c""#,
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bias inserted/set bytes toward the grammar's special characters.
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"\"\\,= \r\n\t".to_vec()),];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(base: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = base.to_vec();
    for m in muts {
        let n = v.len().max(1);
        match *m {
            Mutation::Flip(i, x) => {
                if let Some(b) = v.get_mut(i % n) {
                    *b ^= x
                }
            }
            Mutation::Set(i, x) => {
                if let Some(b) = v.get_mut(i % n) {
                    *b = x
                }
            }
            Mutation::Insert(i, x) => v.insert(i % (v.len() + 1), x),
            Mutation::Remove(i) => {
                if !v.is_empty() {
                    v.remove(i % n);
                }
            }
            Mutation::Truncate(i) => v.truncate(i % (v.len() + 1)),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Mangled challenges never panic, and whatever parses survives
    /// write_challenge → parse_challenge unchanged.
    #[test]
    fn mutated_challenges_never_panic(base in prop::sample::select(CHALLENGES.to_vec()),
                                      muts in prop::collection::vec(mutation(), 1..6)) {
        let v = apply(base, &muts);
        if let Ok(ch) = parse_challenge(&v) {
            let mut w = Vec::new();
            write_challenge(&mut w, &ch);
            prop_assert_eq!(parse_challenge(&w), Ok(ch));
            let ha1 = Ha1::from_challenge(&ch, b"u", b"p");
            let mut a = Vec::new();
            write_authorization(&mut a, &ch, b"u", &ha1, b"REGISTER", b"sip:x", b"", 1, b"c").unwrap();
            let c = parse_authorization(&a).unwrap();
            prop_assert!(verify(&c, &ha1, b"REGISTER", b""));
        }
    }

    /// Mangled credentials never panic, in parsing or verification.
    #[test]
    fn mutated_authorizations_never_panic(base in prop::sample::select(AUTHORIZATIONS.to_vec()),
                                          muts in prop::collection::vec(mutation(), 1..6)) {
        let v = apply(base, &muts);
        if let Ok(c) = parse_authorization(&v) {
            for alg in Algorithm::ALL {
                let _ = verify(&c, &Ha1::new(alg, b"Mufasa", b"testrealm@host.com", b"Circle Of Life"), b"GET", b"");
            }
        }
    }

    /// Arbitrary bytes, no structure at all.
    #[test]
    fn garbage_never_panics(v in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_challenge(&v);
        let _ = parse_authorization(&v);
        let mut with_scheme = b"Digest ".to_vec();
        with_scheme.extend_from_slice(&v);
        let _ = parse_challenge(&with_scheme);
        let _ = parse_authorization(&with_scheme);
    }
}
