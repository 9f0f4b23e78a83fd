//! Splitting one test across N instances (`--segment I/N`) and one
//! instance across its workers.
//!
//! Every split here is deterministic and exact: the shares of a count sum to
//! the count, the user ranges are disjoint and cover every user, and the rate
//! shares sum to the rate. N copies started by any launcher (a shell loop,
//! a Kubernetes Indexed Job with `--segment $JOB_COMPLETION_INDEX/N`) then
//! run one test between them, and `sipstorm merge` adds their reports up.

use std::ops::Range;
use std::str::FromStr;

/// Instance `index` of `count`, zero-based (`0/4` … `3/4`) so that a
/// Kubernetes `JOB_COMPLETION_INDEX` can be passed as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

/// Why a `--segment` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("--segment: expected I/N (e.g. 0/4), got {0:?}")]
    Syntax(String),
    #[error("--segment: N must be at least 1")]
    ZeroCount,
    #[error("--segment: index {index} is out of range for {count} segments (use 0..{count})")]
    IndexOutOfRange { index: u32, count: u32 },
}

impl Segment {
    /// The whole test in one instance.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// This instance's share of `total` attempts: the first `total % N`
    /// segments take one more, so the shares sum to `total`.
    pub fn share_count(&self, total: u64) -> u64 {
        share_count(total, self.index as usize, self.count as usize)
    }

    /// This instance's share of an attempt rate (per second).
    pub fn share_rate(&self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }

    /// This instance's users: a contiguous block, disjoint from every other
    /// segment's.
    pub fn user_range(&self, users: usize) -> Range<usize> {
        share_range(users, self.index as usize, self.count as usize)
    }
}

impl FromStr for Segment {
    type Err = SegmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || SegmentError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index: u32 = i.trim().parse().map_err(|_| syntax())?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 {
            return Err(SegmentError::ZeroCount);
        }
        if index >= count {
            return Err(SegmentError::IndexOutOfRange { index, count });
        }
        Ok(Segment { index, count })
    }
}

/// Part `index` of `parts` of `total` units, sized `total / parts` plus one
/// for the first `total % parts` parts.
pub fn share_count(total: u64, index: usize, parts: usize) -> u64 {
    let parts = parts.max(1) as u64;
    let index = index as u64;
    total / parts + u64::from(index < total % parts)
}

/// The contiguous block `index` of `parts` over `0..len`; the blocks of all
/// parts tile `0..len` exactly.
pub fn share_range(len: usize, index: usize, parts: usize) -> Range<usize> {
    let parts = parts.max(1);
    let start = (len as u128 * index as u128 / parts as u128) as usize;
    let end = (len as u128 * (index as u128 + 1) / parts as u128) as usize;
    start..end.min(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Expected = Result<(u32, u32), &'static str>;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Expected)] = &[
            ("0/1", Ok((0, 1))),
            ("3/4", Ok((3, 4))),
            (" 1 / 2 ", Ok((1, 2))),
            ("4/4", Err("index 4 is out of range for 4")),
            ("0/0", Err("at least 1")),
            ("1", Err("expected I/N")),
            ("a/2", Err("expected I/N")),
            ("-1/2", Err("expected I/N")),
        ];
        for (s, want) in cases {
            match (want, s.parse::<Segment>()) {
                (Ok((i, n)), Ok(seg)) => assert_eq!((seg.index, seg.count), (*i, *n)),
                (Err(m), Err(e)) => assert!(e.to_string().contains(m), "{s}: {e}"),
                (w, g) => panic!("{s}: want {w:?} got {g:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn shares_are_exact(total in 0u64..1_000_000, users in 0usize..100_000, n in 1u32..64) {
            let segs: Vec<Segment> = (0..n).map(|index| Segment { index, count: n }).collect();
            let sum: u64 = segs.iter().map(|s| s.share_count(total)).sum();
            prop_assert_eq!(sum, total);
            let mut next = 0;
            for s in &segs {
                let r = s.user_range(users);
                prop_assert_eq!(r.start, next, "ranges must tile without gaps or overlap");
                next = r.end;
            }
            prop_assert_eq!(next, users);
            let rate: f64 = segs.iter().map(|s| s.share_rate(1234.5)).sum();
            prop_assert!((rate - 1234.5).abs() < 1e-6);
        }
    }
}
