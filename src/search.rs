//! `sipstorm search`: the highest attempt rate a target sustains with zero
//! failures.
//!
//! RFC 7501 §3.2/§3.3 define the Session Establishment Rate and the
//! Registration Rate as "the maximum average rate at which the DUT/SUT can
//! successfully establish sessions [register]" over a sustained period with
//! no failures; RFC 7502 §4.8 finds it stepwise: run at a rate for a fixed
//! period, raise the rate while every attempt succeeds, and on a failure
//! back off and halve the step, until the step is small. Every step here is
//! a real `run` (in-process, same engine, same report), so each step's
//! report directory stays behind as evidence.
//!
//! A search is only as good as its generator: when a step has no failures
//! but achieves less than 95 % of the offered rate, or the process used
//! (nearly) all the CPU its workers could, the limit found is the
//! generator's, not the target's. The search then stops and says so
//! (`search.limited_by = "generator"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::RunConfig;
use crate::run::{self, RunError};

/// Why a search could not be carried out (a step that *fails* is not an
/// error: it is how the search learns).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{flag}: {problem}")]
    Invalid { flag: &'static str, problem: String },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("search report {path}: {problem}")]
    Report { path: String, problem: String },
}

/// How the search proceeds (`sipstorm search` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// First rate tried (attempts per second).
    pub start_rate: f64,
    /// Initial increase after a passing step.
    pub step: f64,
    /// Stop when the gap between the highest passing and the lowest failing
    /// rate is at most this fraction of the passing one.
    pub precision: f64,
    /// Upper bound on the number of steps (each is a full run).
    pub max_steps: u32,
    /// Length of each step (RFC 7502 §4.8: the fixed test duration).
    pub step_duration: Duration,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            start_rate: 100.0,
            step: 100.0,
            precision: 0.05,
            max_steps: 20,
            step_duration: Duration::from_secs(10),
        }
    }
}

impl SearchOptions {
    /// Refuse values that cannot converge.
    pub fn validate(&self) -> Result<(), SearchError> {
        let bad = |flag, problem: String| Err(SearchError::Invalid { flag, problem });
        if !(self.start_rate.is_finite() && self.start_rate > 0.0) {
            return bad(
                "--rate",
                format!("{} is not a positive rate", self.start_rate),
            );
        }
        if !(self.step.is_finite() && self.step > 0.0) {
            return bad("--step", format!("{} is not a positive step", self.step));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return bad(
                "--precision",
                format!("{} is not a fraction between 0 and 1", self.precision),
            );
        }
        if self.max_steps == 0 {
            return bad("--max-steps", "must be at least 1".into());
        }
        if self.step_duration.is_zero() {
            return bad("--duration", "each step needs a duration above zero".into());
        }
        Ok(())
    }
}

/// The pure search state: which rate to try next, given the verdicts so
/// far. Kept apart from the runs so it can be tested against a model
/// target.
#[derive(Debug, Clone)]
pub struct Searcher {
    rate: f64,
    step: f64,
    precision: f64,
    /// Highest rate that passed.
    pass: Option<f64>,
    /// Lowest rate that failed.
    fail: Option<f64>,
}

impl Searcher {
    pub fn new(opts: &SearchOptions) -> Searcher {
        Searcher {
            rate: opts.start_rate,
            step: opts.step,
            precision: opts.precision,
            pass: None,
            fail: None,
        }
    }

    /// The rate of the next step.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The highest passing rate so far.
    pub fn found(&self) -> Option<f64> {
        self.pass
    }

    /// Record the verdict of the step at [`Searcher::rate`]; `false` when
    /// the search has converged.
    ///
    /// Before the first failure the rate grows by the step (RFC 7502 §4.8
    /// "increase the rate"); after it, each step halves the remaining
    /// interval between the highest pass and the lowest failure ("back off
    /// and halve the step"), which is the same sequence as halving the step
    /// and moving up on a pass, down on a failure.
    pub fn record(&mut self, passed: bool) -> bool {
        if passed {
            self.pass = Some(self.pass.map_or(self.rate, |p| p.max(self.rate)));
        } else {
            self.fail = Some(self.fail.map_or(self.rate, |f| f.min(self.rate)));
        }
        match (self.pass, self.fail) {
            (Some(p), None) => {
                self.rate = p + self.step;
                true
            }
            (lo, Some(hi)) => {
                let lo = lo.unwrap_or(0.0);
                let gap = hi - lo;
                // Converged: the gap is within the precision of the passing
                // rate, or (nothing passes) below a rate of one per second.
                if (lo > 0.0 && gap <= self.precision * lo) || (lo == 0.0 && hi <= 1.0) {
                    return false;
                }
                self.step = gap / 2.0;
                self.rate = lo + self.step;
                true
            }
            (None, None) => true,
        }
    }
}

