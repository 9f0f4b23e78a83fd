//! Published and hand-derived digest vectors, table-driven parser tests and
//! nonce-mint behaviour for `sipstorm::auth`.

use sipstorm::auth::{
    Algorithm, AuthError, Challenge, Credentials, Ha1, NONCE_LEN, NonceCheck, NonceMint, Qop,
    parse_authorization, parse_challenge, verify, write_authorization, write_challenge,
};

/// Client side: answers `challenge` and returns the `response` it wrote,
/// after checking that our own verifier accepts the value.
#[allow(clippy::too_many_arguments)]
fn answer(
    challenge: &[u8],
    user: &[u8],
    pw: &[u8],
    method: &[u8],
    uri: &[u8],
    body: &[u8],
    nc: u32,
    cnonce: &[u8],
) -> String {
    let ch = parse_challenge(challenge).expect("challenge parses");
    let ha1 = Ha1::from_challenge(&ch, user, pw);
    let mut out = b"stays ".to_vec(); // write_authorization appends
    write_authorization(&mut out, &ch, user, &ha1, method, uri, body, nc, cnonce).unwrap();
    assert!(out.starts_with(b"stays Digest "));
    let value = &out[6..];
    let c = parse_authorization(value).expect("own authorization parses");
    assert!(verify(&c, &ha1, method, body), "own answer verifies");
    String::from_utf8(c.response.to_vec()).unwrap()
}

/// Server side: the given Authorization value verifies with the password.
fn server_accepts(value: &[u8], pw: &[u8], method: &[u8], body: &[u8]) -> bool {
    let c = parse_authorization(value).expect("authorization parses");
    let ha1 = Ha1::new(
        c.algorithm,
        c.username,
        c.realm, // no escapes in these vectors: wire form == plain
        pw,
    );
    verify(&c, &ha1, method, body)
}

// ---------------------------------------------------------------- RFC vectors

/// RFC 2617 §3.5: HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life")
/// = 939e7578ed9e3c518a452acee763bce9, HA2 = MD5("GET:/dir/index.html")
/// = 39aff3a2bab6126f332b942af96d3366.
#[test]
fn rfc2617_section_3_5() {
    let ch = br#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let r = answer(
        ch,
        b"Mufasa",
        b"Circle Of Life",
        b"GET",
        b"/dir/index.html",
        b"",
        1,
        b"0a4f113b",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    let auth = br#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    assert!(server_accepts(auth, b"Circle Of Life", b"GET", b""));
    assert!(!server_accepts(auth, b"Circle of Life", b"GET", b""));
    assert!(!server_accepts(auth, b"Circle Of Life", b"POST", b""));
    let ha1 = Ha1::new(
        Algorithm::Md5,
        b"Mufasa",
        b"testrealm@host.com",
        b"Circle Of Life",
    );
    assert_eq!(ha1.as_hex(), b"939e7578ed9e3c518a452acee763bce9");
}

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &[u8] = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

