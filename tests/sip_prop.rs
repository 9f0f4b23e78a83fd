//! Property tests: the fast parser against a plain, obviously-correct parser
//! written with `str` methods, on generated messages that use the grammar's
//! freedoms (compact and case-mangled names, whitespace around the colon,
//! folding, comma-joined Vias, shuffled header order, bodies, trailing bytes).

mod sip_common;

use proptest::prelude::*;
use sipstorm::sip::{self, Status};

/// What the naive parser sees.
#[derive(Debug)]
struct Naive {
    start: Vec<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Canonical lower-case long name of a header name (compact forms expanded).
fn canon(name: &str) -> String {
    let l = name.to_ascii_lowercase();
    let long = match l.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        _ => return l,
    };
    long.to_string()
}

/// Collapses every run of whitespace (including folded CRLFs) to one space.
fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The plain parser: split head and body on the first blank line, lines on
/// CRLF, unfold continuation lines, split each header on the first colon.
fn naive(buf: &[u8]) -> Naive {
    let text = std::str::from_utf8(buf).expect("generated messages are ASCII");
    let (head, rest) = text.split_once("\r\n\r\n").expect("blank line");
    let mut lines = head.split("\r\n");
    let start = lines
        .next()
        .unwrap()
        .splitn(3, ' ')
        .map(str::to_string)
        .collect();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = headers.last_mut().unwrap();
            last.1 = norm(&format!("{} {}", last.1, line));
        } else {
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.trim().to_string(), norm(v)));
        }
    }
    let cl: usize = headers
        .iter()
        .find(|(n, _)| canon(n) == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    Naive {
        start,
        headers,
        body: rest.as_bytes()[..cl].to_vec(),
    }
}

impl Naive {
    fn first(&self, long: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| canon(n) == long)
            .map(|(_, v)| v.as_str())
    }
}

/// A header name in one of its spellings.
fn spelled(long: &'static str, compact: Option<&'static str>) -> impl Strategy<Value = String> {
    let mangled = proptest::collection::vec(any::<bool>(), long.len()).prop_map(move |up| {
        long.chars()
            .zip(up)
            .map(|(c, u)| {
                if u {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect::<String>()
    });
    match compact {
        Some(c) => prop_oneof![
            Just(long.to_string()),
            Just(c.to_string()),
            Just(c.to_uppercase()),
            mangled
        ]
        .boxed(),
        None => prop_oneof![Just(long.to_string()), mangled].boxed(),
    }
}

/// `name WS ":" WS value`, the value possibly folded at one of its spaces.
fn line(
    name: impl Strategy<Value = String>,
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    let ws_before = prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")];
    let ws_after = prop_oneof![Just(""), Just(" "), Just("\t"), Just("   ")];
    (name, ws_before, ws_after, value, any::<bool>()).prop_map(|(n, b, a, v, fold)| {
        let v = if fold {
            v.replacen(' ', "\r\n  ", 1)
        } else {
            v
        };
        format!("{n}{b}:{a}{v}")
    })
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}\\.example\\.com",
        "192\\.0\\.2\\.[0-9]{1,3}",
        "\\[2001:db8::[0-9a-f]{1,4}\\]"
    ]
}

fn via_parm() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("UDP"), Just("TCP"), Just("TLS")],
        host(),
        proptest::option::of(1u16..65535),
        "[a-zA-Z0-9]{1,12}",
        any::<bool>(),
    )
        .prop_map(|(t, h, p, b, rport)| {
            let port = p.map(|p| format!(":{p}")).unwrap_or_default();
            let rport = if rport { ";rport" } else { "" };
            format!("SIP/2.0/{t} {h}{port} ;branch=z9hG4bK{b}{rport}")
        })
}

fn name_addr(tag: bool) -> impl Strategy<Value = String> {
    (
        proptest::option::of("[A-Za-z]{1,8}( [A-Za-z]{1,8})?"),
        "[a-z0-9]{1,8}",
        host(),
        token(),
        any::<bool>(),
    )
        .prop_map(move |(display, user, host, t, quoted)| {
            let d = match display {
                Some(d) if quoted => format!("\"{d}\" "),
                Some(d) => format!("{d} "),
                None => String::new(),
            };
            let tag = if tag {
                format!(";tag={t}")
            } else {
                String::new()
            };
            format!("{d}<sip:{user}@{host}>{tag}")
        })
}

