//! I/O at the edge: one event loop per pinned worker, io_uring first, epoll
//! fallback.
//!
//! The transport knows nothing about SIP. It moves datagrams between one UDP
//! socket and a [`Worker`] — a sans-IO endpoint plus its pacer and statistics
//! (see `run`) — and tells it what time it is. Both backends run the one
//! turn in `turn` and only supply the I/O:
//!
//! 1. deliver every received datagram (`Worker::handle`),
//! 2. `Worker::tick(now)`: fire due timers, start due attempts, drain events;
//!    it returns the next instant the loop must wake up, or `Tick::Stop`,
//! 3. drain `Worker::poll_transmit` into a batch of sends,
//! 4. submit the batch and sleep until a datagram arrives or the wake-up
//!    instant passes (one `io_uring_enter` per turn with io_uring).
//!
//! Both receive at most [`MAX_DATAGRAM`] bytes of payload and count larger
//! datagrams as truncated. Kernel receive-queue drops are read from the
//! `SO_RXQ_OVFL` control message on every datagram and reported in
//! [`IoCounters::kernel_drops`].
//!
//! ICMP errors (port, host or network unreachable) reach an unconnected UDP
//! socket only through `IP_RECVERR`/`IPV6_RECVERR` and the socket's error
//! queue. Both loops notice a pending error (epoll: `EPOLLERR`; io_uring: a
//! multishot `POLLERR` poll, or a receive or send completing with the
//! error), drain the queue with `recvmsg(MSG_ERRQUEUE)` and hand each
//! error's original destination to [`Worker::unreachable`]: RFC 3261 §18.4
//! ("the transport layer SHOULD inform the transport user of a failure in
//! sending"), so the transaction layer can end at once (§17.1.4) instead of
//! at Timer B/F.
//!
//! Stream transports (TCP, TLS, WebSocket) live in a per-worker
//! [`conn::ConnTable`] driven by `stream`; a loop set up without them
//! drops a message on a stream flow, counts it in
//! [`IoCounters::send_errors`] and reports it to [`Worker::unreachable`].

// The OS edge: the only module allowed unsafe code (every block carries a
// `// SAFETY:` comment; clippy's undocumented_unsafe_blocks is denied).
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::flow::Flow;

pub mod conn;
pub mod epoll;
/// The kernel floor of CPU per call (issue 18): benches and scripts only.
#[cfg(any(test, feature = "testing"))]
pub mod floor;
mod stream;
/// Small endpoints that exercise the loops: for tests and the `testing`
/// feature only.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
mod turn;
pub mod uring;
pub mod ws;

pub use conn::{CloseReason, TlsFailure, errno_name};
pub use stream::{Listener, StreamSetup};
pub use ws::{WsClientSetup, WsFailure};

/// `SO_RXQ_OVFL` (include/uapi/asm-generic/socket.h): ask for a control
/// message carrying the socket's cumulative count of dropped datagrams.
const SO_RXQ_OVFL: libc::c_int = 40;
/// `SO_REUSEPORT` (asm-generic value, used by x86-64 and aarch64).
const SO_REUSEPORT: libc::c_int = 15;

/// [`Worker::batch_window`] unless the worker says otherwise.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_micros(100);

/// A [`Worker::batch_window`] that holds every datagram until the
/// worker's next deadline: one wake-up per pacing tick.
pub const UNTIL_DEADLINE: Duration = Duration::MAX;

/// Longest a loop sleeps without looking at its stop flag.
pub const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Largest UDP payload a worker receives: 3,988 bytes. Both backends
/// count anything larger in [`IoCounters::truncated`] and drop it.
///
/// RFC 3261 §18.1.1: a request within 200 bytes of the path MTU, or larger
/// than 1300 bytes when the path MTU is unknown, MUST go over a
/// congestion-controlled transport such as TCP. Over UDP a compliant peer
/// therefore sends requests above 1300 bytes only on a path whose larger
/// MTU it knows (jumbo frames, loopback), and otherwise only responses
/// (which go back on the request's transport, §18.2.2). 3,988 is over
/// three times 1300: room for a large SDP answer, several digest
/// challenges or a long Record-Route set, and for peers that overshoot the
/// 1300-byte rule. Bigger messages belong on TCP, not on fragmented datagrams (IPv4
/// allows up to 65,507 bytes).
///
/// Memory: io_uring keeps 2048 provided buffers per worker, each laid out
/// as `io_uring_recvmsg_out` (16 bytes) + name (28, a `sockaddr_in6`) +
/// control (64, `CONTROL_LEN`) + payload. With 3,988 bytes of payload
/// each buffer is exactly one 4 KiB page: 8 MiB per worker, all of it
/// resident once the ring has cycled, since every buffer gets written.
/// Each further page per buffer would cost another 8 MiB per worker. epoll
/// holds 64 payload buffers (250 KiB).
pub const MAX_DATAGRAM: usize = 3988;

