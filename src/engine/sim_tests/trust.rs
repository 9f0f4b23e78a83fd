//! Issue 13: the registrar's authorization, replay and reflection
//! defences, each case driven straight at a server endpoint in virtual
//! time (no network needed: requests in, datagrams out).

use super::*;
use crate::auth::{self, Algorithm, Ha1};

const ATTACKER: &str = "10.0.0.66:5060";
const VICTIM: &str = "10.0.0.77:5060";

/// A server endpoint and a virtual clock.
struct Srv {
    ep: Endpoint,
    now: Instant,
}

impl Srv {
    fn new(sc: ServerConfig) -> Srv {
        let now = Instant::now();
        Srv {
            ep: Endpoint::server(sc, now),
            now,
        }
    }

    /// Hand `req` to the server as coming from `from`; every datagram it
    /// sends right away, with its destination.
    fn send(&mut self, from: &str, req: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.ep.handle(self.now, Flow::udp(addr(from)), req);
        self.drain()
    }

    fn drain(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(to) = self.ep.poll_transmit(&mut buf) {
            out.push((to.peer, std::mem::take(&mut buf)));
        }
        out
    }

    /// Let `d` of virtual time pass, firing timers; what was sent.
    fn wait(&mut self, d: Duration) -> Vec<(SocketAddr, Vec<u8>)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.ep.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }
}

/// The status code of a response.
fn code(resp: &[u8]) -> u16 {
    sip::parse(resp).ok().and_then(|m| m.status()).unwrap_or(0)
}

/// A REGISTER for AOR `to_user` from `from`, with `contacts` (`None`: no
/// Contact header) and extra header lines.
fn register(
    to_user: &str,
    from: &str,
    branch: &str,
    cseq: u32,
    contacts: Option<&str>,
    extra: &str,
) -> Vec<u8> {
    let contact = contacts.map_or(String::new(), |c| format!("Contact: {c}\n"));
    raw_request(&format!(
        "REGISTER sip:10.0.0.2:5060 SIP/2.0\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\nFrom: <sip:{to_user}@10.0.0.2:5060>;tag=t{branch}\n\
         To: <sip:{to_user}@10.0.0.2:5060>\nCall-ID: c{branch}\nCSeq: {cseq} REGISTER\n\
         {contact}Expires: 600\n{extra}Content-Length: 0\n\n"
    ))
}

/// How a test answers a challenge.
#[derive(Debug, Clone, Copy)]
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    /// Answer with this algorithm instead of the one offered.
    algorithm: Option<Algorithm>,
    /// Some(true): qop=auth-int, Some(false): auth, None: no qop at all.
    qop_int: Option<Option<bool>>,
    /// The digest uri, when not the Request-URI.
    uri: Option<&'a str>,
    nc: u32,
}

impl<'a> Answer<'a> {
    fn of(user: &'a str) -> Self {
        Answer {
            user,
            password: "",
            algorithm: None,
            qop_int: None,
            uri: None,
            nc: 1,
        }
    }
}

/// The Authorization line answering the challenge in `resp` as `a` says.
fn authorization(resp: &[u8], method: &str, ruri: &str, a: Answer<'_>) -> String {
    let m = sip::parse(resp).unwrap();
    let hdr = m
        .header(b"WWW-Authenticate")
        .or_else(|| m.header(b"Proxy-Authenticate"))
        .expect("a challenge");
    let mut ch = auth::parse_challenge(hdr).unwrap();
    if let Some(alg) = a.algorithm {
        ch.algorithm = alg;
    }
    match a.qop_int {
        None => {}
        Some(None) => (ch.qop_auth, ch.qop_auth_int) = (false, false),
        Some(Some(int)) => (ch.qop_auth, ch.qop_auth_int) = (!int, int),
    }
    let pw = if a.password.is_empty() {
        format!("pw-{}", a.user)
    } else {
        a.password.to_string()
    };
    let ha1 = Ha1::from_challenge(&ch, a.user.as_bytes(), pw.as_bytes());
    let mut v = Vec::new();
    auth::write_authorization(
        &mut v,
        &ch,
        a.user.as_bytes(),
        &ha1,
        method.as_bytes(),
        a.uri.unwrap_or(ruri).as_bytes(),
        b"",
        a.nc,
        b"0a4f113b",
    )
    .unwrap();
    let name = if m.status() == Some(407) {
        "Proxy-Authorization"
    } else {
        "Authorization"
    };
    format!("{name}: {}\n", String::from_utf8(v).unwrap())
}

