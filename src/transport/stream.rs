//! Stream connections of one worker (TCP, TLS, WebSocket over either):
//! the part of the loop both backends share. It owns the worker's
//! [`ConnTable`], opens outbound connections, accepts nothing itself (a
//! backend hands it accepted sockets), runs each connection's layers
//! (plain bytes, or a rustls `ClientConnection`/`ServerConnection` fed
//! sans-IO with `read_tls` and drained with `write_tls`; above that, for
//! `ws`/`wss`, the WebSocket layer of [`super::ws`]), frames received
//! bytes into messages with [`Worker::frame`] (TCP, TLS) or hands over one
//! message per WebSocket message, enforces the bounds and deadlines, and
//! keeps a list
//! of operations ([`Op`]) for the backend to carry out: connect, arm a
//! receive, send the write queue, close. Backends report completions back
//! through the `on_*` methods; no socket I/O happens here except creating
//! and configuring sockets.
//!
//! Policies:
//!
//! - Routing: a message on a connection id goes on that connection (or is
//!   refused with `ENOTCONN` once it is gone: RFC 3261 §18.2.2 would have
//!   a server open a new connection to the Via's sent-by, which a load
//!   generator's answers never need); on a key, on the connection of that
//!   (kind, peer, key), opened if need be; on [`ConnId::ANY`], on the
//!   oldest open connection to the peer, opened if need be.
//! - Timeouts: connect [`StreamSetup::connect_timeout`], TLS handshake
//!   and WebSocket Upgrade [`StreamSetup::handshake_timeout`] each (both
//!   sides: a client that never finishes its handshake or never upgrades
//!   is closed), closing [`CLOSE_GRACE`] (also the wait for the peer's
//!   WebSocket Close after ours).
//! - WebSocket: a client holds what the worker sends until the 101 (RFC
//!   6455 §4.1), within the write bound; `ws_upgrade` in [`Opened`] is
//!   from the Upgrade sent to its 101. A released connection sends its
//!   Close and closes once the peer's comes back (§7.1.2); a peer's Close
//!   is answered and the connection closed (`Peer`); an end of stream
//!   without one is [`WsFailure::NoCloseFrame`].
//! - Reconnect: never automatic. A closed connection is reported to the
//!   worker (`Worker::closed`, with its key), whose transactions on it fail
//!   (§18.4); the next message for the same key opens a new connection.
//!   After a failed connect to a peer, new connects to it wait out a
//!   backoff (50 ms, doubling per further failure, at most 2 s); messages
//!   meanwhile are refused at once with the last error, so a dead target
//!   costs no connect storm.
//! - Bounds: the read buffer (unframed bytes) and write queue of every
//!   connection are bounded ([`ConnLimits`]); past either, or on bytes that
//!   do not frame, the connection is closed with the reason.
//! - Half-close: end of stream from the peer closes the connection once
//!   what is queued for the peer went out (or [`CLOSE_GRACE`] passed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{CloseReason, ConnLimits, ConnState, ConnTable, TlsFailure, WriteQueue};
use super::ws::{Ws, WsClientSetup, WsFailure};
use super::{Frame, Opened, Worker, setsockopt_int, sockaddr_from};
use crate::flow::{ConnId, Flow, TransportKind};

/// How long a closing connection may take to send what is queued.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Longest backoff after failed connects to a peer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// First backoff after a failed connect.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Most iovecs of one send.
pub(crate) const SEND_IOVS: usize = 16;
/// Plaintext read from rustls per call.
const PLAIN_CHUNK: usize = 16 * 1024;

/// A listening socket of a server worker and the transport it speaks.
#[derive(Debug)]
pub struct Listener {
    pub kind: TransportKind,
    pub socket: TcpListener,
}

/// What a worker's stream side is set up with.
#[derive(Clone, Default)]
pub struct StreamSetup {
    /// Address outbound connections are bound to (port 0); `None`: the
    /// kernel's choice.
    pub local_ip: Option<IpAddr>,
    /// TLS client configuration and the server name to use; `None`: no
    /// outbound TLS.
    pub client_tls: Option<(
        Arc<rustls::ClientConfig>,
        Option<rustls::pki_types::ServerName<'static>>,
    )>,
    /// TLS server configuration of `tls` and `wss` listeners.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// What outbound WebSocket connections ask for in their Upgrade.
    pub ws: WsClientSetup,
    pub limits: ConnLimits,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// This worker uses stream connections (outbound, or listeners).
    pub enabled: bool,
}

impl std::fmt::Debug for StreamSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSetup")
            .field("local_ip", &self.local_ip)
            .field("client_tls", &self.client_tls.is_some())
            .field("server_tls", &self.server_tls.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl StreamSetup {
    /// Defaults: 65,535 connections, 5 s to connect, 5 s for a TLS
    /// handshake.
    pub fn new() -> StreamSetup {
        StreamSetup {
            local_ip: None,
            client_tls: None,
            server_tls: None,
            ws: WsClientSetup::default(),
            limits: ConnLimits::default(),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            enabled: false,
        }
    }
}

/// An operation a backend carries out for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Connect the socket to the connection's peer.
    Connect,
    /// Arm receiving (multishot with io_uring; readiness with epoll).
    Recv,
    /// Send from the write queue (if nothing is in flight).
    Send,
    /// Close: cancel what is in flight, then close the socket; the backend
    /// calls [`Streams::remove`] when nothing refers to it any more.
    Close,
}

/// The memory in-flight io_uring operations of a connection point at:
/// boxed, so it never moves while the table grows.
pub(crate) struct OpMem {
    pub addr: libc::sockaddr_storage,
    pub addr_len: libc::socklen_t,
    pub iov: [libc::iovec; SEND_IOVS],
    pub msg: libc::msghdr,
}

