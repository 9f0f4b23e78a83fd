//! Writing SIP messages into a reused buffer.

use super::header::Kind;
use super::{Message, Method};

/// Writes one request or response into a caller-owned `Vec<u8>`.
///
/// Each constructor clears the buffer; nothing else allocates, so once the
/// `Vec` has grown to the largest message sent, building is allocation-free.
/// Lines end with CRLF (RFC 3261 §7); header names are written as given.
#[derive(Debug)]
pub struct Builder<'b> {
    buf: &'b mut Vec<u8>,
}

/// Decimal digits of `v` into `out`, returning the used tail.
fn itoa(mut v: u32, out: &mut [u8; 10]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &out[i..]
}

impl<'b> Builder<'b> {
    /// Starts a request: `Method SP Request-URI SP SIP/2.0 CRLF` (RFC 3261 §7.1).
    pub fn request(buf: &'b mut Vec<u8>, method: &Method<'_>, uri: &[u8]) -> Self {
        buf.clear();
        buf.extend_from_slice(method.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(uri);
        buf.extend_from_slice(b" SIP/2.0\r\n");
        Builder { buf }
    }

    /// Starts a response: `SIP/2.0 SP Status-Code SP Reason-Phrase CRLF`
    /// (RFC 3261 §7.2). `code` is written as three digits (values above 999
    /// are clamped to 999 so the line stays well-formed).
    pub fn response(buf: &'b mut Vec<u8>, code: u16, reason: &[u8]) -> Self {
        buf.clear();
        let code = code.min(999);
        buf.extend_from_slice(b"SIP/2.0 ");
        buf.extend_from_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ]);
        buf.push(b' ');
        buf.extend_from_slice(reason);
        buf.extend_from_slice(b"\r\n");
        Builder { buf }
    }

    /// RFC 3261 §8.2.6.2: copies every Via, From, To (adding `;tag=to_tag`
    /// when To has none and a tag is given), Call-ID and CSeq from `req`.
    /// Via lines are copied one for one, in order, with their values as
    /// received (so a `received`/`rport` added by the caller is not done
    /// here: §18.2.1 is a transport decision).
    pub fn response_to(
        buf: &'b mut Vec<u8>,
        req: &Message<'_>,
        code: u16,
        reason: &[u8],
        to_tag: Option<&[u8]>,
    ) -> Self {
        let mut b = Builder::response(buf, code, reason);
        for v in req.values_of(Kind::Via) {
            b.header(b"Via", v);
        }
        if let Some(f) = req.first_of(Kind::From) {
            b.header(b"From", f);
        }
        if let Some(t) = req.first_of(Kind::To) {
            match (to_tag, req.to().and_then(|t| t.tag)) {
                (Some(tag), None) => b.header_parts(b"To", &[t, b";tag=", tag]),
                _ => b.header(b"To", t),
            };
        }
        if let Some(c) = req.first_of(Kind::CallId) {
            b.header(b"Call-ID", c);
        }
        if let Some(c) = req.first_of(Kind::CSeq) {
            b.header(b"CSeq", c);
        }
        b
    }

    /// Appends `name: value CRLF`.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.header_parts(name, &[value])
    }

    /// Appends `name: ` + the concatenation of `parts` + CRLF, so callers can
    /// write e.g. `;branch=` + an id without formatting into a temporary.
    pub fn header_parts(&mut self, name: &[u8], parts: &[&[u8]]) -> &mut Self {
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b": ");
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `name: decimal CRLF` (CSeq numbers, Expires, Max-Forwards).
    pub fn header_u32(&mut self, name: &[u8], v: u32) -> &mut Self {
        let mut tmp = [0u8; 10];
        let digits = itoa(v, &mut tmp);
        self.header_parts(name, &[digits])
    }

    /// Appends raw bytes (for callers composing a header value piecewise).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Writes Content-Type (when given and body non-empty), Content-Length,
    /// the blank line and the body. Content-Length is always written, as
    /// RFC 3261 §20.14 asks of every message that may go over a stream.
    pub fn finish(self, content_type: Option<&[u8]>, body: &[u8]) {
        let mut b = self;
        if let Some(ct) = content_type
            && !body.is_empty()
        {
            b.header(b"Content-Type", ct);
        }
        b.header_u32(
            b"Content-Length",
            u32::try_from(body.len()).unwrap_or(u32::MAX),
        );
        b.buf.extend_from_slice(b"\r\n");
        b.buf.extend_from_slice(body);
    }
}