/// Register AOR `to_user` authenticated as `a`, from `from`: the final
/// response to the authenticated REGISTER (the request too).
fn auth_register(
    s: &mut Srv,
    to_user: &str,
    from: &str,
    contact: &str,
    a: Answer<'_>,
    tag: &str,
) -> (Vec<u8>, Vec<u8>) {
    let first = register(to_user, from, &format!("{tag}a"), 1, Some(contact), "");
    let r = s.send(from, &first);
    assert_eq!(code(&r[0].1), 401, "{tag}");
    let ah = authorization(&r[0].1, "REGISTER", "sip:10.0.0.2:5060", a);
    let second = register(to_user, from, &format!("{tag}b"), 2, Some(contact), &ah);
    let r = s.send(from, &second);
    assert_eq!(r.len(), 1, "{tag}");
    (r[0].1.clone(), second)
}

/// `user` registers its own address (C), authenticated as itself.
fn register_self(s: &mut Srv, user: &str, tag: &str) -> (Vec<u8>, Vec<u8>) {
    auth_register(s, user, C, &contact_of(user, C), Answer::of(user), tag)
}

fn contact_of(user: &str, at: &str) -> String {
    format!("<sip:{user}@{at}>")
}

/// Issue 13 item 1: an authenticated user could add, replace or remove
/// another user's bindings (`Contact: *` included). RFC 3261 §10.3 step 6:
/// 403 unless the policy lets that user change that AOR.
#[test]
fn aor_takeover_is_forbidden() {
    let mine = AorPolicy::same_user();
    let shared = AorPolicy::from_pairs([("u001", "u001"), ("u001", "u000")]);
    // (policy, authenticated user, AOR user, contact, expected code)
    let cases: [(&AorPolicy, &str, &str, &str, u16); 6] = [
        (&mine, "u001", "u001", "<sip:u001@10.0.0.1:5060>", 200),
        (&mine, "u000", "u001", "<sip:evil@10.0.0.66:5060>", 403),
        (&mine, "u000", "u001", "*", 403),
        (&shared, "u000", "u001", "<sip:u000@10.0.0.1:5060>", 200),
        (&shared, "u002", "u001", "<sip:evil@10.0.0.66:5060>", 403),
        (&shared, "u000", "u000", "<sip:u000@10.0.0.1:5060>", 200),
    ];
    for (i, (policy, auth_user, aor, contact, want)) in cases.into_iter().enumerate() {
        let mut sc = scfg();
        sc.aor_policy = Arc::new(policy.clone());
        let mut s = Srv::new(sc);
        // The victim's own binding first.
        register_self(&mut s, "u001", "v");
        let tag = format!("case{i}");
        let from = if want == 200 { C } else { ATTACKER };
        let mut first = register(aor, from, &format!("{tag}a"), 1, Some(contact), "");
        if contact == "*" {
            first = String::from_utf8(first)
                .unwrap()
                .replace("Expires: 600", "Expires: 0")
                .into_bytes();
        }
        let r = s.send(from, &first);
        assert_eq!(code(&r[0].1), 401, "case {i}");
        let ah = authorization(
            &r[0].1,
            "REGISTER",
            "sip:10.0.0.2:5060",
            Answer::of(auth_user),
        );
        let second = String::from_utf8(first)
            .unwrap()
            .replace(
                "Content-Length: 0",
                &format!("{}Content-Length: 0", ah.replace('\n', "\r\n")),
            )
            .replace(&format!("z9hG4bK{tag}a"), &format!("z9hG4bK{tag}b"));
        let r = s.send(from, second.as_bytes());
        assert_eq!(code(&r[0].1), want, "case {i}: {auth_user} changing {aor}");
        let bound: Vec<_> = s.ep.bindings_of(b"u001").into_iter().map(|b| b.0).collect();
        if want == 403 {
            assert_eq!(
                bound,
                vec![b"sip:u001@10.0.0.1:5060".to_vec()],
                "case {i}: bindings changed"
            );
        }
    }
}