/// What the loop tells the worker, and the worker tells the loop.
pub trait Worker {
    /// One message received on `from` at time `now`.
    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]);

    /// Once per loop turn, after the received datagrams: fire timers, start
    /// attempts that are due, drain events into statistics. `io` are the
    /// loop's own counters so far.
    fn tick(&mut self, now: Instant, io: &IoCounters) -> Tick;

    /// The next message to send, written into `buf` (cleared by the callee),
    /// and the flow it goes on.
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow>;

    /// How long a wait may hold back received datagrams to handle them in
    /// one turn (io_uring `min_wait`). Longer saves wake-ups (CPU per
    /// call); arrival times stay exact through kernel timestamps, but
    /// answers leave up to this much later. A load generator can afford a
    /// pacing tick; a target under test should answer at once.
    /// [`UNTIL_DEADLINE`] (or anything at least as long as the wait) means
    /// datagrams never end a wait early: the loop wakes at the worker's
    /// next deadline (or when a large batch of completions is ready).
    fn batch_window(&self) -> Duration {
        DEFAULT_BATCH_WINDOW
    }

    /// A message to `dest` could not be delivered: RFC 3261 §18.4, the
    /// transport informs its user of a failure in sending; §17.1.4: the
    /// client transaction then informs the TU and terminates.
    ///
    /// Either the kernel reported an ICMP error read from the socket's
    /// error queue (`errno` is what the ICMP message maps to:
    /// `ECONNREFUSED` for port unreachable, `EHOSTUNREACH`, `ENETUNREACH`,
    /// ...), or the loop cannot carry `dest`'s transport and dropped the
    /// message (`EPROTONOSUPPORT`: a stream flow on the UDP-only loop).
    /// Called during the receive phase of a turn, before `tick`. Default:
    /// ignored.
    fn unreachable(&mut self, _now: Instant, _dest: Flow, _errno: i32) {}

    /// A connection of this worker closed: `flow` names it (kind, peer and
    /// its [`ConnId`](crate::flow::ConnId), stale from now on), `reason`
    /// says why. What was queued on it is lost, and transactions waiting on
    /// it have failed in sending (§18.4). Only stream transports have
    /// connections: the UDP loop never calls this. Default: ignored.
    fn closed(&mut self, _now: Instant, _flow: Flow, _reason: CloseReason) {}

    /// A stream connection is ready to carry messages: TCP connected or
    /// accepted, and for TLS its handshake done. `flow` names it as the
    /// worker sends on it (its key for a keyed connection). Default:
    /// ignored.
    fn opened(&mut self, _now: Instant, _flow: Flow, _info: Opened) {}

    /// Where the next message starts and ends in `buf`, the unframed bytes
    /// of a stream connection: the transport knows no message format, so
    /// the worker frames (SIP: by Content-Length, RFC 3261 §18.3).
    /// Default: all of it is one message.
    fn frame(&mut self, buf: &[u8]) -> Frame {
        Frame::Message {
            start: 0,
            end: buf.len(),
        }
    }

    /// A keyed connection the worker no longer needs (one per attempt,
    /// after the attempt ended): the loop closes it once what is queued on
    /// it went out. Asked after every `tick`. Default: none.
    fn poll_release(&mut self) -> Option<Flow> {
        None
    }
}

/// See [`Worker::frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message at `buf[start..end]`; `end` bytes are consumed.
    Message { start: usize, end: usize },
    /// Not a whole message yet: wait for more bytes.
    Partial,
    /// A keep-alive ping of this many bytes (RFC 5626 §3.5.1: CRLFCRLF),
    /// answered with a pong (CRLF).
    Ping(usize),
    /// Bytes to drop (a keep-alive pong, CRLF).
    Skip(usize),
    /// The bytes cannot be framed: the connection is closed
    /// ([`CloseReason::Malformed`]).
    Invalid,
}

