//! Small allocation-free building blocks: a seeded byte hash, an identity
//! hasher for maps keyed by those hashes, a splitmix64 generator for
//! identifiers and ratios, hex formatting, and a slab that keeps freed
//! entries (and their buffers' capacity) for reuse.

use std::hash::{BuildHasherDefault, Hasher};

/// The 128-bit product of `a` and `b` folded to 64 bits (high XOR low): the
/// mixing step of wyhash.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;

/// A seeded 64-bit hash of a byte string (wyhash-style folded multiplies,
/// 8 bytes per step). Seeded so a peer cannot aim Call-IDs at one bucket.
#[inline]
pub fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    let mut h = seed ^ P0 ^ (b.len() as u64).wrapping_mul(P1);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold_mul(h ^ u64::from_le_bytes(w), P1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = fold_mul(h ^ u64::from_le_bytes(w) ^ P0, P1);
    }
    fold_mul(h, P0 ^ seed)
}

/// Mix two hashes into one (order matters).
#[inline]
pub fn mix(a: u64, b: u64) -> u64 {
    fold_mul(a ^ P0, b ^ P1)
}

/// A `Hasher` that passes an already well-mixed `u64` key through.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else in anyway.
        self.0 = hash_bytes(self.0, bytes);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// Build-hasher for `HashMap<u64, _, IdHash>`.
pub type IdHash = BuildHasherDefault<IdHasher>;

/// The engine draws identifiers, ratios and ring delays from the crate's one
/// generator.
pub use crate::dist::Rng;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `v` as 16 lowercase hex digits.
#[inline]
pub fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Decimal digits of `v` into `buf`, returning the used tail.
#[inline]
pub fn dec(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Entries are never dropped on `remove`: a freed slot keeps its value (and
/// whatever capacity its buffers grew to) for the next `insert`, which hands
/// it back to be reset. Indices are stable; `generation` tells a reused slot from the
/// one a stale timer or queued datagram referred to.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<SlabEntry<T>>,
    free: Vec<u32>,
    live: usize,
}

#[derive(Debug)]
struct SlabEntry<T> {
    generation: u32,
    live: bool,
    val: T,
}

impl<T: Default> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T: Default> Slab<T> {
    /// Allocate a slot; returns (index, generation) and the value, which may
    /// be a recycled one the caller must reset.
    pub fn insert(&mut self) -> (u32, u32, &mut T) {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            let e = &mut self.entries[i as usize];
            e.live = true;
            return (i, e.generation, &mut e.val);
        }
        let i = self.entries.len() as u32;
        self.entries.push(SlabEntry {
            generation: 0,
            live: true,
            val: T::default(),
        });
        let e = &mut self.entries[i as usize];
        (i, 0, &mut e.val)
    }

    /// Free slot `i` (no-op if already free); its generation changes.
    pub fn remove(&mut self, i: u32) {
        if let Some(e) = self.entries.get_mut(i as usize)
            && e.live
        {
            e.live = false;
            e.generation = e.generation.wrapping_add(1);
            self.free.push(i);
            self.live -= 1;
        }
    }

    /// The live entry at `i`.
    #[inline]
    pub fn get(&self, i: u32) -> Option<&T> {
        match self.entries.get(i as usize) {
            Some(e) if e.live => Some(&e.val),
            _ => None,
        }
    }

    /// The live entry at `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        match self.entries.get_mut(i as usize) {
            Some(e) if e.live => Some(&mut e.val),
            _ => None,
        }
    }

    /// The live entry at `i` if its generation is still `generation`.
    #[cfg(test)]
    pub fn get_gen_mut(&mut self, i: u32, generation: u32) -> Option<&mut T> {
        match self.entries.get_mut(i as usize) {
            Some(e) if e.live && e.generation == generation => Some(&mut e.val),
            _ => None,
        }
    }

    /// Generation of slot `i`.
    #[inline]
    pub fn generation(&self, i: u32) -> u32 {
        self.entries.get(i as usize).map_or(0, |e| e.generation)
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Slots allocated so far (live or free).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Indices of live entries.
    pub fn live_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.live)
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    #[test]
    fn hex_and_dec() {
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        let mut b = [0u8; 20];
        assert_eq!(dec(0, &mut b), b"0");
        assert_eq!(dec(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn hash_differs_by_seed_and_tail() {
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(2, b"abc"));
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(1, b"abc\0"));
        assert_ne!(hash_bytes(1, b""), hash_bytes(1, b"\0"));
    }

    #[test]
    fn slab_reuses_and_bumps_gen() {
        let mut s: Slab<Vec<u8>> = Slab::default();
        let (a, ga, v) = s.insert();
        v.extend_from_slice(b"hello");
        s.remove(a);
        assert!(s.get(a).is_none());
        let (b, gb, v) = s.insert();
        assert_eq!(a, b);
        assert_ne!(ga, gb);
        assert!(v.capacity() >= 5, "capacity kept for reuse");
        assert!(s.get_gen_mut(a, ga).is_none());
        assert_eq!(s.len(), 1);
    }

    proptest! {
        #[test]
        fn slab_matches_naive(ops in proptest::collection::vec((any::<bool>(), 0u32..16), 0..200)) {
            let mut s: Slab<u32> = Slab::default();
            let mut live = std::collections::BTreeSet::new();
            for (ins, i) in ops {
                if ins {
                    let (idx, _, _) = s.insert();
                    prop_assert!(live.insert(idx));
                } else {
                    s.remove(i);
                    live.remove(&i);
                }
                prop_assert_eq!(s.len(), live.len());
            }
            prop_assert_eq!(s.live_indices().collect::<Vec<_>>(), live.into_iter().collect::<Vec<_>>());
        }
        #[test]
        fn rng_chance_bounds(seed in any::<u64>()) {
            let mut r = Rng::new(seed);
            prop_assert!(!r.chance(0.0));
            prop_assert!(r.chance(1.0));
            let f = r.next_f64();
            prop_assert!((0.0..1.0).contains(&f));
        }
    }
}

