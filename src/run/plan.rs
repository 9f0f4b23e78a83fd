//! The run plan: every decision about the offered load made once, in one
//! place, from the validated configuration: the defaults (the embedded
//! target's laptop-sized run, SIPp's modest 10/s against a real target),
//! stages, this instance's segment share, and how many workers run. The
//! report, the progress line and every worker's pacer read it; nothing
//! rewrites the configuration.

use std::time::Duration;

use crate::config::RunConfig;
use crate::schedule::{Load, Schedule, Share};

/// The offered rate of the embedded default when no rate, concurrency or
/// stages are given (SPEC: "a new user sees real numbers with one
/// command").
pub const EMBEDDED_RATE: f64 = 2000.0;
/// Length of the embedded default when neither a count nor a duration is
/// given.
pub const EMBEDDED_DURATION: Duration = Duration::from_secs(5);
/// The rate against a real target when none is given: SIPp's habit, a
/// modest rate rather than an unbounded loop.
pub const TARGET_DEFAULT_RATE: f64 = 10.0;

/// Attempts per second one worker is started for. One core runs ≥ 40,000
/// calls/s of the engine and its loop; a worker for every 10,000 keeps each
/// well below saturation (latency stays the target's) while a light load
/// runs on one worker that wakes once per tick, instead of one per core
/// that each wake for a trickle.
pub const RATE_PER_WORKER: f64 = 10_000.0;

/// Why a run starts the workers it does (reported as
/// `config.workers_reason`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkerReason {
    /// `--workers N`.
    Flag,
    /// One per [`RATE_PER_WORKER`] of the offered (peak) rate, at most one
    /// per core.
    Rate { rate: f64, cores: usize },
    /// A closed loop has no rate to size by: one per core.
    ClosedLoop { cores: usize },
}

impl std::fmt::Display for WorkerReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerReason::Flag => f.write_str("--workers"),
            WorkerReason::Rate { rate, cores } => write!(
                f,
                "one per {RATE_PER_WORKER} attempts/s of the offered rate ({rate}/s), at most one per core ({cores})"
            ),
            WorkerReason::ClosedLoop { cores } => {
                write!(f, "closed loop: one per core ({cores})")
            }
        }
    }
}

/// Where the load shape came from, for the banner and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOrigin {
    /// `--rate`, `--concurrency` or a profile's stages.
    Given,
    /// The embedded target's default rate.
    EmbeddedDefault,
    /// SIPp's default rate against a real target.
    TargetDefault,
}

/// The resolved load of one `run` instance.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// This instance's schedule (its segment's share already taken).
    pub schedule: Schedule,
    /// Worker threads to start.
    pub workers: usize,
    /// Why that many.
    pub workers_reason: WorkerReason,
    /// This instance's part of a test split into segments.
    pub segment: Share,
    /// The target is the embedded server.
    pub embedded: bool,
    pub origin: LoadOrigin,
}

impl RunPlan {
    /// Decide the load of `cfg`: defaults, stages and segment share.
    pub fn resolve(cfg: &RunConfig) -> RunPlan {
        let embedded = cfg.target.is_none();
        let (load, origin) = match (&cfg.stages, cfg.rate, cfg.concurrency) {
            (Some(stages), _, cap) => (
                Load::Stages {
                    stages: stages.clone(),
                    cap,
                },
                LoadOrigin::Given,
            ),
            (None, Some(rate), cap) => (Load::Open { rate, cap }, LoadOrigin::Given),
            (None, None, Some(concurrency)) => (Load::Closed { concurrency }, LoadOrigin::Given),
            (None, None, None) if embedded => (
                Load::Open {
                    rate: EMBEDDED_RATE,
                    cap: None,
                },
                LoadOrigin::EmbeddedDefault,
            ),
            (None, None, None) => (
                Load::Open {
                    rate: TARGET_DEFAULT_RATE,
                    cap: None,
                },
                LoadOrigin::TargetDefault,
            ),
        };
        let duration = match (cfg.duration, cfg.count) {
            (None, None) if embedded => Some(EMBEDDED_DURATION),
            (d, _) => d,
        };
        let whole = Schedule {
            load,
            count: cfg.count,
            duration,
            resolution: cfg.pacing_resolution,
        };
        let segment = cfg.segment.map_or(Share::WHOLE, Share::from);
        let schedule = whole.segment(segment);
        let (wanted, workers_reason) = workers_for(cfg.workers, &schedule.load);
        // Each worker needs at least one slot of a concurrency cap: fewer
        // slots than workers means fewer workers.
        let workers = match schedule.load.cap() {
            Some(c) => wanted.min(usize::try_from(c).unwrap_or(usize::MAX)),
            None => wanted,
        }
        .max(1);
        RunPlan {
            schedule,
            workers,
            workers_reason,
            segment,
            embedded,
            origin,
        }
    }