#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    /// Length of the message proper (without trailing garbage).
    len: usize,
}

fn message() -> impl Strategy<Value = Generated> {
    let method = prop_oneof![
        Just("INVITE"),
        Just("REGISTER"),
        Just("OPTIONS"),
        Just("BYE"),
        Just("ACK"),
        Just("X-NEW")
    ];
    let start = (
        any::<bool>(),
        method.clone(),
        "[a-z0-9]{1,8}",
        host(),
        100u16..700,
        "[A-Za-z ]{0,12}",
    );
    let vias = proptest::collection::vec(
        (
            spelled("Via", Some("v")),
            proptest::collection::vec(via_parm(), 1..3),
        ),
        1..4,
    );
    let extras = proptest::collection::vec(
        line("X-[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ -~]{0,20}[!-~])?"),
        0..5,
    );
    (
        start,
        vias,
        line(spelled("From", Some("f")), name_addr(true)),
        line(spelled("To", Some("t")), name_addr(false)),
        line(
            spelled("Call-ID", Some("i")),
            "[a-zA-Z0-9]{1,16}(@[a-z0-9.]{1,12})?",
        ),
        (1u32..2_147_483_647, spelled("CSeq", None)),
        proptest::option::of(line(
            spelled("Max-Forwards", None),
            (0u32..256).prop_map(|n| n.to_string()),
        )),
        extras,
        (
            "[a-z=\r\n ]{0,40}",
            spelled("Content-Length", Some("l")),
            "[ -~]{0,10}",
        ),
    )
        .prop_flat_map(
            |(
                start,
                vias,
                from,
                to,
                call_id,
                (seq, cseq_name),
                mf,
                extras,
                (body, cl_name, trailing),
            )| {
                let (is_req, method, user, host, code, reason) = start;
                let mut lines = vec![from, to, call_id, format!("{cseq_name}: {seq} {method}")];
                for (name, parms) in vias {
                    lines.push(format!("{name}: {}", parms.join(" , ")));
                }
                lines.extend(mf);
                lines.extend(extras);
                lines.push(format!("{cl_name}: {}", body.len()));
                (
                    Just((is_req, method, user, host, code, reason, body, trailing)),
                    Just(lines).prop_shuffle(),
                )
            },
        )
        .prop_map(
            |((is_req, method, user, host, code, reason, body, trailing), lines)| {
                let start = if is_req {
                    format!("{method} sip:{user}@{host} SIP/2.0")
                } else {
                    format!("SIP/2.0 {code} {reason}")
                };
                let mut s = start;
                for l in lines {
                    s.push_str("\r\n");
                    s.push_str(&l);
                }
                s.push_str("\r\n\r\n");
                s.push_str(&body);
                let len = s.len();
                s.push_str(&trailing);
                Generated {
                    bytes: s.into_bytes(),
                    len,
                }
            },
        )
}

fn branch_of(via_value: &str) -> Option<String> {
    let first = via_value.split(',').next()?;
    let at = first.find(";branch=")?;
    Some(first[at + 8..].split(';').next()?.trim().to_string())
}

