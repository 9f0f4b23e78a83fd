//! Users files in SIPp's injection CSV format, so SIPp users bring their
//! files as they are.
//!
//! The first non-comment line names the order (`SEQUENTIAL`, `RANDOM` or
//! `USER`, as SIPp's `-inf`); every further line is one user, fields split on
//! `;`. Every field is kept and addressable (`{field:N}`, `--callee
//! field:N`). Field 0 is the user part of the AOR. Field 1 is the password,
//! either plain (`u000001;secret`) or SIPp's keyword form
//! (`u000001;[authentication username=auth1 password=secret]`), where the
//! keyword's `username` (when present) is the digest username and field 0
//! stays the AOR user. Lines starting with `#` and blank lines are ignored.
//!
//! Beyond SIPp, which splits every line on every `;`: a field that starts
//! with `[` runs to its closing `]`, so a keyword's password may contain
//! `;`, and a keyword value may be quoted (`password="p w;x"`, with `\"`
//! and `\\` escapes) to contain spaces. A line that cannot be read is an
//! error naming file:line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The order SIPp reads users in; sipstorm hands users to workers
/// deterministically either way, and `RANDOM` only shuffles the start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Sequential,
    Random,
    User,
}

/// A password that never prints itself: `Debug` and `Display` write `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The password bytes, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One user of the file.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Field 0: the user part of the AOR.
    pub name: String,
    /// The digest username: the keyword's `username=` when given, else `name`.
    pub auth_name: String,
    pub password: Secret,
    /// Every field of the line, trimmed; `fields[0]` is `name` (a keyword
    /// field is kept as written, password included, so `Debug` leaves
    /// fields out).
    pub fields: Vec<String>,
    /// Where the user is in the file (1-based), for messages.
    pub line: usize,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("auth_name", &self.auth_name)
            .field("password", &self.password)
            .field("fields", &self.fields.len())
            .field("line", &self.line)
            .finish()
    }
}

/// A parsed users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// The file as named by the user (in messages).
    pub path: String,
    pub order: Order,
    pub users: Vec<User>,
}

/// What is wrong with a users file; every variant names the file, and the
/// line when there is one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersError {
    #[error("{path}: cannot read: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: first line must be SEQUENTIAL, RANDOM or USER, found {found:?}")]
    BadOrder { path: String, found: String },
    #[error("{path}:{line}: {problem}")]
    BadLine {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("{path}: no users in file")]
    Empty { path: String },
}

