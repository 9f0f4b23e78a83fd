//! Header names: classification of long and compact forms, and the
//! fixed-capacity header index.

use super::MAX_HEADERS;

/// Header names the codec knows. Field names are case-insensitive and many
/// have a compact form (RFC 3261 §7.3.3, §20; RFC 3265 `o`/`u`, RFC 3515
/// `r`, RFC 3892 `b`, RFC 4028 `x`, RFC 3841 `a`/`j`/`d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Other = 0,
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    Expires,
    MinExpires,
    ContentLength,
    ContentType,
    ContentEncoding,
    RecordRoute,
    Route,
    WwwAuthenticate,
    ProxyAuthenticate,
    Authorization,
    ProxyAuthorization,
    Supported,
    Subject,
    Event,
    AllowEvents,
    ReferTo,
    ReferredBy,
    SessionExpires,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    Allow,
    Require,
}

/// Number of [`Kind`] values (size of the first-occurrence table).
pub(crate) const KINDS: usize = Kind::Require as usize + 1;

impl Kind {
    /// The canonical long name, used in error messages and by the builder.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Other => "?",
            Kind::Via => "Via",
            Kind::From => "From",
            Kind::To => "To",
            Kind::CallId => "Call-ID",
            Kind::CSeq => "CSeq",
            Kind::Contact => "Contact",
            Kind::MaxForwards => "Max-Forwards",
            Kind::Expires => "Expires",
            Kind::MinExpires => "Min-Expires",
            Kind::ContentLength => "Content-Length",
            Kind::ContentType => "Content-Type",
            Kind::ContentEncoding => "Content-Encoding",
            Kind::RecordRoute => "Record-Route",
            Kind::Route => "Route",
            Kind::WwwAuthenticate => "WWW-Authenticate",
            Kind::ProxyAuthenticate => "Proxy-Authenticate",
            Kind::Authorization => "Authorization",
            Kind::ProxyAuthorization => "Proxy-Authorization",
            Kind::Supported => "Supported",
            Kind::Subject => "Subject",
            Kind::Event => "Event",
            Kind::AllowEvents => "Allow-Events",
            Kind::ReferTo => "Refer-To",
            Kind::ReferredBy => "Referred-By",
            Kind::SessionExpires => "Session-Expires",
            Kind::AcceptContact => "Accept-Contact",
            Kind::RejectContact => "Reject-Contact",
            Kind::RequestDisposition => "Request-Disposition",
            Kind::Allow => "Allow",
            Kind::Require => "Require",
        }
    }
}

