//! Engine configuration: RFC 3261 timer bases, scenarios, users and the
//! client / server settings a worker hands to [`super::Endpoint`].

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::util::{IdHash, hash_bytes};

/// RFC 3261 §17.1.1.1 timer bases. Every transaction timer derives from them:
/// A/E/G start at T1 and double (E and G capped at T2), B/F/H/J/L are 64·T1,
/// I and K are T4, D is max(32 s, 64·T1) on an unreliable transport. On a
/// reliable one A, E and G do not run and D, I, J and K are zero (§17.1.1.2,
/// §17.1.2.2, §17.2.1, §17.2.2); B, F, H and L are still 64·T1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J and L (RFC 3261 §17, RFC 6026 §8.4).
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
    /// Timer D: "at least 32 seconds for unreliable transports" (§17.1.1.2).
    pub fn timer_d(&self) -> Duration {
        self.t64().max(Duration::from_secs(32))
    }
}

/// What one attempt started by [`super::Endpoint::start_attempt`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// REGISTER with digest authentication; with a hold time refresh and unregister.
    #[default]
    Register,
    /// INVITE → ACK → hold → BYE.
    Call,
    /// Out-of-dialog OPTIONS ping.
    Options,
    /// Register this worker's users with Contacts pointing at the engine,
    /// then call between them through the target and answer on the UAS side.
    Mixed,
}

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

#[derive(Clone)]
enum Users {
    Pattern {
        prefix: Box<[u8]>,
        suffix: Box<[u8]>,
        start: u64,
        count: u64,
        width: usize,
        pw: Box<[PwPart]>,
    },
    List {
        users: Vec<(String, String)>,
        by_name: HashMap<u64, u32, IdHash>,
    },
    /// Every user name exists; passwords from the pattern (`serve --password-pattern`).
    Any { pw: Box<[PwPart]> },
}

