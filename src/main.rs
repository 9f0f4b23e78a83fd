//! The `sipstorm` command line: parse flags, build the configuration, call
//! the orchestrator, map every error to one line and an exit code (SPEC
//! "Exit codes": 0 all good, 1 failures or thresholds, 2 usage or
//! configuration, 3 fatal runtime).

#![forbid(unsafe_code)]

use sipstorm::say;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use sipstorm::config::{ConfigError, RunConfig, RunValues, ServeConfig, ServeValues};
use sipstorm::run;

/// High-performance SIP load generator and benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "sipstorm", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive load at a target and write a report (no --target: the embedded server).
    #[command(allow_negative_numbers = true)]
    Run(RunArgs),
    /// The built-in SIP target: registrar with digest auth + answering UAS.
    #[command(allow_negative_numbers = true)]
    Serve(ServeArgs),
    /// Find the highest rate a target sustains with zero failures.
    #[command(allow_negative_numbers = true)]
    Search(SearchArgs),
    /// Re-render summary.txt and report.html from a report directory.
    Report { dir: PathBuf },
    /// Compare two reports (files or directories); thresholds set the exit code.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// e.g. `rrd.p99<+10%`; a failed one makes the exit code 1.
        #[arg(long)]
        threshold: Vec<String>,
    },
    /// Merge reports of segmented runs.
    Merge {
        out: PathBuf,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A load profile (TOML) from profiles/ or anywhere; flags override it.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// The server under test, HOST:PORT; absent = embedded server.
    #[arg(long)]
    target: Option<String>,
    /// register | call | options | mixed | mix (mix: see --mix)
    #[arg(long)]
    scenario: Option<String>,
    /// Weighted mix of scenarios, e.g. register=1,call=3,options=1 (each
    /// attempt is one of them, in exactly these proportions).
    #[arg(long)]
    mix: Option<String>,
    /// Attempts started per second (open loop, paced on intended start times).
    #[arg(long)]
    rate: Option<f64>,
    /// Cap on attempts in flight (closed loop when --rate is absent).
    #[arg(long)]
    concurrency: Option<u64>,
    /// Stop after N attempts.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long, e.g. 30s, 2m.
    #[arg(long)]
    duration: Option<String>,
    /// Users file (SIPp injection CSV).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Generated users, e.g. u{000000..099999}.
    #[arg(long)]
    user_pattern: Option<String>,
    /// Password of each generated user, e.g. pw-{user}.
    #[arg(long)]
    password_pattern: Option<String>,
    /// Call hold time: 5s, uniform(1s,5s), exp(3s), lognormal(3s,0.5), normal(3s,1s).
    #[arg(long)]
    hold: Option<String>,
    /// Ring delay (180 → 200) of the answering side: the embedded server, and
    /// sipstorm's own UAS in `mixed`; same forms as --hold.
    #[arg(long)]
    ring: Option<String>,
    /// Digest algorithms accepted, preferred first, e.g. SHA-256,MD5
    /// (default: whatever the server offers first).
    #[arg(long)]
    digest_algorithm: Option<String>,
    /// qop to answer with when offered both: auth | auth-int (default auth).
    #[arg(long)]
    digest_qop: Option<String>,
    /// Fraction of calls cancelled after the first provisional response.
    #[arg(long)]
    cancel_ratio: Option<f64>,
    /// Worker threads, each pinned to a core (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Transport: udp | tcp | tls | ws | wss (tls: sips: Contacts, RFC
    /// 5630; ws/wss: SIP over WebSocket, RFC 7118).
    #[arg(long)]
    transport: Option<String>,
    /// Stream transports: shared (a pool of --connections per worker, kept
    /// open; SIPp -t t1) | user (one per user, kept open) | call (one per
    /// attempt, closed when it ends; SIPp -t tn).
    #[arg(long)]
    connection_mode: Option<String>,
    /// Connections of the shared pool per worker (default 1).
    #[arg(long)]
    connections: Option<u32>,
    /// TLS: trusted CA certificates, PEM (default: the system's bundle).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// TLS: do not verify the server's certificate (the report says so).
    #[arg(long)]
    tls_insecure: bool,
    /// TLS: server name to send (SNI) and verify (default: the target's IP).
    #[arg(long)]
    tls_sni: Option<String>,
    /// TLS: client certificate chain, PEM (with --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS: client private key, PEM.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// TLS: resume sessions on new connections (tickets / session ids kept
    /// per worker); default: a full handshake every time.
    #[arg(long)]
    tls_resume: bool,
    /// WebSocket: the resource of the Upgrade request (default /).
    #[arg(long)]
    ws_path: Option<String>,
    /// WebSocket: the Origin header to send, as a browser would
    /// (default: none).
    #[arg(long)]
    ws_origin: Option<String>,
    /// Source address to bind.
    #[arg(long)]
    local_ip: Option<String>,
    /// This instance's share I/N of rate, count and users.
    #[arg(long)]
    segment: Option<String>,
    /// Report directory (default results/<timestamp>-<scenario>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// e.g. register.failed==0, rrd.p99<50ms (repeatable).
    #[arg(long)]
    threshold: Vec<String>,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
    /// Event loop: uring | epoll | auto (env SIPSTORM_BACKEND).
    #[arg(long)]
    backend: Option<String>,
    /// How long in-flight attempts may finish after the last start (default: 64·T1 + 1s, the
    /// longest a transaction can live, so every attempt ends with an outcome).
    #[arg(long)]
    drain: Option<String>,
    /// Tick of the open-loop schedule: attempts start at tick boundaries
    /// (default 1ms; 0 = exact intended times, one wake-up per attempt).
    #[arg(long)]
    pacing_resolution: Option<String>,
    /// How long the loop may hold received datagrams to handle them in one
    /// wake-up (default 100us, at most 1ms): longer costs less CPU per call
    /// but delays replies to responses (e.g. the REGISTER after a 401, so
    /// RRD) by up to that much. Arrival times stay exact (kernel stamps).
    #[arg(long)]
    batch_window: Option<String>,
    /// RFC 3261 T1 (default 500ms).
    #[arg(long)]
    t1: Option<String>,
    /// RFC 3261 T2 (default 4s).
    #[arg(long)]
    t2: Option<String>,
    /// RFC 3261 T4 (default 5s).
    #[arg(long)]
    t4: Option<String>,
    /// Requested registration lifetime in seconds.
    #[arg(long)]
    expires: Option<u32>,
    /// Seed of random choices (hold times, cancel decisions, identifiers).
    #[arg(long)]
    seed: Option<u64>,
    /// Host of Request-URI, From and To, e.g. example.test (REGISTER goes to
    /// sip:D); --target stays where datagrams go. Default: the target.
    #[arg(long)]
    domain: Option<String>,
    /// Preloaded Route (repeatable, in order), loose routing: e.g.
    /// 'sip:proxy.example.test;lr' for an outbound proxy.
    #[arg(long)]
    route: Vec<String>,
    /// Whom calls go to: a pattern '{1000..1999}', a fixed number '9999', or
    /// field:N of the users file (default: the next user).
    #[arg(long)]
    callee: Option<String>,
    /// The From user: a pattern, a fixed name or field:N (default: the user).
    #[arg(long)]
    caller: Option<String>,
    /// Display name in From.
    #[arg(long)]
    from_display: Option<String>,
    /// Extra header of REGISTER, INVITE and OPTIONS, 'Name: value'
    /// (repeatable); templates {user} {callee} {domain} {call_id} {seq}
    /// {field:N} {local_ip} {local_port}.
    #[arg(long)]
    header: Vec<String>,
    /// INVITE offer body template (default: a PCMU offer); also
    /// {media_ip} {media_ip_type} {media_port}. An optional first line
    /// 'Content-Type: TYPE' and a blank line set its type.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Content-Type of the --sdp body (default application/sdp).
    #[arg(long)]
    content_type: Option<String>,
    /// First local port; worker i binds port + i (default: ephemeral ports).
    #[arg(long)]
    local_port: Option<u16>,
    #[command(flatten)]
    sipp: SippArgs,
}

