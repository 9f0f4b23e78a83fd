//! Engine configuration: RFC 3261 timer bases, scenarios, users and the
//! client / server settings a worker hands to [`super::Endpoint`].

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::template::{BodyTemplate, HeaderTemplate};
pub use super::users::{ConfigError, ListUser, RangePattern, UserSource};

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

/// Whom a call goes to (`--callee`) or whom it is from (`--caller`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Party {
    /// The callee is the next user, the caller the user itself.
    #[default]
    Default,
    /// Entries of a pattern (`{1000..1999}`, or a fixed `9999`): callees
    /// in turn, one caller per user.
    Pattern(RangePattern),
    /// Field N of the calling user's line of the users file.
    Field(u16),
}

impl Party {
    /// Append the party of user `user` (global index), for the `k`-th pick
    /// of a pattern; false for [`Party::Default`] (the caller decides) and
    /// for a user without that field.
    pub fn write(&self, users: &UserSource, user: usize, k: u64, out: &mut Vec<u8>) -> bool {
        match self {
            Party::Default => false,
            Party::Pattern(p) => {
                p.write(k, out);
                true
            }
            Party::Field(n) => users.write_field(user, usize::from(*n), out),
        }
    }
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
    /// Whom calls go to (`--callee`); [`Party::Default`] calls the next user.
    pub callee: Party,
    /// The From user (`--caller`); [`Party::Default`] is the user itself.
    pub caller: Party,
    /// Display name of From (`--from-display`), unquoted; empty = none.
    pub from_display: String,
    /// Domain of the AORs and request-URIs (`--domain`); empty = the
    /// target's address.
    pub domain: String,
    /// Preloaded Route set of out-of-dialog requests (RFC 3261 §8.1.2),
    /// loose routing: each a SIP URI with `;lr`, without angle brackets.
    /// Requests still go to `target` (the outbound proxy's address).
    pub routes: Vec<String>,
    /// Extra header lines of initial requests (REGISTER, INVITE, OPTIONS;
    /// not of CANCEL, ACK or BYE), in order.
    pub headers: Arc<[HeaderTemplate]>,
    /// The INVITE offer (`--sdp`); `None` = the built-in PCMU offer.
    pub offer: Option<Arc<BodyTemplate>>,
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
    /// Digest algorithms accepted in challenges, preferred first; empty =
    /// the first challenge offered (RFC 8760 §2.4: a server offering
    /// several lists its preferred first; a client takes the first it
    /// supports). A response offering none of them fails the attempt.
    pub digest_algorithms: Vec<crate::auth::Algorithm>,
    /// The qop answered when a challenge offers both `auth` and `auth-int`.
    pub digest_qop: crate::auth::Qop,
    /// Run a SIPp scenario (`run --sf`) instead of `scenario`.
    pub scenario_file: Option<super::scenario::ScenarioSetup>,
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
            callee: Party::Default,
            caller: Party::Default,
            from_display: String::new(),
            domain: String::new(),
            routes: Vec::new(),
            headers: Arc::from(Vec::new()),
            offer: None,
            cancel_ratio: 0.0,
            expires: 3600,
            timers: Timers::default(),
            seed: 1,
            ring_timeout: Duration::from_secs(60),
            answer_ring: crate::dist::Delay::default(),
            digest_algorithms: Vec::new(),
            digest_qop: crate::auth::Qop::Auth,
            scenario_file: None,
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

/// The built-in target's secret (32 bytes): it keys the MAC of digest
/// nonces (RFC 7616 §5.4) and of the proxy's branches, and the hash keys and
/// tags of every worker. One per server, the same for all its workers.
///
/// The engine reads no OS state, so the caller provides it: `serve` draws it
/// from the operating system's random source unless `--seed N` asks for a
/// reproducible run ([`ServerSecret::from_seed`], tests only: anyone who
/// knows N can mint nonces). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecret([u8; 32]);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    /// A secret from 32 random bytes (e.g. `getrandom`).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerSecret(bytes)
    }

    /// A secret derived from `seed`: reproducible, hence guessable. For
    /// tests, simulations and `serve --seed N`.
    pub fn from_seed(seed: u64) -> Self {
        let mut b = [0u8; 32];
        let mut r = crate::dist::Rng::new(seed ^ 0x5ec7_e75e_ed00_0000);
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        ServerSecret(b)
    }

    /// An independent 32-byte key for one use, `SHA-256(secret ‖ label)`,
    /// so the nonce MAC, the branch MAC and the hash keys never share a key.
    pub(super) fn derive(&self, label: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.0);
        h.update(label);
        h.finalize().into()
    }
}

