//! A hashed hierarchical timing wheel with 1 ms ticks and O(1) cancellation.
//!
//! Three levels of 1024 slots: level 0 has one-tick slots (about one second
//! ahead), level 1 slots of 1024 ticks (about 17 minutes: every RFC 3261
//! timer and ordinary hold times), level 2 slots of 1024² ticks (about 12
//! days); anything farther waits in an overflow list scanned when level 2
//! turns. Entries are nodes of intrusive doubly linked lists in one slab, so
//! insertion and cancellation are O(1) and a cancelled timer (a transaction
//! that completed long before its Timer B) costs nothing afterwards: at
//! 200,000 calls/s lazily cancelled 32 s timers would otherwise pile up to
//! hundreds of megabytes. Occupancy bitmaps make [`Wheel::next_deadline`]
//! and idle jumps cheap.

use std::time::{Duration, Instant};

const SLOTS: usize = 1024;
const BITS: u32 = 10;
const MASK: u64 = SLOTS as u64 - 1;
const WORDS: usize = SLOTS / 64;
const LEVELS: usize = 3;
const FAR: u16 = 3;
const NIL: u32 = u32::MAX;

/// Handle of a scheduled timer, for [`Wheel::cancel`]. Stale handles (of
/// timers that fired or were cancelled) are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId(u64);

impl TimerId {
    /// A handle that refers to nothing.
    pub const NONE: TimerId = TimerId(u64::MAX);
}

impl Default for TimerId {
    fn default() -> Self {
        TimerId::NONE
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    tick: u64,
    data: u64,
    prev: u32,
    next: u32,
    generation: u32,
    level: u16,
    slot: u16,
    live: bool,
}

#[derive(Debug)]
struct Level {
    heads: Vec<u32>,
    bits: [u64; WORDS],
}

impl Level {
    fn new() -> Self {
        Level {
            heads: vec![NIL; SLOTS],
            bits: [0; WORDS],
        }
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
    levels: [Level; LEVELS],
    far: u32,
    nodes: Vec<Node>,
    free: Vec<u32>,
    len: usize,
}

impl Wheel {
    /// An empty wheel whose tick 0 is `now`.
    pub fn new(now: Instant) -> Self {
        Wheel {
            epoch: now,
            cur: 0,
            levels: [Level::new(), Level::new(), Level::new()],
            far: NIL,
            nodes: Vec::new(),
            free: Vec::new(),
            len: 0,
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

    /// Timers scheduled and not yet fired or cancelled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held by the node slab.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.free.capacity() * 4
    }

    /// Schedule `data` to fire at `deadline` (rounded up to the next tick;
    /// never earlier than the next [`Wheel::advance`]).
    pub fn insert(&mut self, deadline: Instant, data: u64) -> TimerId {
        let tick = self.tick_ceil(deadline).max(self.cur + 1);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.nodes.push(Node {
                    tick: 0,
                    data: 0,
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    level: 0,
                    slot: 0,
                    live: false,
                });
                (self.nodes.len() - 1) as u32
            }
        };
        let n = &mut self.nodes[idx as usize];
        n.tick = tick;
        n.data = data;
        n.live = true;
        let generation = n.generation;
        self.len += 1;
        self.place(idx);
        TimerId((u64::from(generation) << 32) | u64::from(idx))
    }

    /// Cancel a timer; no-op if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) {
        if id == TimerId::NONE {
            return;
        }
        let idx = id.0 as u32;
        let generation = (id.0 >> 32) as u32;
        match self.nodes.get(idx as usize) {
            Some(n) if n.live && n.generation == generation => {}
            _ => return,
        }
        self.unlink(idx);
        self.release(idx);
    }

    fn release(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.live = false;
        n.generation = n.generation.wrapping_add(1);
        self.free.push(idx);
        self.len -= 1;
    }

    fn head_mut(&mut self, level: u16, slot: u16) -> &mut u32 {
        if level == FAR {
            &mut self.far
        } else {
            &mut self.levels[level as usize].heads[slot as usize]
        }
    }

