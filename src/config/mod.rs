//! The effective configuration of `run` and `serve`: command-line flags laid
//! over an optional TOML profile, validated once, before any socket exists.
//!
//! Every error names the flag (or profile key) and the problem, so `main`
//! can print it in one line and exit with code 2.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flow::{ConnectionMode, TransportKind};
use crate::schedule::{Hold, parse_duration};
use crate::segment::Segment;
use crate::transport::tls::{self, ClientTls};
use crate::transport::{Backend, WsClientSetup};
use crate::users::Users;

mod client;
mod reach;
mod scenario;
mod serve;

pub use client::{DigestOptions, MixEntry, MixValue, MixValues};
use client::{parse_algorithm, parse_qop};
pub use reach::Reach;
pub use scenario::ScenarioFileConfig;
pub use serve::{ServeConfig, ServeValues};

/// A configuration error: what and where. Always exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag}: {problem}")]
    Invalid { flag: &'static str, problem: String },
    #[error("profile {path}: {problem}")]
    Profile { path: String, problem: String },
    #[error("{0}")]
    Unsupported(String),
}

fn invalid(flag: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        problem: problem.into(),
    }
}

/// What each attempt does (SPEC "Scenarios").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    Register,
    Call,
    Options,
    Mixed,
    /// A weighted mix of register, call and options attempts (`--mix`).
    Mix,
}

impl std::str::FromStr for ScenarioKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(ScenarioKind::Register),
            "call" => Ok(ScenarioKind::Call),
            "options" => Ok(ScenarioKind::Options),
            "mixed" => Ok(ScenarioKind::Mixed),
            "mix" => Ok(ScenarioKind::Mix),
            o => Err(format!(
                "unknown scenario '{o}' (expected register, call, options, mixed or mix)"
            )),
        }
    }
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Register => "register",
            ScenarioKind::Call => "call",
            ScenarioKind::Options => "options",
            ScenarioKind::Mixed => "mixed",
            ScenarioKind::Mix => "mix",
        }
    }
}

/// The raw values of `run`, as given by flags or a profile (strings are
/// parsed by [`RunConfig::build`]). A profile TOML uses the same keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunValues {
    pub target: Option<String>,
    pub scenario: Option<String>,
    pub rate: Option<f64>,
    pub concurrency: Option<u64>,
    pub count: Option<u64>,
    pub duration: Option<String>,
    pub users: Option<PathBuf>,
    pub user_pattern: Option<String>,
    pub password_pattern: Option<String>,
    pub hold: Option<String>,
    pub cancel_ratio: Option<f64>,
    pub workers: Option<usize>,
    pub transport: Option<String>,
    pub local_ip: Option<String>,
    pub segment: Option<String>,
    pub out: Option<PathBuf>,
    pub threshold: Option<Vec<String>>,
    pub quiet: Option<bool>,
    pub backend: Option<String>,
    pub drain: Option<String>,
    pub pacing_resolution: Option<String>,
    /// How long a worker may hold received datagrams back to handle them
    /// in one wake-up (0 to 1ms).
    pub batch_window: Option<String>,
    pub t1: Option<String>,
    pub t2: Option<String>,
    pub t4: Option<String>,
    pub expires: Option<u32>,
    pub seed: Option<u64>,
    /// k6-style stages (profile only): `[{duration = "10s", rate = 100.0}, ...]`.
    pub stages: Option<Vec<StageValue>>,
    /// Ring delay of sipstorm's own answering side (`mixed`), as `--hold`.
    pub ring: Option<String>,
    /// Weighted scenario mix: `"register=1,call=3"` or a table array.
    pub mix: Option<MixValues>,
    /// Digest algorithms the client accepts, preferred first (`SHA-256,MD5`).
    pub digest_algorithm: Option<String>,
    /// The qop the client answers with when offered both (`auth`, `auth-int`).
    pub digest_qop: Option<String>,
    /// Host of Request-URI, From and To (default: the target).
    pub domain: Option<String>,
    /// Preloaded Route set (`--route`, repeatable; `route = [...]`).
    #[serde(alias = "routes")]
    pub route: Option<Vec<String>>,
    /// Whom calls go to: `{1000..1999}`, `9999` or `field:N`.
    pub callee: Option<String>,
    /// The From user (default: the user).
    pub caller: Option<String>,
    /// Display name of From.
    pub from_display: Option<String>,
    /// Extra headers of initial requests (`--header`, repeatable;
    /// `headers = [...]`).
    #[serde(rename = "headers", alias = "header")]
    pub header: Option<Vec<String>>,
    /// Offer body template of INVITEs.
    pub sdp: Option<PathBuf>,
    /// Content-Type of the `sdp` body.
    pub content_type: Option<String>,
    /// First local port; worker i binds port + i.
    pub local_port: Option<u16>,
    /// Stream transports: `shared`, `user` or `call` (SIPp's `-t t1`/`-t tn`).
    pub connection_mode: Option<String>,
    /// Connections of the shared pool, per worker.
    pub connections: Option<u32>,
    /// TLS: trusted CA certificates (PEM).
    pub tls_ca: Option<PathBuf>,
    /// TLS: skip verification of the server's certificate.
    pub tls_insecure: Option<bool>,
    /// TLS: server name to send and verify.
    pub tls_sni: Option<String>,
    /// TLS: client certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS: client key (PEM).
    pub tls_key: Option<PathBuf>,
    /// TLS: resume sessions on new connections.
    pub tls_resume: Option<bool>,
    /// A SIPp XML scenario to run instead of `scenario` (`--sf`).
    #[serde(alias = "sf")]
    pub scenario_file: Option<PathBuf>,
    /// `[service]` and the default digest username (SIPp's `-s`).
    pub service: Option<String>,
    /// `-key NAME VALUE`: `[NAME]` in the scenario's messages.
    pub key: Option<std::collections::BTreeMap<String, String>>,
    /// `-set VAR VALUE`: a `<Global>` variable's value.
    pub set: Option<std::collections::BTreeMap<String, String>>,
    /// `-inf FILE` (repeatable): injection files; the first is the users
    /// file unless `--users` is given, the others serve `[fieldN file=F]`.
    pub inf: Option<Vec<PathBuf>>,
    /// Timeout of a scenario `recv` without `timeout` (SIPp's `-recv_timeout`).
    pub recv_timeout: Option<String>,
    /// Write the scenario's `<log>` lines (SIPp's `-trace_logs`).
    pub trace_logs: Option<bool>,
    /// No retransmission of scenario sends (SIPp's `-nr`).
    pub no_retrans: Option<bool>,
    /// WebSocket: the resource of the Upgrade request (default `/`).
    pub ws_path: Option<String>,
    /// WebSocket: the `Origin` header to send.
    pub ws_origin: Option<String>,
}

