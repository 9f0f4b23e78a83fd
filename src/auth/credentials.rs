//! `Authorization` / `Proxy-Authorization` values (RFC 3261 §20.7 and
//! §20.28, RFC 2617 §3.2.2, RFC 7616 §3.4).

use super::params::digest_params;
use super::{Algorithm, AuthError, Qop, hex_val};

/// Parsed digest credentials (server side). Slices borrow the header value
/// and are in wire form (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `username`, wire form; compare with [`wire_eq`](super::wire_eq).
    pub username: &'a [u8],
    /// `realm` the client hashed into HA1.
    pub realm: &'a [u8],
    /// `nonce` echoed from the challenge.
    pub nonce: &'a [u8],
    /// `uri` (digest-uri); RFC 3261 §22.4 wants it equal to the Request-URI.
    pub uri: &'a [u8],
    /// `response`: the request-digest, lowercase hex.
    pub response: &'a [u8],
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// `cnonce`; present whenever `qop` is.
    pub cnonce: Option<&'a [u8]>,
    /// `nc`, decoded from its 8 hex digits; present whenever `qop` is.
    pub nc: Option<u32>,
    /// `qop` chosen by the client; `None` is RFC 2069 style.
    pub qop: Option<Qop>,
    /// `opaque` echoed from the challenge.
    pub opaque: Option<&'a [u8]>,
}

/// Parses an `Authorization` or `Proxy-Authorization` header value.
///
/// Required: `username`, `realm`, `nonce`, `uri`, `response`; `cnonce` and
/// `nc` too when `qop` is present (RFC 7616 §3.4). `nc` must be exactly 8
/// lowercase hex digits and `qop` exactly `auth` or `auth-int`, because both
/// are hashed as sent. Names are case-insensitive, order is free, unknown parameters
/// are ignored, known ones may not repeat. Never panics.
pub fn parse_authorization(value: &[u8]) -> Result<Credentials<'_>, AuthError> {
    const NAMES: [&str; 10] = [
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "nc",
        "qop",
        "opaque",
    ];
    let mut slots: [Option<&[u8]>; 10] = [None; 10];
    for p in digest_params(value)? {
        let p = p?;
        let Some(i) = NAMES
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(p.name))
        else {
            continue;
        };
        if slots[i].replace(p.value).is_some() {
            return Err(AuthError::DuplicateParam(NAMES[i]));
        }
    }
    let [
        username,
        realm,
        nonce,
        uri,
        response,
        algorithm,
        cnonce,
        nc,
        qop,
        opaque,
    ] = slots;
    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(t) => Algorithm::from_token(t).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    let qop = match qop {
        None => None,
        // Hashed verbatim into the response, so only the canonical
        // lowercase spellings can verify; say so early.
        Some(b"auth") => Some(Qop::Auth),
        Some(b"auth-int") => Some(Qop::AuthInt),
        Some(_) => return Err(AuthError::UnsupportedQop),
    };
    let nc = match nc {
        None => None,
        Some(t) => Some(parse_nc(t).ok_or(AuthError::BadNonceCount)?),
    };
    if qop.is_some() {
        if cnonce.is_none() {
            return Err(AuthError::MissingParam("cnonce"));
        }
        if nc.is_none() {
            return Err(AuthError::MissingParam("nc"));
        }
    }
    Ok(Credentials {
        username: username.ok_or(AuthError::MissingParam("username"))?,
        realm: realm.ok_or(AuthError::MissingParam("realm"))?,
        nonce: nonce.ok_or(AuthError::MissingParam("nonce"))?,
        uri: uri.ok_or(AuthError::MissingParam("uri"))?,
        response: response.ok_or(AuthError::MissingParam("response"))?,
        algorithm,
        cnonce,
        nc,
        qop,
        opaque,
    })
}

/// `nc-value = 8LHEX` (RFC 7616 §3.4). Lowercase only: the digits are
/// hashed verbatim and [`verify`](super::verify) re-encodes them lowercase.
fn parse_nc(t: &[u8]) -> Option<u32> {
    if t.len() != 8 {
        return None;
    }
    t.iter().try_fold(0u32, |acc, &c| match c {
        b'A'..=b'F' => None,
        _ => Some(acc << 4 | u32::from(hex_val(c)?)),
    })
}