/// A backend's state of one connection.
pub(crate) struct ConnIo {
    /// io_uring operations in flight.
    pub ops: u32,
    /// Bytes of the write queue in flight (0: no send in flight).
    pub sending: usize,
    /// A receive is armed.
    pub recv_armed: bool,
    /// The connect is in flight.
    pub connecting: bool,
    /// The close was submitted.
    pub close_sent: bool,
    /// io_uring: the cancel of what is in flight was submitted.
    pub cancel_sent: bool,
    /// epoll: `EPOLLOUT` is in the interest set.
    pub want_out: bool,
    pub mem: Box<OpMem>,
}

/// The layer of a connection: plain bytes or TLS.
enum Layer {
    Plain,
    /// A server TLS connection whose first bytes have not come yet (its
    /// rustls state is made when they do, so idle accepted sockets cost
    /// only their table entry).
    TlsPending,
    Tls(Box<rustls::Connection>),
}

/// One connection's entry beyond what [`ConnTable`] keeps.
pub(crate) struct Link {
    pub fd: RawFd,
    /// The key this connection serves ([`ConnId::ANY`]: none).
    key: ConnId,
    layer: Layer,
    inbound: bool,
    /// Connect start (outbound) or accept.
    started: Instant,
    /// TCP established (connect done or accepted).
    tcp_up: Option<Instant>,
    /// Connect, handshake or closing deadline.
    deadline: Option<Instant>,
    /// Close once the write queue is empty.
    release: bool,
    /// Closed as far as the worker knows; waiting for the backend.
    closing: bool,
    /// TCP connect done but the TLS handshake is not.
    handshaking: bool,
    /// WebSocket (`ws`, `wss`): the layer above the bytes (or above TLS).
    ws: Option<Box<Ws>>,
    /// The TLS handshake's duration and whether it resumed, kept for
    /// [`Opened`] until the WebSocket Upgrade is done too.
    tls_done: Option<(Duration, bool)>,
    pub io: ConnIo,
}

impl Link {
    /// Closed as far as the worker knows, or released: waiting for the
    /// backend to close the socket.
    pub(crate) fn closing(&self) -> bool {
        self.closing || self.release
    }

    /// TCP is up and the socket not closed: bytes may be sent.
    pub(crate) fn can_send(&self) -> bool {
        self.tcp_up.is_some() && !self.io.close_sent
    }

    /// Mark the socket as being closed (the backend's Close op).
    pub(crate) fn set_closing(&mut self) {
        self.closing = true;
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("fd", &self.fd)
            .field("key", &self.key)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

/// A worker's stream connections.
pub(crate) struct Streams {
    pub table: ConnTable<Link>,
    setup: StreamSetup,
    /// The connection of each (kind, peer, key).
    keys: HashMap<(TransportKind, SocketAddr, u32), ConnId>,
    /// Deadlines, earliest first (entries whose link moved on are stale).
    deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Failed connects per peer: until when new ones are refused, the
    /// error, how many in a row.
    backoff: HashMap<(TransportKind, SocketAddr), (Instant, i32, u32)>,
    /// Operations for the backend, in order.
    pub todo: Vec<(ConnId, Op)>,
    /// Connections to report closed to the worker in the next receive
    /// phase: released ones (`Local`), and ones shut where no worker was
    /// at hand (a send that overflowed the write queue).
    notices: Vec<(Flow, CloseReason)>,
    /// The loop is ending ([`Self::close_all`]): closes are not reported.
    closing_all: bool,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    /// WebSocket pings answered.
    pub ws_pings: u64,
    /// Plaintext scratch for TLS reads ([`PLAIN_CHUNK`] bytes; taken out
    /// while a WebSocket layer reads from it).
    plain: Vec<u8>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("conns", &self.table.len())
            .finish_non_exhaustive()
    }
}

fn new_io() -> ConnIo {
    ConnIo {
        ops: 0,
        sending: 0,
        recv_armed: false,
        connecting: false,
        close_sent: false,
        cancel_sent: false,
        want_out: false,
        mem: Box::new(OpMem {
            // SAFETY: all-zero is a valid value for these C structs.
            addr: unsafe { zeroed() },
            addr_len: 0,
            // SAFETY: as above.
            iov: unsafe { zeroed() },
            // SAFETY: as above.
            msg: unsafe { zeroed() },
        }),
    }
}

/// A non-blocking, close-on-exec TCP socket for `peer`, `TCP_NODELAY`,
/// bound to `local` if given.
fn stream_socket(peer: SocketAddr, local: Option<IpAddr>) -> Result<RawFd, i32> {
    let fd = super::new_socket(peer, libc::SOCK_STREAM)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    if let Some(ip) = local.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() == peer.is_ipv4()) {
        // Pick the port at connect time, unique per 4-tuple: a bind to
        // port 0 would take one from the bind space, a search that gets
        // slow with thousands of sockets in TIME_WAIT (a storm of
        // connections per attempt) and fails once the range is used up.
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
        if let Err(e) = super::bind_fd(fd, SocketAddr::new(ip, 0)) {
            close_fd(fd);
            return Err(e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
    Ok(fd)
}

pub(crate) fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Close a descriptor this module owns (errors are of no use here).
pub(crate) fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is a descriptor the caller owns and no longer uses.
    unsafe { libc::close(fd) };
}

/// The peer address of a connected socket.
pub(crate) fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut st: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `st` and `len` are valid for writes of the sizes given.
    let rc = unsafe { libc::getpeername(fd, (&raw mut st).cast(), &mut len) };
    if rc < 0 {
        return None;
    }
    // SAFETY: the kernel initialised `len` bytes of `st` (at most its size).
    let raw = unsafe {
        std::slice::from_raw_parts(
            (&raw const st).cast::<u8>(),
            (len as usize).min(size_of::<libc::sockaddr_storage>()),
        )
    };
    super::sockaddr_to(raw)
}

impl Streams {
    pub(crate) fn new(setup: StreamSetup) -> Streams {
        Streams {
            table: ConnTable::new(setup.limits),
            setup,
            keys: HashMap::new(),
            deadlines: BinaryHeap::new(),
            backoff: HashMap::new(),
            todo: Vec::new(),
            notices: Vec::new(),
            closing_all: false,
            messages_received: 0,
            messages_sent: 0,
            bytes_received: 0,
            ws_pings: 0,
            plain: vec![0; PLAIN_CHUNK],
        }
    }