fn tag_of(value: &str) -> Option<String> {
    let at = value.find(";tag=")?;
    Some(value[at + 5..].split(';').next()?.trim().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn fast_parser_agrees_with_naive_parser(g in message()) {
        let m = sip::parse(&g.bytes).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&g.bytes))))?;
        let n = naive(&g.bytes[..g.len]);

        // Start line.
        if m.is_request() {
            prop_assert_eq!(m.method().unwrap().as_bytes(), n.start[0].as_bytes());
            prop_assert_eq!(m.uri().unwrap(), n.start[1].as_bytes());
        } else {
            prop_assert_eq!(m.status().unwrap().to_string(), n.start[1].clone());
            prop_assert_eq!(m.reason().unwrap(), n.start.get(2).map_or(&b""[..], |r| r.as_bytes()));
        }

        // Every header line, in order, names as written and values up to whitespace.
        let fast: Vec<(String, String)> = m.all_headers()
            .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), norm(std::str::from_utf8(v).unwrap())))
            .collect();
        prop_assert_eq!(&fast, &n.headers);

        // Lookups by long name, compact name and odd case.
        for long in ["via", "from", "to", "call-id", "cseq", "content-length", "max-forwards"] {
            let want = n.first(long).map(str::to_string);
            let got = m.header(long.as_bytes()).map(|v| norm(std::str::from_utf8(v).unwrap()));
            prop_assert_eq!(&got, &want);
            let upper = m.header(long.to_uppercase().as_bytes()).map(|v| norm(std::str::from_utf8(v).unwrap()));
            prop_assert_eq!(&upper, &want);
            let count = n.headers.iter().filter(|(k, _)| canon(k) == long).count();
            prop_assert_eq!(m.headers(long.as_bytes()).count(), count);
        }
        prop_assert_eq!(m.header(b"i"), m.header(b"Call-ID"));

        // Typed views.
        prop_assert_eq!(m.call_id().unwrap(), n.first("call-id").unwrap().as_bytes());
        let cseq: Vec<&str> = n.first("cseq").unwrap().split(' ').collect();
        prop_assert_eq!(m.cseq().unwrap().seq.to_string(), cseq[0]);
        prop_assert_eq!(m.cseq().unwrap().method.as_bytes(), cseq[1].as_bytes());
        let top_branch = m.top_via().unwrap().branch.map(|b| String::from_utf8(b.to_vec()).unwrap());
        prop_assert_eq!(top_branch, branch_of(n.first("via").unwrap()));
        let via_count: usize = n.headers.iter().filter(|(k, _)| canon(k) == "via").map(|(_, v)| v.split(',').count()).sum();
        prop_assert_eq!(m.vias().count(), via_count);
        let from_tag = m.from().unwrap().tag.map(|b| String::from_utf8(b.to_vec()).unwrap());
        prop_assert_eq!(from_tag, tag_of(n.first("from").unwrap()));
        prop_assert_eq!(m.to().unwrap().tag, None);
        let mf = n.first("max-forwards").map(|v| v.parse::<u32>().unwrap());
        prop_assert_eq!(m.max_forwards(), mf);

        // Body and message extent.
        prop_assert_eq!(m.body(), &n.body[..]);
        prop_assert_eq!(m.as_bytes(), &g.bytes[..g.len]);
        sip_common::exercise(&g.bytes);
    }

    #[test]
    fn frame_finds_each_message_in_a_stream(a in message(), b in message(), crlfs in 0usize..3) {
        let mut stream = b"\r\n".repeat(crlfs);
        stream.extend_from_slice(&a.bytes[..a.len]);
        let first = stream.len();
        stream.extend_from_slice(&b.bytes[..b.len]);
        prop_assert_eq!(sip::frame(&stream), Ok(Status::Complete(first)));
        prop_assert_eq!(sip::frame(&stream[first..]), Ok(Status::Complete(b.len)));
        // Every proper prefix of a message is Partial.
        for cut in [0, first / 3, first / 2, first - 1] {
            prop_assert_eq!(sip::frame(&stream[..cut]), Ok(Status::Partial));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        sip_common::exercise(&data);
    }

    #[test]
    fn sip_shaped_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("INVITE sip:a@b SIP/2.0\r\n"), Just("SIP/2.0 200 OK\r\n"), Just("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"),
        Just("v: SIP/2.0/UDP [::1]:5060;rport\r\n"), Just("f: <sip:a@b>;tag=1\r\n"), Just("t: \"x\" <sip:c@d>\r\n"),
        Just("i: abc\r\n"), Just("CSeq: 1 INVITE\r\n"), Just("l: 3\r\n"), Just("m: *\r\n"), Just("Contact: <sip:e@f>;expires=5\r\n"),
        Just("Route: <sip:r;lr>, <sip:s>\r\n"), Just(" folded\r\n"), Just("\r\n"), Just(":"), Just(";"), Just(","),
        Just("\""), Just("<"), Just(">"), Just("\\"), Just("["), Just("]"), Just("="), Just(" "), Just("\t"), Just("abc"),
    ], 0..40)) {
        let s: String = parts.concat();
        sip_common::exercise(s.as_bytes());
    }
}
