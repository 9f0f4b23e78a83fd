//! Stateless server nonces (RFC 7616 §3.3 and §5.4 suggest exactly this:
//! a time stamp plus a keyed hash, so the server can tell a nonce it made
//! from a forged one, and an old one from a fresh one, without a table).
//!
//! Layout, 56 lowercase hex digits:
//! `hex(ts: u64 BE) ‖ hex(ctr: u32 BE) ‖ hex(SHA-256(secret ‖ ts ‖ ctr)[..16])`.
//! The 44 hashed bytes fit one SHA-256 block, so minting or checking costs
//! one compression. Secret-prefix SHA-256 is a sound MAC here because the
//! message length is fixed (no length extension to exploit).

use sha2::{Digest, Sha256};

use super::{ct_eq, hex_into, hex_val};

/// Length of a minted nonce in bytes.
pub const NONCE_LEN: usize = 56;

const MAC_LEN: usize = 16;

/// Result of [`NonceMint::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and within its lifetime.
    Fresh,
    /// Ours but older than the lifetime: challenge again with `stale=true`
    /// so the client retries without re-prompting (RFC 7616 §3.3).
    Stale,
    /// Not made with this secret (forged, mangled, or from another server).
    Invalid,
}

/// Mints and checks nonces; no per-nonce state. Workers sharing a secret
/// accept each other's nonces; give each its own `stream` so they never mint
/// the same one within a second.
#[derive(Clone)]
pub struct NonceMint {
    secret: [u8; 32],
    /// `stream` in the top 8 bits, a running count in the low 24.
    ctr: u32,
}

impl std::fmt::Debug for NonceMint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceMint")
            .field("stream", &(self.ctr >> 24))
            .finish_non_exhaustive()
    }
}

/// A bijection on u32 (Wellons' "lowbias32"), keyed by xor, so counters look
/// random but never collide within one 2^32 cycle.
fn mix(x: u32, key: u32) -> u32 {
    let mut x = x ^ key;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

impl NonceMint {
    /// A mint for stream 0.
    pub fn new(secret: [u8; 32]) -> Self {
        Self::with_stream(secret, 0)
    }

    /// A mint whose nonces never equal those of another stream (up to 2^24
    /// nonces per second per stream).
    pub fn with_stream(secret: [u8; 32], stream: u8) -> Self {
        NonceMint {
            secret,
            ctr: u32::from(stream) << 24,
        }
    }

    fn mac(&self, ts: u64, ctr: u32) -> [u8; MAC_LEN] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(ts.to_be_bytes());
        h.update(ctr.to_be_bytes());
        let d = h.finalize();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&d[..MAC_LEN]);
        out
    }

    /// Writes a new nonce for time `now_s` (seconds, any epoch the caller
    /// keeps consistent) into `out` and returns it as a slice.
    pub fn mint<'o>(&mut self, now_s: u64, out: &'o mut [u8; NONCE_LEN]) -> &'o [u8] {
        let stream = self.ctr & 0xff00_0000;
        self.ctr = stream | (self.ctr.wrapping_add(1) & 0x00ff_ffff);
        let key = u32::from_be_bytes([
            self.secret[0],
            self.secret[1],
            self.secret[2],
            self.secret[3],
        ]);
        let ctr = mix(self.ctr, key);
        let mac = self.mac(now_s, ctr);
        hex_into(&now_s.to_be_bytes(), &mut out[..16]);
        hex_into(&ctr.to_be_bytes(), &mut out[16..24]);
        hex_into(&mac, &mut out[24..]);
        &out[..]
    }

    /// Classifies a received nonce at time `now_s`. A nonce is stale once
    /// `now_s - ts > lifetime_s`; one stamped in the future (another worker's
    /// clock) counts as fresh since only we could have made it.
    pub fn check(&self, nonce: &[u8], now_s: u64, lifetime_s: u64) -> NonceCheck {
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; NONCE_LEN / 2];
        for (r, pair) in raw.iter_mut().zip(nonce.chunks_exact(2)) {
            // Only lowercase is minted; anything else is not ours.
            let (Some(hi), Some(lo)) = (lhex(pair[0]), lhex(pair[1])) else {
                return NonceCheck::Invalid;
            };
            *r = hi << 4 | lo;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let mut ctr = [0u8; 4];
        ctr.copy_from_slice(&raw[8..12]);
        let ts = u64::from_be_bytes(ts);
        let expected = self.mac(ts, u32::from_be_bytes(ctr));
        if !ct_eq(&expected, &raw[12..]) {
            return NonceCheck::Invalid;
        }
        if now_s.saturating_sub(ts) > lifetime_s {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }
}

fn lhex(c: u8) -> Option<u8> {
    if c.is_ascii_uppercase() {
        None
    } else {
        hex_val(c)
    }
}
