//! One worker's connections: the table stream transports (TCP, TLS,
//! WebSocket) live in (`stream` wires it to sockets).
//!
//! Each worker owns its table; no connection and no TLS state crosses
//! threads. A connection is a slab entry named by a [`ConnId`], the id the
//! engine sees in a [`Flow`], so a response goes back on the connection its
//! request came in on (RFC 3261 §18.2.2). Ids carry a generation: once an
//! entry is removed, its id never names another connection, so a
//! transaction holding a stale id finds nothing instead of someone else's
//! connection.
//!
//! Protocols are layers of bytes over an entry, driven inside the worker:
//!
//! - wire bytes the ring received for a connection go to its layer:
//!   plain TCP appends them to [`Conn::read`]; TLS feeds them to the
//!   layer's rustls `ClientConnection`/`ServerConnection` with `read_tls`
//!   (a ring buffer slice is an `io::Read`), then `process_new_packets`,
//!   and appends the plaintext its `reader()` yields; WebSocket unmasks
//!   frames into the same buffer;
//! - [`Conn::read`] holds plaintext not yet framed into a whole SIP
//!   message (Content-Length framing for TCP/TLS, one message per
//!   WebSocket message); framed messages go to `Worker::handle` and are
//!   consumed from the front;
//! - a message to send passes down the layers (WebSocket frame, TLS
//!   records via `write_tls` into a buffer) and lands in [`Conn::write`]
//!   as wire bytes, from which the ring sends; the queue keeps each chunk
//!   where it is until it is fully written, so in-flight sends can point
//!   into it.
//!
//! The layer's own state (a rustls connection, a WebSocket parser) is the
//! table's type parameter `L`, stored in [`Conn::layer`].
//!
//! Both buffers are bounded ([`ConnLimits`]): a peer that sends a message
//! larger than the read bound, or stops reading until the write bound is
//! hit, gets its connection closed ([`CloseReason::ReadOverflow`],
//! [`CloseReason::WriteOverflow`]) rather than growing the worker without
//! limit. Empty buffers give their memory back (idle connections cost
//! little).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::ws::WsFailure;
use crate::flow::{ConnId, Flow, TransportKind};

/// Why a connection closed; see `Worker::closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its end (EOF, TLS `close_notify`, the WebSocket
    /// closing handshake).
    Peer,
    /// This worker closed it (shutdown, idle, connection policy).
    Local,
    /// Opening failed with this errno (`ECONNREFUSED`, `ETIMEDOUT`, ...;
    /// `EPROTO` for a failed TLS handshake or WebSocket upgrade).
    ConnectFailed(i32),
    /// The open connection failed with this errno (`ECONNRESET`, `EPIPE`).
    Error(i32),
    /// The peer sent more than [`ConnLimits::read_buf`] bytes without
    /// completing a message.
    ReadOverflow,
    /// More than [`ConnLimits::write_queue`] bytes waited for the peer.
    WriteOverflow,
    /// The peer's bytes are not a stream of messages (framing failed:
    /// no Content-Length, a message larger than the parser's limit, ...).
    Malformed,
    /// The TLS handshake failed: the connection never carried a message.
    HandshakeFailed(TlsFailure),
    /// TLS failed on an open session (a bad record, an alert).
    Tls(TlsFailure),
    /// The WebSocket opening handshake failed (RFC 6455 §4, RFC 7118
    /// §4.1): the connection never carried a message.
    UpgradeFailed(WsFailure),
    /// The WebSocket layer failed an open connection (a frame past the
    /// bounds, unmasked, malformed), or the peer left without the closing
    /// handshake ([`WsFailure::NoCloseFrame`]).
    Ws(WsFailure),
}

/// Why TLS failed, as counted in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The peer's certificate did not verify: which check failed (see
    /// [`TlsFailure::certificate_name`]).
    Certificate(u8),
    /// The peer sent this fatal alert (RFC 8446 §6.2 description code).
    AlertReceived(u8),
    /// Anything else: a malformed or unexpected record, no shared version
    /// or cipher suite, a failed decryption. The peer is sent an alert.
    Protocol,
}

