//! A hashed hierarchical timing wheel with 1 ms ticks.
//!
//! Level 0 has 1024 one-tick slots (about one second ahead), level 1 has 1024
//! slots of 1024 ticks (about 17 minutes ahead: every RFC 3261 timer and
//! ordinary hold times), and a binary heap takes anything farther. Insertion
//! is O(1) for the first two levels; cancellation is lazy: an entry carries a
//! 64-bit payload (the engine packs kind, index and generation into it) and
//! the owner ignores fired entries whose generation or state has moved on.
//! Occupancy bitmaps make [`Wheel::next_deadline`] and idle jumps cheap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

const SLOTS: usize = 1024;
const BITS: u32 = 10;
const MASK: u64 = SLOTS as u64 - 1;
const WORDS: usize = SLOTS / 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    tick: u64,
    data: u64,
}

#[derive(Debug)]
struct Level {
    slots: Vec<Vec<Entry>>,
    bits: [u64; WORDS],
}

impl Level {
    fn new() -> Self {
        Level {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            bits: [0; WORDS],
        }
    }
    #[inline]
    fn push(&mut self, slot: usize, e: Entry) {
        self.slots[slot].push(e);
        self.bits[slot / 64] |= 1 << (slot % 64);
    }
    #[inline]
    fn is_set(&self, slot: usize) -> bool {
        self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }
    #[inline]
    fn clear_bit(&mut self, slot: usize) {
        self.bits[slot / 64] &= !(1 << (slot % 64));
    }
    fn empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
    /// Distance (0..SLOTS) from `from` to the first occupied slot, circularly.
    fn next_set(&self, from: usize) -> Option<usize> {
        let w0 = from / 64;
        let b0 = from % 64;
        let word = self.bits[w0] & (!0u64 << b0);
        if word != 0 {
            return Some(w0 * 64 + word.trailing_zeros() as usize - from);
        }
        for i in 1..WORDS {
            let w = (w0 + i) % WORDS;
            if self.bits[w] != 0 {
                let slot = w * 64 + self.bits[w].trailing_zeros() as usize;
                return Some((slot + SLOTS - from) % SLOTS);
            }
        }
        let word = self.bits[w0] & !(!0u64 << b0);
        if word != 0 {
            let slot = w0 * 64 + word.trailing_zeros() as usize;
            return Some((slot + SLOTS - from) % SLOTS);
        }
        None
    }
}

/// The timing wheel; see the module documentation.
#[derive(Debug)]
pub struct Wheel {
    epoch: Instant,
    /// Every tick ≤ `cur` has been processed.
    cur: u64,
    l0: Level,
    l1: Level,
    far: BinaryHeap<Reverse<Entry>>,
    len: usize,
    spare: Vec<Entry>,
}

impl Wheel {
    /// An empty wheel whose tick 0 is `now`.
    pub fn new(now: Instant) -> Self {
        Wheel {
            epoch: now,
            cur: 0,
            l0: Level::new(),
            l1: Level::new(),
            far: BinaryHeap::new(),
            len: 0,
            spare: Vec::new(),
        }
    }

