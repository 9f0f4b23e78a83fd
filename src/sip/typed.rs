//! Typed views of header values: Via, name-addr (From/To/Route/Record-Route),
//! Contact, CSeq, and SIP/SIPS/tel URIs. All borrow the message buffer.

use super::Method;
use super::lex::{
    Cur, all_bytes, eq_ic, eq_lit, find, find_byte, find2, gen_value_run, is_token, param_lookup,
    parse_dec, parse_u16, parse_u32, run_host, scheme_len, token_run, uri_byte, uri_shape_ok,
};

/// One `via-parm` (RFC 3261 §20.42, §25.1), with the RFC 3581 `rport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token of `sent-protocol`, e.g. `UDP` (RFC 4475 "transports"
    /// allows unknown ones).
    pub transport: &'a [u8],
    /// Host of `sent-by`; an IPv6 reference keeps its brackets (`[::1]`).
    pub host: &'a [u8],
    /// Port of `sent-by`, if written.
    pub port: Option<u16>,
    /// The `branch` parameter (RFC 3261 §8.1.1.7).
    pub branch: Option<&'a [u8]>,
    /// The `received` parameter (RFC 3261 §18.2.1).
    pub received: Option<&'a [u8]>,
    /// RFC 3581: `None` absent, `Some(None)` present without value (a request
    /// asking for it), `Some(Some(p))` filled in.
    pub rport: Option<Option<u16>>,
    /// This `via-parm` as written (trimmed), without the separating commas.
    pub raw: &'a [u8],
}

/// A `name-addr` or `addr-spec` with its header parameters (RFC 3261 §20.10,
/// §20.20, §20.39, used by From, To, Contact, Route, Record-Route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name: the text between the quotes (escapes kept as written,
    /// RFC 4475 "esc02"/"wsinv") or the unquoted token sequence ("lwsdisp").
    pub display: Option<&'a [u8]>,
    /// The URI, without the angle brackets.
    pub uri: &'a [u8],
    /// The `tag` parameter (RFC 3261 §19.3).
    pub tag: Option<&'a [u8]>,
    /// Every header parameter as written, from the first `;` (empty if none).
    pub params: &'a [u8],
    /// This value as written (trimmed), without separating commas.
    pub raw: &'a [u8],
}

impl<'a> NameAddr<'a> {
    /// Value of header parameter `name` (case-insensitive); `Some(b"")` for
    /// a parameter without value such as `lr`.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        param_lookup(self.params, name)
    }
}

/// One Contact value (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER removing all bindings, RFC 3261 §10.2.2).
    Star,
    /// An address with its `expires` and `q` parameters.
    Addr {
        /// The address and all parameters.
        addr: NameAddr<'a>,
        /// `expires` parameter; `None` when absent or not a 32-bit number
        /// (RFC 4475 "scalar02": treat an overlarge value as absent, so the
        /// registrar falls back to Expires or its default).
        expires: Option<u32>,
        /// `q` parameter as written.
        q: Option<&'a [u8]>,
    },
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number, below 2**31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method<'a>,
}

/// A parsed URI (RFC 3261 §19.1.1; RFC 3966 for `tel:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// `sip`, `sips` or `tel`, as written.
    pub scheme: &'a [u8],
    /// User part (escapes kept, RFC 4475 "esc01"); for `tel:` the number.
    pub user: Option<&'a [u8]>,
    /// Host; an IPv6 reference keeps its brackets. Empty for `tel:`.
    pub host: &'a [u8],
    /// Port, if written.
    pub port: Option<u16>,
    /// URI parameters from the first `;` after the host (or number), up to
    /// `?headers` (excluded).
    pub params: &'a [u8],
}

