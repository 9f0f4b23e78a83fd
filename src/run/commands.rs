//! The commands: `run` (plan, embedded target, fleet, report, exit
//! decision), `serve`, and the report commands.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::bounded;

use super::RunError;
use super::fleet::{self, Binding, ServerHandle};
use super::plan::RunPlan;
use super::progress::{self, View};
use super::sip_driver::{EngineClient, EngineServer, engine_scenario, engine_timers};
use super::stop::StopFlag;
use super::worker::WorkerMsg;
use crate::config::{RunConfig, ServeConfig};
use crate::engine::{self, Endpoint};
use crate::flow::TransportKind;
use crate::stats::Counter;
use crate::transport::tls::ServerIdentity;
use crate::transport::{self, Backend, StreamSetup};

/// What `run` ends with.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Every attempt succeeded and every threshold held (exit code 0).
    pub all_ok: bool,
    /// Where the report went.
    pub out: PathBuf,
    /// Failed threshold messages.
    pub failed_thresholds: Vec<String>,
}

/// Resolve the backend once for the process, printing the fallback note.
fn resolve_backend(b: Backend) -> Result<Backend, RunError> {
    let (backend, note) = b.resolve()?;
    if let Some(note) = note {
        say!("sipstorm: {note}");
    }
    Ok(backend)
}

/// The scenario part of a default report directory: the built-in
/// scenario's name, or `sf-<file stem>`.
fn out_name(cfg: &RunConfig) -> String {
    match &cfg.scenario_file {
        Some(sf) => format!(
            "sf-{}",
            std::path::Path::new(&sf.program.file)
                .file_stem()
                .map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
        ),
        None => cfg.scenario.name().to_string(),
    }
}

/// Default report directory: `results/<YYYYmmdd-HHMMSS>-<scenario>/`.
fn default_out(started: SystemTime, scenario: &str) -> PathBuf {
    let stamp: String = crate::report::format_rfc3339(started)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect::<String>()
        .replace('T', "-");
    Path::new("results").join(format!("{stamp}-{scenario}"))
}

/// What every worker of one server shares, decided once: its secret (nonce
/// and branch MACs, hash keys, tags) and the base seed of its draws.
#[derive(Debug, Clone)]
struct ServerKeys {
    secret: engine::ServerSecret,
    seed: u64,
}

impl ServerKeys {
    /// `--seed N`: both from N (reproducible, guessable: tests only);
    /// otherwise both from the operating system's random source.
    fn for_serve(seed: Option<u64>) -> Result<ServerKeys, RunError> {
        match seed {
            Some(n) => Ok(ServerKeys {
                secret: engine::ServerSecret::from_seed(n),
                seed: n,
            }),
            None => Ok(ServerKeys {
                secret: engine::ServerSecret::from_bytes(os_random()?),
                seed: u64::from_le_bytes(os_random()?),
            }),
        }
    }
}

/// `N` bytes from the operating system's random source.
fn os_random<const N: usize>() -> Result<[u8; N], RunError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| RunError::Random(e.to_string()))?;
    Ok(b)
}

/// The engine settings of worker `worker` of a server listening on `local`.
fn server_config(
    cfg: &ServeConfig,
    keys: &ServerKeys,
    worker: usize,
    local: SocketAddr,
) -> Result<engine::ServerConfig, RunError> {
    let passwords = match &cfg.users {
        // `serve --users`: passwords by digest username.
        Some(u) => engine::UserSource::list(
            u.digest_credentials()
                .map_err(|e| RunError::Usage(format!("--users: {e}")))?
                .into_iter()
                .map(|(name, pw)| (name, pw.expose().to_string()))
                .collect(),
        ),
        None => engine::UserSource::any(&cfg.password_pattern).map_err(|e| {
            // The pattern is a rule for passwords: never echo it.
            RunError::Usage(format!(
                "--password-pattern: {}",
                crate::config::describe_pattern_error(&e)
            ))
        })?,
    };
    // `serve --users`: which digest usernames may change which AORs (the
    // users file's keyword usernames); otherwise each user its own AOR.
    let aor_policy = match &cfg.users {
        Some(u) => engine::AorPolicy::from_pairs(
            u.digest_users_by_aor()
                .into_iter()
                .flat_map(|(aor, names)| names.into_iter().map(move |n| (aor.clone(), n))),
        ),
        None => engine::AorPolicy::same_user(),
    };
    Ok(engine::ServerConfig {
        local,
        realm: cfg.realm.clone(),
        auth: cfg.auth,
        passwords: Arc::new(passwords),
        ring: cfg.ring,
        algorithm: cfg.algorithm,
        qop_auth_int: cfg.qop == crate::auth::Qop::AuthInt,
        busy_ratio: cfg.busy_ratio,
        no_answer_ratio: cfg.no_answer_ratio,
        seed: keys.seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9),
        worker: worker as u16,
        secret: keys.secret.clone(),
        domains: cfg.domains.clone(),
        aor_policy: Arc::new(aor_policy),
        ..engine::ServerConfig::default()
    })
}