/// Where users and their passwords come from: user `i` → (name, password).
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
            Users::Pattern {
                prefix,
                start,
                count,
                ..
            } => f
                .debug_struct("UserSource::Pattern")
                .field("prefix", &String::from_utf8_lossy(prefix))
                .field("start", start)
                .field("count", count)
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
    /// Users from a name pattern with at most one `{START..END}` range (the
    /// width of START sets the zero padding) and a password pattern where
    /// `{user}` is the user name and `{index}` the decimal index; a password
    /// pattern without placeholders is the same password for everyone.
    pub fn pattern(user_pat: &str, pw_pat: &str) -> Result<Self, ConfigError> {
        let (prefix, suffix, start, count, width) = match user_pat.find('{') {
            None => (user_pat.as_bytes(), &b""[..], 0, 1, 0),
            Some(open) => {
                let close = user_pat[open..]
                    .find('}')
                    .map(|c| c + open)
                    .ok_or_else(|| ConfigError::Unclosed(user_pat.into()))?;
                let inner = &user_pat[open + 1..close];
                let (a, b) = inner
                    .split_once("..")
                    .ok_or_else(|| ConfigError::BadRange(user_pat.into()))?;
                let (s, e) = match (digits(a), digits(b)) {
                    (Some(s), Some(e)) if s <= e => (s, e),
                    _ => return Err(ConfigError::BadRange(user_pat.into())),
                };
                if user_pat[close + 1..].contains('{') {
                    return Err(ConfigError::TwoRanges(user_pat.into()));
                }
                (
                    &user_pat.as_bytes()[..open],
                    &user_pat.as_bytes()[close + 1..],
                    s,
                    e - s + 1,
                    a.len(),
                )
            }
        };
        let pw = parse_pw(pw_pat)?;
        Ok(UserSource {
            users: Users::Pattern {
                prefix: prefix.into(),
                suffix: suffix.into(),
                start,
                count,
                width,
                pw,
            },
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
        let mut by_name = HashMap::with_capacity_and_hasher(users.len(), IdHash::default());
        for (i, (n, _)) in users.iter().enumerate() {
            by_name
                .entry(hash_bytes(NAME_SEED, n.as_bytes()))
                .or_insert(i as u32);
        }
        UserSource {
            users: Users::List { users, by_name },
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        match &self.users {
            Users::Pattern { count, .. } => *count as usize,
            Users::List { users, .. } => users.len(),
            Users::Any { .. } => usize::MAX,
        }
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the name of user `i` (taken modulo `len()`) to `out`; an
    /// [`UserSource::any`] source names user `i` by its decimal index.
    pub fn write_name(&self, i: usize, out: &mut Vec<u8>) {
        match &self.users {
            Users::Any { .. } => write_padded(out, i as u64, 0),
            Users::Pattern {
                prefix,
                suffix,
                start,
                count,
                width,
                ..
            } => {
                out.extend_from_slice(prefix);
                if *count > 1 || *width > 0 {
                    let n = start + (i as u64 % count.max(&1));
                    write_padded(out, n, *width);
                }
                out.extend_from_slice(suffix);
            }
            Users::List { users, .. } => {
                if !users.is_empty() {
                    out.extend_from_slice(users[i % users.len()].0.as_bytes());
                }
            }
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
            Users::List { users, .. } => {
                if !users.is_empty() {
                    out.extend_from_slice(users[i % users.len()].1.as_bytes());
                }
            }
        }
    }

    /// The password of the user called `name`, appended to `out`; false when
    /// no such user exists (a registrar answers 404 then).
    pub fn password_of(&self, name: &[u8], out: &mut Vec<u8>) -> bool {
        match &self.users {
            Users::Pattern {
                prefix,
                suffix,
                start,
                count,
                width,
                pw,
            } => {
                // Any name matching the pattern shape is a user: the registrar
                // does not need to enumerate them.
                let Some(mid) = name
                    .strip_prefix(&prefix[..])
                    .and_then(|r| r.strip_suffix(&suffix[..]))
                else {
                    return false;
                };
                let index = if *count > 1 || *width > 0 {
                    if mid.is_empty() || mid.len() > 18 || !mid.iter().all(u8::is_ascii_digit) {
                        return false;
                    }
                    let n = mid.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
                    if n < *start || n >= start + count {
                        return false;
                    }
                    n - start
                } else if mid.is_empty() {
                    0
                } else {
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
            Users::List { users, by_name } => match by_name.get(&hash_bytes(NAME_SEED, name)) {
                Some(&i) if users[i as usize].0.as_bytes() == name => {
                    out.extend_from_slice(users[i as usize].1.as_bytes());
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

/// Settings of a load-generating endpoint (`sipstorm run`, one per worker).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// What each attempt does.
    pub scenario: Scenario,
    /// The server under test (registrar / proxy / UAS): every out-of-dialog request goes there.
    pub target: SocketAddr,
    /// This worker's own address, written into Via and Contact.
    pub local: SocketAddr,
    /// How requests reach the target (Via transport token, reliability).
    pub transport: crate::flow::TransportKind,
    /// Over a stream transport, which connection each attempt's requests
    /// take: the key the engine puts in their [`Flow`](crate::flow::Flow)
    /// (one per pool slot, per user or per attempt; see
    /// [`ConnId::key`](crate::flow::ConnId::key)).
    pub connection: crate::flow::ConnectionMode,
    /// Users and passwords.
    pub users: Arc<UserSource>,
    /// This worker uses users `user_offset + k·user_stride` (k = 0, 1, …) so
    /// workers and segments never share a user.
    pub user_offset: usize,
    /// See `user_offset`; 1 when one worker owns all users.
    pub user_stride: usize,
    /// Fixed callee user for calls (`sip:service@domain` style); `None` calls the next user.
    pub callee: Option<String>,
    /// Domain of the AORs and request-URIs; empty = the target's address.
    pub domain: String,
    /// Fraction of calls cancelled after the first provisional response.
    pub cancel_ratio: f64,
    /// Requested registration lifetime in seconds.
    pub expires: u32,
    /// RFC 3261 timer bases.
    pub timers: Timers,
    /// Seed of identifiers (Call-ID, tags, branches) and of random choices.
    pub seed: u64,
    /// A call without a final response this long after its INVITE is cancelled
    /// and ends as [`super::Outcome::Timeout`] (no timer in §17 bounds the
    /// Proceeding state, so the TU must).
    pub ring_timeout: Duration,
    /// Mixed mode, answering side: delay before the 200 (100 and 180 go at
    /// once), drawn per call.
    pub answer_ring: crate::dist::Delay,
    /// SDP offer body; empty = a built-in PCMU offer.
    pub sdp: Vec<u8>,
    /// Digest algorithms accepted in challenges, preferred first; empty =
    /// the first challenge offered (RFC 8760 §2.4: a server offering
    /// several lists its preferred first; a client takes the first it
    /// supports). A response offering none of them fails the attempt.
    pub digest_algorithms: Vec<crate::auth::Algorithm>,
    /// The qop answered when a challenge offers both `auth` and `auth-int`.
    pub digest_qop: crate::auth::Qop,
}

impl ClientConfig {
    /// Defaults for everything but the scenario and the two addresses; users
    /// `u{000000..000999}` with passwords `pw-{user}`.
    pub fn new(scenario: Scenario, target: SocketAddr, local: SocketAddr) -> Self {
        ClientConfig {
            scenario,
            target,
            local,
            transport: crate::flow::TransportKind::Udp,
            connection: crate::flow::ConnectionMode::default(),
            users: Arc::new(
                UserSource::pattern("u{000000..000999}", "pw-{user}")
                    .unwrap_or_else(|_| UserSource::list(vec![("u0".into(), "pw-u0".into())])),
            ),
            user_offset: 0,
            user_stride: 1,
            callee: None,
            domain: String::new(),
            cancel_ratio: 0.0,
            expires: 3600,
            timers: Timers::default(),
            seed: 1,
            ring_timeout: Duration::from_secs(60),
            answer_ring: crate::dist::Delay::default(),
            sdp: Vec::new(),
            digest_algorithms: Vec::new(),
            digest_qop: crate::auth::Qop::Auth,
        }
    }
}

impl ClientConfig {
    /// Where out-of-dialog requests go: the target over the configured
    /// transport, on whatever connection the transport picks.
    pub fn target_flow(&self) -> crate::flow::Flow {
        crate::flow::Flow::new(self.transport, self.target, crate::flow::ConnId::ANY)
    }
}

/// Settings of the built-in target (`sipstorm serve`, one per worker).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address this worker listens on (written into Contact).
    pub local: SocketAddr,
    /// Digest realm.
    pub realm: String,
    /// Challenge REGISTER with 401 and verify credentials.
    pub auth: bool,
    /// Also challenge INVITE with 407 (only when `auth` is on).
    pub auth_invite: bool,
    /// Password of each user (pattern or list).
    pub passwords: Arc<UserSource>,
    /// Delay between the 180 and the 200 of an answered call, drawn per call.
    pub ring: crate::dist::Delay,
    /// Forward requests for users with a registered binding to the bound
    /// Contact (a stateless proxy, RFC 3261 §16.11) instead of answering
    /// them: what `mixed` mode goes through.
    pub proxy: bool,
    /// Fraction of calls answered 486 Busy Here.
    pub busy_ratio: f64,
    /// Fraction of calls that ring and are never answered (until CANCEL or
    /// `no_answer_timeout`, then 480).
    pub no_answer_ratio: f64,
    /// Digest algorithm offered in challenges.
    pub algorithm: crate::auth::Algorithm,
    /// Offer `qop="auth-int"` (the body is hashed too) instead of `qop="auth"`.
    pub qop_auth_int: bool,
    /// How long a nonce is fresh; afterwards credentials get `stale=true`.
    pub nonce_lifetime: Duration,
    /// Smallest registration lifetime accepted; shorter ones get 423 (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Largest registration lifetime granted.
    pub max_expires: u32,
    /// A ringing call not answered is ended with 480 after this long.
    pub no_answer_timeout: Duration,
    /// An established call with no BYE is forgotten after this long, so a
    /// vanished client cannot leak server state.
    pub max_call: Duration,
    /// RFC 3261 timer bases.
    pub timers: Timers,
    /// Seed of tags and random choices; its low byte is the nonce stream,
    /// so give each worker its own.
    pub seed: u64,
    /// Seed of the nonce secret: the same for every worker of one server so
    /// a nonce minted by one worker verifies on another.
    pub nonce_seed: u64,
    /// SDP answer body; empty = a built-in PCMU answer.
    pub sdp: Vec<u8>,
    /// Most calls one peer (source address and port) may hold open at once;
    /// beyond it new INVITEs get 503 with Retry-After (RFC 3261 §21.5.4), so
    /// one misbehaving client (INVITEs without BYE) cannot exhaust the
    /// server. Default 2^17: above the 100,000 concurrent calls a single
    /// `sipstorm run` worker may hold.
    pub max_calls_per_peer: u32,
    /// The address it listens on per transport (`serve --listen tcp:...`):
    /// the Contact of its responses names the one the request came over
    /// (RFC 3261 §8.1.1.8, RFC 5630 §3.1.3 for `sips:`). Empty: `local`
    /// over UDP.
    pub listen: Vec<(crate::flow::TransportKind, SocketAddr)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            local: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            realm: "sipstorm".into(),
            auth: true,
            auth_invite: false,
            passwords: Arc::new(
                UserSource::any("pw-{user}").unwrap_or_else(|_| UserSource::list(Vec::new())),
            ),
            ring: crate::dist::Delay::default(),
            proxy: true,
            busy_ratio: 0.0,
            no_answer_ratio: 0.0,
            algorithm: crate::auth::Algorithm::Md5,
            qop_auth_int: false,
            nonce_lifetime: Duration::from_secs(300),
            min_expires: 60,
            max_expires: 7200,
            no_answer_timeout: Duration::from_secs(120),
            max_call: Duration::from_secs(3600),
            timers: Timers::default(),
            seed: 2,
            nonce_seed: 0x5eed_5eed,
            sdp: Vec::new(),
            max_calls_per_peer: 1 << 17,
            listen: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(u: &UserSource, i: usize) -> String {
        let mut v = Vec::new();
        u.write_name(i, &mut v);
        String::from_utf8(v).unwrap()
    }
    fn pw(u: &UserSource, i: usize) -> String {
        let mut v = Vec::new();
        u.write_password(i, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn patterns() {
        let u = UserSource::pattern("u{000000..099999}", "pw-{user}").unwrap();
        assert_eq!(u.len(), 100_000);
        assert_eq!(name(&u, 0), "u000000");
        assert_eq!(name(&u, 42), "u000042");
        assert_eq!(pw(&u, 42), "pw-u000042");
        let mut out = Vec::new();
        assert!(u.password_of(b"u000042", &mut out));
        assert_eq!(out, b"pw-u000042");
        out.clear();
        assert!(!u.password_of(b"u100000", &mut out));
        assert!(!u.password_of(b"x000001", &mut out));
        assert!(!u.password_of(b"u00000a", &mut out));

        let u = UserSource::pattern("alice", "secret").unwrap();
        assert_eq!(
            (u.len(), name(&u, 3), pw(&u, 3)),
            (1, "alice".into(), "secret".into())
        );
        let u = UserSource::pattern("{1..20}@x", "p{index}").unwrap();
        assert_eq!(
            (u.len(), name(&u, 0), pw(&u, 4)),
            (20, "1@x".into(), "p4".into())
        );
        assert!(u.password_of(b"7@x", &mut out));
    }

    #[test]
    fn bad_patterns() {
        for (u, p) in [
            ("u{0..", "x"),
            ("u{5..1}", "x"),
            ("u{a..b}", "x"),
            ("u{1..2}{3..4}", "x"),
            ("u", "{pass}"),
            ("u", "{user"),
        ] {
            assert!(UserSource::pattern(u, p).is_err(), "{u} {p}");
        }
    }

    #[test]
    fn list_and_debug() {
        let u = UserSource::list(vec![
            ("a".into(), "s3cret".into()),
            ("b".into(), "x".into()),
        ]);
        assert_eq!(u.len(), 2);
        let mut out = Vec::new();
        assert!(u.password_of(b"b", &mut out));
        assert_eq!(out, b"x");
        assert!(!u.password_of(b"c", &mut out));
        assert!(!format!("{u:?}").contains("s3cret"));
        let a = UserSource::any("pw-{user}").unwrap();
        assert!(a.password_of(b"bob", &mut out));
        assert!(out.ends_with(b"pw-bob"));
        let p = UserSource::pattern("u{1..2}", "s3cret").unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}
