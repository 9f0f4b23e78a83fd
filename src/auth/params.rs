//! Tokenizer for `Digest` header values:
//! `challenge = "Digest" LWS digest-cln *(COMMA digest-cln)` (RFC 3261 §25.1,
//! same shape for `credentials`), with RFC 7235 §2.1 tolerance for empty list
//! elements (`a=1,,b=2`). Zero-copy; never panics on any input.

use super::AuthError;

/// One `name=value` pair. `value` is in wire form: for a quoted-string the
/// bytes between the quotes with escapes intact, for a token the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// LWS, including the CR LF of a folded line (RFC 3261 §7.3.1 folding may
/// survive in a raw header value).
fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes allowed in an unquoted value. Deliberately wider than `token`:
/// deployed servers send e.g. `nonce=ab/cd+ef==` unquoted, and rejecting
/// them buys nothing. Backslash stays out so that a bare value means the
/// same thing when it is echoed inside quotes.
fn is_bare_value(c: u8) -> bool {
    c > b' ' && c != 0x7f && !matches!(c, b',' | b'"' | b'\\')
}

/// Iterator over the parameters after the scheme.
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Checks that `value` starts with the `Digest` scheme and returns the
/// parameter iterator. Leading LWS is skipped; the scheme must be followed by
/// LWS or the end.
pub(crate) fn digest_params(value: &[u8]) -> Result<Params<'_>, AuthError> {
    let start = value
        .iter()
        .position(|&c| !is_lws(c))
        .unwrap_or(value.len());
    let len = value[start..].iter().take_while(|&&c| is_token(c)).count();
    let scheme = &value[start..start + len];
    if !scheme.eq_ignore_ascii_case(b"Digest") {
        return Err(AuthError::NotDigest);
    }
    let pos = start + len;
    match value.get(pos) {
        None => {}
        Some(&c) if is_lws(c) => {}
        Some(_) => return Err(AuthError::NotDigest),
    }
    Ok(Params {
        buf: value,
        pos,
        failed: false,
    })
}

impl<'a> Params<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }

    fn err(&mut self, what: &'static str) -> Option<Result<Param<'a>, AuthError>> {
        self.failed = true;
        Some(Err(AuthError::Syntax {
            pos: self.pos,
            what,
        }))
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, AuthError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // Empty list elements and the separator of the previous element.
        while self.peek().is_some_and(|c| is_lws(c) || c == b',') {
            self.pos += 1;
        }
        self.peek()?;
        let name = self.take_while(is_token);
        if name.is_empty() {
            return self.err("parameter name");
        }
        self.skip_lws();
        if self.peek() != Some(b'=') {
            return self.err("'=' after parameter name");
        }
        self.pos += 1;
        self.skip_lws();
        let value = if self.peek() == Some(b'"') {
            self.pos += 1;
            let start = self.pos;
            loop {
                // Jump to the next quote or backslash; values are long
                // (nonces, opaques) and escapes rare.
                let rest = &self.buf[self.pos..];
                let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
                    self.pos = self.buf.len();
                    return self.err("closing quote");
                };
                self.pos += i;
                if rest[i] == b'"' {
                    break;
                }
                // quoted-pair: the next byte is literal, whatever it is.
                if self.pos + 1 >= self.buf.len() {
                    return self.err("byte after backslash");
                }
                self.pos += 2;
            }
            let v = &self.buf[start..self.pos];
            self.pos += 1; // closing quote
            v
        } else {
            let v = self.take_while(is_bare_value);
            if v.is_empty() {
                return self.err("parameter value");
            }
            v
        };
        self.skip_lws();
        match self.peek() {
            None | Some(b',') => Some(Ok(Param { name, value })),
            Some(_) => self.err("',' between parameters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn all(v: &[u8]) -> Result<Pairs, AuthError> {
        digest_params(v)?
            .map(|p| p.map(|p| (p.name.to_vec(), p.value.to_vec())))
            .collect()
    }

    #[test]
    fn tokenizes() {
        let got = all(b"  digest a=1 ,b = \"x,y\\\"z\" ,, c=\"\"").unwrap();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"x,y\\\"z".to_vec()),
                (b"c".to_vec(), b"".to_vec()),
            ]
        );
        assert_eq!(all(b"Digest").unwrap(), vec![]);
        assert_eq!(all(b"Digest\r\n a=b").unwrap().len(), 1);
    }

    #[test]
    fn rejects() {
        assert_eq!(all(b"Basic a=1"), Err(AuthError::NotDigest));
        assert_eq!(all(b"Digesta=1"), Err(AuthError::NotDigest));
        assert_eq!(all(b""), Err(AuthError::NotDigest));
        assert_eq!(all(b"Digest=1"), Err(AuthError::NotDigest));
        for bad in [
            &b"Digest a"[..],
            b"Digest a=",
            b"Digest a=\"open",
            b"Digest a=\"x\\",
            b"Digest a=1 b=2",
            b"Digest =1",
            b"Digest a=\"x\"y",
            b"Digest a=x\\y",
        ] {
            assert!(
                matches!(all(bad), Err(AuthError::Syntax { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