    /// Connections in the table (connecting and closing included).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether the worker has stream connections at all (a listener, or
    /// outbound connections allowed): backends set up their stream
    /// machinery only then.
    pub(crate) fn enabled(&self) -> bool {
        self.setup.enabled
    }

    /// The earliest deadline (may be stale: one early wake-up at most).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    fn set_deadline(&mut self, id: ConnId, at: Instant) {
        if let Some(c) = self.table.get_mut(id) {
            c.layer.deadline = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
    }

    /// The flow the worker knows a connection by: its key if it has one.
    fn worker_flow(&self, id: ConnId) -> Option<Flow> {
        let c = self.table.get(id)?;
        let mut f = c.flow();
        if c.layer.key.is_key() {
            f.conn = c.layer.key;
        }
        Some(f)
    }

    /// Queue `msg` for `flow` (see the module's routing policy). `Err`:
    /// it cannot go out; the errno says why.
    pub(crate) fn send(&mut self, now: Instant, flow: Flow, msg: &[u8]) -> Result<(), i32> {
        if !self.setup.enabled {
            // A datagram-only loop.
            return Err(libc::EPROTONOSUPPORT);
        }
        let id = if flow.conn.is_key() {
            match self.keys.get(&(flow.transport, flow.peer, flow.conn.0)) {
                Some(&id) => id,
                None => self.open(now, flow)?,
            }
        } else if flow.conn.is_any() {
            match self.table.route(flow) {
                Some(id) => id,
                None => self.open(now, flow)?,
            }
        } else {
            self.table.route(flow).ok_or(libc::ENOTCONN)?
        };
        let c = self.table.get_mut(id).ok_or(libc::ENOTCONN)?;
        let queued = if let Some(ws) = c.layer.ws.as_mut() {
            let mut out = Vec::new();
            match ws.send(msg, &mut out) {
                Ok(()) if out.is_empty() => Ok(()),
                Ok(()) => wire_out(&mut c.layer.layer, &mut c.write, out),
                // Past the bound of what may wait for the Upgrade.
                Err(WsFailure::MessageTooLarge) => Err(CloseReason::WriteOverflow),
                // Closing: nothing more goes out on it.
                Err(_) => return Err(libc::ENOTCONN),
            }
        } else {
            match &mut c.layer.layer {
                Layer::Tls(tls) => tls_write(tls, msg, &mut c.write),
                Layer::Plain => c.write.push(msg.to_vec()),
                Layer::TlsPending => Err(CloseReason::Tls(TlsFailure::Protocol)),
            }
        };
        if let Err(reason) = queued {
            self.shut(now, id, reason, false, None::<&mut NoWorker>);
            return Err(libc::ENOBUFS);
        }
        self.messages_sent += 1;
        if c.state == ConnState::Open && c.layer.io.sending == 0 {
            self.todo.push((id, Op::Send));
        }
        Ok(())
    }

    /// Open a connection for `flow` (its key, if any, now names it).
    fn open(&mut self, now: Instant, flow: Flow) -> Result<ConnId, i32> {
        let peer_key = (flow.transport, flow.peer);
        if let Some(&(until, errno, _)) = self.backoff.get(&peer_key)
            && now < until
        {
            return Err(errno);
        }
        let tls = match flow.transport {
            TransportKind::Tcp | TransportKind::Ws => None,
            TransportKind::Tls | TransportKind::Wss => {
                let (cfg, name) = self
                    .setup
                    .client_tls
                    .as_ref()
                    .ok_or(libc::EPROTONOSUPPORT)?;
                let name = name.clone().unwrap_or_else(|| {
                    rustls::pki_types::ServerName::IpAddress(flow.peer.ip().into())
                });
                let c = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(|_| libc::EPROTONOSUPPORT)?;
                Some(Box::new(rustls::Connection::Client(c)))
            }
            _ => return Err(libc::EPROTONOSUPPORT),
        };
        let fd = stream_socket(flow.peer, self.setup.local_ip)?;
        let link = Link {
            fd,
            key: if flow.conn.is_key() {
                flow.conn
            } else {
                ConnId::ANY
            },
            layer: tls.map_or(Layer::Plain, Layer::Tls),
            inbound: false,
            started: now,
            tcp_up: None,
            deadline: None,
            release: false,
            closing: false,
            handshaking: false,
            ws: is_ws(flow.transport).then(|| {
                let l = self.setup.limits;
                Box::new(Ws::client(l.read_buf, l.write_queue))
            }),
            tls_done: None,
            io: new_io(),
        };
        let id = match self
            .table
            .insert(flow.transport, flow.peer, ConnState::Connecting, link)
        {
            Ok(id) => id,
            Err(_) => {
                close_fd(fd);
                return Err(libc::EMFILE);
            }
        };
        if flow.conn.is_key() {
            self.keys
                .insert((flow.transport, flow.peer, flow.conn.0), id);
        }
        if let Some(c) = self.table.get_mut(id) {
            let m = &mut c.layer.io.mem;
            m.addr_len = sockaddr_from(flow.peer, &mut m.addr);
        }
        self.set_deadline(id, now + self.setup.connect_timeout);
        self.todo.push((id, Op::Connect));
        Ok(id)
    }