/// One step of the search, as recorded in `search.steps`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    /// Offered rate, attempts per second.
    pub rate: f64,
    /// Achieved start rate, attempts per second.
    pub achieved: f64,
    pub attempted: u64,
    /// Failed attempts (timeouts included) plus attempts left unfinished.
    pub failures: u64,
    pub passed: bool,
    /// CPU seconds this process used during the step.
    pub cpu_s: f64,
    /// The step's own report directory.
    pub out: String,
}

/// Who set the limit.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LimitedBy {
    Target,
    Generator,
}

/// The `search` object of the search's report.json.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchResult {
    /// Session Establishment Rate (calls) or Registration Rate (register):
    /// the highest rate with zero failures; `null` when none passed.
    pub max_rate_per_s: Option<f64>,
    pub scenario: String,
    pub step_duration_s: f64,
    pub precision: f64,
    pub steps: Vec<Step>,
    pub limited_by: LimitedBy,
    /// Why the generator was the limit, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Share of the offered rate below which a failure-free step counts as
/// generator-limited.
pub const GENERATOR_ACHIEVED_FRACTION: f64 = 0.95;
/// Share of the workers' CPU time above which the generator is saturated.
pub const GENERATOR_CPU_FRACTION: f64 = 0.9;

/// Whether a step shows the generator, not the target, as the limit.
pub fn generator_limited(step: &Step, workers: usize, duration: Duration) -> Option<String> {
    if step.failures == 0 && step.achieved < GENERATOR_ACHIEVED_FRACTION * step.rate {
        return Some(format!(
            "at {:.1}/s offered the generator started only {:.1}/s ({:.0}%) with no failures: \
             the generator, not the target, is the limit",
            step.rate,
            step.achieved,
            100.0 * step.achieved / step.rate
        ));
    }
    let budget = workers as f64 * duration.as_secs_f64();
    if budget > 0.0 && step.cpu_s >= GENERATOR_CPU_FRACTION * budget {
        return Some(format!(
            "at {:.1}/s the generator used {:.1} of {:.1} CPU seconds its {} worker(s) had: \
             the generator, not the target, is the limit",
            step.rate, step.cpu_s, budget, workers
        ));
    }
    None
}