/// A running set of server workers with their progress thread.
struct Servers {
    /// Every worker's own address (all equal with [`Binding::Shared`]).
    addrs: Vec<SocketAddr>,
    /// Every worker's stream listeners' addresses.
    stream_addrs: Vec<Vec<(TransportKind, SocketAddr)>>,
    /// The certificate of the TLS and WSS listeners (to trust in an
    /// embedded run).
    tls_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The certificate was generated at start.
    tls_generated: bool,
    handles: Vec<ServerHandle>,
    agg: JoinHandle<progress::Collected>,
    stop: StopFlag,
}

impl Servers {
    /// Start `cfg.workers` server workers sharing `keys` that stop when
    /// `stop` (or its parent) says so.
    fn start(
        cfg: &ServeConfig,
        keys: ServerKeys,
        backend: Backend,
        binding: Binding,
        stop: StopFlag,
    ) -> Result<Servers, RunError> {
        let socks = fleet::bind_sockets(cfg.listen, cfg.workers, binding)?;
        let addrs = fleet::local_addrs(&socks)?;
        // Validate once before spawning.
        server_config(cfg, &keys, 0, addrs[0])?;
        let listeners = fleet::bind_listeners(&cfg.streams, socks.len(), binding)?;
        let stream_addrs: Vec<Vec<(TransportKind, SocketAddr)>> = listeners
            .iter()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l.socket.local_addr().ok().map(|a| (l.kind, a)))
                    .collect()
            })
            .collect();
        let mut streams = StreamSetup::new();
        let (mut tls_chain, mut tls_generated) = (Vec::new(), false);
        if cfg.streams.iter().any(|(k, _)| k.is_secure()) {
            let names: Vec<String> = cfg
                .streams
                .iter()
                .map(|(_, a)| a.ip().to_string())
                .collect();
            let id = ServerIdentity::load_or_generate(
                cfg.tls_cert.as_deref(),
                cfg.tls_key.as_deref(),
                &names,
            )
            .map_err(|e| RunError::Usage(format!("--tls-cert/--tls-key: {e}")))?;
            streams.server_tls = Some(
                id.server_config()
                    .map_err(|e| RunError::Usage(format!("--tls-cert/--tls-key: {e}")))?,
            );
            tls_chain = id.chain.clone();
            tls_generated = id.generated;
        }
        let socks: Vec<fleet::WorkerSockets> = socks
            .into_iter()
            .zip(listeners)
            .map(|(udp, listeners)| fleet::WorkerSockets { udp, listeners })
            .collect();
        let n = socks.len();
        let (tx, rx) = bounded::<WorkerMsg>(n * 8 + 8);
        let print = !cfg.quiet;
        let agg = std::thread::Builder::new()
            .name("sipstorm-serve-progress".into())
            .spawn(move || progress::collect(rx, n, SystemTime::now(), View::Server, print))
            .map_err(RunError::Thread)?;
        let cfg2 = cfg.clone();
        let throttle = cfg.max_rate.map(engine::throttle::Throttle::new);
        let listen_of = stream_addrs.clone();
        let workers = n as u64;
        let make = move |i: usize, local: SocketAddr| {
            let mut sc = server_config(&cfg2, &keys, i, local).unwrap_or_default();
            sc.throttle = throttle.clone();
            sc.listen = listen_of.get(i).cloned().unwrap_or_default();
            if cfg2.udp {
                sc.listen.push((TransportKind::Udp, local));
            }
            if let Some(&(_, first)) = sc.listen.first().filter(|_| !cfg2.udp) {
                // Without UDP the first listener is the server's address.
                sc.local = first;
            }
            let log = cfg2
                .scenario_file
                .as_ref()
                .and_then(|sf| sf.log_path(std::process::id()));
            if let Some(sf) = &cfg2.scenario_file {
                // A server's calls are numbered per worker: i + W·k + 1.
                let mut setup = scenario_setup(sf, crate::schedule::Hold::default());
                setup.number_offset = i as u64;
                setup.number_stride = workers;
                sc.scenario_file = Some(setup);
            }
            EngineServer::new(Endpoint::server(sc, Instant::now())).with_scenario_log(log)
        };
        let handles = fleet::spawn_servers(socks, streams, backend, make, tx, stop.clone())?;
        Ok(Servers {
            addrs,
            stream_addrs,
            tls_chain,
            tls_generated,
            handles,
            agg,
            stop,
        })
    }

    /// Stop and join the workers; the counters they gathered.
    fn stop(self) -> Result<progress::Collected, RunError> {
        self.stop.set(StopFlag::DRAIN);
        let r = fleet::join_servers(self.handles);
        let collected = self.agg.join().map_err(|_| RunError::WorkerPanicked)?;
        r.map(|()| collected)
    }
}

