//! SIP codec benchmarks: parse and build REGISTER, 401 with a digest
//! challenge, INVITE with SDP (~900 bytes) and its 200 OK; and the same
//! bytes parsed by the `rsip` crate in the same run, for the ratio.
//!
//! Fairness: our closures parse, then read the top Via branch, Call-ID,
//! CSeq number and From tag through the typed accessors; the `rsip`
//! closures read the same four fields through rsip's typed headers.
//! `rsip_parse_only` is rsip without any field access (its lower bound).
//!
//! Run: `cargo bench --bench sip_codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use rsip::prelude::*;
use sipstorm::sip::{self, Builder, Method};

const REGISTER: &str = "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
From: <sip:u000001@example.com>;tag=456248
To: <sip:u000001@example.com>
Call-ID: 843817637684230@192.0.2.10
CSeq: 1826 REGISTER
Contact: <sip:u000001@192.0.2.10:5060;transport=udp>;expires=3600
User-Agent: sipstorm/0.1
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
Expires: 3600
Content-Length: 0

";

const CHALLENGE: &str = "SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10
From: <sip:u000001@example.com>;tag=456248
To: <sip:u000001@example.com>;tag=2493k59kd
Call-ID: 843817637684230@192.0.2.10
CSeq: 1826 REGISTER
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5, qop=\"auth\"
Server: sipstorm/0.1
Content-Length: 0

";

const SDP_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.101
s=-
c=IN IP4 192.0.2.101
t=0 0
m=audio 49170 RTP/AVP 0 8 9 18 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
";

const INVITE_HEAD: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5060
Max-Forwards: 69
Record-Route: <sip:proxy.atlanta.example.com;lr>
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: \"Bob\" <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.101:5060;transport=udp>
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY
Supported: replaces, timer, 100rel
User-Agent: sipstorm/0.1
Content-Type: application/sdp
";

const SDP_ANSWER: &str = "v=0
o=bob 2808844564 2808844564 IN IP4 192.0.2.201
s=-
c=IN IP4 192.0.2.201
t=0 0
m=audio 3456 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
";

const OK_HEAD: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5060
Record-Route: <sip:proxy.atlanta.example.com;lr>
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: \"Bob\" <sip:bob@biloxi.example.com>;tag=8321234356
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:bob@192.0.2.201:5060;transport=udp>
Content-Type: application/sdp
";

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// Head + Content-Length + body, in wire form.
fn with_body(head: &str, body: &str) -> Vec<u8> {
    let body = crlf(body);
    format!(
        "{}Content-Length: {}\r\n\r\n{}",
        crlf(head),
        body.len(),
        body
    )
    .into_bytes()
}

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("register", crlf(REGISTER).into_bytes()),
        ("401_challenge", crlf(CHALLENGE).into_bytes()),
        ("invite_sdp", with_body(INVITE_HEAD, SDP_OFFER)),
        ("200_ok_sdp", with_body(OK_HEAD, SDP_ANSWER)),
    ]
}

/// Our parse plus the four field reads the engine does on every message.
#[inline(never)]
fn ours(bytes: &[u8]) -> usize {
    let m = sip::parse(bytes).expect("valid");
    let branch = m.top_via().and_then(|v| v.branch).map_or(0, <[u8]>::len);
    let call_id = m.call_id().map_or(0, <[u8]>::len);
    let seq = m.cseq().map_or(0, |c| c.seq as usize);
    let tag = m.from().and_then(|f| f.tag).map_or(0, <[u8]>::len);
    branch + call_id + seq + tag
}

/// rsip's parse plus the same four field reads through its typed headers.
#[inline(never)]
fn theirs(bytes: &[u8]) -> usize {
    let m = rsip::SipMessage::try_from(bytes).expect("rsip parses");
    let via = m.via_header().expect("via").typed().expect("typed via");
    let branch = via.branch().map_or(0, |b| b.to_string().len());
    let call_id = m.call_id_header().expect("call-id").value().len();
    let seq = m
        .cseq_header()
        .expect("cseq")
        .typed()
        .expect("typed cseq")
        .seq as usize;
    let tag = m
        .from_header()
        .expect("from")
        .tag()
        .expect("from tag")
        .map_or(0, |t| t.to_string().len());
    branch + call_id + seq + tag
}