/// rustls' certificate errors, in the order of [`TlsFailure::Certificate`]
/// codes.
const CERT_PROBLEMS: [&str; 9] = [
    "BadEncoding",
    "Expired",
    "NotValidYet",
    "Revoked",
    "UnknownIssuer",
    "BadSignature",
    "NotValidForName",
    "InvalidPurpose",
    "Other",
];

impl TlsFailure {
    /// The failure of a rustls error.
    pub fn of(e: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(c) => {
                let i = match c {
                    C::BadEncoding => 0,
                    C::Expired | C::ExpiredContext { .. } => 1,
                    C::NotValidYet | C::NotValidYetContext { .. } => 2,
                    C::Revoked => 3,
                    C::UnknownIssuer => 4,
                    C::BadSignature => 5,
                    C::NotValidForName | C::NotValidForNameContext { .. } => 6,
                    C::InvalidPurpose | C::InvalidPurposeContext { .. } => 7,
                    _ => 8,
                };
                TlsFailure::Certificate(i)
            }
            rustls::Error::AlertReceived(a) => TlsFailure::AlertReceived(u8::from(*a)),
            _ => TlsFailure::Protocol,
        }
    }

    /// `UnknownIssuer`, `NotValidForName`, ... for a certificate failure.
    pub fn certificate_name(code: u8) -> &'static str {
        CERT_PROBLEMS
            .get(usize::from(code))
            .copied()
            .unwrap_or("Other")
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            TlsFailure::Certificate(c) => {
                write!(f, "certificate not trusted: {}", Self::certificate_name(c))
            }
            TlsFailure::AlertReceived(a) => {
                write!(f, "peer sent alert {:?}", rustls::AlertDescription::from(a))
            }
            TlsFailure::Protocol => f.write_str("TLS protocol error"),
        }
    }
}

impl CloseReason {
    /// Opening failed: the connection never carried a message.
    pub fn is_open_failure(self) -> bool {
        matches!(
            self,
            CloseReason::ConnectFailed(_)
                | CloseReason::HandshakeFailed(_)
                | CloseReason::UpgradeFailed(_)
        )
    }

    /// The peer ended the connection: EOF, `close_notify`, a reset.
    pub fn is_by_peer(self) -> bool {
        matches!(
            self,
            CloseReason::Peer
                | CloseReason::Error(libc::ECONNRESET | libc::EPIPE)
                | CloseReason::Ws(WsFailure::NoCloseFrame)
        )
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            CloseReason::Peer => f.write_str("closed by the peer"),
            CloseReason::Local => f.write_str("closed here"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {}", errno_name(e)),
            CloseReason::Error(e) => write!(f, "connection error: {}", errno_name(e)),
            CloseReason::ReadOverflow => f.write_str("peer sent more than the read buffer holds"),
            CloseReason::WriteOverflow => f.write_str("peer stopped reading (write queue full)"),
            CloseReason::Malformed => f.write_str("peer sent bytes that do not frame as messages"),
            CloseReason::HandshakeFailed(t) => write!(f, "TLS handshake failed: {t}"),
            CloseReason::Tls(t) => write!(f, "TLS: {t}"),
            CloseReason::UpgradeFailed(w) => write!(f, "WebSocket upgrade failed: {w}"),
            CloseReason::Ws(w) => write!(f, "WebSocket: {w}"),
        }
    }
}

/// The symbolic name of the error numbers a connection meets, `errno N`
/// for others.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::EPIPE => "EPIPE",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::EPROTO => "EPROTO",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EACCES => "EACCES",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Opening: TCP connect, then the TLS handshake or WebSocket upgrade.
    /// Messages may queue but do not go out yet.
    Connecting,
    /// Carrying messages.
    Open,
    /// Shutting down: what is queued may still go out; nothing new is
    /// routed to it.
    Closing,
}

/// Bounds of one worker's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections at once, 1 to [`MAX_CONNS`].
    pub max_conns: u32,
    /// Most bytes a connection's read buffer holds: received plaintext not
    /// yet framed into a whole message.
    pub read_buf: usize,
    /// Most bytes waiting in a connection's write queue.
    pub write_queue: usize,
}

