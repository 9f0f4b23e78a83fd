//! Mutation test: thousands of random byte flips, truncations, insertions,
//! deletions and duplications of valid messages. The parser must never
//! panic, and whatever it accepts must satisfy the invariants checked by
//! `sip_common::exercise` (body matches Content-Length, the response built
//! from an accepted request parses, ...).

mod sip_common;

use sip_common::{exercise, wire};

/// xorshift64*: deterministic, so a failure reproduces from its case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the grammar, favoured by insertions and flips.
const SPECIAL: &[u8] = b":;,\"<>\\[]= \t\r\n@?*/0123456789\x00\x7f\xff";

fn seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2;received=[2001:db8::2]\nMax-Forwards: 70\nFrom: \"A \\\"q\\\"\" <sip:alice@example.com>;tag=9fxced76sl\nTo: Bob <sip:bob@example.com>\nCall-ID: 3848276298220188511@atlanta.example.com\nCSeq: 1 INVITE\nContact: <sip:alice@10.0.0.1:5060>;expires=60;q=0.5, *\nRecord-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\nRoute: <sip:p3.example.com;lr>\nContent-Type: application/sdp\nContent-Length: {CL}\n\nv=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 49170 RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\n",
        "SIP/2.0 401 Unauthorized\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=5060;received=10.0.0.1\nf: <sip:alice@example.com>;tag=1\nt: <sip:alice@example.com>;tag=2\ni: reg-1\nCSeq: 1 REGISTER\nWWW-Authenticate: Digest realm=\"example.com\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\nMin-Expires: 60\nExpires: 3600\nl: 0\n\n",
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\nTo:\n <sip:u@example.com>\nFrom: u<sip:u@example.com>\n\t;tag=3\nCall-ID: r3\nCSeq: 2 REGISTER\nAuthorization: Digest username=\"u\", response=\"x\"\nContact: *\nExpires: 0\nContent-Length: 0\n\n",
    ]
    .iter()
    .map(|s| wire(s))
    .collect();
    v.push(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\r\nf: sip:a@b;tag=1\r\nt: sip:c@d\r\ni: x\r\nCSeq: 1 OPTIONS\r\n\r\nrest".to_vec());
    v
}

fn mutate(rng: &mut Rng, msg: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = msg.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => msg[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => msg[at.min(len - 1)] = SPECIAL[rng.below(SPECIAL.len())],
            2 => msg.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
            3 => msg.truncate(at),
            4 if at < len => {
                let end = (at + 1 + rng.below(16)).min(len);
                msg.drain(at..end);
            }
            5 if at < len => {
                let end = (at + 1 + rng.below(32)).min(len);
                let chunk = msg[at..end].to_vec();
                let to = rng.below(len + 1);
                msg.splice(to..to, chunk);
            }
            _ => {
                let b = rng.next() as u8;
                msg.insert(at, b);
            }
        }
    }
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = seeds();
    for s in &seeds {
        assert!(
            sipstorm::sip::parse(s).is_ok(),
            "seed must be valid: {}",
            String::from_utf8_lossy(s)
        );
    }
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut accepted = 0;
    let cases = 20_000;
    for case in 0..cases {
        let mut m = seeds[case % seeds.len()].clone();
        mutate(&mut rng, &mut m);
        let r = std::panic::catch_unwind(|| exercise(&m));
        assert!(
            r.is_ok(),
            "case {case} panicked on {:?}",
            String::from_utf8_lossy(&m)
        );
        accepted += sipstorm::sip::parse(&m).is_ok() as usize;
    }
    // Both outcomes must be exercised for the test to mean anything.
    assert!(
        accepted > cases / 20 && accepted < cases - cases / 20,
        "accepted {accepted} of {cases}"
    );
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_body() {
    for s in seeds() {
        for cut in 0..s.len() {
            if let Ok(m) = sipstorm::sip::parse(&s[..cut]) {
                // Only a message without Content-Length can lose body bytes and still parse.
                assert!(
                    m.content_length().is_none(),
                    "cut {cut}: {:?}",
                    String::from_utf8_lossy(&s[..cut])
                );
            }
        }
    }
}
