//! Load pacing: intended start times (open loop), concurrency caps, hold
//! distributions, and the duration syntax of the command line.
//!
//! Open loop follows wrk2: attempt `i` of the whole run is *intended* to
//! start at `t0 + i/rate`, whatever happened before. A worker that falls
//! behind (a stall, a full concurrency cap) starts the late attempts as soon
//! as it can, one per loop turn's worth of due times, and hands each its
//! intended instant so latency can be measured from when the attempt should
//! have started (the coordinated-omission correction). It never moves the
//! schedule to "catch up" by redefining time.

use std::time::{Duration, Instant};

/// Errors in user-supplied schedule values (durations, hold specs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("'{0}' is not a duration (use e.g. 500ms, 30s, 2m, 1h, 1.5s)")]
    BadDuration(String),
    #[error("'{0}' is not a hold time (use 5s, uniform(1s,5s), exp(3s) or lognormal(3s,0.5))")]
    BadHold(String),
    #[error("in '{0}': {1}")]
    BadHoldParam(String, &'static str),
}

/// Parse `500ms`, `30s`, `2m`, `1h`, `1.5s`, `250us`, or a bare number of
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ScheduleError> {
    let t = s.trim();
    let bad = || ScheduleError::BadDuration(s.to_string());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A small, fast, seedable PRNG (SplitMix64). Per worker, no locking; good
/// enough for hold times and ratios, not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// How long an established call is held before the BYE (or a registration
/// before it is removed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hold {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between the bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean (memoryless call durations, Erlang models).
    Exp(Duration),
    /// Log-normal with this median and shape `sigma` (of the underlying
    /// normal): `median * exp(sigma * N(0,1))`. Real call durations have this
    /// long right tail.
    LogNormal { median: Duration, sigma: f64 },
}

/// Hold samples are capped here so a heavy tail cannot keep a run alive
/// forever.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

impl Hold {
    /// Parse `5s`, `uniform(1s,5s)`, `exp(3s)`, `lognormal(3s,0.5)`.
    pub fn parse(s: &str) -> Result<Hold, ScheduleError> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || ScheduleError::BadHold(s.to_string());
        let Some(open) = t.find('(') else {
            return parse_duration(&t).map(Hold::Fixed).map_err(|_| bad());
        };
        let name = &t[..open];
        let args = t[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let parts: Vec<&str> = args.split(',').collect();
        let dur = |i: usize| {
            parts
                .get(i)
                .ok_or_else(bad)
                .and_then(|p| parse_duration(p).map_err(|_| bad()))
        };
        match (name, parts.len()) {
            ("uniform", 2) => {
                let (a, b) = (dur(0)?, dur(1)?);
                if a > b {
                    return Err(ScheduleError::BadHoldParam(
                        s.to_string(),
                        "lower bound above upper bound",
                    ));
                }
                Ok(Hold::Uniform(a, b))
            }
            ("exp", 1) => Ok(Hold::Exp(dur(0)?)),
            ("lognormal", 2) => {
                let median = dur(0)?;
                let sigma: f64 = parts[1].parse().map_err(|_| bad())?;
                if !(sigma.is_finite() && (0.0..=10.0).contains(&sigma)) {
                    return Err(ScheduleError::BadHoldParam(
                        s.to_string(),
                        "sigma must be between 0 and 10",
                    ));
                }
                Ok(Hold::LogNormal { median, sigma })
            }
            _ => Err(bad()),
        }
    }

    /// Draw one hold time.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let secs = match *self {
            Hold::Fixed(d) => return d.min(MAX_HOLD),
            Hold::Uniform(a, b) => a.as_secs_f64() + (b - a).as_secs_f64() * rng.next_f64(),
            Hold::Exp(m) => -m.as_secs_f64() * (1.0 - rng.next_f64()).ln(),
            Hold::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * rng.normal()).exp()
            }
        };
        if secs.is_finite() && secs > 0.0 {
            Duration::from_secs_f64(secs.min(MAX_HOLD.as_secs_f64()))
        } else {
            Duration::ZERO
        }
    }

    /// The distribution's mean (for sizing and summaries).
    pub fn mean(&self) -> Duration {
        match *self {
            Hold::Fixed(d) => d,
            Hold::Uniform(a, b) => (a + b) / 2,
            Hold::Exp(m) => m,
            Hold::LogNormal { median, sigma } => median.mul_f64((sigma * sigma / 2.0).exp()),
        }
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Fixed(d) => write!(f, "{d:?}"),
            Hold::Uniform(a, b) => write!(f, "uniform({a:?},{b:?})"),
            Hold::Exp(m) => write!(f, "exp({m:?})"),
            Hold::LogNormal { median, sigma } => write!(f, "lognormal({median:?},{sigma})"),
        }
    }
}