    /// This instance's offered rate (attempts per second; `None` in a
    /// closed loop): what the report and the progress line show.
    pub fn offered_rate(&self) -> Option<f64> {
        self.schedule.offered_rate()
    }

    /// One line for the start banner: `at 2000/s for 5s`, `closed loop of
    /// 8 in flight`, `in stages averaging 150/s`.
    pub fn describe(&self) -> String {
        let mut s = match &self.schedule.load {
            Load::Open { rate, .. } => format!("at {rate}/s"),
            Load::Stages { stages, .. } => format!(
                "in stages averaging {:.1}/s over {:?}",
                stages.mean_rate(),
                stages.duration()
            ),
            Load::Closed { concurrency } => format!("closed loop of {concurrency} in flight"),
        };
        if let Some(c) = self.schedule.load.cap()
            && !matches!(self.schedule.load, Load::Closed { .. })
        {
            s.push_str(&format!(" (at most {c} in flight)"));
        }
        if let Some(n) = self.schedule.count {
            s.push_str(&format!(", {n} attempts"));
        }
        if let Some(d) = self.schedule.duration {
            s.push_str(&format!(" for {d:?}"));
        }
        match self.origin {
            LoadOrigin::Given => {}
            LoadOrigin::EmbeddedDefault => s.push_str(" (the embedded default; --rate sets it)"),
            LoadOrigin::TargetDefault => s.push_str(" (the default; --rate sets it)"),
        }
        s
    }
}

