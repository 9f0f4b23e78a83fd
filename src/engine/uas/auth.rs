//! Digest authentication on the server side (RFC 3261 §22, RFC 7616,
//! RFC 8760): challenges with nonces from the endpoint's mint, and
//! verification of credentials, with the nonce-count replay guard.

use std::time::Instant;

use crate::auth::{self, Challenge, NONCE_LEN, NonceCheck, NonceMint, Qop};
use crate::engine::endpoint::Endpoint;
use crate::engine::util::NcVerdict;
use crate::sip::Message;

/// Result of checking a request's digest credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthResult {
    /// Verified; the username is in `scratch.name`. `first`: the first use
    /// of its nonce, i.e. the answer to the challenge that carried it (the
    /// second request of an attempt, see `throttle`).
    Ok {
        first: bool,
    },
    Challenge {
        stale: bool,
    },
    Forbidden,
    NotFound,
    /// The digest `uri` is not the Request-URI: RFC 2617 §3.2.2.5, "the
    /// server SHOULD return a 400 Bad Request error".
    UriMismatch,
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

    /// RFC 3261 §22.4 / RFC 7616 §3.4.5: credentials for our realm, in the
    /// algorithm and qop we offered, for this Request-URI, with a nonce this
    /// worker minted and still fresh, a user we know, a matching digest and
    /// a nonce count not seen before.
    ///
    /// `auth` (RFC 7616 §3.4) leaves these checks to the caller:
    /// - the algorithm must be the one offered, or a client could answer a
    ///   SHA-256 challenge with MD5 (RFC 7616 §5.1, RFC 8760 §2.4);
    /// - the qop must be the one offered: never `auth` when only `auth-int`
    ///   was, and never none at all. Every challenge offers a qop, and "if
    ///   the server sent qop, the client MUST use it" (RFC 2617 §3.2.2);
    ///   without qop there is no nonce count, so a captured request would
    ///   replay freely for the nonce's lifetime. Requiring it keeps the
    ///   replay guard honest (the decision of issue 13, rather than binding
    ///   nonces to the source address, which NAT and SO_REUSEPORT
    ///   rebalancing would break);
    /// - `uri` must be the Request-URI (RFC 2617 §3.2.2.5), or credentials
    ///   captured for one target would open another.
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
        let offered_qop = if cfg.qop_auth_int {
            Qop::AuthInt
        } else {
            Qop::Auth
        };
        if !auth::wire_eq(cr.realm, cfg.realm.as_bytes())
            || cr.algorithm != cfg.algorithm
            || cr.qop != Some(offered_qop)
        {
            return AuthResult::Challenge { stale: false };
        }
        let fresh = mint.check(cr.nonce, now_s, cfg.nonce_lifetime.as_secs());
        if fresh == NonceCheck::Invalid {
            return AuthResult::Challenge { stale: false };
        }
        if !msg.uri().is_some_and(|u| auth::wire_eq(cr.uri, u)) {
            return AuthResult::UriMismatch;
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
        // A sibling worker's nonce is genuine but its counts are kept there:
        // a fresh nonce of this worker, without asking for a password.
        if matches!(fresh, NonceCheck::Stale | NonceCheck::Foreign) {
            return AuthResult::Challenge { stale: true };
        }
        // The nonce count must grow (RFC 7616 §3.4.5): a replayed request,
        // even with a correct response, gets a fresh nonce.
        let Some(nc) = cr.nc else {
            return AuthResult::Challenge { stale: false };
        };
        let minted = NonceMint::timestamp(cr.nonce).unwrap_or(0);
        match nc_guard.check(nonce_key, minted, nc, now_s, cfg.nonce_lifetime.as_secs()) {
            NcVerdict::First => AuthResult::Ok { first: true },
            NcVerdict::Later => AuthResult::Ok { first: false },
            NcVerdict::Replay => AuthResult::Challenge { stale: true },
        }
    }
}