/// Parses a `sip:`, `sips:` or `tel:` URI (scheme case-insensitive). Other
/// schemes and malformed URIs give `None`. The `@` may appear at most once in
/// a SIP URI (§25.1: neither user, password, parameters nor headers may
/// contain it unescaped), which makes the split unambiguous even for the
/// user parts of RFC 4475 "intmeth" and "semiuri".
pub fn parse_uri(b: &[u8]) -> Option<Uri<'_>> {
    let colon = find(b':', b)?;
    let scheme = &b[..colon];
    let rest = &b[colon + 1..];
    if eq_ic(scheme, b"tel") {
        let end = find2(b';', b'?', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() {
            return None;
        }
        let params_end = find(b'?', rest).unwrap_or(rest.len()).max(end);
        return Some(Uri {
            scheme,
            user: Some(number),
            host: &[],
            port: None,
            params: &rest[end..params_end],
        });
    }
    if !(eq_ic(scheme, b"sip") || eq_ic(scheme, b"sips")) {
        return None;
    }
    let (user, hostport) = match find(b'@', rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = match find(b':', userinfo) {
                Some(c) => &userinfo[..c],
                None => userinfo,
            };
            if user.is_empty() {
                return None;
            }
            (Some(user), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let mut c = Cur::new(hostport);
    let host = host(&mut c)?;
    let port = if c.eat(b':') {
        Some(parse_u16(c.take(|b| b.is_ascii_digit()))?)
    } else {
        None
    };
    let params = match c.peek() {
        None | Some(b'?') => &hostport[c.i..c.i],
        Some(b';') => {
            let end = find(b'?', &hostport[c.i..]).map_or(hostport.len(), |q| c.i + q);
            &hostport[c.i..end]
        }
        Some(_) => return None,
    };
    Some(Uri {
        scheme,
        user,
        host,
        port,
        params,
    })
}

/// `host = hostname / IPv4address / IPv6reference`; an IPv6 reference is
/// returned with its brackets.
fn host<'a>(c: &mut Cur<'a>) -> Option<&'a [u8]> {
    if c.peek() == Some(b'[') {
        let s = c.i;
        let close = find(b']', &c.b[s..])?;
        let inner = &c.b[s + 1..s + close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        c.i = s + close + 1;
        Some(&c.b[s..c.i])
    } else {
        let h = c.host_chars();
        if h.is_empty() { None } else { Some(h) }
    }
}

/// Parses one `via-parm` at the cursor, leaving it before the next `,` or at
/// the end. Accepts LWS around `/`, `:`, `;` and `=` (RFC 3261 §25.1 `SLASH`,
/// `COLON`, `SEMI`, `EQUAL`; RFC 4475 "wsinv"). The protocol must be SIP/2.0.
pub(crate) fn via_parm<'a>(c: &mut Cur<'a>) -> Option<Via<'a>> {
    c.lws();
    let start = c.i;
    // Fast path for the usual `SIP/2.0/` with no inner LWS.
    if c.b
        .get(c.i..c.i + 8)
        .is_some_and(|p| eq_lit(p, b"sip/2.0/"))
        && c.b.get(c.i + 8).is_some_and(|&b| is_token(b))
    {
        c.i += 8;
    } else {
        if !eq_ic(c.token(), b"SIP") {
            return None;
        }
        c.lws();
        if !c.eat(b'/') {
            return None;
        }
        c.lws();
        if c.token() != b"2.0" {
            return None;
        }
        c.lws();
        if !c.eat(b'/') {
            return None;
        }
        c.lws();
    }
    let transport = c.token();
    if transport.is_empty() || !c.lws() {
        return None;
    }
    let host = host(c)?;
    let mut end = c.i;
    c.lws();
    let port = if c.eat(b':') {
        c.lws();
        let p = parse_u16(c.take(|b| b.is_ascii_digit()))?;
        end = c.i;
        Some(p)
    } else {
        c.i = end;
        None
    };
    let mut via = Via {
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: None,
        raw: &[],
    };
    let mut bad = false;
    let params = c.params(|n, v| bad |= !via_param(&mut via, n, v))?;
    if bad {
        return None;
    }
    if !params.is_empty() {
        end = params.as_ptr() as usize - c.b.as_ptr() as usize + params.len();
    }
    via.raw = &c.b[start..end];
    Some(via)
}

