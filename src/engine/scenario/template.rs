//! Message templates of `<send>`: the CDATA cleaned up as SIPp does it
//! once at load time, split into literal bytes and keyword slots, and
//! bound per worker (constants such as `[local_ip]` folded into the
//! literals), so that sending a message is a copy per part into a pooled
//! buffer with no parsing and no allocation.

use super::program::VarId;

/// What a keyword stands for at run time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot {
    CallId,
    CallNumber,
    Cseq,
    Branch,
    /// `[len]`: five columns patched once the body is known.
    Len,
    PeerTagParam,
    /// `[last_X:]`: index into `Program::last_spellings`.
    LastHeader(u16),
    LastRequestUri,
    LastCseqNumber,
    Routes,
    NextUrl,
    /// `[fieldN]` (file 0: the run's users; k > 0: the k-th further `-inf`).
    Field {
        file: u8,
        n: u16,
    },
    Var(VarId),
    /// `[authentication ...]`: index into `Program::auths`.
    Auth(u16),
    AutoMediaPort,
    /// The peer: the target for a client (folded per worker), the address a
    /// server's call came from (per call).
    RemoteIp,
    RemotePort,
    // Per-worker constants, folded away by `bind`.
    LocalIp,
    LocalIpType,
    LocalPort,
    Transport,
    MediaIp,
    MediaIpType,
    MediaPort,
    Service,
    Pid,
    /// `-key NAME VALUE`: index into the keys.
    Key(u16),
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Lit(Box<[u8]>),
    /// A keyword with its `+N`/`-N` offset; `line_start`: it opens a line,
    /// so when it writes nothing the whitespace after it (line end
    /// included) is dropped, as SIPp does.
    Slot {
        slot: Slot,
        offset: i32,
        line_start: bool,
    },
}

/// A compiled message (or `log`/`setdest` text) template.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MsgTemplate {
    pub parts: Vec<Part>,
}

/// The values every worker folds into its templates once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Consts {
    /// `Some` for a client: the target.
    pub remote_ip: Option<Vec<u8>>,
    pub remote_port: Option<u16>,
    pub local_ip: Vec<u8>,
    pub local_ip_type: &'static [u8],
    pub local_port: u16,
    pub transport: &'static [u8],
    pub media_ip: Vec<u8>,
    pub media_port: u16,
    pub service: Vec<u8>,
    pub pid: u32,
    pub keys: Vec<Vec<u8>>,
}

fn push_lit(parts: &mut Vec<Part>, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    if let Some(Part::Lit(l)) = parts.last_mut() {
        let mut v = l.to_vec();
        v.extend_from_slice(b);
        *l = v.into();
    } else {
        parts.push(Part::Lit(b.into()));
    }
}

fn num(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// The literal after a keyword that opened a line and came out empty:
/// SIPp drops the whitespace that follows it (so an empty `[routes]` line
/// leaves no blank line); otherwise the literal as it is.
pub(crate) fn after_empty_line_start(l: &[u8], skip_ws: bool) -> &[u8] {
    if skip_ws {
        let n = l.iter().take_while(|b| b.is_ascii_whitespace()).count();
        &l[n..]
    } else {
        l
    }
}

impl MsgTemplate {
    /// This template with the constants of one worker folded in.
    pub fn bind(&self, c: &Consts) -> MsgTemplate {
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len());
        let mut skip_ws = false;
        for p in &self.parts {
            match p {
                Part::Lit(l) => {
                    let l = after_empty_line_start(l, std::mem::take(&mut skip_ws));
                    push_lit(&mut parts, l);
                }
                Part::Slot {
                    slot,
                    offset,
                    line_start,
                } => {
                    let off = i64::from(*offset);
                    let value: Option<Vec<u8>> = match slot {
                        Slot::RemoteIp => c.remote_ip.clone(),
                        Slot::RemotePort => c.remote_port.map(|p| num(i64::from(p) + off)),
                        Slot::LocalIp => Some(c.local_ip.clone()),
                        Slot::LocalIpType | Slot::MediaIpType => Some(c.local_ip_type.to_vec()),
                        Slot::LocalPort => Some(num(i64::from(c.local_port) + off)),
                        Slot::Transport => Some(c.transport.to_vec()),
                        Slot::MediaIp => Some(c.media_ip.clone()),
                        Slot::MediaPort => Some(num(i64::from(c.media_port) + off)),
                        Slot::Service => Some(c.service.clone()),
                        Slot::Pid => Some(num(i64::from(c.pid))),
                        Slot::Key(k) => {
                            Some(c.keys.get(usize::from(*k)).cloned().unwrap_or_default())
                        }
                        _ => None,
                    };
                    skip_ws = false;
                    match value {
                        Some(v) => {
                            if v.is_empty() && *line_start {
                                skip_ws = true;
                            }
                            push_lit(&mut parts, &v);
                        }
                        None => parts.push(p.clone()),
                    }
                }
            }
        }
        MsgTemplate { parts }
    }
}