/// The note `serve` prints once when it listens beyond loopback with the
/// well-known default passwords (`pw-{user}`): anyone who can reach it can
/// register as anyone. `--password-pattern` (any, even the default spelled
/// out) silences it.
pub fn exposure_warning(cfg: &ServeConfig) -> Option<String> {
    let exposed = cfg
        .udp
        .then_some(cfg.listen)
        .into_iter()
        .chain(cfg.streams.iter().map(|(_, a)| *a))
        .find(|a| !a.ip().is_loopback())?;
    cfg.default_passwords.then(|| {
        format!(
            "sipstorm serve: WARNING: listening on {exposed}, beyond loopback, with the default \
             password pattern: this is a test target whose passwords anyone can guess; \
             anyone who reaches it can register as any user and be proxied to. \
             Set --password-pattern to choose the passwords (and silence this)."
        )
    })
}

/// `sipstorm serve`: run the built-in target until `stop` (SIGINT/SIGTERM).
pub fn serve_command(cfg: &ServeConfig, stop: &StopFlag) -> Result<(), RunError> {
    let backend = resolve_backend(cfg.backend)?;
    if let Some(w) = exposure_warning(cfg) {
        say!("{w}");
    }
    transport::raise_fd_limit();
    let keys = ServerKeys::for_serve(cfg.seed)?;
    let servers = Servers::start(cfg, keys, backend, Binding::Shared, stop.child())?;
    let mut on: Vec<String> = Vec::new();
    if cfg.udp {
        on.push(format!("udp {}", servers.addrs[0]));
    }
    for (k, a) in servers.stream_addrs.first().into_iter().flatten() {
        on.push(format!("{k} {a}"));
    }
    say!(
        "sipstorm serve: listening on {} with {} worker(s), {} backend, auth {}{}",
        on.join(" "),
        cfg.workers,
        backend,
        match &cfg.scenario_file {
            Some(sf) => format!("off (answering with SIPp scenario {})", sf.program.file),
            None => (if cfg.auth { "on" } else { "off" }).to_string(),
        },
        if servers.tls_generated {
            " (TLS: self-signed certificate generated at start)"
        } else {
            ""
        }
    );
    while !stop.stopping() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let collected = servers.stop()?;
    say!("\nsipstorm serve: stopped");
    if let Some(sf) = &cfg.scenario_file {
        // SIPp's screen at the end: the scenario's counters per step.
        let agg = &collected.aggregate;
        let report = crate::report::ScenarioFileReport::build(&scenario_info(sf), agg.scenario());
        let mut text = format!(
            "Scenario {} ({}, uas)\n{}",
            sf.program.name,
            sf.program.file,
            report.screen()
        );
        for (i, r) in report.rtds.iter().enumerate() {
            let h = agg.histogram(crate::stats::Slot::service(crate::stats::Metric::RTD[i]));
            if !h.is_empty() {
                text.push_str(&format!(
                    "rtd {}: count {} p50 {:.3} ms p99 {:.3} ms\n",
                    r.name,
                    h.len(),
                    h.value_at_quantile(0.5) as f64 / 1e3,
                    h.value_at_quantile(0.99) as f64 / 1e3
                ));
            }
        }
        let _ = write!(std::io::stdout().lock(), "{text}");
    }
    if let Some(line) = progress::server_connections(collected.aggregate.counters()) {
        say!("sipstorm serve: {line}");
    }
    Ok(())
}

