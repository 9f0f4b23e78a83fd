//! The one-pass parser: start line, header index, validation of the
//! mandatory headers, body slicing; and stream framing.

use super::header::{Entry, Index, Kind, classify, classify_at};
use super::lex::{
    Cur, all_bytes, eq_ic, eq_lit, find, find_byte, is_token, parse_dec, parse_u32, rfind,
    scheme_len, swar_eq, token_run, trim, uri_run,
};
use super::typed::{self, CSeq, Contact, List, NameAddr, Via};
use super::{MAX_MESSAGE, Method, ParseError, Status};

/// Request-Line or Status-Line (RFC 3261 §7.1, §7.2).
#[derive(Debug, Clone, Copy)]
enum Start<'a> {
    Request { method: Method<'a>, uri: &'a [u8] },
    Response { status: u16, reason: &'a [u8] },
}

/// A parsed SIP message borrowing the caller's buffer.
///
/// Holds the header index inline (about 1.3 KiB) and the already-validated
/// typed values of the mandatory headers, so the hot accessors
/// ([`Message::top_via`], [`Message::call_id`], [`Message::cseq`],
/// [`Message::from`], [`Message::to`]) cost nothing after [`parse`].
#[derive(Clone)]
pub struct Message<'a> {
    /// The message: start line to the end of the body.
    buf: &'a [u8],
    start: Start<'a>,
    index: Index,
    body: &'a [u8],
    top_via: Via<'a>,
    from: NameAddr<'a>,
    to: NameAddr<'a>,
    call_id: &'a [u8],
    cseq: CSeq<'a>,
    content_length: Option<u32>,
    max_forwards: Option<u32>,
    expires: Option<u32>,
    min_expires: Option<u32>,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut d = f.debug_struct("Message");
        match self.start {
            Start::Request { method, uri } => d.field("method", &method).field("uri", &s(uri)),
            Start::Response { status, reason } => {
                d.field("status", &status).field("reason", &s(reason))
            }
        };
        let headers: Vec<(String, String)> =
            self.all_headers().map(|(n, v)| (s(n), s(v))).collect();
        d.field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Result of scanning the start line and header lines.
struct Head<'a, 'i> {
    msg: &'a [u8],
    start: Start<'a>,
    index: &'i Index,
    /// Offset of the body in `msg` (just after the blank line).
    body_start: usize,
}

/// Offset of the first byte that is not part of leading CRLFs (RFC 3261
/// §7.5: CRLFs before the start line are ignored; keep-alives, RFC 5626 §3.5.1).
fn skip_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Loads 8 bytes at `at` (caller guarantees `at + 8 <= b.len()`).
#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Position of the first line feed at or after `from` ([`find_byte`]: 16
/// bytes per vector step, no per-call setup; a header line is a few dozen
/// bytes, so that matters more than throughput).
#[inline]
fn find_lf(msg: &[u8], from: usize) -> Option<usize> {
    find_byte(b'\n', msg.get(from..)?).map(|p| from + p)
}

