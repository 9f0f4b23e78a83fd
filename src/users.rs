//! Users files in SIPp's injection CSV format, so SIPp users bring their
//! files as they are.
//!
//! The first non-comment line names the order (`SEQUENTIAL`, `RANDOM` or
//! `USER`, as SIPp's `-inf`); every further line is one user, fields split on
//! `;`. Field 0 is the user name. Field 1 is the password, either plain
//! (`u000001;secret`) or SIPp's keyword form
//! (`u000001;[authentication username=u000001 password=secret]`), where the
//! keyword's `username` (when present) is the authentication name. Lines
//! starting with `#` and blank lines are ignored.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Field 0: the user part of the AOR.
    pub name: String,
    /// The digest username: the keyword's `username=` when given, else `name`.
    pub auth_name: String,
    pub password: Secret,
}

/// A parsed users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    pub order: Order,
    pub users: Vec<User>,
}

/// What is wrong with a users file; every variant names the line.
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
        problem: &'static str,
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
            let bad = |problem| UsersError::BadLine {
                path: path.into(),
                line: i + 1,
                problem,
            };
            let mut fields = line.split(';');
            let name = fields.next().unwrap_or("").trim();
            if name.is_empty() {
                return Err(bad("field 0 (user name) is empty"));
            }
            let pw_field = fields.next().map(str::trim).unwrap_or("");
            let (auth_name, password) = if pw_field.starts_with('[') {
                parse_keyword(pw_field).map_err(bad)?
            } else {
                (None, pw_field.to_string())
            };
            users.push(User {
                name: name.to_string(),
                auth_name: auth_name.unwrap_or_else(|| name.to_string()),
                password: Secret(password),
            });
        }
        let Some(order) = order else {
            return Err(UsersError::Empty { path: path.into() });
        };
        if users.is_empty() {
            return Err(UsersError::Empty { path: path.into() });
        }
        Ok(Users { order, users })
    }
}

/// Parses SIPp's `[authentication username=NAME password=PW]` keyword.
fn parse_keyword(field: &str) -> Result<(Option<String>, String), &'static str> {
    let inner = field
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("password keyword must be [authentication ...] with a closing ]")?
        .trim();
    let rest = inner
        .strip_prefix("authentication")
        .ok_or("bracketed password field must start with 'authentication'")?;
    let mut user = None;
    let mut password = None;
    for part in rest.split_whitespace() {
        if let Some(v) = part.strip_prefix("username=") {
            user = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("password=") {
            password = Some(v.to_string());
        }
    }
    let password = password.ok_or("[authentication ...] has no password=")?;
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, auth name, password) per user.
    type Expected = (Order, &'static [(&'static str, &'static str, &'static str)]);

    #[test]
    fn table() {
        let cases: &[(&str, Result<Expected, &str>)] = &[
            (
                "SEQUENTIAL\nu1;secret\nu2;[authentication username=a2 password=p2]\n",
                Ok((
                    Order::Sequential,
                    &[("u1", "u1", "secret"), ("u2", "a2", "p2")],
                )),
            ),
            (
                "# users\r\nRANDOM\r\n\r\nu1;[authentication password=x]\r\n",
                Ok((Order::Random, &[("u1", "u1", "x")])),
            ),
            (
                "USER\nalice\n",
                Ok((Order::User, &[("alice", "alice", "")])),
            ),
            (
                "sequential\nu1;p;extra;fields\n",
                Ok((Order::Sequential, &[("u1", "u1", "p")])),
            ),
            ("ORDERED\nu1;p\n", Err("first line must be SEQUENTIAL")),
            ("SEQUENTIAL\n;p\n", Err(":2: field 0 (user name) is empty")),
            (
                "SEQUENTIAL\nu;[authentication username=u]\n",
                Err(":2: [authentication ...] has no password="),
            ),
            (
                "SEQUENTIAL\nu;[auth password=p]\n",
                Err("must start with 'authentication'"),
            ),
            (
                "SEQUENTIAL\nu;[authentication password=p\n",
                Err("closing ]"),
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
                        .map(|u| (u.name.as_str(), u.auth_name.as_str(), u.password.expose()))
                        .collect();
                    assert_eq!(&got[..], *users, "{text:?}");
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
        let u = Users::parse("SEQUENTIAL\nu1;topsecret\n", "f").unwrap();
        assert!(!format!("{u:?}").contains("topsecret"));
    }
}
