//! The registrar (RFC 3261 §10.3): bindings per address-of-record with
//! their expiry, 423 with Min-Expires, `Contact: *` removal, who may change
//! which AOR (step 6), caps on bindings and AORs, and the lookup the proxy
//! path and tests use.

use std::time::Instant;

use super::AuthResult;
use crate::engine::endpoint::Endpoint;
use crate::engine::state::{Aor, Binding, NONE};
use crate::engine::util::dec;
use crate::engine::wheel::TimerId;
use crate::engine::wire::{hop_of, strip_angle};
use crate::flow::{Flow, TransportKind};
use crate::sip::{self, Contact, Message};

/// Percent-decode a URI's user part into `out` (RFC 3261 §19.1.4: escaped
/// characters compare as their values); a `%` not followed by two hex
/// digits stays as written.
fn unescape_user(user: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < user.len() {
        if user[i] == b'%'
            && let (Some(h), Some(l)) = (
                user.get(i + 1).and_then(|c| crate::auth::hex_val(*c)),
                user.get(i + 2).and_then(|c| crate::auth::hex_val(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(user[i]);
            i += 1;
        }
    }
}

impl Endpoint {
    /// The registrar's key of the address-of-record a URI names (the To URI
    /// of a REGISTER, the Request-URI of a request to proxy), with the
    /// canonical user part (§10.3 step 5: "with escaped characters
    /// unescaped") left in `user`. `None` when the URI has no user. One
    /// place for the AOR's identity: the user and, with `serve --domain`,
    /// the served domain of the URI's host (`None` for a host not served).
    pub(in crate::engine) fn aor_key(&self, uri: &[u8], user: &mut Vec<u8>) -> Option<u64> {
        let u = sip::parse_uri(strip_angle(uri))?;
        unescape_user(u.user?, user);
        self.user_key(user, u.host)
    }

    /// The registrar (§10.3). Every final response but a 401 and a 400
    /// leaves a Timer J record with the response itself, so a
    /// retransmission gets it again (§17.2.2) and nothing runs twice; a 401
    /// keeps none, as a retransmitted request without credentials may
    /// simply be challenged again.
    pub(super) fn uas_register(&mut self, now: Instant, from: Flow, msg: &Message<'_>, key: u64) {
        let tag = self.stateless_tag(key);
        let mut user = std::mem::take(&mut self.aor_user);
        let akey = msg.to().and_then(|t| self.aor_key(t.uri, &mut user));
        let answered = self.register_checked(now, from, msg, key, &tag, akey, &user);
        self.aor_user = user;
        if let Some(ai) = answered
            && ai != NONE
        {
            let soonest = self
                .aors
                .get(ai)
                .and_then(|a| a.contacts.iter().map(|c| c.expiry).min());
            match soonest {
                None => self.aor_free(ai),
                Some(at) => {
                    let at = self.to_instant(at);
                    self.arm_aor(at, ai);
                }
            }
        }
    }

    /// Steps 2–8 of §10.3 for one REGISTER whose AOR key is `akey` (user
    /// `user`); returns the AOR slot whose expiry timer must be set (NONE
    /// for none) when bindings were applied.
    #[allow(clippy::too_many_arguments)]
    fn register_checked(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        key: u64,
        tag: &[u8],
        akey: Option<u64>,
        user: &[u8],
    ) -> Option<u32> {
        let Some(akey) = akey else {
            self.counters.rejected += 1;
            self.respond_bounded(from, msg, b"Bad Request - To has no user part", tag);
            return None;
        };
        let authenticated = self.answer.auth_register && msg.authorization().is_some();
        if !authenticated && self.throttled(now) {
            self.reply_unavailable(from, msg, key);
            return None;
        }
        if self.answer.auth_register {
            match self.check_auth(now, msg, b"REGISTER", false) {
                AuthResult::Ok { first } => {
                    // A refresh reusing its nonce is a new attempt (throttle).
                    if !first && self.throttled(now) {
                        self.reply_unavailable(from, msg, key);
                        return None;
                    }
                    // Step 6: may this user change this AOR?
                    let may = self
                        .role
                        .server()
                        .is_some_and(|c| c.aor_policy.may_change(&self.scratch.name, user));
                    if !may {
                        self.counters.rejected += 1;
                        self.reply_final(now, from, msg, key, 403, Some(tag), &[]);
                        return None;
                    }
                }
                r => {
                    // A request whose credentials were not honoured is an
                    // attempt start like one without (throttle).
                    if authenticated && self.throttled(now) {
                        self.reply_unavailable(from, msg, key);
                        return None;
                    }
                    match r {
                        AuthResult::Challenge { stale } => {
                            let mut hdr = std::mem::take(&mut self.scratch.header);
                            hdr.clear();
                            self.write_challenge(now, stale, &mut hdr);
                            self.reply(from, msg, 401, Some(tag), &[(b"WWW-Authenticate", &hdr)]);
                            self.scratch.header = hdr;
                        }
                        AuthResult::UriMismatch => {
                            self.counters.rejected += 1;
                            self.respond_bounded(
                                from,
                                msg,
                                b"Bad Request - digest uri is not the Request-URI",
                                tag,
                            );
                        }
                        AuthResult::NotFound => {
                            self.reply_final(now, from, msg, key, 404, Some(tag), &[])
                        }
                        _ => self.reply_final(now, from, msg, key, 403, Some(tag), &[]),
                    }
                    return None;
                }
            }
        }
        let (min_e, max_e, max_bindings, max_aors) =
            self.role.server().map_or((60, 7200, 16, usize::MAX), |s| {
                (
                    s.min_expires,
                    s.max_expires,
                    s.max_bindings_per_aor,
                    s.max_aors,
                )
            });
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
                        self.reply_final(
                            now,
                            from,
                            msg,
                            key,
                            423,
                            Some(tag),
                            &[(b"Min-Expires", &v)],
                        );
                        return None;
                    }
                }
            }
        }
        if star && (n > 0 || hdr_e != Some(0)) {
            self.counters.rejected += 1;
            self.respond_bounded(
                from,
                msg,
                b"Bad Request - Contact * needs Expires: 0 and no other Contact",
                tag,
            );
            return None;
        }
        let existing = self.aor_map.get(&akey).copied();
        // The bindings this request leaves, counted before anything changes:
        // beyond the cap, 403 and no change at all.
        if n > 0 {
            let kept = existing.and_then(|ai| self.aors.get(ai)).map_or(0, |a| {
                a.contacts
                    .iter()
                    .filter(|b| {
                        let uri = a.uri(b);
                        !msg.contacts().any(|c| {
                            matches!(c, Contact::Addr { addr, .. } if strip_angle(addr.uri) == uri)
                        })
                    })
                    .count()
            });
            let added = msg
                .contacts()
                .filter(|c| {
                    matches!(c, Contact::Addr { expires, .. }
                        if expires.or(hdr_e).unwrap_or(3600) > 0)
                })
                .count();
            if kept + added > max_bindings {
                self.counters.rejected += 1;
                self.reply_final(now, from, msg, key, 403, Some(tag), &[]);
                return None;
            }
            if existing.is_none() && added > 0 && self.aor_map.len() >= max_aors {
                self.reply_unavailable(from, msg, key);
                return None;
            }
        }
        let now_ns = self.to_ns(now);
        let ai = match existing {
            Some(ai) => ai,
            None if star || n == 0 => NONE,
            None => {
                let (ai, _, a) = self.aors.insert();
                a.key = akey;
                a.buf.clear();
                a.contacts.clear();
                a.expiry_timer = TimerId::NONE;
                self.aor_map.insert(akey, ai);
                ai
            }
        };
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
                a.contacts.retain(|b| {
                    a.buf
                        .get(b.start as usize..b.start as usize + b.len as usize)
                        != Some(uri)
                });
                if e > 0 {
                    compact(a);
                    if a.buf.len() + uri.len() <= u16::MAX as usize {
                        let start = a.buf.len() as u16;
                        a.buf.extend_from_slice(uri);
                        a.contacts.push(Binding {
                            start,
                            len: uri.len() as u16,
                            expiry: now_ns + u64::from(e) * 1_000_000_000,
                            own_address: hop_of(uri, TransportKind::Udp)
                                .is_some_and(|h| h.peer == from.peer),
                        });
                    }
                }
            }
        }
        // 200 with the current bindings (§10.3 step 8), one comma-joined
        // Contact. Only an authenticated request learns every binding of
        // the AOR: without authentication (`--auth off`) the answer lists
        // the Contacts of the request itself, so a spoofed query (a
        // REGISTER with no Contact) draws no binding list (issue 13).
        let mut lines = std::mem::take(&mut self.scratch.header);
        lines.clear();
        if let Some(a) = self.aors.get(ai) {
            let mut first = true;
            for b in &a.contacts {
                let uri = a.uri(b);
                if !self.answer.auth_register
                    && !msg.contacts().any(
                        |c| matches!(c, Contact::Addr { addr, .. } if strip_angle(addr.uri) == uri),
                    )
                {
                    continue;
                }
                if !first {
                    lines.extend_from_slice(b", ");
                }
                first = false;
                lines.push(b'<');
                lines.extend_from_slice(uri);
                lines.extend_from_slice(b">;expires=");
                let mut nb = [0u8; 20];
                lines.extend_from_slice(dec(
                    b.expiry.saturating_sub(now_ns) / 1_000_000_000,
                    &mut nb,
                ));
            }
        }
        if lines.is_empty() {
            self.reply_final(now, from, msg, key, 200, Some(tag), &[]);
        } else {
            self.reply_final(now, from, msg, key, 200, Some(tag), &[(b"Contact", &lines)]);
        }
        self.scratch.header = lines;
        Some(ai)
    }

    /// A 400 with a reason naming the problem, no larger than the request
    /// (a malformed REGISTER proved nothing about its source).
    fn respond_bounded(&mut self, from: Flow, msg: &Message<'_>, reason: &[u8], tag: &[u8]) {
        let mut out = self.take_buf();
        sip::Builder::response_to(&mut out, msg, 400, reason, Some(tag)).finish(None, b"");
        if self.send_bounded(from, out, msg.as_bytes().len()) {
            self.count_sent_response(400);
        }
    }

    fn aor_free(&mut self, ai: u32) {
        if let Some(a) = self.aors.get(ai) {
            let (k, tm) = (a.key, a.expiry_timer);
            if self.aor_map.get(&k) == Some(&ai) {
                self.aor_map.remove(&k);
            }
            self.wheel.cancel(tm);
            self.aors.remove(ai);
        }
    }

    /// A binding's lifetime ran out: drop expired contacts, free the AOR
    /// when none is left.
    pub(in crate::engine) fn aor_expire(&mut self, now: Instant, ai: u32) {
        let n = self.to_ns(now);
        let Some(a) = self.aors.get_mut(ai) else {
            return;
        };
        a.contacts.retain(|c| c.expiry > n);
        match a.contacts.iter().map(|c| c.expiry).min() {
            None => self.aor_free(ai),
            Some(next) => {
                let at = self.to_instant(next);
                self.arm_aor(at, ai);
            }
        }
    }

    /// Registrar lookup for tests and the proxy path: the bound Contact URIs
    /// of the AOR `user` or `user@domain` (with `serve --domain`), with
    /// their next hops (UDP flows, as the proxy forwards).
    pub fn bindings_of(&self, aor: &[u8]) -> Vec<(Vec<u8>, Option<Flow>)> {
        let (user, host) = match memchr::memrchr(b'@', aor) {
            Some(at) => (&aor[..at], &aor[at + 1..]),
            None => (aor, &self.wire.via_host[..]),
        };
        let Some(&ai) = self.user_key(user, host).and_then(|k| self.aor_map.get(&k)) else {
            return Vec::new();
        };
        let Some(a) = self.aors.get(ai) else {
            return Vec::new();
        };
        a.contacts
            .iter()
            .map(|b| a.uri(b))
            .map(|u| (u.to_vec(), hop_of(u, TransportKind::Udp)))
            .collect()
    }
}

/// Drop bytes of removed contacts when the buffer is mostly garbage.
fn compact(a: &mut Aor) {
    let live: usize = a.contacts.iter().map(|c| c.len as usize).sum();
    if a.buf.len() < 256 || live * 2 > a.buf.len() {
        return;
    }
    let mut nb = Vec::with_capacity(live);
    for c in a.contacts.iter_mut() {
        let s = nb.len() as u16;
        nb.extend_from_slice(
            a.buf
                .get(c.start as usize..c.start as usize + c.len as usize)
                .unwrap_or(b""),
        );
        c.start = s;
    }
    a.buf = nb;
}

#[cfg(test)]
mod tests {
    use super::unescape_user;

    #[test]
    fn user_parts_unescape() {
        for (raw, plain) in [
            (&b"alice"[..], &b"alice"[..]),
            (b"%61lice", b"alice"),
            (b"a%2Bb", b"a+b"),
            (b"50%", b"50%"),
            (b"%zz", b"%zz"),
            (b"", b""),
        ] {
            let mut out = Vec::new();
            unescape_user(raw, &mut out);
            assert_eq!(out, plain, "{}", String::from_utf8_lossy(raw));
        }
    }
}