/// Position of the first `:` or LF at or after `from`, 8 bytes per step
/// (SWAR; the lowest flagged byte of either search is a true match). Header
/// names are short, so the first step nearly always hits.
#[inline]
fn find_colon_or_lf(msg: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= msg.len() {
        let w = load8(msg, i);
        let t = swar_eq(w, b':') | swar_eq(w, b'\n');
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = msg.get(i..)?;
    rest.iter()
        .position(|&b| b == b':' || b == b'\n')
        .map(|p| i + p)
}

/// End of the line whose LF is at `lf` and which starts at `pos`, without
/// its CR. Bare LF line ends are accepted (robustness principle);
/// everything written by [`super::Builder`] uses CRLF.
#[inline(always)]
fn strip_cr(msg: &[u8], pos: usize, lf: usize) -> usize {
    if lf > pos && msg[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    }
}

/// SP or HTAB.
#[inline]
fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `SIP/2.0`, case-insensitive (RFC 3261 §7.1); `BadVersion` for another
/// `SIP/x.y`, `BadStartLine` for anything else.
fn version(v: &[u8]) -> Result<(), ParseError> {
    if eq_lit(v, b"sip/2.0") {
        Ok(())
    } else if v.len() > 4 && eq_lit(&v[..4], b"sip/") {
        Err(ParseError::BadVersion)
    } else {
        Err(ParseError::BadStartLine)
    }
}

/// Parses a start line (without its line end).
fn start_line(line: &[u8]) -> Result<Start<'_>, ParseError> {
    if line.len() >= 4 && eq_lit(&line[..4], b"sip/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = find(b' ', line).ok_or(ParseError::BadStartLine)?;
        version(&line[..sp])?;
        let rest = &line[sp + 1..];
        let code = rest.get(..3).ok_or(ParseError::BadStatus)?;
        let status = parse_dec(code, 699)
            .filter(|&c| c >= 100)
            .ok_or(ParseError::BadStatus)? as u16;
        let reason = match rest.get(3) {
            None => &rest[3..],
            Some(b' ') => &rest[4..],
            Some(_) => return Err(ParseError::BadStatus),
        };
        if reason.iter().any(|&b| b < b' ' && b != b'\t') {
            return Err(ParseError::BadStartLine);
        }
        return Ok(Start::Response { status, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp1 = find(b' ', line).ok_or(ParseError::BadStartLine)?;
    let sp2 = rfind(b' ', line).ok_or(ParseError::BadStartLine)?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(ParseError::BadMethod);
    }
    if sp2 == sp1 {
        return Err(ParseError::BadStartLine);
    }
    version(&line[sp2 + 1..])?;
    let uri = &line[sp1 + 1..sp2];
    if !request_uri_ok(uri) {
        return Err(ParseError::BadUri);
    }
    Ok(Start::Request {
        method: Method::from_bytes(method),
        uri,
    })
}

/// Request-URI check (RFC 3261 §7.1, §19.1.1): `scheme ":" ...` with no
/// whitespace or controls (RFC 4475 "lwsruri", "lwsstart"), not in `<>`
/// ("ltgtruri"), and for sip/sips no `?headers` part after the host
/// ("escruri": §19.1.1's table forbids headers in a Request-URI).
fn request_uri_ok(uri: &[u8]) -> bool {
    let Some(colon) = scheme_len(uri) else {
        return false;
    };
    if colon + 1 == uri.len() {
        return false;
    }
    // Usual case, one vector scan: URI characters only and no `?` at all.
    // Non-short-circuit `&`: branch-free, so the check vectorizes.
    if all_bytes(uri, |b| {
        (b.wrapping_sub(0x21) < 0x5e) & (b != b'<') & (b != b'>') & (b != b'"') & (b != b'?')
    }) {
        return true;
    }
    if uri_run(uri) != uri.len() {
        return false;
    }
    // A `?` is fine in the user part (RFC 4475 "intmeth"); `@` appears at
    // most once in a SIP URI, so what follows the last one is host, params
    // and headers, where `?` starts the forbidden headers part.
    let after_at = rfind(b'@', uri).map_or(uri, |a| &uri[a + 1..]);
    let scheme = &uri[..colon];
    !(find(b'?', after_at).is_some() && (eq_ic(scheme, b"sip") || eq_ic(scheme, b"sips")))
}

/// A byte allowed in a Call-ID (RFC 3261 §25.1 `callid = word ["@" word]`,
/// read loosely): anything but controls, space and DEL.
#[inline(always)]
fn call_id_byte(b: u8) -> bool {
    // Non-short-circuit `&`: branch-free, so the check vectorizes.
    (b > 0x20) & (b != 0x7f)
}

/// Scans the start line and every header line of the message at the start
/// of `msg` (which must not begin with CRLF). One pass: for each line a SWAR
/// step finds the colon (names are short), the name is classified by
/// (length, first byte) and one masked compare, and a 16-byte vector step
/// finds the line feed from the value on, so no byte is scanned twice.
/// Fills `index` (which must be empty) and returns the start line and the
/// body offset.
///
/// Errors are checked in the order of a line-by-line reading: a line
/// without its LF is `Truncated` (so [`frame`] says `Partial`) before it
/// can be a `BadHeader`.
fn head<'a>(msg: &'a [u8], index: &mut Index) -> Result<(Start<'a>, usize), ParseError> {
    let lf = find_lf(msg, 0).ok_or(ParseError::Truncated)?;
    let start = start_line(&msg[..strip_cr(msg, 0, lf)])?;
    let mut pos = lf + 1;
    loop {
        let first = *msg.get(pos).ok_or(ParseError::Truncated)?;
        match first {
            // The empty line that ends the headers (CRLF or bare LF).
            b'\n' => return Ok((start, pos + 1)),
            b'\r' if msg.get(pos + 1) == Some(&b'\n') => return Ok((start, pos + 2)),
            b' ' | b'\t' => {
                // Folded continuation (RFC 3261 §7.3.1): extend the previous value.
                let lf = find_lf(msg, pos).ok_or(ParseError::Truncated)?;
                let line = &msg[pos..strip_cr(msg, pos, lf)];
                let n = index.len;
                let prev = n
                    .checked_sub(1)
                    .and_then(|i| index.entries.get_mut(i))
                    .ok_or(ParseError::BadHeader)?;
                let t = trim(line);
                if !t.is_empty() {
                    let t_start = pos + (t.as_ptr() as usize - line.as_ptr() as usize);
                    if prev.value_start == prev.value_end {
                        prev.value_start = t_start as u16;
                    }
                    prev.value_end = (t_start + t.len()) as u16;
                }
                pos = lf + 1;
            }
            _ => {
                // header-name HCOLON header-value; HCOLON = *( SP / HTAB ) ":" SWS.
                // A token never contains `:`, so the first colon ends the name
                // (and its optional trailing whitespace).
                let colon = find_colon_or_lf(msg, pos).ok_or(ParseError::Truncated)?;
                if msg[colon] == b'\n' {
                    return Err(ParseError::BadHeader);
                }
                let mut i = colon + 1;
                while i < msg.len() && is_wsp(msg[i]) {
                    i += 1;
                }
                // No LF between the colon and `i` (only SP/HTAB), so the
                // line's LF is the first one from `i`.
                let lf = find_lf(msg, i).ok_or(ParseError::Truncated)?;
                let end = strip_cr(msg, pos, lf);
                let i = i.min(end);
                let mut name_end = colon;
                while name_end > pos && is_wsp(msg[name_end - 1]) {
                    name_end -= 1;
                }
                let name = &msg[pos..name_end];
                // `classify` compares exactly, so a known name is a token;
                // only unknown names need the byte-by-byte token check.
                let kind = classify_at(msg, pos, name_end);
                if kind == Kind::Other && (name.is_empty() || token_run(name) != name.len()) {
                    return Err(ParseError::BadHeader);
                }
                let mut v_end = end;
                while v_end > i && is_wsp(msg[v_end - 1]) {
                    v_end -= 1;
                }
                let e = Entry {
                    kind,
                    name_start: pos as u16,
                    value_start: i as u16,
                    value_end: v_end as u16,
                };
                if !index.push(e) {
                    return Err(ParseError::TooManyHeaders);
                }
                pos = lf + 1;
            }
        }
    }
}

/// Parses one whole SIP message (a UDP datagram, RFC 3261 §18.3).
///
/// Checks the start line, builds the header index, requires and validates
/// the topmost Via, From, To, Call-ID and CSeq (RFC 3261 §8.1.1; Max-Forwards
/// is optional on receipt, §16.3 step 3, as RFC 4475 "inv2543" needs), checks
/// the CSeq method against the request method (§8.1.1.5), and slices the body
/// by Content-Length. The other Via elements, Contact, Route and
/// Record-Route are validated lazily: see [`Message::validate_all`]. Bytes after the body
/// are ignored (§18.3; RFC 4475 "dblreq"); without Content-Length the body is
/// the rest of the datagram.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    if buf.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let msg = &buf[skip_crlf(buf)..];
    if msg.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut m = Message {
        buf: msg,
        start: Start::Response {
            status: 0,
            reason: &[],
        },
        index: Index::new(),
        body: &[],
        top_via: Via {
            transport: &[],
            host: &[],
            port: None,
            branch: None,
            received: None,
            rport: None,
            raw: &[],
        },
        from: NameAddr {
            display: None,
            uri: &[],
            tag: None,
            params: &[],
            raw: &[],
        },
        to: NameAddr {
            display: None,
            uri: &[],
            tag: None,
            params: &[],
            raw: &[],
        },
        call_id: &[],
        cseq: CSeq {
            seq: 0,
            method: Method::Other(&[]),
        },
        content_length: None,
        max_forwards: None,
        expires: None,
        min_expires: None,
    };
    // The index is filled in place: no copy of it between the passes.
    let (start, body_start) = head(msg, &mut m.index)?;
    let t = validate(&Head {
        msg,
        start,
        index: &m.index,
        body_start,
    })?;
    m.start = start;
    m.buf = &msg[..t.end];
    m.body = &msg[body_start..t.end];
    m.top_via = t.top_via;
    m.from = t.from;
    m.to = t.to;
    m.call_id = t.call_id;
    m.cseq = t.cseq;
    m.content_length = t.content_length;
    m.max_forwards = t.max_forwards;
    m.expires = t.expires;
    m.min_expires = t.min_expires;
    Ok(m)
}