impl Default for ConnLimits {
    /// 65,535 connections; 64 KiB to frame a message in (SIPp's largest
    /// message); 4 MiB queued per connection (a busy persistent connection
    /// between two loaded workers; an idle one holds nothing).
    fn default() -> Self {
        ConnLimits {
            max_conns: 65_535,
            read_buf: 64 << 10,
            write_queue: 4 << 20,
        }
    }
}

/// Most connections one table can hold: ids keep at least 8 bits of
/// generation below the key bit (ids use 31 bits; see [`ConnId::key`]).
pub const MAX_CONNS: u32 = (1 << 23) - 1;

/// Capacity an emptied buffer keeps; more is given back.
const KEEP: usize = 4096;

/// Received plaintext not yet framed into whole messages, bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBuf {
    buf: Vec<u8>,
    /// Bytes before this were consumed.
    start: usize,
    limit: usize,
}

impl ReadBuf {
    /// An empty buffer that holds at most `limit` bytes (allocates on
    /// first use).
    pub fn new(limit: usize) -> ReadBuf {
        ReadBuf {
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    /// The bytes received and not consumed yet.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// See [`ConnLimits::read_buf`].
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Append received bytes. Past the bound nothing is appended and the
    /// connection must close: a message this large cannot be framed.
    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), CloseReason> {
        if self.len() + bytes.len() > self.limit {
            return Err(CloseReason::ReadOverflow);
        }
        if self.start > 0 && self.buf.len() + bytes.len() > self.buf.capacity() {
            // Move the unconsumed tail to the front instead of growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Drop `n` bytes (a framed message) from the front.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.buf.shrink_to(KEEP);
        }
    }
}

/// Wire bytes waiting for the peer, in chunks, bounded. A chunk stays in
/// place until fully written, so a send in flight may point into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Unwritten bytes over all chunks.
    queued: usize,
    limit: usize,
}

impl WriteQueue {
    /// An empty queue that holds at most `limit` unwritten bytes.
    pub fn new(limit: usize) -> WriteQueue {
        WriteQueue {
            chunks: VecDeque::new(),
            offset: 0,
            queued: 0,
            limit,
        }
    }

    /// Queue `bytes` behind what is queued. Past the bound nothing is
    /// queued and the connection must close: the peer does not read.
    pub fn push(&mut self, bytes: Vec<u8>) -> Result<(), CloseReason> {
        if self.queued + bytes.len() > self.limit {
            return Err(CloseReason::WriteOverflow);
        }
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.chunks.push_back(bytes);
        }
        Ok(())
    }

    /// The unwritten part of the oldest chunk.
    pub fn front(&self) -> Option<&[u8]> {
        self.chunks.front().map(|c| &c[self.offset..])
    }

    /// Every unwritten part, oldest first (for one vectored send).
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 0 { &c[self.offset..] } else { &c[..] })
    }

    /// `n` bytes from the front were written; fully written chunks are
    /// freed.
    pub fn advance(&mut self, n: usize) {
        let mut n = n.min(self.queued);
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                break;
            }
            n -= left;
            self.offset = 0;
            self.chunks.pop_front();
        }
    }

    /// Unwritten bytes.
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// See [`ConnLimits::write_queue`].
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One connection: where it goes, how far it got, its buffers and its
/// protocol layer.
#[derive(Debug)]
pub struct Conn<L> {
    flow: Flow,
    pub state: ConnState,
    pub read: ReadBuf,
    pub write: WriteQueue,
    /// The layer's own state: `()` for TCP, a rustls connection for TLS,
    /// a WebSocket parser (over TLS for WSS).
    pub layer: L,
}

impl<L> Conn<L> {
    /// Kind, peer and id: what the engine sees for this connection.
    pub fn flow(&self) -> Flow {
        self.flow
    }

    pub fn id(&self) -> ConnId {
        self.flow.conn
    }
}

/// Why [`ConnTable::insert`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("connection table full ({0} connections)")]
    Full(u32),
    #[error("{0} is not a stream transport")]
    NotStream(TransportKind),
}

/// No slot (end of a peer chain).
const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<L> {
    /// Generation of the id the current (or next) occupant gets.
    generation: u32,
    conn: Option<Conn<L>>,
    /// Neighbours among the connections to the same (kind, peer).
    prev: u32,
    next: u32,
}

