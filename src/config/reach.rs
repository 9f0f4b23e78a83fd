//! What a run needs to reach a real server (SPEC "Reaching real servers"):
//! the SIP domain, a preloaded Route set, callee and caller, the From
//! display name, extra headers, the offer body and the first local port.
//! Everything is validated and compiled here, once, before any socket
//! exists; every error names the flag (or file:line) and what is wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConfigError, invalid};
use crate::engine::template::{BodyTemplate, HeaderTemplate, Slot, Template, TemplateError};
use crate::engine::{Party, RangePattern};
use crate::users::{Users, is_sip_user, sip_user_chars};

/// The validated reach settings of a run.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// `--domain`: host (and port) of Request-URI, From and To; `None` =
    /// the target's address.
    pub domain: Option<String>,
    /// `--route`: the preloaded Route set, URIs without angle brackets.
    pub routes: Vec<String>,
    /// `--callee`.
    pub callee: Party,
    /// `--caller`.
    pub caller: Party,
    /// `--from-display`, unquoted; empty = none.
    pub from_display: String,
    /// `--header` lines, compiled.
    pub headers: Arc<[HeaderTemplate]>,
    /// `--sdp` (with `--content-type`), compiled.
    pub offer: Option<Arc<BodyTemplate>>,
    /// The `--sdp` file, for the report.
    pub sdp_file: Option<PathBuf>,
    /// `--local-port`: first local port (0 = ephemeral ports).
    pub local_port: u16,
}

/// The raw reach values (from [`super::RunValues`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct ReachValues<'a> {
    pub domain: Option<&'a str>,
    pub routes: &'a [String],
    pub callee: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub from_display: Option<&'a str>,
    pub headers: &'a [String],
    pub sdp: Option<&'a Path>,
    pub content_type: Option<&'a str>,
    pub local_port: Option<u16>,
}

/// Header fields sipstorm writes itself (full and compact forms, RFC 3261
/// §7.3.3), and which flag sets each instead.
const OWN_HEADERS: &[(&str, &str)] = &[
    ("via", "sipstorm writes it"),
    ("v", "sipstorm writes Via"),
    ("from", "use --caller and --from-display"),
    ("f", "use --caller and --from-display"),
    ("to", "use --callee"),
    ("t", "use --callee"),
    ("call-id", "sipstorm writes it"),
    ("i", "sipstorm writes Call-ID"),
    ("cseq", "sipstorm writes it"),
    ("max-forwards", "sipstorm writes it"),
    ("contact", "sipstorm writes it (its own address)"),
    ("m", "sipstorm writes Contact"),
    ("route", "use --route"),
    ("content-length", "sipstorm writes it"),
    ("l", "sipstorm writes Content-Length"),
    ("content-type", "use --content-type with --sdp"),
    ("c", "use --content-type with --sdp"),
    ("authorization", "sipstorm answers challenges itself"),
    ("proxy-authorization", "sipstorm answers challenges itself"),
    ("expires", "use --expires"),
];

/// RFC 3261 §25.1 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c))
}

/// Printable text of a header value (tabs allowed, no CR, LF or other
/// control characters, which would end the header or the message).
fn printable(s: &str) -> bool {
    s.chars().all(|c| c == '\t' || !c.is_control())
}

/// `--domain`: a host (name, IPv4, IPv6 with or without brackets) and an
/// optional port; IPv6 gets its brackets.
pub(super) fn domain(d: &str) -> Result<String, ConfigError> {
    let d = d.trim();
    let d = match d.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => d.to_ascii_lowercase(),
    };
    let uri = format!("sip:{d}");
    match crate::sip::parse_uri(uri.as_bytes()) {
        Some(u) if u.user.is_none() && u.params.is_empty() && !d.contains('?') => Ok(d),
        _ => Err(invalid(
            "--domain",
            format!(
                "'{d}' is not a host or host:port (e.g. example.test, 10.0.0.1:5060, [2001:db8::1])"
            ),
        )),
    }
}