/// The typed values [`validate`] produces.
struct Typed<'a> {
    top_via: Via<'a>,
    from: NameAddr<'a>,
    to: NameAddr<'a>,
    call_id: &'a [u8],
    cseq: CSeq<'a>,
    content_length: Option<u32>,
    max_forwards: Option<u32>,
    expires: Option<u32>,
    min_expires: Option<u32>,
    /// End of the message (body included) in `msg`.
    end: usize,
}

fn value<'a>(msg: &'a [u8], e: &Entry) -> &'a [u8] {
    msg.get(e.value_start as usize..e.value_end as usize)
        .unwrap_or(&[])
}

/// The single value of a header that may appear once.
fn single<'a>(h: &Head<'a, '_>, kind: Kind) -> Result<Option<&'a [u8]>, ParseError> {
    let Some(first) = h.index.first(kind) else {
        return Ok(None);
    };
    if h.index.count[kind as usize] > 1 {
        return Err(ParseError::DuplicateHeader(kind.name()));
    }
    Ok(Some(value(h.msg, first)))
}

fn required<'a>(h: &Head<'a, '_>, kind: Kind) -> Result<&'a [u8], ParseError> {
    single(h, kind)?.ok_or(ParseError::MissingHeader(kind.name()))
}

/// Each comma-separated element of every `kind` line must parse with `f`.
fn check_list<'a, T>(
    msg: &'a [u8],
    index: &Index,
    kind: Kind,
    f: fn(&mut Cur<'a>) -> Option<T>,
) -> Result<(), ParseError> {
    let from = index.first[kind as usize] as usize;
    for e in index.entries().get(from..).unwrap_or(&[]) {
        if e.kind != kind {
            continue;
        }
        for item in List::new(value(msg, e), f) {
            item.ok_or(ParseError::BadHeaderValue(kind.name()))?;
        }
    }
    Ok(())
}