/// Classifies a header name: a switch on (length, first byte folded to
/// lower case) narrows to at most two candidates, then one case-insensitive
/// compare. Unknown names are [`Kind::Other`] and are kept as written.
#[inline]
pub(crate) fn classify(name: &[u8]) -> Kind {
    let Some(&first) = name.first() else {
        return Kind::Other;
    };
    let f = first | 0x20;
    let is = |lower: &str, k: Kind| {
        if eq_lower(name, lower.as_bytes()) {
            k
        } else {
            Kind::Other
        }
    };
    match (name.len(), f) {
        (1, _) => match f {
            b'v' => Kind::Via,
            b'f' => Kind::From,
            b't' => Kind::To,
            b'i' => Kind::CallId,
            b'm' => Kind::Contact,
            b'l' => Kind::ContentLength,
            b'c' => Kind::ContentType,
            b'e' => Kind::ContentEncoding,
            b'k' => Kind::Supported,
            b's' => Kind::Subject,
            b'o' => Kind::Event,
            b'u' => Kind::AllowEvents,
            b'r' => Kind::ReferTo,
            b'b' => Kind::ReferredBy,
            b'x' => Kind::SessionExpires,
            b'a' => Kind::AcceptContact,
            b'j' => Kind::RejectContact,
            b'd' => Kind::RequestDisposition,
            _ => Kind::Other,
        },
        (2, b't') => is("to", Kind::To),
        (3, b'v') => is("via", Kind::Via),
        (4, b'f') => is("from", Kind::From),
        (4, b'c') => is("cseq", Kind::CSeq),
        (5, b'r') => is("route", Kind::Route),
        (5, b'e') => is("event", Kind::Event),
        (5, b'a') => is("allow", Kind::Allow),
        (7, b'c') => match name[1] | 0x20 {
            b'a' => is("call-id", Kind::CallId),
            _ => is("contact", Kind::Contact),
        },
        (7, b'e') => is("expires", Kind::Expires),
        (7, b's') => is("subject", Kind::Subject),
        (7, b'r') => is("require", Kind::Require),
        (8, b'r') => is("refer-to", Kind::ReferTo),
        (9, b's') => is("supported", Kind::Supported),
        (11, b'm') => is("min-expires", Kind::MinExpires),
        (11, b'r') => is("referred-by", Kind::ReferredBy),
        (12, b'm') => is("max-forwards", Kind::MaxForwards),
        (12, b'c') => is("content-type", Kind::ContentType),
        (12, b'r') => is("record-route", Kind::RecordRoute),
        (12, b'a') => is("allow-events", Kind::AllowEvents),
        (13, b'a') => is("authorization", Kind::Authorization),
        (14, b'c') => is("content-length", Kind::ContentLength),
        (14, b'a') => is("accept-contact", Kind::AcceptContact),
        (14, b'r') => is("reject-contact", Kind::RejectContact),
        (15, b's') => is("session-expires", Kind::SessionExpires),
        (16, b'w') => is("www-authenticate", Kind::WwwAuthenticate),
        (16, b'c') => is("content-encoding", Kind::ContentEncoding),
        (18, b'p') => is("proxy-authenticate", Kind::ProxyAuthenticate),
        (19, b'p') => is("proxy-authorization", Kind::ProxyAuthorization),
        (19, b'r') => is("request-disposition", Kind::RequestDisposition),
        _ => Kind::Other,
    }
}

/// A lower-case name of up to 8 bytes as a little-endian `u64`, zero-padded.
const fn lit(s: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let mut i = 0;
    while i < s.len() {
        w[i] = s[i];
        i += 1;
    }
    u64::from_le_bytes(w)
}

/// [`classify`] for the name `msg[start..end]` as the scanner sees it: a
/// name of 2 to 7 bytes is read with one 8-byte load from the message
/// (the bytes after it, `:` and the value, are masked off) and compared
/// with one OR and one compare, instead of a byte loop. Same answer as
/// `classify(&msg[start..end])`.
#[inline]
pub(crate) fn classify_at(msg: &[u8], start: usize, end: usize) -> Kind {
    let name = msg.get(start..end).unwrap_or(&[]);
    let n = name.len();
    if !(2..8).contains(&n) || start + 8 > msg.len() {
        return classify(name);
    }
    let w = load8(msg, start) & (u64::MAX >> (64 - 8 * n));
    let f = name[0] | 0x20;
    let (k, l) = match (n, f) {
        (2, b't') => (Kind::To, const { lit(b"to") }),
        (3, b'v') => (Kind::Via, const { lit(b"via") }),
        (4, b'f') => (Kind::From, const { lit(b"from") }),
        (4, b'c') => (Kind::CSeq, const { lit(b"cseq") }),
        (5, b'r') => (Kind::Route, const { lit(b"route") }),
        (5, b'e') => (Kind::Event, const { lit(b"event") }),
        (5, b'a') => (Kind::Allow, const { lit(b"allow") }),
        (7, b'c') => match name[1] | 0x20 {
            b'a' => (Kind::CallId, const { lit(b"call-id") }),
            _ => (Kind::Contact, const { lit(b"contact") }),
        },
        (7, b'e') => (Kind::Expires, const { lit(b"expires") }),
        (7, b's') => (Kind::Subject, const { lit(b"subject") }),
        (7, b'r') => (Kind::Require, const { lit(b"require") }),
        _ => return Kind::Other,
    };
    if (w | fold_mask(l)) == l {
        k
    } else {
        Kind::Other
    }
}