/// Default reason phrases (RFC 3261 §21, plus RFC 3265, 3329, 4028, 4412, 6665).
pub fn reason_phrase(code: u16) -> &'static [u8] {
    match code {
        100 => b"Trying",
        180 => b"Ringing",
        181 => b"Call Is Being Forwarded",
        182 => b"Queued",
        183 => b"Session Progress",
        199 => b"Early Dialog Terminated",
        200 => b"OK",
        202 => b"Accepted",
        204 => b"No Notification",
        300 => b"Multiple Choices",
        301 => b"Moved Permanently",
        302 => b"Moved Temporarily",
        305 => b"Use Proxy",
        380 => b"Alternative Service",
        400 => b"Bad Request",
        401 => b"Unauthorized",
        402 => b"Payment Required",
        403 => b"Forbidden",
        404 => b"Not Found",
        405 => b"Method Not Allowed",
        406 => b"Not Acceptable",
        407 => b"Proxy Authentication Required",
        408 => b"Request Timeout",
        410 => b"Gone",
        412 => b"Conditional Request Failed",
        413 => b"Request Entity Too Large",
        414 => b"Request-URI Too Long",
        415 => b"Unsupported Media Type",
        416 => b"Unsupported URI Scheme",
        420 => b"Bad Extension",
        421 => b"Extension Required",
        422 => b"Session Interval Too Small",
        423 => b"Interval Too Brief",
        480 => b"Temporarily Unavailable",
        481 => b"Call/Transaction Does Not Exist",
        482 => b"Loop Detected",
        483 => b"Too Many Hops",
        484 => b"Address Incomplete",
        485 => b"Ambiguous",
        486 => b"Busy Here",
        487 => b"Request Terminated",
        488 => b"Not Acceptable Here",
        489 => b"Bad Event",
        491 => b"Request Pending",
        493 => b"Undecipherable",
        494 => b"Security Agreement Required",
        500 => b"Server Internal Error",
        501 => b"Not Implemented",
        502 => b"Bad Gateway",
        503 => b"Service Unavailable",
        504 => b"Server Time-out",
        505 => b"Version Not Supported",
        513 => b"Message Too Large",
        580 => b"Precondition Failure",
        600 => b"Busy Everywhere",
        603 => b"Decline",
        604 => b"Does Not Exist Anywhere",
        606 => b"Not Acceptable",
        _ => match code / 100 {
            1 => b"Trying",
            2 => b"OK",
            3 => b"Redirected",
            4 => b"Client Error",
            5 => b"Server Error",
            6 => b"Global Failure",
            _ => b"Unknown",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse;

    #[test]
    fn itoa_edges() {
        let mut t = [0u8; 10];
        assert_eq!(itoa(0, &mut t), b"0");
        assert_eq!(itoa(7, &mut t), b"7");
        assert_eq!(itoa(1826, &mut t), b"1826");
        assert_eq!(itoa(u32::MAX, &mut t), b"4294967295");
    }

    #[test]
    fn request_round_trip() {
        let mut buf = Vec::new();
        let mut b = Builder::request(&mut buf, &Method::Invite, b"sip:bob@example.com");
        b.header_parts(
            b"Via",
            &[b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK", b"1234"],
        )
        .header_u32(b"Max-Forwards", 70)
        .header(b"From", b"<sip:alice@example.com>;tag=a1")
        .header(b"To", b"<sip:bob@example.com>")
        .header(b"Call-ID", b"c1@10.0.0.1")
        .header(b"CSeq", b"1 INVITE");
        b.finish(Some(b"application/sdp"), b"v=0\r\n");
        let m = parse(&buf).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bK1234"[..]));
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
        assert_eq!(m.body(), b"v=0\r\n");

        let cap = buf.capacity();
        let ptr = buf.as_ptr();
        let b = Builder::request(&mut buf, &Method::Bye, b"sip:x@y");
        b.finish(Some(b"application/sdp"), b"");
        assert_eq!(buf, b"BYE sip:x@y SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            (buf.capacity(), buf.as_ptr()),
            (cap, ptr),
            "reused without reallocating"
        );
    }

    #[test]
    fn response_to_copies_8_2_6_2_headers() {
        let req = b"INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa, SIP/2.0/UDP p2.example.com;branch=z9hG4bKb\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKc;rport\r\n\
f: \"A\" <sip:alice@example.com>;tag=1\r\n\
t: <sip:bob@example.com>\r\n\
i: call-1\r\n\
CSeq: 7 INVITE\r\n\
Max-Forwards: 69\r\n\
l: 0\r\n\r\n";
        let req = parse(req).unwrap();
        let mut buf = Vec::with_capacity(512);
        let mut b = Builder::response_to(&mut buf, &req, 180, reason_phrase(180), Some(b"xyz"));
        b.header(b"Contact", b"<sip:bob@10.0.0.2>");
        b.finish(None, b"");
        let r = parse(&buf).unwrap();
        assert_eq!(r.status(), Some(180));
        assert_eq!(r.reason(), Some(&b"Ringing"[..]));
        let vias: Vec<_> = r.vias().map(|v| v.branch.unwrap()).collect();
        assert_eq!(vias, [&b"z9hG4bKa"[..], b"z9hG4bKb", b"z9hG4bKc"]);
        assert_eq!(r.from(), req.from());
        assert_eq!(r.to().unwrap().tag, Some(&b"xyz"[..]));
        assert_eq!(r.call_id(), Some(&b"call-1"[..]));
        assert_eq!(r.cseq(), req.cseq());

        // A To that already has a tag keeps it.
        let r2 = {
            let mut buf2 = Vec::new();
            Builder::response_to(&mut buf2, &r, 200, b"OK", Some(b"other")).finish(None, b"");
            buf2
        };
        assert_eq!(parse(&r2).unwrap().to().unwrap().tag, Some(&b"xyz"[..]));
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(401), b"Unauthorized");
        assert_eq!(reason_phrase(423), b"Interval Too Brief");
        assert_eq!(reason_phrase(499), b"Client Error");
        assert_eq!(reason_phrase(42), b"Unknown");
    }
}