/// How many workers `load` needs: `--workers` if given, else one per
/// [`RATE_PER_WORKER`] of the peak offered rate (stages: their highest
/// rate), at most one per core; a closed loop takes every core.
fn workers_for(flag: Option<usize>, load: &Load) -> (usize, WorkerReason) {
    if let Some(w) = flag {
        return (w, WorkerReason::Flag);
    }
    let cores = crate::config::default_workers();
    let peak = match load {
        Load::Open { rate, .. } => *rate,
        Load::Stages { stages, .. } => stages.peak_rate(),
        Load::Closed { .. } => return (cores, WorkerReason::ClosedLoop { cores }),
    };
    let n = (peak / RATE_PER_WORKER).ceil().max(1.0);
    let n = if n.is_finite() && n < cores as f64 {
        n as usize
    } else {
        cores
    };
    (n.max(1), WorkerReason::Rate { rate: peak, cores })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunValues;
    use std::sync::Arc;

    fn plan(f: impl FnOnce(&mut RunValues)) -> RunPlan {
        let mut v = RunValues {
            workers: Some(4),
            ..RunValues::default()
        };
        // Worker counts by load have their own table; here the flag holds.
        f(&mut v);
        RunPlan::resolve(&RunConfig::build(v).unwrap())
    }

    fn open(rate: f64) -> Load {
        Load::Open { rate, cap: None }
    }

    /// The rate is decided here and only here (issue 12): every shape of
    /// flags, with and without a target, with and without a segment.
    #[test]
    fn one_table_for_every_rate_decision() {
        let secs = Duration::from_secs;
        type Case = (
            &'static str,
            fn(&mut RunValues),
            Load,
            Option<u64>,
            Option<Duration>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "embedded, nothing",
                |_| {},
                open(EMBEDDED_RATE),
                None,
                Some(EMBEDDED_DURATION),
                4,
            ),
            (
                "embedded, only a duration (was 10/s)",
                |v| v.duration = Some("30s".into()),
                open(EMBEDDED_RATE),
                None,
                Some(secs(30)),
                4,
            ),
            (
                "embedded, only a count",
                |v| v.count = Some(500),
                open(EMBEDDED_RATE),
                Some(500),
                None,
                4,
            ),
            (
                "embedded, a rate",
                |v| v.rate = Some(300.0),
                open(300.0),
                None,
                Some(EMBEDDED_DURATION),
                4,
            ),
            (
                "target, nothing",
                |v| v.target = Some("127.0.0.1:5060".into()),
                open(TARGET_DEFAULT_RATE),
                None,
                None,
                4,
            ),
            (
                "target, a duration",
                |v| {
                    v.target = Some("127.0.0.1:5060".into());
                    v.duration = Some("2s".into());
                },
                open(TARGET_DEFAULT_RATE),
                None,
                Some(secs(2)),
                4,
            ),
            (
                "target, closed loop of 2 caps the workers",
                |v| {
                    v.target = Some("127.0.0.1:5060".into());
                    v.concurrency = Some(2);
                },
                Load::Closed { concurrency: 2 },
                None,
                None,
                2,
            ),
            (
                "segment 1/4 of rate, count and cap",
                |v| {
                    v.target = Some("127.0.0.1:5060".into());
                    v.rate = Some(1000.0);
                    v.count = Some(10);
                    v.concurrency = Some(6);
                    v.segment = Some("1/4".into());
                },
                Load::Open {
                    rate: 250.0,
                    cap: Some(2),
                },
                Some(3),
                None,
                2,
            ),
        ];
        for (name, set, load, count, duration, workers) in cases {
            let p = plan(set);
            assert_eq!(p.schedule.load, load, "{name}");
            assert_eq!(p.schedule.count, count, "{name}");
            assert_eq!(p.schedule.duration, duration, "{name}");
            assert_eq!(p.workers, workers, "{name}");
            assert_eq!(p.offered_rate(), load.offered_rate(), "{name}");
        }
    }

    #[test]
    fn stages_are_shared_by_segment_and_reported_by_their_mean() {
        let p = plan(|v| {
            v.target = Some("127.0.0.1:5060".into());
            v.stages = Some(vec![crate::config::StageValue {
                duration: "10s".into(),
                rate: 400.0,
            }]);
            v.segment = Some("0/2".into());
        });
        // A ramp 0 → 400/s over 10 s averages 200/s; half of it is ours.
        assert_eq!(p.offered_rate(), Some(100.0));
        let Load::Stages { stages, .. } = &p.schedule.load else {
            panic!("{:?}", p.schedule.load)
        };
        assert_eq!(stages.total(), 1000.0);
        assert!(Arc::strong_count(stages) >= 1);
        assert!(p.describe().contains("stages averaging 100.0/s"));
    }

    /// Issue 18: without `--workers`, as many workers as the rate needs,
    /// at most one per core; the flag always wins.
    #[test]
    fn workers_follow_the_load() {
        let cores = crate::config::default_workers();
        let open = |rate| Load::Open { rate, cap: None };
        let st = |peak: f64| Load::Stages {
            stages: Arc::new(
                crate::schedule::Stages::new(&[
                    (Duration::from_secs(10), peak),
                    (Duration::from_secs(10), 10.0),
                ])
                .unwrap(),
            ),
            cap: None,
        };
        let cases: Vec<(Option<usize>, Load, usize)> = vec![
            (None, open(10.0), 1),
            (None, open(3_000.0), 1),
            (None, open(10_000.0), 1),
            (None, open(10_001.0), 2.min(cores)),
            (None, open(30_000.0), 3.min(cores)),
            (None, open(1e9), cores),
            (None, st(25_000.0), 3.min(cores)),
            (None, Load::Closed { concurrency: 64 }, cores),
            (Some(7), open(10.0), 7),
        ];
        for (flag, load, want) in cases {
            let (n, why) = workers_for(flag, &load);
            assert_eq!(n, want, "{flag:?} {load:?} ({why})");
        }
        // The plan reports why, and a cap still bounds the count.
        let p = plan(|v| {
            v.workers = None;
            v.rate = Some(500.0);
        });
        assert_eq!(p.workers, 1);
        assert!(
            p.workers_reason.to_string().contains("500/s"),
            "{}",
            p.workers_reason
        );
        let p = plan(|v| {
            v.workers = None;
            v.concurrency = Some(1);
        });
        assert_eq!(p.workers, 1);
    }

    #[test]
    fn banner_says_where_the_rate_came_from() {
        assert!(plan(|_| {}).describe().contains("embedded default"));
        assert!(
            plan(|v| v.concurrency = Some(3))
                .describe()
                .contains("closed loop of 3")
        );
        let p = plan(|v| v.rate = Some(50.0));
        assert_eq!(p.describe(), "at 50/s for 5s");
    }
}