/// Records one Via parameter (RFC 3261 §20.42 `branch`, `received`;
/// RFC 3581 `rport`) in `via`; a later one of the same name overrides.
/// `false` when its value is missing or not a port where one is required.
fn via_param<'a>(via: &mut Via<'a>, n: &'a [u8], v: Option<&'a [u8]>) -> bool {
    if eq_lit(n, b"branch") {
        via.branch = v;
        v.is_some()
    } else if eq_lit(n, b"received") {
        via.received = v;
        v.is_some()
    } else if eq_lit(n, b"rport") {
        let port = v.map(parse_u16);
        via.rport = Some(port.flatten());
        port != Some(None)
    } else {
        true
    }
}

/// Checks a URI written inside `<>` or as a bare `addr-spec`: a scheme
/// (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`) and a colon, then no
/// whitespace, control, `<`, `>` or `"` (RFC 4475 "badaspec").
fn valid_uri(u: &[u8]) -> bool {
    uri_shape_ok(u).is_some()
}

/// Parses one `name-addr` / `addr-spec` with its parameters at the cursor,
/// leaving it before the next `,` or at the end.
///
/// RFC 3261 §20.10: a bare `addr-spec` ends at the first `;`, `,` or LWS and
/// cannot contain `?` (RFC 4475 "regbadct"); an unquoted display name is a
/// token sequence (so `Bell, Alexander <...>` is rejected, "baddn").
pub(crate) fn name_addr<'a>(c: &mut Cur<'a>) -> Option<NameAddr<'a>> {
    c.lws();
    let start = c.i;
    let mut display = None;
    let angle = match c.peek()? {
        b'"' => {
            display = Some(c.quoted()?);
            c.lws();
            if c.peek() != Some(b'<') {
                return None;
            }
            true
        }
        b'<' => true,
        _ => {
            let mut last = c.i;
            loop {
                if c.token().is_empty() {
                    break;
                }
                last = c.i;
                c.lws();
            }
            if c.peek() == Some(b'<') && last > start {
                display = Some(&c.b[start..last]);
                true
            } else {
                c.i = start;
                false
            }
        }
    };
    let uri = if angle {
        // One pass: the run of URI characters must end at `>`.
        c.i += 1;
        // Found as: the first `>`, with only URI characters before it
        // (`>` is not one, so the run cannot end later): two vector scans.
        let rest = c.b.get(c.i..).unwrap_or(&[]);
        let n = find_byte(b'>', rest)?;
        let u = &rest[..n];
        if !all_bytes(u, uri_byte) {
            return None;
        }
        scheme_len(u)?;
        c.i += n + 1;
        u
    } else {
        let u = c.take(|b| !matches!(b, b';' | b',' | b' ' | b'\t' | b'\r' | b'\n'));
        if !valid_uri(u) || find(b'?', u).is_some() {
            return None;
        }
        u
    };
    let mut end = c.i;
    let mut tag = None;
    let params = c.params(|n, v| {
        if tag.is_none() && eq_lit(n, b"tag") {
            tag = Some(v.unwrap_or(&[]));
        }
    })?;
    if tag == Some(&[][..]) {
        return None;
    }
    if !params.is_empty() {
        end = params.as_ptr() as usize - c.b.as_ptr() as usize + params.len();
    }
    Some(NameAddr {
        display,
        uri,
        tag,
        params,
        raw: &c.b[start..end],
    })
}

