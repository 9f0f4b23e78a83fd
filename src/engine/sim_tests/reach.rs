//! Reaching real servers (issue 14): domain, preloaded Route set, callee
//! and caller, From display name, templated extra headers and offer, the
//! digest username of a users file, `serve --domain`, IPv6 addresses.

use super::*;
use crate::engine::template::{BodyTemplate, HeaderTemplate, Template};

/// Users `u000..` with digest usernames `auth-u000..`, passwords with `;`
/// and a space, and a third field `tok-u000..`.
fn users(n: usize) -> Vec<ListUser> {
    (0..n)
        .map(|i| {
            let name = format!("u{i:03}");
            ListUser {
                fields: vec![
                    name.clone(),
                    format!("[authentication username=auth-{name} password=\"p;w {name}\"]"),
                    format!("tok-{name}"),
                ],
                auth_name: format!("auth-{name}"),
                password: format!("p;w {name}"),
            }
        })
        .collect()
}

fn header(line: &str) -> HeaderTemplate {
    let (n, v) = line.split_once(": ").unwrap();
    HeaderTemplate {
        name: n.as_bytes().into(),
        value: Template::compile(v.as_bytes()).unwrap(),
    }
}

/// A client of hosted domain `example.test` through an outbound proxy
/// (the server, also as Route), with every reach setting in use.
fn hosted_client(scenario: Scenario, local: &str, server: &str) -> ClientConfig {
    let mut c = ClientConfig::new(scenario, addr(server), addr(local));
    c.users = Arc::new(UserSource::lines(users(4)));
    c.domain = "example.test".into();
    let proxy = addr(server);
    c.routes = vec![format!("sip:{proxy};lr")];
    c.callee = Party::Pattern(RangePattern::parse("{9000..9003}").unwrap());
    c.caller = Party::Pattern(RangePattern::parse("c{000..099}").unwrap());
    c.from_display = "Load \"T\"".into();
    c.headers = Arc::from(vec![
        header(
            "X-Test: {user} {callee} {domain} {call_id} {seq} {field:2} {local_ip} {local_port}",
        ),
        header("User-Agent: reach-test"),
    ]);
    c.offer = Some(Arc::new(BodyTemplate {
        content_type: b"application/sdp".as_slice().into(),
        body: Template::compile(
            b"v=0\r\no=- 1 1 IN IP{media_ip_type} {media_ip}\r\ns={user}\r\n\
              c=IN IP{media_ip_type} {media_ip}\r\nt=0 0\r\n\
              m=audio {media_port} RTP/AVP 0\r\n",
        )
        .unwrap(),
    }));
    c
}

/// A server for `example.test` whose passwords are by digest username.
fn hosted_server(local: &str) -> ServerConfig {
    ServerConfig {
        local: addr(local),
        domains: vec!["example.test".into()],
        passwords: Arc::new(UserSource::lines(
            users(4)
                .into_iter()
                .map(|u| ListUser::new(u.auth_name, u.password))
                .collect(),
        )),
        // §10.3 step 6: digest username auth-uNNN may change AOR uNNN.
        aor_policy: Arc::new(AorPolicy::from_pairs(
            users(4)
                .into_iter()
                .map(|u| (u.fields[0].clone(), u.auth_name)),
        )),
        ..ServerConfig::default()
    }
}

/// Every request `from` sent, parsed.
fn requests(p: &Pair, from: &str, method: &str) -> Vec<Vec<u8>> {
    let f = addr(from);
    p.sim
        .trace
        .iter()
        .filter(|t| t.1 == f && t.3.starts_with(format!("{method} ").as_bytes()))
        .map(|t| t.3.clone())
        .collect()
}

fn text(b: Option<&[u8]>) -> String {
    String::from_utf8_lossy(b.unwrap_or(b"<none>")).into_owned()
}