fn number(h: &Head<'_, '_>, kind: Kind, max: u64) -> Result<Option<u32>, ParseError> {
    match single(h, kind)? {
        None => Ok(None),
        Some(v) => parse_dec(trim(v), max)
            .map(|n| Some(n as u32))
            .ok_or(ParseError::BadHeaderValue(kind.name())),
    }
}

/// The topmost via-parm: the first element of the first Via line. RFC 3261
/// §8.2.6.2 / §18.2.1 need only this one to answer a request or match a
/// response; the others are checked by [`Message::validate_all`].
fn top_via<'a>(h: &Head<'a, '_>) -> Result<Via<'a>, ParseError> {
    let e = h
        .index
        .first(Kind::Via)
        .ok_or(ParseError::MissingHeader("Via"))?;
    let v = value(h.msg, e);
    if let Some(via) = typed::fast_via(v) {
        return Ok(via);
    }
    match List::new(v, typed::via_parm).next() {
        Some(Some(v)) => Ok(v),
        _ => Err(ParseError::BadHeaderValue("Via")),
    }
}

fn validate<'a>(h: &Head<'a, '_>) -> Result<Typed<'a>, ParseError> {
    let top_via = top_via(h)?;
    let from = typed::single_name_addr(required(h, Kind::From)?)
        .ok_or(ParseError::BadHeaderValue("From"))?;
    let to =
        typed::single_name_addr(required(h, Kind::To)?).ok_or(ParseError::BadHeaderValue("To"))?;
    let call_id = trim(required(h, Kind::CallId)?);
    if call_id.is_empty() || !all_bytes(call_id, call_id_byte) {
        return Err(ParseError::BadHeaderValue("Call-ID"));
    }
    let cseq = typed::cseq(required(h, Kind::CSeq)?).ok_or(ParseError::BadHeaderValue("CSeq"))?;
    if let Start::Request { method, .. } = h.start
        && method.as_bytes() != cseq.method.as_bytes()
    {
        return Err(ParseError::CSeqMismatch);
    }
    // RFC 3261 §20.22: Max-Forwards is an integer in 0..=255.
    let max_forwards = number(h, Kind::MaxForwards, 255)?;
    // RFC 3261 §20.19, §20.23: delta-seconds up to 2**32-1.
    let expires = number(h, Kind::Expires, u64::from(u32::MAX))?;
    let min_expires = number(h, Kind::MinExpires, u64::from(u32::MAX))?;
    let available = h.msg.len() - h.body_start;
    let content_length = match single(h, Kind::ContentLength)? {
        None => None,
        Some(v) => Some(parse_u32(trim(v)).ok_or(ParseError::BadContentLength)?),
    };
    let body_len = match content_length {
        Some(cl) if cl as usize > available => {
            return Err(ParseError::BodyTruncated {
                declared: cl,
                available: available as u32,
            });
        }
        Some(cl) => cl as usize,
        None => available,
    };
    Ok(Typed {
        top_via,
        from,
        to,
        call_id,
        cseq,
        content_length,
        max_forwards,
        expires,
        min_expires,
        end: h.body_start + body_len,
    })
}

