//! Weighted choice of a mix's parts.

/// Picks the part of a weighted mix each attempt belongs to: smooth weighted
/// round-robin (nginx's upstream balancer), so every window of
/// `sum(weights)` consecutive picks holds each part exactly `weight` times,
/// spread out rather than in runs, with no randomness to disturb a
/// comparison between two builds.
#[derive(Debug, Clone)]
pub struct WeightedCycle {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl WeightedCycle {
    /// A cycle over `weights` (each at least 1; zero weights never win).
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w)).collect();
        WeightedCycle {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }

    /// The part the next attempt belongs to, without taking it: an attempt
    /// that cannot start (no free user) must not shift the proportions.
    pub fn peek(&self) -> usize {
        let mut best = 0;
        for i in 1..self.weights.len() {
            if self.current[i] + self.weights[i] > self.current[best] + self.weights[best] {
                best = i;
            }
        }
        best
    }

    /// Take the part [`Self::peek`] returned, and return it.
    pub fn take(&mut self) -> usize {
        let pick = self.peek();
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        if let Some(c) = self.current.get_mut(pick) {
            *c -= self.total;
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_cycle_is_exact_in_every_window() {
        for weights in [vec![1u32], vec![1, 3], vec![3, 1, 1], vec![5, 2, 7]] {
            let total: u32 = weights.iter().sum();
            let mut c = WeightedCycle::new(&weights);
            let picks: Vec<usize> = (0..total * 20).map(|_| c.take()).collect();
            for window in picks.chunks(total as usize) {
                for (i, w) in weights.iter().enumerate() {
                    let n = window.iter().filter(|&&p| p == i).count();
                    assert_eq!(n, *w as usize, "{weights:?}: {window:?}");
                }
            }
            // Peeking alone never advances the cycle.
            let p = c.peek();
            assert_eq!(c.peek(), p);
        }
        // Spread, not runs: 1:1 alternates.
        let mut c = WeightedCycle::new(&[1, 1]);
        let seq: Vec<usize> = (0..6).map(|_| c.take()).collect();
        assert_eq!(seq, [0, 1, 0, 1, 0, 1]);
    }
}