    /// A backend accepted `fd` on a listener of `kind`.
    pub(crate) fn accepted<W: Worker>(
        &mut self,
        now: Instant,
        kind: TransportKind,
        fd: RawFd,
        w: Option<&mut W>,
    ) {
        let Some(peer) = peer_of(fd) else {
            close_fd(fd);
            return;
        };
        let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        let tls = kind.is_secure();
        let ws = is_ws(kind);
        if tls && self.setup.server_tls.is_none() {
            close_fd(fd);
            return;
        }
        let link = Link {
            fd,
            key: ConnId::ANY,
            layer: if tls { Layer::TlsPending } else { Layer::Plain },
            inbound: true,
            started: now,
            tcp_up: Some(now),
            deadline: None,
            release: false,
            closing: false,
            handshaking: tls,
            ws: ws.then(|| {
                let l = self.setup.limits;
                Box::new(Ws::server(l.read_buf, l.write_queue))
            }),
            tls_done: None,
            io: new_io(),
        };
        let state = if tls || ws {
            ConnState::Connecting
        } else {
            ConnState::Open
        };
        let Ok(id) = self.table.insert(kind, peer, state, link) else {
            // Table full: refuse the connection at once.
            close_fd(fd);
            return;
        };
        self.todo.push((id, Op::Recv));
        if tls || ws {
            self.set_deadline(id, now + self.setup.handshake_timeout);
        } else if let (Some(w), Some(f)) = (w, self.worker_flow(id)) {
            w.opened(
                now,
                f,
                Opened {
                    inbound: true,
                    connect: None,
                    tls_handshake: None,
                    resumed: false,
                    ws_upgrade: None,
                },
            );
        }
    }

    /// The connect of `id` finished: `Err(errno)` if it failed.
    pub(crate) fn on_connect<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        result: Result<(), i32>,
        w: Option<&mut W>,
    ) {
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        c.layer.io.connecting = false;
        if c.layer.closing {
            self.todo.push((id, Op::Close));
            return;
        }
        let peer_key = (c.flow().transport, c.flow().peer);
        if let Err(e) = result {
            let entry = self.backoff.entry(peer_key).or_insert((now, e, 0));
            let backoff = FIRST_BACKOFF
                .saturating_mul(1u32 << entry.2.min(10))
                .min(MAX_BACKOFF);
            *entry = (now + backoff, e, entry.2 + 1);
            self.shut(now, id, CloseReason::ConnectFailed(e), false, w);
            return;
        }
        self.backoff.remove(&peer_key);
        c.layer.tcp_up = Some(now);
        self.todo.push((id, Op::Recv));
        match &mut c.layer.layer {
            Layer::Tls(tls) => {
                c.layer.handshaking = true;
                let r = tls_flush(tls, &mut c.write);
                self.set_deadline(id, now + self.setup.handshake_timeout);
                if let Err(reason) = r {
                    self.shut(now, id, reason, false, w);
                    return;
                }
                self.todo.push((id, Op::Send));
            }
            _ if c.layer.ws.is_some() => {
                if let Err(reason) = self.ws_start(now, id) {
                    self.shut(now, id, reason, false, w);
                }
            }
            _ => {
                c.state = ConnState::Open;
                c.layer.deadline = None;
                let connect = now.saturating_duration_since(c.layer.started);
                if !c.write.is_empty() {
                    self.todo.push((id, Op::Send));
                }
                if let (Some(w), Some(f)) = (w, self.worker_flow(id)) {
                    w.opened(
                        now,
                        f,
                        Opened {
                            inbound: false,
                            connect: Some(connect),
                            tls_handshake: None,
                            resumed: false,
                            ws_upgrade: None,
                        },
                    );
                }
            }
        }
    }

