//! Stateless server nonces (RFC 7616 §3.3 and §5.4 suggest exactly this:
//! a time stamp plus a keyed hash, so the server can tell a nonce it made
//! from a forged one, and an old one from a fresh one, without a table).
//!
//! Layout, 60 lowercase hex digits:
//! `hex(ts: u64 BE) ‖ hex(stream: u16 BE) ‖ hex(ctr: u32 BE) ‖ hex(SHA-256(secret ‖ ts ‖ stream ‖ ctr)[..16])`.
//! The 46 hashed bytes fit one SHA-256 block, so minting or checking costs
//! one compression. Secret-prefix SHA-256 is a sound MAC here because the
//! message length is fixed (no length extension to exploit).
//!
//! The stream names the minter (one per server worker). A mint accepts only
//! its own stream's nonces: the nonce-count replay guard (RFC 7616 §3.4.5)
//! is per worker, so a nonce honoured by every worker could be replayed once
//! per worker. A sibling's nonce is [`NonceCheck::Foreign`], which the
//! server answers like a stale one (`stale=true`: the client retries with a
//! nonce of the worker it reaches, without asking for a password).

use sha2::{Digest, Sha256};

use super::{ct_eq, hex_into, hex_val};

/// Length of a minted nonce in bytes.
pub const NONCE_LEN: usize = 60;

const MAC_LEN: usize = 16;
/// Bytes before the MAC: time stamp, stream, counter.
const HEAD_LEN: usize = 8 + 2 + 4;

/// Result of [`NonceMint::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and within its lifetime.
    Fresh,
    /// Ours but older than the lifetime: challenge again with `stale=true`
    /// so the client retries without re-prompting (RFC 7616 §3.3).
    Stale,
    /// Made with this secret by another stream (a sibling worker): genuine,
    /// but its nonce counts are not tracked here, so it must not be
    /// accepted; challenge again with `stale=true`.
    Foreign,
    /// Not made with this secret (forged, mangled, or from another server),
    /// or stamped later than now: only a holder of the secret can date a
    /// nonce, and this mint never dates one in its own future.
    Invalid,
}

/// Mints and checks nonces; no per-nonce state. Give each worker its own
/// `stream`: nonces never repeat across streams, and each mint accepts only
/// its own (see the module documentation).
#[derive(Clone)]
pub struct NonceMint {
    secret: [u8; 32],
    stream: u16,
    ctr: u32,
}

impl std::fmt::Debug for NonceMint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceMint")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl NonceMint {
    /// A mint for stream 0.
    pub fn new(secret: [u8; 32]) -> Self {
        Self::with_stream(secret, 0)
    }

    /// A mint whose nonces never equal those of another stream (up to 2^32
    /// nonces per second per stream) and that accepts only its own.
    pub fn with_stream(secret: [u8; 32], stream: u16) -> Self {
        NonceMint {
            secret,
            stream,
            ctr: 0,
        }
    }

    fn mac(&self, head: &[u8; HEAD_LEN]) -> [u8; MAC_LEN] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(head);
        let d = h.finalize();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&d[..MAC_LEN]);
        out
    }

    /// Writes a new nonce for time `now_s` (seconds, any epoch the caller
    /// keeps consistent) into `out` and returns it as a slice.
    pub fn mint<'o>(&mut self, now_s: u64, out: &'o mut [u8; NONCE_LEN]) -> &'o [u8] {
        self.ctr = self.ctr.wrapping_add(1);
        let mut head = [0u8; HEAD_LEN];
        head[..8].copy_from_slice(&now_s.to_be_bytes());
        head[8..10].copy_from_slice(&self.stream.to_be_bytes());
        head[10..].copy_from_slice(&self.ctr.to_be_bytes());
        let mac = self.mac(&head);
        hex_into(&head, &mut out[..2 * HEAD_LEN]);
        hex_into(&mac, &mut out[2 * HEAD_LEN..]);
        &out[..]
    }

    /// Classifies a received nonce at time `now_s`. A nonce is stale once
    /// `now_s - ts > lifetime_s`; one stamped after `now_s` is invalid.
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
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&raw[..HEAD_LEN]);
        if !ct_eq(&self.mac(&head), &raw[HEAD_LEN..]) {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[..8]);
        let ts = u64::from_be_bytes(ts);
        if ts > now_s {
            return NonceCheck::Invalid;
        }
        if u16::from_be_bytes([head[8], head[9]]) != self.stream {
            return NonceCheck::Foreign;
        }
        if now_s - ts > lifetime_s {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }

    /// The time stamp a nonce carries (its first 16 hex digits), without
    /// checking it: read it only from a nonce [`Self::check`] accepted.
    pub fn timestamp(nonce: &[u8]) -> Option<u64> {
        let h = nonce.get(..16)?;
        let mut v = 0u64;
        for &c in h {
            v = v << 4 | u64::from(lhex(c)?);
        }
        Some(v)
    }
}

fn lhex(c: u8) -> Option<u8> {
    if c.is_ascii_uppercase() {
        None
    } else {
        hex_val(c)
    }
}
