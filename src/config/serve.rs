//! The configuration of `serve`, the built-in target.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::client::{parse_algorithm, parse_qop};
use super::{
    ConfigError, DEFAULT_PASSWORD_PATTERN, default_workers, delay, invalid, ratio, resolve,
};
use crate::auth::{Algorithm, Qop};
use crate::flow::TransportKind;
use crate::schedule::Hold;
use crate::transport::Backend;
use crate::users::Users;

/// The validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The UDP address: the `udp:` listen address, or when none was
    /// given an ephemeral port on the first listen address's IP (each
    /// worker has a UDP socket; this one is not advertised).
    pub listen: SocketAddr,
    /// A `udp:` (or bare) listen address was given.
    pub udp: bool,
    /// `tcp:`, `tls:`, `ws:` and `wss:` listen addresses.
    pub streams: Vec<(TransportKind, SocketAddr)>,
    /// `--tls-cert`/`--tls-key`; absent: a self-signed certificate made at
    /// start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
    /// `--sf`: a SIPp server scenario answers instead of the built-in
    /// registrar, proxy and UAS.
    pub scenario_file: Option<super::ScenarioFileConfig>,
}

/// Raw `serve` values from flags.
#[derive(Debug, Clone, Default)]
pub struct ServeValues {
    /// `--listen`, repeatable: `udp:ADDR`, `tcp:ADDR`, `tls:ADDR`,
    /// `ws:ADDR`, `wss:ADDR` or a bare `ADDR` (UDP).
    pub listen: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
    /// `--sf`: answer as a SIPp server (UAS) scenario.
    pub scenario_file: Option<PathBuf>,
    pub service: Option<String>,
    pub keys: std::collections::BTreeMap<String, String>,
    pub sets: std::collections::BTreeMap<String, String>,
    pub recv_timeout: Option<String>,
    pub trace_logs: bool,
    pub no_retrans: bool,
    /// `-inf` files for `[fieldN file=F]`.
    pub inf: Vec<PathBuf>,
}