/// The usual From/To shapes in one pass, without the general cursor
/// machinery: `<uri>` or `"display" <uri>` (no escapes, at most one SP
/// before `<`), then `;name` / `;name=value` parameters with no LWS or
/// quoted values, up to the end of the value. `None` sends the caller to
/// [`name_addr`], which gives the same result on every value this accepts
/// (the unit test `fast_name_addr_agrees` and the proptests check it).
fn fast_name_addr(v: &[u8]) -> Option<NameAddr<'_>> {
    let (display, lt) = match v.first()? {
        b'<' => (None, 0),
        b'"' => {
            let q = 1 + find_byte(b'"', v.get(1..)?)?;
            let d = &v[1..q];
            if find_byte(b'\\', d).is_some() {
                return None;
            }
            let lt = if v.get(q + 1) == Some(&b' ') {
                q + 2
            } else {
                q + 1
            };
            if v.get(lt) != Some(&b'<') {
                return None;
            }
            (Some(d), lt)
        }
        _ => return None,
    };
    let rest = v.get(lt + 1..)?;
    let n = find_byte(b'>', rest)?;
    let uri = &rest[..n];
    if !all_bytes(uri, uri_byte) {
        return None;
    }
    scheme_len(uri)?;
    let params = v.get(lt + 1 + n + 1..)?;
    // The first `tag` parameter, with its value if it has one.
    let mut first_tag = None;
    if !fast_params(params, |name, value| {
        if first_tag.is_none() && eq_lit(name, b"tag") {
            first_tag = Some(value);
        }
    }) {
        return None;
    }
    // `;tag` without a value is malformed (`name_addr` rejects it).
    let tag = match first_tag {
        None => None,
        Some(t) => Some(t?),
    };
    Some(NameAddr {
        display,
        uri,
        tag,
        params,
        raw: v,
    })
}

/// The usual parameter list of [`fast_name_addr`] and [`fast_via`]:
/// `*( ";" token [ "=" gen-value ] )` with no LWS, no quoted value and no
/// `,`, filling the whole of `p`. Calls `f(name, value)` for each, in
/// order, as [`Cur::params`] does; `false` means "not this shape" (the
/// caller falls back to the general parser).
#[inline]
fn fast_params<'a>(p: &'a [u8], mut f: impl FnMut(&'a [u8], Option<&'a [u8]>)) -> bool {
    let mut i = 0;
    while i < p.len() {
        if p[i] != b';' {
            return false;
        }
        let q = &p[i + 1..];
        let nl = token_run(q);
        if nl == 0 {
            return false;
        }
        let (value, used) = match q.get(nl) {
            None | Some(b';') => (None, nl),
            Some(b'=') => {
                let vl = gen_value_run(&q[nl + 1..]);
                if vl == 0 || !matches!(q.get(nl + 1 + vl), None | Some(b';')) {
                    return false;
                }
                (Some(&q[nl + 1..nl + 1 + vl]), nl + 1 + vl)
            }
            _ => return false,
        };
        f(&q[..nl], value);
        i += 1 + used;
    }
    true
}

/// The usual top Via in one pass: `SIP/2.0/transport SP host[:port]`
/// (no IPv6 reference, no inner LWS) and [`fast_params`], filling the whole
/// value (one via-parm on the line). `None` sends the caller to the general
/// [`List`] of [`via_parm`], which gives the same result on every value
/// this accepts (unit test `fast_via_agrees`).
pub(crate) fn fast_via(v: &[u8]) -> Option<Via<'_>> {
    if !v.get(..8).is_some_and(|p| eq_lit(p, b"sip/2.0/")) {
        return None;
    }
    let t = &v[8..];
    let tl = token_run(t);
    if tl == 0 || t.get(tl) != Some(&b' ') {
        return None;
    }
    let transport = &t[..tl];
    let h = &t[tl + 1..];
    let hl = run_host(h);
    if hl == 0 {
        return None;
    }
    let host = &h[..hl];
    let mut rest = &h[hl..];
    let mut port = None;
    if rest.first() == Some(&b':') {
        let d = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        port = Some(parse_u16(&rest[1..1 + d])?);
        rest = &rest[1 + d..];
    }
    let mut via = Via {
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: None,
        raw: v,
    };
    let mut bad = false;
    let ok = fast_params(rest, |n, val| bad |= !via_param(&mut via, n, val));
    if !ok || bad { None } else { Some(via) }
}

/// Parses a whole single-valued name-addr header (From, To).
pub(crate) fn single_name_addr(v: &[u8]) -> Option<NameAddr<'_>> {
    if let Some(na) = fast_name_addr(v) {
        return Some(na);
    }
    let mut c = Cur::new(v);
    let na = name_addr(&mut c)?;
    c.lws();
    if c.at_end() { Some(na) } else { None }
}