/// Issue 13 item 2: the Timer J absorber keyed on branch, sent-by and
/// method only, and re-ran the registration on the new message with
/// authentication skipped, so a request with the same Via but another To
/// and Contact and no credentials got a 200 and changed bindings.
/// §17.2.3: only the same request is a retransmission, and it only gets
/// the stored response again.
#[test]
fn a_repeated_branch_is_no_retransmission() {
    let mut s = Srv::new(scfg());
    let (ok, req) = register_self(&mut s, "u000", "r");
    assert_eq!(code(&ok), 200);
    // Bindings change afterwards (another contact of u000, authenticated).
    auth_register(
        &mut s,
        "u000",
        C,
        "<sip:u000@10.0.0.1:5070>",
        Answer::of("u000"),
        "s",
    );
    let forged = String::from_utf8(req.clone())
        .unwrap()
        .replace("u000@", "u001@")
        .replace("u000@10.0.0.1", "evil@10.0.0.66");
    let forged_no_auth: String = forged
        .split("\r\n")
        .filter(|l| !l.starts_with("Authorization"))
        .collect::<Vec<_>>()
        .join("\r\n");
    // (what, source, request, expected: the stored 200 byte for byte, or a code)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, Result<Vec<u8>, u16>);
    let cases: [Case<'_>; 4] = [
        ("exact retransmission", C, req.clone(), Ok(ok.clone())),
        (
            "same branch, other AOR, no credentials",
            C,
            forged_no_auth.into_bytes(),
            Err(401),
        ),
        (
            "same branch, other AOR, the old credentials",
            C,
            forged.into_bytes(),
            Err(401),
        ),
        // The same bytes from elsewhere are no retransmission either: its
        // nonce count was used, so it is challenged (never the stored 200).
        (
            "same bytes, another source",
            ATTACKER,
            req.clone(),
            Err(401),
        ),
    ];
    for (what, from, r, want) in cases {
        let got = s.send(from, &r);
        assert_eq!(got.len(), 1, "{what}");
        match want {
            Ok(bytes) => assert_eq!(got[0].1, bytes, "{what}: not the stored response"),
            Err(c) => assert_eq!(code(&got[0].1), c, "{what}"),
        }
        assert!(
            s.ep.bindings_of(b"u001").is_empty(),
            "{what}: u001 got a binding"
        );
    }
    assert_eq!(s.ep.bindings_of(b"u000").len(), 2);
}

/// The stored responses are bounded: beyond `response_store_bytes` the
/// oldest records go, and a retransmission arriving after its response
/// went is handled as a new request (here: challenged, its nonce count
/// being used), never answered from a rebuilt response.
#[test]
fn stored_responses_are_bounded() {
    let mut sc = scfg();
    sc.response_store_bytes = 2048;
    let mut s = Srv::new(sc);
    let mut reqs = Vec::new();
    for i in 0..20 {
        let user = format!("u{i:03}");
        let (ok, req) = register_self(&mut s, &user, &format!("b{i}"));
        assert_eq!(code(&ok), 200);
        let len = ok.len();
        reqs.push((req, ok));
        let st = s.ep.state_sizes();
        assert!(st.absorbers <= 2048 / len, "{st:?}");
    }
    // The newest is still answered from the store, the oldest is not.
    let (req, ok) = reqs.last().unwrap();
    assert_eq!(s.send(C, req)[0].1, *ok);
    let (req, _) = &reqs[0];
    assert_eq!(code(&s.send(C, req)[0].1), 401);
    // Timer J ends every record (64·T1).
    s.wait(Duration::from_secs(33));
    assert_eq!(s.ep.state_sizes().absorbers, 0);
}

