//! UAS flows: the registrar with digest authentication (RFC 3261 §10.3,
//! §22), the answering UAS (§13.3, §15.1.2, CANCEL §9.2), stateless answers
//! to OPTIONS and to requests that must be refused (400, 405, 481, 483,
//! 501, 505), and the server INVITE transaction (§17.2.1 with RFC 6026).

use std::time::Instant;

use super::endpoint::Endpoint;
use super::event::MethodKind;
use super::state::{Aor, Kind, NONE, Span, St, TxState};
use super::timers::{Life, later, tk};
use super::util::{dec, hex16, mix};
use super::wire::{hop_of, method_kind, strip_angle};
use crate::auth::{self, Challenge, NONCE_LEN, NonceCheck};
use crate::flow::Flow;
use crate::sip::{self, Builder, Contact, Message, Method, ParseError, reason_phrase};

const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

/// Result of checking a request's digest credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthResult {
    Ok,
    Challenge { stale: bool },
    Forbidden,
    NotFound,
}

impl Endpoint {
    /// A datagram that failed to parse. RFC 3261 §8.2.2/§21.4.1: if enough of
    /// a request survives to address a response (a Via at least), answer 505
    /// for a foreign SIP-Version and 400 naming the problem otherwise;
    /// responses and hopeless garbage are only counted.
    pub(super) fn on_unparseable(&mut self, _now: Instant, from: Flow, data: &[u8], e: ParseError) {
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
        hex16(mix(key, self.hseed))
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
    pub(super) fn on_request(&mut self, now: Instant, from: Flow, msg: &Message<'_>) {
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
            let local_txn = self.stx.contains_key(&self.skey(&via, mk));
            let needs_auth = mk == MethodKind::Invite
                && self.ans.auth_invite
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
        let key = self.skey(&via, mk);
        if mk == MethodKind::Invite {
            if let Some(&ti) = self.stx.get(&key) {
                // §17.2.1: a retransmitted INVITE gets the latest response again.
                self.counters.duplicates += 1;
                self.send_txn_copy(ti, true);
                return;
            }
        } else if let Some(&code) = self.absorb.get(&key) {
            // Timer J: the same final response, rebuilt from the retransmission.
            self.counters.duplicates += 1;
            if mk == MethodKind::Register && matches!(code, 200 | 423) && self.ans.registrar {
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
            Method::Register if self.ans.registrar => self.uas_register(now, from, msg, key, false),
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
        let Endpoint { k, .. } = self;
        let mut b = Builder::response_to(&mut out, req, code, reason_phrase(code), tag);
        for (n, v) in extra {
            b.header(n, v);
        }
        if (101..300).contains(&code) {
            // §12.1.1: Record-Route copied into dialog-creating responses.
            for rr in req.headers(b"Record-Route") {
                b.header(b"Record-Route", rr);
            }
            b.header(b"Contact", &k.contact_self);
        }
        if sdp {
            b.finish(Some(b"application/sdp"), &k.sdp_answer);
        } else {
            b.finish(None, b"");
        }
        self.count_sent_response(code);
        out
    }

    fn uas_invite(&mut self, now: Instant, from: Flow, msg: &Message<'_>, key: u64) {
        let Some(call_id) = msg.call_id() else { return };
        if let Some(tag) = msg.to().and_then(|t| t.tag) {
            // A re-INVITE (e.g. hold): accept it in the existing dialog.
            let dk = self.dkey(call_id, tag);
            if self.dlg.contains_key(&dk) {
                let out = self.build_resp(msg, 200, None, &[], true);
                self.send(from, out);
            } else {
                self.counters.rejected += 1;
                self.reply(from, msg, 481, None, &[]);
            }
            return;
        }
        if self.ans.auth_invite {
            let r = self.check_auth(now, msg, b"INVITE", true);
            if r != AuthResult::Ok {
                let ti = self.server_invite_txn(now, from, key, NONE);
                let tag = self.stateless_tag(key);
                let (code, stale) = match r {
                    AuthResult::Challenge { stale } => (407, stale),
                    AuthResult::NotFound => (404, false),
                    _ => (403, false),
                };
                let mut hdr = Vec::new();
                if code == 407 {
                    self.write_challenge(now, stale, &mut hdr);
                }
                let extra: &[(&[u8], &[u8])] = if code == 407 {
                    &[(b"Proxy-Authenticate", &hdr)]
                } else {
                    &[]
                };
                let out = self.build_resp(msg, code, Some(&tag), extra, false);
                self.txn_respond(now, ti, out, code);
                return;
            }
        }
        let ti = self.server_invite_txn(now, from, key, NONE);
        // Drawn before anything else random so a fixed ring (the default)
        // leaves every other draw where it was.
        let ring = self.ans.ring.sample(&mut self.rng);
        if !ring.is_zero() {
            // §17.2.1 wants a 100 only when the TU will not answer within
            // 200 ms; an immediate answer (ring 0, the benchmark case) skips it.
            let trying = self.build_resp(msg, 100, None, &[], false);
            self.txn_respond(now, ti, trying, 100);
        }
        if self.rng.chance(self.ans.busy) {
            let tag = self.stateless_tag(key);
            let out = self.build_resp(msg, 486, Some(&tag), &[], false);
            self.txn_respond(now, ti, out, 486);
            return;
        }
        // Bound what one peer can make us hold (issue 8): a client that
        // never sends BYE would otherwise keep calls until `max_call`.
        let pk = self.peer_key(from);
        let cap = self.sc.as_ref().map_or(u32::MAX, |c| c.max_calls_per_peer);
        if self.peer_calls.get(&pk).is_some_and(|n| *n >= cap) {
            self.counters.rejected += 1;
            let tag = self.stateless_tag(key);
            let out = self.build_resp(
                msg,
                503,
                Some(&tag),
                &[(b"Retry-After" as &[u8], b"5" as &[u8])],
                false,
            );
            self.txn_respond(now, ti, out, 503);
            return;
        }
        let tag = self.new_id();
        let th = hex16(tag);
        let dk = self.dkey(call_id, &th);
        let si = self.sess_new(Kind::UasCall);
        *self.peer_calls.entry(pk).or_insert(0) += 1;
        let no_answer = self.rng.chance(self.ans.no_answer);
        let txn_gen = self.txns.generation(ti);
        let sess_gen = self.sess.generation(si);
        if let Some(s) = self.sess.get_mut(si) {
            s.key = dk;
            s.tag = tag;
            // UAS calls never send an INVITE: the field holds the peer key.
            s.inv_branch = pk;
            s.txn = ti;
            s.txn_gen = txn_gen;
            s.st = if no_answer {
                St::NoAnswer
            } else if ring.is_zero() {
                St::Answered
            } else {
                St::Ringing
            };
            if no_answer || !ring.is_zero() {
                // Kept to build the 200 / 487 / 480 later.
                s.invite = s.put(msg.as_bytes());
            }
        }
        if let Some(t) = self.txns.get_mut(ti) {
            t.owner = si;
            t.owner_gen = sess_gen;
        }
        self.dlg.insert(dk, si);
        let ringing = self.build_resp(msg, 180, Some(&th), &[], false);
        self.txn_respond(now, ti, ringing, 180);
        if no_answer {
            let d = self.ans.no_answer_timeout;
            self.arm_sess(later(now, d), tk::S_GUARD, si);
        } else if ring.is_zero() {
            self.answer(now, si, ti, msg);
        } else {
            self.arm_sess(later(now, ring), tk::S_RING, si);
        }
    }

    fn answer(&mut self, now: Instant, si: u32, ti: u32, inv: &Message<'_>) {
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        s.st = St::Answered;
        let th = hex16(s.tag);
        let ok = self.build_resp(inv, 200, Some(&th), &[], true);
        self.counters.answered += 1;
        self.txn_respond(now, ti, ok, 200);
    }

    /// A final response to a ringing INVITE from the stored request
    /// (200 after the ring delay, 487 after CANCEL, 480 unanswered).
    fn finish_stored(&mut self, now: Instant, si: u32, code: u16) {
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        let (ti, tg) = (s.txn, s.txn_gen);
        let th = hex16(s.tag);
        let inv_span = s.invite;
        let buf = std::mem::take(&mut s.buf);
        let live = ti != NONE && self.txns.generation(ti) == tg && self.txns.get(ti).is_some();
        if live
            && let Some(bytes) =
                buf.get(inv_span.0 as usize..inv_span.0 as usize + inv_span.1 as usize)
            && let Ok(inv) = sip::parse(bytes)
        {
            if code == 200 {
                if let Some(s) = self.sess.get_mut(si) {
                    s.st = St::Answered;
                }
                let ok = self.build_resp(&inv, 200, Some(&th), &[], true);
                self.counters.answered += 1;
                self.txn_respond(now, ti, ok, 200);
            } else {
                let out = self.build_resp(&inv, code, Some(&th), &[], false);
                self.txn_respond(now, ti, out, code);
            }
        }
        if let Some(s) = self.sess.get_mut(si) {
            // The stored INVITE is done with; a call in hold should not keep
            // a kilobyte of buffer capacity around.
            s.buf = if buf.capacity() > 256 {
                Vec::new()
            } else {
                buf
            };
            s.buf.clear();
            s.invite = Span(0, 0);
        }
        if code != 200 {
            // The transaction lives on (Completed) to absorb the ACK.
            if let Some(s) = self.sess.get_mut(si) {
                s.txn = NONE;
            }
            self.sess_free(si);
        }
    }

    pub(super) fn uas_timer(&mut self, now: Instant, kind: u8, si: u32) {
        let Some(s) = self.sess.get(si) else { return };
        match (s.st, kind) {
            (St::Ringing, tk::S_RING) => self.finish_stored(now, si, 200),
            (St::NoAnswer | St::Ringing, tk::S_GUARD) => self.finish_stored(now, si, 480),
            (St::Established, tk::S_HOLD) => self.sess_free(si),
            _ => {}
        }
    }

    fn on_ack(&mut self, now: Instant, msg: &Message<'_>, via: &sip::Via<'_>) {
        let key = self.skey(via, MethodKind::Ack);
        if self.absorb.contains_key(&key) {
            // Confirmed (Timer I): retransmitted ACKs are absorbed.
            self.counters.duplicates += 1;
            return;
        }
        if let Some(&ti) = self.stx.get(&key)
            && self
                .txns
                .get(ti)
                .is_some_and(|t| t.state == TxState::Completed)
        {
            // §17.2.1: Confirmed; the state shrinks to an absorber record
            // for T4 (Timer I) instead of keeping the response buffer.
            self.txn_free(ti);
            self.absorb_add(now, key, 0, Life::K);
            return;
        }
        // ACK for a 2xx: a new transaction, matched to the dialog (§13.3.1.4).
        let (Some(cid), Some(tag)) = (msg.call_id(), msg.to().and_then(|t| t.tag)) else {
            self.counters.unexpected += 1;
            return;
        };
        let dk = self.dkey(cid, tag);
        let Some(&si) = self.dlg.get(&dk) else {
            self.counters.unexpected += 1;
            return;
        };
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        match (s.kind, s.st) {
            (Kind::UasCall, St::Answered) => {
                s.st = St::Established;
                let (ti, tg) = (s.txn, s.txn_gen);
                s.txn = NONE;
                if ti != NONE && self.txns.generation(ti) == tg {
                    self.txn_free(ti);
                }
                let max = self.ans.max_call;
                self.arm_sess(later(now, max), tk::S_HOLD, si);
            }
            (Kind::UasCall, St::Established) => self.counters.duplicates += 1,
            _ => self.counters.unexpected += 1,
        }
    }

    fn uas_bye(&mut self, now: Instant, from: Flow, msg: &Message<'_>, key: u64) {
        let dk = match (msg.call_id(), msg.to().and_then(|t| t.tag)) {
            (Some(c), Some(t)) => Some(self.dkey(c, t)),
            _ => None,
        };
        let si = dk.and_then(|k| self.dlg.get(&k).copied());
        let code = match si.and_then(|si| self.sess.get(si).map(|s| (si, s.kind, s.st))) {
            Some((si, Kind::UasCall, _)) => {
                self.sess_free(si);
                200
            }
            Some((si, Kind::UacCall, St::Confirmed)) => {
                // The far end hung up first.
                self.reply(from, msg, 200, None, &[]);
                self.absorb_add(now, key, 200, Life::J);
                self.remote_bye(now, si);
                return;
            }
            _ => {
                self.counters.rejected += 1;
                481
            }
        };
        let tag = self.stateless_tag(key);
        self.reply(from, msg, code, Some(&tag), &[]);
        self.absorb_add(now, key, code, Life::J);
    }

    /// §9.2: 200 for the CANCEL; if the INVITE has no final response yet,
    /// 487 for it. No matching INVITE transaction: 481.
    fn uas_cancel(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        via: &sip::Via<'_>,
        key: u64,
    ) {
        let ikey = self.skey(via, MethodKind::Invite);
        let Some(&ti) = self.stx.get(&ikey) else {
            let tag = self.stateless_tag(key);
            self.counters.rejected += 1;
            self.reply(from, msg, 481, Some(&tag), &[]);
            self.absorb_add(now, key, 481, Life::J);
            return;
        };
        let (state, owner, og) = match self.txns.get(ti) {
            Some(t) => (t.state, t.owner, t.owner_gen),
            None => return,
        };
        let s_tag = (owner != NONE && self.sess.generation(owner) == og)
            .then(|| self.sess.get(owner).map(|s| hex16(s.tag)))
            .flatten()
            .unwrap_or_else(|| self.stateless_tag(key));
        self.reply(from, msg, 200, Some(&s_tag), &[]);
        self.absorb_add(now, key, 200, Life::J);
        if state == TxState::Proceeding && owner != NONE && self.sess.generation(owner) == og {
            self.finish_stored(now, owner, 487);
        }
    }

    // ---- registrar ------------------------------------------------------

    fn now_s(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() + 1_000_000
    }

    fn write_challenge(&mut self, now: Instant, stale: bool, out: &mut Vec<u8>) {
        let now_s = self.now_s(now);
        let mut nonce = [0u8; NONCE_LEN];
        let (Some(mint), Some(sc)) = (self.mint.as_mut(), self.sc.as_ref()) else {
            return;
        };
        let n = mint.mint(now_s, &mut nonce);
        let mut ch = Challenge::new(sc.realm.as_bytes(), n, sc.algorithm);
        ch.qop_auth = !sc.qop_auth_int;
        ch.qop_auth_int = sc.qop_auth_int;
        ch.stale = stale;
        auth::write_challenge(out, &ch);
    }

    /// RFC 3261 §22.4 / RFC 7616 §3.4.5: credentials for our realm, a nonce
    /// we minted and still fresh, a user we know, a matching digest.
    fn check_auth(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        method: &[u8],
        proxy: bool,
    ) -> AuthResult {
        let hdr = if proxy {
            msg.proxy_authorization()
        } else {
            msg.authorization()
        };
        let Some(v) = hdr else {
            return AuthResult::Challenge { stale: false };
        };
        let Ok(cr) = auth::parse_authorization(v) else {
            return AuthResult::Challenge { stale: false };
        };
        let now_s = self.now_s(now);
        let nonce_key = self.h(cr.nonce);
        let Endpoint {
            sc,
            mint,
            s1,
            s2,
            nc_guard,
            ..
        } = self;
        let (Some(sc), Some(mint)) = (sc.as_ref(), mint.as_ref()) else {
            return AuthResult::Forbidden;
        };
        if !auth::wire_eq(cr.realm, sc.realm.as_bytes()) {
            return AuthResult::Challenge { stale: false };
        }
        let fresh = mint.check(cr.nonce, now_s, sc.nonce_lifetime.as_secs());
        if fresh == NonceCheck::Invalid {
            return AuthResult::Challenge { stale: false };
        }
        s1.clear();
        auth::unescape_into(s1, cr.username);
        s2.clear();
        if !sc.passwords.password_of(s1, s2) {
            return AuthResult::NotFound;
        }
        let ha1 = auth::Ha1::new(cr.algorithm, s1, sc.realm.as_bytes(), s2);
        if !auth::verify(&cr, &ha1, method, msg.body()) {
            return AuthResult::Forbidden;
        }
        if fresh == NonceCheck::Stale {
            return AuthResult::Challenge { stale: true };
        }
        // With qop the nonce count must grow (RFC 7616 §3.4.5): a replayed
        // request, even with a correct response, gets a fresh nonce.
        if cr.qop.is_some() {
            let Some(nc) = cr.nc else {
                return AuthResult::Challenge { stale: false };
            };
            if !nc_guard.check(
                nonce_key,
                nonce_minted_s(cr.nonce),
                nc,
                now_s,
                sc.nonce_lifetime.as_secs(),
            ) {
                return AuthResult::Challenge { stale: true };
            }
        }
        AuthResult::Ok
    }

    /// The registrar (§10.3). `authed`: a retransmission of a transaction
    /// that already passed authentication (see the absorber in `on_request`).
    /// Every final response but a 401 leaves an absorber record (Timer J),
    /// so retransmissions get the same answer (§17.2.2) without a second
    /// credential check; a 401 keeps none, as a retransmitted request
    /// without credentials may simply be challenged again.
    fn uas_register(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        key: u64,
        authed: bool,
    ) {
        let tag = self.stateless_tag(key);
        let user = msg
            .to()
            .and_then(|t| sip::parse_uri(t.uri))
            .and_then(|u| u.user);
        let Some(user) = user else {
            self.counters.rejected += 1;
            self.respond(
                from,
                msg,
                400,
                b"Bad Request - To has no user part",
                Some(&tag),
                &[],
                None,
            );
            return;
        };
        if self.ans.auth_register && !authed {
            match self.check_auth(now, msg, b"REGISTER", false) {
                AuthResult::Ok => {}
                AuthResult::Challenge { stale } => {
                    let mut hdr = std::mem::take(&mut self.s3);
                    hdr.clear();
                    self.write_challenge(now, stale, &mut hdr);
                    self.reply(from, msg, 401, Some(&tag), &[(b"WWW-Authenticate", &hdr)]);
                    self.s3 = hdr;
                    return;
                }
                AuthResult::Forbidden => {
                    self.reply(from, msg, 403, Some(&tag), &[]);
                    self.absorb_add(now, key, 403, Life::J);
                    return;
                }
                AuthResult::NotFound => {
                    self.reply(from, msg, 404, Some(&tag), &[]);
                    self.absorb_add(now, key, 404, Life::J);
                    return;
                }
            }
        }
        let (min_e, max_e) = self
            .sc
            .as_ref()
            .map_or((60, 7200), |s| (s.min_expires, s.max_expires));
        let hdr_e = msg.expires();
        // Validate every Contact first (§10.3 steps 6–7), then apply.
        let mut star = false;
        let mut n = 0;
        for c in msg.contacts() {
            match c {
                Contact::Star => star = true,
                Contact::Addr { expires, .. } => {
                    n += 1;
                    let e = expires.or(hdr_e).unwrap_or(3600);
                    if e != 0 && e < min_e {
                        let mut nb = [0u8; 20];
                        let v = dec(u64::from(min_e), &mut nb).to_vec();
                        self.reply(from, msg, 423, Some(&tag), &[(b"Min-Expires", &v)]);
                        self.absorb_add(now, key, 423, Life::J);
                        return;
                    }
                }
            }
        }
        if star && (n > 0 || hdr_e != Some(0)) {
            self.counters.rejected += 1;
            self.respond(
                from,
                msg,
                400,
                b"Bad Request - Contact * needs Expires: 0 and no other Contact",
                Some(&tag),
                &[],
                None,
            );
            return;
        }
        let akey = self.h(user);
        let now_ns = self.ns(now);
        let existing = self.aor_map.get(&akey).copied();
        let ai = match existing {
            Some(ai) => ai,
            None if star || n == 0 => NONE,
            None => {
                let (ai, _, a) = self.aors.insert();
                a.key = akey;
                a.buf.clear();
                a.contacts.clear();
                a.tm = super::wheel::TimerId::NONE;
                self.aor_map.insert(akey, ai);
                ai
            }
        };
        let mut soonest = u64::MAX;
        if let Some(a) = self.aors.get_mut(ai) {
            if star {
                a.contacts.clear();
            }
            for c in msg.contacts() {
                let Contact::Addr { addr, expires, .. } = c else {
                    continue;
                };
                let e = expires.or(hdr_e).unwrap_or(3600).min(max_e);
                let uri = strip_angle(addr.uri);
                a.contacts.retain(|(s, l, _)| {
                    a.buf.get(*s as usize..*s as usize + *l as usize) != Some(uri)
                });
                if e > 0 {
                    compact(a);
                    if a.buf.len() + uri.len() <= u16::MAX as usize && a.contacts.len() < 64 {
                        let s = a.buf.len() as u16;
                        a.buf.extend_from_slice(uri);
                        let exp = now_ns + u64::from(e) * 1_000_000_000;
                        a.contacts.push((s, uri.len() as u16, exp));
                    }
                }
            }
            soonest = a.contacts.iter().map(|c| c.2).min().unwrap_or(u64::MAX);
        }
        // 200 with every current binding (§10.3 step 8), one comma-joined Contact.
        let mut lines = std::mem::take(&mut self.s3);
        lines.clear();
        if let Some(a) = self.aors.get(ai) {
            for (i, (s, l, exp)) in a.contacts.iter().enumerate() {
                if i > 0 {
                    lines.extend_from_slice(b", ");
                }
                lines.push(b'<');
                lines.extend_from_slice(
                    a.buf
                        .get(*s as usize..*s as usize + *l as usize)
                        .unwrap_or(b""),
                );
                lines.extend_from_slice(b">;expires=");
                let mut nb = [0u8; 20];
                lines.extend_from_slice(dec(exp.saturating_sub(now_ns) / 1_000_000_000, &mut nb));
            }
        }
        if lines.is_empty() {
            self.reply(from, msg, 200, Some(&tag), &[]);
        } else {
            self.reply(from, msg, 200, Some(&tag), &[(b"Contact", &lines)]);
        }
        self.s3 = lines;
        if !authed {
            self.absorb_add(now, key, 200, Life::J);
        }
        if ai != NONE {
            if soonest == u64::MAX {
                self.aor_free(ai);
            } else {
                let at = self.at(soonest);
                self.arm_aor(at, ai);
            }
        }
    }

    fn arm_aor(&mut self, at: Instant, ai: u32) {
        let g = self.aors.generation(ai);
        let Some(old) = self.aors.get(ai).map(|a| a.tm) else {
            return;
        };
        self.wheel.cancel(old);
        let id = self.arm(at, tk::AOR_EXPIRE, ai, g);
        if let Some(a) = self.aors.get_mut(ai) {
            a.tm = id;
        }
    }

    fn aor_free(&mut self, ai: u32) {
        if let Some(a) = self.aors.get(ai) {
            let (k, tm) = (a.key, a.tm);
            if self.aor_map.get(&k) == Some(&ai) {
                self.aor_map.remove(&k);
            }
            self.wheel.cancel(tm);
            self.aors.remove(ai);
        }
    }

    /// A binding's lifetime ran out: drop expired contacts, free the AOR
    /// when none is left.
    pub(super) fn aor_expire(&mut self, now: Instant, ai: u32) {
        let n = self.ns(now);
        let Some(a) = self.aors.get_mut(ai) else {
            return;
        };
        a.contacts.retain(|c| c.2 > n);
        match a.contacts.iter().map(|c| c.2).min() {
            None => self.aor_free(ai),
            Some(next) => {
                let at = self.at(next);
                self.arm_aor(at, ai);
            }
        }
    }

    /// Registrar lookup for tests and the proxy path: the bound Contact URIs
    /// of `user`, with their next hops.
    pub fn bindings_of(&self, user: &[u8]) -> Vec<(Vec<u8>, Option<Flow>)> {
        let Some(&ai) = self.aor_map.get(&self.h(user)) else {
            return Vec::new();
        };
        let Some(a) = self.aors.get(ai) else {
            return Vec::new();
        };
        a.contacts
            .iter()
            .filter_map(|(s, l, _)| a.buf.get(*s as usize..*s as usize + *l as usize))
            .map(|u| (u.to_vec(), hop_of(u)))
            .collect()
    }
}

/// Drop bytes of removed contacts when the buffer is mostly garbage.
fn compact(a: &mut Aor) {
    let live: usize = a.contacts.iter().map(|c| c.1 as usize).sum();
    if a.buf.len() < 256 || live * 2 > a.buf.len() {
        return;
    }
    let mut nb = Vec::with_capacity(live);
    for c in a.contacts.iter_mut() {
        let s = nb.len() as u16;
        nb.extend_from_slice(
            a.buf
                .get(c.0 as usize..c.0 as usize + c.1 as usize)
                .unwrap_or(b""),
        );
        c.0 = s;
    }
    a.buf = nb;
}

/// The mint time a valid nonce carries in its first 16 hex digits
/// (`auth::NonceMint::mint`); 0 if unreadable.
fn nonce_minted_s(nonce: &[u8]) -> u64 {
    nonce
        .get(..16)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}