/// RFC 7616 §3.9.1: the same GET answered with MD5 and with SHA-256.
#[test]
fn rfc7616_section_3_9_1() {
    for (alg, want) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let ch = format!(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, nonce="{RFC7616_NONCE}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        );
        let r = answer(
            ch.as_bytes(),
            b"Mufasa",
            b"Circle of Life",
            b"GET",
            b"/dir/index.html",
            b"",
            1,
            RFC7616_CNONCE,
        );
        assert_eq!(r, want, "{alg}");
        // The RFC's Authorization header, parameters in its order.
        let auth = format!(
            r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm={alg}, nonce="{RFC7616_NONCE}", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="{want}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        );
        assert!(
            server_accepts(auth.as_bytes(), b"Circle of Life", b"GET", b""),
            "{alg}"
        );
        let c = parse_authorization(auth.as_bytes()).unwrap();
        assert_eq!(
            c.opaque,
            Some(&b"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"[..])
        );
        assert_eq!((c.nc, c.qop), (Some(1), Some(Qop::Auth)));
    }
}

// ------------------------------------------------------ SIP-style vectors
// Expected values computed independently with Python hashlib, run once:
//   md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  (sha256 likewise)
// and pasted here together with the intermediate HA1/HA2.

const SDP: &[u8] = b"v=0\r\no=bob 2890844527 2890844527 IN IP4 192.0.2.4\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// MD5 without qop (RFC 2069 style, still common in SIP):
/// HA1 = MD5("alice:atlanta.example.com:secret123") = b868287008d813b65e0b2e083f3a662e
/// HA2 = MD5("REGISTER:sip:atlanta.example.com")    = 29d4e618a9d0ca0ac6b3752f97985ed2
/// response = MD5(HA1 ":" "ea9c8e88df84f1cec4341ae6cbe5a359" ":" HA2)
///          = 8492e06df827577d665b99ab44a6a8ec
#[test]
fn sip_md5_no_qop() {
    use md5::{Digest, Md5};
    let ch = br#"Digest realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", algorithm=MD5"#;
    let r = answer(
        ch,
        b"alice",
        b"secret123",
        b"REGISTER",
        b"sip:atlanta.example.com",
        b"",
        1,
        b"unused",
    );
    assert_eq!(r, "8492e06df827577d665b99ab44a6a8ec");

    // Cross-check with the md-5 crate directly, following the formula.
    let hx = |s: &[u8]| -> String { Md5::digest(s).iter().map(|b| format!("{b:02x}")).collect() };
    let ha1 = hx(b"alice:atlanta.example.com:secret123");
    let ha2 = hx(b"REGISTER:sip:atlanta.example.com");
    assert_eq!(ha1, "b868287008d813b65e0b2e083f3a662e");
    assert_eq!(ha2, "29d4e618a9d0ca0ac6b3752f97985ed2");
    assert_eq!(
        hx(format!("{ha1}:ea9c8e88df84f1cec4341ae6cbe5a359:{ha2}").as_bytes()),
        r
    );

    // No qop: no cnonce, qop or nc on the wire.
    let chp = parse_challenge(ch).unwrap();
    let mut out = Vec::new();
    let ha1 = Ha1::from_challenge(&chp, b"alice", b"secret123");
    write_authorization(
        &mut out,
        &chp,
        b"alice",
        &ha1,
        b"REGISTER",
        b"sip:atlanta.example.com",
        b"",
        1,
        b"x",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"Digest username="alice", realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", uri="sip:atlanta.example.com", response="8492e06df827577d665b99ab44a6a8ec", algorithm=MD5"#
    );
}

/// RFC 8760 (SHA-256 for SIP), qop=auth on an INVITE:
/// HA1 = SHA-256("bob:biloxi.example.com:zanzibar")
///     = 99c7a074144922730f8c921decd75800202dc0534ebd20ab514af2c60ffc9073
/// HA2 = SHA-256("INVITE:sip:bob@biloxi.example.com")
///     = 1ec13dc1510ec88c236e379304f09acef8a4bd987612f712d6157aac44b82055
/// response = SHA-256(HA1:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:HA2)
#[test]
fn rfc8760_sha256_sip() {
    let ch = br#"Digest realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", algorithm=SHA-256, qop="auth""#;
    let r = answer(
        ch,
        b"bob",
        b"zanzibar",
        b"INVITE",
        b"sip:bob@biloxi.example.com",
        b"",
        1,
        b"0a4f113b",
    );
    assert_eq!(
        r,
        "6beb7b2bfe7a50d425314e7961c7f01bcd8afed8bf5c87c2f5479d1dca2d498f"
    );
    let ha1 = Ha1::new(
        Algorithm::Sha256,
        b"bob",
        b"biloxi.example.com",
        b"zanzibar",
    );
    assert_eq!(
        ha1.as_hex(),
        b"99c7a074144922730f8c921decd75800202dc0534ebd20ab514af2c60ffc9073"
    );
}

/// SHA-256-sess with auth-int over an SDP body, nc=2:
/// HA1-sess = SHA-256(HA1 ":" nonce ":" "f2/wE4q74E6z")
///          = 27772be0612c40704910ff62bee0f18f59aa064aa86b5fb2b7b832ee880f8dbe
/// H(body)  = 845c2c088a81bd5f8df875066c019e1b757b1c33cfb4c2ef8c7e698cb4721e7e
/// HA2      = SHA-256("INVITE:sip:bob@biloxi.example.com:" H(body))
///          = b79ab2985156967bdf094bc6c7a3dc41755c7dc90e4d2582e62c7ac906a01e69
#[test]
fn sha256_sess_auth_int() {
    let ch = br#"Digest realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", algorithm=SHA-256-sess, qop="auth-int""#;
    let r = answer(
        ch,
        b"bob",
        b"zanzibar",
        b"INVITE",
        b"sip:bob@biloxi.example.com",
        SDP,
        2,
        b"f2/wE4q74E6z",
    );
    assert_eq!(
        r,
        "2b4740b603fdd153d56017623bd6fc038c356daac1735779faa9b2e662b6826a"
    );
}

/// MD5-sess, qop=auth, nc=10:
/// HA1-sess = MD5("b868287008d813b65e0b2e083f3a662e:ea9c8e88df84f1cec4341ae6cbe5a359:c0ffee")
///          = 26c2ebf80e9b0fb4ca0c686f53c71a92
#[test]
fn md5_sess_auth() {
    let ch = br#"Digest realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", algorithm=MD5-sess, qop="auth""#;
    let r = answer(
        ch,
        b"alice",
        b"secret123",
        b"REGISTER",
        b"sip:atlanta.example.com",
        b"",
        10,
        b"c0ffee",
    );
    assert_eq!(r, "d6ff14c508f93a449b8e73ee55a83e0d");
}

/// MD5 auth-int: H(body) = ae63a2cf100ef0e2485f5c7ff48d4edc,
/// HA2 = MD5("INVITE:sip:bob@biloxi.example.com:" H(body)) = fbf40303356d508f56ee6ca5d1fb1fe3.
/// A changed body must not verify.
#[test]
fn md5_auth_int_covers_body() {
    let ch = br#"Digest realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", qop="auth-int""#;
    let r = answer(
        ch,
        b"alice",
        b"secret123",
        b"INVITE",
        b"sip:bob@biloxi.example.com",
        SDP,
        1,
        b"c0ffee",
    );
    assert_eq!(r, "a59d6d631c3ffd7d2d2c71381c1a10dc");

    let chp = parse_challenge(ch).unwrap();
    let ha1 = Ha1::from_challenge(&chp, b"alice", b"secret123");
    let mut v = Vec::new();
    write_authorization(
        &mut v,
        &chp,
        b"alice",
        &ha1,
        b"INVITE",
        b"sip:bob@biloxi.example.com",
        SDP,
        1,
        b"c0ffee",
    )
    .unwrap();
    let c = parse_authorization(&v).unwrap();
    assert!(verify(&c, &ha1, b"INVITE", SDP));
    assert!(!verify(&c, &ha1, b"INVITE", &SDP[1..]));
}

/// With both qops offered the client picks `auth`; clearing `qop_auth`
/// forces `auth-int`.
#[test]
fn qop_choice() {
    let mut ch = parse_challenge(br#"Digest realm="r", nonce="n", qop="auth-int,auth""#).unwrap();
    assert_eq!(ch.chosen_qop(), Some(Qop::Auth));
    ch.qop_auth = false;
    let ha1 = Ha1::from_challenge(&ch, b"u", b"p");
    let mut v = Vec::new();
    write_authorization(
        &mut v,
        &ch,
        b"u",
        &ha1,
        b"REGISTER",
        b"sip:r",
        b"",
        7,
        b"cn",
    )
    .unwrap();
    let c = parse_authorization(&v).unwrap();
    assert_eq!(
        (c.qop, c.nc, c.cnonce),
        (Some(Qop::AuthInt), Some(7), Some(&b"cn"[..]))
    );
}

/// Escaped realm and user: hashed unescaped, echoed escaped.
#[test]
fn escapes_hash_as_plain() {
    let ch = parse_challenge(br#"Digest realm="a \"quoted\" realm", nonce="n\\1""#).unwrap();
    assert_eq!(ch.realm, br#"a \"quoted\" realm"#);
    let ha1 = Ha1::from_challenge(&ch, b"us\"er", b"pw");
    assert_eq!(
        ha1,
        Ha1::new(Algorithm::Md5, b"us\"er", b"a \"quoted\" realm", b"pw")
    );
    let mut v = Vec::new();
    write_authorization(
        &mut v,
        &ch,
        b"us\"er",
        &ha1,
        b"REGISTER",
        b"sip:x",
        b"",
        1,
        b"c",
    )
    .unwrap();
    let c = parse_authorization(&v).unwrap();
    assert_eq!(c.username, br#"us\"er"#);
    assert!(sipstorm::auth::wire_eq(c.username, b"us\"er"));
    assert!(verify(&c, &ha1, b"REGISTER", b""));
    // Independent: MD5("us\"er:a \"quoted\" realm:pw"), nonce unescaped to n\1.
    use md5::{Digest, Md5};
    let hx = |s: &[u8]| -> String { Md5::digest(s).iter().map(|b| format!("{b:02x}")).collect() };
    let ha2 = hx(b"REGISTER:sip:x");
    let want = hx(format!("{}:n\\1:{ha2}", hx(b"us\"er:a \"quoted\" realm:pw")).as_bytes());
    assert_eq!(c.response, want.as_bytes());
}

// ------------------------------------------------------- challenge parsing

#[test]
fn challenge_table() {
    let base = Challenge::new(b"r", b"n", Algorithm::Md5);
    type Row = (&'static [u8], Result<Challenge<'static>, AuthError>);
    let rows: Vec<Row> = vec![
        (b"Digest realm=\"r\", nonce=\"n\"", Ok(base)),
        (b"Digest realm=r,nonce=n", Ok(base)),
        (b"  dIgEsT   REALM = \"r\" ,\r\n\tNonce=\"n\"  ", Ok(base)),
        (b"Digest realm=\"r\",,, nonce=\"n\",", Ok(base)),
        (
            b"Digest nonce=\"n\", stale=TRUE, realm=\"r\", algorithm=sha-256-SESS, qop=\"auth,auth-int\", opaque=\"o\", domain=\"sip:a sip:b\"",
            Ok(Challenge {
                stale: true,
                algorithm: Algorithm::Sha256Sess,
                qop_auth: true,
                qop_auth_int: true,
                opaque: Some(b"o"),
                domain: Some(b"sip:a sip:b"),
                ..base
            }),
        ),
        (b"Digest realm=\"r\", nonce=\"n\", stale=false", Ok(base)),
        (b"Digest realm=\"r\", nonce=\"n\", stale=\"true\"", Ok(Challenge { stale: true, ..base })),
        (b"Digest realm=\"r\", nonce=\"n\", stale=yes", Ok(base)),
        (b"Digest realm=\"r\", nonce=\"n\", algorithm=\"MD5\"", Ok(base)),
        (b"Digest realm=\"r\", nonce=\"n\", qop=auth", Ok(Challenge { qop_auth: true, ..base })),
        (
            b"Digest realm=\"r\", nonce=\"n\", qop=\" auth-int , token \"",
            Ok(Challenge { qop_auth_int: true, ..base }),
        ),
        (b"Digest realm=\"r\", nonce=\"n\", charset=UTF-8, userhash=false, x-ext=\"a,b\"", Ok(base)),
        (b"Digest realm=\"a\\\"b\", nonce=\"n\"", Ok(Challenge { realm: b"a\\\"b", ..base })),
        (b"Digest realm=\"\", nonce=\"n\"", Ok(Challenge { realm: b"", ..base })),
        (b"Digest realm=\"r\", nonce=ab/cd+ef==", Ok(Challenge { nonce: b"ab/cd+ef==", ..base })),
        // errors
        (b"Digest nonce=\"n\"", Err(AuthError::MissingParam("realm"))),
        (b"Digest realm=\"r\"", Err(AuthError::MissingParam("nonce"))),
        (b"Digest", Err(AuthError::MissingParam("realm"))),
        (b"Basic realm=\"r\"", Err(AuthError::NotDigest)),
        (b"", Err(AuthError::NotDigest)),
        (b"\xff\xfe", Err(AuthError::NotDigest)),
        (b"Digest realm=\"r\", realm=\"s\", nonce=\"n\"", Err(AuthError::DuplicateParam("realm"))),
        (b"Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256", Err(AuthError::UnsupportedAlgorithm)),
        (b"Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"", Err(AuthError::UnsupportedQop)),
        (b"Digest realm=\"r\", nonce=\"n", Err(AuthError::Syntax { pos: 26, what: "closing quote" })),
        (b"Digest realm=\"r\" nonce=\"n\"", Err(AuthError::Syntax { pos: 17, what: "',' between parameters" })),
        (b"Digest realm", Err(AuthError::Syntax { pos: 12, what: "'=' after parameter name" })),
        (b"Digest realm=", Err(AuthError::Syntax { pos: 13, what: "parameter value" })),
        (b"Digest \"realm\"=r", Err(AuthError::Syntax { pos: 7, what: "parameter name" })),
    ];
    for (input, want) in rows {
        assert_eq!(
            parse_challenge(input),
            want,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn challenge_write_parse_round_trip() {
    let ch = Challenge {
        opaque: Some(b"op"),
        qop_auth: true,
        qop_auth_int: true,
        stale: true,
        domain: Some(b"sip:example.com"),
        ..Challenge::new(b"re\\\"alm", b"nonce", Algorithm::Sha256)
    };
    let mut v = Vec::new();
    write_challenge(&mut v, &ch);
    assert_eq!(
        String::from_utf8(v.clone()).unwrap(),
        r#"Digest realm="re\"alm", nonce="nonce", opaque="op", algorithm=SHA-256, qop="auth,auth-int", stale=TRUE, domain="sip:example.com""#
    );
    assert_eq!(parse_challenge(&v), Ok(ch));
    let minimal = Challenge::new(b"r", b"n", Algorithm::Md5Sess);
    v.clear();
    write_challenge(&mut v, &minimal);
    assert_eq!(v, br#"Digest realm="r", nonce="n", algorithm=MD5-sess"#);
    assert_eq!(parse_challenge(&v), Ok(minimal));
}

// -------------------------------------------------- authorization parsing

#[test]
fn authorization_table() {
    let full = br#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="0123", algorithm=SHA-256, cnonce="c", qop=auth-int, nc=0000001f, opaque="o""#;
    assert_eq!(
        parse_authorization(full),
        Ok(Credentials {
            username: b"u",
            realm: b"r",
            nonce: b"n",
            uri: b"sip:x",
            response: b"0123",
            algorithm: Algorithm::Sha256,
            cnonce: Some(b"c"),
            nc: Some(31),
            qop: Some(Qop::AuthInt),
            opaque: Some(b"o"),
        })
    );
    let min = br#"DIGEST URI="sip:x",Response="0123",nonce="n",realm="r",username="u""#;
    let c = parse_authorization(min).unwrap();
    assert_eq!(
        (c.algorithm, c.qop, c.nc, c.cnonce, c.opaque),
        (Algorithm::Md5, None, None, None, None)
    );

    let req = r#"username="u", realm="r", nonce="n", uri="sip:x", response="0""#;
    let errs: &[(&str, AuthError)] = &[
        (
            r#"realm="r", nonce="n", uri="sip:x", response="0""#,
            AuthError::MissingParam("username"),
        ),
        (
            r#"username="u", nonce="n", uri="sip:x", response="0""#,
            AuthError::MissingParam("realm"),
        ),
        (
            r#"username="u", realm="r", uri="sip:x", response="0""#,
            AuthError::MissingParam("nonce"),
        ),
        (
            r#"username="u", realm="r", nonce="n", response="0""#,
            AuthError::MissingParam("uri"),
        ),
        (
            r#"username="u", realm="r", nonce="n", uri="sip:x""#,
            AuthError::MissingParam("response"),
        ),
        (
            &format!("{req}, qop=auth, nc=00000001"),
            AuthError::MissingParam("cnonce"),
        ),
        (
            &format!(r#"{req}, qop=auth, cnonce="c""#),
            AuthError::MissingParam("nc"),
        ),
        (
            &format!(r#"{req}, qop=auth, cnonce="c", nc=1"#),
            AuthError::BadNonceCount,
        ),
        (
            &format!(r#"{req}, qop=auth, cnonce="c", nc=0000000A"#),
            AuthError::BadNonceCount,
        ),
        (
            &format!(r#"{req}, qop=auth, cnonce="c", nc=0000000g"#),
            AuthError::BadNonceCount,
        ),
        (
            &format!(r#"{req}, qop=auth, cnonce="c", nc=000000001"#),
            AuthError::BadNonceCount,
        ),
        (
            &format!(r#"{req}, qop=AUTH, cnonce="c", nc=00000001"#),
            AuthError::UnsupportedQop,
        ),
        (
            &format!(r#"{req}, qop="auth,auth-int", cnonce="c", nc=00000001"#),
            AuthError::UnsupportedQop,
        ),
        (
            &format!("{req}, algorithm=SHA-512"),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            &format!(r#"{req}, uri="sip:y""#),
            AuthError::DuplicateParam("uri"),
        ),
    ];
    for (params, want) in errs {
        let v = format!("Digest {params}");
        assert_eq!(parse_authorization(v.as_bytes()), Err(*want), "{v}");
    }
    assert_eq!(
        parse_authorization(b"Basic dXNlcjpwYXNz"),
        Err(AuthError::NotDigest)
    );
}

#[test]
fn verify_rejects_mismatches() {
    let ch =
        parse_challenge(br#"Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess"#).unwrap();
    let ha1 = Ha1::from_challenge(&ch, b"u", b"p");
    let mut v = Vec::new();
    write_authorization(
        &mut v,
        &ch,
        b"u",
        &ha1,
        b"REGISTER",
        b"sip:r",
        b"",
        3,
        b"cn",
    )
    .unwrap();
    let good = parse_authorization(&v).unwrap();
    assert!(verify(&good, &ha1, b"REGISTER", b""));
    let upper = good.response.to_ascii_uppercase();
    let short = &good.response[1..];
    let tweaks: [fn(&mut Credentials<'_>); 7] = [
        |c| c.nc = Some(4),
        |c| c.cnonce = Some(b"cm"),
        |c| c.cnonce = None,
        |c| c.nonce = b"m",
        |c| c.uri = b"sip:s",
        |c| c.qop = None,
        |c| c.algorithm = Algorithm::Sha256Sess,
    ];
    for (i, t) in tweaks.iter().enumerate() {
        let mut c = good;
        t(&mut c);
        assert!(!verify(&c, &ha1, b"REGISTER", b""), "tweak {i}");
    }
    for resp in [short, &upper[..]] {
        let c = Credentials {
            response: resp,
            ..good
        };
        assert!(!verify(&c, &ha1, b"REGISTER", b""));
    }
    assert!(!verify(
        &good,
        &Ha1::new(Algorithm::Md5, b"u", b"r", b"q"),
        b"REGISTER",
        b""
    ));
    assert!(!verify(&good, &ha1, b"INVITE", b""));
}

// ------------------------------------------------------------ nonce mint

#[test]
fn nonce_fresh_stale_forged() {
    let mut mint = NonceMint::new([7; 32]);
    let mut buf = [0u8; NONCE_LEN];
    let n = mint.mint(1_000, &mut buf).to_vec();
    assert_eq!(n.len(), NONCE_LEN);
    assert!(
        n.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    );
    // (now, expected): fresh for the lifetime, stale after it, and never
    // accepted when stamped after now (issue 13: a nonce from the future
    // counted as fresh).
    for (now, want) in [
        (1_000, NonceCheck::Fresh),
        (1_030, NonceCheck::Fresh),
        (1_031, NonceCheck::Stale),
        (999, NonceCheck::Invalid),
        (0, NonceCheck::Invalid),
    ] {
        assert_eq!(mint.check(&n, now, 30), want, "now {now}");
    }
    assert_eq!(NonceMint::timestamp(&n), Some(1_000));

    // Another worker with the same secret knows it is genuine but does not
    // accept it (its nonce counts are the minter's); another secret does not
    // know it at all.
    assert_eq!(
        NonceMint::with_stream([7; 32], 3).check(&n, 1_000, 30),
        NonceCheck::Foreign
    );
    assert_eq!(
        NonceMint::new([8; 32]).check(&n, 1_000, 30),
        NonceCheck::Invalid
    );

    // Forgeries: every single-digit change, re-dating, truncation, case.
    for i in 0..NONCE_LEN {
        let mut f = n.clone();
        f[i] = if f[i] == b'0' { b'1' } else { b'0' };
        assert_eq!(mint.check(&f, 1_000, 30), NonceCheck::Invalid, "digit {i}");
    }
    let mut redated = n.clone();
    redated[..16].copy_from_slice(b"00000000000003e8"); // same time, fine
    assert_eq!(mint.check(&redated, 1_000, 30), NonceCheck::Fresh);
    redated[..16].copy_from_slice(b"00000000000003f0");
    assert_eq!(mint.check(&redated, 1_000, 30), NonceCheck::Invalid);
    assert_eq!(
        mint.check(&n[..NONCE_LEN - 1], 1_000, 30),
        NonceCheck::Invalid
    );
    assert_eq!(mint.check(b"", 1_000, 30), NonceCheck::Invalid);
    assert_eq!(
        mint.check(&n.to_ascii_uppercase(), 1_000, 30),
        NonceCheck::Invalid
    );

    // Successive nonces in the same second differ, and across streams too.
    let mut seen = std::collections::HashSet::new();
    seen.insert(n);
    let mut other = NonceMint::with_stream([7; 32], 1);
    for _ in 0..500 {
        assert!(seen.insert(mint.mint(1_000, &mut buf).to_vec()));
        assert!(seen.insert(other.mint(1_000, &mut buf).to_vec()));
    }
    assert!(!format!("{mint:?}").contains("7, 7"));
}

/// The full server loop: mint, challenge, answer, check, verify.
#[test]
fn server_round_trip() {
    let mut mint = NonceMint::new(*b"0123456789abcdef0123456789abcdef");
    let mut nb = [0u8; NONCE_LEN];
    let nonce = mint.mint(50, &mut nb);
    let mut ch = Challenge::new(b"sipstorm", nonce, Algorithm::Sha256);
    ch.qop_auth = true;
    ch.opaque = Some(b"xyz");
    let mut www = Vec::new();
    write_challenge(&mut www, &ch);

    let got = parse_challenge(&www).unwrap();
    let ha1c = Ha1::from_challenge(&got, b"u000001", b"pw-u000001");
    let mut authz = Vec::new();
    write_authorization(
        &mut authz,
        &got,
        b"u000001",
        &ha1c,
        b"REGISTER",
        b"sip:127.0.0.1",
        b"",
        1,
        b"deadbeef",
    )
    .unwrap();

    let c = parse_authorization(&authz).unwrap();
    assert_eq!(c.opaque, Some(&b"xyz"[..]));
    assert_eq!(mint.check(c.nonce, 60, 30), NonceCheck::Fresh);
    let ha1s = Ha1::new(Algorithm::Sha256, b"u000001", b"sipstorm", b"pw-u000001");
    assert!(verify(&c, &ha1s, b"REGISTER", b""));
    assert_eq!(mint.check(c.nonce, 81, 30), NonceCheck::Stale);
}