/// Parses `CSeq = 1*DIGIT LWS Method` with the number below 2**31
/// (RFC 3261 §8.1.1.5; RFC 4475 "scalar02").
pub(crate) fn cseq(v: &[u8]) -> Option<CSeq<'_>> {
    // Usual form first: `DIGITS SP token` with nothing around (the scanner
    // trims the value). Anything else takes the general path below, which
    // gives the same answer on this form.
    let d = v
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(v.len());
    if d > 0
        && v.get(d) == Some(&b' ')
        && let Some(m) = v.get(d + 1..)
        && !m.is_empty()
        && token_run(m) == m.len()
        && let Some(n) = parse_dec(&v[..d], (1 << 31) - 1)
    {
        return Some(CSeq {
            seq: n as u32,
            method: Method::from_bytes(m),
        });
    }
    let mut c = Cur::new(v);
    c.lws();
    let n = parse_dec(c.take(|b| b.is_ascii_digit()), (1 << 31) - 1)?;
    if !c.lws() {
        return None;
    }
    let m = c.token();
    c.lws();
    if m.is_empty() || !c.at_end() {
        return None;
    }
    Some(CSeq {
        seq: n as u32,
        method: Method::from_bytes(m),
    })
}

/// Builds a [`Contact`] from a parsed name-addr.
pub(crate) fn contact_from(addr: NameAddr<'_>) -> Contact<'_> {
    let expires = addr.param(b"expires").and_then(parse_u32);
    let q = addr.param(b"q");
    Contact::Addr { addr, expires, q }
}

/// Iterates the comma-separated values of one header line. `Item = None`
/// marks a malformed element (the iterator then stops).
#[derive(Debug, Clone)]
pub(crate) struct List<'a, T> {
    c: Cur<'a>,
    f: fn(&mut Cur<'a>) -> Option<T>,
    done: bool,
}

impl<'a, T> List<'a, T> {
    pub(crate) fn new(v: &'a [u8], f: fn(&mut Cur<'a>) -> Option<T>) -> Self {
        List {
            c: Cur::new(v),
            f,
            done: false,
        }
    }
}

impl<T> Iterator for List<'_, T> {
    type Item = Option<T>;
    fn next(&mut self) -> Option<Option<T>> {
        if self.done {
            return None;
        }
        self.c.lws();
        // RFC 3261 §7.3.1: `value *(COMMA value)`; an empty element is an error.
        let item = (self.f)(&mut self.c);
        self.c.lws();
        if item.is_none() {
            self.done = true;
            return Some(None);
        }
        if self.c.at_end() {
            self.done = true;
        } else if !self.c.eat(b',') {
            self.done = true;
            return Some(None);
        } else {
            self.c.lws();
            if self.c.at_end() {
                self.done = true;
                return Some(None);
            }
        }
        Some(item)
    }
}