/// Replay guard for digest nonce counts (RFC 7616 §3.4.5, RFC 2617 §3.2.2:
/// with `qop`, the server should refuse a request whose `nc` it has already
/// seen for that nonce). Remembers the highest `nc` per nonce in first-use
/// order, bounded two ways so a peer cannot make the registrar hold more:
///
/// - an entry is dropped once the nonce lifetime has passed since its
///   first use: the nonce was minted no later than that use, so it is
///   stale by then and never accepted again anyway;
/// - beyond `cap` the oldest entry is evicted and its mint time raises a
///   watermark: a nonce minted at or before the watermark with no entry
///   might have been evicted, so it is refused too (the client gets a
///   fresh nonce with `stale=true` and carries on).
///
/// Both orders are by the guard's own clock (`now_s` at first use), never
/// by the time a nonce claims: a mint time is clamped to `now_s`, so one
/// nonce with a huge time stamp can neither hold up the expiry of every
/// entry behind it nor lift the watermark above the present (issue 13).
#[derive(Debug)]
pub struct NcGuard {
    seen: std::collections::HashMap<u64, u32, IdHash>,
    /// (key, first use, mint time clamped to the first use).
    order: std::collections::VecDeque<(u64, u64, u64)>,
    cap: usize,
    watermark: u64,
}

/// What [`NcGuard::check`] decided about one nonce count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// The first use of this nonce: the answer to the challenge that
    /// carried it.
    First,
    /// A higher count on a nonce already in use (a client reusing it).
    Later,
    /// A count already seen, or a nonce that may have been evicted: refuse.
    Replay,
}

impl NcGuard {
    /// A guard that remembers at most `cap` nonces.
    pub fn new(cap: usize) -> Self {
        NcGuard {
            seen: Default::default(),
            order: Default::default(),
            cap: cap.max(1),
            watermark: 0,
        }
    }

