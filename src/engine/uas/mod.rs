//! UAS flows: request dispatch (retransmissions and ACKs first, then by
//! method), stateless answers to OPTIONS and to requests that must be
//! refused (400, 405, 481, 483, 501, 505), and building responses. The
//! answering UAS (§13.3, §15.1.2, CANCEL §9.2) is in `invite`, the
//! registrar (§10.3) in `registrar`, digest challenges and verification
//! (§22) in `auth`.

use std::time::Instant;

use super::endpoint::Endpoint;
use super::event::MethodKind;
use super::util::{hex16, mix};
use super::wire::method_kind;
use crate::flow::Flow;
use crate::sip::{Builder, Message, Method, ParseError, reason_phrase};

mod auth;
mod invite;
mod registrar;

use auth::AuthResult;

const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

impl Endpoint {
    /// A datagram that failed to parse. RFC 3261 §8.2.2/§21.4.1: if enough of
    /// a request survives to address a response (a Via at least), answer 505
    /// for a foreign SIP-Version and 400 naming the problem otherwise;
    /// responses and hopeless garbage are only counted.
    pub(in crate::engine) fn on_unparseable(
        &mut self,
        _now: Instant,
        from: Flow,
        data: &[u8],
        e: ParseError,
    ) {
        let (code, reason): (u16, &[u8]) = match e {
            ParseError::BadVersion => (505, b"Version Not Supported"),
            ParseError::Empty
            | ParseError::TooLarge
            | ParseError::Truncated
            | ParseError::BadStartLine
            | ParseError::TooManyHeaders => return,
            _ => (400, b""),
        };
        let Some(line_end) = memchr::memmem::find(data, b"\r\n") else {
            return;
        };
        let start = &data[..line_end];
        if start.starts_with(b"SIP/") || start.starts_with(b"ACK ") {
            return; // never answer a response or an ACK
        }
        let mut reason_buf;
        let reason = if reason.is_empty() {
            reason_buf = b"Bad Request - ".to_vec();
            reason_buf.extend_from_slice(e.to_string().as_bytes());
            reason_buf.retain(|c| *c != b'\r' && *c != b'\n');
            &reason_buf[..]
        } else {
            reason
        };
        let mut out = self.take_buf();
        let mut b = Builder::response(&mut out, code, reason);
        let mut has_via = false;
        for line in data[line_end + 2..].split(|c| *c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let name = line[..colon].trim_ascii();
            let canon: &[u8] = match name.to_ascii_lowercase().as_slice() {
                b"via" | b"v" => b"Via",
                b"from" | b"f" => b"From",
                b"to" | b"t" => b"To",
                b"call-id" | b"i" => b"Call-ID",
                b"cseq" => b"CSeq",
                _ => continue,
            };
            has_via |= canon == b"Via";
            b.header(canon, line[colon + 1..].trim_ascii());
        }
        if code == 505 {
            b.header(b"Supported", b"");
        }
        b.finish(None, b"");
        if has_via {
            self.counters.rejected += 1;
            self.count_sent_response(code);
            self.send(from, out);
        } else {
            self.put_buf(out);
        }
    }

    /// Deterministic To-tag for stateless answers, so a retransmitted
    /// request gets the same tag.
    fn stateless_tag(&self, key: u64) -> [u8; 16] {
        hex16(mix(key, self.hash_seed))
    }