/// `--route URI`: a SIP URI with `;lr` (angle brackets optional).
fn route(r: &str) -> Result<String, ConfigError> {
    let t = r.trim();
    let t = t
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(t);
    let Some(u) = crate::sip::parse_uri(t.as_bytes()) else {
        return Err(invalid(
            "--route",
            format!("'{t}' is not a sip: or sips: URI (e.g. 'sip:proxy.example.test;lr')"),
        ));
    };
    if u.host.is_empty() || !printable(t) || t.contains(['<', '>', ',', ' ']) {
        return Err(invalid(
            "--route",
            format!("'{t}' is not a sip: or sips: URI (e.g. 'sip:proxy.example.test;lr')"),
        ));
    }
    let lr = u.params.split(|c| *c == b';').any(|p| {
        let name = p.split(|c| *c == b'=').next().unwrap_or(b"");
        name.trim_ascii().eq_ignore_ascii_case(b"lr")
    });
    if !lr {
        return Err(invalid(
            "--route",
            format!(
                "'{t}' has no ;lr: only loose routing is supported (RFC 3261 §16.12), write '{t};lr'"
            ),
        ));
    }
    Ok(t.to_string())
}

/// `--callee` / `--caller`: `field:N`, or a pattern of SIP user characters
/// with at most one `{START..END}` range.
fn party(flag: &'static str, p: &str) -> Result<Party, ConfigError> {
    let p = p.trim();
    if let Some(n) = p.strip_prefix("field:") {
        return match n.parse::<u16>() {
            Ok(n) => Ok(Party::Field(n)),
            Err(_) => Err(invalid(
                flag,
                format!("'{p}': field:N needs a field number, e.g. field:2"),
            )),
        };
    }
    let pat = RangePattern::parse(p).map_err(|e| {
        invalid(
            flag,
            format!("'{p}': {}", super::describe_pattern_error(&e)),
        )
    })?;
    let lits = pat.literals();
    if p.is_empty()
        || !lits
            .iter()
            .all(|l| sip_user_chars(&String::from_utf8_lossy(l)))
    {
        return Err(invalid(
            flag,
            format!(
                "'{p}' is not a SIP user part or pattern (letters, digits, -_.!~*'()&=+$,?/, \
                 %HH escapes and one {{START..END}} range, e.g. '{{1000..1999}}', '9999', field:2)"
            ),
        ));
    }
    Ok(Party::Pattern(pat))
}

/// One `--header 'Name: value'`.
fn header(h: &str) -> Result<HeaderTemplate, ConfigError> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(invalid(
            "--header",
            format!(
                "'{}' is not 'Name: value'",
                h.chars().take(40).collect::<String>()
            ),
        ));
    };
    let name = name.trim();
    if !is_token(name) {
        return Err(invalid(
            "--header",
            format!(
                "'{}' is not a header name (RFC 3261 §25.1 token: letters, digits, -.!%*_+`'~)",
                name.chars().take(40).collect::<String>()
            ),
        ));
    }
    if let Some((_, why)) = OWN_HEADERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Err(invalid(
            "--header",
            format!("{name} cannot be set this way: {why}"),
        ));
    }
    let value = value.trim();
    if !printable(value) {
        return Err(invalid(
            "--header",
            format!("{name}: the value has a line break or a control character"),
        ));
    }
    let value = Template::compile(value.as_bytes())
        .map_err(|e| invalid("--header", format!("{name}: {e}")))?;
    Ok(HeaderTemplate {
        name: name.as_bytes().into(),
        value,
    })
}