/// One load stage of a profile: ramp linearly to `rate` over `duration`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageValue {
    pub duration: String,
    pub rate: f64,
}

impl RunValues {
    /// Values from `other` win where set (flags over profile).
    pub fn overlay(mut self, other: RunValues) -> RunValues {
        // `scenario` and `mix` both say what each attempt does: one from
        // the flags replaces the other from the profile.
        match (&other.scenario, &other.mix) {
            (Some(_), None) => self.mix = None,
            (None, Some(_)) => self.scenario = None,
            _ => {}
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            target,
            scenario,
            rate,
            concurrency,
            count,
            duration,
            users,
            user_pattern,
            password_pattern,
            hold,
            cancel_ratio,
            workers,
            transport,
            local_ip,
            segment,
            out,
            threshold,
            quiet,
            backend,
            drain,
            pacing_resolution,
            batch_window,
            t1,
            t2,
            t4,
            expires,
            seed,
            stages,
            ring,
            mix,
            digest_algorithm,
            digest_qop,
            domain,
            route,
            callee,
            caller,
            from_display,
            header,
            sdp,
            content_type,
            local_port,
            connection_mode,
            connections,
            tls_ca,
            tls_insecure,
            tls_sni,
            tls_cert,
            tls_key,
            tls_resume,
            scenario_file,
            service,
            key,
            set,
            inf,
            recv_timeout,
            trace_logs,
            no_retrans,
            ws_path,
            ws_origin
        );
        self
    }
}

/// RFC 3261 §17 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    /// RFC 3261 §17.1.1.1 defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The validated configuration of one `run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `None`: the embedded server.
    pub target: Option<SocketAddr>,
    /// The target as the user wrote it (for the report).
    pub target_text: Option<String>,
    pub scenario: ScenarioKind,
    pub rate: Option<f64>,
    pub concurrency: Option<u64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub users_file: Option<PathBuf>,
    pub user_pattern: String,
    pub password_pattern: String,
    pub hold: Hold,
    pub cancel_ratio: f64,
    /// `--workers`; `None`: as many as the offered load needs (see
    /// `run::plan`).
    pub workers: Option<usize>,
    pub local_ip: IpAddr,
    /// This instance's share of the test (`--segment I/N`, zero-based).
    pub segment: Option<Segment>,
    /// Users from `--users FILE` (they replace the generated users).
    pub users: Option<Users>,
    pub out: Option<PathBuf>,
    pub thresholds: Vec<String>,
    pub quiet: bool,
    pub backend: Backend,
    /// How long in-flight attempts may run after the last start before
    /// they are torn down (BYE for calls in hold).
    pub drain: Duration,
    /// Tick of the open-loop schedule: attempts are started (and intended)
    /// at tick boundaries, one wake-up per tick instead of per attempt.
    pub pacing_resolution: Duration,
    /// See `transport::Worker::batch_window`: longer saves wake-ups (CPU
    /// per call), but a reply the client sends in reaction to a response
    /// (the REGISTER after a 401, an ACK) leaves up to this much later,
    /// which multi-round-trip latencies such as RRD then include.
    pub batch_window: Duration,
    pub timers: TimerValues,
    pub expires: u32,
    pub seed: u64,
    /// Load stages replacing the constant `rate` (see [`crate::schedule::Stages`]).
    pub stages: Option<std::sync::Arc<crate::schedule::Stages>>,
    /// Ring delay of the answering side in `mixed` (and of the embedded
    /// server).
    pub ring: Hold,
    /// The parts of a weighted mix (`scenario` is `Mix`); empty otherwise.
    pub mix: Vec<MixEntry>,
    /// Digest preferences of the client (and the embedded server's offer).
    pub digest: DigestOptions,
    /// Domain, Route set, callee and caller, extra headers, offer body and
    /// local port (SPEC "Reaching real servers").
    pub reach: Reach,
    /// `--transport`.
    pub transport: TransportKind,
    /// Which connection each attempt takes over a stream transport.
    pub connection: ConnectionMode,
    /// TLS client settings, certificates loaded (`--transport tls` or
    /// `wss`).
    pub tls: Option<ClientTls>,
    /// A SIPp XML scenario, compiled (`--sf`).
    pub scenario_file: Option<ScenarioFileConfig>,
    /// WebSocket Upgrade settings (`--transport ws` or `wss`; the `Host`
    /// is filled in by the run from the target).
    pub ws: Option<WsClientSetup>,
}