impl Users {
    /// Reads and parses a users file.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| UsersError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Users::parse(&text, &shown)
    }

    /// Parses the text of a users file; `path` only labels errors.
    pub fn parse(text: &str, path: &str) -> Result<Users, UsersError> {
        let mut order = None;
        let mut users = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if order.is_none() {
                order = Some(match line.to_ascii_uppercase().as_str() {
                    "SEQUENTIAL" => Order::Sequential,
                    "RANDOM" => Order::Random,
                    "USER" => Order::User,
                    _ => {
                        return Err(UsersError::BadOrder {
                            path: path.into(),
                            found: line.chars().take(40).collect(),
                        });
                    }
                });
                continue;
            }
            users.push(
                parse_line(line, i + 1).map_err(|problem| UsersError::BadLine {
                    path: path.into(),
                    line: i + 1,
                    problem,
                })?,
            );
        }
        if order.is_none() || users.is_empty() {
            return Err(UsersError::Empty { path: path.into() });
        }
        Ok(Users {
            path: path.into(),
            order: order.unwrap_or(Order::Sequential),
            users,
        })
    }

    /// Which digest usernames may change the bindings of which AOR (RFC
    /// 3261 §10.3 step 6), as the file says: AOR user (field 0) → the
    /// digest usernames of the lines with that field 0 (the keyword's
    /// `username=`, or field 0 itself when the line has none).
    pub fn digest_users_by_aor(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for u in &self.users {
            m.entry(u.name.clone())
                .or_default()
                .insert(u.auth_name.clone());
        }
        m
    }

    /// (digest username, password) of every user, once each: what a
    /// registrar verifies credentials against. A digest username given
    /// two different passwords is an error naming both lines.
    pub fn digest_credentials(&self) -> Result<Vec<(String, Secret)>, UsersError> {
        let mut first: BTreeMap<&str, &User> = BTreeMap::new();
        let mut out = Vec::new();
        for u in &self.users {
            match first.get(u.auth_name.as_str()) {
                None => {
                    first.insert(&u.auth_name, u);
                    out.push((u.auth_name.clone(), u.password.clone()));
                }
                Some(f) if f.password == u.password => {}
                Some(f) => {
                    return Err(UsersError::BadLine {
                        path: self.path.clone(),
                        line: u.line,
                        problem: format!(
                            "digest username '{}' has another password on line {}",
                            u.auth_name, f.line
                        ),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// RFC 3261 §25.1 `user`: unreserved, user-unreserved (but `;`, the field
/// separator) or `%HH` escapes; not empty.
pub fn is_sip_user(s: &str) -> bool {
    !s.is_empty() && sip_user_chars(s)
}

/// The characters of [`is_sip_user`], empty allowed (the literal parts
/// around a pattern's range).
pub fn sip_user_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,?/".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// One user line (`lineno` for messages).
fn parse_line(line: &str, lineno: usize) -> Result<User, String> {
    let fields = split_fields(line)?;
    let name = fields[0].clone();
    if name.is_empty() {
        return Err("field 0 (user name) is empty".into());
    }
    if !is_sip_user(&name) {
        return Err(format!(
            "field 0 {name:?} is not a SIP user part (RFC 3261 §25.1: letters, digits, \
             -_.!~*'()&=+$,?/ and %HH escapes)"
        ));
    }
    let pw_field = fields.get(1).map_or("", String::as_str);
    let (auth_name, password) = if pw_field.starts_with('[') {
        parse_keyword(pw_field)?
    } else {
        (None, pw_field.to_string())
    };
    Ok(User {
        auth_name: auth_name.unwrap_or_else(|| name.clone()),
        name,
        password: Secret(password),
        fields,
        line: lineno,
    })
}

/// Split a line on `;`, except inside a field that starts with `[` (up to
/// its `]`, outside quotes); every field trimmed.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let b = line.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'[') {
            let close = bracket_end(b, i).ok_or_else(|| {
                format!(
                    "field {} starts with '[' and has no closing ']' (a quoted value needs its closing '\"')",
                    fields.len()
                )
            })?;
            i = close + 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] != b';' {
                return Err(format!(
                    "field {}: text after the closing ']' (fields are separated by ';')",
                    fields.len()
                ));
            }
        } else {
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
        }
        fields.push(line[start..i].trim().to_string());
        if i >= b.len() {
            return Ok(fields);
        }
        i += 1; // the ';'
    }
}

/// The index of the `]` closing the `[` at `open`, skipping quoted text.
fn bracket_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses SIPp's `[authentication username=NAME password=PW]` keyword: the
/// digest username (when given) and the password. Values are bare (up to
/// a space) or quoted. Messages never repeat a value (it may be a
/// password).
fn parse_keyword(field: &str) -> Result<(Option<String>, String), String> {
    let inner = field
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("password keyword must be [authentication ...] with a closing ]")?
        .trim();
    let rest = inner
        .strip_prefix("authentication")
        .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        .ok_or("bracketed password field must start with 'authentication'")?;
    let b = rest.as_bytes();
    let mut user = None;
    let mut password = None;
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_end = i + b[i..]
            .iter()
            .position(|c| *c == b'=' || c.is_ascii_whitespace())
            .unwrap_or(b.len() - i);
        let key = &rest[i..key_end];
        if b.get(key_end) != Some(&b'=') {
            return Err(
                "[authentication ...] has a word that is not KEY=VALUE (quote a value with \
                 spaces: password=\"p w\")"
                    .into(),
            );
        }
        i = key_end + 1;
        let value = if b.get(i) == Some(&b'"') {
            let mut v = String::new();
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        let ch = rest[i + 1..].chars().next().unwrap_or('\\');
                        v.push(ch);
                        i += 1 + ch.len_utf8();
                        continue;
                    }
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                // Push whole UTF-8 characters.
                let ch = rest[i..].chars().next().unwrap_or('\u{fffd}');
                v.push(ch);
                i += ch.len_utf8();
            }
            if !closed {
                return Err(format!(
                    "[authentication ...]: the quoted {key}= has no closing '\"'"
                ));
            }
            if i < b.len() && !b[i].is_ascii_whitespace() {
                return Err(format!(
                    "[authentication ...]: text right after the quoted {key}= (separate values with spaces)"
                ));
            }
            v
        } else {
            let end = i + b[i..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(b.len() - i);
            let v = rest[i..end].to_string();
            i = end;
            v
        };
        let slot = match key {
            "username" => &mut user,
            "password" => &mut password,
            // SIPp's AKA parameters: not used by digest, accepted.
            "aka_K" | "aka_OP" | "aka_AMF" => continue,
            _ => {
                return Err(format!(
                    "[authentication ...]: unknown key '{}' (expected username=, password=)",
                    key.chars().take(20).collect::<String>()
                ));
            }
        };
        if slot.is_some() {
            return Err(format!("[authentication ...]: {key}= given twice"));
        }
        *slot = Some(value);
    }
    let password = password.ok_or("[authentication ...] has no password=")?;
    if user.as_deref() == Some("") {
        return Err("[authentication ...]: username= is empty".into());
    }
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, auth name, password, fields) per user.
    type Expected = (
        Order,
        &'static [(
            &'static str,
            &'static str,
            &'static str,
            &'static [&'static str],
        )],
    );

    #[test]
    fn table() {
        let cases: &[(&str, Result<Expected, &str>)] = &[
            (
                "SEQUENTIAL\nu1;secret\nu2;[authentication username=a2 password=p2]\n",
                Ok((
                    Order::Sequential,
                    &[
                        ("u1", "u1", "secret", &["u1", "secret"]),
                        (
                            "u2",
                            "a2",
                            "p2",
                            &["u2", "[authentication username=a2 password=p2]"],
                        ),
                    ],
                )),
            ),
            (
                "# users\r\nRANDOM\r\n\r\nu1;[authentication password=x]\r\n",
                Ok((
                    Order::Random,
                    &[("u1", "u1", "x", &["u1", "[authentication password=x]"])],
                )),
            ),
            (
                "USER\nalice\n",
                Ok((Order::User, &[("alice", "alice", "", &["alice"])])),
            ),
            (
                "sequential\nu1;p;extra; fields \n",
                Ok((
                    Order::Sequential,
                    &[("u1", "u1", "p", &["u1", "p", "extra", "fields"])],
                )),
            ),
            // `;` inside the keyword, spaces and quotes in a quoted value.
            (
                "SEQUENTIAL\n1000;[authentication username=auth-1000 password=s3;cr;t];tok-1000\n",
                Ok((
                    Order::Sequential,
                    &[(
                        "1000",
                        "auth-1000",
                        "s3;cr;t",
                        &[
                            "1000",
                            "[authentication username=auth-1000 password=s3;cr;t]",
                            "tok-1000",
                        ],
                    )],
                )),
            ),
            (
                "SEQUENTIAL\n+4930%2A1;[authentication  password=\"p w;\\\"x]\\\\\"   username=\"a b\" ] ;x\n",
                Ok((
                    Order::Sequential,
                    &[(
                        "+4930%2A1",
                        "a b",
                        "p w;\"x]\\",
                        &[
                            "+4930%2A1",
                            "[authentication  password=\"p w;\\\"x]\\\\\"   username=\"a b\" ]",
                            "x",
                        ],
                    )],
                )),
            ),
            (
                "SEQUENTIAL\nu;[authentication username=u password=p aka_K=00]\n",
                Ok((
                    Order::Sequential,
                    &[(
                        "u",
                        "u",
                        "p",
                        &["u", "[authentication username=u password=p aka_K=00]"],
                    )],
                )),
            ),
            ("ORDERED\nu1;p\n", Err("first line must be SEQUENTIAL")),
            ("SEQUENTIAL\n;p\n", Err(":2: field 0 (user name) is empty")),
            (
                "SEQUENTIAL\nu 1;p\n",
                Err(":2: field 0 \"u 1\" is not a SIP user part"),
            ),
            ("SEQUENTIAL\nu@x;p\n", Err(":2: field 0 \"u@x\"")),
            ("SEQUENTIAL\nu%2;p\n", Err(":2: field 0")),
            (
                "SEQUENTIAL\nu;[authentication username=u]\n",
                Err(":2: [authentication ...] has no password="),
            ),
            (
                "SEQUENTIAL\nu;[auth password=p]\n",
                Err("must start with 'authentication'"),
            ),
            (
                "SEQUENTIAL\nu;[authenticationx password=p]\n",
                Err("must start with 'authentication'"),
            ),
            (
                "SEQUENTIAL\nok;p\nu;[authentication password=p\n",
                Err(":3: field 1 starts with '[' and has no closing ']'"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=\"p]\n",
                Err(":2: field 1 starts with '['"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=p w]\n",
                Err(":2: [authentication ...] has a word that is not KEY=VALUE"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=\"p\"x]\n",
                Err("text right after the quoted password="),
            ),
            (
                "SEQUENTIAL\nu;[authentication realm=r password=p]\n",
                Err("unknown key 'realm'"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=a password=b]\n",
                Err("password= given twice"),
            ),
            (
                "SEQUENTIAL\nu;[authentication username= password=b]\n",
                Err("username= is empty"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=p] x\n",
                Err(":2: field 1: text after the closing ']'"),
            ),
            ("SEQUENTIAL\n", Err("no users")),
            ("", Err("no users")),
        ];
        for (text, want) in cases {
            let got = Users::parse(text, "f.csv");
            match (want, got) {
                (Ok((order, users)), Ok(got)) => {
                    assert_eq!(got.order, *order, "{text:?}");
                    let got: Vec<_> = got
                        .users
                        .iter()
                        .map(|u| {
                            (
                                u.name.as_str(),
                                u.auth_name.as_str(),
                                u.password.expose(),
                                u.fields.iter().map(String::as_str).collect::<Vec<_>>(),
                            )
                        })
                        .collect();
                    let want: Vec<_> = users
                        .iter()
                        .map(|(n, a, p, f)| (*n, *a, *p, f.to_vec()))
                        .collect();
                    assert_eq!(got, want, "{text:?}");
                }
                (Err(msg), Err(e)) => {
                    let s = e.to_string();
                    assert!(s.starts_with("f.csv"), "{s}");
                    assert!(s.contains(msg), "{text:?}: {s}");
                }
                (want, got) => panic!("{text:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_print() {
        let u = Users::parse(
            "SEQUENTIAL\nu1;topsecret\nu2;[authentication password=\"top secret\"]\n",
            "f",
        )
        .unwrap();
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("top secret"),
            "{shown}"
        );
        // Nor do messages about a bad keyword repeat its values.
        let e = Users::parse(
            "SEQUENTIAL\nu;[authentication password=hunter2 oops]\n",
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter2") && !e.contains("oops"), "{e}");
    }

    #[test]
    fn digest_users_by_aor_and_credentials() {
        let u = Users::parse(
            "SEQUENTIAL\n\
             1000;[authentication username=auth-1000 password=a]\n\
             1000;[authentication username=desk-1000 password=b]\n\
             1001;c\n\
             1002;[authentication username=auth-1000 password=a]\n",
            "f.csv",
        )
        .unwrap();
        let m = u.digest_users_by_aor();
        let got: Vec<(&str, Vec<&str>)> = m
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            got,
            [
                ("1000", vec!["auth-1000", "desk-1000"]),
                ("1001", vec!["1001"]),
                ("1002", vec!["auth-1000"]),
            ]
        );
        let creds: Vec<(String, String)> = u
            .digest_credentials()
            .unwrap()
            .into_iter()
            .map(|(n, p)| (n, p.expose().to_string()))
            .collect();
        assert_eq!(
            creds,
            [
                ("auth-1000".to_string(), "a".to_string()),
                ("desk-1000".into(), "b".into()),
                ("1001".into(), "c".into()),
            ]
        );
        let clash = Users::parse(
            "SEQUENTIAL\n1;[authentication username=x password=a]\n2;[authentication username=x password=b]\n",
            "f.csv",
        )
        .unwrap()
        .digest_credentials()
        .unwrap_err()
        .to_string();
        assert_eq!(
            clash,
            "f.csv:3: digest username 'x' has another password on line 2"
        );
    }
}
