//! sipstorm: a high-performance SIP load generator and benchmark harness.
//!
//! Layers, with one-way dependencies (see README "Design" and
//! `docs/architecture.md`): `engine` builds on `sip` and `auth` and never
//! reads a clock or a socket; `transport` moves bytes and knows no SIP;
//! `run` is the only place where the two meet. `schedule`, `stats` and
//! `report` have no protocol knowledge; `flow` (transport kind, peer,
//! connection) and `dist` (durations, delay distributions, the PRNG) are
//! leaves every layer may use. Only `transport` may use `unsafe`.

#![deny(unsafe_code)]

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