    /// Bytes received on `id`. They are appended to the read buffer as
    /// far as it has room and framed at once, piece by piece, so its bound
    /// holds the unframed bytes only: a read larger than the bound is
    /// fine, a message larger than it is not.
    pub(crate) fn on_data<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        bytes: &[u8],
        mut w: Option<&mut W>,
    ) {
        self.bytes_received += bytes.len() as u64;
        let Some(c) = self.table.get(id) else {
            return;
        };
        if c.layer.closing {
            return;
        }
        if !matches!(c.layer.layer, Layer::Plain) {
            self.on_tls_data(now, id, bytes, w);
            return;
        }
        if c.layer.ws.is_some() {
            self.ws_data(now, id, bytes, w);
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(c) = self.table.get_mut(id) else {
                return;
            };
            if c.layer.closing {
                return;
            }
            let room = c.read.limit().saturating_sub(c.read.len());
            if room == 0 {
                self.shut(now, id, CloseReason::ReadOverflow, false, w);
                return;
            }
            let take = room.min(rest.len());
            if let Err(reason) = c.read.extend(&rest[..take]) {
                self.shut(now, id, reason, false, w);
                return;
            }
            rest = &rest[take..];
            self.deliver(now, id, w.as_deref_mut());
        }
    }

    /// TLS bytes received on `id`: to rustls (`read_tls`,
    /// `process_new_packets`), what it has to say back (handshake, alerts,
    /// tickets) to the write queue, the plaintext to the read buffer and
    /// framed, as for plain bytes.
    fn on_tls_data<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        bytes: &[u8],
        mut w: Option<&mut W>,
    ) {
        if let Some(c) = self.table.get_mut(id)
            && matches!(c.layer.layer, Layer::TlsPending)
        {
            match self
                .setup
                .server_tls
                .as_ref()
                .map(|cfg| rustls::ServerConnection::new(cfg.clone()))
            {
                Some(Ok(s)) => {
                    c.layer.layer = Layer::Tls(Box::new(rustls::Connection::Server(s)));
                }
                _ => {
                    self.shut(now, id, CloseReason::Tls(TlsFailure::Protocol), false, w);
                    return;
                }
            }
        }
        let mut rest = bytes;
        let mut peer_closed = false;
        loop {
            // Feed what rustls takes of the rest, then act on it.
            let fed = {
                let Some(c) = self.table.get_mut(id) else {
                    return;
                };
                let Layer::Tls(tls) = &mut c.layer.layer else {
                    return;
                };
                let mut r: Result<(), CloseReason> = Ok(());
                if !rest.is_empty() {
                    match tls.read_tls(&mut rest) {
                        Ok(_) => {}
                        Err(_) => r = Err(CloseReason::Tls(TlsFailure::Protocol)),
                    }
                }
                if r.is_ok() {
                    match tls.process_new_packets() {
                        Ok(st) => peer_closed |= st.peer_has_closed(),
                        Err(e) => r = Err(CloseReason::Tls(TlsFailure::of(&e))),
                    }
                }
                let flushed = tls_flush(tls, &mut c.write);
                if !c.write.is_empty() && c.layer.io.sending == 0 {
                    self.todo.push((id, Op::Send));
                }
                r.and(flushed)
            };
            if let Err(reason) = fed {
                // A TLS failure leaves an alert queued: send it, then close.
                let graceful = matches!(reason, CloseReason::Tls(_));
                self.shut(now, id, reason, graceful, w);
                return;
            }
            self.handshake_progress(now, id, w.as_deref_mut());
            // Plaintext, as far as the read buffer has room, framed as it
            // comes (or, for WebSocket, to its layer in chunks).
            loop {
                if self.table.get(id).is_some_and(|c| c.layer.ws.is_some()) {
                    let mut plain = std::mem::take(&mut self.plain);
                    let n = match self.table.get_mut(id).map(|c| &mut c.layer.layer) {
                        Some(Layer::Tls(tls)) => tls.reader().read(&mut plain).unwrap_or(0),
                        _ => 0,
                    };
                    if n > 0 {
                        self.ws_data(now, id, &plain[..n], w.as_deref_mut());
                    }
                    self.plain = plain;
                    if n == 0 {
                        break;
                    }
                    if self.table.get(id).is_none_or(|c| c.layer.closing) {
                        return;
                    }
                    continue;
                }
                let got = {
                    let Some(c) = self.table.get_mut(id) else {
                        return;
                    };
                    let Layer::Tls(tls) = &mut c.layer.layer else {
                        return;
                    };
                    let room = c.read.limit().saturating_sub(c.read.len());
                    if room == 0 {
                        Err(CloseReason::ReadOverflow)
                    } else {
                        match tls.reader().read(&mut self.plain[..room.min(PLAIN_CHUNK)]) {
                            Ok(0) | Err(_) => Ok(false),
                            Ok(n) => c.read.extend(&self.plain[..n]).map(|()| true),
                        }
                    }
                };
                match got {
                    Ok(true) => self.deliver(now, id, w.as_deref_mut()),
                    Ok(false) => break,
                    Err(reason) => {
                        self.shut(now, id, reason, false, w);
                        return;
                    }
                }
                if self.table.get(id).is_none_or(|c| c.layer.closing) {
                    return;
                }
            }
            if rest.is_empty() {
                break;
            }
        }
        if peer_closed {
            self.on_eof(now, id, w);
        }
    }

    /// Report a TLS handshake that just finished.
    fn handshake_progress<W: Worker>(&mut self, now: Instant, id: ConnId, w: Option<&mut W>) {
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        let Layer::Tls(tls) = &c.layer.layer else {
            return;
        };
        if !c.layer.handshaking || tls.is_handshaking() {
            return;
        }
        c.layer.handshaking = false;
        let resumed = tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let tcp_up = c.layer.tcp_up.unwrap_or(c.layer.started);
        if c.layer.ws.is_some() {
            // WSS: the Upgrade comes next, within its own deadline.
            c.layer.tls_done = Some((now.saturating_duration_since(tcp_up), resumed));
            if c.layer.inbound {
                self.set_deadline(id, now + self.setup.handshake_timeout);
            } else if let Err(reason) = self.ws_start(now, id) {
                self.shut(now, id, reason, false, w);
            }
            return;
        }
        c.state = ConnState::Open;
        c.layer.deadline = None;
        let info = Opened {
            inbound: c.layer.inbound,
            connect: (!c.layer.inbound).then(|| tcp_up.saturating_duration_since(c.layer.started)),
            tls_handshake: Some(now.saturating_duration_since(tcp_up)),
            resumed,
            ws_upgrade: None,
        };
        if !c.write.is_empty() {
            self.todo.push((id, Op::Send));
        }
        if let (Some(w), Some(f)) = (w, self.worker_flow(id)) {
            w.opened(now, f, info);
        }
    }

    /// Client: send the Upgrade request on `id` (TCP, and TLS for `wss`,
    /// are up), within the handshake deadline.
    fn ws_start(&mut self, now: Instant, id: ConnId) -> Result<(), CloseReason> {
        let host = match &self.setup.ws.host {
            Some(h) => h.clone(),
            None => match self.table.get(id).map(|c| c.flow().peer) {
                Some(SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
                Some(a) => a.to_string(),
                None => return Ok(()),
            },
        };
        let Some(c) = self.table.get_mut(id) else {
            return Ok(());
        };
        let Some(ws) = c.layer.ws.as_mut() else {
            return Ok(());
        };
        let req = ws.start(now, &self.setup.ws, &host);
        wire_out(&mut c.layer.layer, &mut c.write, req)?;
        if c.layer.io.sending == 0 {
            self.todo.push((id, Op::Send));
        }
        self.set_deadline(id, now + self.setup.handshake_timeout);
        Ok(())
    }

    /// Plaintext `bytes` of a WebSocket connection: the Upgrade while it
    /// is not done (bounded by the read buffer), then frames; each whole
    /// message goes to the worker with the connection's flow.
    fn ws_data<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        bytes: &[u8],
        mut w: Option<&mut W>,
    ) {
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        if c.layer.closing {
            return;
        }
        let flow = c.flow();
        let Some(ws) = c.layer.ws.as_mut() else {
            return;
        };
        if !ws.is_open() {
            if c.read.extend(bytes).is_err() {
                let reason = CloseReason::UpgradeFailed(WsFailure::Handshake);
                self.shut(now, id, reason, false, w);
                return;
            }
            let tail = match ws.handshake(c.read.data()) {
                Ok(None) => return,
                Err((failure, reply)) => {
                    // A refusal (400, 426) goes out before the close.
                    let _ = wire_out(&mut c.layer.layer, &mut c.write, reply);
                    self.shut(now, id, CloseReason::UpgradeFailed(failure), true, w);
                    return;
                }
                Ok(Some((n, mut out))) => {
                    let tail = c.read.data()[n..].to_vec();
                    let len = c.read.len();
                    c.read.consume(len);
                    let held = ws.release_held(&mut out);
                    let sent = wire_out(&mut c.layer.layer, &mut c.write, out);
                    if let Err(reason) = held.map_err(|_| CloseReason::WriteOverflow).and(sent) {
                        self.shut(now, id, reason, false, w);
                        return;
                    }
                    tail
                }
            };
            self.ws_opened(now, id, w.as_deref_mut());
            if !tail.is_empty() {
                self.ws_data(now, id, &tail, w);
            }
            return;
        }
        let mut out = Vec::new();
        let mut messages = 0;
        let fed = ws.feed(bytes, &mut out, |m| {
            messages += 1;
            if let Some(w) = w.as_deref_mut() {
                w.handle(now, flow, m);
            }
        });
        self.messages_received += messages;
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        let Some(ws) = c.layer.ws.as_mut() else {
            return;
        };
        let outcome = match fed {
            Ok(fed) => {
                self.ws_pings += fed.pings;
                Ok(fed.closed)
            }
            Err(f) => {
                // Fail the connection: a Close that says why (§7.1.7).
                ws.fail(f, &mut out);
                Err(CloseReason::Ws(f))
            }
        };
        let sent = wire_out(&mut c.layer.layer, &mut c.write, out);
        match (outcome, sent) {
            (Err(reason), _) => self.shut(now, id, reason, true, w),
            (Ok(_), Err(reason)) => self.shut(now, id, reason, false, w),
            (Ok(true), Ok(())) => {
                // The closing handshake is done: ours answered theirs, or
                // theirs answered ours (a released connection).
                if c.layer.release
                    && let Layer::Tls(tls) = &mut c.layer.layer
                {
                    tls.send_close_notify();
                    let _ = tls_flush(tls, &mut c.write);
                }
                self.shut(now, id, CloseReason::Peer, true, w);
            }
            (Ok(false), Ok(())) => {
                if !c.write.is_empty() && c.layer.io.sending == 0 && c.layer.can_send() {
                    self.todo.push((id, Op::Send));
                }
            }
        }
    }

    /// A WebSocket Upgrade just finished on `id`: the connection carries
    /// messages now; tell the worker with every duration of its opening.
    fn ws_opened<W: Worker>(&mut self, now: Instant, id: ConnId, w: Option<&mut W>) {
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        c.state = ConnState::Open;
        c.layer.deadline = None;
        let tcp_up = c.layer.tcp_up.unwrap_or(c.layer.started);
        let info = Opened {
            inbound: c.layer.inbound,
            connect: (!c.layer.inbound).then(|| tcp_up.saturating_duration_since(c.layer.started)),
            tls_handshake: c.layer.tls_done.map(|t| t.0),
            resumed: c.layer.tls_done.is_some_and(|t| t.1),
            ws_upgrade: c
                .layer
                .ws
                .as_ref()
                .and_then(|ws| ws.upgrade_sent)
                .map(|t| now.saturating_duration_since(t)),
        };
        if !c.write.is_empty() && c.layer.io.sending == 0 {
            self.todo.push((id, Op::Send));
        }
        if let (Some(w), Some(f)) = (w, self.worker_flow(id)) {
            w.opened(now, f, info);
        }
    }

    /// Frame and hand over every whole message in `id`'s read buffer.
    fn deliver<W: Worker>(&mut self, now: Instant, id: ConnId, mut w: Option<&mut W>) {
        let Some(flow) = self.table.get(id).map(|c| c.flow()) else {
            return;
        };
        let mut pongs = 0;
        let mut invalid = false;
        if let Some(c) = self.table.get_mut(id) {
            while !c.read.is_empty() {
                let Some(w) = w.as_deref_mut() else {
                    // No worker (the loop is flushing): drop what came.
                    let n = c.read.len();
                    c.read.consume(n);
                    break;
                };
                match w.frame(c.read.data()) {
                    Frame::Message { start, end } => {
                        let end = end.min(c.read.len());
                        self.messages_received += 1;
                        w.handle(now, flow, &c.read.data()[start.min(end)..end]);
                        c.read.consume(end.max(1));
                    }
                    Frame::Partial => break,
                    Frame::Ping(n) => {
                        pongs += 1;
                        c.read.consume(n.max(1));
                    }
                    Frame::Skip(n) => c.read.consume(n.max(1)),
                    Frame::Invalid => {
                        invalid = true;
                        break;
                    }
                }
            }
        }
        if invalid {
            self.shut(now, id, CloseReason::Malformed, true, w);
            return;
        }
        for _ in 0..pongs {
            // RFC 5626 §3.5.1: a CRLF answers a double-CRLF ping.
            let _ = self.send(now, flow, b"\r\n");
        }
    }

    /// The peer ended its side (read returned 0, or `close_notify`).
    pub(crate) fn on_eof<W: Worker>(&mut self, now: Instant, id: ConnId, w: Option<&mut W>) {
        if let Some(c) = self.table.get_mut(id) {
            c.layer.io.recv_armed = false;
            if !c.layer.closing {
                // WSS whose TLS handshake never finished ends as TLS does;
                // after it, a WebSocket that never opened failed its Upgrade.
                let reason = match c.layer.ws.as_deref() {
                    Some(ws) if !ws.is_open() && !c.layer.handshaking => {
                        CloseReason::UpgradeFailed(WsFailure::Handshake)
                    }
                    Some(ws) if !ws.close_done() && !ws.closing => {
                        CloseReason::Ws(WsFailure::NoCloseFrame)
                    }
                    _ => CloseReason::Peer,
                };
                self.shut(now, id, reason, true, w);
            }
        }
    }

    /// Receiving on `id` failed with `errno`.
    pub(crate) fn on_recv_error<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        errno: i32,
        w: Option<&mut W>,
    ) {
        if let Some(c) = self.table.get_mut(id) {
            c.layer.io.recv_armed = false;
            if !c.layer.closing {
                self.shut(now, id, CloseReason::Error(errno), false, w);
            }
        }
    }

    /// A send of `id` finished: bytes written or the errno.
    pub(crate) fn on_sent<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        result: Result<usize, i32>,
        w: Option<&mut W>,
    ) {
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        c.layer.io.sending = 0;
        match result {
            Ok(n) => {
                c.write.advance(n);
                if !c.write.is_empty() {
                    self.todo.push((id, Op::Send));
                } else if c.layer.closing || (c.layer.release && !awaits_close(&c.layer)) {
                    self.todo.push((id, Op::Close));
                }
            }
            Err(e) => {
                if c.layer.closing {
                    self.todo.push((id, Op::Close));
                } else {
                    self.shut(now, id, CloseReason::Error(e), false, w);
                }
            }
        }
    }

    /// The worker is done with a keyed connection: close it once its queue
    /// went out.
    pub(crate) fn release(&mut self, now: Instant, flow: Flow) {
        let Some(id) = self.keys.remove(&(flow.transport, flow.peer, flow.conn.0)) else {
            return;
        };
        if self.table.get(id).is_some_and(|c| !c.layer.closing) {
            self.notices.push((flow, CloseReason::Local));
        }
        if let Some(c) = self.table.get_mut(id) {
            c.layer.release = true;
            c.state = ConnState::Closing;
            // WebSocket: our Close, then wait (within CLOSE_GRACE) for the
            // peer's before closing (RFC 6455 §7.1.2); TLS says
            // `close_notify` when that is done.
            let mut out = Vec::new();
            if let Some(ws) = c.layer.ws.as_mut()
                && ws.close(&mut out)
            {
                let _ = wire_out(&mut c.layer.layer, &mut c.write, out);
            } else if let Layer::Tls(tls) = &mut c.layer.layer {
                tls.send_close_notify();
                let _ = tls_flush(tls, &mut c.write);
            }
            let waits = awaits_close(&c.layer);
            if c.write.is_empty() && c.layer.io.sending == 0 && !waits {
                self.todo.push((id, Op::Close));
            } else if !c.write.is_empty() {
                self.todo.push((id, Op::Send));
            }
            if waits {
                self.set_deadline(id, now + CLOSE_GRACE);
            }
        }
    }

    /// End `id` for `reason`: tell the worker now; with `graceful`, send
    /// what is queued first (within [`CLOSE_GRACE`]).
    pub(crate) fn shut<W: Worker>(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: CloseReason,
        graceful: bool,
        w: Option<&mut W>,
    ) {
        let flow = self.worker_flow(id);
        let Some(c) = self.table.get_mut(id) else {
            return;
        };
        if c.layer.closing {
            return;
        }
        c.layer.closing = true;
        // A released connection was reported closed (`Local`) already.
        let report = !c.layer.release;
        let reason = match reason {
            CloseReason::Tls(t) if c.state == ConnState::Connecting => {
                CloseReason::HandshakeFailed(t)
            }
            r => r,
        };
        c.state = ConnState::Closing;
        let key = c.layer.key;
        let f = c.flow();
        if key.is_key() && self.keys.get(&(f.transport, f.peer, key.0)) == Some(&id) {
            self.keys.remove(&(f.transport, f.peer, key.0));
        }
        if graceful && (!c.write.is_empty() || c.layer.io.sending > 0) {
            self.todo.push((id, Op::Send));
            self.set_deadline(id, now + CLOSE_GRACE);
        } else {
            self.todo.push((id, Op::Close));
        }
        match (w, flow) {
            (Some(w), Some(flow)) if report => w.closed(now, flow, reason),
            // No worker at hand (a send's overflow): tell it in the next
            // receive phase, so the close is counted and the transactions
            // on the connection fail like any other broken connection's.
            (None, Some(flow)) if report && !self.closing_all => {
                self.notices.push((flow, reason));
            }
            _ => {}
        }
    }

    /// Close connections whose deadline passed: connects and handshakes
    /// that took too long (`ETIMEDOUT`), closes that could not flush.
    pub(crate) fn expire<W: Worker>(&mut self, now: Instant, mut w: Option<&mut W>) {
        for (flow, reason) in self.notices.drain(..) {
            if let Some(w) = w.as_deref_mut() {
                w.closed(now, flow, reason);
            }
        }
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(c) = self.table.get_mut(id) else {
                continue;
            };
            if c.layer.deadline != Some(at) {
                continue;
            }
            c.layer.deadline = None;
            if c.layer.closing || c.layer.release {
                c.layer.closing = true;
                self.todo.push((id, Op::Close));
            } else if c.state == ConnState::Connecting {
                self.shut(
                    now,
                    id,
                    CloseReason::ConnectFailed(libc::ETIMEDOUT),
                    false,
                    w.as_deref_mut(),
                );
            }
        }
    }

    /// Close every connection (the loop is ending): TLS sessions say
    /// `close_notify`; nothing is reported to the worker.
    pub(crate) fn close_all(&mut self, now: Instant) {
        self.closing_all = true;
        let ids: Vec<ConnId> = self.table.iter().map(|c| c.id()).collect();
        for id in ids {
            if let Some(c) = self.table.get_mut(id)
                && !c.layer.closing
                && c.state == ConnState::Open
            {
                let mut out = Vec::new();
                if let Some(ws) = c.layer.ws.as_mut()
                    && ws.close(&mut out)
                {
                    let _ = wire_out(&mut c.layer.layer, &mut c.write, out);
                }
                if let Layer::Tls(tls) = &mut c.layer.layer {
                    tls.send_close_notify();
                    let _ = tls_flush(tls, &mut c.write);
                }
            }
            self.shut(now, id, CloseReason::Local, true, None::<&mut NoWorker>);
        }
    }

    /// Take `id` out of the table (its socket is closed and no operation
    /// refers to it any more).
    pub(crate) fn remove(&mut self, id: ConnId) {
        if let Some(c) = self.table.remove(id) {
            let f = c.flow();
            let key = c.layer.key;
            if key.is_key() && self.keys.get(&(f.transport, f.peer, key.0)) == Some(&id) {
                self.keys.remove(&(f.transport, f.peer, key.0));
            }
        }
    }

    /// The next operation to carry out, and the connection's fd and state.
    pub(crate) fn take_todo(&mut self) -> Vec<(ConnId, Op)> {
        std::mem::take(&mut self.todo)
    }

    /// The unwritten bytes of `id` as iovecs in its [`OpMem`] (at most
    /// [`SEND_IOVS`]); returns their count and total length.
    pub(crate) fn fill_iovs(&mut self, id: ConnId) -> (usize, usize) {
        let Some(c) = self.table.get_mut(id) else {
            return (0, 0);
        };
        let mut n = 0;
        let mut total = 0;
        let mem = &mut c.layer.io.mem;
        for s in c.write.slices().take(SEND_IOVS) {
            mem.iov[n] = libc::iovec {
                iov_base: s.as_ptr().cast_mut().cast(),
                iov_len: s.len(),
            };
            n += 1;
            total += s.len();
        }
        mem.msg = {
            // SAFETY: all-zero is a valid msghdr.
            let mut m: libc::msghdr = unsafe { zeroed() };
            m.msg_iov = mem.iov.as_mut_ptr();
            m.msg_iovlen = n as _;
            m
        };
        (n, total)
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        for c in self.table.iter() {
            if !c.layer.io.close_sent {
                close_fd(c.layer.fd);
            }
        }
    }
}

