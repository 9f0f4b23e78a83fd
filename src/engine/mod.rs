//! Sans-IO SIP engine: transactions (RFC 3261 §17), timers, registration and
//! call flows, UAC and UAS. No sockets and no clock inside: time and bytes
//! come in, datagrams, timer deadlines and events come out (the quinn-proto
//! shape).

use std::net::SocketAddr;
use std::time::Instant;

/// The contract between a sans-IO protocol endpoint and the I/O loop that
/// drives it (io_uring worker, epoll fallback, or a virtual-time simulation).
///
/// The driver calls `handle` for every datagram and `handle_timeout` when the
/// deadline from `poll_timeout` has passed, then drains `poll_transmit` and
/// `poll_event` until they return `None`.
pub trait SansIo {
    /// What the endpoint reports to its driver (metrics, outcomes).
    type Event;

    /// One datagram received from `from` at time `now`.
    fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]);

    /// Fire every timer whose deadline is at or before `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Write the next datagram to send into `buf` (cleared by the callee) and
    /// return its destination, or `None` when nothing is queued.
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr>;

    /// The earliest pending timer deadline, if any.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the driver, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
}

mod config;
mod endpoint;
mod event;
mod proxy;
mod uac;
mod uas;
pub mod util;
pub mod wheel;

pub use endpoint::{Endpoint, StateSizes};

pub use config::{ClientConfig, ConfigError, Scenario, ServerConfig, Timers, UserSource};
pub use event::{Counters, Event, MethodKind, Outcome};
pub mod sim;
#[cfg(test)]
mod sim_tests;
