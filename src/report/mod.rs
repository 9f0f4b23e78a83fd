//! Report files: `report.json`, `intervals.hlog`, `summary.txt`,
//! `report.html`; re-rendering, comparing and merging reports; thresholds.
//!
//! The only I/O here is reading and writing report files. The layer knows
//! the names of the metrics and the RFC 6076 ratios, nothing of SIP itself.
//!
//! Entry points (wired to the CLI by `main.rs`):
//! - [`write_report`]: `run --out DIR` at the end of a run;
//! - [`render_dir`]: `sipstorm report DIR`;
//! - [`compare`]: `sipstorm compare BASE NEW --threshold ...`;
//! - [`check_thresholds`]: `run --threshold ...` on a single report;
//! - [`merge`]: `sipstorm merge OUT IN...`;
//! - [`claim_dir`]: a fresh directory for a run's default `--out`.
//!
//! Every file is written atomically (see `atomic`): a failed write leaves
//! the previous report directory as it was.

pub(crate) mod atomic;
mod compare;
mod hlog;
mod html;
mod merge;
mod model;
mod scenario;
mod summary;
mod threshold;
mod time;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use atomic::claim_dir;
pub use compare::{CompareOutcome, compare, compare_reports};
pub use html::render_html;
pub use merge::{merge, merge_reports};
pub use model::{
    CallTotals, Errors, LatencySeries, LatencyStats, Messages, OptionsTotals, ProcessUsage, Rate,
    RegisterTotals, Report, Rfc6076, SCHEMA, TimeSeries, Tool, Totals, ratios,
};
pub use scenario::{
    RtdReport, ScenarioCalls, ScenarioFileInfo, ScenarioFileReport, StepInfo as ScenarioStepInfo,
    StepReport,
};
pub use summary::render_summary;
pub use threshold::{Threshold, check_thresholds, check_thresholds_against};
pub use time::format_rfc3339;

use crate::stats::Aggregate;

/// File names inside a report directory (SPEC.md "Report directory").
pub const REPORT_JSON: &str = "report.json";
/// HdrHistogram interval log.
pub const INTERVALS_HLOG: &str = "intervals.hlog";
/// Human summary.
pub const SUMMARY_TXT: &str = "summary.txt";
/// Self-contained HTML page.
pub const REPORT_HTML: &str = "report.html";

