//! `sipstorm search`: the highest attempt rate a target sustains with zero
//! failures.
//!
//! RFC 7501 §3.2/§3.3 define the Session Establishment Rate and the
//! Registration Rate as "the maximum average rate at which the DUT/SUT can
//! successfully establish sessions [register]" over a sustained period with
//! no failures; RFC 7502 §4.8 finds it stepwise: run at a rate for a fixed
//! period, raise the rate while every attempt succeeds, and on a failure
//! back off and halve the step, until the step is small. Here the rate
//! grows geometrically (×`step`, default ×2) while steps pass, so a target
//! of any capacity is bracketed in a few steps, then the interval between
//! the highest pass and the lowest failure is halved until it is within
//! `precision`. Every step is a real `run` (in-process, same engine, same
//! report), so each step's report directory stays behind as evidence.
//!
//! A search is only as good as its generator: when a step has no failures
//! but achieves less than 95 % of the offered rate, or the process used
//! (nearly) all the CPU its workers could, the step says nothing about the
//! target. It is not a pass: it bounds the search from above like a
//! failure, and when it is the lowest such bound the result is the
//! generator's limit (`search.limited_by = "generator"`), not the target's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RunConfig;
use crate::report::{self, ReportError, atomic};
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
    /// Writing the search's own report files failed (the previous ones, if
    /// any, are left as they were).
    #[error(transparent)]
    Write(#[from] ReportError),
}

/// First rate tried when `--rate` is absent, attempts per second: low
/// enough for a small PBX, and ×2 reaches 64,000/s in seven steps.
pub const DEFAULT_START_RATE: f64 = 1000.0;
/// Growth factor while steps pass (`--step`): the rate doubles.
pub const DEFAULT_GROWTH: f64 = 2.0;
/// Largest growth factor accepted: a `--step` above it is almost surely an
/// additive step of the older linear search (`--step 100`).
pub const MAX_GROWTH: f64 = 10.0;
/// Length of each step when `--duration` is absent.
pub const DEFAULT_STEP_DURATION: Duration = Duration::from_secs(5);
/// Default `--precision`: stop when the highest pass and the lowest
/// failure are within 5 % of the pass.
pub const DEFAULT_PRECISION: f64 = 0.05;
/// Default `--max-steps`.
pub const DEFAULT_MAX_STEPS: u32 = 20;
/// With nothing passing, the search gives up once the lowest failing rate
/// is at or below this (attempts per second).
pub const MIN_RATE: f64 = 1.0;

/// How the search proceeds (`sipstorm search` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// First rate tried (attempts per second): `--rate`.
    pub start_rate: f64,
    /// Growth factor while every step passes: `--step`. After the first
    /// step that does not pass, the search bisects instead.
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
            start_rate: DEFAULT_START_RATE,
            step: DEFAULT_GROWTH,
            precision: DEFAULT_PRECISION,
            max_steps: DEFAULT_MAX_STEPS,
            step_duration: DEFAULT_STEP_DURATION,
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
                format!("{} is not a positive first rate", self.start_rate),
            );
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return bad(
                "--precision",
                format!("{} is not a fraction between 0 and 1", self.precision),
            );
        }
        if !(self.step > 1.0 && self.step <= MAX_GROWTH) {
            return bad(
                "--step",
                format!(
                    "{} is not a growth factor above 1 and at most {MAX_GROWTH} \
                     (the rate is multiplied by it while steps pass, e.g. 2 doubles it)",
                    self.step
                ),
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

/// What a step showed.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every attempt succeeded at the offered rate.
    Pass,
    /// Some attempt failed, timed out or was left unfinished (or a
    /// threshold failed): the target's doing.
    Fail,
    /// The generator could not offer the rate (or was out of CPU): says
    /// nothing about the target, but bounds the search like a failure.
    GeneratorLimited,
    /// A signal cut the step short: it proves nothing, and the search ends.
    Interrupted,
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
    /// `verdict == Pass`.
    pub passed: bool,
    pub verdict: Verdict,
    /// CPU seconds this process used during the step.
    pub cpu_s: f64,
    /// Wall-clock seconds the step took, drain included.
    pub elapsed_s: f64,
    /// The step's own report directory.
    pub out: String,
}

/// What one step's run measured, before the search judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The rate this instance offered (its share when segmented).
    pub offered: f64,
    pub achieved: f64,
    pub attempted: u64,
    pub failed: u64,
    /// The run's own verdict: no failure, nothing unfinished, every
    /// threshold held.
    pub all_ok: bool,
    pub cpu_s: f64,
    /// Worker threads the step ran (its CPU budget is workers × length).
    pub workers: usize,
    pub elapsed: Duration,
    pub out: String,
    /// A signal arrived during the step.
    pub interrupted: bool,
}

