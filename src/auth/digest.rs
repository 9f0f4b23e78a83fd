//! Response computation (client) and verification (server):
//! RFC 2617 §3.2.2.1–3, RFC 7616 §3.4.1–3, RFC 8760 §2.
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)                  cached in Ha1
//! HA1-sess = H(HA1 ":" unq(nonce) ":" unq(cnonce))               -sess variants
//! HA2      = H(method ":" uri)                                   qop=auth or none
//! HA2      = H(method ":" uri ":" H(body))                       qop=auth-int
//! response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)  with qop
//! response = H(HA1 ":" nonce ":" HA2)                            without (RFC 2069)
//! ```
//! with every H() rendered as lowercase hex. No allocation: digests go into
//! 64-byte stack arrays.

use md5::{Digest, Md5};
use sha2::Sha256;

use super::{
    Algorithm, AuthError, Challenge, Credentials, HashKind, Qop, ct_eq, escape_into,
    for_each_unescaped, hex_into, hex_val, hex8,
};

/// A streaming hash of either kind, dispatched per call (the branch is noise
/// next to a compression round).
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

/// A lowercase-hex digest on the stack.
#[derive(Clone, Copy)]
struct Hex {
    buf: [u8; 64],
    len: usize,
}

impl Hex {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Hasher {
    fn new(kind: HashKind) -> Self {
        match kind {
            HashKind::Md5 => Hasher::Md5(Md5::new()),
            HashKind::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }

    /// Feeds the plain value of a wire-form field (`unq()`), or the bytes
    /// as they are when `wire` is false.
    fn update_field(&mut self, b: &[u8], wire: bool) {
        if wire {
            for_each_unescaped(b, |chunk| self.update(chunk));
        } else {
            self.update(b);
        }
    }

    fn finish(self) -> Hex {
        let mut buf = [0u8; 64];
        let len = match self {
            Hasher::Md5(h) => {
                hex_into(&h.finalize(), &mut buf);
                32
            }
            Hasher::Sha256(h) => {
                hex_into(&h.finalize(), &mut buf);
                64
            }
        };
        Hex { buf, len }
    }
}

/// HA1 = H(username ":" realm ":" password) as lowercase hex (RFC 7616 §3.4.2).
///
/// It depends only on the user, the realm and the hash, so compute it once
/// per user and reuse it for every request; the same value serves the plain
/// and the `-sess` algorithm of that hash (the session key is derived per
/// nonce). `Copy`, 65 bytes. Knowing it is as good as knowing the password,
/// hence the redacted `Debug`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ha1 {
    hex: [u8; 64],
    kind: HashKind,
}

impl std::fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ha1")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Ha1 {
    /// HA1 from plain (unescaped) user, realm and password.
    pub fn new(alg: Algorithm, user: &[u8], realm: &[u8], password: &[u8]) -> Ha1 {
        Self::compute(alg.hash(), user, realm, false, password)
    }

    /// HA1 for answering `ch`: the challenge's realm is in wire form and is
    /// unescaped while hashing; the hash follows `ch.algorithm`.
    pub fn from_challenge(ch: &Challenge<'_>, user: &[u8], password: &[u8]) -> Ha1 {
        Self::compute(ch.algorithm.hash(), user, ch.realm, true, password)
    }

    /// A stored HA1 (as in Asterisk's `md5secret`), so a server need not
    /// keep passwords. `None` unless `hex` has exactly the hash's length in
    /// hex digits; stored lowercase.
    pub fn from_hex(alg: Algorithm, hex: &[u8]) -> Option<Ha1> {
        let kind = alg.hash();
        if hex.len() != kind.hex_len() {
            return None;
        }
        let mut out = [0u8; 64];
        for (o, &c) in out.iter_mut().zip(hex) {
            hex_val(c)?;
            *o = c.to_ascii_lowercase();
        }
        Some(Ha1 { hex: out, kind })
    }

    fn compute(kind: HashKind, user: &[u8], realm: &[u8], realm_wire: bool, pw: &[u8]) -> Ha1 {
        let mut h = Hasher::new(kind);
        h.update(user);
        h.update(b":");
        h.update_field(realm, realm_wire);
        h.update(b":");
        h.update(pw);
        Ha1 {
            hex: h.finish().buf,
            kind,
        }
    }