/// First and last slot of the connections to one (kind, peer), oldest
/// first.
#[derive(Debug, Clone, Copy)]
struct Chain {
    head: u32,
    tail: u32,
}

/// A worker's connections: a slab indexed by [`ConnId`], plus the
/// connections to each (kind, peer).
///
/// An id is `generation << index_bits | (slot + 1)` in 31 bits, where
/// `index_bits` is just wide enough for `max_conns`: never 0
/// ([`ConnId::ANY`]), never with the key bit of [`ConnId::key`], and
/// removing a connection bumps its slot's generation so the old id finds
/// nothing. Freed slots are reused oldest-freed first, and a slot whose
/// generation would wrap is retired, so no id is ever issued twice; the
/// table then holds fewer connections, after at least
/// `2^(31 - index_bits)` openings per slot (32,768 with the default
/// limits).
#[derive(Debug)]
pub struct ConnTable<L> {
    slots: Vec<Slot<L>>,
    free: VecDeque<u32>,
    peers: HashMap<(TransportKind, SocketAddr), Chain>,
    limits: ConnLimits,
    index_bits: u32,
    len: usize,
}

impl<L> ConnTable<L> {
    /// An empty table; `max_conns` is clamped to 1..=[`MAX_CONNS`].
    pub fn new(limits: ConnLimits) -> ConnTable<L> {
        let max_conns = limits.max_conns.clamp(1, MAX_CONNS);
        ConnTable {
            slots: Vec::new(),
            free: VecDeque::new(),
            peers: HashMap::new(),
            limits: ConnLimits {
                max_conns,
                ..limits
            },
            index_bits: u32::BITS - max_conns.leading_zeros(),
            len: 0,
        }
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a connection to `peer` over `kind` (a stream transport) and
    /// return its id.
    pub fn insert(
        &mut self,
        kind: TransportKind,
        peer: SocketAddr,
        state: ConnState,
        layer: L,
    ) -> Result<ConnId, InsertError> {
        if !kind.is_stream() {
            return Err(InsertError::NotStream(kind));
        }
        let index = match self.free.pop_front() {
            Some(i) => i,
            None if self.slots.len() < self.limits.max_conns as usize => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
            None => return Err(InsertError::Full(self.limits.max_conns)),
        };
        let id = ConnId((self.slots[index as usize].generation << self.index_bits) | (index + 1));
        let chain = self.peers.entry((kind, peer)).or_insert(Chain {
            head: index,
            tail: NIL,
        });
        let prev = chain.tail;
        chain.tail = index;
        if prev != NIL {
            self.slots[prev as usize].next = index;
        }
        let slot = &mut self.slots[index as usize];
        slot.prev = prev;
        slot.next = NIL;
        slot.conn = Some(Conn {
            flow: Flow::new(kind, peer, id),
            state,
            read: ReadBuf::new(self.limits.read_buf),
            write: WriteQueue::new(self.limits.write_queue),
            layer,
        });
        self.len += 1;
        Ok(id)
    }

    /// The slot `id` names, if it is that slot's current occupant.
    fn index(&self, id: ConnId) -> Option<usize> {
        if id.is_key() {
            return None;
        }
        let mask = (1u32 << self.index_bits) - 1;
        let index = ((id.0 & mask) as usize).checked_sub(1)?;
        let slot = self.slots.get(index)?;
        (slot.conn.is_some() && slot.generation == id.0 >> self.index_bits).then_some(index)
    }

    /// The connection `id` names; `None` for [`ConnId::ANY`] and for an
    /// id whose connection was removed.
    pub fn get(&self, id: ConnId) -> Option<&Conn<L>> {
        self.slots[self.index(id)?].conn.as_ref()
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<L>> {
        let index = self.index(id)?;
        self.slots[index].conn.as_mut()
    }

    /// Take the connection `id` names out of the table; from now on `id`
    /// names nothing.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn<L>> {
        let index = self.index(id)?;
        let slot = &mut self.slots[index];
        let conn = slot.conn.take()?;
        let (prev, next) = (slot.prev, slot.next);
        let max_generation = (u32::MAX >> 1) >> self.index_bits;
        let retire = slot.generation == max_generation;
        slot.generation = slot.generation.wrapping_add(1) & max_generation;
        let key = (conn.flow.transport, conn.flow.peer);
        if prev != NIL {
            self.slots[prev as usize].next = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        match (prev, next) {
            (NIL, NIL) => {
                self.peers.remove(&key);
            }
            _ => {
                if let Some(chain) = self.peers.get_mut(&key) {
                    if prev == NIL {
                        chain.head = next;
                    }
                    if next == NIL {
                        chain.tail = prev;
                    }
                }
            }
        }
        if !retire {
            self.free.push_back(index as u32);
        }
        self.len -= 1;
        Some(conn)
    }

    /// The connections to `peer` over `kind`, oldest first.
    pub fn to_peer(&self, kind: TransportKind, peer: SocketAddr) -> ToPeer<'_, L> {
        ToPeer {
            table: self,
            next: self.peers.get(&(kind, peer)).map_or(NIL, |c| c.head),
        }
    }

    /// The connection a message on `flow` goes on. A named connection: if
    /// it is still there, to the same kind and peer, and not closing. Any
    /// connection ([`ConnId::ANY`]): the oldest open one to that peer, else
    /// the oldest still connecting. `None`: the caller opens a connection,
    /// or reports the message undeliverable.
    pub fn route(&self, flow: Flow) -> Option<ConnId> {
        if !flow.conn.is_any() {
            let c = self.get(flow.conn)?;
            return (c.flow.transport == flow.transport
                && c.flow.peer == flow.peer
                && c.state != ConnState::Closing)
                .then_some(flow.conn);
        }
        let mut connecting = None;
        for id in self.to_peer(flow.transport, flow.peer) {
            match self.get(id).map(|c| c.state) {
                Some(ConnState::Open) => return Some(id),
                Some(ConnState::Connecting) if connecting.is_none() => connecting = Some(id),
                _ => {}
            }
        }
        connecting
    }

    /// Every connection, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Conn<L>> + '_ {
        self.slots.iter().filter_map(|s| s.conn.as_ref())
    }
}