/// `--sdp FILE`: an optional first line `Content-Type: TYPE` and a blank
/// line, then the body template; bare LF line ends become CRLF (RFC 4566
/// §5). `--content-type` overrides the file's type; the default is
/// `application/sdp`.
fn offer(path: &Path, content_type: Option<&str>) -> Result<BodyTemplate, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("--sdp", format!("{shown}: cannot read: {e}")))?;
    let (mut ctype, body, skipped) = match text.split_once('\n') {
        Some((first, rest))
            if first
                .get(..13)
                .is_some_and(|h| h.eq_ignore_ascii_case("content-type:")) =>
        {
            let t = first[13..].trim().to_string();
            let rest = rest
                .strip_prefix("\r\n")
                .or_else(|| rest.strip_prefix('\n'))
                .ok_or_else(|| {
                    invalid(
                        "--sdp",
                        format!("{shown}:2: a blank line must follow the Content-Type line"),
                    )
                })?;
            (Some(t), rest, 2)
        }
        _ => (None, text.as_str(), 0),
    };
    if let Some(t) = content_type {
        ctype = Some(t.trim().to_string());
    }
    let ctype = ctype.unwrap_or_else(|| "application/sdp".into());
    let (type_part, _) = ctype.split_once(';').unwrap_or((&ctype, ""));
    let valid_type = type_part
        .split_once('/')
        .is_some_and(|(a, b)| is_token(a.trim()) && is_token(b.trim()));
    if !valid_type || !printable(&ctype) {
        let flag = if content_type.is_some() {
            "--content-type"
        } else {
            "--sdp"
        };
        return Err(invalid(
            flag,
            format!("'{ctype}' is not a media type such as application/sdp"),
        ));
    }
    let mut crlf = String::with_capacity(body.len() + 64);
    for line in body.split_inclusive('\n') {
        let l = line.strip_suffix('\n').unwrap_or(line);
        let l = l.strip_suffix('\r').unwrap_or(l);
        crlf.push_str(l);
        if line.ends_with('\n') {
            crlf.push_str("\r\n");
        }
    }
    if crlf.trim().is_empty() {
        return Err(invalid("--sdp", format!("{shown}: the body is empty")));
    }
    let body = Template::compile(crlf.as_bytes()).map_err(|e: TemplateError| {
        let line = skipped + 1 + crlf[..e.offset()].matches('\n').count();
        invalid("--sdp", format!("{shown}:{line}: {e}"))
    })?;
    Ok(BodyTemplate {
        content_type: ctype.into_bytes().into(),
        body,
    })
}

impl Reach {
    pub(super) fn build(v: ReachValues<'_>, workers: usize) -> Result<Reach, ConfigError> {
        let domain = v.domain.map(domain).transpose()?;
        let routes = v
            .routes
            .iter()
            .map(|r| route(r))
            .collect::<Result<Vec<_>, _>>()?;
        let callee = v
            .callee
            .map(|c| party("--callee", c))
            .transpose()?
            .unwrap_or_default();
        let caller = v
            .caller
            .map(|c| party("--caller", c))
            .transpose()?
            .unwrap_or_default();
        let from_display = v.from_display.unwrap_or("").trim().to_string();
        if !printable(&from_display) {
            return Err(invalid(
                "--from-display",
                "has a line break or a control character",
            ));
        }
        let headers = v
            .headers
            .iter()
            .map(|h| header(h))
            .collect::<Result<Vec<_>, _>>()?;
        if v.content_type.is_some() && v.sdp.is_none() {
            return Err(invalid(
                "--content-type",
                "sets the type of the --sdp body: give --sdp FILE too",
            ));
        }
        let offer = v.sdp.map(|p| offer(p, v.content_type)).transpose()?;
        let local_port = v.local_port.unwrap_or(0);
        if local_port != 0 && usize::from(local_port) + workers - 1 > usize::from(u16::MAX) {
            return Err(invalid(
                "--local-port",
                format!(
                    "{workers} workers take ports {local_port}..{}, beyond 65535",
                    usize::from(local_port) + workers - 1
                ),
            ));
        }
        Ok(Reach {
            domain,
            routes,
            callee,
            caller,
            from_display,
            headers: headers.into(),
            offer: offer.map(Arc::new),
            sdp_file: v.sdp.map(Path::to_path_buf),
            local_port,
        })
    }