/// How long after `--duration` a late worker may still start attempts that
/// were intended inside it.
pub const LATE_GRACE: Duration = Duration::from_secs(1);

/// When a worker starts its next attempt.
///
/// Worker `w` of `n` owns global attempts `w, w+n, w+2n, ...`; with a total
/// rate `r` attempt `i` is intended at `t0 + i/r`, so the workers' schedules
/// interleave into exactly one evenly paced stream.
#[derive(Debug, Clone)]
pub struct Pacer {
    t0: Instant,
    /// Nanoseconds between two of this worker's attempts (open loop).
    period_ns: Option<f64>,
    /// Offset of this worker's first attempt, in nanoseconds.
    phase_ns: f64,
    /// Cap on attempts in flight (closed loop, or a cap on open loop).
    concurrency: Option<u64>,
    /// This worker's share of `--count`.
    limit: Option<u64>,
    /// No attempt intended at or after this instant starts.
    end: Option<Instant>,
    started: u64,
    stopped: bool,
    /// Tick of the schedule in nanoseconds (0 or 1: exact).
    resolution_ns: u64,
    /// Stages instead of a constant rate: (stages, worker, workers).
    stages: Option<(std::sync::Arc<Stages>, u64, u64)>,
}

/// What the pacer says for this instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Start an attempt now; it was intended at this instant.
    Start(Instant),
    /// Nothing due before this instant.
    WaitUntil(Instant),
    /// Capped by concurrency: wait for an attempt to finish.
    WaitForSlot,
    /// The count or the duration is reached: start nothing more.
    Done,
}

impl Pacer {
    /// `rate` and `count` are the run's totals; this worker's share is
    /// derived from `worker` of `workers`.
    pub fn new(
        t0: Instant,
        rate: Option<f64>,
        concurrency: Option<u64>,
        count: Option<u64>,
        duration: Option<Duration>,
        worker: usize,
        workers: usize,
    ) -> Pacer {
        let n = workers.max(1) as u64;
        let w = (worker as u64).min(n - 1);
        let period_ns = rate
            .filter(|r| *r > 0.0 && r.is_finite())
            .map(|r| 1e9 * n as f64 / r);
        let phase_ns = rate
            .filter(|r| *r > 0.0 && r.is_finite())
            .map_or(0.0, |r| 1e9 * w as f64 / r);
        let limit = count.map(|c| c / n + u64::from(w < c % n));
        // The concurrency cap is the run's total: each worker takes its share.
        let concurrency = concurrency.map(|c| (c / n + u64::from(w < c % n)).max(1));
        Pacer {
            t0,
            period_ns,
            phase_ns,
            concurrency,
            limit,
            end: duration.map(|d| t0 + d),
            started: 0,
            stopped: false,
            resolution_ns: 0,
            stages: None,
        }
    }

    /// Pace by `stages` (the run's totals) instead of a constant rate;
    /// worker `worker` of `workers` takes every `workers`-th attempt. The
    /// run ends with the last stage at the latest.
    pub fn with_stages(
        mut self,
        stages: std::sync::Arc<Stages>,
        worker: usize,
        workers: usize,
    ) -> Pacer {
        let n = workers.max(1) as u64;
        let w = (worker as u64).min(n - 1);
        let end = self.t0 + stages.duration();
        self.end = Some(self.end.map_or(end, |e| e.min(end)));
        self.period_ns = Some(1e9 * n as f64 / stages.mean_rate());
        self.stages = Some((stages, w, n));
        self
    }

    /// Attempts started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Stop starting attempts (signal, error).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// True when no further attempt will start.
    pub fn is_done(&self, now: Instant) -> bool {
        self.stopped
            || self.limit.is_some_and(|l| self.started >= l)
            || self.end.is_some_and(|e| match self.next_exact() {
                // Open loop: every attempt whose exact intended time falls
                // inside the duration starts, also when the worker runs
                // late (its latency is then measured from that time), but
                // no later than LATE_GRACE after the end.
                Some(t) => t >= e || now >= e + LATE_GRACE,
                // Closed loop: starts stop at the end.
                None => now >= e,
            })
    }

