//! sipstorm: a high-performance SIP load generator and benchmark harness.
//!
//! Layers, with one-way dependencies (see README "Design"):
//! `sip` → `auth` → `engine` → `transport` → `run`; `schedule`, `stats` and
//! `report` have no I/O and no protocol knowledge; `dist` (durations, delay
//! distributions, the PRNG) is a leaf every layer may use.

/// `eprintln!` that ignores write errors: a closed or broken stderr pipe
/// (Rust ignores SIGPIPE, so writes fail with EPIPE) must never kill a run
/// or `serve`.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

pub mod auth;
pub mod config;
pub mod dist;
pub mod engine;
pub mod flow;
pub mod profile;
pub mod report;
pub mod run;
pub mod schedule;
pub mod search;
pub mod segment;
pub mod sip;
pub mod stats;
pub mod transport;
pub mod users;
