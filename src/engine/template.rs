//! Templates of what a user adds to requests: extra header lines
//! (`--header 'Name: value'`) and the offer body (`--sdp FILE`).
//!
//! A template is compiled once, when the configuration is read, into
//! literal parts and slots; writing it into a request is then one copy per
//! part into the request's pooled buffer, with no parsing and no allocation
//! per message. Placeholders are `{user}`, `{callee}`, `{domain}`,
//! `{call_id}`, `{seq}`, `{field:N}`, `{local_ip}`, `{local_port}`,
//! `{media_ip}`, `{media_ip_type}` and `{media_port}`; `{{` is a literal `{`.

use super::config::UserSource;

/// The value a placeholder stands for, taken from the request being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The user's name (field 0 of a users file: the AOR user).
    User,
    /// The user part of the callee (empty outside calls).
    Callee,
    /// The host of From, To and Request-URI (`--domain`).
    Domain,
    /// The request's Call-ID.
    CallId,
    /// The request's CSeq number.
    Seq,
    /// Field N of the user's line in the users file (field 0 is the user).
    Field(u16),
    /// Our address as written in Via and Contact (IPv6 in brackets).
    LocalIp,
    /// Our port.
    LocalPort,
    /// Our address as SDP writes it (RFC 4566 §5.7: IPv6 without brackets).
    MediaIp,
    /// `4` or `6`: the address family of `MediaIp` (`c=IN IP{media_ip_type}`).
    MediaIpType,
    /// The media port of the offer (no RTP is sent; the built-in offer's).
    MediaPort,
}

/// Every placeholder, for error messages and help.
pub const PLACEHOLDERS: &str = "{user} {callee} {domain} {call_id} {seq} {field:N} {local_ip} \
                                {local_port} {media_ip} {media_ip_type} {media_port}";

/// The media port every offer names (the built-in offer uses it too).
pub const MEDIA_PORT: u16 = 40000;

impl Slot {
    fn from_name(name: &str) -> Option<Slot> {
        Some(match name {
            "user" => Slot::User,
            "callee" => Slot::Callee,
            "domain" => Slot::Domain,
            "call_id" => Slot::CallId,
            "seq" => Slot::Seq,
            "local_ip" => Slot::LocalIp,
            "local_port" => Slot::LocalPort,
            "media_ip" => Slot::MediaIp,
            "media_ip_type" => Slot::MediaIpType,
            "media_port" => Slot::MediaPort,
            _ => {
                let n = name.strip_prefix("field:")?;
                if n.is_empty() || n.len() > 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Slot::Field(n.parse().ok()?)
            }
        })
    }
}

/// What is wrong with a template (the caller names the flag or file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("'{{' at byte {0} has no closing '}}' (write {{{{ for a literal '{{')")]
    Unclosed(usize),
    #[error("unknown placeholder {{{name}}} (known: {PLACEHOLDERS})")]
    Unknown {
        name: String,
        /// Byte offset of its `{`.
        at: usize,
    },
}

impl TemplateError {
    /// Byte offset in the template where the problem is.
    pub fn offset(&self) -> usize {
        match self {
            TemplateError::Unclosed(at) | TemplateError::Unknown { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Box<[u8]>),
    Slot(Slot),
}

/// A compiled template: literal bytes and slots, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Box<[Part]>,
}

/// The values of the slots for one request.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub user: &'a [u8],
    pub callee: &'a [u8],
    pub domain: &'a [u8],
    pub call_id: &'a [u8],
    pub seq: &'a [u8],
    pub local_ip: &'a [u8],
    pub local_port: &'a [u8],
    pub media_ip: &'a [u8],
    pub media_ip_type: &'a [u8],
    pub media_port: &'a [u8],
    /// Where `{field:N}` is read: user `index` of `users`.
    pub users: &'a UserSource,
    pub index: usize,
}

impl Template {
    /// Compile `text`: `{name}` is a placeholder, `{{` a literal `{`; a `}`
    /// outside a placeholder is literal.
    pub fn compile(text: &[u8]) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let c = text[i];
            if c != b'{' {
                lit.push(c);
                i += 1;
                continue;
            }
            if text.get(i + 1) == Some(&b'{') {
                lit.push(b'{');
                i += 2;
                continue;
            }
            let close = memchr::memchr(b'}', &text[i..]).ok_or(TemplateError::Unclosed(i))?;
            let name = &text[i + 1..i + close];
            let unknown = |name: String| TemplateError::Unknown { name, at: i };
            let name = std::str::from_utf8(name)
                .map_err(|_| unknown(String::from_utf8_lossy(name).into()))?;
            let slot = Slot::from_name(name.trim())
                .ok_or_else(|| unknown(name.chars().take(40).collect()))?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit).into()));
            }
            parts.push(Part::Slot(slot));
            i += close + 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        Ok(Template {
            parts: parts.into(),
        })
    }

    /// The bytes of a template without slots (written as is).
    pub fn as_literal(&self) -> Option<&[u8]> {
        match &self.parts[..] {
            [] => Some(b""),
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// The slots used, in order.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot(s) => Some(*s),
            Part::Lit(_) => None,
        })
    }

    /// Append the template with `v`'s values to `out`.
    #[inline]
    pub fn render(&self, out: &mut Vec<u8>, v: &Values<'_>) {
        for p in self.parts.iter() {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Slot(s) => match s {
                    Slot::User => out.extend_from_slice(v.user),
                    Slot::Callee => out.extend_from_slice(v.callee),
                    Slot::Domain => out.extend_from_slice(v.domain),
                    Slot::CallId => out.extend_from_slice(v.call_id),
                    Slot::Seq => out.extend_from_slice(v.seq),
                    Slot::Field(n) => {
                        v.users.write_field(v.index, usize::from(*n), out);
                    }
                    Slot::LocalIp => out.extend_from_slice(v.local_ip),
                    Slot::LocalPort => out.extend_from_slice(v.local_port),
                    Slot::MediaIp => out.extend_from_slice(v.media_ip),
                    Slot::MediaIpType => out.extend_from_slice(v.media_ip_type),
                    Slot::MediaPort => out.extend_from_slice(v.media_port),
                },
            }
        }
    }
}

