//! The orchestrator: everything between a validated configuration and the
//! report files.
//!
//! - [`plan`]: the offered load, decided once ([`RunPlan::resolve`]).
//! - [`fleet`]: sockets, pinned worker threads, joining them.
//! - [`worker`]: the transport `Worker`s that drive an endpoint: pacer,
//!   phases, interval snapshots.
//! - [`sip_driver`]: the SIP engine behind the worker traits, its events
//!   and counters mapped to statistics.
//! - [`progress`]: the aggregator thread and the progress lines.
//! - [`stop`]: the stop flag and signal handling (installed once, in
//!   `main`).
//! - [`commands`]: `run`, `serve`, `report`, `compare`, `merge`.
//!
//! Nothing here touches a message. Per message work happens inside a
//! worker's endpoint; per attempt work is one pacer poll and one event
//! mapped to statistics.

pub mod commands;
pub mod fleet;
pub mod plan;
pub mod progress;
pub mod sip_driver;
pub mod stop;
pub mod worker;

pub use commands::{
    RunOutcome, compare_command, merge_command, process_usage, report_command, run_command,
    serve_command,
};
pub use plan::RunPlan;
pub use stop::StopFlag;

use crate::transport::TransportError;

/// Errors that end a run before it produces numbers (exit code 3, or 2 for
/// [`RunError::Usage`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker thread panicked")]
    WorkerPanicked,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot write the report: {0}")]
    Report(String),
    /// The operating system's random source failed (the server's secret).
    #[error("cannot read the operating system's random source: {0}")]
    Random(String),
    /// A usage or configuration problem found late (exit code 2).
    #[error("{0}")]
    Usage(String),
}