/// Issue 13 item 4: the digest checks the caller used to skip.
#[test]
fn digest_must_match_what_was_offered() {
    let cases: [(&str, Algorithm, bool, Answer<'_>, u16); 7] = [
        (
            "as offered",
            Algorithm::Sha256,
            false,
            Answer::of("u000"),
            200,
        ),
        (
            "MD5 to a SHA-256 challenge",
            Algorithm::Sha256,
            false,
            Answer {
                algorithm: Some(Algorithm::Md5),
                ..Answer::of("u000")
            },
            401,
        ),
        (
            "MD5-sess to an MD5 challenge",
            Algorithm::Md5,
            false,
            Answer {
                algorithm: Some(Algorithm::Md5Sess),
                ..Answer::of("u000")
            },
            401,
        ),
        (
            "auth when only auth-int was offered",
            Algorithm::Md5,
            true,
            Answer {
                qop_int: Some(Some(false)),
                ..Answer::of("u000")
            },
            401,
        ),
        (
            "no qop (no nonce count to guard)",
            Algorithm::Md5,
            false,
            Answer {
                qop_int: Some(None),
                ..Answer::of("u000")
            },
            401,
        ),
        (
            "uri is not the Request-URI",
            Algorithm::Md5,
            false,
            Answer {
                uri: Some("sip:elsewhere.example"),
                ..Answer::of("u000")
            },
            400,
        ),
        (
            "auth-int as offered",
            Algorithm::Sha256Sess,
            true,
            Answer::of("u000"),
            200,
        ),
    ];
    for (what, alg, int, answer, want) in cases {
        let mut sc = scfg();
        sc.algorithm = alg;
        sc.qop_auth_int = int;
        let mut s = Srv::new(sc);
        let first = register("u000", C, "d1", 1, Some("<sip:u000@10.0.0.1:5060>"), "");
        let r = s.send(C, &first);
        let ah = authorization(&r[0].1, "REGISTER", "sip:10.0.0.2:5060", answer);
        let second = register("u000", C, "d2", 2, Some("<sip:u000@10.0.0.1:5060>"), &ah);
        let r = s.send(C, &second);
        assert_eq!(code(&r[0].1), want, "{what}");
        assert_eq!(
            s.ep.bindings_of(b"u000").len(),
            usize::from(want == 200),
            "{what}"
        );
    }
}

/// Issue 13 items 3 and 4: a captured request must not replay once per
/// worker. Nonces name the worker that minted them and only it accepts
/// them (the choice documented on `auth::NonceMint`): on a sibling the
/// same request is challenged with `stale=true`, never accepted.
#[test]
fn a_captured_request_does_not_replay_on_another_worker() {
    let worker = |w: u16| {
        let mut sc = scfg();
        sc.worker = w;
        Srv::new(sc)
    };
    let (mut w0, mut w1) = (worker(0), worker(1));
    let (ok, req) = register_self(&mut w0, "u000", "w");
    assert_eq!(code(&ok), 200);
    // Replays: on the minter (nc used) and on the sibling (not its nonce);
    // a new branch so it is not a retransmission.
    let replay = String::from_utf8(req)
        .unwrap()
        .replace("z9hG4bKwb", "z9hG4bKwc");
    for (what, srv) in [("minter", &mut w0), ("sibling", &mut w1)] {
        let r = srv.send(C, replay.as_bytes());
        assert_eq!(code(&r[0].1), 401, "{what}");
        assert!(
            String::from_utf8_lossy(&r[0].1)
                .to_ascii_lowercase()
                .contains("stale=true"),
            "{what}"
        );
    }
    assert!(w1.ep.bindings_of(b"u000").is_empty());
}

/// Issue 13 item 5: caps on bindings per AOR and on AORs in total, with
/// nothing changed when refused.
#[test]
fn binding_and_aor_caps() {
    let mut sc = scfg();
    sc.max_bindings_per_aor = 3;
    sc.max_aors = 2;
    let mut s = Srv::new(sc);
    // (AOR, contact port, expected code, bindings of that AOR after)
    let cases = [
        ("u000", 5061, 200, 1),
        ("u000", 5062, 200, 2),
        ("u000", 5063, 200, 3),
        ("u000", 5064, 403, 3),
        // Re-registering a bound contact adds nothing: allowed.
        ("u000", 5061, 200, 3),
        ("u001", 5061, 200, 1),
        ("u002", 5061, 503, 0),
    ];
    for (i, (aor, port, want, after)) in cases.into_iter().enumerate() {
        let c = format!("<sip:{aor}@10.0.0.1:{port}>");
        let (r, _) = auth_register(&mut s, aor, C, &c, Answer::of(aor), &format!("cap{i}"));
        assert_eq!(code(&r), want, "case {i}");
        assert_eq!(s.ep.bindings_of(aor.as_bytes()).len(), after, "case {i}");
    }
}

/// Issue 13 item 5: with `--auth off` a REGISTER with no Contact (a query,
/// from a source that proved nothing) returned every binding of the AOR,
/// up to 64 × 64 KiB to a spoofed source. Now only an authenticated
/// request learns the bindings.
#[test]
fn unauthenticated_query_gets_no_binding_list() {
    let mut sc = scfg();
    sc.auth = false;
    let mut s = Srv::new(sc);
    for port in 5061..5064 {
        let r = s.send(
            C,
            &register(
                "u000",
                C,
                &format!("q{port}"),
                1,
                Some(&format!("<sip:u000@10.0.0.1:{port}>")),
                "",
            ),
        );
        assert_eq!(code(&r[0].1), 200);
        // Each answer lists the request's own contact only.
        assert_eq!(sip::parse(&r[0].1).unwrap().contacts().count(), 1);
    }
    let query = register("u000", VICTIM, "query", 1, None, "");
    let r = s.send(VICTIM, &query);
    let m = sip::parse(&r[0].1).unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.contacts().count(),
        0,
        "bindings leaked to an unauthenticated query"
    );
    assert!(
        r[0].1.len() <= query.len() + 64,
        "{} vs {}",
        r[0].1.len(),
        query.len()
    );
    assert_eq!(s.ep.bindings_of(b"u000").len(), 3);
}