    fn unlink(&mut self, idx: u32) {
        let Node {
            prev,
            next,
            level,
            slot,
            ..
        } = self.nodes[idx as usize];
        if prev == NIL {
            *self.head_mut(level, slot) = next;
            if next == NIL && level != FAR {
                let l = &mut self.levels[level as usize];
                l.bits[slot as usize / 64] &= !(1 << (slot % 64));
            }
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, idx: u32, level: u16, slot: u16) {
        let head = *self.head_mut(level, slot);
        {
            let n = &mut self.nodes[idx as usize];
            n.prev = NIL;
            n.next = head;
            n.level = level;
            n.slot = slot;
        }
        if head != NIL {
            self.nodes[head as usize].prev = idx;
        }
        *self.head_mut(level, slot) = idx;
        if level != FAR {
            let l = &mut self.levels[level as usize];
            l.bits[slot as usize / 64] |= 1 << (slot % 64);
        }
    }

    fn place(&mut self, idx: u32) {
        let tick = self.nodes[idx as usize].tick;
        if tick - self.cur <= MASK {
            self.push_front(idx, 0, (tick & MASK) as u16);
            return;
        }
        for level in 1..LEVELS as u32 {
            let shift = BITS * level;
            if (tick >> shift) - (self.cur >> shift) <= MASK {
                self.push_front(idx, level as u16, ((tick >> shift) & MASK) as u16);
                return;
            }
        }
        self.push_front(idx, FAR, 0);
    }

    /// Re-place every node of one list (cascade).
    fn cascade(&mut self, level: u16, slot: u16) {
        let mut i = std::mem::replace(self.head_mut(level, slot), NIL);
        if level != FAR {
            let l = &mut self.levels[level as usize];
            l.bits[slot as usize / 64] &= !(1 << (slot % 64));
        }
        while i != NIL {
            let next = self.nodes[i as usize].next;
            self.place(i);
            i = next;
        }
    }

    /// Fire everything due at or before `now`, appending payloads to `out`
    /// in deadline order.
    pub fn advance(&mut self, now: Instant, out: &mut Vec<u64>) {
        let target = self.tick_floor(now);
        while self.cur < target {
            if self.levels[0].empty() {
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
                if self.cur & ((1 << (2 * BITS)) - 1) == 0 {
                    if self.cur & ((1 << (3 * BITS)) - 1) == 0 {
                        self.cascade(FAR, 0);
                    }
                    self.cascade(2, ((self.cur >> (2 * BITS)) & MASK) as u16);
                }
                self.cascade(1, ((self.cur >> BITS) & MASK) as u16);
            }
            let slot = (self.cur & MASK) as u16;
            let mut i = std::mem::replace(&mut self.levels[0].heads[slot as usize], NIL);
            if i == NIL {
                continue;
            }
            self.levels[0].bits[slot as usize / 64] &= !(1 << (slot % 64));
            let start = out.len();
            while i != NIL {
                let n = self.nodes[i as usize];
                if n.tick <= self.cur {
                    out.push(n.data);
                    self.release(i);
                } else {
                    self.place(i);
                }
                i = n.next;
            }
            // Lists are LIFO; fire in insertion order.
            out[start..].reverse();
        }
    }

    /// The earliest tick worth waking up for: exact for level 0, the start of
    /// the block for the upper levels (entries move down then).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut best: Option<u64> = None;
        let from = ((self.cur + 1) & MASK) as usize;
        if let Some(d) = self.levels[0].next_set(from) {
            best = Some(self.cur + 1 + d as u64);
        }
        for level in 1..LEVELS as u32 {
            let shift = BITS * level;
            let block = self.cur >> shift;
            let from = ((block + 1) & MASK) as usize;
            if let Some(d) = self.levels[level as usize].next_set(from) {
                let t = (block + 1 + d as u64) << shift;
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        if self.far != NIL {
            let t = ((self.cur >> (3 * BITS)) + 1) << (3 * BITS);
            best = Some(best.map_or(t, |b| b.min(t)));
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
        for (i, m) in [
            5u64,
            1,
            1500,
            3_000_000,
            64_000,
            999,
            1024,
            1025,
            2_000_000_000,
        ]
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
        out.clear();
        w.advance(ms(2_000_000_000), &mut out);
        assert_eq!(out, vec![8]);
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

    #[test]
    fn cancel_is_exact_and_stale_handles_are_harmless() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let a = w.insert(t0 + Duration::from_secs(32), 1);
        let b = w.insert(t0 + Duration::from_secs(32), 2);
        w.cancel(a);
        w.cancel(a);
        assert_eq!(w.len(), 1);
        let mut out = Vec::new();
        w.advance(t0 + Duration::from_secs(40), &mut out);
        assert_eq!(out, vec![2]);
        w.cancel(b); // fired already
        let c = w.insert(t0 + Duration::from_secs(50), 3); // reuses a node
        w.cancel(a);
        assert_eq!(w.len(), 1);
        w.cancel(c);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    proptest! {
        /// Oracle: a list. Every live entry fires exactly once, not before its
        /// deadline and by the advance that passes it; cancelled ones never.
        #[test]
        fn matches_oracle(
            deadlines in proptest::collection::vec(0u64..5_000_000, 1..60),
            cancel in proptest::collection::vec(any::<bool>(), 60),
            steps in proptest::collection::vec(1u64..400_000, 1..60),
        ) {
            let t0 = Instant::now();
            let mut w = Wheel::new(t0);
            let ids: Vec<TimerId> = deadlines.iter().enumerate()
                .map(|(i, d)| w.insert(t0 + Duration::from_millis(*d), i as u64)).collect();
            for (i, id) in ids.iter().enumerate() {
                if cancel[i] { w.cancel(*id); }
            }
            let mut now = 0u64;
            let mut fired = vec![false; deadlines.len()];
            let mut out = Vec::new();
            for s in steps.iter().chain(std::iter::once(&6_000_000)) {
                now += s;
                if let Some(nd) = w.next_deadline() {
                    let earliest = deadlines.iter().enumerate()
                        .filter(|(i, _)| !fired[*i] && !cancel[*i]).map(|(_, d)| *d).min();
                    if let Some(e) = earliest {
                        prop_assert!(nd <= t0 + Duration::from_millis(e.max(1)));
                    }
                }
                out.clear();
                w.advance(t0 + Duration::from_millis(now), &mut out);
                for &i in &out {
                    let i = i as usize;
                    prop_assert!(!fired[i] && !cancel[i]);
                    prop_assert!(deadlines[i] <= now);
                    fired[i] = true;
                }
                for (i, d) in deadlines.iter().enumerate() {
                    if *d <= now && !cancel[i] { prop_assert!(fired[i], "entry {} due {} not fired at {}", i, d, now); }
                }
            }
            prop_assert!(w.is_empty());
        }
    }
}