/// The users this instance calls with: its segment's block of a users file,
/// or the generated pattern.
fn user_source(cfg: &RunConfig) -> Result<engine::UserSource, RunError> {
    match &cfg.users {
        Some(file) => {
            let range = cfg
                .segment
                .unwrap_or(crate::segment::Segment::WHOLE)
                .user_range(file.users.len());
            let list = file.users[range]
                .iter()
                .map(|u| engine::ListUser {
                    fields: u.fields.clone(),
                    auth_name: u.auth_name.clone(),
                    password: u.password.expose().to_string(),
                })
                .collect::<Vec<_>>();
            if list.is_empty() {
                return Err(RunError::Usage("--users: this segment has no users".into()));
            }
            Ok(engine::UserSource::lines(list))
        }
        None => {
            engine::UserSource::pattern(&cfg.user_pattern, &cfg.password_pattern).map_err(|e| {
                RunError::Usage(format!(
                    "--user-pattern/--password-pattern: {}",
                    crate::config::describe_pattern_error(&e)
                ))
            })
        }
    }
}

/// The host of a `host[:port]` domain (IPv6 in brackets).
fn host_of(domain: &str) -> String {
    match domain.rfind(':') {
        Some(i) if !domain[i..].contains(']') => domain[..i].to_string(),
        _ => domain.to_string(),
    }
}

/// The source address the kernel picks from a socket bound to `unspecified`
/// towards `target` (a connected UDP socket; nothing is sent).
fn route_source(unspecified: IpAddr, target: SocketAddr) -> Result<IpAddr, RunError> {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
        s.connect(target)?;
        Ok(s.local_addr()?.ip())
    };
    probe().map_err(|e| {
        RunError::Usage(format!(
            "--local-ip: no route from {unspecified} to the target {target}: {e}"
        ))
    })
}

/// The embedded target of a run without `--target`: one server worker per
/// client worker on loopback ports of their own (client worker i talks to
/// server worker i), offering what the client prefers.
fn start_embedded(
    cfg: &RunConfig,
    plan: &RunPlan,
    backend: Backend,
    stop: &StopFlag,
) -> Result<Servers, RunError> {
    let streams = if cfg.transport.is_stream() {
        vec![(cfg.transport, SocketAddr::new(cfg.local_ip, 0))]
    } else {
        Vec::new()
    };
    let sc = ServeConfig {
        listen: SocketAddr::new(cfg.local_ip, 0),
        udp: !cfg.transport.is_stream(),
        streams,
        tls_cert: None,
        tls_key: None,
        workers: plan.workers,
        realm: "sipstorm".into(),
        auth: true,
        password_pattern: cfg.password_pattern.clone(),
        default_passwords: false,
        ring: cfg.ring,
        algorithm: cfg
            .digest
            .algorithms
            .first()
            .copied()
            .unwrap_or(crate::auth::Algorithm::Md5),
        qop: cfg.digest.qop,
        busy_ratio: 0.0,
        no_answer_ratio: 0.0,
        backend,
        quiet: true,
        seed: None,
        max_rate: None,
        // The run's domain and users file, so a run without --target
        // exercises them too.
        domains: cfg.reach.domain.iter().map(|d| host_of(d)).collect(),
        users: cfg.users.clone(),
        scenario_file: None,
    };
    // The secret (nonces, tags, hash keys) from the OS, as for `serve`; the
    // draws (ring delays) follow the run's `--seed`, so a run stays
    // reproducible.
    let keys = ServerKeys {
        secret: engine::ServerSecret::from_bytes(os_random()?),
        seed: cfg.seed ^ 0xC0FFEE,
    };
    Servers::start(&sc, keys, backend, Binding::Distinct, stop.child())
}