/// Issue 13 item 5: answers to garbage are never larger than the garbage
/// (a 400 used to be three times its request's size). Property: for
/// mutated and truncated requests from a forged source, every byte sent
/// back is at most the bytes received.
#[test]
fn answers_to_garbage_are_no_larger_than_the_garbage() {
    use proptest::prelude::{ProptestConfig, any, prop_assert, proptest};
    let shapes = [
        // compact headers, short request line: the worst case before
        "X sip:a SIP/2.0\r\nv:SIP/2.0/UDP a;branch=z9hG4bK1\r\nf:<sip:a@b>;tag=1\r\nt:<sip:a@b>\r\ni:x\r\nCSeq:1 Y\r\n\r\n",
        "OPTIONS sip:a SIP/3.0\r\nv:SIP/2.0/UDP a;branch=z9hG4bK2\r\ni:y\r\n\r\n",
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKflood\r\n\
         From: <sip:u001@example.com>;tag=f\r\nTo: <sip:u001@example.com>\r\n\
         Call-ID: flood\r\nCSeq: x REGISTER\r\nContent-Length: 0\r\n\r\n",
    ];
    proptest!(ProptestConfig::with_cases(300), |(i in 0usize..3, edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4), cut in any::<u16>())| {
        let mut m = shapes[i].as_bytes().to_vec();
        for (pos, b) in &edits {
            let n = m.len();
            m[*pos as usize % n] = *b;
        }
        m.truncate(m.len() - (cut as usize % (m.len() / 3)));
        let mut s = Srv::new(scfg());
        let sent: usize = s.send(ATTACKER, &m).iter().map(|(_, d)| d.len()).sum();
        prop_assert!(sent <= m.len(), "{} bytes back for {}: {:?}", sent, m.len(), String::from_utf8_lossy(&m));
    });
    // A long malformed request still gets the detailed reason.
    let long = shapes[2].replace("flood", "flood-with-a-long-branch-and-call-id-0123456789");
    let r = Srv::new(scfg()).send(ATTACKER, long.as_bytes());
    assert!(
        r[0].1.starts_with(b"SIP/2.0 400 Bad Request - "),
        "{}",
        String::from_utf8_lossy(&r[0].1)
    );
}

fn invite(from: &str, branch: &str, to_user: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    raw_request(&format!(
        "INVITE sip:{to_user}@10.0.0.2:5060 SIP/2.0\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\nFrom: <sip:x@10.0.0.1>;tag=f{branch}\nTo: <sip:{to_user}@10.0.0.2:5060>\n\
         Call-ID: i{branch}\nCSeq: 1 INVITE\nContact: <sip:x@{from}>\nContent-Type: application/sdp\n\
         Content-Length: {}\n\n",
        sdp.len()
    )) .into_iter().chain(sdp.bytes()).collect()
}

