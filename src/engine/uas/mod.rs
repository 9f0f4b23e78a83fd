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
mod domain;
mod invite;
mod registrar;

use auth::AuthResult;

const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

impl Endpoint {
    /// A datagram that failed to parse. RFC 3261 §8.2.2/§21.4.1: if enough of
    /// a request survives to address a response (a Via at least), answer 505
    /// for a foreign SIP-Version and 400 naming the problem otherwise;
    /// responses and hopeless garbage are only counted. The answer is never
    /// larger than the garbage (see [`Self::send_bounded`]).
    pub(in crate::engine) fn on_unparseable(
        &mut self,
        _now: Instant,
        from: Flow,
        data: &[u8],
        e: ParseError,
    ) {
        let mut out = self.build_unparseable_answer(data, e, true);
        if out.as_ref().is_some_and(|(o, _)| o.len() > data.len()) {
            // Too long with the reason spelled out: the bare reason phrase.
            if let Some((o, _)) = out.take() {
                self.put_buf(o);
            }
            out = self.build_unparseable_answer(data, e, false);
        }
        let Some((out, code)) = out else { return };
        self.counters.rejected += 1;
        if self.send_bounded(from, out, data.len()) {
            self.count_sent_response(code);
        }
    }

    /// The 400 or 505 for an unparseable request, if one can be addressed
    /// (a Via survives); `detail` names the problem in the reason phrase.
    fn build_unparseable_answer(
        &mut self,
        data: &[u8],
        e: ParseError,
        detail: bool,
    ) -> Option<(Vec<u8>, u16)> {
        let (code, reason): (u16, &[u8]) = match e {
            ParseError::BadVersion => (505, b"Version Not Supported"),
            ParseError::Empty
            | ParseError::TooLarge
            | ParseError::Truncated
            | ParseError::BadStartLine
            | ParseError::TooManyHeaders => return None,
            _ => (400, b""),
        };
        let line_end = memchr::memmem::find(data, b"\r\n")?;
        let start = &data[..line_end];
        if start.starts_with(b"SIP/") || start.starts_with(b"ACK ") {
            return None; // never answer a response or an ACK
        }
        let mut reason_buf;
        let reason = if reason.is_empty() && !detail {
            &b"Bad Request"[..]
        } else if reason.is_empty() {
            reason_buf = b"Bad Request - ".to_vec();
            reason_buf.extend_from_slice(e.to_string().as_bytes());
            reason_buf.retain(|c| *c != b'\r' && *c != b'\n');
            &reason_buf[..]
        } else {
            reason
        };
        // Compact header names (§7.3.3) keep the answer within the size of
        // what it answers (see `send_bounded`).
        let mut out = self.take_buf();
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(code.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason);
        out.extend_from_slice(b"\r\n");
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
            let compact: &[u8] = match name.to_ascii_lowercase().as_slice() {
                b"via" | b"v" => b"v",
                b"from" | b"f" => b"f",
                b"to" | b"t" => b"t",
                b"call-id" | b"i" => b"i",
                b"cseq" => b"CSeq",
                _ => continue,
            };
            has_via |= compact == b"v";
            out.extend_from_slice(compact);
            out.extend_from_slice(b": ");
            out.extend_from_slice(line[colon + 1..].trim_ascii());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"l: 0\r\n\r\n");
        if has_via {
            Some((out, code))
        } else {
            self.put_buf(out);
            None
        }
    }

    /// Send an answer to a request that proved nothing about its source (an
    /// unparseable or malformed one), only if it is no larger than `limit`,
    /// the request's own size: a forged source never draws more bytes back
    /// than it sent (issue 13: garbage drew a 400 three times its size).
    /// Dropped answers are counted as `unanswered`.
    pub(super) fn send_bounded(&mut self, to: Flow, out: Vec<u8>, limit: usize) -> bool {
        if out.len() > limit {
            self.counters.unanswered += 1;
            self.put_buf(out);
            false
        } else {
            self.send(to, out);
            true
        }
    }

    /// Whether `--max-rate` refuses one more attempt now (taking its token
    /// when not); see [`crate::engine::throttle`].
    pub(super) fn throttled(&self, now: Instant) -> bool {
        self.role
            .server()
            .and_then(|c| c.throttle.as_ref())
            .is_some_and(|t| !t.admit(now))
    }

    /// A stateless 503 with Retry-After (RFC 3261 §21.5.4): the server is at
    /// a capacity limit (`--max-rate`, the transaction or AOR caps). No
    /// transaction is kept, so it is never retransmitted; the client's
    /// retransmission of its request simply gets another.
    pub(super) fn reply_unavailable(&mut self, from: Flow, msg: &Message<'_>, key: u64) {
        let tag = self.stateless_tag(key);
        self.counters.rejected += 1;
        self.reply(from, msg, 503, Some(&tag), &[(b"Retry-After", b"1")]);
    }

    /// A final response of a server non-INVITE transaction: sent, and kept
    /// byte for byte for Timer J (see [`Self::absorb_response`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply_final(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        key: u64,
        code: u16,
        tag: Option<&[u8]>,
        extra: &[(&[u8], &[u8])],
    ) {
        let mut out = self.take_buf();
        let mut b = Builder::response_to(&mut out, msg, code, reason_phrase(code), tag);
        for (n, v) in extra {
            b.header(n, v);
        }
        b.finish(None, b"");
        let fp = self.request_fingerprint(from, msg);
        self.absorb_response(now, key, fp, code, &out, from);
        self.count_sent_response(code);
        self.send(from, out);
    }

    /// Deterministic To-tag for stateless answers, so a retransmitted
    /// request gets the same tag.
    fn stateless_tag(&self, key: u64) -> [u8; 16] {
        hex16(mix(key, self.hash_seed))
    }

    /// A response built from `req` with the standard reason phrase and
    /// `extra` header lines, queued to `to` (nothing kept).
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

    /// Every request: retransmissions first (they only get the response
    /// already sent), then the proxy, ACK, and by method.
    pub(in crate::engine) fn on_request(&mut self, now: Instant, from: Flow, msg: &Message<'_>) {
        let (Some(method), Some(via)) = (msg.method(), msg.top_via()) else {
            self.counters.unexpected += 1;
            return;
        };
        let mk = method_kind(&method);
        let key = self.server_txn_key(&via, mk);
        if !self.serves(msg, mk) {
            // `serve --domain`: not one of ours (§8.2.2.1 would allow 416
            // for the scheme; an unknown domain is 404, §21.4.5).
            let tag = self.stateless_tag(key);
            self.counters.rejected += 1;
            self.reply(from, msg, 404, Some(&tag), &[]);
            return;
        }
        if mk == MethodKind::Invite {
            if let Some(&ti) = self.server_txns.get(&key) {
                // §17.2.1: a retransmitted INVITE gets the latest response
                // again, on the transaction's own flow.
                self.counters.duplicates += 1;
                self.send_txn_copy(ti, true);
                return;
            }
        } else if mk != MethodKind::Ack
            && let Some(rec) = self.absorbers.records.get(&key).copied()
            && rec.fingerprint == self.request_fingerprint(from, msg)
            && self.absorbed_resend(from, rec)
        {
            // Timer J (§17.2.2): the very response sent before, and nothing
            // runs again. A request sharing only the branch, sent-by and
            // method is no retransmission and goes on as a new one.
            self.counters.duplicates += 1;
            return;
        }
        let out_of_dialog = msg.to().and_then(|t| t.tag).is_none();
        // The ACK of a response this endpoint sent (a 407) belongs to its
        // own INVITE transaction, never to the proxy.
        let local_txn = mk == MethodKind::Ack && self.server_txns.contains_key(&key);
        if mk != MethodKind::Register
            && !local_txn
            && let Some((contact, hop)) = self.proxy_target(msg)
        {
            // An INVITE still to be authenticated stays here (407).
            let auth = (mk == MethodKind::Invite && self.answer.auth_invite && out_of_dialog)
                .then(|| self.check_auth(now, msg, b"INVITE", true));
            let needs_auth = auth.is_some_and(|r| !matches!(r, AuthResult::Ok { .. }));
            // Max-Forwards 0 is answered 483 below, never forwarded (§16.3 step 3).
            if !needs_auth && msg.max_forwards() != Some(0) {
                // A new call is an attempt (throttle) unless it answers a
                // challenge (the first use of its nonce).
                let starts = mk == MethodKind::Invite
                    && out_of_dialog
                    && !matches!(auth, Some(AuthResult::Ok { first: true }));
                if starts && self.throttled(now) {
                    self.reply_unavailable(from, msg, key);
                    return;
                }
                self.proxy_request(from, msg, &contact, hop);
                return;
            }
        }
        if mk == MethodKind::Ack {
            self.on_ack(now, msg, &via);
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
            Method::Register if self.answer.registrar => self.uas_register(now, from, msg, key),
            Method::Bye => self.uas_bye(now, from, msg, key),
            Method::Cancel => self.uas_cancel(now, from, msg, &via, key),
            Method::Options => {
                if out_of_dialog && self.throttled(now) {
                    self.reply_unavailable(from, msg, key);
                    return;
                }
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