/// Stream framing (TCP, RFC 3261 §18.3): whether `buf` starts with one whole
/// message. Leading CRLFs (keep-alives) are counted in the returned length.
/// Content-Length is mandatory on streams; only the header lines are checked
/// here, so call [`parse`] on the framed bytes to validate them.
pub fn frame(buf: &[u8]) -> Result<Status, ParseError> {
    let skip = skip_crlf(buf);
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Ok(Status::Partial);
    }
    let window = &rest[..rest.len().min(MAX_MESSAGE)];
    let mut index = Index::new();
    let h = match head(window, &mut index) {
        Ok((start, body_start)) => Head {
            msg: window,
            start,
            index: &index,
            body_start,
        },
        Err(ParseError::Truncated) if window.len() < MAX_MESSAGE => return Ok(Status::Partial),
        Err(ParseError::Truncated) => return Err(ParseError::TooLarge),
        Err(e) => return Err(e),
    };
    let cl = match single(&h, Kind::ContentLength)? {
        None => return Err(ParseError::MissingHeader("Content-Length")),
        Some(v) => parse_u32(trim(v)).ok_or(ParseError::BadContentLength)?,
    };
    let total = h.body_start + cl as usize;
    if total > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    if rest.len() >= total {
        Ok(Status::Complete(skip + total))
    } else {
        Ok(Status::Partial)
    }
}