    /// Every `{field:N}` and `field:N` must exist, and a callee or caller
    /// field must be a SIP user, on every line of the users file;
    /// generated users have only field 0.
    pub(super) fn check_fields(&self, users: Option<&Users>) -> Result<(), ConfigError> {
        let mut uses: Vec<(&'static str, u16, bool)> = Vec::new();
        for h in self.headers.iter() {
            uses.extend(h.value.slots().filter_map(|s| match s {
                Slot::Field(n) => Some(("--header", n, false)),
                _ => None,
            }));
        }
        if let Some(o) = &self.offer {
            uses.extend(o.body.slots().filter_map(|s| match s {
                Slot::Field(n) => Some(("--sdp", n, false)),
                _ => None,
            }));
        }
        for (flag, p) in [("--callee", &self.callee), ("--caller", &self.caller)] {
            if let Party::Field(n) = p {
                uses.push((flag, *n, true));
            }
        }
        for (flag, n, user_part) in uses {
            if n == 0 {
                continue;
            }
            let Some(file) = users else {
                return Err(invalid(
                    flag,
                    format!(
                        "field {n} needs --users FILE (generated users have only field 0, the user name)"
                    ),
                ));
            };
            for u in &file.users {
                let f = u.fields.get(usize::from(n));
                let problem = match f {
                    None => Some(format!(
                        "has {} fields (0..{}), no field {n}",
                        u.fields.len(),
                        u.fields.len() - 1
                    )),
                    // The value is not shown: it may be a password keyword.
                    Some(f) if user_part && !is_sip_user(f) => {
                        Some(format!("field {n} is not a SIP user part"))
                    }
                    Some(_) => None,
                };
                if let Some(p) = problem {
                    return Err(invalid(flag, format!("{}:{}: {p}", file.path, u.line)));
                }
            }
        }
        Ok(())
    }

    /// The reach settings for the report (header values left out: they
    /// may hold tokens).
    pub fn to_json(&self) -> serde_json::Value {
        let party = |p: &Party| match p {
            Party::Default => serde_json::Value::Null,
            Party::Pattern(p) => format!("{p:?}").into(),
            Party::Field(n) => format!("field:{n}").into(),
        };
        serde_json::json!({
            "domain": self.domain,
            "routes": self.routes,
            "callee": party(&self.callee),
            "caller": party(&self.caller),
            "from_display": (!self.from_display.is_empty()).then_some(&self.from_display),
            "header_names": self.headers.iter().map(|h| String::from_utf8_lossy(&h.name).into_owned()).collect::<Vec<_>>(),
            "sdp": self.sdp_file.as_ref().map(|p| p.display().to_string()),
            "content_type": self.offer.as_ref().map(|o| String::from_utf8_lossy(&o.content_type).into_owned()),
            "local_port": (self.local_port != 0).then_some(self.local_port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>() -> ReachValues<'a> {
        ReachValues {
            domain: None,
            routes: &[],
            callee: None,
            caller: None,
            from_display: None,
            headers: &[],
            sdp: None,
            content_type: None,
            local_port: None,
        }
    }

    #[test]
    fn valid_values_compile() {
        let headers = [
            "X-Test: {user}@{domain} {call_id}".to_string(),
            "P-Asserted-Identity: <sip:{field:2}@{domain}>".into(),
            "User-Agent:load".into(),
        ];
        let routes = [
            "<sip:[::1]:5070;lr>".to_string(),
            "sips:p.example.test;LR=on".into(),
        ];
        let r = Reach::build(
            ReachValues {
                domain: Some("Example.TEST"),
                routes: &routes,
                callee: Some("+49{1000..1999}"),
                caller: Some("field:3"),
                from_display: Some("Load \"Test\""),
                headers: &headers,
                local_port: Some(65534),
                ..values()
            },
            2,
        )
        .unwrap();
        assert_eq!(r.domain.as_deref(), Some("example.test"));
        assert_eq!(r.routes, ["sip:[::1]:5070;lr", "sips:p.example.test;LR=on"]);
        assert_eq!(r.caller, Party::Field(3));
        assert!(matches!(&r.callee, Party::Pattern(p) if p.len() == 1000));
        assert_eq!(&*r.headers[2].name, b"User-Agent");
        assert_eq!(
            Reach::build(
                ReachValues {
                    domain: Some("::1"),
                    ..values()
                },
                1
            )
            .unwrap()
            .domain
            .as_deref(),
            Some("[::1]")
        );
        let j = r.to_json();
        assert_eq!(j["header_names"][1], "P-Asserted-Identity");
        assert_eq!(j["callee"], "+49{1000..1999}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let dir = std::env::temp_dir().join(format!("sipstorm-reach-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sdp = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let unclosed = sdp("unclosed.sdp", "v=0\nc=IN IP4 {media_ip\n");
        let unknown = sdp(
            "unknown.sdp",
            "Content-Type: application/sdp\n\nv=0\no=- {usr}\n",
        );
        let no_blank = sdp("noblank.sdp", "Content-Type: application/sdp\nv=0\n");
        let empty = sdp("empty.sdp", "\n\n");
        let ok = sdp("ok.sdp", "v=0\n");
        let missing = dir.join("missing.sdp");
        let h = |s: &str| vec![s.to_string()];
        let r = |s: &str| vec![s.to_string()];
        let (h1, h2, h3, h4, h5, h6) = (
            h("X-A {user}"),
            h("X A: 1"),
            h("Call-ID: x"),
            h("X-A: {usr}"),
            h("X-A: a\rb"),
            h("Route: <sip:x;lr>"),
        );
        let (r1, r2, r3) = (r("sip:proxy.example.test"), r("http://x"), r("sip:a b;lr"));
        let cases: Vec<(ReachValues<'_>, &str, &str)> = vec![
            (
                ReachValues {
                    domain: Some("exa mple"),
                    ..values()
                },
                "--domain",
                "not a host",
            ),
            (
                ReachValues {
                    domain: Some("u@example.test"),
                    ..values()
                },
                "--domain",
                "not a host",
            ),
            (
                ReachValues {
                    domain: Some("example.test;x=1"),
                    ..values()
                },
                "--domain",
                "not a host",
            ),
            (
                ReachValues {
                    routes: &r1,
                    ..values()
                },
                "--route",
                "no ;lr",
            ),
            (
                ReachValues {
                    routes: &r2,
                    ..values()
                },
                "--route",
                "not a sip: or sips: URI",
            ),
            (
                ReachValues {
                    routes: &r3,
                    ..values()
                },
                "--route",
                "not a sip: or sips: URI",
            ),
            (
                ReachValues {
                    callee: Some("{1000..99}"),
                    ..values()
                },
                "--callee",
                "bad range",
            ),
            (
                ReachValues {
                    callee: Some("{1..2}{3..4}"),
                    ..values()
                },
                "--callee",
                "only one",
            ),
            (
                ReachValues {
                    callee: Some("a b"),
                    ..values()
                },
                "--callee",
                "not a SIP user part",
            ),
            (
                ReachValues {
                    callee: Some("field:x"),
                    ..values()
                },
                "--callee",
                "field number",
            ),
            (
                ReachValues {
                    caller: Some("x@y"),
                    ..values()
                },
                "--caller",
                "not a SIP user part",
            ),
            (
                ReachValues {
                    caller: Some("{100"),
                    ..values()
                },
                "--caller",
                "without a matching",
            ),
            (
                ReachValues {
                    from_display: Some("a\nb"),
                    ..values()
                },
                "--from-display",
                "line break",
            ),
            (
                ReachValues {
                    headers: &h1,
                    ..values()
                },
                "--header",
                "not 'Name: value'",
            ),
            (
                ReachValues {
                    headers: &h2,
                    ..values()
                },
                "--header",
                "not a header name",
            ),
            (
                ReachValues {
                    headers: &h3,
                    ..values()
                },
                "--header",
                "Call-ID cannot be set",
            ),
            (
                ReachValues {
                    headers: &h4,
                    ..values()
                },
                "--header",
                "X-A: unknown placeholder {usr}",
            ),
            (
                ReachValues {
                    headers: &h5,
                    ..values()
                },
                "--header",
                "line break",
            ),
            (
                ReachValues {
                    headers: &h6,
                    ..values()
                },
                "--header",
                "use --route",
            ),
            (
                ReachValues {
                    sdp: Some(&unclosed),
                    ..values()
                },
                "--sdp",
                "unclosed.sdp:2: '{' at byte",
            ),
            (
                ReachValues {
                    sdp: Some(&unknown),
                    ..values()
                },
                "--sdp",
                "unknown.sdp:4: unknown placeholder {usr}",
            ),
            (
                ReachValues {
                    sdp: Some(&no_blank),
                    ..values()
                },
                "--sdp",
                "noblank.sdp:2: a blank line",
            ),
            (
                ReachValues {
                    sdp: Some(&empty),
                    ..values()
                },
                "--sdp",
                "empty",
            ),
            (
                ReachValues {
                    sdp: Some(&missing),
                    ..values()
                },
                "--sdp",
                "cannot read",
            ),
            (
                ReachValues {
                    sdp: Some(&ok),
                    content_type: Some("sdp"),
                    ..values()
                },
                "--content-type",
                "not a media type",
            ),
            (
                ReachValues {
                    content_type: Some("application/sdp"),
                    ..values()
                },
                "--content-type",
                "give --sdp",
            ),
            (
                ReachValues {
                    local_port: Some(65535),
                    ..values()
                },
                "--local-port",
                "beyond 65535",
            ),
        ];
        for (v, flag, needle) in cases {
            let e = Reach::build(v, 2).unwrap_err().to_string();
            assert!(
                e.starts_with(flag) && e.contains(needle),
                "{flag} {needle}: {e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sdp_file_content_type_and_line_ends() {
        let dir = std::env::temp_dir().join(format!("sipstorm-reach-sdp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("offer.sdp");
        std::fs::write(
            &p,
            "Content-Type: application/vnd.test+sdp\n\nv=0\r\nc=IN IP{media_ip_type} {media_ip}\n",
        )
        .unwrap();
        let b = offer(&p, None).unwrap();
        assert_eq!(&*b.content_type, b"application/vnd.test+sdp");
        assert_eq!(
            b.body.slots().collect::<Vec<_>>(),
            [Slot::MediaIpType, Slot::MediaIp]
        );
        let b = offer(&p, Some("application/sdp")).unwrap();
        assert_eq!(&*b.content_type, b"application/sdp");
        std::fs::write(&p, "v=0\nm=audio {media_port} RTP/AVP 0\n").unwrap();
        let b = offer(&p, None).unwrap();
        assert_eq!(&*b.content_type, b"application/sdp");
        let users = crate::engine::UserSource::list(vec![("u".into(), "p".into())]);
        let mut out = Vec::new();
        b.body.render(
            &mut out,
            &crate::engine::template::Values {
                user: b"",
                callee: b"",
                domain: b"",
                call_id: b"",
                seq: b"",
                local_ip: b"",
                local_port: b"",
                media_ip: b"",
                media_ip_type: b"",
                media_port: b"40000",
                users: &users,
                index: 0,
            },
        );
        assert_eq!(out, b"v=0\r\nm=audio 40000 RTP/AVP 0\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fields_are_checked_against_the_users_file() {
        let users = Users::parse("SEQUENTIAL\nu1;p;tok1;9001\nu2;p;tok2\n", "users.csv").unwrap();
        let build = |headers: &[String], callee: Option<&str>| {
            Reach::build(
                ReachValues {
                    headers,
                    callee,
                    ..values()
                },
                1,
            )
            .unwrap()
        };
        let h2 = ["X-Tok: {field:2}".to_string()];
        assert!(build(&h2, None).check_fields(Some(&users)).is_ok());
        let e = build(&h2, None).check_fields(None).unwrap_err().to_string();
        assert!(e.starts_with("--header: field 2 needs --users"), "{e}");
        let e = build(&[], Some("field:3"))
            .check_fields(Some(&users))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--callee: users.csv:3: has 3 fields (0..2), no field 3");
        let e = build(&[], Some("field:1"))
            .check_fields(Some(
                &Users::parse("USER\nu;[authentication password=x]\n", "f").unwrap(),
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f:2: field 1") && e.contains("not a SIP user part"),
            "{e}"
        );
    }
}