    /// Exact (not tick-rounded) intended time of the next attempt.
    fn next_exact(&self) -> Option<Instant> {
        let p = self.period_ns?;
        Some(self.t0 + Duration::from_nanos((self.phase_ns + p * self.started as f64) as u64))
    }

    fn next_intended(&self) -> Option<Instant> {
        let p = self.period_ns?;
        let mut ns = match &self.stages {
            // Past the last stage: intended at the end, which is_done stops.
            Some((st, w, n)) => {
                (st.time_of((w + n * self.started) as f64)
                    .unwrap_or(st.duration().as_secs_f64())
                    * 1e9) as u64
            }
            None => (self.phase_ns + p * self.started as f64) as u64,
        };
        if self.resolution_ns > 1 {
            // The schedule is delivered in ticks: an attempt is intended at
            // the first tick at or after its exact time.
            ns = ns.div_ceil(self.resolution_ns) * self.resolution_ns;
        }
        Some(self.t0 + Duration::from_nanos(ns))
    }

    /// Deliver the schedule in ticks of `resolution` (0 = exact times).
    ///
    /// Waking up once per attempt costs a timer and a context switch each;
    /// at thousands of attempts per second that is most of a generator's
    /// CPU. With ticks, a worker wakes once per tick and starts the attempts
    /// of that tick together, each *intended* at the tick, so a generator
    /// that keeps up shows no correction and one that falls behind is still
    /// measured from when it should have started. Bursts are bounded to one
    /// tick's share of the rate.
    pub fn with_resolution(mut self, resolution: Duration) -> Pacer {
        self.resolution_ns = u64::try_from(resolution.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// What to do at `now` with `in_flight` attempts running. Call
    /// repeatedly until it returns something other than `Start`; each
    /// `Start` counts as started.
    pub fn poll(&mut self, now: Instant, in_flight: u64) -> Pace {
        if self.is_done(now) {
            return Pace::Done;
        }
        let intended = match self.next_intended() {
            Some(t) if t > now => return Pace::WaitUntil(t),
            Some(t) => t,
            None => now,
        };
        if self.concurrency.is_some_and(|c| in_flight >= c) {
            return Pace::WaitForSlot;
        }
        if self.period_ns.is_none() && self.concurrency.is_none() {
            // Neither rate nor cap: one attempt at a time (closed loop of 1).
            if in_flight >= 1 {
                return Pace::WaitForSlot;
            }
        }
        self.started += 1;
        Pace::Start(intended)
    }

    /// Give back the attempt the last `Start` handed out: the endpoint could
    /// not start it (no free user yet). It stays due with the same intended
    /// time, so the wait shows in the corrected latency.
    pub fn unstart(&mut self) {
        self.started = self.started.saturating_sub(1);
    }

    /// The offered rate of this worker, attempts per second (0 in closed loop).
    pub fn offered_rate(&self) -> f64 {
        self.period_ns.map_or(0.0, |p| 1e9 / p)
    }
}

/// k6-style load stages: each stage ramps the attempt rate linearly from
/// the previous stage's end rate (0 before the first) to its own `rate`
/// over its `duration`; two stages with the same rate make a plateau.
///
/// The open-loop rule stays wrk2's: attempt `i` of the whole run is
/// intended at the instant where the cumulative number of attempts
/// ∫rate·dt reaches `i`, whatever happened before.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// (start s, length s, rate at start, rate at end, attempts before).
    parts: Vec<(f64, f64, f64, f64, f64)>,
    total: f64,
    length: f64,
}

impl Stages {
    /// `(duration, target rate)` per stage; rates must be finite and not
    /// negative, durations above zero, and some attempt must be due.
    pub fn new(stages: &[(Duration, f64)]) -> Result<Stages, &'static str> {
        let mut parts = Vec::with_capacity(stages.len());
        let (mut t, mut prev, mut cum) = (0.0, 0.0, 0.0);
        for &(d, r) in stages {
            if !(r.is_finite() && r >= 0.0) {
                return Err("a stage rate must be a number of attempts per second, 0 or more");
            }
            let len = d.as_secs_f64();
            if len <= 0.0 {
                return Err("a stage duration must be above zero");
            }
            parts.push((t, len, prev, r, cum));
            cum += (prev + r) / 2.0 * len;
            t += len;
            prev = r;
        }
        if cum < 1.0 {
            return Err("the stages start no attempt (every rate is 0)");
        }
        Ok(Stages {
            parts,
            total: cum,
            length: t,
        })
    }