impl<'a> Message<'a> {
    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method (requests only).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written (requests only).
    pub fn uri(&self) -> Option<&'a [u8]> {
        match self.start {
            Start::Request { uri, .. } => Some(uri),
            Start::Response { .. } => None,
        }
    }

    /// The status code (responses only).
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { status, .. } => Some(status),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase (responses only), possibly empty (RFC 4475 "noreason").
    pub fn reason(&self) -> Option<&'a [u8]> {
        match self.start {
            Start::Response { reason, .. } => Some(reason),
            Start::Request { .. } => None,
        }
    }

    fn value(&self, e: &Entry) -> &'a [u8] {
        value(self.buf, e)
    }

    fn name(&self, e: &Entry) -> &'a [u8] {
        // The name is the token run at `name_start` (not stored: a smaller
        // index is cheaper to initialize and to return).
        let rest = self.buf.get(e.name_start as usize..).unwrap_or(&[]);
        &rest[..token_run(rest)]
    }

    fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a [u8]> + '_ {
        let from = self.index.first[kind as usize] as usize;
        self.index
            .entries()
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .filter(move |e| e.kind == kind)
            .map(|e| self.value(e))
    }

    fn first(&self, kind: Kind) -> Option<&'a [u8]> {
        self.index.first(kind).map(|e| self.value(e))
    }

    /// The first value of header `name` (case-insensitive; a long name also
    /// finds its compact form and vice versa, RFC 3261 §7.3.3). The value is
    /// trimmed; a folded value keeps its inner CRLF + whitespace.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers(name).next()
    }

    /// Every value of header `name`, one per header line, in order (values
    /// joined by commas on one line are not split).
    pub fn headers(&self, name: &[u8]) -> impl Iterator<Item = &'a [u8]> {
        // Wire names are tokens; a non-token `name` matches nothing (and must
        // not reach `classify`, whose fast compare assumes tokens).
        let kind = if name.iter().all(|&b| is_token(b)) {
            classify(name)
        } else {
            Kind::Other
        };
        self.index
            .entries()
            .iter()
            .filter(move |e| e.kind == kind && (kind != Kind::Other || eq_ic(self.name(e), name)))
            .map(|e| self.value(e))
    }

    /// Every header line as (name as written, value), in order.
    pub fn all_headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.index
            .entries()
            .iter()
            .map(|e| (self.name(e), self.value(e)))
    }

    /// Every Via value in order, comma-joined ones split (RFC 3261 §7.3.1).
    pub fn vias(&self) -> impl Iterator<Item = Via<'a>> {
        self.of_kind(Kind::Via)
            .flat_map(|v| List::new(v, typed::via_parm).map_while(|x| x))
    }

    /// The checks [`parse`] leaves to the accessors, done now: every
    /// via-parm of every Via line (not only the topmost), and every element
    /// of Contact, Route and Record-Route (RFC 3261 §25.1 grammar; RFC 4475
    /// "badinv01", "quotbal", "baddn", "regbadct", "badaspec").
    ///
    /// Why lazy: a UAC or UAS needs only the top Via, From, To, Call-ID and
    /// CSeq to act on a message (§8.1.1, §8.2); validating every address
    /// header on every message cost about a fifth of [`parse`]. The
    /// accessors ([`Message::vias`], [`Message::contacts`],
    /// [`Message::routes`], [`Message::record_routes`]) stop at the first
    /// malformed element, so callers see it as missing. Call this where a
    /// malformed element must be rejected outright, e.g. before answering a
    /// REGISTER (§10.3) or with `400 Bad Request` (§8.2.2).
    pub fn validate_all(&self) -> Result<(), ParseError> {
        check_list(self.buf, &self.index, Kind::Via, typed::via_parm)?;
        check_list(self.buf, &self.index, Kind::Contact, typed::contact_item)?;
        check_list(self.buf, &self.index, Kind::Route, typed::name_addr)?;
        check_list(self.buf, &self.index, Kind::RecordRoute, typed::name_addr)?;
        Ok(())
    }

    /// The topmost Via (validated by [`parse`]).
    pub fn top_via(&self) -> Option<Via<'a>> {
        Some(self.top_via)
    }

    /// The From header (validated by [`parse`]).
    pub fn from(&self) -> Option<NameAddr<'a>> {
        Some(self.from)
    }

    /// The To header (validated by [`parse`]).
    pub fn to(&self) -> Option<NameAddr<'a>> {
        Some(self.to)
    }

    /// The Call-ID, trimmed.
    pub fn call_id(&self) -> Option<&'a [u8]> {
        Some(self.call_id)
    }

    /// The CSeq.
    pub fn cseq(&self) -> Option<CSeq<'a>> {
        Some(self.cseq)
    }

    /// Every Contact value in order, comma-joined ones split; `*` is
    /// [`Contact::Star`].
    pub fn contacts(&self) -> impl Iterator<Item = Contact<'a>> {
        self.of_kind(Kind::Contact)
            .flat_map(|v| List::new(v, typed::contact_item).map_while(|x| x))
    }

    /// Every Record-Route value in order, comma-joined ones split.
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'a>> {
        self.of_kind(Kind::RecordRoute)
            .flat_map(|v| List::new(v, typed::name_addr).map_while(|x| x))
    }

    /// Every Route value in order, comma-joined ones split.
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'a>> {
        self.of_kind(Kind::Route)
            .flat_map(|v| List::new(v, typed::name_addr).map_while(|x| x))
    }

    /// Max-Forwards (0..=255).
    pub fn max_forwards(&self) -> Option<u32> {
        self.max_forwards
    }

    /// The Expires header (not the Contact parameter).
    pub fn expires(&self) -> Option<u32> {
        self.expires
    }

    /// Min-Expires (in a 423 response, RFC 3261 §10.2.8).
    pub fn min_expires(&self) -> Option<u32> {
        self.min_expires
    }

    /// Content-Length as written (`None` when absent; the body then runs to
    /// the end of the datagram).
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// Content-Type value.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.first(Kind::ContentType)
    }

    /// The first WWW-Authenticate value, raw (the `auth` module parses it).
    pub fn www_authenticate(&self) -> Option<&'a [u8]> {
        self.first(Kind::WwwAuthenticate)
    }

    /// The first Proxy-Authenticate value, raw.
    pub fn proxy_authenticate(&self) -> Option<&'a [u8]> {
        self.first(Kind::ProxyAuthenticate)
    }

    /// The first Authorization value, raw.
    pub fn authorization(&self) -> Option<&'a [u8]> {
        self.first(Kind::Authorization)
    }

    /// The first Proxy-Authorization value, raw.
    pub fn proxy_authorization(&self) -> Option<&'a [u8]> {
        self.first(Kind::ProxyAuthorization)
    }

    /// The body, sliced by Content-Length.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The whole message: start line to the end of the body (leading CRLFs
    /// and bytes after the body excluded).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Values of every header line of `kind`, for the builder.
    pub(crate) fn values_of(&self, kind: Kind) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.of_kind(kind)
    }

    /// First value of `kind`, for the builder.
    pub(crate) fn first_of(&self, kind: Kind) -> Option<&'a [u8]> {
        self.first(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SWAR colon/LF search and the 16-byte LF search agree with byte
    /// loops at every start and match offset, including bytes that differ
    /// from `:` or LF in one bit, high bytes, and a second match after the
    /// first (the SWAR borrow can flag bytes above a true match).
    #[test]
    fn scans_match_byte_loops() {
        for len in 0..40 {
            for at in 0..=len {
                for fill in [
                    b'a', b';', b'\x3b', b'\xba', b'\x1a', b'z', b'\x0b', b'\x8a',
                ] {
                    for second in [None, Some(b':'), Some(b'\n')] {
                        let mut v = vec![fill; len];
                        if at < len {
                            v[at] = if at % 2 == 0 { b':' } else { b'\n' };
                        }
                        if let Some(s) = second
                            && at + 1 < len
                        {
                            v[at + 1] = s;
                        }
                        for from in [0, 1, 3, 8, 9].into_iter().filter(|&f| f <= len) {
                            let want_lf = v[from..].iter().position(|&b| b == b'\n');
                            assert_eq!(
                                find_lf(&v, from),
                                want_lf.map(|p| p + from),
                                "lf len {len} at {at} from {from} fill {fill}"
                            );
                            let want = v[from..].iter().position(|&b| b == b':' || b == b'\n');
                            assert_eq!(
                                find_colon_or_lf(&v, from),
                                want.map(|p| p + from),
                                "colon len {len} at {at} from {from} fill {fill}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(find_lf(b"ab", 3), None);
        assert_eq!(find_colon_or_lf(b"ab", 3), None);
    }

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Bob <sip:bob@example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.10:5060>;expires=3600\r\n\
Expires: 7200\r\n\
Content-Length: 0\r\n\
\r\n";

    #[test]
    fn register_accessors() {
        let m = parse(REGISTER).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.uri(), Some(&b"sip:example.com"[..]));
        assert_eq!(m.status(), None);
        let v = m.top_via().unwrap();
        assert_eq!(v.branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.rport, Some(None));
        assert_eq!(m.from().unwrap().tag, Some(&b"456248"[..]));
        assert_eq!(m.to().unwrap().tag, None);
        assert_eq!(m.to().unwrap().display, Some(&b"Bob"[..]));
        assert_eq!(m.call_id(), Some(&b"843817637684230@998sdasdh09"[..]));
        assert_eq!(
            m.cseq(),
            Some(CSeq {
                seq: 1826,
                method: Method::Register
            })
        );
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.expires(), Some(7200));
        assert_eq!(m.content_length(), Some(0));
        assert_eq!(m.body(), b"");
        let c: Vec<_> = m.contacts().collect();
        assert!(matches!(
            c[..],
            [Contact::Addr {
                expires: Some(3600),
                ..
            }]
        ));
        assert_eq!(m.header(b"call-id"), m.call_id());
        assert_eq!(m.header(b"i"), m.call_id());
        assert_eq!(m.header(b"X-Nope"), None);
        assert_eq!(m.as_bytes(), REGISTER);
        assert_eq!(m.all_headers().count(), 9);
    }

    #[test]
    fn frame_stream() {
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(REGISTER);
        two.extend_from_slice(REGISTER);
        assert_eq!(frame(&two), Ok(Status::Complete(4 + REGISTER.len())));
        for cut in 0..REGISTER.len() {
            assert_eq!(frame(&REGISTER[..cut]), Ok(Status::Partial), "cut {cut}");
        }
        let body = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(frame(body), Ok(Status::Partial));
        let body = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello!";
        assert_eq!(frame(body), Ok(Status::Complete(body.len() - 1)));
        let nocl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            frame(nocl),
            Err(ParseError::MissingHeader("Content-Length"))
        );
        assert_eq!(frame(b"garbage\r\n"), Err(ParseError::BadStartLine));
    }
}
