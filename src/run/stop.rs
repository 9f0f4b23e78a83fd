//! Stopping a run: a shared level that workers read once per loop turn, and
//! the SIGINT/SIGTERM handling that raises it.
//!
//! Signals are installed once per process (`main` calls
//! [`StopFlag::install_signals`]); every command then reads the same flag, so
//! a `search` of many steps does not start a signal thread per step and a
//! signal during any step stops the whole search.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::RunError;

/// Stop levels shared by the signal thread and the workers.
///
/// A flag may follow a parent ([`StopFlag::child`]): it reads the higher of
/// its own level and the parent's, and raising it leaves the parent alone.
/// One run's workers (or the embedded server's) then stop on a signal to
/// the process without a failed run stopping the process.
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    own: Arc<AtomicUsize>,
    parent: Option<Arc<AtomicUsize>>,
}

impl StopFlag {
    pub const RUN: usize = 0;
    /// Stop starting attempts, drain for a bounded time.
    pub const DRAIN: usize = 1;
    /// Stop now, keep what was measured.
    pub const NOW: usize = 2;

    pub fn new() -> StopFlag {
        StopFlag::default()
    }
    pub fn level(&self) -> usize {
        let own = self.own.load(Ordering::Relaxed);
        self.parent
            .as_ref()
            .map_or(own, |p| own.max(p.load(Ordering::Relaxed)))
    }
    /// True once anything asked to stop.
    pub fn stopping(&self) -> bool {
        self.level() > StopFlag::RUN
    }
    /// Raise this flag's own level by one (each signal does this).
    pub fn escalate(&self) {
        self.own.fetch_add(1, Ordering::Relaxed);
    }
    /// Raise this flag's own level to at least `level`.
    pub fn set(&self, level: usize) {
        self.own.fetch_max(level, Ordering::Relaxed);
    }

    /// A flag that follows this one but can be raised on its own.
    pub fn child(&self) -> StopFlag {
        StopFlag {
            own: Arc::default(),
            parent: Some(self.own.clone()),
        }
    }

    /// Install SIGINT/SIGTERM handling for the whole process: one thread
    /// that escalates this flag on each signal. The first drains, the second
    /// stops at once; both still end with the report written. Call once,
    /// from `main`.
    pub fn install_signals(&self) -> Result<(), RunError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(RunError::Signals)?;
        let flag = self.clone();
        std::thread::Builder::new()
            .name("sipstorm-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    flag.escalate();
                    if flag.level() == StopFlag::DRAIN {
                        say!(
                            "\nsipstorm: stopping: draining in-flight attempts (signal again to stop now)"
                        );
                    }
                }
            })
            .map_err(RunError::Thread)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_follows_the_parent_but_not_back() {
        let process = StopFlag::new();
        let a = process.child();
        let b = process.child();
        a.set(StopFlag::NOW);
        assert_eq!(
            (a.level(), b.level(), process.level()),
            (StopFlag::NOW, 0, 0)
        );
        process.escalate();
        assert_eq!(b.level(), StopFlag::DRAIN);
        assert_eq!(a.level(), StopFlag::NOW);
        assert!(process.stopping());
    }
}
