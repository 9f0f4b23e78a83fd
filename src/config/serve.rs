//! The configuration of `serve`, the built-in target.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::client::{parse_algorithm, parse_qop};
use super::{
    ConfigError, DEFAULT_PASSWORD_PATTERN, default_workers, delay, invalid, ratio, resolve,
};
use crate::auth::{Algorithm, Qop};
use crate::schedule::Hold;
use crate::transport::Backend;
use crate::users::Users;

/// The validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub realm: String,
    pub auth: bool,
    pub password_pattern: String,
    /// No `--password-pattern` was given: the well-known default is in force.
    pub default_passwords: bool,
    pub ring: Hold,
    /// Digest algorithm of the challenges (`--digest-algorithm`).
    pub algorithm: Algorithm,
    /// Offer `qop="auth-int"` instead of `qop="auth"` (`--digest-qop`).
    pub qop: Qop,
    pub busy_ratio: f64,
    pub no_answer_ratio: f64,
    pub backend: Backend,
    pub quiet: bool,
    /// `--seed N`: a reproducible server (secret, identifiers and draws
    /// from N; tests only). `None`: all of them from the OS.
    pub seed: Option<u64>,
    /// `--max-rate N`: new attempts per second beyond which the server
    /// answers 503 (a target of known capacity for `search`).
    pub max_rate: Option<f64>,
    /// `--domain` (repeatable): the domains served, lower case; empty =
    /// any.
    pub domains: Vec<String>,
    /// `--users FILE`: passwords by digest username (instead of
    /// `--password-pattern`), and which digest usernames may change which
    /// AORs ([`Users::digest_users_by_aor`]).
    pub users: Option<Users>,
}

/// Raw `serve` values from flags.
#[derive(Debug, Clone, Default)]
pub struct ServeValues {
    pub listen: Option<String>,
    pub workers: Option<usize>,
    pub realm: Option<String>,
    pub auth: Option<String>,
    pub password_pattern: Option<String>,
    pub ring: Option<String>,
    pub digest_algorithm: Option<String>,
    pub digest_qop: Option<String>,
    pub busy_ratio: Option<f64>,
    pub no_answer_ratio: Option<f64>,
    pub backend: Option<String>,
    pub quiet: bool,
    pub max_rate: Option<f64>,
    pub domains: Vec<String>,
    pub users: Option<PathBuf>,
    pub seed: Option<u64>,
}

impl ServeConfig {
    pub fn build(v: ServeValues) -> Result<ServeConfig, ConfigError> {
        let listen = resolve("--listen", v.listen.as_deref().unwrap_or("127.0.0.1:5060"))?;
        let workers = v.workers.unwrap_or_else(default_workers);
        if workers == 0 || workers > 1024 {
            return Err(invalid(
                "--workers",
                format!("{workers} is not between 1 and 1024"),
            ));
        }
        let auth = match v.auth.as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(o) => return Err(invalid("--auth", format!("'{o}' is not on or off"))),
        };
        let busy_ratio = ratio("--busy-ratio", v.busy_ratio)?;
        let no_answer_ratio = ratio("--no-answer-ratio", v.no_answer_ratio)?;
        if busy_ratio + no_answer_ratio > 1.0 {
            return Err(invalid(
                "--busy-ratio/--no-answer-ratio",
                "add up to more than 1",
            ));
        }
        if let Some(r) = v.max_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(invalid(
                "--max-rate",
                format!("{r} is not a positive number of attempts per second"),
            ));
        }
        let backend = match v.backend.or_else(|| std::env::var("SIPSTORM_BACKEND").ok()) {
            None => Backend::Auto,
            Some(b) => b.parse().map_err(|e: String| invalid("--backend", e))?,
        };
        let domains = v
            .domains
            .iter()
            .map(|d| {
                let d = super::reach::domain(d)?;
                let port =
                    crate::sip::parse_uri(format!("sip:{d}").as_bytes()).and_then(|u| u.port);
                match port {
                    Some(_) => Err(invalid(
                        "--domain",
                        format!("'{d}': a domain served is a host, without a port"),
                    )),
                    None => Ok(d),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if v.users.is_some() && v.password_pattern.is_some() {
            return Err(invalid(
                "--users",
                "gives every password: leave --password-pattern out",
            ));
        }
        let users = v
            .users
            .as_deref()
            .map(|p| Users::load(p).map_err(|e| invalid("--users", e.to_string())))
            .transpose()?;
        if let Some(u) = &users {
            u.digest_credentials()
                .map_err(|e| invalid("--users", e.to_string()))?;
        }
        Ok(ServeConfig {
            domains,
            users,
            listen,
            workers,
            realm: v.realm.unwrap_or_else(|| "sipstorm".into()),
            auth,
            default_passwords: v.password_pattern.is_none(),
            password_pattern: v
                .password_pattern
                .unwrap_or_else(|| DEFAULT_PASSWORD_PATTERN.into()),
            ring: delay("--ring", v.ring.as_deref())?.unwrap_or_default(),
            algorithm: match v.digest_algorithm.as_deref() {
                None => Algorithm::Md5,
                Some(a) => parse_algorithm(a)?,
            },
            qop: parse_qop(v.digest_qop.as_deref())?,
            busy_ratio,
            no_answer_ratio,
            backend,
            quiet: v.quiet,
            seed: v.seed,
            max_rate: v.max_rate,
        })
    }
}
