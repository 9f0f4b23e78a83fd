//! sipstorm: a high-performance SIP load generator and benchmark harness.
//!
//! Layers, with one-way dependencies (see README "Design"):
//! `sip` → `auth` → `engine` → `transport` → `run`; `schedule`, `stats` and
//! `report` have no I/O and no protocol knowledge.

pub mod auth;
pub mod config;
pub mod engine;
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