/// Who set the limit.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitedBy {
    /// A step failed, and the highest pass is within `precision` of the
    /// lowest failure.
    Target,
    /// The lowest rate that did not pass was one the generator could not
    /// offer: the target may sustain more.
    Generator,
    /// The steps ran out (or a signal ended the search) before the highest
    /// pass and the lowest failure were within `precision`: the rate found
    /// is a lower bound.
    MaxSteps,
}

/// The `search` object of the search's report.json.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchResult {
    /// Session Establishment Rate (calls) or Registration Rate (register):
    /// the highest rate with zero failures; `null` when none passed.
    pub max_rate_per_s: Option<f64>,
    /// The lowest rate that did not pass (failed or generator-limited);
    /// `null` when every step passed.
    pub upper_bound_per_s: Option<f64>,
    pub scenario: String,
    pub step_duration_s: f64,
    /// Growth factor while steps passed (`--step`).
    pub growth: f64,
    pub precision: f64,
    pub steps: Vec<Step>,
    pub limited_by: LimitedBy,
    /// Why the search ended where it did, unless the target set the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Wall-clock seconds the whole search took.
    pub elapsed_s: f64,
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

/// Judge a measured step: interrupted, generator-limited, pass or fail,
/// with the generator's explanation when it is the limit.
fn judge(m: Measured, duration: Duration) -> (Step, Option<String>) {
    let workers = m.workers;
    let passed = m.all_ok && m.attempted > 0;
    let mut step = Step {
        rate: m.offered,
        achieved: m.achieved,
        attempted: m.attempted,
        // all_ok also fails on unfinished attempts and thresholds.
        failures: if passed { 0 } else { m.failed.max(1) },
        passed,
        verdict: if passed { Verdict::Pass } else { Verdict::Fail },
        cpu_s: m.cpu_s,
        elapsed_s: m.elapsed.as_secs_f64(),
        out: m.out,
    };
    let mut why = None;
    if m.interrupted {
        step.verdict = Verdict::Interrupted;
    } else if let Some(n) = generator_limited(&step, workers, duration) {
        step.verdict = Verdict::GeneratorLimited;
        why = Some(n);
    }
    step.passed = step.verdict == Verdict::Pass;
    (step, why)
}

/// The pure search state: which rate to try next, given the verdicts so
/// far. Kept apart from the runs so it can be tested against a model
/// target.
#[derive(Debug, Clone)]
pub struct Searcher {
    rate: f64,
    growth: f64,
    precision: f64,
    /// Highest rate that passed.
    pass: Option<f64>,
    /// Lowest rate that did not pass (failed or generator-limited).
    bound: Option<f64>,
}