/// Issue 13 item 5: per-source and total caps on server transactions; the
/// refusal is a stateless 503 that is never retransmitted.
#[test]
fn transaction_caps_per_source_and_in_total() {
    let mut sc = scfg();
    sc.max_transactions = 4;
    sc.max_transactions_per_source = 2;
    let mut s = Srv::new(sc);
    // (source, expected final code)
    let cases = [
        ("10.0.0.1:5060", 200),
        ("10.0.0.1:5061", 200),
        ("10.0.0.1:5062", 503), // third from one address, any port
        ("10.0.0.3:5060", 200),
        ("10.0.0.4:5060", 200),
        ("10.0.0.5:5060", 503), // fifth in all
    ];
    for (i, (from, want)) in cases.into_iter().enumerate() {
        let r = s.send(from, &invite(from, &format!("cap{i}"), "callee"));
        let finals: Vec<u16> = r
            .iter()
            .map(|(_, d)| code(d))
            .filter(|c| *c >= 200)
            .collect();
        assert_eq!(finals, vec![want], "case {i}");
    }
    assert_eq!(s.ep.state_sizes().transactions, 4);
    // The 200s are retransmitted until ACKed; the 503s never.
    let later = s.wait(Duration::from_secs(2));
    assert!(!later.is_empty());
    assert!(later.iter().all(|(_, d)| code(d) == 200));
    // Timer L frees them all; room again.
    s.wait(Duration::from_secs(40));
    assert_eq!(s.ep.state_sizes().transactions, 0);
    let r = s.send("10.0.0.1:5062", &invite("10.0.0.1:5062", "again", "callee"));
    assert!(r.iter().any(|(_, d)| code(d) == 200));
}

/// Issue 13 item 5: an ICMP unreachable for the source of an INVITE ends
/// its server transaction (and the call not yet confirmed): before, the
/// 2xx went on being retransmitted at the closed port for 64·T1, a dozen
/// datagrams for one spoofed INVITE.
#[test]
fn icmp_unreachable_ends_server_transactions() {
    let mut s = Srv::new(scfg());
    let r = s.send(VICTIM, &invite(VICTIM, "icmp", "callee"));
    assert!(r.iter().any(|(_, d)| code(d) == 200));
    let other = s.send(C, &invite(C, "other", "callee"));
    assert!(other.iter().any(|(_, d)| code(d) == 200));
    let now = s.now;
    assert_eq!(s.ep.transport_error(now, Flow::udp(addr(VICTIM))), 1);
    let later = s.wait(Duration::from_secs(40));
    assert!(
        later.iter().all(|(to, _)| *to != addr(VICTIM)),
        "still sent to the closed port"
    );
    assert!(
        later.iter().any(|(to, _)| *to == addr(C)),
        "the other call's 2xx is left alone"
    );
    assert_eq!(s.ep.state_sizes().transactions, 0);
    assert_eq!(s.ep.state_sizes().sessions, 0);
}

