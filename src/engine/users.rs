//! Users and their passwords: generated from patterns (`u{000000..099999}`
//! and `pw-{user}`), listed from a SIPp injection file, or any name at all
//! (the registrar's side), plus the ranges of `--callee`/`--caller`.

use std::collections::HashMap;
use std::fmt;

use super::util::{IdHash, hash_bytes};

/// Errors in a user or password pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `{` without a matching `}`.
    #[error("pattern {0:?}: unclosed '{{'")]
    Unclosed(String),
    /// A range that is not `{START..END}` with decimal numbers, START ≤ END.
    #[error("pattern {0:?}: bad range, expected {{START..END}} such as {{000000..099999}}")]
    BadRange(String),
    /// More than one range in a user pattern.
    #[error("pattern {0:?}: only one {{START..END}} range is allowed")]
    TwoRanges(String),
    /// A password pattern placeholder other than `{user}` / `{index}`.
    #[error("pattern {0:?}: unknown placeholder, only {{user}} and {{index}} are known")]
    UnknownPlaceholder(String),
    /// No users at all.
    #[error("the user list is empty")]
    Empty,
}

#[derive(Clone)]
enum PwPart {
    Lit(Box<[u8]>),
    User,
    Index,
}

/// A name pattern: `PREFIX{START..END}SUFFIX` (the width of START sets the
/// zero padding) or a fixed name without braces. Entry `i` of
/// `u{000..099}` is `u` + `i` padded to three digits; a fixed name has one
/// entry. Used for generated users (`--user-pattern`), callees
/// (`--callee {1000..1999}`, `--callee 9999`) and callers (`--caller`);
/// takes no memory per entry.
#[derive(Clone, PartialEq, Eq)]
pub struct RangePattern {
    prefix: Box<[u8]>,
    suffix: Box<[u8]>,
    start: u64,
    count: u64,
    /// Zero padding of the number; 0 with `count == 1` and no range: a
    /// fixed name.
    width: usize,
    ranged: bool,
}

impl fmt::Debug for RangePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = String::from_utf8_lossy(&self.prefix);
        let s = String::from_utf8_lossy(&self.suffix);
        if self.ranged {
            let last = self.start + self.count - 1;
            write!(f, "{p}{{{:0w$}..{last}}}{s}", self.start, w = self.width)
        } else {
            write!(f, "{p}{s}")
        }
    }
}