impl Searcher {
    pub fn new(opts: &SearchOptions) -> Searcher {
        Searcher {
            rate: opts.start_rate,
            growth: opts.step,
            precision: opts.precision,
            pass: None,
            bound: None,
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

    /// Whether the highest pass and the lowest bound are within the
    /// precision (or, with nothing passing, the bound is down to
    /// [`MIN_RATE`]).
    pub fn converged(&self) -> bool {
        match (self.pass, self.bound) {
            (Some(lo), Some(hi)) => hi - lo <= self.precision * lo,
            (None, Some(hi)) => hi <= MIN_RATE,
            (_, None) => false,
        }
    }

    /// Record whether the step at [`Searcher::rate`] passed; `false` when
    /// the search has converged.
    ///
    /// Until the first step that does not pass, the rate grows by the
    /// factor (RFC 7502 §4.8 "increase the rate"); after it, each step
    /// halves the interval between the highest pass and the lowest bound
    /// ("back off and halve the step"), which is the same sequence as
    /// halving the step and moving up on a pass, down on a failure.
    pub fn record(&mut self, passed: bool) -> bool {
        if passed {
            self.pass = Some(self.pass.map_or(self.rate, |p| p.max(self.rate)));
        } else {
            self.bound = Some(self.bound.map_or(self.rate, |b| b.min(self.rate)));
        }
        if self.converged() {
            return false;
        }
        self.rate = match (self.pass, self.bound) {
            (Some(lo), None) => lo * self.growth,
            (lo, Some(hi)) => (lo.unwrap_or(0.0) + hi) / 2.0,
            (None, None) => self.rate,
        };
        true
    }
}

/// Run the search with `step(i, rate)` as the target: each call runs one
/// step (1-based `i`) at `rate` attempts per second and says what it
/// measured (with the worker count it ran, for the CPU criterion).
/// `elapsed_s` of the result is left at 0 for the caller.
pub fn drive<E>(
    opts: &SearchOptions,
    scenario: &str,
    mut step: impl FnMut(u32, f64) -> Result<Measured, E>,
) -> Result<SearchResult, E> {
    let mut s = Searcher::new(opts);
    let mut steps: Vec<Step> = Vec::new();
    // Why each generator-limited step was one, by step index.
    let mut why_generator: Vec<(usize, String)> = Vec::new();
    let mut converged = false;
    let mut interrupted = false;
    for i in 1..=opts.max_steps {
        let measured = step(i, s.rate())?;
        let (st, why) = judge(measured, opts.step_duration);
        let verdict = st.verdict;
        if let Some(n) = why {
            why_generator.push((steps.len(), n));
        }
        steps.push(st);
        if verdict == Verdict::Interrupted {
            interrupted = true;
            break;
        }
        if !s.record(verdict == Verdict::Pass) {
            converged = true;
            break;
        }
    }
    let max_rate_per_s = steps
        .iter()
        .filter(|st| st.verdict == Verdict::Pass)
        .map(|st| st.rate)
        .reduce(f64::max);
    // The lowest step that did not pass; the first such on ties, so the
    // verdict is that of the step that set the bound.
    let bound = steps
        .iter()
        .enumerate()
        .filter(|(_, st)| matches!(st.verdict, Verdict::Fail | Verdict::GeneratorLimited))
        .min_by(|(_, a), (_, b)| a.rate.total_cmp(&b.rate));
    let generator_note = bound.and_then(|(i, _)| {
        why_generator
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, n)| n.clone())
    });
    let (limited_by, note) = match (bound, generator_note) {
        (Some(_), Some(n)) => (LimitedBy::Generator, Some(n)),
        (Some(_), None) if converged => (LimitedBy::Target, None),
        _ => {
            let cut = if interrupted {
                format!("interrupted by a signal after {} step(s)", steps.len())
            } else {
                format!("the {} step(s) of --max-steps ran out", steps.len())
            };
            let state = match (max_rate_per_s, bound) {
                (Some(_), None) => "no step failed: the target sustains at least the rate found \
                                    (more --max-steps, or a higher --rate, go further)"
                    .to_string(),
                (None, None) => "no step ran to a verdict".to_string(),
                (Some(lo), Some((_, hi))) => format!(
                    "the highest pass ({lo:.1}/s) and the lowest failure ({:.1}/s) are not yet \
                     within {:.1}%: the rate found is a lower bound",
                    hi.rate,
                    100.0 * opts.precision
                ),
                (None, Some((_, hi))) => format!(
                    "no step passed; the lowest rate tried, {:.1}/s, failed",
                    hi.rate
                ),
            };
            (LimitedBy::MaxSteps, Some(format!("{cut}; {state}")))
        }
    };
    Ok(SearchResult {
        max_rate_per_s,
        upper_bound_per_s: bound.map(|(_, st)| st.rate),
        scenario: scenario.to_string(),
        step_duration_s: opts.step_duration.as_secs_f64(),
        growth: opts.step,
        precision: opts.precision,
        steps,
        limited_by,
        note,
        elapsed_s: 0.0,
    })
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
    let started = Instant::now();
    let mut result = drive(opts, base.scenario.name(), |i, rate| {
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
        let t0 = Instant::now();
        let cpu0 = run::process_usage();
        let outcome = run::run_command(&cfg, stop)?;
        let cpu1 = run::process_usage();
        let report = read_json(&dir.join(report::REPORT_JSON))?;
        let (attempted, failed) = failures_of(&report);
        let m = Measured {
            // Per-instance rate when segmented: compare with this
            // instance's share.
            offered: cfg.segment.map_or(rate, |seg| seg.share_rate(rate)),
            achieved: report["rate"]["achieved_per_s"].as_f64().unwrap_or(0.0),
            attempted,
            failed,
            all_ok: outcome.all_ok,
            cpu_s: cpu1.cpu_total_s - cpu0.cpu_total_s,
            // What run_command started for this step's rate.
            workers: run::RunPlan::resolve(&cfg).workers,
            elapsed: t0.elapsed(),
            out: dir.display().to_string(),
            interrupted: stop.stopping(),
        };
        say!(
            "sipstorm search: step {i}: {:.1}/s offered, {:.1}/s achieved, {} attempted, {} failed, {:.1}s",
            m.offered,
            m.achieved,
            m.attempted,
            m.failed,
            m.elapsed.as_secs_f64()
        );
        Ok::<_, SearchError>(m)
    })?;
    result.elapsed_s = started.elapsed().as_secs_f64();
    if let Some(n) = &result.note {
        say!("sipstorm search: {n}");
    }
    write_search_report(out, &result)?;
    Ok(result)
}