/// Builds the message named `name` into `buf` (reused between iterations).
fn build(
    name: &str,
    buf: &mut Vec<u8>,
    invite: &sip::Message<'_>,
    register: &sip::Message<'_>,
    body: &[u8],
) {
    match name {
        "register" => {
            let mut b = Builder::request(buf, &Method::Register, b"sip:example.com");
            b.header_parts(
                b"Via",
                &[
                    b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK",
                    b"776asdhds",
                    b";rport",
                ],
            )
            .header_u32(b"Max-Forwards", 70)
            .header_parts(
                b"From",
                &[b"<sip:", b"u000001", b"@example.com>;tag=", b"456248"],
            )
            .header_parts(b"To", &[b"<sip:", b"u000001", b"@example.com>"])
            .header(b"Call-ID", b"843817637684230@192.0.2.10")
            .header_parts(b"CSeq", &[b"1826", b" REGISTER"])
            .header(
                b"Contact",
                b"<sip:u000001@192.0.2.10:5060;transport=udp>;expires=3600",
            )
            .header(b"User-Agent", b"sipstorm/0.1")
            .header(b"Allow", b"INVITE, ACK, CANCEL, BYE, OPTIONS")
            .header_u32(b"Expires", 3600);
            b.finish(None, b"");
        }
        "401_challenge" => {
            let mut b = Builder::response_to(
                buf,
                register,
                401,
                sip::reason_phrase(401),
                Some(b"2493k59kd"),
            );
            b.header_parts(
                b"WWW-Authenticate",
                &[
                    b"Digest realm=\"example.com\", nonce=\"",
                    b"ea9c8e88df84f1cec4341ae6cbe5a359",
                    b"\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5, qop=\"auth\"",
                ],
            )
            .header(b"Server", b"sipstorm/0.1");
            b.finish(None, b"");
        }
        "invite_sdp" => {
            let mut b = Builder::request(buf, &Method::Invite, b"sip:bob@biloxi.example.com");
            b.header(
                b"Via",
                b"SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1",
            )
            .header(
                b"Via",
                b"SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5060",
            )
            .header_u32(b"Max-Forwards", 69)
            .header(b"Record-Route", b"<sip:proxy.atlanta.example.com;lr>")
            .header(
                b"From",
                b"\"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl",
            )
            .header(b"To", b"\"Bob\" <sip:bob@biloxi.example.com>")
            .header(b"Call-ID", b"3848276298220188511@atlanta.example.com")
            .header(b"CSeq", b"1 INVITE")
            .header(b"Contact", b"<sip:alice@192.0.2.101:5060;transport=udp>")
            .header(
                b"Allow",
                b"INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY",
            )
            .header(b"Supported", b"replaces, timer, 100rel")
            .header(b"User-Agent", b"sipstorm/0.1");
            b.finish(Some(b"application/sdp"), body);
        }
        _ => {
            let mut b = Builder::response_to(buf, invite, 200, b"OK", Some(b"8321234356"));
            for rr in invite.headers(b"Record-Route") {
                b.header(b"Record-Route", rr);
            }
            b.header(b"Contact", b"<sip:bob@192.0.2.201:5060;transport=udp>");
            b.finish(Some(b"application/sdp"), body);
        }
    }
}

fn bench(c: &mut Criterion) {
    let msgs = messages();
    for (name, bytes) in &msgs {
        eprintln!("{name}: {} bytes", bytes.len());
        assert!(ours(bytes) > 0 && theirs(bytes) > 0, "{name}");
    }

    let mut g = c.benchmark_group("parse");
    for (name, bytes) in &msgs {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("sipstorm/{name}"), |b| {
            b.iter(|| ours(black_box(bytes)))
        });
        g.bench_function(format!("rsip/{name}"), |b| {
            b.iter(|| theirs(black_box(bytes)))
        });
        g.bench_function(format!("rsip_parse_only/{name}"), |b| {
            b.iter(|| rsip::SipMessage::try_from(black_box(&bytes[..])).is_ok())
        });
    }
    g.finish();

    let register = sip::parse(&msgs[0].1).expect("register");
    let invite = sip::parse(&msgs[2].1).expect("invite");
    let mut g = c.benchmark_group("build");
    let mut buf = Vec::with_capacity(2048);
    // Static bodies, so the closure measures only the builder.
    let offer = crlf(SDP_OFFER);
    let answer = crlf(SDP_ANSWER);
    for (name, _) in &msgs {
        let body = match *name {
            "invite_sdp" => offer.as_bytes(),
            "200_ok_sdp" => answer.as_bytes(),
            _ => b"",
        };
        build(name, &mut buf, &invite, &register, body);
        assert!(sip::parse(&buf).is_ok(), "{name} builds a valid message");
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(format!("sipstorm/{name}"), |b| {
            b.iter(|| {
                build(name, &mut buf, &invite, &register, black_box(body));
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// With `SIP_CODEC_COUNT=<n>` set, runs `ours` (or `theirs` when
/// `SIP_CODEC_WHO=rsip`) `n` times on each message and exits, without
/// criterion: the harness for load-independent instruction counts,
/// `valgrind --tool=callgrind --toggle-collect='sip_codec::ours'`.
fn count_mode(n: usize) {
    let rsip = std::env::var("SIP_CODEC_WHO").is_ok_and(|w| w == "rsip");
    let only = std::env::var("SIP_CODEC_MSG").ok();
    let mut sum = 0usize;
    for (name, bytes) in messages() {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for _ in 0..n {
            sum = sum.wrapping_add(if rsip {
                theirs(black_box(&bytes))
            } else {
                ours(black_box(&bytes))
            });
        }
    }
    println!("{sum}");
}

fn main() {
    if let Some(n) = std::env::var("SIP_CODEC_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