    /// The lowercase hex digits (32 for MD5, 64 for SHA-256).
    pub fn as_hex(&self) -> &[u8] {
        &self.hex[..self.kind.hex_len()]
    }

    /// The hash this HA1 was computed with.
    pub fn kind(&self) -> HashKind {
        self.kind
    }
}

/// Everything that goes into one response besides HA1.
struct Input<'x> {
    method: &'x [u8],
    /// digest-uri.
    uri: &'x [u8],
    body: &'x [u8],
    /// Always wire form (it comes from a header).
    nonce: &'x [u8],
    cnonce: Option<&'x [u8]>,
    nc: u32,
    qop: Option<Qop>,
    /// Whether `uri` and `cnonce` are wire form (server) or plain (client).
    wire: bool,
}

/// request-digest as lowercase hex (RFC 7616 §3.4.1).
fn compute(alg: Algorithm, ha1: &Ha1, x: &Input<'_>) -> Result<Hex, AuthError> {
    let kind = alg.hash();
    if ha1.kind != kind {
        return Err(AuthError::AlgorithmMismatch);
    }
    // RFC 7616 §3.4.2: for -sess, HA1 = H(H(user:realm:pw) ":" nonce ":" cnonce).
    let sess;
    let ha1_hex = if alg.is_sess() {
        let cnonce = x.cnonce.ok_or(AuthError::MissingParam("cnonce"))?;
        let mut h = Hasher::new(kind);
        h.update(ha1.as_hex());
        h.update(b":");
        h.update_field(x.nonce, true);
        h.update(b":");
        h.update_field(cnonce, x.wire);
        sess = h.finish();
        sess.as_bytes()
    } else {
        ha1.as_hex()
    };
    // RFC 7616 §3.4.3
    let mut h = Hasher::new(kind);
    h.update(x.method);
    h.update(b":");
    h.update_field(x.uri, x.wire);
    if x.qop == Some(Qop::AuthInt) {
        let mut hb = Hasher::new(kind);
        hb.update(x.body);
        h.update(b":");
        h.update(hb.finish().as_bytes());
    }
    let ha2 = h.finish();
    // RFC 7616 §3.4.1, RFC 2617 §3.2.2.1 (no qop: RFC 2069 compatibility)
    let mut h = Hasher::new(kind);
    h.update(ha1_hex);
    h.update(b":");
    h.update_field(x.nonce, true);
    h.update(b":");
    if let Some(q) = x.qop {
        let cnonce = x.cnonce.ok_or(AuthError::MissingParam("cnonce"))?;
        h.update(&hex8(x.nc));
        h.update(b":");
        h.update_field(cnonce, x.wire);
        h.update(b":");
        h.update(q.as_str().as_bytes());
        h.update(b":");
    }
    h.update(ha2.as_bytes());
    Ok(h.finish())
}

/// Appends the complete `Authorization` / `Proxy-Authorization` value
/// answering `ch` (RFC 3261 §22.2, RFC 7616 §3.4):
///
/// `Digest username="..", realm="..", nonce="..", uri="..", response="..",
/// algorithm=.., cnonce="..", qop=auth, nc=00000001, opaque=".."`
///
/// `user`, `uri` and `cnonce` are plain bytes (escaped on output); realm,
/// nonce and opaque are echoed in the challenge's wire form. The qop is
/// [`Challenge::chosen_qop`]; without one, `cnonce`, `qop` and `nc` are left
/// out (RFC 2069 style) except that `-sess` still sends `cnonce`. `body` is
/// hashed only for `auth-int`. `nc` counts requests under this nonce,
/// starting at 1 (RFC 7616 §3.4). `uri` is the Request-URI (RFC 3261 §22.4).
///
/// Allocates only if `out` lacks capacity.
///
/// # Errors
/// [`AuthError::AlgorithmMismatch`] if `ha1` uses another hash than `ch.algorithm`.
#[allow(clippy::too_many_arguments)] // mirrors the RFC inputs one for one
pub fn write_authorization(
    out: &mut Vec<u8>,
    ch: &Challenge<'_>,
    user: &[u8],
    ha1: &Ha1,
    method: &[u8],
    uri: &[u8],
    body: &[u8],
    nc: u32,
    cnonce: &[u8],
) -> Result<(), AuthError> {
    let qop = ch.chosen_qop();
    let send_cnonce = qop.is_some() || ch.algorithm.is_sess();
    let resp = compute(
        ch.algorithm,
        ha1,
        &Input {
            method,
            uri,
            body,
            nonce: ch.nonce,
            cnonce: Some(cnonce),
            nc,
            qop,
            wire: false,
        },
    )?;
    out.reserve(
        170 + user.len()
            + ch.realm.len()
            + ch.nonce.len()
            + uri.len()
            + cnonce.len()
            + ch.opaque.map_or(0, <[u8]>::len),
    );
    out.extend_from_slice(b"Digest username=\"");
    escape_into(out, user);
    out.extend_from_slice(b"\", realm=\"");
    out.extend_from_slice(ch.realm);
    out.extend_from_slice(b"\", nonce=\"");
    out.extend_from_slice(ch.nonce);
    out.extend_from_slice(b"\", uri=\"");
    escape_into(out, uri);
    out.extend_from_slice(b"\", response=\"");
    out.extend_from_slice(resp.as_bytes());
    out.extend_from_slice(b"\", algorithm=");
    out.extend_from_slice(ch.algorithm.as_str().as_bytes());
    if send_cnonce {
        out.extend_from_slice(b", cnonce=\"");
        escape_into(out, cnonce);
        out.push(b'"');
    }
    if let Some(q) = qop {
        out.extend_from_slice(b", qop=");
        out.extend_from_slice(q.as_str().as_bytes());
        out.extend_from_slice(b", nc=");
        out.extend_from_slice(&hex8(nc));
    }
    if let Some(o) = ch.opaque {
        out.extend_from_slice(b", opaque=\"");
        out.extend_from_slice(o);
        out.push(b'"');
    }
    Ok(())
}