#[test]
fn calls_to_a_hosted_domain_carry_every_setting() {
    let mut p = pair(
        hosted_client(Scenario::Call, C, S),
        hosted_server(S),
        NetConfig::default(),
    );
    p.start(2, Duration::from_millis(500));
    p.run(Duration::from_secs(2));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 2]);
    let invites = requests(&p, C, "INVITE");
    assert_eq!(invites.len(), 2);
    for (k, raw) in invites.iter().enumerate() {
        let m = sip::parse(raw).unwrap();
        let callee = format!("900{k}");
        let user = format!("u00{k}");
        let cid = text(m.call_id());
        assert_eq!(text(m.uri()), format!("sip:{callee}@example.test"));
        assert_eq!(
            m.headers(b"Route").collect::<Vec<_>>(),
            [b"<sip:10.0.0.2:5060;lr>".as_slice()]
        );
        let from = text(m.header(b"From"));
        assert!(
            from.starts_with(&format!(
                "\"Load \\\"T\\\"\" <sip:c00{k}@example.test>;tag="
            )),
            "{from}"
        );
        assert_eq!(
            text(m.header(b"To")),
            format!("<sip:{callee}@example.test>")
        );
        assert_eq!(
            text(m.header(b"Contact")),
            format!("<sip:{user}@10.0.0.1:5060>")
        );
        assert_eq!(
            text(m.header(b"X-Test")),
            format!("{user} {callee} example.test {cid} 1 tok-{user} 10.0.0.1 5060")
        );
        // An extra User-Agent replaces ours.
        assert_eq!(
            m.headers(b"User-Agent").collect::<Vec<_>>(),
            [b"reach-test".as_slice()]
        );
        assert_eq!(text(m.header(b"Content-Type")), "application/sdp");
        assert_eq!(
            text(Some(m.body())),
            format!(
                "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns={user}\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                 m=audio 40000 RTP/AVP 0\r\n"
            )
        );
    }
    // In-dialog requests: neither the extra headers nor the preloaded
    // Route set (no Record-Route: the dialog's route set is empty), the
    // same From.
    for method in ["ACK", "BYE"] {
        let sent = requests(&p, C, method);
        assert_eq!(sent.len(), 2, "{method}");
        for raw in &sent {
            let m = sip::parse(raw).unwrap();
            assert!(m.header(b"X-Test").is_none(), "{method}");
            assert!(m.header(b"Route").is_none(), "{method}");
            assert!(text(m.header(b"From")).contains("<sip:c00"), "{method}");
        }
    }
    p.assert_clean();
}

#[test]
fn cancel_keeps_the_route_set_and_leaves_extra_headers_out() {
    let mut cc = hosted_client(Scenario::Call, C, S);
    cc.cancel_ratio = 1.0;
    let mut sc = hosted_server(S);
    sc.ring = Delay::Fixed(Duration::from_secs(2));
    let mut p = pair(cc, sc, NetConfig::default());
    p.start(1, Duration::from_secs(1));
    p.run(Duration::from_secs(3));
    assert_eq!(p.outcomes(), vec![Outcome::Cancelled]);
    let cancels = requests(&p, C, "CANCEL");
    assert_eq!(cancels.len(), 1);
    let m = sip::parse(&cancels[0]).unwrap();
    let inv = requests(&p, C, "INVITE");
    let i = sip::parse(&inv[0]).unwrap();
    // RFC 3261 §9.1: Request-URI, Call-ID, To, From and Route as the INVITE's.
    assert_eq!(m.uri(), i.uri());
    assert_eq!(m.header(b"From"), i.header(b"From"));
    assert_eq!(m.header(b"To"), i.header(b"To"));
    assert_eq!(m.header(b"Route"), i.header(b"Route"));
    assert!(m.header(b"X-Test").is_none());
    p.assert_clean();
}

#[test]
fn digest_username_of_the_users_file_registers_user_at_domain() {
    let mut p = pair(
        hosted_client(Scenario::Register, C, S),
        hosted_server(S),
        NetConfig::default(),
    );
    p.start(4, Duration::ZERO);
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success; 4]);
    let regs = requests(&p, C, "REGISTER");
    assert_eq!(regs.len(), 8, "401 then 200 for each");
    for raw in &regs {
        let m = sip::parse(raw).unwrap();
        assert_eq!(text(m.uri()), "sip:example.test");
        let to = text(m.header(b"To"));
        assert!(
            to.starts_with("<sip:u00") && to.ends_with("@example.test>"),
            "{to}"
        );
        let x = text(m.header(b"X-Test"));
        // No callee outside calls; CSeq 1 without, 2 with credentials.
        let seq = if m.authorization().is_some() { 2 } else { 1 };
        assert!(
            x.contains(" example.test ") && x.contains(&format!(" {seq} tok-u00")),
            "{x}"
        );
        if let Some(a) = m.authorization() {
            let a = String::from_utf8_lossy(a);
            assert!(a.contains("username=\"auth-u00"), "{a}");
        }
    }
    // The registrar bound user@example.test, not the bare user.
    let s = p.s;
    for u in ["u000", "u003"] {
        assert_eq!(
            p.sim
                .ep(s)
                .bindings_of(format!("{u}@example.test").as_bytes())
                .len(),
            1,
            "{u}"
        );
        assert!(p.sim.ep(s).bindings_of(u.as_bytes()).is_empty(), "{u}");
    }
}

#[test]
fn a_server_answers_404_for_domains_it_does_not_serve() {
    for scenario in [Scenario::Register, Scenario::Call, Scenario::Options] {
        let mut cc = hosted_client(scenario, C, S);
        cc.domain = "other.test".into();
        let mut p = pair(cc, hosted_server(S), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Failed(404); 2], "{scenario:?}");
        // Its own address is served as well (SIPp's `-sn uac` style).
        let mut cc = hosted_client(scenario, C, S);
        cc.domain = String::new();
        let mut p = pair(cc, hosted_server(S), NetConfig::default());
        p.start(2, Duration::ZERO);
        p.run(Duration::from_secs(1));
        assert_eq!(p.outcomes(), vec![Outcome::Success; 2], "{scenario:?}");
    }
}

