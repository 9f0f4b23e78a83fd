//! Lexical helpers for the RFC 3261 §25.1 grammar: character classes, LWS,
//! quoted strings, numbers. Every function is total: out-of-range indices
//! are clamped, nothing panics.

/// Position of `x` in a short slice. For the few dozen bytes of a URI or a
/// parameter, a plain loop beats `memchr`, whose per-call dispatch and
/// setup cost more than the scan (measured with callgrind).
#[inline]
pub(crate) fn find(x: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == x)
}

/// Last position of `x` in a short slice.
#[inline]
pub(crate) fn rfind(x: u8, b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == x)
}

/// Position of `x` or `y` in a short slice.
#[inline]
pub(crate) fn find2(x: u8, y: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == x || c == y)
}

/// Builds a 256-entry membership table at compile time.
const fn table(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if alnum && b.is_ascii_alphanumeric() {
            t[c] = true;
        }
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// RFC 3261 §25.1: `token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")`.
static TOKEN: [bool; 256] = table(b"-.!%*_+`'~", true);

/// Characters of a `gen-value` or `host` that is not a quoted string:
/// token characters plus `:` `[` `]` for IPv6 references (RFC 3261 §25.1
/// `gen-value = token / host / quoted-string`).
static GEN_VALUE: [bool; 256] = table(b"-.!%*_+`'~:[]", true);

/// Characters of `hostname` / `IPv4address` (RFC 3261 §25.1); `_` accepted
/// because real DNS names use it.
static HOST: [bool; 256] = table(b"-._", true);

/// Bytes allowed in a URI on the wire (RFC 3986 / RFC 3261 §25.1 reserved,
/// unreserved and `%`): visible ASCII except `<`, `>`, `"`.
static URI_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x21;
    while c < 0x7f {
        t[c] = !matches!(c as u8, b'<' | b'>' | b'"');
        c += 1;
    }
    t
};

/// `ALPHA / DIGIT / "+" / "-" / "."` (URI scheme characters after the first).
static SCHEME: [bool; 256] = table(b"+-.", true);

