//! What each attempt of a run does beyond its scenario: a weighted mix of
//! scenarios and the client's digest preferences.

use serde::{Deserialize, Serialize};

use super::{ConfigError, ScenarioKind, invalid};
use crate::auth::{Algorithm, Qop};
use crate::schedule::Hold;

/// A weighted mix as written: the flag's `register=1,call=3` or a profile's
/// `[[mix]]` tables (which may also give each part its own hold).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a mix: \"register=1,call=3\", or [[mix]] tables with scenario, weight and an optional hold"
)]
pub enum MixValues {
    Text(String),
    Table(Vec<MixValue>),
}

/// One part of a mix in a profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixValue {
    pub scenario: String,
    pub weight: u32,
    /// Hold of this part's attempts; the run's `hold` when absent.
    pub hold: Option<String>,
}

/// One validated part of a mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixEntry {
    pub scenario: ScenarioKind,
    pub weight: u32,
    pub hold: Option<Hold>,
}

/// The client's digest preferences (RFC 8760 §2.4: a server may offer
/// several challenges, the client takes the first it supports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestOptions {
    /// Accepted algorithms, preferred first; empty = whatever is offered
    /// first.
    pub algorithms: Vec<Algorithm>,
    /// Answer with this qop when the challenge offers both.
    pub qop: Qop,
}

impl Default for DigestOptions {
    fn default() -> Self {
        DigestOptions {
            algorithms: Vec::new(),
            qop: Qop::Auth,
        }
    }
}

/// One `--digest-algorithm` token.
pub(super) fn parse_algorithm(t: &str) -> Result<Algorithm, ConfigError> {
    Algorithm::from_token(t.trim().as_bytes()).ok_or_else(|| {
        invalid(
            "--digest-algorithm",
            format!("unknown algorithm '{t}' (expected MD5, MD5-sess, SHA-256 or SHA-256-sess)"),
        )
    })
}

/// `--digest-qop`; `auth` when absent.
pub(super) fn parse_qop(t: Option<&str>) -> Result<Qop, ConfigError> {
    let Some(t) = t else { return Ok(Qop::Auth) };
    Qop::from_token(t.trim().as_bytes()).ok_or_else(|| {
        invalid(
            "--digest-qop",
            format!("unknown qop '{t}' (expected auth or auth-int)"),
        )
    })
}

impl MixValues {
    /// Validate into parts; every weight at least 1, each scenario once,
    /// `mixed` and `mix` not allowed inside.
    pub(super) fn build(&self) -> Result<Vec<MixEntry>, ConfigError> {
        let raw: Vec<(String, u32, Option<String>)> = match self {
            MixValues::Text(t) => {
                let mut v = Vec::new();
                for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (name, w) = part.split_once('=').ok_or_else(|| {
                        invalid("--mix", format!("'{part}' is not SCENARIO=WEIGHT"))
                    })?;
                    let w = w.trim().parse::<u32>().map_err(|_| {
                        invalid(
                            "--mix",
                            format!("weight '{w}' of {name} is not a whole number"),
                        )
                    })?;
                    v.push((name.trim().to_string(), w, None));
                }
                v
            }
            MixValues::Table(t) => t
                .iter()
                .map(|m| (m.scenario.clone(), m.weight, m.hold.clone()))
                .collect(),
        };
        if raw.is_empty() {
            return Err(invalid("--mix", "is empty (e.g. register=1,call=3)"));
        }
        let mut out: Vec<MixEntry> = Vec::with_capacity(raw.len());
        for (name, weight, hold) in raw {
            let scenario: ScenarioKind = name.parse().map_err(|e: String| invalid("--mix", e))?;
            if matches!(scenario, ScenarioKind::Mixed | ScenarioKind::Mix) {
                return Err(invalid(
                    "--mix",
                    format!("{name} cannot be part of a mix (use register, call or options)"),
                ));
            }
            if weight == 0 {
                return Err(invalid(
                    "--mix",
                    format!("weight of {name} must be at least 1"),
                ));
            }
            if out.iter().any(|e| e.scenario == scenario) {
                return Err(invalid("--mix", format!("{name} is listed twice")));
            }
            let hold = hold
                .map(|h| Hold::parse(&h).map_err(|e| invalid("--mix", format!("{name}: {e}"))))
                .transpose()?;
            out.push(MixEntry {
                scenario,
                weight,
                hold,
            });
        }
        Ok(out)
    }
}