/// A SIPp XML scenario and SIPp's own flags that go with it. Single-dash
/// SIPp spellings (`-sf`, `-inf`, `-s`, `-key`, `-set`, `-m`, `-r`, `-l`,
/// `-d`, `-recv_timeout`, `-trace_logs`, `-nr`) are rewritten to these
/// before parsing (see [`sipp_argv`]).
#[derive(Debug, Args)]
struct SippArgs {
    /// A SIPp XML scenario to run (SIPp's -sf): run takes a client (UAC)
    /// scenario, serve a server (UAS) one.
    #[arg(long = "sf", visible_alias = "scenario-file", value_name = "FILE.xml")]
    sf: Option<PathBuf>,
    /// [service] in the scenario, and its default digest username (SIPp's -s).
    #[arg(long)]
    service: Option<String>,
    /// [NAME] in the scenario's messages is VALUE (SIPp's -key; repeatable).
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"])]
    key: Vec<String>,
    /// The value of a <Global> variable of the scenario (SIPp's -set; repeatable).
    #[arg(long, num_args = 2, value_names = ["VAR", "VALUE"])]
    set: Vec<String>,
    /// Injection file (SIPp's -inf; repeatable): the first is the users
    /// file (as --users), the others serve [fieldN file="F"].
    #[arg(long, value_name = "FILE")]
    inf: Vec<PathBuf>,
    /// Timeout of a scenario recv that has none (SIPp's -recv_timeout).
    #[arg(long)]
    recv_timeout: Option<String>,
    /// Append the scenario's <log> lines to <scenario>_<pid>_logs.log (SIPp's -trace_logs).
    #[arg(long)]
    trace_logs: bool,
    /// No retransmission of the scenario's retrans sends, no detection of
    /// received retransmissions (SIPp's -nr).
    #[arg(long)]
    no_retrans: bool,
}

