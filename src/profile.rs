//! Load profiles (`profiles/*.toml`) with errors that name the file, the
//! key and what is expected.
//!
//! A profile uses the flag names of `run` as keys (`rate`, `cancel-ratio`,
//! ...); flags given on the command line override it
//! ([`RunValues::overlay`]). Two kinds of mistakes are caught:
//! - shape errors (an unknown key, a string where a number belongs), found
//!   by the TOML reader: the message gets the line, the key and the
//!   expectation;
//! - value errors (`rate = -5.0`), found by [`RunConfig::build`]: when the
//!   offending key came from the profile and not from a flag, the error is
//!   re-attributed to the profile file and key.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, RunConfig, RunValues};

/// Where a profile is looked for: as given, under `profiles/`, and under
/// `profiles/` with `.toml` added.
pub fn locate(path: &Path) -> Option<PathBuf> {
    [
        path.to_path_buf(),
        Path::new("profiles").join(path),
        Path::new("profiles").join(path).with_extension("toml"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Read and parse a profile.
pub fn load(path: &Path) -> Result<(PathBuf, RunValues), ConfigError> {
    let found = locate(path).ok_or_else(|| ConfigError::Profile {
        path: path.display().to_string(),
        problem: "no such file (looked as given and under profiles/)".into(),
    })?;
    let text = std::fs::read_to_string(&found).map_err(|e| ConfigError::Profile {
        path: found.display().to_string(),
        problem: e.to_string(),
    })?;
    let values = parse(&text).map_err(|problem| ConfigError::Profile {
        path: found.display().to_string(),
        problem,
    })?;
    Ok((found, values))
}

/// Parse profile text; the error says where, which key and what is wrong.
pub fn parse(text: &str) -> Result<RunValues, String> {
    toml::from_str(text).map_err(|e| describe(text, &e))
}

/// `line L, key `k`: message` from a TOML error.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key {
        Some(k) if !message.contains(&format!("`{k}`")) => {
            format!("line {line_no}, key `{k}`: {message}")
        }
        _ => format!("line {line_no}: {message}"),
    }
}

/// The keys a set of values sets (kebab-case, as in a profile).
fn keys_set(v: &RunValues) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

/// Lay `flags` over the profile at `path` (if any) and validate. A value
/// error on a key the profile set and no flag overrode names the profile.
pub fn build(path: Option<&Path>, flags: RunValues) -> Result<RunConfig, ConfigError> {
    let Some(path) = path else {
        return RunConfig::build(flags);
    };
    let (found, mut profile) = load(path)?;
    // A --rate flag overrides the profile's whole load shape.
    if flags.rate.is_some() {
        profile.stages = None;
    }
    let from_profile = keys_set(&profile);
    let from_flags = keys_set(&flags);
    RunConfig::build(profile.overlay(flags)).map_err(|e| match e {
        ConfigError::Invalid { flag, problem } => {
            // "--t1/--t2" names two keys; any of them from the profile counts.
            // A repeatable flag's profile key may be plural (`--header`: `headers`).
            let keys: Vec<&str> = flag
                .split('/')
                .map(|f| match f.trim_start_matches("--") {
                    "header" => "headers",
                    k => k,
                })
                .collect();
            let profile_key = keys.iter().find(|k| {
                from_profile.iter().any(|p| p == *k) && !from_flags.iter().any(|f| f == *k)
            });
            match profile_key {
                Some(k) => ConfigError::Profile {
                    path: found.display().to_string(),
                    problem: format!("key `{k}`: {problem}"),
                },
                None => ConfigError::Invalid { flag, problem },
            }
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_name_line_key_and_expectation() {
        let cases = [
            ("rat = 1\n", "rat", "expected one of"),
            (
                "scenario = \"call\"\nrate = \"fast\"\n",
                "line 2, key `rate`",
                "f64",
            ),
            ("count = -3\n", "count", "u64"),
            ("rate = 10.0\nrate = 20.0\n", "rate", "duplicate"),
            ("threshold = \"x\"\n", "threshold", "sequence"),
        ];
        for (text, key, expect) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(expect), "{text:?}: {e}");
        }
    }

    #[test]
    fn valid_profile_parses() {
        let v = parse("scenario = \"register\"\nrate = 50.0\nduration = \"10s\"\nthreshold = [\"register.failed==0\"]\n").unwrap();
        assert_eq!(v.rate, Some(50.0));
        assert_eq!(keys_set(&v).len(), 4);
    }
}