/// `sipstorm run`: drive load, write the report, decide the exit code.
/// `stop` is the process's signal flag.
pub fn run_command(cfg: &RunConfig, stop: &StopFlag) -> Result<RunOutcome, RunError> {
    // Everything a user can get wrong is checked before the first socket.
    for t in &cfg.thresholds {
        crate::report::Threshold::parse(t)
            .map_err(|e| RunError::Usage(format!("--threshold: {e}")))?;
    }
    let users = Arc::new(user_source(cfg)?);
    let plan = RunPlan::resolve(cfg);
    let backend = resolve_backend(cfg.backend)?;
    // This run's own flag: a failing worker stops this run, not the process.
    let run_stop = stop.child();
    let embedded = match cfg.target {
        Some(_) => None,
        None => Some(start_embedded(cfg, &plan, backend, &run_stop)?),
    };
    let targets: Vec<SocketAddr> = match (&embedded, cfg.target) {
        (Some(s), _) if cfg.transport.is_stream() => s
            .stream_addrs
            .iter()
            .filter_map(|ls| {
                ls.iter()
                    .find(|(k, _)| *k == cfg.transport)
                    .map(|(_, a)| *a)
            })
            .collect(),
        (Some(s), _) => s.addrs.clone(),
        (None, Some(t)) => vec![t],
        (None, None) => return Err(RunError::Usage("--target is required".into())),
    };
    if embedded.is_some() && !cfg.quiet {
        say!(
            "sipstorm: embedded server on {}:{}; {} {}",
            cfg.transport,
            targets[0],
            cfg.scenario.name(),
            plan.describe()
        );
    }
    // An embedded TLS server's self-signed certificate is what the client
    // trusts unless told otherwise.
    let mut tls = cfg.tls.clone();
    if let (Some(t), Some(s)) = (&mut tls, &embedded)
        && t.ca.is_empty()
    {
        t.ca = s.tls_chain.clone();
    }
    if tls.as_ref().is_some_and(|t| t.insecure) {
        say!(
            "sipstorm: WARNING: --tls-insecure: the server's certificate is NOT verified \
             (anyone in the path can read and change this traffic); the report says so"
        );
    }
    if cfg.transport.is_stream() {
        transport::raise_fd_limit();
    }
    // Generated users: segment s of N and worker i of W use the users
    // s + N·(i + W·k), disjoint across segments and workers. A users file
    // was already cut to this segment's block.
    let (seg_index, seg_count) = match cfg.users {
        None => (plan.segment.index, plan.segment.parts),
        Some(_) => (0, 1),
    };
    let (scenario, timers, workers) = (cfg.scenario, engine_timers(&cfg.timers), plan.workers);
    let (cancel_ratio, expires, seed) = (cfg.cancel_ratio, cfg.expires, cfg.seed);
    let (ring, digest, mix) = (cfg.ring, cfg.digest.clone(), cfg.mix.clone());
    let reach = cfg.reach.clone();
    // A wildcard bind (the default towards a non-loopback target) is no
    // address to write in Via and Contact: write the one the kernel routes
    // from towards the target.
    let advertised = match (cfg.local_ip.is_unspecified(), targets.first()) {
        (true, Some(t)) => Some(route_source(cfg.local_ip, *t)?),
        _ => None,
    };
    let (transport_kind, connection) = (cfg.transport, cfg.connection);
    let scenario_file = cfg.scenario_file.clone();
    // Call numbers: segment s of N, worker i of W numbers its calls
    // s + N·(i + W·k) + 1, disjoint across segments and workers.
    let (seg_i, seg_n) = (plan.segment.index as u64, plan.segment.parts as u64);
    let hold = cfg.hold;
    let make = move |i: usize, local: SocketAddr, now: Instant| {
        let target = targets[i % targets.len()];
        let local = advertised.map_or(local, |ip| SocketAddr::new(ip, local.port()));
        let mut cc = engine::ClientConfig::new(engine_scenario(scenario), target, local);
        cc.domain = reach.domain.clone().unwrap_or_default();
        cc.routes = reach.routes.clone();
        cc.callee = reach.callee.clone();
        cc.caller = reach.caller.clone();
        cc.from_display = reach.from_display.clone();
        cc.headers = reach.headers.clone();
        cc.offer = reach.offer.clone();
        cc.users = users.clone();
        cc.user_offset = seg_index + seg_count * i;
        cc.user_stride = seg_count * workers;
        cc.cancel_ratio = cancel_ratio;
        cc.expires = expires;
        cc.timers = timers;
        cc.seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        cc.answer_ring = ring;
        cc.digest_algorithms = digest.algorithms.clone();
        cc.digest_qop = digest.qop;
        cc.transport = transport_kind;
        cc.connection = connection;
        let cc_seed = cc.seed;
        if let Some(sf) = &scenario_file {
            let mut setup = scenario_setup(sf, hold);
            setup.number_offset = seg_i + seg_n * i as u64;
            setup.number_stride = seg_n * workers as u64;
            cc.scenario_file = Some(setup);
            return EngineClient::new(Endpoint::client(cc, now), scenario)
                .with_scenario_file(sf.log_path(std::process::id()));
        }
        EngineClient::new(Endpoint::client(cc, now), scenario).with_mix(mix.clone(), cc_seed)
    };
    let result = fleet::run_clients(cfg, &plan, backend, &run_stop, tls.clone(), make);
    let server_result = embedded.map(Servers::stop);
    let r = result?;
    if let Some(Err(e)) = server_result {
        return Err(e);
    }
    let out = match &cfg.out {
        Some(o) => o.clone(),
        // Two runs started in the same second get directories of their own.
        None => crate::report::claim_dir(&default_out(r.started_at, &out_name(cfg)))
            .map_err(report_err)?,
    };
    let mut config = cfg.to_json();
    config["workers"] = plan.workers.into();
    config["workers_reason"] = plan.workers_reason.to_string().into();
    let scenario_name = match &cfg.scenario_file {
        Some(_) => "scenario_file",
        None => cfg.scenario.name(),
    };
    let mut info = crate::report::RunInfo::new(
        scenario_name,
        plan.offered_rate(),
        config,
        r.started_at,
        r.elapsed,
    );
    info.load_duration = Some(r.load_elapsed);
    info.scenario_file = cfg.scenario_file.as_ref().map(scenario_info);
    if tls.as_ref().is_some_and(|t| t.insecure) {
        info.notes.push(
            "TLS certificate verification was OFF (--tls-insecure): the server's identity was not checked"
                .into(),
        );
    }
    info.process = process_usage();
    let report = crate::report::write_report(&out, &info, &r.collected.aggregate)
        .map_err(|e| RunError::Report(e.to_string()))?;
    // A closed stdout (`| head`, a gone reader) must not kill the run:
    // the report is already on disk and the exit code still matters.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        crate::report::render_summary(&report)
    );
    let failed_thresholds = crate::report::check_thresholds(&report, &cfg.thresholds)
        .map_err(|e| RunError::Usage(format!("--threshold: {e}")))?;
    for f in &failed_thresholds {
        say!("sipstorm: threshold failed: {f}");
    }
    let interrupted = stop.stopping();
    let c = r.collected.aggregate.counters();
    let attempts = c.attempts();
    let failures = c.failures();
    let unfinished = attempts.saturating_sub(
        c.get(Counter::RegisterSucceeded)
            + c.get(Counter::CallCompleted)
            + c.get(Counter::CallCancelled)
            + c.get(Counter::OptionsSucceeded)
            + failures
            + c.get(Counter::CallRedirected)
            + c.get(Counter::ScenarioSucceeded),
    );
    if unfinished > 0 && !interrupted {
        say!(
            "sipstorm: {unfinished} attempt(s) had no outcome when the drain limit ({:?}) ended the run; \
             --drain extends it (a silent target times out only after 64*T1 = {:?})",
            cfg.drain,
            cfg.timers.t1 * 64
        );
    }
    if r.refused > 0 {
        say!(
            "sipstorm: {} start(s) waited for a free user; more users (--user-pattern, --users) would keep the schedule",
            r.refused
        );
    }
    say!("sipstorm: report written to {}", out.display());
    Ok(RunOutcome {
        all_ok: failures == 0
            && (unfinished == 0 || interrupted)
            && failed_thresholds.is_empty()
            && attempts > 0,
        out,
        failed_thresholds,
    })
}