#[test]
fn mixed_calls_reach_user_at_domain_bindings() {
    let mut cc = hosted_client(Scenario::Mixed, C, S);
    cc.callee = Party::Default;
    let mut p = pair(cc, hosted_server(S), NetConfig::default());
    p.start(4, Duration::from_millis(200));
    p.run(Duration::from_secs(2));
    let calls = p
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::CallDone {
                    outcome: Outcome::Success,
                    ..
                }
            )
        })
        .count();
    assert_eq!(calls, 4);
    // The INVITEs went through the server's proxy, found by user@domain.
    let forwarded = p
        .lines(S)
        .iter()
        .filter(|l| l.starts_with("INVITE sip:u00") && l.contains("@10.0.0.1:5060"))
        .count();
    assert_eq!(forwarded, 4, "{:?}", p.lines(S));
}

#[test]
fn ipv6_addresses_in_via_contact_uris_and_sdp() {
    let (c6, s6) = ("[2001:db8::1]:5070", "[2001:db8::2]:5060");
    for scenario in [Scenario::Call, Scenario::Register, Scenario::Mixed] {
        let mut cc = hosted_client(scenario, c6, s6);
        if scenario == Scenario::Mixed {
            cc.callee = Party::Default;
        }
        let mut p = pair(cc, hosted_server(s6), NetConfig::default());
        p.start(2, Duration::from_millis(100));
        p.run(Duration::from_secs(2));
        let o = p.outcomes();
        assert!(
            o.len() >= 2 && o.iter().all(|o| *o == Outcome::Success),
            "{scenario:?} {o:?}"
        );
        let method = if scenario == Scenario::Register {
            "REGISTER"
        } else {
            "INVITE"
        };
        let sent = requests(&p, c6, method);
        let m = sip::parse(&sent[0]).unwrap();
        assert!(
            text(m.header(b"Via")).starts_with("SIP/2.0/UDP [2001:db8::1]:5070;"),
            "{scenario:?}"
        );
        assert_eq!(text(m.header(b"Route")), "<sip:[2001:db8::2]:5060;lr>");
        assert!(
            text(m.header(b"Contact")).ends_with("@[2001:db8::1]:5070>"),
            "{scenario:?}"
        );
        assert!(
            text(m.header(b"X-Test")).ends_with(" [2001:db8::1] 5070"),
            "{scenario:?}"
        );
        if method == "INVITE" {
            let body = text(Some(m.body()));
            assert!(
                body.contains("c=IN IP6 2001:db8::1\r\n"),
                "{scenario:?}: {body}"
            );
        }
        let now = p.sim.now;
        p.sim.ep(p.c).shutdown(now);
        p.assert_clean();
    }
    // The built-in offer and the default domain (the target) too.
    let mut cc = ClientConfig::new(Scenario::Call, addr(s6), addr(c6));
    cc.users = Arc::new(UserSource::pattern("u{0..1}", "pw-{user}").unwrap());
    let mut p = pair(
        cc,
        ServerConfig {
            local: addr(s6),
            ..ServerConfig::default()
        },
        NetConfig::default(),
    );
    p.start(1, Duration::from_millis(100));
    p.run(Duration::from_secs(1));
    assert_eq!(p.outcomes(), vec![Outcome::Success]);
    let m_raw = requests(&p, c6, "INVITE");
    let m = sip::parse(&m_raw[0]).unwrap();
    assert_eq!(text(m.uri()), "sip:u1@[2001:db8::2]:5060");
    assert!(text(Some(m.body())).contains("c=IN IP6 2001:db8::1\r\n"));
}

#[test]
fn callees_spread_over_workers_and_come_from_fields() {
    // Worker 1 of 2 takes entries 1, 3, 5 = 1, … of the pattern.
    let mut cc = hosted_client(Scenario::Call, C, S);
    cc.user_offset = 1;
    cc.user_stride = 2;
    let mut p = pair(cc, hosted_server(S), NetConfig::default());
    p.start(3, Duration::from_millis(100));
    p.run(Duration::from_secs(1));
    let uris: Vec<String> = requests(&p, C, "INVITE")
        .iter()
        .map(|r| text(sip::parse(r).unwrap().uri()))
        .collect();
    assert_eq!(
        uris,
        [
            "sip:9001@example.test",
            "sip:9003@example.test",
            "sip:9001@example.test"
        ]
    );
    // field:2 of the caller's line; the caller is the user (no --caller).
    let mut cc = hosted_client(Scenario::Call, C, S);
    cc.callee = Party::Field(2);
    cc.caller = Party::Default;
    let mut p = pair(cc, hosted_server(S), NetConfig::default());
    p.start(2, Duration::from_millis(100));
    p.run(Duration::from_secs(1));
    let sent = requests(&p, C, "INVITE");
    let got: Vec<(String, String)> = sent
        .iter()
        .map(|r| {
            let m = sip::parse(r).unwrap();
            let from = text(m.from().map(|f| f.uri));
            (text(m.uri()), from)
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "sip:tok-u000@example.test".to_string(),
                "sip:u000@example.test".to_string()
            ),
            (
                "sip:tok-u001@example.test".into(),
                "sip:u001@example.test".into()
            )
        ]
    );
}