/// Any byte but `"` and `\\` (the scan inside a quoted string).
static NOT_QUOTE_OR_ESCAPE: [bool; 256] = {
    let mut t = [true; 256];
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

static LWS: [bool; 256] = table(b" \t\r\n", false);

/// Length of the run of bytes in class `t` at the start of `b`.
///
/// Eight bytes per step: the eight table lookups are packed into one byte
/// without branches (bit `k` set when byte `k` is in the class), so the
/// step that leaves the class gives the exact end with one
/// `trailing_zeros`, and a short run (a parameter name, a tag) costs one
/// step instead of a step plus a byte loop. Only the last few bytes of `b`
/// (fewer than eight) take the byte loop.
#[inline]
pub(crate) fn run(t: &[bool; 256], b: &[u8]) -> usize {
    let mut i = 0;
    for c in b.chunks_exact(8) {
        let m = u8::from(t[c[0] as usize])
            | u8::from(t[c[1] as usize]) << 1
            | u8::from(t[c[2] as usize]) << 2
            | u8::from(t[c[3] as usize]) << 3
            | u8::from(t[c[4] as usize]) << 4
            | u8::from(t[c[5] as usize]) << 5
            | u8::from(t[c[6] as usize]) << 6
            | u8::from(t[c[7] as usize]) << 7;
        if m != u8::MAX {
            return i + (!m).trailing_zeros() as usize;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or(&[]);
    i + rest
        .iter()
        .position(|&c| !t[c as usize])
        .unwrap_or(rest.len())
}

/// Length of the `token` run at the start of `b`.
#[inline]
pub(crate) fn token_run(b: &[u8]) -> usize {
    run(&TOKEN, b)
}

/// Length of the `gen-value` (unquoted) run at the start of `b`.
#[inline]
pub(crate) fn gen_value_run(b: &[u8]) -> usize {
    run(&GEN_VALUE, b)
}

/// Length of the `hostname` / `IPv4address` run at the start of `b`.
#[inline]
pub(crate) fn run_host(b: &[u8]) -> usize {
    run(&HOST, b)
}

/// Length of the URI scheme at the start of `u` when it is followed by `:`
/// (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`, RFC 3261 §25.1). Scans only
/// the scheme.
#[inline]
pub(crate) fn scheme_len(u: &[u8]) -> Option<usize> {
    let n = u
        .iter()
        .position(|&b| !SCHEME[b as usize])
        .unwrap_or(u.len());
    let ok = n > 0 && u[0].is_ascii_alphabetic() && u.get(n) == Some(&b':');
    if ok { Some(n) } else { None }
}

/// Length of the run of URI characters at the start of `b`.
#[inline]
pub(crate) fn uri_run(b: &[u8]) -> usize {
    run(&URI_CHAR, b)
}

/// `scheme ":"` then only URI characters.
#[inline]
pub(crate) fn uri_shape_ok(u: &[u8]) -> Option<usize> {
    let colon = scheme_len(u)?;
    if uri_run(u) == u.len() {
        Some(colon)
    } else {
        None
    }
}

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whitespace inside a header value. Folded lines keep their CRLF inside the
/// value slice (the scanner guarantees a CRLF there is followed by SP/HTAB),
/// so CR and LF count as LWS (RFC 3261 §25.1 `LWS = [*WSP CRLF] 1*WSP`).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    LWS[b as usize]
}

/// `b` without leading and trailing LWS.
#[inline]
pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let mut s = 0;
    let mut e = b.len();
    while s < e && is_lws(b[s]) {
        s += 1;
    }
    while e > s && is_lws(b[e - 1]) {
        e -= 1;
    }
    &b[s..e]
}

/// ASCII case-insensitive equality.
#[inline]
pub(crate) fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `a` equals the lower-case literal `lower`, ignoring ASCII case: the same
/// answer as [`eq_ic`] for the literals this is used with, which hold only
/// `a`-`z`, digits and `-` `.` `/` (checked in debug builds). Setting bit 5
/// where `lower` has a letter maps A-Z to a-z and no other byte onto a
/// letter, so the compare is exact; a literal of up to 8 bytes is one OR
/// and one 64-bit compare instead of a byte loop.
#[inline(always)]
pub(crate) fn eq_lit(a: &[u8], lower: &[u8]) -> bool {
    debug_assert!(
        lower
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-./".contains(&c))
    );
    let n = lower.len();
    if a.len() != n {
        return false;
    }
    if n <= 8 {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(a);
        let mut l = [0u8; 8];
        l[..n].copy_from_slice(lower);
        let l = u64::from_le_bytes(l);
        (u64::from_le_bytes(x) | ((l & 0x4040_4040_4040_4040) >> 1)) == l
    } else {
        a.iter()
            .zip(lower)
            .fold(0u8, |acc, (&x, &l)| acc | ((x | ((l & 0x40) >> 1)) ^ l))
            == 0
    }
}

/// The 16-byte block of `b` at `at` (caller guarantees `at + 16 <= b.len()`).
#[inline(always)]
fn block(b: &[u8], at: usize) -> &[u8; 16] {
    <&[u8; 16]>::try_from(&b[at..at + 16]).unwrap_or(&ZERO16)
}

static ZERO16: [u8; 16] = [0; 16];

/// Whether every byte of the 16-byte block `c` satisfies `ok`: a fold that
/// does not stop early, which LLVM turns into SSE2 compares and one
/// movemask when `ok` is a few branch-free comparisons (baseline x86-64).
#[inline(always)]
fn block_all(c: &[u8; 16], ok: impl Fn(u8) -> bool + Copy) -> bool {
    c.iter().fold(0u8, |a, &x| a | u8::from(!ok(x))) == 0
}

/// `0x80` in each byte of `w` equal to `x`, possibly also in bytes above
/// the lowest match (a borrow can ripple up), never below it: the lowest
/// flagged byte is always a true match.
#[inline(always)]
pub(crate) fn swar_eq(w: u64, x: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let v = w ^ (ONES * u64::from(x));
    v.wrapping_sub(ONES) & !v & 0x8080_8080_8080_8080
}

/// Offset of the first `x` in a 16-byte block known to hold one (SWAR on
/// its two halves).
#[inline(always)]
fn first_in_block(c: &[u8; 16], x: u8) -> usize {
    let mut lo = [0u8; 8];
    lo.copy_from_slice(&c[..8]);
    let t = swar_eq(u64::from_le_bytes(lo), x);
    if t != 0 {
        return (t.trailing_zeros() / 8) as usize;
    }
    let mut hi = [0u8; 8];
    hi.copy_from_slice(&c[8..]);
    8 + (swar_eq(u64::from_le_bytes(hi), x).trailing_zeros() / 8) as usize
}

/// Position of the first `x` in `b`: 16 bytes per step with a vectorized
/// compare (see [`block_all`]), the exact byte by SWAR, and the last
/// partial step as one overlapping block. No `unsafe`, no per-call setup,
/// which is what matters for the few dozen bytes of a header line or URI.
#[inline(always)]
pub(crate) fn find_byte(x: u8, b: &[u8]) -> Option<usize> {
    let n = b.len();
    if n < 16 {
        return b.iter().position(|&c| c == x);
    }
    let mut i = 0;
    let mut blocks = b.chunks_exact(16);
    for c in &mut blocks {
        if let Ok(c) = <&[u8; 16]>::try_from(c)
            && !block_all(c, |v| v != x)
        {
            return Some(i + first_in_block(c, x));
        }
        i += 16;
    }
    if blocks.remainder().is_empty() {
        return None;
    }
    // The last 16 bytes; those before `i` hold no `x`.
    let c = block(b, n - 16);
    if block_all(c, |v| v != x) {
        None
    } else {
        Some(n - 16 + first_in_block(c, x))
    }
}

/// Whether every byte of `b` satisfies `ok`, 16 bytes per step (see
/// [`block_all`]; the last partial step is one overlapping block). For the
/// all-or-nothing checks of a Call-ID or URI this replaces the 256-entry
/// table scan, several times fewer instructions per byte. Write `ok` with
/// `&` and `|`, not `&&` and `||`: a branch in it stops the vectorization.
#[inline(always)]
pub(crate) fn all_bytes(b: &[u8], ok: impl Fn(u8) -> bool + Copy) -> bool {
    let n = b.len();
    if n < 16 {
        return b.iter().all(|&c| ok(c));
    }
    let mut blocks = b.chunks_exact(16);
    for c in &mut blocks {
        if let Ok(c) = <&[u8; 16]>::try_from(c)
            && !block_all(c, ok)
        {
            return false;
        }
    }
    blocks.remainder().is_empty() || block_all(block(b, n - 16), ok)
}

/// A byte allowed in a URI on the wire ([`uri_run`]'s class), branch-free
/// for [`all_bytes`]: visible ASCII except `<`, `>`, `"`.
#[inline(always)]
pub(crate) fn uri_byte(b: u8) -> bool {
    (b.wrapping_sub(0x21) < 0x5e) & (b != b'<') & (b != b'>') & (b != b'"')
}

/// `1*DIGIT` as a `u64`; `None` when empty, non-digit, or above `max`.
/// Leading zeros are fine (RFC 4475 "wsinv" has `Max-Forwards: 0068`).
#[inline]
pub(crate) fn parse_dec(b: &[u8], max: u64) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// `1*DIGIT` that fits in a `u32`.
#[inline]
pub(crate) fn parse_u32(b: &[u8]) -> Option<u32> {
    parse_dec(b, u64::from(u32::MAX)).map(|v| v as u32)
}

/// `1*DIGIT` that fits in a `u16` (ports).
#[inline]
pub(crate) fn parse_u16(b: &[u8]) -> Option<u16> {
    parse_dec(b, u64::from(u16::MAX)).map(|v| v as u16)
}

/// A cursor over one header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cur<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Cur<'a> {
    #[inline]
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cur { b, i: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Skips LWS; returns whether any was skipped.
    #[inline]
    pub(crate) fn lws(&mut self) -> bool {
        !self.take(is_lws).is_empty()
    }

    /// Takes the longest run of bytes in `class` (possibly empty). Generic so
    /// each class test inlines into a tight loop.
    #[inline]
    pub(crate) fn take(&mut self, class: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.b.get(self.i..).unwrap_or(&[]);
        let n = rest.iter().position(|&c| !class(c)).unwrap_or(rest.len());
        self.i += n;
        &rest[..n]
    }

    /// A `token`, possibly empty.
    #[inline]
    pub(crate) fn token(&mut self) -> &'a [u8] {
        self.take_run(&TOKEN)
    }

    /// Takes the longest run of bytes in table `t` (see [`run`]).
    #[inline]
    pub(crate) fn take_run(&mut self, t: &[bool; 256]) -> &'a [u8] {
        let rest = self.b.get(self.i..).unwrap_or(&[]);
        let n = run(t, rest);
        self.i += n;
        &rest[..n]
    }

    /// A `hostname` / `IPv4address`, possibly empty.
    #[inline]
    pub(crate) fn host_chars(&mut self) -> &'a [u8] {
        self.take_run(&HOST)
    }

    /// A `quoted-string` starting at the cursor's `"`; returns the text
    /// between the quotes with `quoted-pair` escapes left as written
    /// (RFC 3261 §25.1: `quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)`).
    /// `None` when unterminated (RFC 4475 "quotbal") or when an escape
    /// covers CR or LF.
    pub(crate) fn quoted(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let s = self.i;
        loop {
            let rest = self.b.get(self.i..)?;
            let at = run(&NOT_QUOTE_OR_ESCAPE, rest);
            if at == rest.len() {
                return None;
            }
            self.i += at;
            if self.b[self.i] == b'"' {
                let inner = &self.b[s..self.i];
                self.i += 1;
                return Some(inner);
            }
            let esc = *self.b.get(self.i + 1)?;
            if esc == b'\r' || esc == b'\n' || esc > 0x7f {
                return None;
            }
            self.i += 2;
        }
    }

    /// A `gen-value`: a quoted string (returned with its quotes) or a run of
    /// token/host characters. `None` when empty or unterminated.
    pub(crate) fn gen_value(&mut self) -> Option<&'a [u8]> {
        if self.peek() == Some(b'"') {
            let s = self.i;
            self.quoted()?;
            Some(&self.b[s..self.i])
        } else {
            let v = self.take_run(&GEN_VALUE);
            if v.is_empty() { None } else { Some(v) }
        }
    }

    /// The common case of one `generic-param` right after its `;`: `name` or
    /// `name=value` with no LWS and no quoted string, ended by `;`, `,` or
    /// the end. One table-driven scan per part; `None` (cursor unmoved)
    /// sends the caller to the general, LWS-tolerant path.
    #[inline]
    fn param_fast(&mut self) -> Option<(&'a [u8], Option<&'a [u8]>)> {
        let rest = self.b.get(self.i..)?;
        let name_len = token_run(rest);
        if name_len == 0 {
            return None;
        }
        let name = &rest[..name_len];
        match rest.get(name_len) {
            None | Some(b';' | b',') => {
                self.i += name_len;
                Some((name, None))
            }
            Some(b'=') => {
                let v = &rest[name_len + 1..];
                let vl = run(&GEN_VALUE, v);
                match v.get(vl) {
                    None | Some(b';' | b',') if vl > 0 => {
                        self.i += name_len + 1 + vl;
                        Some((name, Some(&v[..vl])))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Parses `*( SEMI generic-param )` after the cursor, calling `f(name,
    /// value)` for each. Stops before `,` or at the end. Returns the raw
    /// parameter text (from the first `;`, trimmed) or `None` on an empty
    /// name or value (RFC 4475 "badinv01": `;;`), or on any other byte.
    pub(crate) fn params(
        &mut self,
        mut f: impl FnMut(&'a [u8], Option<&'a [u8]>),
    ) -> Option<&'a [u8]> {
        let mut first = None;
        let mut end = self.i;
        loop {
            self.lws();
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => {
                    first.get_or_insert(self.i);
                    self.i += 1;
                    if let Some((name, value)) = self.param_fast() {
                        end = self.i;
                        f(name, value);
                        continue;
                    }
                    self.lws();
                    let name = self.token();
                    if name.is_empty() {
                        return None;
                    }
                    let after_name = self.i;
                    self.lws();
                    let value = if self.eat(b'=') {
                        self.lws();
                        Some(self.gen_value()?)
                    } else {
                        self.i = after_name;
                        None
                    };
                    end = self.i;
                    f(name, value);
                }
                Some(_) => return None,
            }
        }
        Some(match first {
            Some(s) => &self.b[s..end],
            None => &self.b[end..end],
        })
    }
}

/// Iterates `(name, value)` over an already-validated `;a=b;c` parameter
/// string (as stored in [`crate::sip::NameAddr::params`]).
pub(crate) fn param_lookup<'a>(params: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    let mut c = Cur::new(params);
    let mut found = None;
    c.params(|n, v| {
        if found.is_none() && eq_ic(n, want) {
            found = Some(v.unwrap_or(&[]));
        }
    })?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-byte-step scan agrees with a plain `position` loop for every
    /// run length and stop position up to three steps, and every class.
    #[test]
    fn chunked_run_matches_byte_loop() {
        let tables: [&[bool; 256]; 5] =
            [&TOKEN, &HOST, &URI_CHAR, &GEN_VALUE, &NOT_QUOTE_OR_ESCAPE];
        let stops = [b' ', b'<', b'"', 0u8, 0xff, b',', b';', b'@'];
        for t in tables {
            for len in 0..26 {
                for stop_at in 0..=len {
                    for &stop in &stops {
                        let mut v = vec![b'a'; len];
                        if stop_at < len {
                            v[stop_at] = stop;
                        }
                        let want = v.iter().position(|&c| !t[c as usize]).unwrap_or(len);
                        assert_eq!(run(t, &v), want, "len {len} stop {stop} at {stop_at}");
                    }
                }
            }
        }
    }

    /// `eq_lit` and `all_bytes` agree with their plain definitions.
    #[test]
    fn literal_compare_and_all_bytes() {
        let lits: [&[u8]; 7] = [
            b"tag",
            b"branch",
            b"received",
            b"sip/2.0/",
            b"sip/2.0",
            b"expires",
            b"content-length",
        ];
        let mut probes: Vec<Vec<u8>> = Vec::new();
        for l in lits {
            probes.push(l.to_vec());
            probes.push(l.to_ascii_uppercase());
            for i in 0..l.len() {
                for flip in [0x20u8, 0x01, 0x40, 0x80, 0x10] {
                    let mut p = l.to_vec();
                    p[i] ^= flip;
                    probes.push(p);
                }
            }
            probes.push(l[..l.len() - 1].to_vec());
        }
        for l in lits {
            for p in &probes {
                assert_eq!(eq_lit(p, l), eq_ic(p, l), "{p:?} vs {l:?}");
            }
        }
        for b in 0..=255u8 {
            assert_eq!(uri_byte(b), URI_CHAR[b as usize], "{b}");
        }
        let ok = |b: u8| (b > 0x20) & (b != 0x7f);
        for len in 0..50 {
            for at in 0..=len {
                for second in [None, Some(at + 1), Some(at + 9), Some(at + 17)] {
                    let mut v = vec![b'\x8a'; len];
                    if at < len {
                        v[at] = b'\n';
                    }
                    if let Some(s) = second.filter(|&s| s < len) {
                        v[s] = b'\n';
                    }
                    let want = v.iter().position(|&b| b == b'\n');
                    assert_eq!(find_byte(b'\n', &v), want, "find {len} {at} {second:?}");
                }
            }
        }
        for len in 0..50 {
            for at in 0..=len {
                for bad in [b' ', 0x7f, 0x00, 0x20, 0x21, 0xff] {
                    let mut v = vec![b'a'; len];
                    if at < len {
                        v[at] = bad;
                    }
                    assert_eq!(
                        all_bytes(&v, ok),
                        v.iter().all(|&b| ok(b)),
                        "{len} {at} {bad}"
                    );
                }
            }
        }
    }

    #[test]
    fn numbers() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (b"0", Some(0)),
            (b"0068", Some(68)),
            (b"4294967295", Some(u32::MAX)),
            (b"4294967296", None),
            (b"36893488147419103232", None),
            (b"", None),
            (b"-1", None),
            (b"1a", None),
        ];
        for (i, want) in cases {
            assert_eq!(parse_u32(i), *want, "{:?}", String::from_utf8_lossy(i));
        }
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u16(b"5060"), Some(5060));
    }

    #[test]
    fn quoted_strings() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (br#""abc" x"#, Some(b"abc")),
            (br#""J Rosenberg \\\"" <"#, Some(br#"J Rosenberg \\\""#)),
            (br#""Quoted string \"\"""#, Some(br#"Quoted string \"\""#)),
            (br#""unterminated"#, None),
            (br#""bad \"#, None),
            (b"\"\"", Some(b"")),
        ];
        for (i, want) in cases {
            assert_eq!(
                Cur::new(i).quoted(),
                *want,
                "{:?}",
                String::from_utf8_lossy(i)
            );
        }
    }

    #[test]
    fn params() {
        let mut c = Cur::new(b" ;tag = 98asjd8 ; lr;x=\"a;b\" , next");
        let mut seen = Vec::new();
        let raw = c.params(|n, v| seen.push((n, v))).unwrap();
        assert_eq!(raw, b";tag = 98asjd8 ; lr;x=\"a;b\"");
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], (&b"tag"[..], Some(&b"98asjd8"[..])));
        assert_eq!(seen[1], (&b"lr"[..], None));
        assert_eq!(c.peek(), Some(b','));
        assert!(Cur::new(b";;tag=1").params(|_, _| {}).is_none());
        assert!(Cur::new(b";tag=").params(|_, _| {}).is_none());
        assert_eq!(
            param_lookup(b";Expires=60;q=0.5", b"expires"),
            Some(&b"60"[..])
        );
        assert_eq!(param_lookup(b";lr", b"lr"), Some(&b""[..]));
        assert_eq!(param_lookup(b";lr", b"q"), None);
    }
}
