//! `WWW-Authenticate` / `Proxy-Authenticate` values (RFC 3261 §20.44 and
//! §20.27, RFC 2617 §3.2.1, RFC 7616 §3.3).

use super::params::digest_params;
use super::{Algorithm, AuthError, Qop};

/// A parsed digest challenge. Slices borrow the header value and are in wire
/// form (see the module docs).
///
/// The client answers with the first offered qop in the order `auth`,
/// `auth-int`; to force `auth-int` when both are offered, set `qop_auth` to
/// `false` before calling [`write_authorization`](super::write_authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// `realm`: mandatory; part of HA1.
    pub realm: &'a [u8],
    /// `nonce`: mandatory; opaque to the client.
    pub nonce: &'a [u8],
    /// `opaque`: echoed back unchanged when present.
    pub opaque: Option<&'a [u8]>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// `qop` lists `auth`.
    pub qop_auth: bool,
    /// `qop` lists `auth-int`.
    pub qop_auth_int: bool,
    /// `stale=true`: the credentials were right but the nonce expired, so
    /// retry with the new nonce without asking for a password (RFC 7616 §3.3).
    pub stale: bool,
    /// `domain`: space-separated URIs of the protection space (unused in SIP).
    pub domain: Option<&'a [u8]>,
}

impl<'a> Challenge<'a> {
    /// A challenge with no qop, opaque or domain; set the public fields for more.
    pub fn new(realm: &'a [u8], nonce: &'a [u8], algorithm: Algorithm) -> Self {
        Challenge {
            realm,
            nonce,
            opaque: None,
            algorithm,
            qop_auth: false,
            qop_auth_int: false,
            stale: false,
            domain: None,
        }
    }

    /// The qop a client should answer with: `auth` if offered, else
    /// `auth-int`, else none (RFC 2069 compatibility, RFC 2617 §3.2.2.1).
    pub fn chosen_qop(&self) -> Option<Qop> {
        if self.qop_auth {
            Some(Qop::Auth)
        } else if self.qop_auth_int {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

/// Parses a `WWW-Authenticate` or `Proxy-Authenticate` header value.
///
/// Parameter names are case-insensitive and may come in any order; values
/// may be tokens or quoted strings; unknown parameters (`charset`,
/// `userhash`, extensions) are ignored. `realm` and `nonce` are required
/// (RFC 7616 §3.3). A `qop` that lists neither `auth` nor `auth-int` is
/// [`AuthError::UnsupportedQop`], since answering it without qop would be
/// rejected anyway. Never panics.
pub fn parse_challenge(value: &[u8]) -> Result<Challenge<'_>, AuthError> {
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = None;
    let mut qop: Option<&[u8]> = None;
    let mut stale = None;
    let mut domain = None;
    for p in digest_params(value)? {
        let p = p?;
        let (slot, name) = if p.name.eq_ignore_ascii_case(b"realm") {
            (&mut realm, "realm")
        } else if p.name.eq_ignore_ascii_case(b"nonce") {
            (&mut nonce, "nonce")
        } else if p.name.eq_ignore_ascii_case(b"opaque") {
            (&mut opaque, "opaque")
        } else if p.name.eq_ignore_ascii_case(b"algorithm") {
            (&mut algorithm, "algorithm")
        } else if p.name.eq_ignore_ascii_case(b"qop") {
            (&mut qop, "qop")
        } else if p.name.eq_ignore_ascii_case(b"stale") {
            (&mut stale, "stale")
        } else if p.name.eq_ignore_ascii_case(b"domain") {
            (&mut domain, "domain")
        } else {
            continue;
        };
        if slot.replace(p.value).is_some() {
            return Err(AuthError::DuplicateParam(name));
        }
    }
    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(t) => Algorithm::from_token(t).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    let (mut qop_auth, mut qop_auth_int) = (false, false);
    if let Some(list) = qop {
        // qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT
        for opt in list.split(|&c| c == b',') {
            match Qop::from_token(opt.trim_ascii()) {
                Some(Qop::Auth) => qop_auth = true,
                Some(Qop::AuthInt) => qop_auth_int = true,
                None => {}
            }
        }
        if !qop_auth && !qop_auth_int {
            return Err(AuthError::UnsupportedQop);
        }
    }
    Ok(Challenge {
        realm: realm.ok_or(AuthError::MissingParam("realm"))?,
        nonce: nonce.ok_or(AuthError::MissingParam("nonce"))?,
        opaque,
        algorithm,
        qop_auth,
        qop_auth_int,
        // RFC 7616 §3.3: case-insensitive "true"; anything else is false.
        stale: stale.is_some_and(|s| s.eq_ignore_ascii_case(b"true")),
        domain,
    })
}

/// Appends a challenge value (server side), e.g.
/// `Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256, qop="auth,auth-int", stale=TRUE`.
/// Fields are written verbatim inside quotes, so they must already be in
/// wire form ([`escape_into`](super::escape_into) for arbitrary realms).
pub fn write_challenge(out: &mut Vec<u8>, ch: &Challenge<'_>) {
    out.reserve(
        80 + ch.realm.len()
            + ch.nonce.len()
            + ch.opaque.map_or(0, <[u8]>::len)
            + ch.domain.map_or(0, <[u8]>::len),
    );
    out.extend_from_slice(b"Digest realm=\"");
    out.extend_from_slice(ch.realm);
    out.extend_from_slice(b"\", nonce=\"");
    out.extend_from_slice(ch.nonce);
    out.push(b'"');
    if let Some(o) = ch.opaque {
        out.extend_from_slice(b", opaque=\"");
        out.extend_from_slice(o);
        out.push(b'"');
    }
    out.extend_from_slice(b", algorithm=");
    out.extend_from_slice(ch.algorithm.as_str().as_bytes());
    match (ch.qop_auth, ch.qop_auth_int) {
        (true, true) => out.extend_from_slice(b", qop=\"auth,auth-int\""),
        (true, false) => out.extend_from_slice(b", qop=\"auth\""),
        (false, true) => out.extend_from_slice(b", qop=\"auth-int\""),
        (false, false) => {}
    }
    if ch.stale {
        out.extend_from_slice(b", stale=TRUE");
    }
    if let Some(d) = ch.domain {
        out.extend_from_slice(b", domain=\"");
        out.extend_from_slice(d);
        out.push(b'"');
    }
}