/// What [`Worker::opened`] learns about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// This side accepted it (a server's connection).
    pub inbound: bool,
    /// From the start of the connect to TCP's handshake done (outbound
    /// connections only).
    pub connect: Option<Duration>,
    /// From TCP established (or accepted) to the TLS handshake done.
    pub tls_handshake: Option<Duration>,
    /// The TLS session was resumed (RFC 8446 §2.2, RFC 5077).
    pub resumed: bool,
    /// WebSocket: from the Upgrade request sent to its 101 received
    /// (outbound connections only).
    pub ws_upgrade: Option<Duration>,
}

/// The worker's answer to a loop turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Keep going; wake up no later than this instant (`None`: only on I/O,
    /// or after [`MAX_SLEEP`]).
    Continue(Option<Instant>),
    /// Flush what is queued to send, then leave the loop.
    Stop,
}

/// Counters the loop keeps for its socket (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Sends the kernel refused (e.g. `ECONNREFUSED` after an ICMP error,
    /// `ENOBUFS`); the datagram is lost and SIP retransmission takes over.
    pub send_errors: u64,
    /// Datagrams larger than the receive buffer, dropped.
    pub truncated: u64,
    /// Datagrams the kernel dropped because the receive queue was full
    /// (`SO_RXQ_OVFL`).
    pub kernel_drops: u64,
    /// Loop turns (one `io_uring_enter` or `epoll_pwait2` each).
    pub turns: u64,
    /// ICMP errors read from the socket's error queue and reported to
    /// [`Worker::unreachable`] (port, host or network unreachable).
    pub icmp_errors: u64,
    /// Stream connections open now (a gauge, not cumulative), connecting
    /// and closing ones included.
    pub conns_open: u64,
    /// Messages framed out of stream connections.
    pub stream_messages_received: u64,
    /// Messages queued on stream connections.
    pub stream_messages_sent: u64,
    /// WebSocket pings received and answered (RFC 6455 §5.5.2).
    pub ws_pings: u64,
}

/// Which event loop drives the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: multishot `RecvMsg` with a provided-buffer ring, batched
    /// `SendMsg`.
    Uring,
    /// epoll with `recvmmsg`/`sendmmsg`.
    Epoll,
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uring" | "io_uring" | "io-uring" => Ok(Backend::Uring),
            "epoll" => Ok(Backend::Epoll),
            "auto" => Ok(Backend::Auto),
            other => Err(format!(
                "unknown backend '{other}' (expected uring, epoll or auto)"
            )),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Auto => "auto",
        })
    }
}

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen on {kind}:{addr}: {source}")]
    BindStream {
        kind: crate::flow::TransportKind,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot set up socket: {0}")]
    Socket(io::Error),
    #[error("io_uring is not usable here: {0}")]
    UringUnavailable(io::Error),
    #[error("io_uring event loop failed: {0}")]
    Uring(io::Error),
    #[error("epoll event loop failed: {0}")]
    Epoll(io::Error),
}

impl Backend {
    /// Turn `Auto` into a concrete backend by probing io_uring once.
    ///
    /// Returns the backend and, when `Auto` fell back to epoll, a one-line
    /// note saying why (the caller prints it once). A forced `Uring` that the
    /// kernel refuses is an error.
    pub fn resolve(self) -> Result<(Backend, Option<String>), TransportError> {
        match self {
            Backend::Epoll => Ok((Backend::Epoll, None)),
            Backend::Uring => uring::probe()
                .map(|()| (Backend::Uring, None))
                .map_err(TransportError::UringUnavailable),
            Backend::Auto => match uring::probe() {
                Ok(()) => Ok((Backend::Uring, None)),
                Err(e) => Ok((
                    Backend::Epoll,
                    Some(format!(
                        "io_uring unavailable ({e}); using the epoll backend (recvmmsg/sendmmsg)"
                    )),
                )),
            },
        }
    }
}

/// Run `worker` on `socket` with `backend` (already resolved) until the worker
/// returns [`Tick::Stop`]. The worker owns every decision about stopping and
/// draining; the loop only guarantees a `tick` at least every [`MAX_SLEEP`].
/// Datagrams only: see [`run_worker_loop`] for stream connections.
pub fn run_loop<W: Worker>(
    backend: Backend,
    socket: &UdpSocket,
    worker: &mut W,
) -> Result<IoCounters, TransportError> {
    run_worker_loop(backend, socket, &[], &StreamSetup::new(), worker)
}