/// How a worker runs the configured scenario (call numbers set by the
/// caller).
fn scenario_setup(
    sf: &crate::config::ScenarioFileConfig,
    hold: crate::schedule::Hold,
) -> engine::scenario::ScenarioSetup {
    let mut s = engine::scenario::ScenarioSetup::new(sf.program.clone());
    s.service = sf.service.clone();
    s.pid = std::process::id();
    s.default_pause = hold;
    s.inf = sf.inf.clone();
    s.log = sf.trace_logs;
    s.no_retrans = sf.no_retrans;
    s.users = sf.users.clone();
    s
}

/// What the report needs to know about a scenario besides its counters.
fn scenario_info(sf: &crate::config::ScenarioFileConfig) -> crate::report::ScenarioFileInfo {
    let p = &sf.program;
    crate::report::ScenarioFileInfo {
        name: p.name.clone(),
        file: p.file.clone(),
        role: p.role.name().to_string(),
        rfc6076: sf.rfc6076().to_string(),
        steps: p
            .step_infos()
            .into_iter()
            .map(|s| crate::report::ScenarioStepInfo {
                index: s.index,
                line: s.line,
                kind: s.kind.name().to_string(),
                label: s.label,
                optional: s.optional,
                retrans: s.retrans,
                start_rtd: s.start_rtd,
                rtd: s.rtd,
            })
            .collect(),
        rtds: p.rtd_names().to_vec(),
        counters: p.counter_names().to_vec(),
        fail_reasons: engine::scenario::FailReason::ALL
            .iter()
            .map(|r| r.name().to_string())
            .collect(),
    }
}