/// Stands in for a worker where none is to be told.
pub(crate) struct NoWorker;

impl Worker for NoWorker {
    fn handle(&mut self, _: Instant, _: Flow, _: &[u8]) {}
    fn tick(&mut self, _: Instant, _: &super::IoCounters) -> super::Tick {
        super::Tick::Stop
    }
    fn poll_transmit(&mut self, _: &mut Vec<u8>) -> Option<Flow> {
        None
    }
}

/// `ws` and `wss`: a WebSocket layer runs above the bytes.
fn is_ws(kind: TransportKind) -> bool {
    matches!(kind, TransportKind::Ws | TransportKind::Wss)
}

/// A released WebSocket connection sent its Close and waits for the
/// peer's.
fn awaits_close(l: &Link) -> bool {
    l.ws.as_deref()
        .is_some_and(|ws| ws.closing && !ws.close_done())
}

/// Wire bytes of the layers above (an Upgrade, WebSocket frames) into the
/// write queue, through TLS when there is TLS.
fn wire_out(layer: &mut Layer, write: &mut WriteQueue, bytes: Vec<u8>) -> Result<(), CloseReason> {
    if bytes.is_empty() {
        return Ok(());
    }
    match layer {
        Layer::Tls(tls) => tls_write(tls, &bytes, write),
        Layer::Plain => write.push(bytes),
        Layer::TlsPending => Err(CloseReason::Tls(TlsFailure::Protocol)),
    }
}

/// Encrypt `msg` and queue the records.
fn tls_write(
    tls: &mut rustls::Connection,
    msg: &[u8],
    out: &mut WriteQueue,
) -> Result<(), CloseReason> {
    tls.writer()
        .write_all(msg)
        .map_err(|_| CloseReason::WriteOverflow)?;
    tls_flush(tls, out)
}

/// Move every TLS record rustls has ready into the write queue.
fn tls_flush(
    tls: &mut rustls::Connection,
    out: &mut super::conn::WriteQueue,
) -> Result<(), CloseReason> {
    if !tls.wants_write() {
        return Ok(());
    }
    let mut chunk = Vec::new();
    while tls.wants_write() {
        if tls.write_tls(&mut chunk).is_err() {
            return Err(CloseReason::Tls(TlsFailure::Protocol));
        }
    }
    out.push(chunk)
}

/// For backends: the raw fd of a listener.
pub(crate) fn listener_fd(l: &Listener) -> RawFd {
    l.socket.as_raw_fd()
}

#[cfg(test)]
mod tests;