/// Errors of the report layer. [`ReportError::is_usage`] tells the CLI
/// whether to exit with 2 (the user named a bad file, threshold or metric)
/// or 3 (something broke at run time).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory the user named does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A file the user named is not a sipstorm report.
    #[error("{path}: not a valid sipstorm report: {reason}")]
    InvalidReport {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A threshold expression does not parse or does not fit its metric.
    #[error("bad threshold `{expr}`: {reason}")]
    BadThreshold {
        /// The expression as given.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// A threshold names a metric that does not exist.
    #[error(
        "bad threshold `{expr}`: unknown metric `{metric}` (try e.g. call.failed, rate.achieved, srd.p99, rfc6076.ser_pct, responses.503)"
    )]
    UnknownMetric {
        /// The expression as given.
        expr: String,
        /// The metric name.
        metric: String,
    },
    /// A relative threshold (`+10%`) was used without a base report.
    #[error(
        "bad threshold `{expr}`: a relative limit needs a base report (use it with `sipstorm compare BASE NEW`)"
    )]
    RelativeWithoutBase {
        /// The expression as given.
        expr: String,
    },
    /// `merge` was given nothing to merge, or reports that cannot be merged.
    #[error("cannot merge: {0}")]
    Merge(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A histogram could not be encoded or decoded.
    #[error("{0}")]
    Histogram(#[from] crate::stats::HistogramCodecError),
    /// Drawing a plot failed.
    #[error("plot rendering failed: {0}")]
    Plot(String),
    /// JSON serialization failed.
    #[error("JSON serialization failed: {0}")]
    Json(#[from] serde_json::Error),
}

impl ReportError {
    /// `true` for errors the user caused by what they typed (bad threshold,
    /// unknown metric, missing or invalid report file): exit code 2.
    /// Everything else is a runtime failure: exit code 3.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReportError::NotFound { .. }
                | ReportError::InvalidReport { .. }
                | ReportError::BadThreshold { .. }
                | ReportError::UnknownMetric { .. }
                | ReportError::RelativeWithoutBase { .. }
                | ReportError::Merge(_)
        )
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReportError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            ReportError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// What the runtime knows about the run that the stats do not.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `register`, `call`, `mixed` or `options`: decides which attempts
    /// `rate.achieved_per_s` counts.
    pub scenario: String,
    /// Attempts per second asked for; `None` in closed-loop mode.
    pub offered_rate: Option<f64>,
    /// The effective profile. Keys containing "password", "passwd" or
    /// "secret" are redacted again here, whatever the caller did.
    pub config: serde_json::Value,
    /// Wall-clock start of the run.
    pub started_at: SystemTime,
    /// How long the run lasted (first attempt to end of drain).
    pub duration: Duration,
    /// How long attempts were being started (first intended start to the
    /// end of the load phase): what `rate.achieved_per_s` divides by, so a
    /// drain of calls in hold does not dilute the rate. `None`: `duration`.
    pub load_duration: Option<Duration>,
    /// `CARGO_PKG_VERSION` of the binary.
    pub tool_version: String,
    /// The git commit the binary was built from, if known.
    pub git_sha: Option<String>,
    /// CPU and memory of the run (the caller measures it at the end:
    /// `transport::resource_usage`, the OS edge).
    pub process: ProcessUsage,
    /// What the run was told that the reader must know (e.g. TLS
    /// verification off): first among the report's warnings.
    pub notes: Vec<String>,
    /// The SIPp scenario the run ran (`--sf`), if any.
    pub scenario_file: Option<ScenarioFileInfo>,
}

impl RunInfo {
    /// A `RunInfo` with this crate's version and the git sha from the
    /// `SIPSTORM_GIT_SHA` build-time variable if set; `process` is left for
    /// the caller to fill.
    pub fn new(
        scenario: &str,
        offered_rate: Option<f64>,
        config: serde_json::Value,
        started_at: SystemTime,
        duration: Duration,
    ) -> Self {
        RunInfo {
            scenario: scenario.to_string(),
            offered_rate,
            config,
            started_at,
            duration,
            load_duration: None,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            git_sha: option_env!("SIPSTORM_GIT_SHA").map(str::to_string),
            process: ProcessUsage::default(),
            notes: Vec::new(),
            scenario_file: None,
        }
    }
}

/// Replace the value of every key that looks like a credential with
/// `"<redacted>"`, recursively. Passwords never appear in any output.
pub fn scrub_config(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    if lk.contains("password") || lk.contains("passwd") || lk.contains("secret") {
                        (k.clone(), Value::String("<redacted>".to_string()))
                    } else {
                        (k.clone(), scrub_config(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub_config).collect()),
        other => other.clone(),
    }
}

/// Build the report of a finished run and write all four files into `dir`
/// (created if needed), all or none: if one cannot be written, the
/// previous files stay as they were. Returns the report (for thresholds and
/// exit code).
pub fn write_report(dir: &Path, info: &RunInfo, agg: &Aggregate) -> Result<Report, ReportError> {
    let report = model::build(info, agg)?;
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let intervals: Vec<hlog::Interval> = agg
        .seconds()
        .into_iter()
        .flat_map(|s| {
            let second = s.index;
            s.encoded
                .into_iter()
                .map(move |(slot, encoded)| hlog::Interval {
                    second,
                    slot,
                    encoded,
                })
        })
        .collect();
    let mut files = vec![hlog::stage(
        &dir.join(INTERVALS_HLOG),
        info.started_at,
        &report.tool.version,
        &intervals,
    )?];
    files.extend(stage_rendered(dir, &report)?);
    atomic::commit_all(files)?;
    Ok(report)
}

/// Stage `summary.txt`, `report.html` and `report.json` for `report`, in
/// that order: committed in order, `report.json`, the file scripts read,
/// is replaced last.
fn stage_rendered(dir: &Path, report: &Report) -> Result<Vec<atomic::Staged>, ReportError> {
    let json = serde_json::to_string_pretty(report)?;
    Ok(vec![
        atomic::stage(&dir.join(SUMMARY_TXT), render_summary(report).as_bytes())?,
        atomic::stage(&dir.join(REPORT_HTML), render_html(report)?.as_bytes())?,
        atomic::stage(&dir.join(REPORT_JSON), json.as_bytes())?,
    ])
}

/// `sipstorm report DIR`: re-render `summary.txt` and `report.html` from
/// `DIR/report.json` (which carries the histograms and the per-second
/// series the plots need). Both are replaced, or neither.
pub fn render_dir(dir: &Path) -> Result<(), ReportError> {
    let report = load_report(dir)?;
    atomic::commit_all(vec![
        atomic::stage(&dir.join(SUMMARY_TXT), render_summary(&report).as_bytes())?,
        atomic::stage(&dir.join(REPORT_HTML), render_html(&report)?.as_bytes())?,
    ])
}

/// The `report.json` path for a report directory or file.
pub fn report_json_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(REPORT_JSON)
    } else {
        path.to_path_buf()
    }
}

/// Load a report from a directory or a `report.json` file, checking its
/// `schema`.
pub fn load_report(path: &Path) -> Result<Report, ReportError> {
    let file = report_json_path(path);
    let text = std::fs::read_to_string(&file).map_err(|e| ReportError::io(&file, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ReportError::InvalidReport {
            path: file.clone(),
            reason: e.to_string(),
        })?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(other) => {
            return Err(ReportError::InvalidReport {
                path: file,
                reason: format!("schema is `{other}`, this sipstorm reads `{SCHEMA}`"),
            });
        }
        None => {
            return Err(ReportError::InvalidReport {
                path: file,
                reason: "no `schema` field".to_string(),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| ReportError::InvalidReport {
        path: file,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scrub_removes_credentials_anywhere() {
        let v = json!({
            "users": {"password_pattern": "pw-{user}", "user_pattern": "u{0..9}"},
            "Password": "x", "list": [{"db_passwd": "y"}, {"client_secret": "z"}],
            "rate": 5
        });
        let s = scrub_config(&v).to_string();
        for secret in ["pw-{user}", "\"x\"", "\"y\"", "\"z\""] {
            assert!(!s.contains(secret), "{secret} leaked in {s}");
        }
        assert!(s.contains("u{0..9}"));
        assert!(s.contains("\"rate\":5"));
    }

    #[test]
    fn usage_errors_are_classified() {
        assert!(
            ReportError::io(
                Path::new("/nonexistent"),
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
            .is_usage()
        );
        assert!(
            !ReportError::io(
                Path::new("/x"),
                std::io::Error::from(std::io::ErrorKind::PermissionDenied)
            )
            .is_usage()
        );
        assert!(!ReportError::Plot("x".into()).is_usage());
    }
}