/// SIPp's clean-up of a `<send>` CDATA, once at load time: trim the whole
/// text and every line, make sure a message without a body ends with an
/// empty line (and a body's last line keeps one line end), `\n` → `\r\n`.
pub(crate) fn clean_message(text: &[u8]) -> Vec<u8> {
    let trimmed = text.trim_ascii();
    let lines: Vec<&[u8]> = trimmed
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .collect();
    let has_empty = lines.iter().any(|l| l.is_empty());
    let mut out = Vec::with_capacity(trimmed.len() + lines.len() + 4);
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(l);
    }
    if has_empty {
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"\r\n\r\n");
    }
    out
}

/// A keyword as written between `[` and `]`: its name, a `+N`/`-N`
/// offset, and `name=value` attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Keyword {
    pub name: String,
    pub offset: i32,
    pub attrs: Vec<(String, String)>,
}

/// Split `inner` (the text between the brackets) into a keyword.
pub(crate) fn parse_keyword(inner: &str) -> Result<Keyword, String> {
    let inner = inner.trim();
    let (head, rest) = match inner.find(char::is_whitespace) {
        Some(i) => (&inner[..i], inner[i..].trim_start()),
        None => (inner, ""),
    };
    let mut kw = Keyword {
        name: head.to_string(),
        ..Keyword::default()
    };
    // An offset: `cseq+1`, `branch-2` (not inside `$var` names or headers).
    if !head.starts_with('$')
        && !head.starts_with("last_")
        && let Some(i) = head.rfind(['+', '-'])
        && let (n, o) = head.split_at(i)
        && let Ok(v) = o.parse::<i32>()
        && !n.is_empty()
    {
        kw.name = n.to_string();
        kw.offset = v;
    }
    let mut rest = rest;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("[{inner}]: expected name=value after the keyword"))?;
        let name = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("[{inner}]: unclosed quote"))?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        kw.attrs.push((name, value));
        rest = next.trim_start();
    }
    Ok(kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_as_sipp() {
        let cases: &[(&str, &str)] = &[
            (
                "\n   INVITE x SIP/2.0\n   Via: a\n\n   v=0\n   m=audio\n  ",
                "INVITE x SIP/2.0\r\nVia: a\r\n\r\nv=0\r\nm=audio\r\n",
            ),
            (
                "\n  ACK x SIP/2.0\n  Content-Length: 0\n\n  ",
                "ACK x SIP/2.0\r\nContent-Length: 0\r\n\r\n",
            ),
            ("SIP/2.0 200 OK", "SIP/2.0 200 OK\r\n\r\n"),
        ];
        for (t, want) in cases {
            assert_eq!(
                String::from_utf8(clean_message(t.as_bytes())).unwrap(),
                *want,
                "{t:?}"
            );
        }
    }

    #[test]
    fn keywords_split() {
        let k = parse_keyword("cseq+1").unwrap();
        assert_eq!((k.name.as_str(), k.offset), ("cseq", 1));
        let k = parse_keyword("branch-2").unwrap();
        assert_eq!((k.name.as_str(), k.offset), ("branch", -2));
        let k = parse_keyword("last_Call-ID:").unwrap();
        assert_eq!((k.name.as_str(), k.offset), ("last_Call-ID:", 0));
        let k = parse_keyword("authentication username=joe password=\"s3 cr;t\"").unwrap();
        assert_eq!(
            k.attrs,
            [
                ("username".to_string(), "joe".to_string()),
                ("password".to_string(), "s3 cr;t".to_string())
            ]
        );
        let k = parse_keyword("field1 file=\"x.csv\"").unwrap();
        assert_eq!((k.name.as_str(), k.attrs.len()), ("field1", 1));
        assert!(parse_keyword("authentication username").is_err());
        assert!(parse_keyword("authentication password=\"x").is_err());
    }

    #[test]
    fn binding_folds_constants_and_drops_empty_lines() {
        let t = MsgTemplate {
            parts: vec![
                Part::Lit(b"Via: ".to_vec().into()),
                Part::Slot {
                    slot: Slot::LocalIp,
                    offset: 0,
                    line_start: false,
                },
                Part::Lit(b":".to_vec().into()),
                Part::Slot {
                    slot: Slot::LocalPort,
                    offset: 2,
                    line_start: false,
                },
                Part::Lit(b"\r\n".to_vec().into()),
                Part::Slot {
                    slot: Slot::Key(0),
                    offset: 0,
                    line_start: true,
                },
                Part::Lit(b"\r\nX: ".to_vec().into()),
                Part::Slot {
                    slot: Slot::CallId,
                    offset: 0,
                    line_start: false,
                },
            ],
        };
        let c = Consts {
            local_ip: b"10.0.0.1".to_vec(),
            local_port: 5060,
            keys: vec![Vec::new()],
            ..Consts::default()
        };
        let b = t.bind(&c);
        assert_eq!(
            b.parts,
            vec![
                Part::Lit(b"Via: 10.0.0.1:5062\r\nX: ".to_vec().into()),
                Part::Slot {
                    slot: Slot::CallId,
                    offset: 0,
                    line_start: false
                }
            ]
        );
    }
}