/// One extra header line of initial requests: a literal name (an RFC 3261
/// §25.1 token) and a value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    pub name: Box<[u8]>,
    pub value: Template,
}

impl HeaderTemplate {
    /// Append `Name: value CRLF`.
    #[inline]
    pub fn render_line(&self, out: &mut Vec<u8>, v: &Values<'_>) {
        out.extend_from_slice(&self.name);
        out.extend_from_slice(b": ");
        self.value.render(out, v);
        out.extend_from_slice(b"\r\n");
    }
}

/// The offer body of INVITEs (`--sdp FILE`) and its Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    pub content_type: Box<[u8]>,
    pub body: Template,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values<'a>(users: &'a UserSource) -> Values<'a> {
        Values {
            user: b"alice",
            callee: b"1000",
            domain: b"example.test",
            call_id: b"0123456789abcdef",
            seq: b"7",
            local_ip: b"[::1]",
            local_port: b"5070",
            media_ip: b"::1",
            media_ip_type: b"6",
            media_port: b"40000",
            users,
            index: 0,
        }
    }

    fn unknown(name: &str, at: usize) -> TemplateError {
        TemplateError::Unknown {
            name: name.into(),
            at,
        }
    }

    fn render(t: &str) -> Result<String, TemplateError> {
        let users = UserSource::list(vec![("alice".into(), "pw".into())]);
        let t = Template::compile(t.as_bytes())?;
        let mut out = Vec::new();
        t.render(&mut out, &values(&users));
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str)] = &[
            ("", ""),
            ("plain", "plain"),
            ("{user}@{domain}", "alice@example.test"),
            (
                "to={callee};cid={call_id};n={seq}",
                "to=1000;cid=0123456789abcdef;n=7",
            ),
            ("sip:{user}@{local_ip}:{local_port}", "sip:alice@[::1]:5070"),
            ("c=IN IP{media_ip_type} {media_ip}", "c=IN IP6 ::1"),
            ("m=audio {media_port} RTP/AVP 0", "m=audio 40000 RTP/AVP 0"),
            ("{field:0}/{field:1}/{field:9}", "alice//"),
            ("{{user}} }", "{user}} }"),
            ("{ user }", "alice"),
        ];
        for (t, want) in ok {
            assert_eq!(render(t).as_deref(), Ok(*want), "{t:?}");
        }
        let bad: &[(&str, TemplateError)] = &[
            ("{user", TemplateError::Unclosed(0)),
            ("a{{b{", TemplateError::Unclosed(4)),
            ("{usr}", unknown("usr", 0)),
            ("ab {field:}", unknown("field:", 3)),
            ("{field:x}", unknown("field:x", 0)),
            ("{field:99999}", unknown("field:99999", 0)),
            ("{{{}", unknown("", 2)),
        ];
        for (t, want) in bad {
            assert_eq!(render(t).as_ref(), Err(want), "{t:?}");
        }
        let e = unknown("x", 4);
        assert!(e.to_string().contains("{field:N}") && e.offset() == 4);
    }

    #[test]
    fn literal_and_slots() {
        let t = Template::compile(b"v=0\r\n").unwrap();
        assert_eq!(t.as_literal(), Some(&b"v=0\r\n"[..]));
        assert_eq!(Template::compile(b"").unwrap().as_literal(), Some(&b""[..]));
        let t = Template::compile(b"{user}-{field:3}").unwrap();
        assert_eq!(t.as_literal(), None);
        assert_eq!(t.slots().collect::<Vec<_>>(), [Slot::User, Slot::Field(3)]);
    }

    /// The obvious way: replace each placeholder by its value in a string.
    fn naive(t: &str) -> String {
        let mut s = t.replace("{{", "\u{1}");
        for (k, v) in [
            ("{user}", "alice"),
            ("{callee}", "1000"),
            ("{domain}", "example.test"),
            ("{call_id}", "0123456789abcdef"),
            ("{seq}", "7"),
            ("{local_ip}", "[::1]"),
            ("{local_port}", "5070"),
            ("{media_ip}", "::1"),
            ("{media_ip_type}", "6"),
            ("{media_port}", "40000"),
            ("{field:0}", "alice"),
        ] {
            s = s.replace(k, v);
        }
        s.replace('\u{1}', "{")
    }

    proptest! {
        /// Compiled rendering equals string replacement on any mix of
        /// literal text, placeholders and escapes.
        #[test]
        fn matches_naive_replacement(parts in proptest::collection::vec(prop_oneof![
            "[a-z0-9 ;:=@<>}\\r\\n-]{0,6}",
            Just("{user}".to_string()),
            Just("{callee}".to_string()),
            Just("{domain}".to_string()),
            Just("{call_id}".to_string()),
            Just("{seq}".to_string()),
            Just("{local_ip}".to_string()),
            Just("{local_port}".to_string()),
            Just("{media_ip}".to_string()),
            Just("{media_ip_type}".to_string()),
            Just("{media_port}".to_string()),
            Just("{field:0}".to_string()),
            Just("{{".to_string()),
        ], 0..12)) {
            let t: String = parts.concat();
            prop_assert_eq!(render(&t).unwrap(), naive(&t));
        }
    }
}