/// [`run_loop`] with stream connections: `listeners` (a server's TCP and
/// TLS sockets) and outbound connections as `streams` allows. The
/// connection table is the loop's own and dies with it; no connection
/// outlives its worker's loop.
pub fn run_worker_loop<W: Worker>(
    backend: Backend,
    socket: &UdpSocket,
    listeners: &[Listener],
    streams: &StreamSetup,
    worker: &mut W,
) -> Result<IoCounters, TransportError> {
    let mut setup = streams.clone();
    setup.enabled |= !listeners.is_empty();
    // Declared before the loop runs, dropped after its ring: in-flight
    // operations never outlive the memory they point at.
    let mut table = stream::Streams::new(setup);
    match backend {
        Backend::Uring | Backend::Auto => uring::run(socket, listeners, &mut table, worker),
        Backend::Epoll => epoll::run(socket, listeners, &mut table, worker),
    }
}

/// Bind a TCP listening socket on `addr` for `kind` (TCP or TLS):
/// non-blocking, `SO_REUSEADDR`, and `SO_REUSEPORT` with `reuse_port` so
/// each worker of a server has its own accept queue on one address (the
/// kernel spreads new connections among them).
pub fn bind_listener(
    kind: crate::flow::TransportKind,
    addr: SocketAddr,
    reuse_port: bool,
) -> Result<Listener, TransportError> {
    let fd = new_socket(addr, libc::SOCK_STREAM).map_err(TransportError::Socket)?;
    // SAFETY: `fd` is a fresh socket nothing else owns; the listener
    // closes it on drop (also on early return).
    let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(TransportError::Socket)?;
    if reuse_port {
        setsockopt_int(fd, libc::SOL_SOCKET, SO_REUSEPORT, 1).map_err(TransportError::Socket)?;
    }
    bind_fd(fd, addr).map_err(|source| TransportError::BindStream { kind, addr, source })?;
    // SAFETY: plain listen(2) on the socket bound above.
    if unsafe { libc::listen(fd, 4096) } < 0 {
        return Err(TransportError::Socket(io::Error::last_os_error()));
    }
    Ok(Listener { kind, socket })
}

/// Raise this process's open-file limit to its hard limit: every stream
/// connection is a descriptor, and the common soft limit (1,024) is far
/// below what a connection storm needs. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit not above the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Socket options for a worker's socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Bind with `SO_REUSEPORT` so several workers share one address and the
    /// kernel spreads datagrams among them by 4-tuple hash (server side).
    pub reuse_port: bool,
    /// Requested `SO_RCVBUF`/`SO_SNDBUF` in bytes (the kernel caps it at
    /// `net.core.rmem_max`; `SO_RCVBUFFORCE` is tried first and needs
    /// `CAP_NET_ADMIN`).
    pub buffer_bytes: usize,
    /// Set `IP_RECVERR` (`IPV6_RECVERR` on IPv6 sockets) so ICMP errors for
    /// this unconnected socket are queued on its error queue, where the loop
    /// reads them and calls [`Worker::unreachable`]. Without it Linux drops
    /// ICMP errors for unconnected UDP sockets and a closed port looks like
    /// a black hole (attempts end at Timer B/F).
    pub recv_errors: bool,
    /// Set `SO_TIMESTAMPNS`: the kernel stamps every datagram when it
    /// arrives, so latencies are measured from arrival, not from when a
    /// batched loop turn got to it (see `RxClock`).
    pub rx_timestamps: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            reuse_port: false,
            buffer_bytes: 8 << 20,
            recv_errors: true,
            rx_timestamps: true,
        }
    }
}