impl RangePattern {
    /// Parse a pattern with at most one `{START..END}` range of decimal
    /// numbers, START ≤ END.
    pub fn parse(pat: &str) -> Result<RangePattern, ConfigError> {
        let Some(open) = pat.find('{') else {
            return Ok(RangePattern {
                prefix: pat.as_bytes().into(),
                suffix: Box::default(),
                start: 0,
                count: 1,
                width: 0,
                ranged: false,
            });
        };
        let close = pat[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| ConfigError::Unclosed(pat.into()))?;
        let inner = &pat[open + 1..close];
        let (a, b) = inner
            .split_once("..")
            .ok_or_else(|| ConfigError::BadRange(pat.into()))?;
        let (s, e) = match (digits(a), digits(b)) {
            (Some(s), Some(e)) if s <= e => (s, e),
            _ => return Err(ConfigError::BadRange(pat.into())),
        };
        if pat[close + 1..].contains('{') {
            return Err(ConfigError::TwoRanges(pat.into()));
        }
        Ok(RangePattern {
            prefix: pat.as_bytes()[..open].into(),
            suffix: pat.as_bytes()[close + 1..].into(),
            start: s,
            count: e - s + 1,
            width: a.len(),
            ranged: true,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Always false: a pattern has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The literal text around the range (to validate its characters).
    pub fn literals(&self) -> [&[u8]; 2] {
        [&self.prefix, &self.suffix]
    }

    /// Append entry `i` (taken modulo `len()`).
    pub fn write(&self, i: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        if self.ranged {
            write_padded(out, self.start + i % self.count.max(1), self.width);
        }
        out.extend_from_slice(&self.suffix);
    }

    /// The index of entry `name`, if it is one.
    pub fn index_of(&self, name: &[u8]) -> Option<u64> {
        let mid = name
            .strip_prefix(&self.prefix[..])
            .and_then(|r| r.strip_suffix(&self.suffix[..]))?;
        if !self.ranged {
            return mid.is_empty().then_some(0);
        }
        if mid.is_empty() || mid.len() > 18 || !mid.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = mid.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
        (n >= self.start && n < self.start + self.count).then(|| n - self.start)
    }
}

/// One user of an explicit list (a users file line).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ListUser {
    /// Every field of the line; field 0 is the AOR user name.
    pub fields: Vec<String>,
    /// The digest username: SIPp's keyword `username=`, else field 0.
    pub auth_name: String,
    pub password: String,
}

impl fmt::Debug for ListUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListUser")
            .field("fields", &self.fields.len())
            .field("auth_name", &self.auth_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ListUser {
    /// A user whose digest username is its name and who has no other field.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> ListUser {
        let name = name.into();
        ListUser {
            auth_name: name.clone(),
            fields: vec![name],
            password: password.into(),
        }
    }
    fn name(&self) -> &str {
        self.fields.first().map_or("", String::as_str)
    }
}

#[derive(Clone)]
enum Users {
    Pattern {
        names: RangePattern,
        pw: Box<[PwPart]>,
    },
    List {
        users: Vec<ListUser>,
        /// Digest username → index (what a registrar looks passwords up by).
        by_auth_name: HashMap<u64, u32, IdHash>,
    },
    /// Every user name exists; passwords from the pattern (`serve --password-pattern`).
    Any { pw: Box<[PwPart]> },
}

/// Where users and their passwords come from: user `i` → (name, digest
/// username, password, further fields).
///
/// Either generated from patterns (`u{000000..099999}` and `pw-{user}`, no
/// memory per user) or an explicit list (a SIPp injection file). Passwords are
/// never printed by `Debug`.
#[derive(Clone)]
pub struct UserSource {
    users: Users,
}

impl fmt::Debug for UserSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.users {
            Users::Pattern { names, .. } => f
                .debug_struct("UserSource::Pattern")
                .field("names", names)
                .field("passwords", &"<redacted>")
                .finish(),
            Users::Any { .. } => f
                .debug_struct("UserSource::Any")
                .field("passwords", &"<redacted>")
                .finish(),
            Users::List { users, .. } => f
                .debug_struct("UserSource::List")
                .field("len", &users.len())
                .field("passwords", &"<redacted>")
                .finish(),
        }
    }
}

const NAME_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
        return None;
    }
    s.parse().ok()
}

impl UserSource {
    /// Users from a name pattern with at most one `{START..END}` range (see
    /// [`RangePattern`]) and a password pattern where `{user}` is the user
    /// name and `{index}` the decimal index; a password pattern without
    /// placeholders is the same password for everyone.
    pub fn pattern(user_pat: &str, pw_pat: &str) -> Result<Self, ConfigError> {
        let names = RangePattern::parse(user_pat)?;
        let pw = parse_pw(pw_pat)?;
        Ok(UserSource {
            users: Users::Pattern { names, pw },
        })
    }

    /// Every user name is accepted and its password is `pw_pat` with
    /// `{user}` replaced: the registrar side of `serve --password-pattern`.
    pub fn any(pw_pat: &str) -> Result<Self, ConfigError> {
        Ok(UserSource {
            users: Users::Any {
                pw: parse_pw(pw_pat)?,
            },
        })
    }

    /// An explicit list of (name, password) pairs.
    pub fn list(users: Vec<(String, String)>) -> Self {
        Self::lines(
            users
                .into_iter()
                .map(|(n, p)| ListUser::new(n, p))
                .collect(),
        )
    }

