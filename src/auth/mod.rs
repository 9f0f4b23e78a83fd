//! Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760; RFC 3261 §22).
//!
//! The module is sans-IO and clock-free: it parses and writes header *values*
//! (the bytes after `WWW-Authenticate:` and friends, as handed out by the
//! `sip` codec), computes and verifies responses, and mints stateless server
//! nonces from a time the caller passes in.
//!
//! # Client (UAC)
//! ```
//! use sipstorm::auth::{parse_challenge, write_authorization, Ha1};
//! let ch = parse_challenge(br#"Digest realm="atlanta.com", nonce="abc", qop="auth""#).unwrap();
//! // HA1 depends only on (user, realm, hash): compute it once, reuse it for every REGISTER.
//! let ha1 = Ha1::from_challenge(&ch, b"alice", b"secret");
//! let mut value = Vec::new();
//! write_authorization(&mut value, &ch, b"alice", &ha1, b"REGISTER", b"sip:atlanta.com", b"", 1, b"0a4f113b").unwrap();
//! assert!(value.starts_with(b"Digest username=\"alice\""));
//! ```
//!
//! # Server (UAS / registrar)
//! [`NonceMint`] makes nonces that carry their own timestamp and a keyed
//! hash, [`write_challenge`] builds the `WWW-Authenticate` value,
//! [`parse_authorization`] reads the answer and [`verify`] checks it in
//! constant time. The caller still has to (RFC 7616 §3.4.5, RFC 3261 §22.4):
//! look up the user's [`Ha1`] by (username, realm), check the nonce with
//! [`NonceMint::check`] (answering `stale=true` for [`NonceCheck::Stale`]),
//! require the nonce count to increase per nonce, compare `uri` with the
//! Request-URI, and check that `algorithm` is one it offered (otherwise a
//! client could answer a SHA-256 challenge with MD5; RFC 7616 §5.1).
//!
//! # Wire form of quoted values
//! Quoted-string values are kept zero-copy in their *wire form*: the bytes
//! between the quotes, `\` escapes intact (RFC 3261 §25.1 `quoted-pair`).
//! Hashing always uses the unescaped value (`unq()` in RFC 2617 §3.2.2), so a
//! realm such as `"a\"b"` hashes as `a"b`. Use [`unescape_into`] and
//! [`wire_eq`] to look at the plain value; [`escape_into`] goes the other
//! way. Plain inputs (user names, passwords, URIs, cnonces passed by the
//! caller) are never unescaped.

mod challenge;
mod credentials;
mod digest;
mod nonce;
mod params;

pub use challenge::{Challenge, parse_challenge, write_challenge};
pub use credentials::{Credentials, parse_authorization};
pub use digest::{Ha1, verify, write_authorization};
pub use nonce::{NONCE_LEN, NonceCheck, NonceMint};

/// Why a header value could not be used.
///
/// `Copy` and allocation-free so the engine can count failures by kind on
/// the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The auth-scheme is not `Digest` (e.g. `Basic`), or there is none.
    #[error("auth scheme is not Digest")]
    NotDigest,
    /// The value does not follow the `auth-param *(COMMA auth-param)` grammar
    /// (RFC 3261 §25.1, RFC 7235 §2.1); `pos` is the byte offset.
    #[error("malformed digest parameters at byte {pos}: {what}")]
    Syntax {
        /// Byte offset into the header value.
        pos: usize,
        /// What was expected there.
        what: &'static str,
    },
    /// A parameter the RFC makes mandatory is absent.
    #[error("missing digest parameter {0}")]
    MissingParam(&'static str),
    /// A known parameter appears twice (RFC 7616 §3.3: "MUST NOT" repeat).
    #[error("duplicate digest parameter {0}")]
    DuplicateParam(&'static str),
    /// `algorithm` names something other than MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// `qop` offers only options we do not implement, or the credentials
    /// name one that is not `auth` / `auth-int`.
    #[error("unsupported qop")]
    UnsupportedQop,
    /// `nc` is not exactly 8 hex digits (RFC 7616 §3.4: `nc-value = 8LHEX`).
    #[error("bad nonce count")]
    BadNonceCount,
    /// The [`Ha1`] was computed with a different hash than the challenge's
    /// algorithm needs (an MD5 HA1 cannot answer a SHA-256 challenge).
    #[error("HA1 hash does not match the challenge algorithm")]
    AlgorithmMismatch,
}

/// Hash function underlying an [`Algorithm`]; decides the hex length (32 or 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// MD5 (RFC 1321): 16 bytes, 32 hex digits.
    Md5,
    /// SHA-256 (FIPS 180-4): 32 bytes, 64 hex digits.
    Sha256,
}

impl HashKind {
    /// Length of the lowercase-hex digest.
    pub const fn hex_len(self) -> usize {
        match self {
            HashKind::Md5 => 32,
            HashKind::Sha256 => 64,
        }
    }
}

/// Digest algorithm (RFC 7616 §3.3 `algorithm`, RFC 8760 §2.2 for SIP).
///
/// Absent `algorithm` means MD5 (RFC 2617 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5`
    #[default]
    Md5,
    /// `MD5-sess`: HA1 is re-keyed per nonce and cnonce (RFC 2617 §3.2.2.2).
    Md5Sess,
    /// `SHA-256` (RFC 7616 §3.2, RFC 8760 §2.2).
    Sha256,
    /// `SHA-256-sess`
    Sha256Sess,
}