    /// Length of all stages together.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.length)
    }

    /// Attempts over all stages.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Average rate over all stages (the report's offered rate).
    pub fn mean_rate(&self) -> f64 {
        self.total / self.length
    }

    /// The same shape at `factor` times the rate (a segment's share).
    pub fn scaled(&self, factor: f64) -> Stages {
        Stages {
            parts: self
                .parts
                .iter()
                .map(|&(t, l, a, b, c)| (t, l, a * factor, b * factor, c * factor))
                .collect(),
            total: self.total * factor,
            length: self.length,
        }
    }

    /// Seconds after the start at which attempt `i` is intended; `None`
    /// past the last stage.
    pub fn time_of(&self, i: f64) -> Option<f64> {
        if !(0.0..=self.total).contains(&i) {
            return None;
        }
        let &(t0, len, r0, r1, before) = self
            .parts
            .iter()
            .rev()
            .find(|p| p.4 <= i && (p.2 > 0.0 || p.3 > 0.0))?;
        let x = i - before;
        // Solve r0·t + a·t²/2 = x for t in [0, len].
        let a = (r1 - r0) / len;
        let t = if a.abs() < 1e-12 {
            x / r0
        } else {
            (-r0 + (r0 * r0 + 2.0 * a * x).max(0.0).sqrt()) / a
        };
        (t.is_finite() && t <= len).then_some(t0 + t.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("7", Duration::from_secs(7)),
            (" 3s ", Duration::from_secs(3)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        for s in ["", "s", "abc", "5 parsecs", "-1s", "1..2s", "1e400s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn holds() {
        let s = Duration::from_secs;
        let ok = [
            ("5s", Hold::Fixed(s(5))),
            ("uniform(1s,5s)", Hold::Uniform(s(1), s(5))),
            ("uniform(1s, 5s)", Hold::Uniform(s(1), s(5))),
            ("exp(3s)", Hold::Exp(s(3))),
            (
                "lognormal(3s,0.5)",
                Hold::LogNormal {
                    median: s(3),
                    sigma: 0.5,
                },
            ),
        ];
        for (t, h) in ok {
            assert_eq!(Hold::parse(t), Ok(h), "{t}");
        }
        for t in [
            "",
            "uniform(5s,1s)",
            "uniform(1s)",
            "exp()",
            "exp(3s",
            "lognormal(3s,-1)",
            "gauss(1s)",
            "lognormal(3s,x)",
        ] {
            assert!(Hold::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn hold_samples_have_the_right_mean() {
        let mut rng = Rng::new(42);
        for h in [
            Hold::Uniform(Duration::from_secs(1), Duration::from_secs(5)),
            Hold::Exp(Duration::from_secs(3)),
            Hold::LogNormal {
                median: Duration::from_secs(2),
                sigma: 0.5,
            },
        ] {
            let n = 20_000;
            let sum: f64 = (0..n).map(|_| h.sample(&mut rng).as_secs_f64()).sum();
            let mean = sum / n as f64;
            let want = h.mean().as_secs_f64();
            assert!((mean - want).abs() / want < 0.05, "{h}: {mean} vs {want}");
        }
    }

    #[test]
    fn open_loop_paces_on_intended_times_without_bursting_the_schedule() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Some(1000.0), None, None, None, 0, 1);
        // At t0 exactly one attempt is due.
        assert_eq!(p.poll(t0, 0), Pace::Start(t0));
        assert_eq!(
            p.poll(t0, 1),
            Pace::WaitUntil(t0 + Duration::from_millis(1))
        );
        // After a 10 ms stall, the ten late ones start, each with its own
        // intended time (for the corrected latency), then it waits again.
        let later = t0 + Duration::from_millis(10);
        let mut intended = vec![];
        while let Pace::Start(t) = p.poll(later, 0) {
            intended.push(t);
        }
        assert_eq!(intended.len(), 10);
        for (i, t) in intended.iter().enumerate() {
            assert_eq!(*t, t0 + Duration::from_millis(i as u64 + 1));
        }
    }

    #[test]
    fn workers_interleave_into_one_stream() {
        let t0 = Instant::now();
        let mut all = vec![];
        for w in 0..3 {
            let mut p = Pacer::new(t0, Some(300.0), None, Some(10), None, w, 3);
            let end = t0 + Duration::from_secs(1);
            while let Pace::Start(t) = p.poll(end, 0) {
                all.push(t - t0);
            }
        }
        all.sort();
        assert_eq!(all.len(), 10);
        for (i, d) in all.iter().enumerate() {
            let want = Duration::from_nanos((i as f64 * 1e9 / 300.0) as u64);
            assert!(
                d.abs_diff(want) < Duration::from_micros(1),
                "{i}: {d:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn closed_loop_respects_the_cap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, None, Some(4), Some(6), None, 0, 1);
        for _ in 0..4 {
            assert!(matches!(p.poll(t0, p.started()), Pace::Start(_)));
        }
        assert_eq!(p.poll(t0, 4), Pace::WaitForSlot);
        assert!(matches!(p.poll(t0, 3), Pace::Start(_)));
        assert!(matches!(p.poll(t0, 3), Pace::Start(_)));
        assert_eq!(p.poll(t0, 0), Pace::Done);
    }

    #[test]
    fn ticks_group_starts_without_changing_the_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        // 10,000/s in 1 ms ticks: 10 attempts intended at each tick.
        let mut p = Pacer::new(t0, Some(10_000.0), None, Some(30), None, 0, 1).with_resolution(ms);
        let mut starts = vec![];
        let end = t0 + Duration::from_secs(1);
        while let Pace::Start(t) = p.poll(end, 0) {
            starts.push(t);
        }
        assert_eq!(starts.len(), 30);
        assert!(starts[..1].iter().all(|t| *t == t0));
        assert!(starts[1..11].iter().all(|t| *t == t0 + ms), "{starts:?}");
        assert!(starts[11..21].iter().all(|t| *t == t0 + 2 * ms));
        // Before the tick nothing is due; at the tick all of it is.
        let mut p = Pacer::new(t0, Some(10_000.0), None, None, None, 0, 1).with_resolution(ms);
        assert_eq!(p.poll(t0, 0), Pace::Start(t0));
        assert_eq!(p.poll(t0 + ms / 2, 0), Pace::WaitUntil(t0 + ms));
    }

    #[test]
    fn unstart_keeps_the_intended_time() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Some(10.0), None, Some(2), None, 0, 1);
        assert_eq!(p.poll(t0, 0), Pace::Start(t0));
        p.unstart();
        let later = t0 + Duration::from_millis(50);
        assert_eq!(p.poll(later, 0), Pace::Start(t0));
        assert_eq!(p.started(), 1);
    }

    #[test]
    fn duration_ends_the_schedule() {
        let t0 = Instant::now();
        let mut p = Pacer::new(
            t0,
            Some(100.0),
            None,
            None,
            Some(Duration::from_millis(50)),
            0,
            1,
        );
        let mut n = 0;
        while let Pace::Start(_) = p.poll(t0 + Duration::from_millis(50) + LATE_GRACE, 0) {
            n += 1;
        }
        assert_eq!(
            n, 0,
            "nothing starts once the duration and its grace are over"
        );
        let mut p = Pacer::new(
            t0,
            Some(100.0),
            None,
            None,
            Some(Duration::from_millis(50)),
            0,
            1,
        );
        while let Pace::Start(_) = p.poll(t0 + Duration::from_millis(49), 0) {
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(p.poll(t0 + Duration::from_millis(49), 0), Pace::Done);
        // A worker that wakes late still starts what was intended inside
        // the duration, with the intended times.
        let mut p = Pacer::new(
            t0,
            Some(100.0),
            None,
            None,
            Some(Duration::from_millis(50)),
            0,
            1,
        )
        .with_resolution(Duration::from_millis(1));
        let mut late = vec![];
        while let Pace::Start(t) = p.poll(t0 + Duration::from_millis(500), 0) {
            late.push(t - t0);
        }
        assert_eq!(late.len(), 5);
        assert_eq!(late[4], Duration::from_millis(40));
    }

    proptest! {
        #[test]
        fn count_shares_add_up(count in 0u64..100_000, workers in 1usize..64) {
            let t0 = Instant::now();
            let total: u64 = (0..workers)
                .map(|w| Pacer::new(t0, Some(1e6), None, Some(count), None, w, workers).limit.unwrap_or(0))
                .sum();
            prop_assert_eq!(total, count);
        }

        #[test]
        fn hold_samples_stay_in_bounds(seed in any::<u64>(), a in 0u64..10_000, b in 0u64..10_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let h = Hold::Uniform(Duration::from_millis(lo), Duration::from_millis(hi));
            let mut rng = Rng::new(seed);
            for _ in 0..100 {
                let d = h.sample(&mut rng);
                prop_assert!(d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi));
            }
        }
    }
}