impl SippArgs {
    fn pairs(v: &[String]) -> Option<std::collections::BTreeMap<String, String>> {
        (!v.is_empty()).then(|| {
            v.chunks(2)
                .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                .collect()
        })
    }
}

impl RunArgs {
    fn values(self) -> Result<RunValues, ConfigError> {
        let base = match &self.profile {
            Some(p) => sipstorm::profile::load(p)?.1,
            None => RunValues::default(),
        };
        let flags = RunValues {
            target: self.target,
            scenario: self.scenario,
            rate: self.rate,
            concurrency: self.concurrency,
            count: self.count,
            duration: self.duration,
            users: self.users,
            user_pattern: self.user_pattern,
            password_pattern: self.password_pattern,
            hold: self.hold,
            cancel_ratio: self.cancel_ratio,
            workers: self.workers,
            transport: self.transport,
            local_ip: self.local_ip,
            segment: self.segment,
            out: self.out,
            threshold: (!self.threshold.is_empty()).then_some(self.threshold),
            quiet: self.quiet.then_some(true),
            backend: self.backend,
            drain: self.drain,
            pacing_resolution: self.pacing_resolution,
            batch_window: self.batch_window,
            t1: self.t1,
            t2: self.t2,
            t4: self.t4,
            expires: self.expires,
            seed: self.seed,
            stages: None,
            ring: self.ring,
            mix: self.mix.map(sipstorm::config::MixValues::Text),
            digest_algorithm: self.digest_algorithm,
            digest_qop: self.digest_qop,
            domain: self.domain,
            route: (!self.route.is_empty()).then_some(self.route),
            callee: self.callee,
            caller: self.caller,
            from_display: self.from_display,
            header: (!self.header.is_empty()).then_some(self.header),
            sdp: self.sdp,
            content_type: self.content_type,
            local_port: self.local_port,
            connection_mode: self.connection_mode,
            connections: self.connections,
            tls_ca: self.tls_ca,
            tls_insecure: self.tls_insecure.then_some(true),
            tls_sni: self.tls_sni,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_resume: self.tls_resume.then_some(true),
            scenario_file: self.sipp.sf,
            service: self.sipp.service,
            key: SippArgs::pairs(&self.sipp.key),
            set: SippArgs::pairs(&self.sipp.set),
            inf: (!self.sipp.inf.is_empty()).then_some(self.sipp.inf),
            recv_timeout: self.sipp.recv_timeout,
            trace_logs: self.sipp.trace_logs.then_some(true),
            no_retrans: self.sipp.no_retrans.then_some(true),
            ws_path: self.ws_path,
            ws_origin: self.ws_origin,
        };
        Ok(base.overlay(flags))
    }

    /// Flags over the profile, validated; value errors from the profile
    /// name its file and key.
    fn config(mut self) -> Result<RunConfig, ConfigError> {
        let profile = self.profile.take();
        let flags = self.values()?;
        sipstorm::profile::build(profile.as_deref(), flags)
    }
}

/// `search`: the run flags (--rate is the first step's rate, default 1000;
/// --duration each step's length, default 5s; --out the search report)
/// plus the search's own.
#[derive(Debug, Args)]
struct SearchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Growth factor while steps pass (default 2: the rate doubles until a
    /// step fails or the generator falls short, then the search bisects);
    /// above 1, at most 10.
    #[arg(long)]
    step: Option<f64>,
    /// Stop when the highest pass and the lowest failure are within this
    /// fraction of the pass.
    #[arg(long, default_value_t = sipstorm::search::DEFAULT_PRECISION)]
    precision: f64,
    /// At most this many steps, each a full run; running out reports
    /// limited_by: max_steps.
    #[arg(long, default_value_t = sipstorm::search::DEFAULT_MAX_STEPS)]
    max_steps: u32,
}