impl ServeConfig {
    pub fn build(v: ServeValues) -> Result<ServeConfig, ConfigError> {
        let scenario_file = scenario_for_serve(&v)?;
        let given = if v.listen.is_empty() {
            vec!["127.0.0.1:5060".to_string()]
        } else {
            v.listen.clone()
        };
        let mut udp = None;
        let mut streams = Vec::new();
        for l in &given {
            let (kind, addr) = parse_listen(l)?;
            match kind {
                TransportKind::Udp if udp.is_some() => {
                    return Err(invalid("--listen", "one udp address at most"));
                }
                TransportKind::Udp => udp = Some(addr),
                _ => {
                    if streams.iter().any(|&(k, a)| k == kind && a == addr) {
                        return Err(invalid("--listen", format!("{l} is given twice")));
                    }
                    streams.push((kind, addr));
                }
            }
        }
        let has_udp = udp.is_some();
        let listen = udp.unwrap_or_else(|| SocketAddr::new(streams[0].1.ip(), 0));
        if (v.tls_cert.is_some() || v.tls_key.is_some())
            && !streams.iter().any(|(k, _)| k.is_secure())
        {
            return Err(invalid(
                "--tls-cert",
                "only with a tls: or wss: --listen address",
            ));
        }
        if v.tls_cert.is_some() != v.tls_key.is_some() {
            return Err(invalid("--tls-cert/--tls-key", "go together"));
        }
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
            scenario_file,
            domains,
            users,
            listen,
            udp: has_udp,
            streams,
            tls_cert: v.tls_cert,
            tls_key: v.tls_key,
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

/// `serve --sf`: the server scenario, and the built-in target's flags
/// refused with it (they would have no effect).
fn scenario_for_serve(v: &ServeValues) -> Result<Option<super::ScenarioFileConfig>, ConfigError> {
    let Some(file) = &v.scenario_file else {
        let sipp_only = [
            ("-s/--service", v.service.is_some()),
            ("-key", !v.keys.is_empty()),
            ("-set", !v.sets.is_empty()),
            ("--recv-timeout", v.recv_timeout.is_some()),
            ("-trace_logs", v.trace_logs),
            ("-nr", v.no_retrans),
            ("-inf", !v.inf.is_empty()),
        ];
        if let Some((flag, _)) = sipp_only.iter().find(|(_, set)| *set) {
            return Err(invalid(flag, "only with a scenario file (--sf FILE.xml)"));
        }
        return Ok(None);
    };
    let conflicts = [
        ("--realm", v.realm.is_some()),
        ("--auth", v.auth.is_some()),
        ("--password-pattern", v.password_pattern.is_some()),
        ("--ring", v.ring.is_some()),
        ("--digest-algorithm", v.digest_algorithm.is_some()),
        ("--digest-qop", v.digest_qop.is_some()),
        ("--busy-ratio", v.busy_ratio.is_some()),
        ("--no-answer-ratio", v.no_answer_ratio.is_some()),
        ("--max-rate", v.max_rate.is_some()),
        ("--domain", !v.domains.is_empty()),
        ("--users", v.users.is_some()),
    ];
    if let Some((flag, _)) = conflicts.iter().find(|(_, set)| *set) {
        return Err(invalid(
            flag,
            "has no effect with --sf: the scenario file answers every message itself",
        ));
    }
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    super::scenario::build(
        super::scenario::ScenarioValues {
            file: file.as_path(),
            service: v.service.as_deref(),
            keys: pairs(&v.keys),
            sets: pairs(&v.sets),
            users_file: None,
            inf: &v.inf,
            recv_timeout: v.recv_timeout.as_deref(),
            trace_logs: v.trace_logs,
            no_retrans: v.no_retrans,
        },
        crate::engine::scenario::Role::Uas,
    )
    .map(Some)
}

/// One `--listen` value: `udp:ADDR`, `tcp:ADDR`, `tls:ADDR`, `ws:ADDR`,
/// `wss:ADDR` or a bare `ADDR`, which is UDP.
pub fn parse_listen(s: &str) -> Result<(TransportKind, SocketAddr), ConfigError> {
    if let Some((scheme, rest)) = s.split_once(':')
        && let Ok(kind) = scheme.parse::<TransportKind>()
    {
        return Ok((kind, resolve("--listen", rest)?));
    }
    Ok((TransportKind::Udp, resolve("--listen", s)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        let cases: Vec<(&str, Option<(TransportKind, &str)>)> = vec![
            (
                "127.0.0.1:5060",
                Some((TransportKind::Udp, "127.0.0.1:5060")),
            ),
            (
                "udp:127.0.0.1:5070",
                Some((TransportKind::Udp, "127.0.0.1:5070")),
            ),
            (
                "tcp:127.0.0.1:5060",
                Some((TransportKind::Tcp, "127.0.0.1:5060")),
            ),
            ("TLS:[::1]:5061", Some((TransportKind::Tls, "[::1]:5061"))),
            ("[::1]:5062", Some((TransportKind::Udp, "[::1]:5062"))),
            ("sctp:127.0.0.1:1", None),
            ("tcp:nowhere", None),
        ];
        for (text, want) in cases {
            let got = parse_listen(text).ok();
            assert_eq!(got, want.map(|(k, a)| (k, a.parse().unwrap())), "{text}");
        }
        let c = ServeConfig::build(ServeValues {
            listen: vec!["tcp:127.0.0.1:5090".into(), "tls:127.0.0.1:5091".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(!c.udp);
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.streams.len(), 2);
        for bad in [
            vec!["udp:127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()],
            vec!["tcp:127.0.0.1:1".to_string(), "tcp:127.0.0.1:1".to_string()],
            vec!["ws:127.0.0.1:1".to_string(), "ws:127.0.0.1:1".to_string()],
        ] {
            assert!(
                ServeConfig::build(ServeValues {
                    listen: bad.clone(),
                    ..Default::default()
                })
                .is_err(),
                "{bad:?}"
            );
        }
        let e = ServeConfig::build(ServeValues {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--tls-cert"), "{e}");
    }
}