/// Iterator of [`ConnTable::to_peer`].
#[derive(Debug)]
pub struct ToPeer<'a, L> {
    table: &'a ConnTable<L>,
    next: u32,
}

impl<L> Iterator for ToPeer<'_, L> {
    type Item = ConnId;
    fn next(&mut self) -> Option<ConnId> {
        let slot = self.table.slots.get(self.next as usize)?;
        self.next = slot.next;
        slot.conn.as_ref().map(Conn::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportKind::{Tcp, Tls, Udp, Ws};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn table(max_conns: u32) -> ConnTable<u32> {
        ConnTable::new(ConnLimits {
            max_conns,
            ..ConnLimits::default()
        })
    }

    /// A script of table operations on named connections, each with what
    /// it must give.
    enum Op {
        /// Insert connection number n (its layer tag is n too).
        Insert(usize, TransportKind, &'static str, ConnState),
        Refused(TransportKind, &'static str, InsertError),
        Remove(usize),
        /// Removing an already removed connection gives nothing.
        RemoveStale(usize),
        /// The connections to this (kind, peer), oldest first.
        ToPeer(TransportKind, &'static str, &'static [usize]),
        Len(usize),
    }

    #[test]
    fn insert_lookup_remove_scripts() {
        use ConnState::{Connecting, Open};
        use Op::*;
        let (a, b) = ("10.0.0.1:5060", "[2001:db8::1]:5061");
        let scripts: Vec<(&str, u32, Vec<Op>)> = vec![
            (
                "one peer, three connections, middle removed",
                8,
                vec![
                    Insert(0, Tcp, a, Open),
                    Insert(1, Tcp, a, Connecting),
                    Insert(2, Tcp, a, Open),
                    ToPeer(Tcp, a, &[0, 1, 2]),
                    Remove(1),
                    ToPeer(Tcp, a, &[0, 2]),
                    RemoveStale(1),
                    Len(2),
                ],
            ),
            (
                "head and tail removed",
                8,
                vec![
                    Insert(0, Tcp, a, Open),
                    Insert(1, Tcp, a, Open),
                    Insert(2, Tcp, a, Open),
                    Remove(0),
                    ToPeer(Tcp, a, &[1, 2]),
                    Remove(2),
                    ToPeer(Tcp, a, &[1]),
                    Insert(3, Tcp, a, Open),
                    ToPeer(Tcp, a, &[1, 3]),
                    Remove(1),
                    Remove(3),
                    ToPeer(Tcp, a, &[]),
                    Len(0),
                ],
            ),
            (
                "kinds and peers are separate",
                8,
                vec![
                    Insert(0, Tcp, a, Open),
                    Insert(1, Tls, a, Open),
                    Insert(2, Tcp, b, Open),
                    Insert(3, Ws, a, Open),
                    ToPeer(Tcp, a, &[0]),
                    ToPeer(Tls, a, &[1]),
                    ToPeer(Tcp, b, &[2]),
                    ToPeer(Tls, b, &[]),
                    Remove(0),
                    ToPeer(Tls, a, &[1]),
                    ToPeer(Ws, a, &[3]),
                    Len(3),
                ],
            ),
            (
                "full table, then room again",
                2,
                vec![
                    Insert(0, Tcp, a, Open),
                    Insert(1, Tls, b, Open),
                    Refused(Tcp, a, InsertError::Full(2)),
                    Remove(0),
                    Insert(2, Tcp, a, Open),
                    ToPeer(Tcp, a, &[2]),
                    Refused(Ws, b, InsertError::Full(2)),
                    Len(2),
                ],
            ),
            (
                "datagrams have no connection",
                4,
                vec![Refused(Udp, a, InsertError::NotStream(Udp)), Len(0)],
            ),
        ];
        for (name, max, ops) in scripts {
            let mut t = table(max);
            let mut ids = [ConnId::ANY; 8];
            for (step, op) in ops.into_iter().enumerate() {
                let tag = format!("{name}, step {step}");
                match op {
                    Insert(n, kind, peer, state) => {
                        let id = t.insert(kind, addr(peer), state, n as u32).expect(&tag);
                        assert!(!id.is_any(), "{tag}");
                        assert!(!ids.contains(&id), "{tag}: {id:?} reissued");
                        ids[n] = id;
                        let c = t.get(id).expect(&tag);
                        assert_eq!(c.flow(), Flow::new(kind, addr(peer), id), "{tag}");
                        assert_eq!((c.state, c.layer), (state, n as u32), "{tag}");
                    }
                    Refused(kind, peer, want) => {
                        let got = t.insert(kind, addr(peer), ConnState::Open, 99);
                        assert_eq!(got, Err(want), "{tag}");
                    }
                    Remove(n) => {
                        let c = t.remove(ids[n]).expect(&tag);
                        assert_eq!((c.id(), c.layer), (ids[n], n as u32), "{tag}");
                        assert!(t.get(ids[n]).is_none(), "{tag}");
                    }
                    RemoveStale(n) => assert!(t.remove(ids[n]).is_none(), "{tag}"),
                    ToPeer(kind, peer, want) => {
                        let got: Vec<ConnId> = t.to_peer(kind, addr(peer)).collect();
                        let want: Vec<ConnId> = want.iter().map(|&n| ids[n]).collect();
                        assert_eq!(got, want, "{tag}");
                    }
                    Len(n) => {
                        assert_eq!(t.len(), n, "{tag}");
                        assert_eq!(t.iter().count(), n, "{tag}");
                    }
                }
            }
        }
    }

    /// Reusing a slot never lets an old id reach the new connection, over
    /// many generations, for small and large tables; ANY and ids of slots
    /// never used name nothing.
    #[test]
    fn stale_ids_never_reach_a_new_connection() {
        let peer = addr("127.0.0.1:5060");
        for max in [1, 2, 7, 65_535, MAX_CONNS] {
            let mut t = table(max);
            let mut seen = std::collections::HashSet::new();
            let mut old = Vec::new();
            for round in 0..300u32 {
                let id = t.insert(Tcp, peer, ConnState::Open, round).unwrap();
                assert!(seen.insert(id), "max {max}: {id:?} issued twice");
                for &stale in &old {
                    assert!(t.get(stale).is_none(), "max {max}: stale {stale:?}");
                    assert!(t.route(Flow::new(Tcp, peer, stale)).is_none());
                }
                assert_eq!(t.get(id).map(|c| c.layer), Some(round));
                assert_eq!(t.remove(id).map(|c| c.layer), Some(round));
                old.push(id);
            }
            assert!(t.get(ConnId::ANY).is_none(), "max {max}");
            assert!(t.get(ConnId(u32::MAX)).is_none(), "max {max}");
            assert!(t.is_empty());
        }
    }

    /// With the largest table an id keeps 8 bits of generation: a slot
    /// used 256 times retires and the next connection takes a new slot.
    #[test]
    fn a_slot_retires_before_its_generation_wraps() {
        let peer = addr("127.0.0.1:5060");
        let mut t = table(MAX_CONNS);
        let index = |id: ConnId| id.0 & MAX_CONNS;
        for g in 0..256 {
            let id = t.insert(Tcp, peer, ConnState::Open, g).unwrap();
            assert_eq!((index(id), id.0 >> 23), (1, g), "use {g}");
            assert!(!id.is_key());
            t.remove(id);
        }
        let id = t.insert(Tcp, peer, ConnState::Open, 0).unwrap();
        assert_eq!((index(id), id.0 >> 23), (2, 0));
    }

    #[test]
    fn route_table() {
        use ConnState::{Closing, Connecting, Open};
        let (a, b) = (addr("10.0.0.1:5060"), addr("10.0.0.2:5060"));
        // (case, states of the connections to `a` over TCP in insertion
        // order, which one the query names (None: ANY), expected index)
        type Case = (
            &'static str,
            &'static [ConnState],
            Option<usize>,
            Option<usize>,
        );
        let cases: Vec<Case> = vec![
            (
                "any: the oldest open",
                &[Connecting, Open, Open],
                None,
                Some(1),
            ),
            (
                "any: connecting if none open",
                &[Closing, Connecting, Connecting],
                None,
                Some(1),
            ),
            ("any: closing is never chosen", &[Closing], None, None),
            ("any: no connection", &[], None, None),
            ("named open", &[Open, Open], Some(1), Some(1)),
            ("named connecting", &[Connecting], Some(0), Some(0)),
            ("named closing", &[Open, Closing], Some(1), None),
        ];
        for (case, states, named, want) in cases {
            let mut t = table(8);
            t.insert(Tcp, b, Open, 0).unwrap();
            t.insert(Tls, a, Open, 0).unwrap();
            let ids: Vec<ConnId> = states
                .iter()
                .map(|&s| t.insert(Tcp, a, s, 0).unwrap())
                .collect();
            let conn = named.map_or(ConnId::ANY, |i| ids[i]);
            let got = t.route(Flow::new(Tcp, a, conn));
            assert_eq!(got, want.map(|i| ids[i]), "{case}");
        }
        // A named connection must match the flow's kind and peer.
        let mut t = table(8);
        let id = t.insert(Tcp, a, Open, 0).unwrap();
        assert_eq!(t.route(Flow::new(Tcp, a, id)), Some(id));
        assert_eq!(t.route(Flow::new(Tls, a, id)), None);
        assert_eq!(t.route(Flow::new(Tcp, b, id)), None);
    }

    /// Bound of the buffers in the bounds tables.
    const BOUND: usize = 16;

    #[test]
    fn read_buffer_bounds() {
        // (case, steps: positive = extend with that many bytes, negative =
        // consume that many; the result of each extend; bytes left)
        let cases: Vec<(&str, &[i64], &[bool], usize)> = vec![
            ("fills exactly", &[10, 6], &[true, true], 16),
            ("one past the bound", &[10, 7], &[true, false], 10),
            ("consuming makes room", &[16, -10, 10], &[true, true], 16),
            ("empty, then reused", &[8, -8, 16], &[true, true], 16),
            ("larger than the bound at once", &[17], &[false], 0),
            ("consume more than held", &[4, -9, 16], &[true, true], 16),
        ];
        for (case, steps, oks, left) in cases {
            let mut r = ReadBuf::new(BOUND);
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut results = Vec::new();
            let mut next = 0u8;
            for &s in steps {
                if s >= 0 {
                    let bytes: Vec<u8> = (0..s)
                        .map(|_| {
                            next = next.wrapping_add(1);
                            next
                        })
                        .collect();
                    let r_ok = r.extend(&bytes);
                    if r_ok.is_ok() {
                        model.extend(&bytes);
                    } else {
                        assert_eq!(r_ok, Err(CloseReason::ReadOverflow), "{case}");
                    }
                    results.push(r_ok.is_ok());
                } else {
                    let n = s.unsigned_abs() as usize;
                    r.consume(n);
                    model.drain(..n.min(model.len()));
                }
                assert_eq!(r.data(), model.make_contiguous(), "{case}");
                assert!(r.len() <= r.limit(), "{case}");
            }
            assert_eq!(results, oks, "{case}");
            assert_eq!(r.len(), left, "{case}");
        }
        // An emptied buffer gives back all but KEEP bytes.
        let mut r = ReadBuf::new(1 << 20);
        r.extend(&vec![0; 100_000]).unwrap();
        r.consume(100_000);
        assert!(r.is_empty() && r.buf.capacity() <= KEEP);
    }

    #[test]
    fn write_queue_bounds() {
        // (case, chunk lengths pushed, the result of each push, bytes
        // written in order, bytes left, length of the front)
        type Case = (
            &'static str,
            &'static [usize],
            &'static [bool],
            &'static [usize],
        );
        let cases: Vec<(Case, usize, Option<usize>)> = vec![
            (
                ("fills exactly", &[10, 6], &[true, true], &[]),
                16,
                Some(10),
            ),
            (
                ("one past the bound", &[10, 7], &[true, false], &[]),
                10,
                Some(10),
            ),
            (
                ("partial write", &[10, 6], &[true, true], &[4]),
                12,
                Some(6),
            ),
            (
                ("across chunks", &[10, 6], &[true, true], &[12]),
                4,
                Some(4),
            ),
            (("all written", &[10, 6], &[true, true], &[10, 6]), 0, None),
            (("written more than queued", &[3], &[true], &[9]), 0, None),
            (
                ("empty chunks take no room", &[0, 16], &[true, true], &[]),
                16,
                Some(16),
            ),
        ];
        for ((case, pushes, oks, writes), left, front) in cases {
            let mut w = WriteQueue::new(BOUND);
            let mut model: Vec<u8> = Vec::new();
            let mut results = Vec::new();
            for (i, &len) in pushes.iter().enumerate() {
                let chunk = vec![i as u8; len];
                let r = w.push(chunk.clone());
                if r.is_ok() {
                    model.extend(&chunk);
                } else {
                    assert_eq!(r, Err(CloseReason::WriteOverflow), "{case}");
                }
                results.push(r.is_ok());
            }
            for &n in writes {
                w.advance(n);
                model.drain(..n.min(model.len()));
            }
            assert_eq!(results, oks, "{case}");
            assert_eq!((w.queued(), w.is_empty()), (left, left == 0), "{case}");
            assert_eq!(w.front().map(<[u8]>::len), front, "{case}");
            assert_eq!(w.slices().collect::<Vec<_>>().concat(), model, "{case}");
        }
    }

    /// A connection's buffers carry the table's limits.
    #[test]
    fn entries_get_the_table_limits() {
        let mut t: ConnTable<()> = ConnTable::new(ConnLimits::default());
        let id = t
            .insert(Tcp, addr("127.0.0.1:5060"), ConnState::Connecting, ())
            .unwrap();
        let c = t.get_mut(id).unwrap();
        assert_eq!(c.read.limit(), ConnLimits::default().read_buf);
        assert_eq!(c.write.limit(), ConnLimits::default().write_queue);
        c.state = ConnState::Open;
        assert_eq!(
            t.route(Flow::new(Tcp, addr("127.0.0.1:5060"), ConnId::ANY)),
            Some(id)
        );
        let clamped: ConnTable<()> = ConnTable::new(ConnLimits {
            max_conns: 0,
            ..ConnLimits::default()
        });
        assert_eq!(clamped.limits().max_conns, 1);
    }
}