    /// An explicit list of users with all their fields. A registrar looks
    /// passwords up by digest username; when two users share one, the
    /// first is found.
    pub fn lines(users: Vec<ListUser>) -> Self {
        let mut by_auth_name = HashMap::with_capacity_and_hasher(users.len(), IdHash::default());
        for (i, u) in users.iter().enumerate() {
            by_auth_name
                .entry(hash_bytes(NAME_SEED, u.auth_name.as_bytes()))
                .or_insert(i as u32);
        }
        UserSource {
            users: Users::List {
                users,
                by_auth_name,
            },
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        match &self.users {
            Users::Pattern { names, .. } => names.len() as usize,
            Users::List { users, .. } => users.len(),
            Users::Any { .. } => usize::MAX,
        }
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn listed(&self, i: usize) -> Option<&ListUser> {
        match &self.users {
            Users::List { users, .. } if !users.is_empty() => Some(&users[i % users.len()]),
            _ => None,
        }
    }

    /// Append the name of user `i` (taken modulo `len()`) to `out`; an
    /// [`UserSource::any`] source names user `i` by its decimal index.
    pub fn write_name(&self, i: usize, out: &mut Vec<u8>) {
        match &self.users {
            Users::Any { .. } => write_padded(out, i as u64, 0),
            Users::Pattern { names, .. } => names.write(i as u64, out),
            Users::List { .. } => {
                if let Some(u) = self.listed(i) {
                    out.extend_from_slice(u.name().as_bytes());
                }
            }
        }
    }

    /// Append the digest username of user `i`: the users file's keyword
    /// `username=` when it has one, else the name.
    pub fn write_auth_name(&self, i: usize, out: &mut Vec<u8>) {
        match self.listed(i) {
            Some(u) => out.extend_from_slice(u.auth_name.as_bytes()),
            None => self.write_name(i, out),
        }
    }

    /// Append field `n` of user `i`'s users-file line (field 0 is the name;
    /// a generated user has no other field). False when there is no such
    /// field.
    pub fn write_field(&self, i: usize, n: usize, out: &mut Vec<u8>) -> bool {
        if n == 0 {
            self.write_name(i, out);
            return true;
        }
        match self.listed(i).and_then(|u| u.fields.get(n)) {
            Some(f) => {
                out.extend_from_slice(f.as_bytes());
                true
            }
            None => false,
        }
    }

    /// Append the password of user `i` to `out`.
    pub fn write_password(&self, i: usize, out: &mut Vec<u8>) {
        match &self.users {
            Users::Pattern { pw, .. } | Users::Any { pw } => {
                let mut name = Vec::new();
                for p in pw.iter() {
                    match p {
                        PwPart::Lit(l) => out.extend_from_slice(l),
                        PwPart::User => {
                            name.clear();
                            self.write_name(i, &mut name);
                            out.extend_from_slice(&name);
                        }
                        PwPart::Index => write_padded(out, i as u64, 0),
                    }
                }
            }
            Users::List { .. } => {
                if let Some(u) = self.listed(i) {
                    out.extend_from_slice(u.password.as_bytes());
                }
            }
        }
    }

    /// The password of the user whose digest username is `name`, appended
    /// to `out`; false when no such user exists (a registrar answers 404
    /// then).
    pub fn password_of(&self, name: &[u8], out: &mut Vec<u8>) -> bool {
        match &self.users {
            Users::Pattern { names, pw } => {
                // Any name matching the pattern shape is a user: the registrar
                // does not need to enumerate them.
                let Some(index) = names.index_of(name) else {
                    return false;
                };
                for p in pw.iter() {
                    match p {
                        PwPart::Lit(l) => out.extend_from_slice(l),
                        PwPart::User => out.extend_from_slice(name),
                        PwPart::Index => write_padded(out, index, 0),
                    }
                }
                true
            }
            Users::Any { pw } => {
                for p in pw.iter() {
                    match p {
                        PwPart::Lit(l) => out.extend_from_slice(l),
                        PwPart::User => out.extend_from_slice(name),
                        PwPart::Index => out.push(b'0'),
                    }
                }
                true
            }
            Users::List {
                users,
                by_auth_name,
            } => match by_auth_name.get(&hash_bytes(NAME_SEED, name)) {
                Some(&i) if users[i as usize].auth_name.as_bytes() == name => {
                    out.extend_from_slice(users[i as usize].password.as_bytes());
                    true
                }
                _ => false,
            },
        }
    }
}

fn parse_pw(pw_pat: &str) -> Result<Box<[PwPart]>, ConfigError> {
    let mut pw = Vec::new();
    let mut rest = pw_pat;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pw.push(PwPart::Lit(rest.as_bytes()[..open].into()));
        }
        let close = rest[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| ConfigError::Unclosed(pw_pat.into()))?;
        match &rest[open + 1..close] {
            "user" => pw.push(PwPart::User),
            "index" => pw.push(PwPart::Index),
            _ => return Err(ConfigError::UnknownPlaceholder(pw_pat.into())),
        }
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pw.push(PwPart::Lit(rest.as_bytes().into()));
    }
    Ok(pw.into())
}

fn write_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut v = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    for _ in len..width {
        out.push(b'0');
    }
    out.extend_from_slice(&tmp[i..]);
}
