//! The registrar (RFC 3261 §10.3): bindings per address-of-record with
//! their expiry, 423 with Min-Expires, `Contact: *` removal, and the
//! lookup the proxy path and tests use.

use std::time::Instant;

use super::AuthResult;
use crate::engine::endpoint::Endpoint;
use crate::engine::state::{Aor, NONE};
use crate::engine::timers::Life;
use crate::engine::util::dec;
use crate::engine::wheel::TimerId;
use crate::engine::wire::{hop_of, strip_angle};
use crate::flow::{Flow, TransportKind};
use crate::sip::{self, Contact, Message};

impl Endpoint {
    /// The registrar (§10.3). `authed`: a retransmission of a transaction
    /// that already passed authentication (see the absorber in `on_request`).
    /// Every final response but a 401 leaves an absorber record (Timer J),
    /// so retransmissions get the same answer (§17.2.2) without a second
    /// credential check; a 401 keeps none, as a retransmitted request
    /// without credentials may simply be challenged again.
    pub(super) fn uas_register(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        key: u64,
        authed: bool,
    ) {
        let tag = self.stateless_tag(key);
        let aor = msg.to().and_then(|t| sip::parse_uri(t.uri));
        let Some((user, host)) = aor.and_then(|u| Some((u.user?, u.host))) else {
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
        if self.answer.auth_register && !authed {
            match self.check_auth(now, msg, b"REGISTER", false) {
                AuthResult::Ok => {}
                AuthResult::Challenge { stale } => {
                    let mut hdr = std::mem::take(&mut self.scratch.header);
                    hdr.clear();
                    self.write_challenge(now, stale, &mut hdr);
                    self.reply(from, msg, 401, Some(&tag), &[(b"WWW-Authenticate", &hdr)]);
                    self.scratch.header = hdr;
                    return;
                }
                AuthResult::Forbidden => {
                    self.reply(from, msg, 403, Some(&tag), &[]);
                    self.absorb_add(now, key, 403, Life::J, from);
                    return;
                }
                AuthResult::NotFound => {
                    self.reply(from, msg, 404, Some(&tag), &[]);
                    self.absorb_add(now, key, 404, Life::J, from);
                    return;
                }
            }
        }
        let (min_e, max_e) = self
            .role
            .server()
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
                        self.absorb_add(now, key, 423, Life::J, from);
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
        // `serves` lets only served domains through; this is the fallback.
        let Some(akey) = self.aor_key(user, host) else {
            self.reply(from, msg, 404, Some(&tag), &[]);
            return;
        };
        let now_ns = self.to_ns(now);
        let existing = self.aor_map.get(&akey).copied();
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
        let mut lines = std::mem::take(&mut self.scratch.header);
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
        self.scratch.header = lines;
        if !authed {
            self.absorb_add(now, key, 200, Life::J, from);
        }
        if ai != NONE {
            if soonest == u64::MAX {
                self.aor_free(ai);
            } else {
                let at = self.to_instant(soonest);
                self.arm_aor(at, ai);
            }
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
        a.contacts.retain(|c| c.2 > n);
        match a.contacts.iter().map(|c| c.2).min() {
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
        let Some(&ai) = self.aor_key(user, host).and_then(|k| self.aor_map.get(&k)) else {
            return Vec::new();
        };
        let Some(a) = self.aors.get(ai) else {
            return Vec::new();
        };
        a.contacts
            .iter()
            .filter_map(|(s, l, _)| a.buf.get(*s as usize..*s as usize + *l as usize))
            .map(|u| (u.to_vec(), hop_of(u, TransportKind::Udp)))
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