/// Create a non-blocking UDP socket bound to `addr` with raised buffers and
/// drop counting enabled.
pub fn bind_udp(addr: SocketAddr, opts: SocketOptions) -> Result<UdpSocket, TransportError> {
    let family = family_of(addr);
    let fd = new_socket(addr, libc::SOCK_DGRAM).map_err(TransportError::Socket)?;
    // SAFETY: `fd` is a freshly created socket that nothing else owns; the
    // UdpSocket takes ownership and closes it on drop (also on early return).
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    if opts.reuse_port {
        setsockopt_int(fd, libc::SOL_SOCKET, SO_REUSEPORT, one).map_err(TransportError::Socket)?;
    }
    // Drop counting is best effort: an old kernel without it still works.
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, SO_RXQ_OVFL, one);
    if opts.rx_timestamps {
        // Best effort too: without stamps the loop uses its own clock.
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, one);
    }
    if opts.recv_errors {
        // IPv6 sockets get both: IP_RECVERR covers v4-mapped peers.
        if family == libc::AF_INET6 {
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, one)
                .map_err(TransportError::Socket)?;
            let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, one);
        } else {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, one)
                .map_err(TransportError::Socket)?;
        }
    }
    let want = libc::c_int::try_from(opts.buffer_bytes).unwrap_or(libc::c_int::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(fd, libc::SOL_SOCKET, force, want).is_err() {
            let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, want);
        }
    }
    bind_fd(fd, addr).map_err(|source| TransportError::Bind { addr, source })?;
    Ok(sock)
}