/// The process's stop flag, with SIGINT/SIGTERM installed (once).
fn signals() -> Result<run::StopFlag, run::RunError> {
    let stop = run::StopFlag::new();
    stop.install_signals()?;
    Ok(stop)
}

fn search_cmd(a: SearchArgs) -> ExitCode {
    let mut v = match a.run.values() {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let start_rate = v.rate.unwrap_or(sipstorm::search::DEFAULT_START_RATE);
    let step_duration = v.duration.take();
    let out = v.out.take();
    let cfg = match RunConfig::build(v) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let step_duration = match step_duration
        .as_deref()
        .map(sipstorm::schedule::parse_duration)
    {
        None => sipstorm::search::DEFAULT_STEP_DURATION,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            return usage(ConfigError::Invalid {
                flag: "--duration",
                problem: e.to_string(),
            });
        }
    };
    let opts = sipstorm::search::SearchOptions {
        start_rate,
        step: a.step.unwrap_or(sipstorm::search::DEFAULT_GROWTH),
        precision: a.precision,
        max_steps: a.max_steps,
        step_duration,
    };
    // Before a directory is claimed: a usage error leaves nothing behind.
    if let Err(e) = opts.validate() {
        say!("sipstorm: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let out = match out {
        Some(o) => o,
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let base = PathBuf::from(format!("results/search-{secs}-{}", cfg.scenario.name()));
            // Two searches started in the same second get directories of their own.
            match sipstorm::report::claim_dir(&base) {
                Ok(d) => d,
                Err(e) => {
                    say!("sipstorm: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            }
        }
    };
    let stop = match signals() {
        Ok(s) => s,
        Err(e) => return fatal(&e),
    };
    match sipstorm::search::search(&cfg, &opts, &out, &stop) {
        Ok(r) => {
            {
                use std::io::Write as _;
                let _ = write!(
                    std::io::stdout().lock(),
                    "{}",
                    sipstorm::search::render_search(&r)
                );
            }
            say!("sipstorm search: report written to {}", out.display());
            ExitCode::from(if r.max_rate_per_s.is_some() {
                0
            } else {
                EXIT_FAILED
            })
        }
        Err(sipstorm::search::SearchError::Run(e)) => fatal(&e),
        Err(e @ sipstorm::search::SearchError::Invalid { .. }) => {
            say!("sipstorm: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            say!("sipstorm: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on: udp:ADDR, tcp:ADDR, tls:ADDR, ws:ADDR,
    /// wss:ADDR or a bare ADDR (UDP); repeatable (default 127.0.0.1:5060).
    #[arg(long)]
    listen: Vec<String>,
    /// Certificate chain of tls: and wss: listeners, PEM (default: a self-signed
    /// certificate for localhost, 127.0.0.1 and ::1 made at start).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Worker threads, one SO_REUSEPORT socket each (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Digest realm.
    #[arg(long)]
    realm: Option<String>,
    /// Digest authentication of REGISTER: on | off.
    #[arg(long)]
    auth: Option<String>,
    /// Password of user U, e.g. pw-{user}.
    #[arg(long)]
    password_pattern: Option<String>,
    /// Delay between the 180 and the 200: 2s, uniform(1s,5s), exp(3s),
    /// lognormal(3s,0.5), normal(3s,1s).
    #[arg(long)]
    ring: Option<String>,
    /// Digest algorithm of challenges: MD5 | MD5-sess | SHA-256 | SHA-256-sess.
    #[arg(long)]
    digest_algorithm: Option<String>,
    /// qop offered in challenges: auth | auth-int.
    #[arg(long)]
    digest_qop: Option<String>,
    /// Fraction of calls answered 486 Busy Here.
    #[arg(long)]
    busy_ratio: Option<f64>,
    /// Fraction of calls never answered.
    #[arg(long)]
    no_answer_ratio: Option<f64>,
    /// Event loop: uring | epoll | auto (env SIPSTORM_BACKEND).
    #[arg(long)]
    backend: Option<String>,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
    /// Capacity in new attempts per second; beyond it requests get 503.
    #[arg(long)]
    max_rate: Option<f64>,
    /// A domain served (repeatable): out-of-dialog requests for other hosts
    /// (than these and the listen address) get 404; bindings are user@domain.
    #[arg(long)]
    domain: Vec<String>,
    /// SIPp users file: passwords by digest username (the keyword form's
    /// username=, else field 0), instead of --password-pattern.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Reproducible server for tests: secret, tags and random draws from N
    /// (anyone who knows N can forge nonces). Default: from the OS.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    sipp: SippArgs,
}

/// SIPp's single-dash flags as sipstorm's long ones, for `run`, `serve`
/// and `search`, so a SIPp command line moves over as it is: `-sf`,
/// `-inf`, `-s`, `-key`, `-set`, `-m` (`--count`), `-r` (`--rate`), `-l`
/// (`--concurrency`), `-d MS` (`--hold MSms`), `-recv_timeout MS`,
/// `-trace_logs`, `-nr`. Only whole arguments are rewritten, and nothing
/// after `--`.
fn sipp_argv(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_cmd = |a: &std::ffi::OsString| matches!(a.to_str(), Some("run" | "serve" | "search"));
    if !args.iter().skip(1).take(1).any(is_cmd) {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    let mut ms_value = false;
    let mut done = false;
    for a in it.by_ref() {
        if done {
            out.push(a);
            continue;
        }
        if ms_value {
            ms_value = false;
            // SIPp counts milliseconds: `-d 5000` is `--hold 5000ms`.
            match a.to_str() {
                Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    out.push(format!("{v}ms").into());
                }
                _ => out.push(a),
            }
            continue;
        }
        let mapped = match a.to_str() {
            Some("--") => {
                done = true;
                None
            }
            Some("-sf") => Some("--sf"),
            Some("-inf") => Some("--inf"),
            Some("-s") => Some("--service"),
            Some("-key") => Some("--key"),
            Some("-set") => Some("--set"),
            Some("-m") => Some("--count"),
            Some("-r") => Some("--rate"),
            Some("-l") => Some("--concurrency"),
            Some("-d") => {
                ms_value = true;
                Some("--hold")
            }
            Some("-recv_timeout") => {
                ms_value = true;
                Some("--recv-timeout")
            }
            Some("-trace_logs") => Some("--trace-logs"),
            Some("-nr") => Some("--no-retrans"),
            _ => None,
        };
        out.push(mapped.map_or(a, Into::into));
    }
    out
}

/// Exit codes of SPEC "Exit codes".
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_RUNTIME: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(sipp_argv(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and succeed; everything else is a
            // usage error (clap exits 2 for those).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    match cli.command {
        Command::Run(args) => {
            let cfg = match args.config() {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let stop = match signals() {
                Ok(s) => s,
                Err(e) => return fatal(&e),
            };
            match run::run_command(&cfg, &stop) {
                Ok(outcome) => ExitCode::from(if outcome.all_ok { 0 } else { EXIT_FAILED }),
                Err(e) => fatal(&e),
            }
        }
        Command::Serve(a) => {
            let v = ServeValues {
                listen: a.listen,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
                workers: a.workers,
                realm: a.realm,
                auth: a.auth,
                password_pattern: a.password_pattern,
                ring: a.ring,
                digest_algorithm: a.digest_algorithm,
                digest_qop: a.digest_qop,
                busy_ratio: a.busy_ratio,
                no_answer_ratio: a.no_answer_ratio,
                backend: a.backend,
                quiet: a.quiet,
                max_rate: a.max_rate,
                domains: a.domain,
                users: a.users,
                seed: a.seed,
                scenario_file: a.sipp.sf,
                service: a.sipp.service,
                keys: SippArgs::pairs(&a.sipp.key).unwrap_or_default(),
                sets: SippArgs::pairs(&a.sipp.set).unwrap_or_default(),
                recv_timeout: a.sipp.recv_timeout,
                trace_logs: a.sipp.trace_logs,
                no_retrans: a.sipp.no_retrans,
                inf: a.sipp.inf,
            };
            let cfg = match ServeConfig::build(v) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let stop = match signals() {
                Ok(s) => s,
                Err(e) => return fatal(&e),
            };
            match run::serve_command(&cfg, &stop) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fatal(&e),
            }
        }
        Command::Search(a) => search_cmd(a),
        Command::Report { dir } => report_cmd(run::report_command(&dir)),
        Command::Compare {
            base,
            new,
            threshold,
        } => report_cmd(run::compare_command(&base, &new, &threshold)),
        Command::Merge { out, inputs } => report_cmd(run::merge_command(&out, &inputs)),
    }
}

fn usage(e: ConfigError) -> ExitCode {
    say!("sipstorm: {e}");
    ExitCode::from(EXIT_USAGE)
}

fn fatal(e: &run::RunError) -> ExitCode {
    say!("sipstorm: {e}");
    ExitCode::from(match e {
        run::RunError::Usage(_) => EXIT_USAGE,
        _ => EXIT_RUNTIME,
    })
}

fn report_cmd(r: Result<bool, run::RunError>) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => fatal(&e),
    }
}