/// Which authenticated digest usernames may change the bindings of which
/// address-of-record (RFC 3261 §10.3 step 6: "The registrar then determines
/// if the authorized user is authorized to modify registrations for this
/// address-of-record"; if not, 403 Forbidden).
///
/// By default ([`AorPolicy::same_user`]) a user may change only the AOR of
/// the same name: the To user equal to the digest username. A policy built
/// with [`AorPolicy::from_pairs`] lists, per AOR user, the usernames that
/// may change it; an AOR it does not list keeps the default (its own user
/// only). Names are compared as bytes after unescaping (`%75` in a URI
/// user is `u`, `\"` in a quoted username is `"`).
#[derive(Debug, Clone, Default)]
pub struct AorPolicy {
    /// AOR user → the usernames allowed to change it.
    allowed: HashMap<Box<[u8]>, Vec<Box<[u8]>>>,
}

impl AorPolicy {
    /// Only the user of the same name may change an AOR (the default).
    pub fn same_user() -> Self {
        AorPolicy::default()
    }

    /// A policy from (AOR user, allowed digest username) pairs; several
    /// pairs for one AOR add up, e.g. a users file's `(field 0, username=X)`
    /// for each line.
    pub fn from_pairs<A, U>(pairs: impl IntoIterator<Item = (A, U)>) -> Self
    where
        A: AsRef<[u8]>,
        U: AsRef<[u8]>,
    {
        let mut allowed: HashMap<Box<[u8]>, Vec<Box<[u8]>>> = HashMap::new();
        for (aor, user) in pairs {
            let users = allowed.entry(aor.as_ref().into()).or_default();
            if !users.iter().any(|u| &u[..] == user.as_ref()) {
                users.push(user.as_ref().into());
            }
        }
        AorPolicy { allowed }
    }

    /// Whether the authenticated `auth_user` may add, change or remove the
    /// bindings of the AOR whose user part is `aor_user`.
    pub fn may_change(&self, auth_user: &[u8], aor_user: &[u8]) -> bool {
        match self.allowed.get(aor_user) {
            Some(users) => users.iter().any(|u| &u[..] == auth_user),
            None => auth_user == aor_user,
        }
    }
}