/// `Contact: *` or one contact value (used by [`List`]).
pub(crate) fn contact_item<'a>(c: &mut Cur<'a>) -> Option<Contact<'a>> {
    c.lws();
    if c.peek() == Some(b'*') {
        c.i += 1;
        return Some(Contact::Star);
    }
    name_addr(c).map(contact_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &str) -> Option<Via<'_>> {
        let mut c = Cur::new(s.as_bytes());
        let v = via_parm(&mut c)?;
        c.lws();
        if c.at_end() { Some(v) } else { None }
    }

    #[test]
    fn via_forms() {
        let v =
            via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport;received=10.0.0.1").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK74bf9"[..]));
        assert_eq!(v.received, Some(&b"10.0.0.1"[..]));
        assert_eq!(v.rport, Some(None));

        let v = via("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.host, b"192.0.2.2");
        assert_eq!(v.branch, Some(&b"390skdjuw"[..]));
        assert_eq!(
            v.raw,
            b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw"
        );

        let v = via("SIP/2.0/TCP [2001:db8::9:1]:5061 ; branch = z9hG4bKx ; rport = 7").unwrap();
        assert_eq!(v.host, b"[2001:db8::9:1]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport, Some(Some(7)));
        assert_eq!(v.branch, Some(&b"z9hG4bKx"[..]));

        let v = via("SIP/2.0/UDP host.example.com;received=[2001:db8::1]").unwrap();
        assert_eq!(v.received, Some(&b"[2001:db8::1]"[..]));
        assert_eq!(v.port, None);

        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/7.0/UDP c.example.com",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host;rport=x",
            "SIP/2.0/UDP [zz]",
            "HTTP/2.0/UDP host",
        ] {
            assert!(via(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("<sip:a@b>;tag=1", None, "sip:a@b", Some("1")),
            ("sip:a@b;tag=1", None, "sip:a@b", Some("1")),
            (
                "\"Alice A\" <sips:a@b:5061>",
                Some("Alice A"),
                "sips:a@b:5061",
                None,
            ),
            (
                "caller<sip:caller@example.com>;tag=323",
                Some("caller"),
                "sip:caller@example.com",
                Some("323"),
            ),
            ("Joe  Smith <sip:j@x>", Some("Joe  Smith"), "sip:j@x", None),
            (
                "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
                Some("J Rosenberg \\\\\\\""),
                "sip:jdrosen@example.com",
                Some("98asjd8"),
            ),
            (
                "<sip:[2001:db8::10]:5070;transport=udp>",
                None,
                "sip:[2001:db8::10]:5070;transport=udp",
                None,
            ),
            ("<urn:service:sos>", None, "urn:service:sos", None),
        ];
        for (input, display, uri, tag) in cases {
            let na = single_name_addr(input.as_bytes()).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(na.display, display.map(str::as_bytes), "{input}");
            assert_eq!(na.uri, uri.as_bytes(), "{input}");
            assert_eq!(na.tag, tag.map(str::as_bytes), "{input}");
        }
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",
            "< sip:t.watson@example.org >",
            "sip:caller@example.net;;tag=134161461246",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b",
            "<nocolon>",
            "<sip:a@b> junk",
            "<sip:a@b>;tag=",
            "",
        ] {
            assert!(single_name_addr(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    /// Checks a fast path against the general parser: the first `usual`
    /// seeds must take the fast path; then every seed, each byte of it
    /// replaced by or preceded by each of `tricky`, and every prefix of
    /// it: wherever `fast` answers, `slow` must give the same answer, and
    /// `fast` must answer often enough for the test to mean something.
    /// Answers are compared as their `Debug` text (every field, so equal
    /// text means equal values), which keeps the borrows out of the types.
    fn fast_path_agrees(
        seeds: &[&[u8]],
        usual: usize,
        tricky: &[u8],
        fast: impl Fn(&[u8]) -> Option<String>,
        slow: impl Fn(&[u8]) -> Option<String>,
    ) {
        for seed in &seeds[..usual] {
            assert!(fast(seed).is_some(), "{:?}", String::from_utf8_lossy(seed));
        }
        let mut n_fast = 0;
        for seed in seeds {
            let mut inputs = vec![seed.to_vec()];
            for i in 0..seed.len() {
                for &b in tricky {
                    let mut v = seed.to_vec();
                    v[i] = b;
                    inputs.push(v.clone());
                    v.insert(i, b);
                    inputs.push(v);
                }
                inputs.push(seed[..i].to_vec());
            }
            for v in &inputs {
                if let Some(f) = fast(v) {
                    n_fast += 1;
                    assert_eq!(Some(f), slow(v), "{:?}", String::from_utf8_lossy(v));
                }
            }
        }
        assert!(n_fast > 100, "{n_fast}");
    }

    /// The From/To fast path agrees with the general parser.
    #[test]
    fn fast_name_addr_agrees() {
        let seeds: &[&[u8]] = &[
            b"\"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl",
            b"<sip:u000001@example.com>;tag=456248",
            b"<sip:u000001@example.com>",
            b"\"Bob\"<sips:bob@[2001:db8::1]:5061;transport=tcp>;x;tag=a.b-c;TAG=z",
            b"\"\" <tel:+1234>;lr;tag=1",
            b"<sip:a@b>;tag",
            b"<sip:a@b>;x=1;tag=",
            b"<sip:a@b>;;tag=1",
        ];
        fast_path_agrees(
            seeds,
            5,
            b" \"\\<>;=,\r?\x80",
            |v| fast_name_addr(v).map(|na| format!("{na:?}")),
            |v| {
                let mut c = Cur::new(v);
                let na = name_addr(&mut c)?;
                c.lws();
                c.at_end().then(|| format!("{na:?}"))
            },
        );
    }

    /// The top-Via fast path agrees with the general parser as `parse`
    /// uses it (the first element of the line).
    #[test]
    fn fast_via_agrees() {
        let seeds: &[&[u8]] = &[
            b"SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1",
            b"SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5060",
            b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
            b"sip/2.0/tcp host;branch=a;branch=b;received=x;rport=7",
            b"SIP/2.0/UDP h",
            b"SIP/2.0/UDP h:1",
            b"SIP/2.0/UDP h;rport=x",
            b"SIP/2.0/UDP h;branch",
        ];
        fast_path_agrees(
            seeds,
            6,
            b" /:;=,\r[\t9\x80",
            |v| fast_via(v).map(|via| format!("{via:?}")),
            |v| {
                List::new(v, via_parm)
                    .next()
                    .flatten()
                    .map(|via| format!("{via:?}"))
            },
        );
    }

    #[test]
    fn contact_lists() {
        let v = b"\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33, <sip:b@c>;expires=60, sip:d@e;expires=280297596632815";
        let got: Vec<_> = List::new(v, contact_item).collect();
        assert_eq!(got.len(), 3);
        match got[0] {
            Some(Contact::Addr { addr, q, expires }) => {
                assert_eq!(addr.uri, b"sip:jdrosen@example.com");
                assert_eq!(q, Some(&b"0.33"[..]));
                assert_eq!(expires, None);
                assert_eq!(addr.param(b"secondparam"), Some(&b""[..]));
            }
            _ => panic!(),
        }
        assert!(matches!(
            got[1],
            Some(Contact::Addr {
                expires: Some(60),
                ..
            })
        ));
        assert!(matches!(got[2], Some(Contact::Addr { expires: None, .. })));
        let star: Vec<_> = List::new(b" * ", contact_item).collect();
        assert_eq!(star, vec![Some(Contact::Star)]);
        let bad: Vec<_> = List::new(b"<sip:a@b>,", contact_item).collect();
        assert_eq!(bad.last(), Some(&None));
    }

    #[test]
    fn cseq_forms() {
        assert_eq!(
            cseq(b"0009\r\n  INVITE"),
            Some(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert_eq!(cseq(b"2147483647 ACK").map(|c| c.seq), Some(2147483647));
        for bad in [
            "2147483648 ACK",
            "36893488147419103232 REGISTER",
            "INVITE",
            "1",
            "1INVITE",
            "1 INVITE x",
            "-1 BYE",
        ] {
            assert!(cseq(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn uris() {
        let u = parse_uri(b"sip:alice:secret@example.com:5070;transport=udp;lr?subject=x").unwrap();
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.host, b"example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params, b";transport=udp;lr");
        let u = parse_uri(b"SIPS:[2001:db8::1]:5061").unwrap();
        assert_eq!(u.scheme, b"SIPS");
        assert_eq!(u.host, b"[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        let u = parse_uri(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, b"example.com");
        let u = parse_uri(b"tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(u.user, Some(&b"+1-201-555-0123"[..]));
        assert_eq!(u.params, b";phone-context=x");
        for bad in [
            "http://x",
            "sip:",
            "sip:@host",
            "sip:host:99999",
            "sip:[::1",
            "sip:host junk",
            "nocolon",
        ] {
            assert!(parse_uri(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