/// Default generated users (SPEC example).
pub const DEFAULT_USER_PATTERN: &str = "u{000000..099999}";
/// Default password of generated users.
pub const DEFAULT_PASSWORD_PATTERN: &str = "pw-{user}";

/// Default tick of the open-loop schedule (SIPp and wrk2 pace at
/// millisecond granularity too).
pub const DEFAULT_PACING_RESOLUTION: Duration = Duration::from_millis(1);

/// What is wrong with a user or password pattern, without echoing the
/// pattern: a password pattern is the rule for every password, so error
/// messages must not print it.
pub fn describe_pattern_error(e: &crate::engine::ConfigError) -> &'static str {
    use crate::engine::ConfigError as E;
    match e {
        E::Unclosed(_) => "'{' without a matching '}'",
        E::BadRange(_) => "bad range, expected {START..END} such as {000000..099999}",
        E::TwoRanges(_) => "only one {START..END} range is allowed",
        E::UnknownPlaceholder(_) => "unknown placeholder, only {user} and {index} are known",
        E::Empty => "the user list is empty",
    }
}

/// The cores this process may use: the most workers a run starts, and what
/// `serve` starts when `--workers` is absent.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn dur(flag: &'static str, v: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    v.map(|s| parse_duration(s).map_err(|e| invalid(flag, e.to_string())))
        .transpose()
}

/// Parse an optional delay distribution (`--hold`, `--ring`).
fn delay(flag: &'static str, v: Option<&str>) -> Result<Option<Hold>, ConfigError> {
    v.map(|h| Hold::parse(h).map_err(|e| invalid(flag, e.to_string())))
        .transpose()
}

fn ratio(flag: &'static str, v: Option<f64>) -> Result<f64, ConfigError> {
    let r = v.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&r) || r.is_nan() {
        return Err(invalid(flag, format!("{r} is not a ratio between 0 and 1")));
    }
    Ok(r)
}