/// Settings of the built-in target (`sipstorm serve`, one per worker).
///
/// Every cap is per worker: each worker owns its registrar, transactions and
/// calls (one worker per core, nothing shared on the hot path), and the
/// kernel's SO_REUSEPORT hashing keeps one peer on one worker, so a server
/// of N workers holds at most N times each cap.
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
    /// Which authenticated users may change which AOR's bindings.
    pub aor_policy: Arc<AorPolicy>,
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
    /// Digest algorithm offered in challenges; credentials must use it.
    pub algorithm: crate::auth::Algorithm,
    /// Offer `qop="auth-int"` (the body is hashed too) instead of
    /// `qop="auth"`; credentials must use the qop offered.
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
    /// Seed of the random draws (ring delays, busy and no-answer ratios).
    pub seed: u64,
    /// This worker's index among the server's workers: it names the nonces
    /// it mints, and only this worker accepts them (see `auth::NonceMint`).
    pub worker: u16,
    /// The server's secret (nonce and branch MACs, hash keys, tags).
    pub secret: ServerSecret,
    /// SDP answer body; empty = a built-in PCMU answer.
    pub sdp: Vec<u8>,
    /// Domains this server is responsible for (`serve --domain`), lower
    /// case. Empty: any. Otherwise an out-of-dialog request whose
    /// Request-URI host (and, for REGISTER, To host) is neither one of them
    /// nor this server's own address is answered 404, and the registrar
    /// binds `user@domain` rather than `user`.
    pub domains: Vec<String>,
    /// Most calls one peer (source address and port) may hold open at once;
    /// beyond it new INVITEs get 503 with Retry-After (RFC 3261 §21.5.4), so
    /// one misbehaving client (INVITEs without BYE) cannot exhaust the
    /// server. Default 2^17: above the 100,000 concurrent calls a single
    /// `sipstorm run` worker may hold.
    pub max_calls_per_peer: u32,
    /// Most bindings (Contacts) one address-of-record may hold; a REGISTER
    /// that would exceed it gets 403 and changes nothing. Default 16.
    pub max_bindings_per_aor: usize,
    /// Most addresses-of-record with bindings; a REGISTER adding a new one
    /// beyond it gets 503 with Retry-After. Default 2^18 (262,144).
    pub max_aors: usize,
    /// Most server transactions alive at once (INVITE transactions, which
    /// keep their last response and retransmit it); beyond it a new INVITE
    /// gets a stateless 503 with Retry-After, never retransmitted.
    /// Default 2^18 (262,144).
    pub max_transactions: usize,
    /// Most of those from one source IP address (any port). Default 2^16
    /// (65,536): above what one `sipstorm run` at full speed keeps open.
    pub max_transactions_per_source: u32,
    /// Bytes of final responses kept so a retransmitted non-INVITE request
    /// gets exactly the same response again (Timer J, RFC 3261 §17.2.2);
    /// the oldest go first beyond it, and a retransmission arriving after
    /// its response went is handled as a new request. Default 32 MiB.
    pub response_store_bytes: usize,
    /// `serve --max-rate`: new attempts per second across every worker
    /// beyond which requests get 503 (see [`super::throttle`]).
    pub throttle: Option<super::throttle::Throttle>,
    /// The address it listens on per transport (`serve --listen tcp:...`):
    /// the Contact of its responses names the one the request came over
    /// (RFC 3261 §8.1.1.8, RFC 5630 §3.1.3 for `sips:`). Empty: `local`
    /// over UDP.
    pub listen: Vec<(crate::flow::TransportKind, SocketAddr)>,
    /// Answer as a SIPp UAS scenario (`serve --sf`) instead of the
    /// built-in registrar, proxy and UAS.
    pub scenario_file: Option<super::scenario::ScenarioSetup>,
}

impl Default for ServerConfig {
    /// Deterministic defaults for tests, simulations and benches (a secret
    /// from a fixed seed). `serve` draws `secret` from the OS.
    fn default() -> Self {
        ServerConfig {
            local: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            realm: "sipstorm".into(),
            auth: true,
            auth_invite: false,
            passwords: Arc::new(
                UserSource::any("pw-{user}").unwrap_or_else(|_| UserSource::list(Vec::new())),
            ),
            aor_policy: Arc::new(AorPolicy::same_user()),
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
            worker: 0,
            secret: ServerSecret::from_seed(2),
            sdp: Vec::new(),
            domains: Vec::new(),
            max_calls_per_peer: 1 << 17,
            max_bindings_per_aor: 16,
            max_aors: 1 << 18,
            max_transactions: 1 << 18,
            max_transactions_per_source: 1 << 16,
            response_store_bytes: 32 << 20,
            throttle: None,
            listen: Vec::new(),
            scenario_file: None,
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
        let s = ServerSecret::from_bytes([0x42; 32]);
        assert!(!format!("{s:?}").contains("66"), "{s:?}");
    }

    #[test]
    fn aor_policy_default_and_pairs() {
        let same = AorPolicy::same_user();
        let file =
            AorPolicy::from_pairs([("alice", "alice-auth"), ("alice", "admin"), ("bob", "bob")]);
        // (policy, auth user, AOR user, may change)
        let cases: [(&AorPolicy, &str, &str, bool); 9] = [
            (&same, "alice", "alice", true),
            (&same, "alice", "bob", false),
            (&same, "Alice", "alice", false),
            (&file, "alice-auth", "alice", true),
            (&file, "admin", "alice", true),
            (&file, "alice", "alice", false),
            (&file, "admin", "bob", false),
            (&file, "bob", "bob", true),
            // An AOR the pairs do not list keeps the default.
            (&file, "carol", "carol", true),
        ];
        for (p, auth, aor, want) in cases {
            assert_eq!(
                p.may_change(auth.as_bytes(), aor.as_bytes()),
                want,
                "{auth} -> {aor}"
            );
        }
    }
}