    #[inline]
    fn tick_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    #[inline]
    fn tick_floor(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Entries held, including lazily cancelled ones not yet reached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedule `data` to fire at `deadline` (rounded up to the next tick;
    /// never earlier than the next [`Wheel::advance`]).
    pub fn insert(&mut self, deadline: Instant, data: u64) {
        let tick = self.tick_ceil(deadline).max(self.cur + 1);
        self.len += 1;
        self.place(Entry { tick, data });
    }

    #[inline]
    fn place(&mut self, e: Entry) {
        if e.tick - self.cur <= MASK {
            self.l0.push((e.tick & MASK) as usize, e);
        } else if (e.tick >> BITS) - (self.cur >> BITS) <= MASK {
            self.l1.push(((e.tick >> BITS) & MASK) as usize, e);
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// Fire everything due at or before `now`, appending payloads to `out`
    /// in deadline order (ties in insertion order).
    pub fn advance(&mut self, now: Instant, out: &mut Vec<u64>) {
        let target = self.tick_floor(now);
        while self.cur < target {
            if self.l0.empty() {
                // Jump to the last tick of this block (or the target).
                let block_end = self.cur | MASK;
                if block_end > self.cur {
                    self.cur = block_end.min(target);
                    if self.cur == target {
                        break;
                    }
                }
            }
            self.cur += 1;
            if self.cur & MASK == 0 {
                self.cascade();
            }
            let slot = (self.cur & MASK) as usize;
            if self.l0.is_set(slot) {
                self.l0.clear_bit(slot);
                let mut list =
                    std::mem::replace(&mut self.l0.slots[slot], std::mem::take(&mut self.spare));
                for e in list.drain(..) {
                    if e.tick <= self.cur {
                        self.len -= 1;
                        out.push(e.data);
                    } else {
                        self.place(e);
                    }
                }
                self.spare = list;
            }
        }
    }

    fn cascade(&mut self) {
        let block = self.cur >> BITS;
        let slot = (block & MASK) as usize;
        if self.l1.is_set(slot) {
            self.l1.clear_bit(slot);
            let mut list = std::mem::take(&mut self.l1.slots[slot]);
            for e in list.drain(..) {
                self.place(e);
            }
            self.l1.slots[slot] = list;
        }
        while let Some(Reverse(e)) = self.far.peek().copied() {
            if (e.tick >> BITS) - block > MASK {
                break;
            }
            self.far.pop();
            self.place(e);
        }
    }

    /// The earliest tick worth waking up for: exact for level 0, the start of
    /// the block for level 1 (entries move down then), exact for the heap.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut best: Option<u64> = None;
        let from = ((self.cur + 1) & MASK) as usize;
        if let Some(d) = self.l0.next_set(from) {
            best = Some(self.cur + 1 + d as u64);
        }
        let block = self.cur >> BITS;
        let from1 = ((block + 1) & MASK) as usize;
        if let Some(d) = self.l1.next_set(from1) {
            let t = (block + 1 + d as u64) << BITS;
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        if let Some(Reverse(e)) = self.far.peek() {
            best = Some(best.map_or(e.tick, |b| b.min(e.tick)));
        }
        best.map(|t| self.epoch + Duration::from_millis(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fires_in_order_across_levels() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let ms = |m: u64| t0 + Duration::from_millis(m);
        for (i, m) in [5u64, 1, 1500, 3_000_000, 64_000, 999, 1024, 1025]
            .iter()
            .enumerate()
        {
            w.insert(ms(*m), i as u64);
        }
        let mut out = Vec::new();
        w.advance(ms(4), &mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(w.next_deadline(), Some(ms(5)));
        out.clear();
        w.advance(ms(1100), &mut out);
        assert_eq!(out, vec![0, 5, 6, 7]);
        out.clear();
        w.advance(ms(100_000), &mut out);
        assert_eq!(out, vec![2, 4]);
        assert!(w.next_deadline().is_some_and(|d| d <= ms(3_000_000)));
        out.clear();
        w.advance(ms(3_000_000), &mut out);
        assert_eq!(out, vec![3]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn never_fires_early_and_rounds_up() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.insert(t0 + Duration::from_micros(1500), 7);
        let mut out = Vec::new();
        w.advance(t0 + Duration::from_micros(1999), &mut out);
        assert!(out.is_empty());
        w.advance(t0 + Duration::from_millis(2), &mut out);
        assert_eq!(out, vec![7]);
        // a deadline in the past fires on the next advance
        w.insert(t0, 8);
        w.advance(t0 + Duration::from_millis(3), &mut out);
        assert_eq!(out, vec![7, 8]);
    }

    proptest! {
        /// Oracle: a sorted list. Every entry fires exactly once, not before
        /// its deadline, and no later than the advance that passes it.
        #[test]
        fn matches_sorted_oracle(
            deadlines in proptest::collection::vec(0u64..5_000_000, 1..60),
            steps in proptest::collection::vec(1u64..400_000, 1..60),
        ) {
            let t0 = Instant::now();
            let mut w = Wheel::new(t0);
            for (i, d) in deadlines.iter().enumerate() {
                w.insert(t0 + Duration::from_millis(*d), i as u64);
            }
            let mut now = 0u64;
            let mut fired = vec![false; deadlines.len()];
            let mut out = Vec::new();
            for s in steps.iter().chain(std::iter::once(&6_000_000)) {
                now += s;
                if let Some(nd) = w.next_deadline() {
                    // the reported deadline is never after a due entry
                    let earliest = deadlines.iter().enumerate().filter(|(i, _)| !fired[*i]).map(|(_, d)| *d).min();
                    if let Some(e) = earliest {
                        prop_assert!(nd <= t0 + Duration::from_millis(e.max(1)));
                    }
                }
                out.clear();
                w.advance(t0 + Duration::from_millis(now), &mut out);
                for &i in &out {
                    let i = i as usize;
                    prop_assert!(!fired[i]);
                    prop_assert!(deadlines[i] <= now);
                    fired[i] = true;
                }
                for (i, d) in deadlines.iter().enumerate() {
                    if *d <= now { prop_assert!(fired[i], "entry {} due {} not fired at {}", i, d, now); }
                }
            }
            prop_assert!(w.is_empty());
        }
    }
}