/// Resolve `HOST:PORT` to one address (IPv4 first). Errors name `flag`.
pub fn resolve(flag: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(invalid(
            flag,
            format!("'{s}' needs a port, as HOST:PORT (SIP's default is 5060)"),
        ));
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| invalid(flag, format!("cannot resolve '{s}': {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| invalid(flag, format!("'{s}' resolves to no address")))
}

/// `--transport`, `--connection-mode`/`--connections` and the TLS flags,
/// checked together (each only where it means something); certificate
/// files are read here, so a bad one is a usage error naming it.
fn stream_options(
    v: &RunValues,
    scenario: ScenarioKind,
) -> Result<(TransportKind, ConnectionMode, Option<ClientTls>), ConfigError> {
    let transport = match v.transport.as_deref() {
        None => TransportKind::Udp,
        Some(t) => t
            .parse::<TransportKind>()
            .map_err(|e| invalid("--transport", e))?,
    };
    if transport.is_stream() && scenario == ScenarioKind::Mixed {
        return Err(ConfigError::Unsupported(format!(
            "--transport {transport}: the mixed scenario needs udp (the target must reach \
             sipstorm's own answering side, which listens on UDP only)"
        )));
    }
    let connection = match (v.connection_mode.as_deref(), v.connections) {
        (None | Some("shared"), n) => ConnectionMode::Shared(n.unwrap_or(1)),
        (Some("user"), None) => ConnectionMode::User,
        (Some("call"), None) => ConnectionMode::Call,
        (Some("user" | "call"), Some(_)) => {
            return Err(invalid(
                "--connections",
                "sizes the shared pool: only with --connection-mode shared",
            ));
        }
        (Some(o), _) => {
            return Err(invalid(
                "--connection-mode",
                format!("unknown mode '{o}' (expected shared, user or call)"),
            ));
        }
    };
    if connection == ConnectionMode::Shared(0) {
        return Err(invalid("--connections", "must be at least 1"));
    }
    if !transport.is_stream() && (v.connection_mode.is_some() || v.connections.is_some()) {
        return Err(invalid(
            "--connection-mode",
            "only with a stream --transport: tcp, tls, ws or wss (UDP has no connections)",
        ));
    }
    let tls_flags = [
        ("--tls-ca", v.tls_ca.is_some()),
        ("--tls-insecure", v.tls_insecure == Some(true)),
        ("--tls-sni", v.tls_sni.is_some()),
        ("--tls-cert", v.tls_cert.is_some()),
        ("--tls-key", v.tls_key.is_some()),
        ("--tls-resume", v.tls_resume == Some(true)),
    ];
    if !transport.is_secure() {
        if let Some((flag, _)) = tls_flags.iter().find(|(_, set)| *set) {
            return Err(invalid(flag, "only with --transport tls or wss"));
        }
        return Ok((transport, connection, None));
    }
    let ca = match &v.tls_ca {
        Some(p) => tls::load_certs(p).map_err(|e| invalid("--tls-ca", e.to_string()))?,
        None => Vec::new(),
    };
    let client_cert = match (&v.tls_cert, &v.tls_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((
            tls::load_certs(c).map_err(|e| invalid("--tls-cert", e.to_string()))?,
            std::sync::Arc::new(tls::load_key(k).map_err(|e| invalid("--tls-key", e.to_string()))?),
        )),
        (Some(_), None) => return Err(invalid("--tls-cert", "needs --tls-key")),
        (None, Some(_)) => return Err(invalid("--tls-key", "needs --tls-cert")),
    };
    let t = ClientTls {
        ca,
        insecure: v.tls_insecure.unwrap_or(false),
        sni: v.tls_sni.clone(),
        client_cert,
        resume: v.tls_resume.unwrap_or(false),
    };
    // Build once here so a bad combination is a usage error.
    t.build()
        .map_err(|e| invalid("--tls-cert", e.to_string()))?;
    if let Some(n) = &t.sni {
        t.server_name(SocketAddr::from(([127, 0, 0, 1], 5061)))
            .map_err(|e| invalid("--tls-sni", format!("'{n}': {e}")))?;
    }
    Ok((transport, connection, Some(t)))
}

/// `--ws-path` and `--ws-origin`: only with `--transport ws|wss`; both
/// go into the Upgrade's head, so neither may break a header line.
fn ws_options(
    v: &RunValues,
    transport: TransportKind,
) -> Result<Option<WsClientSetup>, ConfigError> {
    let ws = matches!(transport, TransportKind::Ws | TransportKind::Wss);
    if !ws {
        if v.ws_path.is_some() {
            return Err(invalid("--ws-path", "only with --transport ws or wss"));
        }
        if v.ws_origin.is_some() {
            return Err(invalid("--ws-origin", "only with --transport ws or wss"));
        }
        return Ok(None);
    }
    let path = v.ws_path.clone().unwrap_or_else(|| "/".into());
    // RFC 6455 §3: the resource name is an absolute path (and query).
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "--ws-path",
            format!("'{path}' is not an absolute path such as / or /ws (no spaces)"),
        ));
    }
    if let Some(o) = &v.ws_origin
        && (o.is_empty() || o.bytes().any(|b| b.is_ascii_control()))
    {
        return Err(invalid(
            "--ws-origin",
            "must be an origin such as https://phone.example, on one line",
        ));
    }
    Ok(Some(WsClientSetup {
        path,
        origin: v.ws_origin.clone(),
        host: None,
    }))
}

