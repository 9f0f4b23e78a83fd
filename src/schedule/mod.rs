//! Load pacing: what load is offered ([`Load`], decided once per run),
//! how it is shared out ([`Share`]: segments of a test, workers of an
//! instance), and when each worker starts its next attempt ([`Pacer`]).
//!
//! Open loop follows wrk2: attempt `i` of the whole run is *intended* to
//! start at `t0 + i/rate`, whatever happened before. A worker that falls
//! behind (a stall, a full concurrency cap) starts the late attempts as soon
//! as it can, one per loop turn's worth of due times, and hands each its
//! intended instant so latency can be measured from when the attempt should
//! have started (the coordinated-omission correction). It never moves the
//! schedule to "catch up" by redefining time.
//!
//! The rate mode is a value ([`Load`]), not one driver per combination of
//! flags: oha's client grew six near-copies that way.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Hold times are [`Delay`] distributions; durations and the generator are
/// shared with the engine's ring delays (see [`crate::dist`]).
pub use crate::dist::{Delay as Hold, DistError as ScheduleError, Rng, parse_duration};

mod pacer;
mod stages;
mod weighted;

pub use pacer::{LATE_GRACE, Pace, Pacer};
pub use stages::Stages;
pub use weighted::WeightedCycle;

/// The shape of the offered load.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop at a constant rate (attempts per second), with an optional
    /// cap on attempts in flight.
    Open { rate: f64, cap: Option<u64> },
    /// Open loop whose rate follows k6-style stages, with an optional cap.
    Stages {
        stages: Arc<Stages>,
        cap: Option<u64>,
    },
    /// Closed loop: keep `concurrency` attempts in flight, starting one as
    /// soon as another ends.
    Closed { concurrency: u64 },
}

impl Load {
    /// The offered rate in attempts per second: the constant rate, the
    /// stages' mean, or `None` for a closed loop.
    pub fn offered_rate(&self) -> Option<f64> {
        match self {
            Load::Open { rate, .. } => Some(*rate),
            Load::Stages { stages, .. } => Some(stages.mean_rate()),
            Load::Closed { .. } => None,
        }
    }

    /// The cap on attempts in flight, if any.
    pub fn cap(&self) -> Option<u64> {
        match self {
            Load::Open { cap, .. } | Load::Stages { cap, .. } => *cap,
            Load::Closed { concurrency } => Some(*concurrency),
        }
    }

    /// Part `share` of this load: the rate divided, the cap split (at least
    /// one slot each).
    pub fn share(&self, share: Share) -> Load {
        let cap = |c: Option<u64>| c.map(|c| share.count(c).max(1));
        match self {
            Load::Open { rate, cap: c } => Load::Open {
                rate: share.rate(*rate),
                cap: cap(*c),
            },
            Load::Stages { stages, cap: c } => Load::Stages {
                stages: if share.parts == 1 {
                    stages.clone()
                } else {
                    Arc::new(stages.scaled(share.rate(1.0)))
                },
                cap: cap(*c),
            },
            Load::Closed { concurrency } => Load::Closed {
                concurrency: share.count(*concurrency).max(1),
            },
        }
    }
}

/// Part `index` of `parts` (zero-based): a segment of a test split across
/// machines, or a worker of one instance. Counts split exactly (the first
/// `total % parts` parts take one more), rates evenly, user ranges into
/// disjoint blocks: the arithmetic of [`crate::segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub parts: usize,
}

impl Share {
    /// Everything in one part.
    pub const WHOLE: Share = Share { index: 0, parts: 1 };

    /// Part `index` of `parts`; `parts` at least 1 and `index` below it.
    pub fn new(index: usize, parts: usize) -> Share {
        let parts = parts.max(1);
        Share {
            index: index.min(parts - 1),
            parts,
        }
    }

    /// This part of `total` units.
    pub fn count(self, total: u64) -> u64 {
        crate::segment::share_count(total, self.index, self.parts)
    }

    /// This part of a rate.
    pub fn rate(self, rate: f64) -> f64 {
        rate / self.parts as f64
    }