    /// Whether `nc` is acceptable for the nonce with hash `key`, minted at
    /// `mint_s` (seconds); records it when it is. `now_s` and `lifetime_s`
    /// drop entries of nonces that can only be stale now.
    pub fn check(
        &mut self,
        key: u64,
        mint_s: u64,
        nc: u32,
        now_s: u64,
        lifetime_s: u64,
    ) -> NcVerdict {
        while let Some(&(k, used, _)) = self.order.front() {
            if used.saturating_add(lifetime_s) >= now_s {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&k);
        }
        if let Some(last) = self.seen.get_mut(&key) {
            if nc > *last {
                *last = nc;
                return NcVerdict::Later;
            }
            return NcVerdict::Replay;
        }
        let mint_s = mint_s.min(now_s);
        if self.watermark != 0 && mint_s <= self.watermark {
            return NcVerdict::Replay;
        }
        self.seen.insert(key, nc);
        self.order.push_back((key, now_s, mint_s));
        while self.seen.len() > self.cap {
            let Some((k, _, m)) = self.order.pop_front() else {
                break;
            };
            self.seen.remove(&k);
            self.watermark = self.watermark.max(m);
        }
        NcVerdict::First
    }

    /// Nonces remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Heap bytes held (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.seen.capacity() * (8 + 4 + 1) + self.order.capacity() * 24
    }
}

#[cfg(test)]
mod nc_tests {
    use super::{NcGuard, NcVerdict};
    use NcVerdict::{First, Later, Replay};

    #[test]
    fn nonce_counts_must_increase() {
        let mut g = NcGuard::new(8);
        // (key, nc, now, verdict)
        for (k, nc, now, want) in [
            (1, 1, 100, First),
            (1, 1, 100, Replay),
            (1, 2, 101, Later),
            (1, 1, 101, Replay),
            (2, 1, 101, First),
        ] {
            assert_eq!(g.check(k, 100, nc, now, 300), want, "key {k} nc {nc}");
        }
    }

    #[test]
    fn bounded_and_evicted_nonces_are_refused() {
        let mut g = NcGuard::new(4);
        for k in 0..10u64 {
            assert_eq!(g.check(k, 100 + k, 1, 100 + k, 300), First);
            assert!(g.len() <= 4);
        }
        // Key 0 was evicted: no record, minted before the watermark.
        assert_eq!(g.check(0, 100, 2, 120, 300), Replay);
        // A nonce minted after the watermark is new.
        assert_eq!(g.check(99, 200, 1, 200, 300), First);
    }

    #[test]
    fn entries_expire_with_the_nonce_lifetime() {
        let mut g = NcGuard::new(1000);
        for k in 0..100u64 {
            assert_eq!(g.check(k, 10, 1, 10, 30), First);
        }
        assert_eq!(g.check(500, 50, 1, 50, 30), First);
        assert_eq!(g.len(), 1);
    }

    /// Issue 13: one nonce claiming a huge mint time (a forged or
    /// future-dated one that got this far) must not stop the expiry of the
    /// entries behind it, nor raise the eviction watermark above the
    /// present for every later client. Before, both happened.
    #[test]
    fn a_huge_mint_time_breaks_nothing_for_others() {
        for forged in [u64::MAX, 1 << 40, 10_000] {
            let mut g = NcGuard::new(4);
            assert_eq!(g.check(7, forged, 1, 100, 30), First, "{forged}");
            for k in 0..3u64 {
                assert_eq!(g.check(k, 100, 1, 100, 30), First, "{forged}");
            }
            // Everything, the forged entry included, expires with the lifetime.
            assert_eq!(g.check(50, 200, 1, 200, 30), First, "{forged}");
            assert_eq!(g.len(), 1, "{forged}: entries stuck behind the forged one");
            // Eviction of the forged entry keeps the watermark in the past:
            // nonces minted from now on are still accepted.
            let mut g = NcGuard::new(1);
            assert_eq!(g.check(7, forged, 1, 100, 30), First);
            assert_eq!(g.check(8, 100, 1, 100, 30), First);
            assert_eq!(
                g.check(9, 101, 1, 101, 30),
                First,
                "{forged}: watermark raised"
            );
        }
    }
}