/// Issue 13 item 5: the stateless proxy forwarded any response whose top
/// Via looked like its own to the address in the second Via, and requests
/// to whatever a binding named. Now responses need the branch MAC of a
/// request it forwarded, and requests go only to a contact that is the
/// address its REGISTER came from.
#[test]
fn proxy_is_no_reflector() {
    let mut s = Srv::new(scfg());
    // u000 binds its own address; u001 (authenticated from C) binds a
    // third party's.
    register_self(&mut s, "u000", "p0");
    auth_register(
        &mut s,
        "u001",
        C,
        &contact_of("u001", VICTIM),
        Answer::of("u001"),
        "p1",
    );
    let caller = "10.0.0.9:5060";
    // To u000: forwarded, with the caller's real address in its Via.
    let r = s.send(caller, &invite(caller, "fw", "u000"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, addr(C));
    let fwd = sip::parse(&r[0].1).unwrap();
    assert!(fwd.is_request());
    let second = fwd.vias().nth(1).unwrap();
    assert_eq!(second.received, Some(&b"10.0.0.9"[..]));
    assert_eq!(second.rport, Some(Some(5060)));
    // To u001: the binding names a third party; answered here, not sent there.
    let r = s.send(caller, &invite(caller, "nofw", "u001"));
    assert!(
        r.iter().all(|(to, _)| *to != addr(VICTIM)),
        "proxied to a third party"
    );
    // The callee's 200 for the forwarded INVITE goes back to the caller...
    let fwd_bytes = String::from_utf8(r_fwd_response(&fwd)).unwrap();
    let back = s.send(C, fwd_bytes.as_bytes());
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0, addr(caller));
    // ...but the same response with the second Via pointed at a victim, or
    // a forged branch, is dropped.
    let at_victim = fwd_bytes.replace(
        "received=10.0.0.9;rport=5060",
        "received=10.0.0.77;rport=5060",
    );
    let top_branch = std::str::from_utf8(fwd.top_via().unwrap().branch.unwrap())
        .unwrap()
        .to_string();
    let forged = fwd_bytes.replace(&top_branch, "z9hG4bKp0123456789abcdef");
    for (what, resp) in [("second Via changed", at_victim), ("forged branch", forged)] {
        let before = s.ep.counters().unexpected;
        let out = s.send(C, resp.as_bytes());
        assert!(out.is_empty(), "{what}: forwarded to {:?}", out[0].0);
        assert_eq!(s.ep.counters().unexpected, before + 1, "{what}");
    }
}

/// A 200 for a forwarded request, built as the callee would: every Via.
fn r_fwd_response(req: &sip::Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    sip::Builder::response_to(&mut out, req, 200, b"OK", Some(b"callee")).finish(None, b"");
    out
}

/// Issue 13 item 5: adding any Authorization header bypassed `--max-rate`.
/// Now a request with credentials passes free only when they verify and
/// are the first use of their nonce (the answer to a challenge).
#[test]
fn credentials_do_not_bypass_the_throttle() {
    let bogus = "Authorization: Digest username=\"u000\", realm=\"sipstorm\", nonce=\"x\", uri=\"sip:10.0.0.2:5060\", response=\"00000000000000000000000000000000\"\n";
    let bogus_proxy = bogus.replace("Authorization", "Proxy-Authorization");
    // (what, auth on, the first request's extra header, INVITE?)
    let cases: [(&str, bool, &str, bool); 4] = [
        ("REGISTER, bogus credentials", true, bogus, false),
        ("REGISTER, credentials with --auth off", false, bogus, false),
        ("REGISTER, no credentials", true, "", false),
        (
            "INVITE, Proxy-Authorization not asked for",
            true,
            &bogus_proxy,
            true,
        ),
    ];
    for (what, auth_on, extra, is_invite) in cases {
        let mut sc = scfg();
        sc.auth = auth_on;
        sc.throttle = Some(super::throttle::Throttle::new(1.0));
        let mut s = Srv::new(sc);
        let mut codes = Vec::new();
        for i in 0..3 {
            let req = if is_invite {
                let inv = String::from_utf8(invite(C, &format!("th{i}"), "callee")).unwrap();
                inv.replacen(
                    "Content-Type",
                    &format!("{}Content-Type", extra.replace('\n', "\r\n")),
                    1,
                )
                .into_bytes()
            } else {
                register(
                    "u000",
                    C,
                    &format!("th{i}"),
                    1,
                    Some("<sip:u000@10.0.0.1:5060>"),
                    extra,
                )
            };
            let r = s.send(C, &req);
            codes.push(
                r.iter()
                    .map(|(_, d)| code(d))
                    .find(|c| *c >= 200)
                    .unwrap_or(0),
            );
        }
        // One token (burst 1): the first passes, the others get 503.
        assert_ne!(codes[0], 503, "{what}: {codes:?}");
        assert_eq!(&codes[1..], &[503, 503], "{what}: {codes:?}");
    }
    // The answer to a challenge is not an attempt of its own.
    let mut sc = scfg();
    sc.throttle = Some(super::throttle::Throttle::new(1.0));
    let mut s = Srv::new(sc);
    let (r, _) = register_self(&mut s, "u000", "free");
    assert_eq!(code(&r), 200);
}