fn report_err(e: crate::report::ReportError) -> RunError {
    if e.is_usage() {
        RunError::Usage(e.to_string())
    } else {
        RunError::Report(e.to_string())
    }
}

/// `sipstorm report DIR`.
pub fn report_command(dir: &Path) -> Result<bool, RunError> {
    crate::report::render_dir(dir).map_err(report_err)?;
    say!("sipstorm: re-rendered {}", dir.display());
    Ok(true)
}

/// `sipstorm compare BASE NEW`: prints the table; false when a threshold failed.
pub fn compare_command(base: &Path, new: &Path, thresholds: &[String]) -> Result<bool, RunError> {
    let o = crate::report::compare(base, new, thresholds).map_err(report_err)?;
    let _ = writeln!(std::io::stdout().lock(), "{}", o.table);
    for f in &o.failed {
        say!("sipstorm: threshold failed: {f}");
    }
    Ok(o.failed.is_empty())
}

/// `sipstorm merge OUT IN...`.
pub fn merge_command(out: &Path, inputs: &[PathBuf]) -> Result<bool, RunError> {
    let r = crate::report::merge(out, inputs).map_err(report_err)?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        crate::report::render_summary(&r)
    );
    Ok(true)
}

/// This process's CPU time and peak RSS, as the report records them.
pub fn process_usage() -> crate::report::ProcessUsage {
    let u = transport::resource_usage();
    crate::report::ProcessUsage {
        cpu_user_s: u.user_s,
        cpu_sys_s: u.sys_s,
        cpu_total_s: u.total_s,
        max_rss_kib: u.max_rss_kib,
    }
}