/// The report of a search: the best passing step's report files (or the
/// first step's, when none passed), with a `search` object added to
/// report.json (the schema allows extra fields) and a search section
/// appended to summary.txt; all written atomically, as a set.
fn write_search_report(out: &Path, result: &SearchResult) -> Result<(), SearchError> {
    std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, e))?;
    let best = result
        .steps
        .iter()
        .filter(|s| s.passed)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .or(result.steps.first());
    let search = serde_json::to_value(result).map_err(ReportError::Json)?;
    let mut files = Vec::new();
    let mut summary = String::new();
    let mut json = serde_json::json!({});
    if let Some(b) = best {
        let src = Path::new(&b.out);
        json = read_json(&src.join(report::REPORT_JSON))?;
        let hlog = src.join(report::INTERVALS_HLOG);
        if hlog.is_file() {
            let target = out.join(report::INTERVALS_HLOG);
            files.push(atomic::stage_with(&target, |w| {
                let mut from = File::open(&hlog).map_err(|e| ReportError::io(&hlog, e))?;
                std::io::copy(&mut from, w).map_err(|e| ReportError::io(&target, e))?;
                Ok(())
            })?);
        }
        // summary.txt and report.html of the best step; failure to render
        // leaves report.json, which is what scripts read.
        match report::load_report(src) {
            Ok(r) => {
                summary = report::render_summary(&r);
                match report::render_html(&r) {
                    Ok(html) => files.push(atomic::stage(
                        &out.join(report::REPORT_HTML),
                        html.as_bytes(),
                    )?),
                    Err(e) => say!("sipstorm search: could not render report.html: {e}"),
                }
            }
            Err(e) => say!("sipstorm search: could not render the best step's report: {e}"),
        }
    }
    summary.push_str(&render_search(result));
    files.push(atomic::stage(
        &out.join(report::SUMMARY_TXT),
        summary.as_bytes(),
    )?);
    if let Some(obj) = json.as_object_mut() {
        obj.insert("search".into(), search);
    }
    let text = serde_json::to_string_pretty(&json).map_err(ReportError::Json)?;
    files.push(atomic::stage(
        &out.join(report::REPORT_JSON),
        text.as_bytes(),
    )?);
    atomic::commit_all(files)?;
    Ok(())
}