fn failures_of(report: &serde_json::Value) -> (u64, u64) {
    let t = &report["totals"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let attempted =
        n(&t["register"]["attempted"]) + n(&t["call"]["attempted"]) + n(&t["options"]["attempted"]);
    let failed = n(&t["register"]["failed"]) + n(&t["call"]["failed"]) + n(&t["options"]["failed"]);
    (attempted, failed)
}

fn read_json(path: &Path) -> Result<serde_json::Value, SearchError> {
    let err = |problem: String| SearchError::Report {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

/// Run the search against `base` (its rate, count and duration are
/// replaced by each step's) and write the search report to `out`.
pub fn search(
    base: &RunConfig,
    opts: &SearchOptions,
    out: &Path,
    stop: &run::StopFlag,
) -> Result<SearchResult, SearchError> {
    opts.validate()?;
    let mut s = Searcher::new(opts);
    let mut steps: Vec<Step> = Vec::new();
    let mut note = None;
    for i in 1..=opts.max_steps {
        let rate = s.rate();
        let mut cfg = base.clone();
        cfg.rate = Some(rate);
        // Each step is a constant rate: a profile's stages do not apply.
        cfg.stages = None;
        cfg.duration = Some(opts.step_duration);
        cfg.count = None;
        cfg.quiet = true;
        cfg.thresholds = base.thresholds.clone();
        let dir: PathBuf = out.join(format!("step-{i:02}-{rate:.0}"));
        cfg.out = Some(dir.clone());
        say!(
            "sipstorm search: step {i}: {rate:.1}/s for {:?}",
            opts.step_duration
        );
        let cpu0 = run::process_usage();
        let outcome = run::run_command(&cfg, stop)?;
        let cpu1 = run::process_usage();
        let report = read_json(&dir.join("report.json"))?;
        let (attempted, failed) = failures_of(&report);
        // Per-instance rate when segmented: compare with this instance's share.
        let offered = cfg.segment.map_or(rate, |seg| seg.share_rate(rate));
        let achieved = report["rate"]["achieved_per_s"].as_f64().unwrap_or(0.0);
        let passed = outcome.all_ok && attempted > 0;
        let step = Step {
            rate: offered,
            achieved,
            attempted,
            // all_ok also fails on unfinished attempts and thresholds.
            failures: if passed { 0 } else { failed.max(1) },
            passed,
            cpu_s: (cpu1.cpu_user_s + cpu1.cpu_sys_s) - (cpu0.cpu_user_s + cpu0.cpu_sys_s),
            out: dir.display().to_string(),
        };
        say!(
            "sipstorm search: step {i}: {:.1}/s offered, {:.1}/s achieved, {} attempted, {} failed: {}",
            step.rate,
            step.achieved,
            step.attempted,
            failed,
            if passed { "pass" } else { "FAIL" }
        );
        let limited = generator_limited(&step, cfg.workers, opts.step_duration);
        steps.push(step);
        if stop.stopping() {
            say!("sipstorm search: interrupted; reporting the steps so far");
            // The interrupted step ran short: it proves nothing.
            if let Some(last) = steps.last_mut() {
                last.passed = false;
            }
            break;
        }

        if let Some(n) = limited {
            say!("sipstorm search: {n}");
            note = Some(n);
            // A generator-limited step proves nothing about the target:
            // do not count it as a pass.
            if let Some(last) = steps.last_mut() {
                last.passed = false;
            }
            break;
        }
        if !s.record(passed) {
            break;
        }
    }
    let found = steps
        .iter()
        .filter(|st| st.passed)
        .map(|st| st.rate)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let result = SearchResult {
        max_rate_per_s: found,
        scenario: base.scenario.name().to_string(),
        step_duration_s: opts.step_duration.as_secs_f64(),
        precision: opts.precision,
        limited_by: if note.is_some() {
            LimitedBy::Generator
        } else {
            LimitedBy::Target
        },
        note,
        steps,
    };
    write_search_report(out, &result)?;
    Ok(result)
}

/// The report of a search: the best passing step's report files, with a
/// `search` object added to report.json (the schema allows extra fields)
/// and a search section appended to summary.txt.
fn write_search_report(out: &Path, result: &SearchResult) -> Result<(), SearchError> {
    let err = |p: &Path, e: std::io::Error| SearchError::Report {
        path: p.display().to_string(),
        problem: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| err(out, e))?;
    let best = result
        .steps
        .iter()
        .filter(|s| s.passed)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .or(result.steps.first());
    let mut report = match best {
        Some(b) => {
            let src = Path::new(&b.out);
            for f in ["intervals.hlog"] {
                if src.join(f).is_file() {
                    std::fs::copy(src.join(f), out.join(f)).map_err(|e| err(&out.join(f), e))?;
                }
            }
            read_json(&src.join("report.json"))?
        }
        None => serde_json::json!({}),
    };
    let search = serde_json::to_value(result).map_err(|e| SearchError::Report {
        path: out.display().to_string(),
        problem: e.to_string(),
    })?;
    if let Some(obj) = report.as_object_mut() {
        obj.insert("search".into(), search);
    }
    let path = out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| SearchError::Report {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(|e| err(&path, e))?;
    if best.is_some() {
        // summary.txt and report.html of the best step; failure to render
        // leaves report.json, which is what scripts read.
        if let Err(e) = crate::report::render_dir(out) {
            say!("sipstorm search: could not render the report: {e}");
        }
    }
    let summary = render_search(result);
    let spath = out.join("summary.txt");
    let mut all = std::fs::read_to_string(&spath).unwrap_or_default();
    all.push_str(&summary);
    std::fs::write(&spath, all).map_err(|e| err(&spath, e))?;
    Ok(())
}

/// The human summary of a search.
pub fn render_search(r: &SearchResult) -> String {
    let mut s = String::from("\nsearch (RFC 7502 §4.8 stepwise)\n");
    s.push_str("  step      rate/s   achieved/s   attempted   failures  verdict\n");
    for (i, st) in r.steps.iter().enumerate() {
        s.push_str(&format!(
            "  {:>4}  {:>10.1}  {:>11.1}  {:>10}  {:>9}  {}\n",
            i + 1,
            st.rate,
            st.achieved,
            st.attempted,
            st.failures,
            if st.passed { "pass" } else { "fail" }
        ));
    }
    let what = if r.scenario == "register" {
        "Registration Rate"
    } else {
        "Session Establishment Rate"
    };
    match r.max_rate_per_s {
        Some(m) => s.push_str(&format!(
            "  {what}: {m:.1}/s with zero failures over {:.0}s steps\n",
            r.step_duration_s
        )),
        None => s.push_str("  no step passed: the target fails even at the lowest rate tried\n"),
    }
    match &r.note {
        Some(n) => s.push_str(&format!("  limited by the generator: {n}\n")),
        None => s.push_str("  limited by: the target\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the searcher against a model target that passes at or below
    /// `cap`.
    fn converge(cap: f64, opts: SearchOptions) -> (Option<f64>, usize) {
        let mut s = Searcher::new(&opts);
        let mut n = 0;
        for _ in 0..opts.max_steps {
            n += 1;
            let ok = s.rate() <= cap;
            if !s.record(ok) {
                break;
            }
        }
        (s.found(), n)
    }

    #[test]
    fn converges_within_precision() {
        let cases = [
            (300.0, 100.0, 100.0),
            (299.0, 100.0, 100.0),
            (1234.0, 100.0, 100.0),
            (50.0, 100.0, 100.0),
            (7.5, 100.0, 10.0),
            (40_000.0, 1000.0, 5000.0),
        ];
        for (cap, start, step) in cases {
            let opts = SearchOptions {
                start_rate: start,
                step,
                max_steps: 40,
                ..SearchOptions::default()
            };
            let (found, n) = converge(cap, opts);
            let f = found.unwrap_or(0.0);
            assert!(
                f <= cap && f >= cap * 0.95,
                "cap {cap}: found {f} after {n}"
            );
        }
    }

    #[test]
    fn nothing_passes() {
        let (found, n) = converge(0.1, SearchOptions::default());
        assert_eq!(found, None);
        assert!(n < 20);
    }

    #[test]
    fn generator_limit_detected() {
        let st = |rate, achieved, failures| Step {
            rate,
            achieved,
            attempted: 10,
            failures,
            passed: failures == 0,
            cpu_s: 0.1,
            out: String::new(),
        };
        let d = Duration::from_secs(2);
        assert!(generator_limited(&st(1000.0, 900.0, 0), 1, d).is_some());
        assert!(generator_limited(&st(1000.0, 990.0, 0), 1, d).is_none());
        assert!(generator_limited(&st(1000.0, 500.0, 3), 1, d).is_none());
        let mut hot = st(1000.0, 1000.0, 0);
        hot.cpu_s = 1.9;
        assert!(generator_limited(&hot, 1, d).is_some());
        assert!(generator_limited(&hot, 2, d).is_none());
    }

    #[test]
    fn bad_options_name_the_flag() {
        for (o, flag) in [
            (
                SearchOptions {
                    start_rate: 0.0,
                    ..Default::default()
                },
                "--rate",
            ),
            (
                SearchOptions {
                    step: -1.0,
                    ..Default::default()
                },
                "--step",
            ),
            (
                SearchOptions {
                    precision: 1.5,
                    ..Default::default()
                },
                "--precision",
            ),
            (
                SearchOptions {
                    max_steps: 0,
                    ..Default::default()
                },
                "--max-steps",
            ),
            (
                SearchOptions {
                    step_duration: Duration::ZERO,
                    ..Default::default()
                },
                "--duration",
            ),
        ] {
            assert!(o.validate().unwrap_err().to_string().starts_with(flag));
        }
    }
}