impl RunConfig {
    /// Validate raw values into a configuration.
    pub fn build(v: RunValues) -> Result<RunConfig, ConfigError> {
        let target = v
            .target
            .as_deref()
            .map(|t| resolve("--target", t))
            .transpose()?;
        let mix = v.mix.as_ref().map(MixValues::build).transpose()?;
        let scenario = match (v.scenario.as_deref(), &mix) {
            (None, None) => ScenarioKind::Call,
            (None, Some(_)) => ScenarioKind::Mix,
            (Some(s), _) => s.parse().map_err(|e: String| invalid("--scenario", e))?,
        };
        match (scenario, &mix) {
            (ScenarioKind::Mix, None) => {
                return Err(invalid(
                    "--scenario",
                    "mix needs --mix (e.g. --mix register=1,call=3)",
                ));
            }
            (s, Some(_)) if s != ScenarioKind::Mix => {
                return Err(invalid(
                    "--scenario",
                    format!(
                        "{} conflicts with the mix (leave --scenario out, or run one part with --mix {}=1)",
                        s.name(),
                        s.name()
                    ),
                ));
            }
            _ => {}
        }
        let ring = delay("--ring", v.ring.as_deref())?.unwrap_or_default();
        let digest = DigestOptions {
            algorithms: match v.digest_algorithm.as_deref() {
                None => Vec::new(),
                Some(list) => {
                    let mut algs = Vec::new();
                    for t in list.split(',').filter(|t| !t.trim().is_empty()) {
                        let a = parse_algorithm(t)?;
                        if !algs.contains(&a) {
                            algs.push(a);
                        }
                    }
                    if algs.is_empty() {
                        return Err(invalid("--digest-algorithm", "is empty"));
                    }
                    algs
                }
            },
            qop: parse_qop(v.digest_qop.as_deref())?,
        };
        if let Some(r) = v.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(invalid(
                "--rate",
                format!("{r} is not a positive number of attempts per second"),
            ));
        }
        if v.concurrency == Some(0) {
            return Err(invalid("--concurrency", "must be at least 1"));
        }
        if v.count == Some(0) {
            return Err(invalid("--count", "must be at least 1"));
        }
        let duration = dur("--duration", v.duration.as_deref())?;
        if duration == Some(Duration::ZERO) {
            return Err(invalid("--duration", "must be longer than zero"));
        }
        let hold = delay("--hold", v.hold.as_deref())?.unwrap_or_default();
        let cancel_ratio = ratio("--cancel-ratio", v.cancel_ratio)?;
        let workers = v.workers;
        if let Some(w) = workers
            && (w == 0 || w > 1024)
        {
            return Err(invalid(
                "--workers",
                format!("{w} is not between 1 and 1024"),
            ));
        }
        let (transport, connection, tls) = stream_options(&v, scenario)?;
        let mut v = v;
        // `-inf FILE`: the first is the users file unless --users gave one.
        if v.users.is_none()
            && let Some(first) = v.inf.as_mut().filter(|l| !l.is_empty())
        {
            v.users = Some(first.remove(0));
        }
        let ws = ws_options(&v, transport)?;
        let local_ip = match v.local_ip.as_deref() {
            Some(s) => s
                .parse()
                .map_err(|_| invalid("--local-ip", format!("'{s}' is not an IP address")))?,
            None => match target {
                Some(t) if t.ip().is_loopback() => t.ip(),
                Some(SocketAddr::V6(_)) => IpAddr::from([0u16; 8]),
                Some(_) => IpAddr::from([0, 0, 0, 0]),
                None => IpAddr::from([127, 0, 0, 1]),
            },
        };
        let segment = v
            .segment
            .as_deref()
            .map(|s| {
                s.parse::<Segment>().map_err(|e| {
                    // SegmentError already starts with "--segment: ".
                    let msg = e.to_string();
                    invalid(
                        "--segment",
                        msg.trim_start_matches("--segment: ").to_string(),
                    )
                })
            })
            .transpose()?;
        let users = v
            .users
            .as_deref()
            .map(|p| Users::load(p).map_err(|e| invalid("--users", e.to_string())))
            .transpose()?;
        let reach = Reach::build(
            reach::ReachValues {
                domain: v.domain.as_deref(),
                routes: v.route.as_deref().unwrap_or_default(),
                callee: v.callee.as_deref(),
                caller: v.caller.as_deref(),
                from_display: v.from_display.as_deref(),
                headers: v.header.as_deref().unwrap_or_default(),
                sdp: v.sdp.as_deref(),
                content_type: v.content_type.as_deref(),
                local_port: v.local_port,
            },
            // The most workers the run may start (the plan may start fewer).
            workers.unwrap_or_else(default_workers),
        )?;
        reach.check_fields(users.as_ref())?;
        if scenario == ScenarioKind::Mixed && reach.callee != crate::engine::Party::Default {
            return Err(invalid(
                "--callee",
                "mixed calls between its own registered users: leave --callee out, or use --scenario call",
            ));
        }
        let scenario_file = scenario::build_run(&v, users.as_ref())?;
        let backend = match v
            .backend
            .as_deref()
            .map(str::to_string)
            .or_else(|| std::env::var("SIPSTORM_BACKEND").ok())
        {
            None => Backend::Auto,
            Some(b) => b.parse().map_err(|e: String| invalid("--backend", e))?,
        };
        let defaults = TimerValues::default();
        let timers = TimerValues {
            t1: dur("--t1", v.t1.as_deref())?.unwrap_or(defaults.t1),
            t2: dur("--t2", v.t2.as_deref())?.unwrap_or(defaults.t2),
            t4: dur("--t4", v.t4.as_deref())?.unwrap_or(defaults.t4),
        };
        if timers.t1.is_zero() || timers.t2 < timers.t1 {
            return Err(invalid("--t1/--t2", "T1 must be positive and not above T2"));
        }
        // Default: long enough for Timer B/F (64·T1) of the last attempt, so
        // against a silent target every attempt ends by its own timer.
        let drain = dur("--drain", v.drain.as_deref())?
            .unwrap_or(Duration::from_secs(10).max(timers.t1 * 64 + Duration::from_secs(1)));
        let pacing_resolution = dur("--pacing-resolution", v.pacing_resolution.as_deref())?
            .unwrap_or(DEFAULT_PACING_RESOLUTION);
        let batch_window = dur("--batch-window", v.batch_window.as_deref())?
            .unwrap_or(crate::transport::DEFAULT_BATCH_WINDOW);
        if batch_window > Duration::from_millis(1) {
            return Err(invalid("--batch-window", "must be at most 1ms"));
        }
        if pacing_resolution > Duration::from_secs(1) {
            return Err(invalid("--pacing-resolution", "must be at most 1s"));
        }
        let stages = match &v.stages {
            None => None,
            Some(list) => {
                let mut parts = Vec::with_capacity(list.len());
                for st in list {
                    let d = parse_duration(&st.duration)
                        .map_err(|e| invalid("--stages", e.to_string()))?;
                    parts.push((d, st.rate));
                }
                Some(std::sync::Arc::new(
                    crate::schedule::Stages::new(&parts).map_err(|e| invalid("--stages", e))?,
                ))
            }
        };
        // Stages fix the length of the run unless --duration cuts it shorter.
        let duration = match (&stages, duration) {
            (Some(st), None) => Some(st.duration()),
            (_, d) => d,
        };
        Ok(RunConfig {
            scenario_file,
            reach,
            transport,
            connection,
            tls,
            ws,
            ring,
            mix: mix.unwrap_or_default(),
            digest,
            stages,
            target,
            target_text: v.target.clone(),
            scenario,
            rate: v.rate,
            concurrency: v.concurrency,
            count: v.count,
            duration,
            users_file: v.users,
            user_pattern: v
                .user_pattern
                .unwrap_or_else(|| DEFAULT_USER_PATTERN.to_string()),
            password_pattern: v
                .password_pattern
                .unwrap_or_else(|| DEFAULT_PASSWORD_PATTERN.to_string()),
            hold,
            cancel_ratio,
            workers,
            local_ip,
            segment,
            users,
            out: v.out,
            thresholds: v.threshold.unwrap_or_default(),
            quiet: v.quiet.unwrap_or(false),
            backend,
            drain,
            pacing_resolution,
            batch_window,
            timers,
            expires: v.expires.unwrap_or(3600),
            seed: v.seed.unwrap_or(0x5EED_5EED),
        })
    }

    /// The effective profile for the report (no passwords: the password
    /// pattern is a rule, not a secret, but is still left out).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target_text.clone().unwrap_or_else(|| "embedded".into()),
            "scenario": self.scenario.name(),
            "rate": self.rate,
            "concurrency": self.concurrency,
            "count": self.count,
            "duration_s": self.duration.map(|d| d.as_secs_f64()),
            "user_pattern": self.user_pattern,
            "hold": self.hold.to_string(),
            "cancel_ratio": self.cancel_ratio,
            "workers": self.workers,
            "transport": self.transport.name(),
            "connection_mode": self.transport.is_stream().then(|| self.connection.to_string()),
            "tls": self.tls.as_ref().map(|t| serde_json::json!({
                "ca_certificates": t.ca.len(),
                "insecure": t.insecure,
                "sni": t.sni,
                "client_certificate": t.client_cert.is_some(),
                "resume": t.resume,
            })),
            "ws": self.ws.as_ref().map(|w| serde_json::json!({
                "path": w.path,
                "origin": w.origin,
            })),
            "local_ip": self.local_ip.to_string(),
            "thresholds": self.thresholds,
            "users_file": self.users_file.as_ref().map(|p| p.display().to_string()),
            "segment": self.segment.map(|s| format!("{}/{}", s.index, s.count)),
            "drain_s": self.drain.as_secs_f64(),
            "pacing_resolution_ms": self.pacing_resolution.as_secs_f64() * 1e3,
            "batch_window_us": self.batch_window.as_secs_f64() * 1e6,
            "timers_ms": {"t1": self.timers.t1.as_millis() as u64, "t2": self.timers.t2.as_millis() as u64, "t4": self.timers.t4.as_millis() as u64},
            "expires": self.expires,
            "seed": self.seed,
            "ring": self.ring.to_string(),
            "mix": (!self.mix.is_empty()).then(|| self.mix.iter().map(|m| serde_json::json!({
                "scenario": m.scenario.name(),
                "weight": m.weight,
                "hold": m.hold.map(|h| h.to_string()),
            })).collect::<Vec<_>>()),
            "digest": {
                "algorithms": self.digest.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "qop": self.digest.qop.as_str(),
            },
            "reach": self.reach.to_json(),
            "stages": self.stages.as_ref().map(|s| serde_json::json!({"duration_s": s.duration().as_secs_f64(), "attempts": s.total(), "mean_rate": s.mean_rate()})),
            "scenario_file": self.scenario_file.as_ref().map(ScenarioFileConfig::to_json),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Algorithm, Qop};

    fn vals(f: impl FnOnce(&mut RunValues)) -> RunValues {
        let mut v = RunValues {
            backend: Some("auto".into()),
            ..RunValues::default()
        };
        f(&mut v);
        v
    }

    #[test]
    fn errors_name_the_flag() {
        let cases: Vec<(RunValues, &str)> = vec![
            (vals(|v| v.rate = Some(-1.0)), "--rate"),
            (vals(|v| v.rate = Some(f64::NAN)), "--rate"),
            (vals(|v| v.duration = Some("soon".into())), "--duration"),
            (vals(|v| v.duration = Some("0s".into())), "--duration"),
            (vals(|v| v.hold = Some("uniform(5s,1s)".into())), "--hold"),
            (vals(|v| v.cancel_ratio = Some(1.5)), "--cancel-ratio"),
            (vals(|v| v.workers = Some(0)), "--workers"),
            (vals(|v| v.scenario = Some("dance".into())), "--scenario"),
            (vals(|v| v.target = Some("localhost".into())), "--target"),
            (vals(|v| v.local_ip = Some("nope".into())), "--local-ip"),
            (vals(|v| v.count = Some(0)), "--count"),
            (vals(|v| v.transport = Some("sctp".into())), "--transport"),
            (vals(|v| v.backend = Some("kqueue".into())), "--backend"),
            (vals(|v| v.ring = Some("soon".into())), "--ring"),
            (
                vals(|v| v.batch_window = Some("2ms".into())),
                "--batch-window",
            ),
            (vals(|v| v.mix = Some(mix("call=0"))), "--mix"),
            (vals(|v| v.mix = Some(mix("call"))), "--mix"),
            (vals(|v| v.mix = Some(mix("call=x"))), "--mix"),
            (vals(|v| v.mix = Some(mix("call=1,call=2"))), "--mix"),
            (vals(|v| v.mix = Some(mix("mixed=1"))), "--mix"),
            (vals(|v| v.mix = Some(mix("dance=1"))), "--mix"),
            (vals(|v| v.mix = Some(mix(""))), "--mix"),
            (vals(|v| v.scenario = Some("mix".into())), "--scenario"),
            (
                vals(|v| {
                    v.scenario = Some("call".into());
                    v.mix = Some(mix("register=1"));
                }),
                "--scenario",
            ),
            (
                vals(|v| v.digest_algorithm = Some("SHA-512".into())),
                "--digest-algorithm",
            ),
            (
                vals(|v| v.digest_algorithm = Some(",".into())),
                "--digest-algorithm",
            ),
            (
                vals(|v| v.digest_qop = Some("auth-conf".into())),
                "--digest-qop",
            ),
        ];
        for (v, flag) in cases {
            let e = RunConfig::build(v).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e} should start with {flag}");
        }
    }

    fn mix(s: &str) -> MixValues {
        MixValues::Text(s.into())
    }

    #[test]
    fn mixes_ring_and_digest_options() {
        let c = RunConfig::build(vals(|v| {
            v.mix = Some(mix(" register=1, call=3,options=2 "))
        }))
        .unwrap();
        assert_eq!(c.scenario, ScenarioKind::Mix);
        let parts: Vec<(ScenarioKind, u32)> =
            c.mix.iter().map(|m| (m.scenario, m.weight)).collect();
        assert_eq!(
            parts,
            [
                (ScenarioKind::Register, 1),
                (ScenarioKind::Call, 3),
                (ScenarioKind::Options, 2)
            ]
        );
        // A profile's [[mix]] tables may give a part its own hold.
        let v: RunValues = toml::from_str(
            "ring = \"lognormal(1s,0.5)\"\ndigest-algorithm = \"SHA-256, MD5\"\ndigest-qop = \"auth-int\"\n\
             [[mix]]\nscenario = \"register\"\nweight = 1\nhold = \"0s\"\n\
             [[mix]]\nscenario = \"call\"\nweight = 4\nhold = \"exp(3s)\"\n",
        )
        .unwrap();
        let c = RunConfig::build(v.clone().overlay(vals(|_| {}))).unwrap();
        assert_eq!(c.scenario, ScenarioKind::Mix);
        assert_eq!(c.mix[1].hold, Some(Hold::Exp(Duration::from_secs(3))));
        assert_eq!(
            c.ring,
            Hold::LogNormal {
                median: Duration::from_secs(1),
                sigma: 0.5
            }
        );
        assert_eq!(c.digest.algorithms, [Algorithm::Sha256, Algorithm::Md5]);
        assert_eq!(c.digest.qop, Qop::AuthInt);
        let j = c.to_json();
        assert_eq!(j["mix"][1]["weight"], 4);
        assert_eq!(j["digest"]["algorithms"][0], "SHA-256");
        // A --scenario flag replaces the profile's mix, a --mix flag its scenario.
        let c = RunConfig::build(
            v.clone()
                .overlay(vals(|f| f.scenario = Some("options".into()))),
        )
        .unwrap();
        assert_eq!((c.scenario, c.mix.len()), (ScenarioKind::Options, 0));
        let p = vals(|f| f.scenario = Some("register".into()));
        let c = RunConfig::build(p.overlay(vals(|f| f.mix = Some(mix("call=1"))))).unwrap();
        assert_eq!((c.scenario, c.mix.len()), (ScenarioKind::Mix, 1));
        // Bad tables name what is expected.
        let e = toml::from_str::<RunValues>("mix = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[[mix]] tables"), "{e}");
        let s = ServeConfig::build(ServeValues {
            ring: Some("uniform(1s,2s)".into()),
            digest_algorithm: Some("sha-256-sess".into()),
            digest_qop: Some("auth-int".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.algorithm, Algorithm::Sha256Sess);
        assert_eq!(s.qop, Qop::AuthInt);
        assert_eq!(
            s.ring,
            Hold::Uniform(Duration::from_secs(1), Duration::from_secs(2))
        );
        for bad in [
            ServeValues {
                ring: Some("exp(".into()),
                ..Default::default()
            },
            ServeValues {
                digest_algorithm: Some("MD4".into()),
                ..Default::default()
            },
            ServeValues {
                digest_qop: Some("none".into()),
                ..Default::default()
            },
        ] {
            assert!(ServeConfig::build(bad).is_err());
        }
    }

    #[test]
    fn defaults_and_overlay() {
        let c = RunConfig::build(vals(|_| {})).unwrap();
        assert_eq!(c.scenario, ScenarioKind::Call);
        assert_eq!(c.target, None);
        assert_eq!(c.local_ip, IpAddr::from([127, 0, 0, 1]));
        let profile = vals(|v| {
            v.rate = Some(10.0);
            v.scenario = Some("register".into());
        });
        let flags = RunValues {
            rate: Some(20.0),
            ..RunValues::default()
        };
        let c = RunConfig::build(profile.overlay(flags)).unwrap();
        assert_eq!(c.rate, Some(20.0));
        assert_eq!(c.scenario, ScenarioKind::Register);
        let c = RunConfig::build(vals(|v| v.target = Some("127.0.0.1:5070".into()))).unwrap();
        assert_eq!(c.target, Some("127.0.0.1:5070".parse().unwrap()));
    }

    #[test]
    fn profile_toml_uses_flag_names() {
        let v: RunValues = toml::from_str(
            "scenario = \"options\"\nrate = 100.0\nhold = \"exp(3s)\"\ncancel-ratio = 0.1\n",
        )
        .unwrap();
        let c = RunConfig::build(v.overlay(vals(|_| {}))).unwrap();
        assert_eq!(c.scenario, ScenarioKind::Options);
        assert!(toml::from_str::<RunValues>("rat = 1").is_err());
        // Reach settings: repeatable flags are lists, `--header` is `headers`.
        let v: RunValues = toml::from_str(
            "domain = \"example.test\"\nroute = [\"sip:p.example.test;lr\"]\n\
             headers = [\"X-A: {user}\", \"X-B: 2\"]\ncallee = \"9999\"\n\
             caller = \"c{1..9}\"\nfrom-display = \"Load\"\nlocal-port = 5090\n",
        )
        .unwrap();
        let c = RunConfig::build(v.clone().overlay(vals(|_| {}))).unwrap();
        assert_eq!(c.reach.domain.as_deref(), Some("example.test"));
        assert_eq!(c.reach.routes, ["sip:p.example.test;lr"]);
        assert_eq!(c.reach.headers.len(), 2);
        assert_eq!(c.reach.local_port, 5090);
        assert_eq!(c.reach.from_display, "Load");
        // Flags replace the profile's lists.
        let c =
            RunConfig::build(v.overlay(vals(|f| f.header = Some(vec!["X-C: 3".into()])))).unwrap();
        assert_eq!(&*c.reach.headers[0].name, b"X-C");
        assert_eq!(c.reach.headers.len(), 1);
    }

    #[test]
    fn serve_values() {
        let c = ServeConfig::build(ServeValues {
            listen: vec!["127.0.0.1:0".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(c.auth);
        for v in [
            ServeValues {
                auth: Some("maybe".into()),
                ..Default::default()
            },
            ServeValues {
                busy_ratio: Some(0.7),
                no_answer_ratio: Some(0.7),
                ..Default::default()
            },
            ServeValues {
                listen: vec!["nowhere".into()],
                ..Default::default()
            },
        ] {
            assert!(ServeConfig::build(v).is_err());
        }
    }
}