/// Checks `c.response` against the expected request-digest for `method`
/// and `body` (the body matters only for `auth-int`), comparing in constant
/// time. `ha1` must be the server's HA1 for (`c.username`, `c.realm`) with the
/// hash of `c.algorithm`; a mismatched hash, or a `-sess` answer without
/// `cnonce`, is `false`.
///
/// This checks the hash only: nonce freshness ([`NonceMint::check`]),
/// nonce-count replay, realm, `uri` == Request-URI and "`algorithm` is one
/// we offered" are the caller's.
///
/// [`NonceMint::check`]: super::NonceMint::check
pub fn verify(c: &Credentials<'_>, ha1: &Ha1, method: &[u8], body: &[u8]) -> bool {
    let x = Input {
        method,
        uri: c.uri,
        body,
        nonce: c.nonce,
        cnonce: c.cnonce,
        nc: c.nc.unwrap_or(0),
        qop: c.qop,
        wire: true,
    };
    match compute(c.algorithm, ha1, &x) {
        Ok(expected) => ct_eq(expected.as_bytes(), c.response),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_forms_agree() {
        let a = Ha1::new(
            Algorithm::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let b = Ha1::from_hex(Algorithm::Md5Sess, a.as_hex()).unwrap();
        assert_eq!(a, b);
        let upper = a.as_hex().to_ascii_uppercase();
        assert_eq!(Ha1::from_hex(Algorithm::Md5, &upper), Some(a));
        assert_eq!(Ha1::from_hex(Algorithm::Sha256, a.as_hex()), None);
        assert_eq!(Ha1::from_hex(Algorithm::Md5, &[b'g'; 32]), None);
        assert_eq!(a.as_hex().len(), 32);
        assert_eq!(
            Ha1::new(Algorithm::Sha256, b"", b"", b"").as_hex().len(),
            64
        );
        let ch = Challenge::new(b"a\\\"b", b"n", Algorithm::Md5);
        assert_eq!(
            Ha1::from_challenge(&ch, b"u", b"p"),
            Ha1::new(Algorithm::Md5, b"u", b"a\"b", b"p")
        );
        assert!(!format!("{a:?}").contains(std::str::from_utf8(a.as_hex()).unwrap()));
    }

    #[test]
    fn mismatch_is_an_error() {
        let ch = Challenge::new(b"r", b"n", Algorithm::Sha256);
        let ha1 = Ha1::new(Algorithm::Md5, b"u", b"r", b"p");
        let mut out = Vec::new();
        assert_eq!(
            write_authorization(
                &mut out,
                &ch,
                b"u",
                &ha1,
                b"REGISTER",
                b"sip:r",
                b"",
                1,
                b"c"
            ),
            Err(AuthError::AlgorithmMismatch)
        );
        assert!(out.is_empty());
    }
}