/// Loads 8 bytes at `at` (caller guarantees `at + 8 <= b.len()`).
#[inline]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Per-byte OR mask that folds case only where `lower` has a letter: bit 5
/// for bytes with bit 6 set (`a`..`z`), 0 for `-` and digits.
#[inline]
fn fold_mask(lower: u64) -> u64 {
    (lower & 0x4040_4040_4040_4040) >> 1
}

/// `name` equals the lower-case header name `lower` (letters, digits, `-`)
/// ignoring ASCII case, exactly: setting bit 5 maps A-Z to a-z, and only the
/// letter positions of `lower` get that bit, so no other byte can alias
/// (a plain `| 0x20` would map CR to `-`). One OR and one compare per 8
/// bytes. A name that matches is therefore a valid token, and the scanner
/// need not check its bytes one by one.
#[inline]
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    let n = name.len();
    if n != lower.len() {
        return false;
    }
    if n >= 8 {
        let (a, b) = (load8(lower, 0), load8(lower, n - 8));
        (load8(name, 0) | fold_mask(a)) == a && (load8(name, n - 8) | fold_mask(b)) == b
    } else {
        name.iter()
            .zip(lower)
            .fold(0u8, |acc, (&x, &l)| acc | ((x | ((l & 0x40) >> 1)) ^ l))
            == 0
    }
}

/// One header line: offsets into the message, `u16` because messages are at
/// most [`super::MAX_MESSAGE`] bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) name_start: u16,
    pub(crate) value_start: u16,
    pub(crate) value_end: u16,
}

impl Entry {
    const EMPTY: Entry = Entry {
        kind: Kind::Other,
        name_start: 0,
        value_start: 0,
        value_end: 0,
    };
}

/// The header index: every header line in order, plus the position of the
/// first line of each known kind for O(1) lookups. Inline, fixed capacity:
/// no heap allocation per parse.
#[derive(Clone)]
pub(crate) struct Index {
    pub(crate) entries: [Entry; MAX_HEADERS],
    pub(crate) len: usize,
    /// Index into `entries` of the first line of each kind; `NONE` if absent.
    pub(crate) first: [u8; KINDS],
    /// Lines of each kind (saturating), for the "appears once" checks.
    pub(crate) count: [u8; KINDS],
}

pub(crate) const NONE: u8 = u8::MAX;
const _: () = assert!(MAX_HEADERS < NONE as usize);

impl Index {
    #[inline]
    pub(crate) fn new() -> Self {
        Index {
            entries: [Entry::EMPTY; MAX_HEADERS],
            len: 0,
            first: [NONE; KINDS],
            count: [0; KINDS],
        }
    }