    /// A response built from `req` and queued to `to`; `extra` are extra
    /// header lines.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        to: Flow,
        req: &Message<'_>,
        code: u16,
        reason: &[u8],
        tag: Option<&[u8]>,
        extra: &[(&[u8], &[u8])],
        body: Option<&[u8]>,
    ) {
        let mut out = self.take_buf();
        let mut b = Builder::response_to(&mut out, req, code, reason, tag);
        for (n, v) in extra {
            b.header(n, v);
        }
        match body {
            Some(sdp) => b.finish(Some(b"application/sdp"), sdp),
            None => b.finish(None, b""),
        }
        self.count_sent_response(code);
        self.send(to, out);
    }

    /// Like `respond` without keeping a copy.
    fn reply(
        &mut self,
        to: Flow,
        req: &Message<'_>,
        code: u16,
        tag: Option<&[u8]>,
        extra: &[(&[u8], &[u8])],
    ) {
        let mut out = self.take_buf();
        let mut b = Builder::response_to(&mut out, req, code, reason_phrase(code), tag);
        for (n, v) in extra {
            b.header(n, v);
        }
        b.finish(None, b"");
        self.count_sent_response(code);
        self.send(to, out);
    }

    /// Every request: ACK and retransmissions first, then by method.
    pub(in crate::engine) fn on_request(&mut self, now: Instant, from: Flow, msg: &Message<'_>) {
        let (Some(method), Some(via)) = (msg.method(), msg.top_via()) else {
            self.counters.unexpected += 1;
            return;
        };
        let mk = method_kind(&method);
        if mk != MethodKind::Register
            && let Some((contact, hop)) = self.proxy_target(msg)
        {
            // Our own transaction (the 407 we sent, its ACK, a retransmission)
            // stays here; so does an INVITE still to be authenticated.
            let local_txn = self
                .server_txns
                .contains_key(&self.server_txn_key(&via, mk));
            let needs_auth = mk == MethodKind::Invite
                && self.answer.auth_invite
                && msg.to().and_then(|t| t.tag).is_none()
                && !local_txn
                && self.check_auth(now, msg, b"INVITE", true) != AuthResult::Ok;
            // Max-Forwards 0 is answered 483 below, never forwarded (§16.3 step 3).
            if !local_txn && !needs_auth && msg.max_forwards() != Some(0) {
                self.proxy_request(msg, &contact, hop);
                return;
            }
        }
        if mk == MethodKind::Ack {
            self.on_ack(now, msg, &via);
            return;
        }
        let key = self.server_txn_key(&via, mk);
        if mk == MethodKind::Invite {
            if let Some(&ti) = self.server_txns.get(&key) {
                // §17.2.1: a retransmitted INVITE gets the latest response again.
                self.counters.duplicates += 1;
                self.send_txn_copy(ti, true);
                return;
            }
        } else if let Some(&code) = self.absorbers.codes.get(&key) {
            // Timer J: the same final response, rebuilt from the retransmission.
            self.counters.duplicates += 1;
            if mk == MethodKind::Register && matches!(code, 200 | 423) && self.answer.registrar {
                // This very transaction was already authenticated: its
                // credentials must not be checked again (their nonce count
                // was used, so a second check would answer 401). REGISTER is
                // idempotent, so running it again rebuilds the same response
                // with the bindings and Min-Expires it carried.
                self.uas_register(now, from, msg, key, true);
                return;
            }
            let tag = self.stateless_tag(key);
            self.reply(from, msg, code, Some(&tag), &[]);
            return;
        }
        if msg.max_forwards() == Some(0) && mk != MethodKind::Options {
            let tag = self.stateless_tag(key);
            self.counters.rejected += 1;
            self.reply(from, msg, 483, Some(&tag), &[]);
            return;
        }
        match method {
            Method::Invite => self.uas_invite(now, from, msg, key),
            Method::Register if self.answer.registrar => {
                self.uas_register(now, from, msg, key, false)
            }
            Method::Bye => self.uas_bye(now, from, msg, key),
            Method::Cancel => self.uas_cancel(now, from, msg, &via, key),
            Method::Options => {
                let tag = self.stateless_tag(key);
                self.reply(
                    from,
                    msg,
                    200,
                    Some(&tag),
                    &[(b"Allow", ALLOW), (b"Accept", b"application/sdp")],
                );
            }
            Method::Other(_) => {
                let tag = self.stateless_tag(key);
                self.counters.rejected += 1;
                self.reply(from, msg, 501, Some(&tag), &[(b"Allow", ALLOW)]);
            }
            _ => {
                // Known SIP methods this UA does not accept (§8.2.1).
                let tag = self.stateless_tag(key);
                self.counters.rejected += 1;
                self.reply(from, msg, 405, Some(&tag), &[(b"Allow", ALLOW)]);
            }
        }
    }

    fn build_resp(
        &mut self,
        req: &Message<'_>,
        code: u16,
        tag: Option<&[u8]>,
        extra: &[(&[u8], &[u8])],
        sdp: bool,
    ) -> Vec<u8> {
        let mut out = self.take_buf();
        let Endpoint { wire, .. } = self;
        let mut b = Builder::response_to(&mut out, req, code, reason_phrase(code), tag);
        for (n, v) in extra {
            b.header(n, v);
        }
        if (101..300).contains(&code) {
            // §12.1.1: Record-Route copied into dialog-creating responses.
            for rr in req.headers(b"Record-Route") {
                b.header(b"Record-Route", rr);
            }
            let via = req.top_via().map_or(&b"UDP"[..], |v| v.transport);
            b.header(b"Contact", wire.contact_for(via));
        }
        if sdp {
            b.finish(Some(b"application/sdp"), &wire.sdp_answer);
        } else {
            b.finish(None, b"");
        }
        self.count_sent_response(code);
        out
    }
}
