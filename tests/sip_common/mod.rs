//! Helpers shared by the `sip_*` integration tests.
#![allow(dead_code)]

use sipstorm::sip::{self, Contact, Message};

/// Turns a readable message into wire form: LF becomes CRLF, and `{CL}` is
/// replaced by the byte length of the body (everything after the first
/// blank line), so the reproductions stay honest when edited.
pub fn wire(s: &str) -> Vec<u8> {
    let crlf = s.replace("\r\n", "\n").replace('\n', "\r\n");
    let body_len = crlf.find("\r\n\r\n").map_or(0, |i| crlf.len() - i - 4);
    crlf.replace("{CL}", &body_len.to_string()).into_bytes()
}

/// Calls every accessor of a parsed message and checks invariants that must
/// hold for any input; returns a number so the work is not optimised away.
pub fn exercise_message(m: &Message<'_>) -> usize {
    let mut n = 0;
    n += m.is_request() as usize;
    n += m.method().map_or(0, |x| x.as_bytes().len());
    if let Some(u) = m.uri() {
        n += sip::parse_uri(u).map_or(0, |u| u.host.len());
    }
    n += m.status().unwrap_or(0) as usize + m.reason().map_or(0, <[u8]>::len);
    n += m.vias().count();
    n += m.top_via().map_or(0, |v| v.host.len());
    n += m.from().map_or(0, |f| f.uri.len()) + m.to().map_or(0, |t| t.uri.len());
    n += m.call_id().map_or(0, <[u8]>::len);
    n += m.cseq().map_or(0, |c| c.seq as usize);
    for c in m.contacts() {
        if let Contact::Addr { addr, .. } = c {
            n += sip::parse_uri(addr.uri).map_or(0, |u| u.host.len());
        }
    }
    n += m.record_routes().count() + m.routes().count();
    n += m.max_forwards().unwrap_or(0) as usize + m.expires().unwrap_or(0) as usize;
    n += m.min_expires().unwrap_or(0) as usize;
    for name in [
        &b"Content-Type"[..],
        b"WWW-Authenticate",
        b"X-Unknown",
        b"v",
        b"i",
    ] {
        n += m.header(name).map_or(0, <[u8]>::len);
        n += m.headers(name).count();
    }
    n += m.www_authenticate().is_some() as usize + m.proxy_authenticate().is_some() as usize;
    n += m.authorization().is_some() as usize + m.proxy_authorization().is_some() as usize;
    n += m.content_type().is_some() as usize;
    if let Some(cl) = m.content_length() {
        assert_eq!(m.body().len(), cl as usize);
    }
    assert!(m.as_bytes().ends_with(m.body()));
    assert!(m.top_via().is_some() && m.vias().next() == m.top_via());
    n += format!("{m:?}").len();
    n
}

/// Runs `parse` and `frame` on arbitrary bytes; never panics on any input.
pub fn exercise(data: &[u8]) -> usize {
    let mut n = 0;
    if let Ok(m) = sip::parse(data) {
        n += exercise_message(&m);
        // What we parse we can answer, and the answer parses.
        let mut out = Vec::new();
        sip::Builder::response_to(&mut out, &m, 200, b"OK", Some(b"t1")).finish(None, b"");
        if m.is_request() {
            let r = sip::parse(&out).expect("a response to a parsed request parses");
            assert_eq!(r.call_id(), m.call_id());
            assert_eq!(r.cseq(), m.cseq());
            assert_eq!(r.vias().count(), m.vias().count());
        }
        n += out.len();
    }
    if let Ok(sip::Status::Complete(len)) = sip::frame(data) {
        assert!(len <= data.len());
    }
    n
}
