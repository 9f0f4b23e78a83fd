//! Sans-IO SIP engine: transactions (RFC 3261 §17), timers, registration and
//! call flows, UAC and UAS. No sockets and no clock inside: time and bytes
//! come in, messages on [`Flow`]s, timer deadlines and events come out (the
//! quinn-proto shape).
//!
//! One [`Endpoint`] per worker holds all of that worker's state:
//!
//! - **Transactions** in a slab, found through `HashMap<u64, u32>` keyed by a
//!   seeded hash of branch + method (client, §17.1.3) or branch + sent-by +
//!   method (server, §17.2.3). Each keeps its last message for
//!   retransmission. Waiting states shrink to absorber records (one map
//!   entry and a FIFO slot): server non-INVITE Completed (Timer J: the
//!   final response is kept byte for byte in a bounded ring, and only the
//!   same request from the same peer gets it again), server INVITE
//!   Confirmed (Timer I) and client INVITE Completed (Timer D: the ACK is
//!   rebuilt from the retransmitted response). Client
//!   non-INVITE Completed (Timer K) needs nothing: a late response carrying
//!   our Via is counted as a duplicate. Over a reliable flow (TCP, TLS, WS,
//!   WSS) no request and no non-2xx response is retransmitted (no Timer A,
//!   E or G) and no absorber record is kept (D, I, J and K are zero);
//!   B, F, H and L still run at 64·T1, and a 2xx is retransmitted until its
//!   ACK on every transport (§13.3.1.4).
//! - **Sessions** (UAC calls, registrations, pings; UAS calls) in a slab,
//!   found by a hash of Call-ID + local tag. Identifiers we generate are
//!   64-bit (`hex16`), so a session stores no strings except the dialog's
//!   remote tag, target and route set, kept in a per-slot buffer whose
//!   capacity is reused. `Sess` is about 260 bytes (at most 320, checked).
//! - **Timers** in a hashed hierarchical wheel (`wheel::Wheel`, 1 ms ticks,
//!   1024 + 1024 slots and an overflow heap) with lazy cancellation by
//!   generation; [`SansIo::poll_timeout`] is the next occupied slot.
//! - **Output** in a queue of pooled buffers; [`SansIo::poll_transmit`] swaps
//!   the driver's buffer with ours, so nothing is copied on the way out.
//!
//! Modules by layer: `endpoint` (the struct, its `Role`,
//! identifiers and keys, buffers and output, the `SansIo` entry points),
//! `state` (state types), `timers` (timer kinds, arming, dispatch, absorber
//! lifetimes), `txn` (RFC 3261 §17 transactions), `wire` (constant header
//! fragments, addresses), then the flows: `uac/` (`build`: requests;
//! `register`: REGISTER with digest, 401/407, `stale=true`, 423, refresh,
//! unregister; `call`: INVITE/ACK/BYE with route set, 407 re-INVITE, CANCEL
//! after a provisional, 3xx, re-ACK of retransmitted 2xx; `options`;
//! `mixed`), `uas/` (dispatch and stateless answers 400/405/481/483/501/505;
//! `invite`: answering UAS with ring/busy/no-answer, CANCEL → 200 + 487;
//! `registrar`; `auth`), `proxy` (the stateless proxy `mixed` goes through
//! when the target is the built-in server). [`sim`] steps endpoints over a
//! simulated lossy network in virtual time.

use std::time::Instant;

use crate::flow::Flow;

/// The contract between a sans-IO protocol endpoint and the I/O loop that
/// drives it (io_uring worker, epoll fallback, or a virtual-time simulation).
///
/// The driver calls `handle` for every datagram and `handle_timeout` when the
/// deadline from `poll_timeout` has passed, then drains `poll_transmit` and
/// `poll_event` until they return `None`.
pub trait SansIo {
    /// What the endpoint reports to its driver (metrics, outcomes).
    type Event;

    /// One message received on `from` at time `now` (a whole datagram, or
    /// one framed message of a stream connection).
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]);

    /// Fire every timer whose deadline is at or before `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Write the next message to send into `buf` (cleared by the callee) and
    /// return the flow it goes on, or `None` when nothing is queued.
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow>;

    /// The earliest pending timer deadline, if any.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the driver, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
}

mod config;
mod endpoint;
mod event;
mod proxy;
pub mod scenario;
mod state;
pub mod template;
pub mod throttle;
mod timers;
mod txn;
mod uac;
mod uas;
mod users;
pub(crate) mod util;
pub(crate) mod wheel;
mod wire;

pub use endpoint::Endpoint;
pub use state::StateSizes;

pub use config::{
    AorPolicy, ClientConfig, ConfigError, ListUser, Party, RangePattern, Scenario, ServerConfig,
    ServerSecret, Timers, UserSource,
};
pub use event::{Counters, Event, MethodKind, Outcome};
/// Virtual-time simulation of endpoints over a lossy network: for tests
/// and the `testing` feature only.
#[cfg(any(test, feature = "testing"))]
pub mod sim;
#[cfg(test)]
mod sim_tests;
