//! k6-style load stages.

use std::time::Duration;

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

    /// The highest rate any stage reaches (ramps peak at their ends).
    pub fn peak_rate(&self) -> f64 {
        self.parts.iter().map(|p| p.2.max(p.3)).fold(0.0, f64::max)
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
