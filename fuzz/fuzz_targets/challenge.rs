//! Fuzz `auth::parse_challenge` and `auth::parse_authorization` (sipstorm
//! issue 2). Run: `cargo +nightly fuzz run challenge`.
//!
//! Beyond "never panic" it checks two properties:
//! - a challenge that parses survives `write_challenge` → `parse_challenge`
//!   unchanged, and our own answer to it parses and verifies;
//! - credentials that parse can be verified with any HA1 without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipstorm::auth::{
    Algorithm, Ha1, parse_authorization, parse_challenge, verify, write_authorization,
    write_challenge,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(ch) = parse_challenge(data) {
        let mut w = Vec::new();
        write_challenge(&mut w, &ch);
        assert_eq!(parse_challenge(&w), Ok(ch), "challenge round trip");

        let ha1 = Ha1::from_challenge(&ch, b"fuzz", b"pw");
        let mut a = Vec::new();
        write_authorization(
            &mut a,
            &ch,
            b"fuzz",
            &ha1,
            b"REGISTER",
            b"sip:x",
            data,
            1,
            b"c",
        )
        .expect("HA1 made for this challenge");
        let c = parse_authorization(&a).expect("own authorization parses");
        assert!(verify(&c, &ha1, b"REGISTER", data), "own answer verifies");
    }
    if let Ok(c) = parse_authorization(data) {
        for alg in Algorithm::ALL {
            let _ = verify(
                &c,
                &Ha1::new(alg, c.username, c.realm, b"pw"),
                b"INVITE",
                data,
            );
        }
    }
});