fn family_of(addr: SocketAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A non-blocking, close-on-exec socket of type `ty` (`SOCK_DGRAM`,
/// `SOCK_STREAM`) for the family of `addr`; the caller owns the fd.
pub(crate) fn new_socket(addr: SocketAddr, ty: libc::c_int) -> io::Result<RawFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            family_of(addr),
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// bind(2) `fd` to `addr`.
pub(crate) fn bind_fd(fd: RawFd, addr: SocketAddr) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = sockaddr_from(addr, &mut storage);
    // SAFETY: `storage` holds a valid sockaddr of length `len`; `fd` is the
    // caller's open socket.
    if unsafe { libc::bind(fd, (&raw const storage).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` lives for the duration of the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Effective receive buffer of a socket, in bytes (diagnostics and tests).
pub fn recv_buffer_size(sock: &UdpSocket) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(v).unwrap_or(0))
}

/// Write `addr` as a C socket address into `out`; returns its length.
pub(crate) fn sockaddr_from(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned
            // for sockaddr_in.
            unsafe { (&raw mut *out).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned
            // for sockaddr_in6.
            unsafe { (&raw mut *out).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Parse raw C socket-address bytes (as the kernel wrote them) into a
/// `SocketAddr`; `None` for other families or short data.
pub(crate) fn sockaddr_to(raw: &[u8]) -> Option<SocketAddr> {
    if raw.len() < 2 {
        return None;
    }
    let family = libc::sa_family_t::from_ne_bytes([raw[0], raw[1]]);
    if libc::c_int::from(family) == libc::AF_INET && raw.len() >= size_of::<libc::sockaddr_in>() {
        // SAFETY: length checked above; read_unaligned copes with any alignment.
        let sin = unsafe { raw.as_ptr().cast::<libc::sockaddr_in>().read_unaligned() };
        let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
        Some(SocketAddr::V4(SocketAddrV4::new(
            ip,
            u16::from_be(sin.sin_port),
        )))
    } else if libc::c_int::from(family) == libc::AF_INET6
        && raw.len() >= size_of::<libc::sockaddr_in6>()
    {
        // SAFETY: length checked above; read_unaligned copes with any alignment.
        let sin6 = unsafe { raw.as_ptr().cast::<libc::sockaddr_in6>().read_unaligned() };
        let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
        Some(SocketAddr::V6(SocketAddrV6::new(
            ip,
            u16::from_be(sin6.sin6_port),
            sin6.sin6_flowinfo,
            sin6.sin6_scope_id,
        )))
    } else {
        None
    }
}

/// Walk control-message bytes as the kernel filled `msg_control` and call
/// `f(level, type, data)` for each message until it returns `Some`.
/// Malformed lengths end the walk.
fn find_cmsg<T>(control: &[u8], mut f: impl FnMut(i32, i32, &[u8]) -> Option<T>) -> Option<T> {
    let hdr = size_of::<libc::cmsghdr>();
    let mut off = 0usize;
    while off + hdr <= control.len() {
        // SAFETY: at least `hdr` bytes remain at `off`; read_unaligned copes
        // with any alignment.
        let cmsg = unsafe {
            control
                .as_ptr()
                .add(off)
                .cast::<libc::cmsghdr>()
                .read_unaligned()
        };
        let len = cmsg.cmsg_len;
        if len < hdr || off + len > control.len() {
            return None;
        }
        if let Some(v) = f(
            cmsg.cmsg_level,
            cmsg.cmsg_type,
            &control[off + hdr..off + len],
        ) {
            return Some(v);
        }
        // Each cmsg is padded to the alignment of size_t (CMSG_ALIGN).
        let align = size_of::<usize>();
        off += len.div_ceil(align) * align;
    }
    None
}

/// Return the `SO_RXQ_OVFL` drop counter from control-message bytes, if
/// present.
pub(crate) fn rxq_ovfl(control: &[u8]) -> Option<u32> {
    find_cmsg(control, |level, ty, d| {
        (level == libc::SOL_SOCKET && ty == SO_RXQ_OVFL && d.len() >= 4)
            .then(|| u32::from_ne_bytes([d[0], d[1], d[2], d[3]]))
    })
}

/// The `errno` of an ICMP error in error-queue control bytes: the
/// `sock_extended_err` of an `IP_RECVERR`/`IPV6_RECVERR` message whose
/// origin is ICMP or ICMPv6. Path-MTU messages (`EMSGSIZE`) are not
/// delivery failures and give `None`, as do locally generated errors.
pub(crate) fn icmp_errno(control: &[u8]) -> Option<i32> {
    find_cmsg(control, |level, ty, d| {
        let recverr = (level == libc::IPPROTO_IP && ty == libc::IP_RECVERR)
            || (level == libc::IPPROTO_IPV6 && ty == libc::IPV6_RECVERR);
        if !recverr || d.len() < size_of::<libc::sock_extended_err>() {
            return None;
        }
        // SAFETY: length checked above; read_unaligned copes with any
        // alignment, and every bit pattern is a valid sock_extended_err.
        let ee = unsafe {
            d.as_ptr()
                .cast::<libc::sock_extended_err>()
                .read_unaligned()
        };
        let icmp = matches!(
            ee.ee_origin,
            libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
        );
        let errno = i32::try_from(ee.ee_errno).unwrap_or(libc::EIO);
        (icmp && errno != libc::EMSGSIZE && errno != 0).then_some(errno)
    })
}

/// Control-area size that fits one `SO_RXQ_OVFL` message (CMSG_SPACE(4) =
/// 24) and one `SCM_TIMESTAMPNS` (CMSG_SPACE(16) = 32).
pub(crate) const CONTROL_LEN: usize = 64;

/// The `SCM_TIMESTAMPNS` arrival stamp (CLOCK_REALTIME) in control-message
/// bytes, as nanoseconds since the epoch.
pub(crate) fn rx_stamp_ns(control: &[u8]) -> Option<i128> {
    find_cmsg(control, |level, ty, d| {
        if level != libc::SOL_SOCKET || ty != libc::SCM_TIMESTAMPNS || d.len() < 16 {
            return None;
        }
        let sec = i64::from_ne_bytes(d[..8].try_into().ok()?);
        let nsec = i64::from_ne_bytes(d[8..16].try_into().ok()?);
        Some(i128::from(sec) * 1_000_000_000 + i128::from(nsec))
    })
}

/// Maps kernel arrival stamps (wall clock) onto the loop's monotonic clock.
///
/// A loop that batches wake-ups handles a datagram up to a batch window
/// after it arrived; handing the worker the arrival instant instead keeps
/// response latencies true to the wire. Instants handed out never go
/// backwards and never pass the turn's `now`, so the worker sees a
/// monotonic clock whatever the wall clock does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxClock {
    now: Instant,
    real_ns: i128,
    floor: Instant,
}

impl RxClock {
    pub(crate) fn new(now: Instant) -> Self {
        RxClock {
            now,
            real_ns: real_now_ns(),
            floor: now,
        }
    }

    /// Start of a loop turn at `now`.
    pub(crate) fn turn(&mut self, now: Instant) {
        self.now = now;
        self.real_ns = real_now_ns();
    }

    /// The instant a datagram with these control bytes arrived.
    pub(crate) fn arrival(&mut self, control: &[u8]) -> Instant {
        let at = match rx_stamp_ns(control) {
            Some(ts) => {
                let ago = u64::try_from((self.real_ns - ts).max(0)).unwrap_or(u64::MAX);
                // Older than a second means the wall clock moved: ignore.
                if ago > 1_000_000_000 {
                    self.now
                } else {
                    self.now
                        .checked_sub(Duration::from_nanos(ago))
                        .unwrap_or(self.now)
                }
            }
            None => self.now,
        };
        let at = at.clamp(self.floor.min(self.now), self.now);
        self.floor = at;
        at
    }
}

fn real_now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// CPU time and peak resident memory of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceUsage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// CPU seconds of all threads, exact (`CLOCK_PROCESS_CPUTIME_ID`).
    pub total_s: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

/// `getrusage(RUSAGE_SELF)`: every thread of the process (workers and
/// aggregator). Lives here, at the OS edge, with the crate's other unsafe
/// calls. On failure all fields are 0.
pub fn resource_usage() -> ResourceUsage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory large enough for a `rusage`
    // (zero-initialised, so reading it is defined even if the call fails);
    // RUSAGE_SELF is a valid `who`; getrusage writes only into `ru`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return ResourceUsage::default();
    }
    // SAFETY: zero-initialised above and filled by a successful getrusage;
    // every bit pattern is a valid `rusage` (plain integers).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant the kernel knows; clock_gettime writes only into `ts`.
    let total_s = if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    ResourceUsage {
        user_s: tv(ru.ru_utime),
        sys_s: tv(ru.ru_stime),
        total_s,
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rx_clock_maps_kernel_stamps_monotonically() {
        let t0 = Instant::now();
        let mut c = RxClock::new(t0);
        let now = t0 + Duration::from_millis(10);
        c.turn(now);
        let real = c.real_ns;
        let stamp = |ago_ns: i128| {
            let ts = real - ago_ns;
            let mut d = ((ts / 1_000_000_000) as i64).to_ne_bytes().to_vec();
            d.extend_from_slice(&((ts % 1_000_000_000) as i64).to_ne_bytes());
            cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &d)
        };
        // 300 us ago, then 500 us ago (out of order): never backwards.
        let a = c.arrival(&stamp(300_000));
        assert_eq!(now - a, Duration::from_micros(300));
        let b = c.arrival(&stamp(500_000));
        assert_eq!(b, a);
        // A stamp after `now` (clock skew) and no stamp at all: `now`.
        assert_eq!(c.arrival(&stamp(-50_000)), now);
        assert_eq!(c.arrival(&[]), now);
        // A wall-clock jump (stamp from an hour ago) is ignored.
        assert_eq!(c.arrival(&stamp(3_600_000_000_000)), now);
        // With the drop counter in front, the stamp is still found.
        let mut both = cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &7u32.to_ne_bytes());
        both.extend_from_slice(&stamp(0));
        assert!(both.len() <= CONTROL_LEN);
        assert!(rx_stamp_ns(&both).is_some());
        assert_eq!(rxq_ovfl(&both), Some(7));
    }

    #[test]
    fn resource_usage_is_plausible() {
        // Burn a little CPU so the exact total has something to show.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let u = super::resource_usage();
        assert!(u.max_rss_kib > 0);
        assert!(u.user_s >= 0.0 && u.sys_s >= 0.0);
        // The exact total is never zero after real work, whatever the
        // tick-sampled split says.
        assert!(u.total_s > 0.0, "{u:?}");
    }

    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "127.0.0.1:5060",
            "[::1]:5061",
            "10.1.2.3:1",
            "[fe80::1%2]:65535",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut st: libc::sockaddr_storage = unsafe { zeroed() };
            let len = sockaddr_from(addr, &mut st) as usize;
            // SAFETY: `st` is initialised for `len` bytes.
            let raw = unsafe { std::slice::from_raw_parts((&raw const st).cast::<u8>(), len) };
            assert_eq!(sockaddr_to(raw), Some(addr), "{a}");
        }
        assert_eq!(sockaddr_to(&[]), None);
        assert_eq!(sockaddr_to(&[2, 0, 1]), None);
    }

    #[test]
    fn backend_parse() {
        assert_eq!("uring".parse::<Backend>(), Ok(Backend::Uring));
        assert_eq!("epoll".parse::<Backend>(), Ok(Backend::Epoll));
        assert_eq!("auto".parse::<Backend>(), Ok(Backend::Auto));
        assert!("kqueue".parse::<Backend>().is_err());
    }

    #[test]
    fn bind_conflict_is_bind_error() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
        let addr = a.local_addr().unwrap();
        match bind_udp(addr, SocketOptions::default()) {
            Err(TransportError::Bind { .. }) => {}
            other => panic!("expected bind error, got {other:?}"),
        }
        assert!(recv_buffer_size(&a).unwrap() > 0);
    }

    /// One control message as the kernel lays it out: `cmsghdr` (size_t
    /// length, int level, int type), data, padding to size_t alignment.
    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let hdr = size_of::<libc::cmsghdr>();
        let mut v = (hdr + data.len()).to_ne_bytes().to_vec();
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.resize(hdr, 0);
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(size_of::<usize>()) * size_of::<usize>(), 0);
        v
    }

    /// `sock_extended_err` bytes: errno, origin, type, code, pad, info, data.
    fn ee(errno: i32, origin: u8, ty: u8, code: u8) -> Vec<u8> {
        let mut v = (errno as u32).to_ne_bytes().to_vec();
        v.extend_from_slice(&[origin, ty, code, 0]);
        v.extend_from_slice(&[0; 8]);
        v
    }

    #[test]
    fn icmp_errno_from_control_messages() {
        let (ip, ip6) = (libc::IPPROTO_IP, libc::IPPROTO_IPV6);
        let (icmp, icmp6) = (libc::SO_EE_ORIGIN_ICMP, libc::SO_EE_ORIGIN_ICMP6);
        let refused = libc::ECONNREFUSED;
        let ovfl = cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &7u32.to_ne_bytes());
        let cases: Vec<(&str, Vec<u8>, Option<i32>)> = vec![
            (
                "v4 port unreachable",
                cmsg(ip, libc::IP_RECVERR, &ee(refused, icmp, 3, 3)),
                Some(refused),
            ),
            (
                "v6 port unreachable",
                cmsg(ip6, libc::IPV6_RECVERR, &ee(refused, icmp6, 1, 4)),
                Some(refused),
            ),
            (
                "host unreachable",
                cmsg(ip, libc::IP_RECVERR, &ee(libc::EHOSTUNREACH, icmp, 3, 1)),
                Some(libc::EHOSTUNREACH),
            ),
            (
                "after another cmsg",
                [
                    ovfl.clone(),
                    cmsg(ip, libc::IP_RECVERR, &ee(refused, icmp, 3, 3)),
                ]
                .concat(),
                Some(refused),
            ),
            (
                "path MTU is no failure",
                cmsg(ip, libc::IP_RECVERR, &ee(libc::EMSGSIZE, icmp, 3, 4)),
                None,
            ),
            (
                "local origin",
                cmsg(
                    ip,
                    libc::IP_RECVERR,
                    &ee(refused, libc::SO_EE_ORIGIN_LOCAL, 0, 0),
                ),
                None,
            ),
            (
                "zero errno",
                cmsg(ip, libc::IP_RECVERR, &ee(0, icmp, 3, 3)),
                None,
            ),
            (
                "wrong level",
                cmsg(ip6, libc::IP_RECVERR, &ee(refused, icmp, 3, 3)),
                None,
            ),
            (
                "short data",
                cmsg(ip, libc::IP_RECVERR, &ee(refused, icmp, 3, 3)[..8]),
                None,
            ),
            ("no recverr", ovfl.clone(), None),
            ("empty", Vec::new(), None),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(icmp_errno(&bytes), want, "{name}");
        }
        assert_eq!(rxq_ovfl(&ovfl), Some(7));
        let mut bad_len = cmsg(ip, libc::IP_RECVERR, &ee(refused, icmp, 3, 3));
        bad_len[..size_of::<usize>()].copy_from_slice(&9999usize.to_ne_bytes());
        assert_eq!(icmp_errno(&bad_len), None);
    }

    proptest::proptest! {
        /// Any bytes as control data: no panic, and never an errno the
        /// kernel would not have written (EMSGSIZE, 0).
        #[test]
        fn control_parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let e = icmp_errno(&bytes);
            proptest::prop_assert!(e != Some(0) && e != Some(libc::EMSGSIZE));
            let _ = rxq_ovfl(&bytes);
        }
    }

    #[test]
    fn rxq_ovfl_ignores_garbage() {
        assert_eq!(rxq_ovfl(&[]), None);
        assert_eq!(rxq_ovfl(&[0xff; 40]), None);
    }
}
