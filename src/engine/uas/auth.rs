//! Digest authentication on the server side (RFC 3261 §22, RFC 7616,
//! RFC 8760): challenges with nonces from the endpoint's mint, and
//! verification of credentials, with the nonce-count replay guard.

use std::time::Instant;

use crate::auth::{self, Challenge, NONCE_LEN, NonceCheck};
use crate::engine::endpoint::Endpoint;
use crate::sip::Message;

/// Result of checking a request's digest credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthResult {
    Ok,
    Challenge { stale: bool },
    Forbidden,
    NotFound,
}

impl Endpoint {
    fn now_s(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() + 1_000_000
    }

    pub(super) fn write_challenge(&mut self, now: Instant, stale: bool, out: &mut Vec<u8>) {
        let now_s = self.now_s(now);
        let mut nonce = [0u8; NONCE_LEN];
        let (Some(mint), Some(cfg)) = (self.nonce_mint.as_mut(), self.role.server()) else {
            return;
        };
        let n = mint.mint(now_s, &mut nonce);
        let mut ch = Challenge::new(cfg.realm.as_bytes(), n, cfg.algorithm);
        ch.qop_auth = !cfg.qop_auth_int;
        ch.qop_auth_int = cfg.qop_auth_int;
        ch.stale = stale;
        auth::write_challenge(out, &ch);
    }

    /// RFC 3261 §22.4 / RFC 7616 §3.4.5: credentials for our realm, a nonce
    /// we minted and still fresh, a user we know, a matching digest.
    pub(super) fn check_auth(
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
        let nonce_key = self.hash(cr.nonce);
        let Endpoint {
            role,
            nonce_mint,
            scratch,
            nc_guard,
            ..
        } = self;
        let (Some(cfg), Some(mint)) = (role.server(), nonce_mint.as_ref()) else {
            return AuthResult::Forbidden;
        };
        if !auth::wire_eq(cr.realm, cfg.realm.as_bytes()) {
            return AuthResult::Challenge { stale: false };
        }
        let fresh = mint.check(cr.nonce, now_s, cfg.nonce_lifetime.as_secs());
        if fresh == NonceCheck::Invalid {
            return AuthResult::Challenge { stale: false };
        }
        scratch.name.clear();
        auth::unescape_into(&mut scratch.name, cr.username);
        scratch.password.clear();
        if !cfg
            .passwords
            .password_of(&scratch.name, &mut scratch.password)
        {
            return AuthResult::NotFound;
        }
        let ha1 = auth::Ha1::new(
            cr.algorithm,
            &scratch.name,
            cfg.realm.as_bytes(),
            &scratch.password,
        );
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
                cfg.nonce_lifetime.as_secs(),
            ) {
                return AuthResult::Challenge { stale: true };
            }
        }
        AuthResult::Ok
    }
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