    /// The header lines parsed so far.
    #[inline]
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries[..self.len.min(MAX_HEADERS)]
    }

    /// The first line of `kind`, if any.
    #[inline]
    pub(crate) fn first(&self, kind: Kind) -> Option<&Entry> {
        let i = self.first[kind as usize];
        if i == NONE {
            None
        } else {
            self.entries.get(i as usize)
        }
    }

    /// Appends a line; `false` when full.
    #[inline]
    pub(crate) fn push(&mut self, e: Entry) -> bool {
        if self.len >= MAX_HEADERS {
            return false;
        }
        let k = e.kind as usize;
        if self.first[k] == NONE && e.kind != Kind::Other {
            self.first[k] = self.len as u8;
        }
        self.count[k] = self.count[k].saturating_add(1);
        self.entries[self.len] = e;
        self.len += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_long_compact_and_case() {
        let cases: &[(&str, Kind)] = &[
            ("Via", Kind::Via),
            ("v", Kind::Via),
            ("V", Kind::Via),
            ("vIA", Kind::Via),
            ("From", Kind::From),
            ("f", Kind::From),
            ("To", Kind::To),
            ("t", Kind::To),
            ("Call-ID", Kind::CallId),
            ("call-id", Kind::CallId),
            ("i", Kind::CallId),
            ("CSeq", Kind::CSeq),
            ("cseq", Kind::CSeq),
            ("Contact", Kind::Contact),
            ("m", Kind::Contact),
            ("Max-Forwards", Kind::MaxForwards),
            ("MaX-fOrWaRdS", Kind::MaxForwards),
            ("Expires", Kind::Expires),
            ("Min-Expires", Kind::MinExpires),
            ("Content-Length", Kind::ContentLength),
            ("l", Kind::ContentLength),
            ("Content-Type", Kind::ContentType),
            ("c", Kind::ContentType),
            ("e", Kind::ContentEncoding),
            ("Record-Route", Kind::RecordRoute),
            ("Route", Kind::Route),
            ("WWW-Authenticate", Kind::WwwAuthenticate),
            ("www-authenticate", Kind::WwwAuthenticate),
            ("Proxy-Authenticate", Kind::ProxyAuthenticate),
            ("Authorization", Kind::Authorization),
            ("Proxy-Authorization", Kind::ProxyAuthorization),
            ("k", Kind::Supported),
            ("Supported", Kind::Supported),
            ("s", Kind::Subject),
            ("o", Kind::Event),
            ("u", Kind::AllowEvents),
            ("r", Kind::ReferTo),
            ("x", Kind::SessionExpires),
            ("Session-Expires", Kind::SessionExpires),
            ("Allow", Kind::Allow),
            ("X-Custom", Kind::Other),
            ("Contacts", Kind::Other),
            ("Vias", Kind::Other),
            ("q", Kind::Other),
            ("", Kind::Other),
            // Bytes that a plain `| 0x20` would fold onto `-` or letters.
            ("Call\rID", Kind::Other),
            ("Max\rForwards", Kind::Other),
            ("Content\rLength", Kind::Other),
            ("\u{16}ia", Kind::Other),
            ("1", Kind::Other),
            (":", Kind::Other),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name.as_bytes()), *want, "{name}");
        }
    }

    /// `classify_at` agrees with `classify` on every name of the table
    /// above, its case variants and one-byte corruptions, whatever follows.
    #[test]
    fn classify_at_matches_classify() {
        let names = [
            "to",
            "via",
            "from",
            "cseq",
            "route",
            "event",
            "allow",
            "call-id",
            "contact",
            "expires",
            "subject",
            "require",
            "v",
            "x-a",
            "max-forwards",
            "toe",
            "vib",
        ];
        for name in names {
            let mut variants = vec![name.to_string(), name.to_ascii_uppercase()];
            for i in 0..name.len() {
                for flip in [0x20u8, 0x01, 0x40, 0x0d ^ b'-'] {
                    let mut b = name.as_bytes().to_vec();
                    b[i] ^= flip;
                    variants.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
            for v in variants {
                for tail in ["", ":", ": x", ":xxxxxxxxxx", " : value\r\n"] {
                    let msg = format!("{v}{tail}");
                    let n = v.len();
                    assert_eq!(
                        classify_at(msg.as_bytes(), 0, n),
                        classify(&msg.as_bytes()[..n]),
                        "{msg:?}"
                    );
                    let msg = format!("ab{v}{tail}");
                    assert_eq!(
                        classify_at(msg.as_bytes(), 2, n + 2),
                        classify(&msg.as_bytes()[2..n + 2]),
                        "{msg:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn index_is_bounded() {
        let mut ix = Index::new();
        let e = Entry {
            kind: Kind::Via,
            ..Entry::EMPTY
        };
        for _ in 0..MAX_HEADERS {
            assert!(ix.push(e));
        }
        assert!(!ix.push(e));
        assert_eq!(ix.first[Kind::Via as usize], 0);
        assert_eq!(ix.entries().len(), MAX_HEADERS);
    }
}