/// The human summary of a search.
pub fn render_search(r: &SearchResult) -> String {
    let mut s = String::from("\nsearch (RFC 7502 §4.8: grow while passing, then bisect)\n");
    s.push_str("  step      rate/s   achieved/s   attempted   failures   time/s  verdict\n");
    for (i, st) in r.steps.iter().enumerate() {
        s.push_str(&format!(
            "  {:>4}  {:>10.1}  {:>11.1}  {:>10}  {:>9}  {:>7.1}  {}\n",
            i + 1,
            st.rate,
            st.achieved,
            st.attempted,
            st.failures,
            st.elapsed_s,
            match st.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "fail",
                Verdict::GeneratorLimited => "generator-limited",
                Verdict::Interrupted => "interrupted",
            }
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
    s.push_str(&format!(
        "  {} steps in {:.0} s\n",
        r.steps.len(),
        r.elapsed_s
    ));
    match (r.limited_by, &r.note) {
        (LimitedBy::Target, _) => match r.upper_bound_per_s {
            Some(hi) => s.push_str(&format!(
                "  limited by: the target (it failed at {hi:.1}/s)\n"
            )),
            None => s.push_str("  limited by: the target\n"),
        },
        (LimitedBy::Generator, n) => s.push_str(&format!(
            "  limited by the generator: {}\n",
            n.as_deref().unwrap_or("")
        )),
        (LimitedBy::MaxSteps, n) => s.push_str(&format!(
            "  limited by max steps: {}\n",
            n.as_deref().unwrap_or("")
        )),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of the generator and the target, in place of real runs:
    /// the target fails every attempt beyond `target_cap`/s, the generator
    /// starts at most `generator_cap`/s and spends `cpu_per_attempt` CPU
    /// seconds on each; `interrupt_at` is the step a signal arrives in.
    #[derive(Debug, Clone, Copy)]
    struct Model {
        target_cap: f64,
        generator_cap: f64,
        cpu_per_attempt: f64,
        interrupt_at: Option<u32>,
    }

    const WORKERS: usize = 2;

    impl Model {
        fn target(cap: f64) -> Model {
            Model {
                target_cap: cap,
                generator_cap: f64::INFINITY,
                cpu_per_attempt: 1e-6,
                interrupt_at: None,
            }
        }

        fn step(&self, i: u32, rate: f64, d: Duration) -> Measured {
            let secs = d.as_secs_f64();
            let achieved = rate.min(self.generator_cap);
            let attempted = (achieved * secs).round() as u64;
            let failed = ((achieved - self.target_cap).max(0.0) * secs).ceil() as u64;
            Measured {
                offered: rate,
                achieved,
                attempted,
                failed,
                all_ok: failed == 0 && attempted > 0,
                cpu_s: attempted as f64 * self.cpu_per_attempt,
                workers: WORKERS,
                elapsed: d,
                out: format!("step-{i:02}"),
                interrupted: self.interrupt_at == Some(i),
            }
        }

        fn search(&self, opts: SearchOptions) -> SearchResult {
            drive(&opts, "call", |i, rate| {
                Ok::<_, std::convert::Infallible>(self.step(i, rate, opts.step_duration))
            })
            .unwrap()
        }
    }

    fn rates(r: &SearchResult) -> Vec<f64> {
        r.steps.iter().map(|s| s.rate).collect()
    }

    /// What holds for every search, whatever the target.
    fn invariants(what: &str, r: &SearchResult, opts: &SearchOptions) {
        assert!(r.steps.len() <= opts.max_steps as usize, "{what}");
        assert!(!r.steps.is_empty(), "{what}");
        if r.limited_by == LimitedBy::Target {
            assert!(
                r.steps.iter().any(|s| s.verdict == Verdict::Fail),
                "{what}: limited by the target without a failed step: {r:#?}"
            );
            let hi = r.upper_bound_per_s.expect("a failure bounds it");
            match r.max_rate_per_s {
                Some(lo) => assert!(hi - lo <= opts.precision * lo + 1e-9, "{what}: {lo}..{hi}"),
                None => assert!(hi <= MIN_RATE, "{what}: {hi}"),
            }
            assert_eq!(r.note, None, "{what}");
        } else {
            assert!(r.note.is_some(), "{what}: the reason is given");
        }
        for st in &r.steps {
            assert_eq!(st.passed, st.verdict == Verdict::Pass, "{what}");
            if let (Some(lo), true) = (r.max_rate_per_s, st.verdict == Verdict::Fail) {
                assert!(st.rate > lo, "{what}: a failure below the rate found");
            }
        }
        let json = serde_json::to_value(r).unwrap();
        let lb = json["limited_by"].as_str().unwrap();
        assert!(
            ["target", "generator", "max_steps"].contains(&lb),
            "{what}: {lb}"
        );
    }

    #[test]
    fn searches_against_model_targets() {
        struct Case {
            what: &'static str,
            model: Model,
            opts: SearchOptions,
            limited_by: LimitedBy,
            /// (lowest, highest) acceptable `max_rate_per_s`; `None`: none passes.
            found: Option<(f64, f64)>,
            /// The rates tried, when the exact sequence matters.
            sequence: Option<&'static [f64]>,
            max_steps_used: usize,
        }
        let d = SearchOptions::default();
        let cases = [
            Case {
                what: "grows x2 to the first failure, then bisects",
                model: Model::target(25_000.0),
                opts: d,
                limited_by: LimitedBy::Target,
                found: Some((25_000.0 / 1.05, 25_000.0)),
                sequence: Some(&[
                    1000.0, 2000.0, 4000.0, 8000.0, 16_000.0, 32_000.0, 24_000.0, 28_000.0,
                    26_000.0, 25_000.0,
                ]),
                max_steps_used: 10,
            },
            Case {
                what: "a target of 40,000/s, the default options",
                model: Model::target(40_000.0),
                opts: d,
                limited_by: LimitedBy::Target,
                found: Some((40_000.0 / 1.05, 40_000.0)),
                sequence: None,
                max_steps_used: 12,
            },
            Case {
                what: "the target fails at the first step",
                model: Model::target(300.0),
                opts: d,
                limited_by: LimitedBy::Target,
                found: Some((300.0 / 1.05, 300.0)),
                sequence: Some(&[
                    1000.0, 500.0, 250.0, 375.0, 312.5, 281.25, 296.875, 304.6875,
                ]),
                max_steps_used: 8,
            },
            Case {
                what: "nothing passes, down to 1/s",
                model: Model::target(0.5),
                opts: d,
                limited_by: LimitedBy::Target,
                found: None,
                sequence: None,
                max_steps_used: 11,
            },
            Case {
                what: "the generator starts at most 30,000/s",
                model: Model {
                    generator_cap: 30_000.0,
                    ..Model::target(1e9)
                },
                opts: d,
                limited_by: LimitedBy::Generator,
                found: Some((30_000.0, 30_000.0 / GENERATOR_ACHIEVED_FRACTION)),
                sequence: Some(&[
                    1000.0, 2000.0, 4000.0, 8000.0, 16_000.0, 32_000.0, 24_000.0, 28_000.0,
                    30_000.0, 31_000.0,
                ]),
                max_steps_used: 10,
            },
            Case {
                what: "the generator runs out of CPU above 36,000/s",
                model: Model {
                    // 2 workers x 5 s = 10 CPU s; 90% of it at 36,000/s.
                    cpu_per_attempt: 50e-6,
                    ..Model::target(1e9)
                },
                opts: d,
                limited_by: LimitedBy::Generator,
                found: Some((36_000.0 / 1.05, 36_000.0)),
                sequence: None,
                max_steps_used: 12,
            },
            Case {
                what: "the generator is the limit below a failing target",
                model: Model {
                    generator_cap: 20_000.0,
                    ..Model::target(25_000.0)
                },
                opts: d,
                limited_by: LimitedBy::Generator,
                found: Some((20_000.0, 20_000.0 / GENERATOR_ACHIEVED_FRACTION)),
                sequence: None,
                max_steps_used: 12,
            },
            Case {
                what: "the generator is limited from the first step on (few users, long holds)",
                model: Model {
                    generator_cap: 2.0,
                    ..Model::target(1e9)
                },
                opts: SearchOptions {
                    start_rate: 200.0,
                    max_steps: 3,
                    ..d
                },
                limited_by: LimitedBy::Generator,
                found: None,
                sequence: Some(&[200.0, 100.0, 50.0]),
                max_steps_used: 3,
            },
            Case {
                what: "every step passes until max_steps",
                model: Model::target(1e9),
                opts: SearchOptions { max_steps: 5, ..d },
                limited_by: LimitedBy::MaxSteps,
                found: Some((16_000.0, 16_000.0)),
                sequence: Some(&[1000.0, 2000.0, 4000.0, 8000.0, 16_000.0]),
                max_steps_used: 5,
            },
            Case {
                what: "max_steps ends the bisection early",
                model: Model::target(25_000.0),
                opts: SearchOptions { max_steps: 8, ..d },
                limited_by: LimitedBy::MaxSteps,
                found: Some((24_000.0, 24_000.0)),
                sequence: None,
                max_steps_used: 8,
            },
            Case {
                what: "a coarser precision stops sooner",
                model: Model::target(25_000.0),
                opts: SearchOptions {
                    precision: 0.2,
                    ..d
                },
                limited_by: LimitedBy::Target,
                found: Some((24_000.0, 24_000.0)),
                sequence: Some(&[
                    1000.0, 2000.0, 4000.0, 8000.0, 16_000.0, 32_000.0, 24_000.0, 28_000.0,
                ]),
                max_steps_used: 8,
            },
            Case {
                what: "a finer precision goes on",
                model: Model::target(25_000.0),
                opts: SearchOptions {
                    precision: 0.01,
                    ..d
                },
                limited_by: LimitedBy::Target,
                found: Some((25_000.0 / 1.01, 25_000.0)),
                sequence: None,
                max_steps_used: 13,
            },
            Case {
                what: "growth x4",
                model: Model::target(25_000.0),
                opts: SearchOptions { step: 4.0, ..d },
                limited_by: LimitedBy::Target,
                found: Some((25_000.0 / 1.05, 25_000.0)),
                sequence: None,
                max_steps_used: 10,
            },
            Case {
                what: "a signal ends the search",
                model: Model {
                    interrupt_at: Some(3),
                    ..Model::target(25_000.0)
                },
                opts: d,
                limited_by: LimitedBy::MaxSteps,
                found: Some((2000.0, 2000.0)),
                sequence: Some(&[1000.0, 2000.0, 4000.0]),
                max_steps_used: 3,
            },
        ];
        for c in cases {
            let r = c.model.search(c.opts);
            invariants(c.what, &r, &c.opts);
            assert_eq!(r.limited_by, c.limited_by, "{}: {r:#?}", c.what);
            match (c.found, r.max_rate_per_s) {
                (Some((lo, hi)), Some(f)) => {
                    assert!(
                        lo <= f && f <= hi,
                        "{}: found {f}, not in {lo}..{hi}",
                        c.what
                    )
                }
                (None, None) => {}
                (want, got) => panic!("{}: found {got:?}, expected {want:?}", c.what),
            }
            if let Some(seq) = c.sequence {
                assert_eq!(rates(&r), seq, "{}", c.what);
            }
            assert!(
                r.steps.len() <= c.max_steps_used,
                "{}: {} steps: {:?}",
                c.what,
                r.steps.len(),
                rates(&r)
            );
        }
    }

    #[test]
    fn any_capacity_is_found_in_logarithmically_many_steps() {
        // The linear search this replaces needed capacity/step steps: 400
        // for 40,000/s in steps of 100.
        for start in [1.0, 100.0, 1000.0, 7777.0] {
            for cap in [3.0, 99.0, 1234.0, 9_999.0, 40_000.0, 123_456.0] {
                let opts = SearchOptions {
                    start_rate: start,
                    max_steps: 60,
                    ..SearchOptions::default()
                };
                let what = format!("start {start}, capacity {cap}");
                let r = Model::target(cap).search(opts);
                invariants(&what, &r, &opts);
                assert_eq!(r.limited_by, LimitedBy::Target, "{what}");
                let f = r.max_rate_per_s.unwrap();
                assert!(f <= cap && f >= cap / 1.05, "{what}: found {f}");
                let bound = (cap / start).log2().abs().ceil() + (1.0 / 0.05f64).log2().ceil() + 3.0;
                assert!(r.steps.len() as f64 <= bound, "{what}: {:?}", rates(&r));
            }
        }
    }

    #[test]
    fn searcher_never_converges_without_a_bound() {
        let mut s = Searcher::new(&SearchOptions::default());
        for _ in 0..30 {
            assert!(s.record(true));
            assert!(!s.converged());
        }
        assert_eq!(s.found(), Some(1000.0 * 2f64.powi(29)));
    }

    #[test]
    fn generator_limit_detected() {
        let st = |rate, achieved, failures| Step {
            rate,
            achieved,
            attempted: 10,
            failures,
            passed: failures == 0,
            verdict: if failures == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            cpu_s: 0.1,
            elapsed_s: 2.0,
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
    fn summary_says_who_set_the_limit() {
        let d = SearchOptions::default();
        let cases = [
            (
                Model::target(25_000.0),
                d,
                "limited by: the target (it failed at 26000.0/s)",
            ),
            (
                Model {
                    generator_cap: 30_000.0,
                    ..Model::target(1e9)
                },
                d,
                "limited by the generator: at 32000.0/s offered the generator started only 30000.0/s",
            ),
            (
                Model::target(1e9),
                SearchOptions { max_steps: 2, ..d },
                "limited by max steps: the 2 step(s) of --max-steps ran out; no step failed",
            ),
        ];
        for (model, opts, needle) in cases {
            let text = render_search(&model.search(opts));
            assert!(text.contains(needle), "{needle}\n{text}");
            assert!(text.contains("Session Establishment Rate"), "{text}");
        }
    }

    #[test]
    fn bad_options_name_the_flag() {
        let d = SearchOptions::default();
        for (o, flag) in [
            (
                SearchOptions {
                    start_rate: 0.0,
                    ..d
                },
                "--rate",
            ),
            (SearchOptions { step: -1.0, ..d }, "--step"),
            (SearchOptions { step: 1.0, ..d }, "--step"),
            // An additive step of the older linear search.
            (SearchOptions { step: 100.0, ..d }, "--step"),
            (
                SearchOptions {
                    precision: 1.5,
                    ..d
                },
                "--precision",
            ),
            (SearchOptions { max_steps: 0, ..d }, "--max-steps"),
            (
                SearchOptions {
                    step_duration: Duration::ZERO,
                    ..d
                },
                "--duration",
            ),
        ] {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{flag}: {e}");
        }
        assert!(d.validate().is_ok());
    }
}