impl Algorithm {
    /// Every supported algorithm, strongest first (RFC 8760 §2.4: a UAS
    /// offering several sends the preferred one first).
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Parses the token case-insensitively (RFC 7616 §3.3 tokens are
    /// case-insensitive); `None` for anything unsupported (e.g. `SHA-512-256`).
    pub fn from_token(t: &[u8]) -> Option<Algorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().as_bytes().eq_ignore_ascii_case(t))
    }

    /// Canonical spelling, as written into headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// The underlying hash.
    pub const fn hash(self) -> HashKind {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashKind::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashKind::Sha256,
        }
    }

    /// True for the `-sess` variants.
    pub const fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

/// Quality of protection (RFC 2617 §3.2.1, RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: HA2 = H(method ":" uri).
    Auth,
    /// `auth-int`: HA2 = H(method ":" uri ":" H(body)).
    AuthInt,
}

impl Qop {
    /// Parses `auth` / `auth-int`, case-insensitively.
    pub fn from_token(t: &[u8]) -> Option<Qop> {
        if t.eq_ignore_ascii_case(b"auth") {
            Some(Qop::Auth)
        } else if t.eq_ignore_ascii_case(b"auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    /// Canonical spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Appends `plain` to `out` in quoted-string wire form: `"` and `\` get a
/// backslash (RFC 3261 §25.1 `quoted-pair`). The surrounding quotes are not
/// written. CR and LF cannot be represented and must not be passed.
pub fn escape_into(out: &mut Vec<u8>, plain: &[u8]) {
    let mut rest = plain;
    while let Some(i) = memchr::memchr2(b'"', b'\\', rest) {
        let (head, tail) = rest.split_at(i);
        out.extend_from_slice(head);
        out.push(b'\\');
        out.extend_from_slice(&tail[..1]);
        rest = &tail[1..];
    }
    out.extend_from_slice(rest);
}

/// Appends the plain value of a wire-form quoted-string to `out`
/// (each `\x` becomes `x`).
pub fn unescape_into(out: &mut Vec<u8>, wire: &[u8]) {
    for_each_unescaped(wire, |chunk| out.extend_from_slice(chunk));
}

/// Compares a wire-form value with a plain one without allocating, e.g. a
/// received `username` with a configured user name.
pub fn wire_eq(wire: &[u8], plain: &[u8]) -> bool {
    let mut rest = plain;
    let mut ok = true;
    for_each_unescaped(wire, |chunk| {
        if ok && rest.len() >= chunk.len() && &rest[..chunk.len()] == chunk {
            rest = &rest[chunk.len()..];
        } else {
            ok = false;
        }
    });
    ok && rest.is_empty()
}

/// Calls `f` with the consecutive pieces of the unescaped value; the fast
/// path (no backslash, the norm) is one call with the whole slice.
pub(crate) fn for_each_unescaped(wire: &[u8], mut f: impl FnMut(&[u8])) {
    let mut rest = wire;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        f(&rest[..i]);
        // The escaped byte is literal, even if it is another backslash.
        match rest.get(i + 1..i + 2) {
            Some(lit) => {
                f(lit);
                rest = &rest[i + 2..];
            }
            None => {
                // A trailing lone backslash cannot come out of the parser;
                // drop it rather than panic on hand-made input.
                rest = &[];
            }
        }
    }
    if !rest.is_empty() {
        f(rest);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` into `out[..2 * bytes.len()]` (LHEX, RFC 7616 §3.4).
pub(crate) fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = HEX[usize::from(b >> 4)];
        o[1] = HEX[usize::from(b & 0x0f)];
    }
}

/// Value of one hex digit, either case.
pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `u32` as exactly 8 lowercase hex digits (the `nc-value` format).
pub(crate) fn hex8(v: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    hex_into(&v.to_be_bytes(), &mut out);
    out
}

/// Compares without an early exit so the time does not reveal how many
/// leading bytes of a guessed response were right. Lengths are public.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(a.as_str().as_bytes()), Some(a));
        }
        assert_eq!(Algorithm::from_token(b"md5"), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::from_token(b"sha-256-SESS"),
            Some(Algorithm::Sha256Sess)
        );
        assert_eq!(Algorithm::from_token(b"SHA-512-256"), None);
        assert_eq!(Algorithm::from_token(b""), None);
    }

    #[test]
    fn escaping_round_trip() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a\"b", b"a\\\"b"),
            (b"back\\slash", b"back\\\\slash"),
            (b"\"\\", b"\\\"\\\\"),
            (b"", b""),
        ];
        for &(plain, wire) in cases {
            let mut w = Vec::new();
            escape_into(&mut w, plain);
            assert_eq!(w, wire);
            let mut p = Vec::new();
            unescape_into(&mut p, wire);
            assert_eq!(p, plain);
            assert!(wire_eq(wire, plain));
        }
        assert!(!wire_eq(b"ab", b"abc"));
        assert!(!wire_eq(b"abc", b"ab"));
        assert!(!wire_eq(b"a\\bc", b"abd"));
        assert!(wire_eq(b"a\\bc", b"abc"));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(&hex8(1), b"00000001");
        assert_eq!(&hex8(0xDEAD_BEEF), b"deadbeef");
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
