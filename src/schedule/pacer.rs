//! The per-worker pacer: intended start times, caps, counts and the end
//! of the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Load, Schedule, Share, Stages};

/// How long after `--duration` a late worker may still start attempts that
/// were intended inside it.
pub const LATE_GRACE: Duration = Duration::from_secs(1);

/// When a worker starts its next attempt.
///
/// The schedule is delivered in ticks of [`Schedule::resolution`] (zero =
/// exact times). Waking up once per attempt costs a timer and a context
/// switch each; at thousands of attempts per second that is most of a
/// generator's CPU. With ticks, a worker wakes once per tick and starts the
/// attempts of that tick together, each *intended* at the tick, so a
/// generator that keeps up shows no correction and one that falls behind is
/// still measured from when it should have started. Bursts are bounded to
/// one tick's share of the rate.
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
    stages: Option<(Arc<Stages>, u64, u64)>,
    /// Nanoseconds between two attempts of the whole run (constant rate).
    slot_ns: Option<f64>,
    /// Intended start of the last attempt handed out.
    last_intended: Option<Instant>,
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
    /// Worker `worker`'s pacer for `schedule` (the instance's totals): it
    /// takes every `worker.parts`-th attempt of the instance, its share of
    /// the count and of the concurrency cap (at least one slot).
    pub fn new(t0: Instant, schedule: &Schedule, worker: Share) -> Pacer {
        let n = worker.parts as u64;
        let w = worker.index as u64;
        let (rate, stages) = match &schedule.load {
            Load::Open { rate, .. } => (Some(*rate), None),
            Load::Stages { stages, .. } => (Some(stages.mean_rate()), Some(stages.clone())),
            Load::Closed { .. } => (None, None),
        };
        let rate = rate.filter(|r| *r > 0.0 && r.is_finite());
        let period_ns = rate.map(|r| 1e9 * n as f64 / r);
        let phase_ns = rate.map_or(0.0, |r| 1e9 * w as f64 / r);
        let mut end = schedule.duration.map(|d| t0 + d);
        if let Some(st) = &stages {
            // The run ends with the last stage at the latest.
            let last = t0 + st.duration();
            end = Some(end.map_or(last, |e| e.min(last)));
        }
        Pacer {
            t0,
            period_ns,
            phase_ns,
            concurrency: schedule.load.cap().map(|c| worker.count(c).max(1)),
            limit: schedule.count.map(|c| worker.count(c)),
            end,
            started: 0,
            stopped: false,
            resolution_ns: u64::try_from(schedule.resolution.as_nanos()).unwrap_or(u64::MAX),
            stages: stages.map(|st| (st, w, n)),
            slot_ns: period_ns.map(|p| p / n as f64),
            last_intended: None,
        }
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
        self.started += 1;
        self.last_intended = Some(intended);
        Pace::Start(intended)
    }

    /// When this worker's share of the offered load ended, called once the
    /// pacer said `Done` (or was stopped) at `now`: at a constant rate, one
    /// run-wide slot after its last intended start, so that N attempts at
    /// rate R span N/R whichever worker started the last one; later if the
    /// worker ran behind; `now` for closed loops and stages.
    pub fn load_end(&self, now: Instant) -> Instant {
        match (self.slot_ns, self.last_intended, &self.stages) {
            (Some(slot), Some(last), None) if slot.is_finite() => {
                now.max(last + Duration::from_nanos(slot.min(1e15) as u64))
            }
            _ => now,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Hold, Rng};
    use proptest::prelude::*;

    /// A pacer for worker `w` of `n` with the old positional shape, so the
    /// tables below stay readable.
    fn pacer(
        t0: Instant,
        rate: Option<f64>,
        cap: Option<u64>,
        count: Option<u64>,
        duration: Option<Duration>,
        w: usize,
        n: usize,
    ) -> Pacer {
        paced(t0, rate, cap, count, duration, Duration::ZERO, w, n)
    }

    #[allow(clippy::too_many_arguments)]
    fn paced(
        t0: Instant,
        rate: Option<f64>,
        cap: Option<u64>,
        count: Option<u64>,
        duration: Option<Duration>,
        resolution: Duration,
        w: usize,
        n: usize,
    ) -> Pacer {
        let load = match (rate, cap) {
            (Some(rate), cap) => Load::Open { rate, cap },
            (None, Some(concurrency)) => Load::Closed { concurrency },
            (None, None) => Load::Closed { concurrency: 1 },
        };
        let s = Schedule {
            load,
            count,
            duration,
            resolution,
        };
        Pacer::new(t0, &s, Share::new(w, n))
    }

    #[test]
    fn load_end_spans_n_slots_whichever_worker_started_last() {
        let t0 = Instant::now();
        let rate = 100.0;
        // 20 attempts over 2 workers: attempt i intended at t0 + i/100.
        let ends: Vec<Instant> = (0..2)
            .map(|w| {
                let mut p = pacer(t0, Some(rate), None, Some(20), None, w, 2);
                let late = t0 + Duration::from_secs(1);
                while let Pace::Start(_) = p.poll(late, 0) {}
                // Asked right at the last intended start, the end is one slot on.
                p.load_end(t0)
            })
            .collect();
        let end = ends.into_iter().max().unwrap();
        assert_eq!(end - t0, Duration::from_millis(200));
        // A worker that ran behind ends when it finished starting.
        let mut p = pacer(t0, Some(rate), None, Some(5), None, 0, 1);
        let late = t0 + Duration::from_secs(3);
        while let Pace::Start(_) = p.poll(late, 0) {}
        assert_eq!(p.load_end(late), late);
        // Closed loop: now.
        let p = pacer(t0, None, Some(4), Some(5), None, 0, 1);
        assert_eq!(p.load_end(late), late);
    }

    #[test]
    fn open_loop_paces_on_intended_times_without_bursting_the_schedule() {
        let t0 = Instant::now();
        let mut p = pacer(t0, Some(1000.0), None, None, None, 0, 1);
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
            let mut p = pacer(t0, Some(300.0), None, Some(10), None, w, 3);
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
        let mut p = pacer(t0, None, Some(4), Some(6), None, 0, 1);
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
        let mut p = paced(t0, Some(10_000.0), None, Some(30), None, ms, 0, 1);
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
        let mut p = paced(t0, Some(10_000.0), None, None, None, ms, 0, 1);
        assert_eq!(p.poll(t0, 0), Pace::Start(t0));
        assert_eq!(p.poll(t0 + ms / 2, 0), Pace::WaitUntil(t0 + ms));
    }

    #[test]
    fn unstart_keeps_the_intended_time() {
        let t0 = Instant::now();
        let mut p = pacer(t0, Some(10.0), None, Some(2), None, 0, 1);
        assert_eq!(p.poll(t0, 0), Pace::Start(t0));
        p.unstart();
        let later = t0 + Duration::from_millis(50);
        assert_eq!(p.poll(later, 0), Pace::Start(t0));
        assert_eq!(p.started(), 1);
    }

    #[test]
    fn duration_ends_the_schedule() {
        let t0 = Instant::now();
        let mut p = pacer(
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
        let mut p = pacer(
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
        let mut p = paced(
            t0,
            Some(100.0),
            None,
            None,
            Some(Duration::from_millis(50)),
            Duration::from_millis(1),
            0,
            1,
        );
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
                .map(|w| pacer(t0, Some(1e6), None, Some(count), None, w, workers).limit.unwrap_or(0))
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