    /// This part's contiguous block of `0..len`.
    pub fn range(self, len: usize) -> Range<usize> {
        crate::segment::share_range(len, self.index, self.parts)
    }
}

impl From<crate::segment::Segment> for Share {
    fn from(s: crate::segment::Segment) -> Share {
        Share::new(s.index as usize, s.count as usize)
    }
}

/// Everything a pacer needs about the load of one instance: its shape, when
/// it ends, and the tick its start times are delivered in.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub load: Load,
    /// Stop after this many attempts.
    pub count: Option<u64>,
    /// Stop starting attempts after this long (stages end with their last
    /// stage at the latest).
    pub duration: Option<Duration>,
    /// Tick of the open-loop schedule (see [`Pacer`]; zero = exact times).
    pub resolution: Duration,
}

impl Schedule {
    /// An instance's part of a test split into segments: rate, count and
    /// cap shared out, each segment starting at least one attempt.
    pub fn segment(&self, share: Share) -> Schedule {
        Schedule {
            load: self.load.share(share),
            count: self.count.map(|c| share.count(c).max(1)),
            duration: self.duration,
            resolution: self.resolution,
        }
    }

    /// The offered rate of this schedule (see [`Load::offered_rate`]).
    pub fn offered_rate(&self) -> Option<f64> {
        self.load.offered_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shares_of_each_load_shape() {
        let st = Arc::new(Stages::new(&[(Duration::from_secs(10), 100.0)]).unwrap());
        let cases: Vec<(Load, Share, Load)> = vec![
            (
                Load::Open {
                    rate: 1000.0,
                    cap: None,
                },
                Share::new(1, 4),
                Load::Open {
                    rate: 250.0,
                    cap: None,
                },
            ),
            (
                Load::Open {
                    rate: 90.0,
                    cap: Some(5),
                },
                Share::new(2, 3),
                Load::Open {
                    rate: 30.0,
                    cap: Some(1),
                },
            ),
            (
                Load::Closed { concurrency: 7 },
                Share::new(0, 2),
                Load::Closed { concurrency: 4 },
            ),
            (
                Load::Closed { concurrency: 1 },
                Share::new(1, 2),
                Load::Closed { concurrency: 1 },
            ),
            (
                Load::Stages {
                    stages: st.clone(),
                    cap: None,
                },
                Share::WHOLE,
                Load::Stages {
                    stages: st.clone(),
                    cap: None,
                },
            ),
        ];
        for (load, share, want) in cases {
            assert_eq!(load.share(share), want, "{load:?} {share:?}");
        }
        let half = Load::Stages {
            stages: st,
            cap: None,
        }
        .share(Share::new(0, 2));
        assert_eq!(half.offered_rate(), Some(25.0));
        assert_eq!(Load::Closed { concurrency: 3 }.offered_rate(), None);
        assert_eq!(Load::Closed { concurrency: 3 }.cap(), Some(3));
    }

    #[test]
    fn segment_schedule_gives_each_segment_an_attempt() {
        let s = Schedule {
            load: Load::Open {
                rate: 10.0,
                cap: None,
            },
            count: Some(2),
            duration: None,
            resolution: Duration::ZERO,
        };
        let counts: Vec<_> = (0..3)
            .map(|i| s.segment(Share::new(i, 3)).count.unwrap())
            .collect();
        assert_eq!(counts, [1, 1, 1]);
    }

    proptest! {
        #[test]
        fn shares_add_up(total in 0u64..1_000_000, len in 0usize..100_000, parts in 1usize..64) {
            let shares: Vec<Share> = (0..parts).map(|i| Share::new(i, parts)).collect();
            prop_assert_eq!(shares.iter().map(|s| s.count(total)).sum::<u64>(), total);
            let rate: f64 = shares.iter().map(|s| s.rate(1234.5)).sum();
            prop_assert!((rate - 1234.5).abs() < 1e-6);
            let mut next = 0;
            for s in &shares {
                let r = s.range(len);
                prop_assert_eq!(r.start, next);
                next = r.end;
            }
            prop_assert_eq!(next, len);
        }
    }
}
