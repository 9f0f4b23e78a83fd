//! The one loop turn every backend runs.
//!
//! [`drive`] owns the turn structure, the stop and final-flush logic, the
//! order in which the socket's error queue is read, and every
//! [`IoCounters`] update; a backend ([`LoopIo`]: io_uring in `uring`, epoll
//! in `epoll`) only moves bytes between its socket and the kernel:
//!
//! 1. receive phase: the backend reaps what arrived and hands each datagram
//!    to [`Inbox::datagram`] (drop counter, truncation, arrival stamp,
//!    `Worker::handle`); then, if a receive, a send or a poll saw an error
//!    pending on the socket, the error queue is read ([`drain_error_queue`]),
//!    and messages refused last turn are reported (`Worker::unreachable`);
//! 2. `Worker::tick(now)`;
//! 3. the worker's `poll_transmit` output goes into the backend's send
//!    buffers ([`LoopIo::send_buf`], [`LoopIo::queue_send`]) until it has no
//!    more or the backend no room; a message on a stream flow goes to the
//!    stream core ([`Streams::send`]), which queues it on its connection
//!    (opening one if need be); one it refuses is counted in `send_errors`
//!    and reported to `Worker::unreachable` in the next receive phase; then
//!    the worker's released connections ([`Worker::poll_release`]);
//! 4. [`LoopIo::streams`]: the backend carries out the stream operations
//!    the core queued (connect, receive, send, close);
//! 5. [`LoopIo::wait`]: submit the sends and sleep until I/O, the worker's
//!    wake-up instant, a connection deadline or [`MAX_SLEEP`], with the
//!    worker's batch window.
//!
//! Stream completions (connected, bytes, end of stream, sent, accepted)
//! reach the core through the [`Inbox`] in the receive phase, which also
//! expires connection deadlines.
//!
//! After `Tick::Stop` the worker still empties its transmit queue; the loop
//! keeps sending for at most [`FLUSH_LIMIT`], counting (not delivering)
//! what arrives meanwhile.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::flow::{ConnId, Flow, TransportKind};

use super::stream::Streams;
use super::{IoCounters, MAX_SLEEP, RxClock, Tick, Worker};

/// Longest the loop keeps sending after the worker stopped.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);
/// One wait of the final flush (a completion or writability ends it early).
const FLUSH_STEP: Duration = Duration::from_millis(5);
/// Longest wait while the worker has sends the backend had no room for.
const SEND_BACKLOG_WAIT: Duration = Duration::from_millis(1);
/// What a message on a flow this loop cannot carry is reported as.
const UNSUPPORTED_FLOW: i32 = libc::EPROTONOSUPPORT;

/// What a backend does for the turn. Its methods never call the worker
/// except through [`Inbox`]; counters change only through [`Book`] and
/// [`Inbox`].
pub(crate) trait LoopIo {
    /// The socket, for reading its error queue.
    fn fd(&self) -> RawFd;

    /// Re-arm what must be armed, then hand everything that completed since
    /// the last call to `inbox`: each datagram to [`Inbox::datagram`], each
    /// finished send to [`Book::send_done`] (submitting it once more when
    /// that says so), each sign of a pending socket error to
    /// [`Book::error_pending`].
    fn reap<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()>;

    /// A free send buffer (the same one until [`LoopIo::queue_send`] takes
    /// it), or `None` when no more sends fit until some complete.
    fn send_buf(&mut self) -> Option<&mut Vec<u8>>;

    /// Queue the buffer [`LoopIo::send_buf`] gave out as a datagram to
    /// `to`.
    fn queue_send(&mut self, to: SocketAddr, book: &mut Book) -> io::Result<()>;

    /// Hand the queued sends to the kernel without waiting for I/O (a
    /// backend whose wait submits may do nothing here).
    fn submit(&mut self, book: &mut Book) -> io::Result<()>;

    /// Submit the queued sends, then sleep until I/O completes or `timeout`
    /// passes. A backend that can batch wake-ups may hold the first
    /// completion back for up to `window` to collect more.
    fn wait(&mut self, timeout: Duration, window: Duration, book: &mut Book) -> io::Result<()>;

    /// Sends queued or in flight.
    fn sends_pending(&self) -> bool;

    /// Carry out the operations the stream core queued
    /// ([`Streams::take_todo`]), reporting what completes at once through
    /// `inbox`.
    fn streams<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()>;
}

/// The loop's bookkeeping: the counters and whether the error queue needs
/// reading.
#[derive(Debug, Default)]
pub(crate) struct Book {
    io: IoCounters,
    errq: bool,
}

impl Book {
    /// A receive, a send or a poll saw an error pending on the socket: read
    /// the error queue in the next receive phase.
    pub(crate) fn error_pending(&mut self) {
        self.errq = true;
    }

    /// A receive failed with `errno`. Returns true when that was an error
    /// pending on the socket (an ICMP error; now on the error queue), which
    /// the loop survives; anything else is the caller's to handle.
    pub(crate) fn receive_failed(&mut self, errno: i32) -> bool {
        let pending = is_async_error(errno);
        if pending {
            self.error_pending();
        }
        pending
    }

    /// One send finished: `Ok(bytes)` or `Err(errno)`. Returns true when it
    /// should be submitted once more: it met an error pending on the socket
    /// (an ICMP error, maybe for another destination; returning it cleared
    /// it, so the datagram did not go out) and is not a retry already.
    /// Anything else that failed is counted lost (SIP retransmission takes
    /// over).
    pub(crate) fn send_done(&mut self, result: Result<usize, i32>, retried: bool) -> bool {
        match result {
            Ok(n) => {
                self.io.datagrams_sent += 1;
                self.io.bytes_sent += n as u64;
                false
            }
            Err(e) if is_async_error(e) && !retried => {
                self.error_pending();
                true
            }
            Err(_) => {
                self.io.send_errors += 1;
                false
            }
        }
    }
}

/// The receive side of a turn, as a backend sees it: where datagrams go.
/// Without a worker (after `Tick::Stop`) datagrams and errors are counted,
/// not delivered.
#[derive(Debug)]
pub(crate) struct Inbox<'a, W> {
    book: &'a mut Book,
    clock: &'a mut RxClock,
    worker: Option<&'a mut W>,
    streams: &'a mut Streams,
}

impl<W: Worker> Inbox<'_, W> {
    /// One datagram as the kernel returned it: the sender's address bytes,
    /// the control messages, the payload, and whether the payload was cut
    /// (`MSG_TRUNC`: larger than [`super::MAX_DATAGRAM`]).
    pub(crate) fn datagram(&mut self, name: &[u8], control: &[u8], payload: &[u8], cut: bool) {
        note_drops(&mut self.book.io, super::rxq_ovfl(control));
        if cut {
            self.book.io.truncated += 1;
            return;
        }
        let Some(from) = super::sockaddr_to(name) else {
            return;
        };
        self.book.io.datagrams_received += 1;
        self.book.io.bytes_received += payload.len() as u64;
        let at = self.clock.arrival(control);
        if let Some(w) = self.worker.as_deref_mut() {
            w.handle(at, Flow::udp(from), payload);
        }
    }

    /// See [`Book`].
    pub(crate) fn book(&mut self) -> &mut Book {
        self.book
    }

    /// The stream core, for a backend's bookkeeping of its connections.
    pub(crate) fn streams(&mut self) -> &mut Streams {
        self.streams
    }

    /// A listener of `kind` accepted `fd`.
    pub(crate) fn accepted(&mut self, kind: TransportKind, fd: RawFd) {
        let now = self.clock.now;
        self.streams
            .accepted(now, kind, fd, self.worker.as_deref_mut());
    }

    /// The connect of `id` finished.
    pub(crate) fn connected(&mut self, id: ConnId, result: Result<(), i32>) {
        let now = self.clock.now;
        self.streams
            .on_connect(now, id, result, self.worker.as_deref_mut());
    }

    /// Bytes received on connection `id`.
    pub(crate) fn stream_data(&mut self, id: ConnId, bytes: &[u8]) {
        let now = self.clock.now;
        self.book.io.bytes_received += bytes.len() as u64;
        self.streams
            .on_data(now, id, bytes, self.worker.as_deref_mut());
    }

    /// The peer of `id` ended its side.
    pub(crate) fn stream_eof(&mut self, id: ConnId) {
        let now = self.clock.now;
        self.streams.on_eof(now, id, self.worker.as_deref_mut());
    }

    /// Receiving on `id` failed.
    pub(crate) fn stream_error(&mut self, id: ConnId, errno: i32) {
        let now = self.clock.now;
        self.streams
            .on_recv_error(now, id, errno, self.worker.as_deref_mut());
    }

    /// A send on `id` finished.
    pub(crate) fn stream_sent(&mut self, id: ConnId, result: Result<usize, i32>) {
        let now = self.clock.now;
        if let Ok(n) = result {
            self.book.io.bytes_sent += n as u64;
        }
        self.streams
            .on_sent(now, id, result, self.worker.as_deref_mut());
    }

    /// An ICMP error for a datagram sent to `dest`.
    fn unreachable(&mut self, now: Instant, dest: Flow, errno: i32) {
        self.book.io.icmp_errors += 1;
        if let Some(w) = self.worker.as_deref_mut() {
            w.unreachable(now, dest, errno);
        }
    }
}

/// Set the drop counter from a cumulative `SO_RXQ_OVFL` value.
fn note_drops(io: &mut IoCounters, cumulative: Option<u32>) {
    if let Some(d) = cumulative {
        io.kernel_drops = io.kernel_drops.max(u64::from(d));
    }
}

/// How long to sleep until `wake`, capped at [`MAX_SLEEP`].
fn sleep_for(now: Instant, wake: Option<Instant>) -> Duration {
    match wake {
        Some(w) => w.saturating_duration_since(now).min(MAX_SLEEP),
        None => MAX_SLEEP,
    }
}

/// Run `worker` over `backend` and the stream connections in `streams`
/// until it returns [`Tick::Stop`], then flush.
pub(crate) fn drive<B: LoopIo, W: Worker>(
    backend: &mut B,
    streams: &mut Streams,
    worker: &mut W,
) -> io::Result<IoCounters> {
    let mut t = Turns {
        book: Book::default(),
        clock: RxClock::new(Instant::now()),
        refused: Vec::new(),
        streams,
    };
    loop {
        let now = Instant::now();
        t.receive(backend, now, Some(&mut *worker))?;
        t.book.io.turns += 1;
        t.book.io.conns_open = t.streams.len() as u64;
        t.book.io.stream_messages_received = t.streams.messages_received;
        t.book.io.stream_messages_sent = t.streams.messages_sent;
        t.book.io.ws_pings = t.streams.ws_pings;
        let tick = worker.tick(now, &t.book.io);
        let backlog = t.queue_sends(backend, worker, true)?;
        while let Some(flow) = worker.poll_release() {
            t.streams.release(now, flow);
        }
        t.run_streams(backend, Some(&mut *worker))?;
        let Tick::Continue(wake) = tick else {
            break;
        };
        let wake = match (wake, t.streams.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = if !t.refused.is_empty() {
            // Report the refused messages at once (next receive phase).
            Duration::ZERO
        } else if backlog {
            // Come back as soon as sends complete or the socket drains.
            sleep_for(Instant::now(), wake).min(SEND_BACKLOG_WAIT)
        } else {
            sleep_for(Instant::now(), wake)
        };
        backend.wait(sleep, worker.batch_window(), &mut t.book)?;
    }
    t.flush(backend, worker)?;
    Ok(t.book.io)
}

/// State [`drive`] keeps across turns.
struct Turns<'s> {
    book: Book,
    /// Arrival instants from kernel timestamps.
    clock: RxClock,
    /// Messages dropped because they cannot go out (a flow this loop
    /// cannot carry, a connection that cannot be opened), with the errno,
    /// to report in the next receive phase.
    refused: Vec<(Flow, i32)>,
    streams: &'s mut Streams,
}

impl Turns<'_> {
    /// The receive phase: completions, then the error queue, then the
    /// refused messages of the last turn, then connection deadlines.
    fn receive<B: LoopIo, W: Worker>(
        &mut self,
        backend: &mut B,
        now: Instant,
        worker: Option<&mut W>,
    ) -> io::Result<()> {
        self.clock.turn(now);
        let mut inbox = Inbox {
            book: &mut self.book,
            clock: &mut self.clock,
            worker,
            streams: self.streams,
        };
        backend.reap(&mut inbox)?;
        if std::mem::take(&mut inbox.book.errq) {
            drain_error_queue(backend.fd(), now, &mut inbox);
        }
        inbox.streams.expire(now, inbox.worker.as_deref_mut());
        if let Some(w) = inbox.worker {
            for (flow, errno) in self.refused.drain(..) {
                w.unreachable(now, flow, errno);
            }
        }
        Ok(())
    }

    /// Let the backend carry out the stream core's operations.
    fn run_streams<B: LoopIo, W: Worker>(
        &mut self,
        backend: &mut B,
        worker: Option<&mut W>,
    ) -> io::Result<()> {
        if self.streams.todo.is_empty() {
            return Ok(());
        }
        let mut inbox = Inbox {
            book: &mut self.book,
            clock: &mut self.clock,
            worker,
            streams: self.streams,
        };
        backend.streams(&mut inbox)
    }

    /// Move the worker's messages into the backend's send buffers. Returns
    /// true when the backend ran out of room first (the worker may have
    /// more). `report`: keep refused flows for `Worker::unreachable` (false
    /// once the worker stopped).
    fn queue_sends<B: LoopIo, W: Worker>(
        &mut self,
        backend: &mut B,
        worker: &mut W,
        report: bool,
    ) -> io::Result<bool> {
        loop {
            let Some(buf) = backend.send_buf() else {
                return Ok(true);
            };
            let Some(flow) = worker.poll_transmit(buf) else {
                return Ok(false);
            };
            if flow.transport != TransportKind::Udp {
                // A stream message goes to its connection; the buffer
                // stays free for the next message.
                let r = if flow.transport.is_stream() {
                    self.streams.send(self.clock.now, flow, buf)
                } else {
                    Err(UNSUPPORTED_FLOW)
                };
                if let Err(errno) = r {
                    self.book.io.send_errors += 1;
                    if report {
                        self.refused.push((flow, errno));
                    }
                }
                continue;
            }
            backend.queue_send(flow.peer, &mut self.book)?;
        }
    }

    /// After `Tick::Stop`: send what the worker still has, for at most
    /// [`FLUSH_LIMIT`].
    fn flush<B: LoopIo, W: Worker>(&mut self, backend: &mut B, worker: &mut W) -> io::Result<()> {
        let deadline = Instant::now() + FLUSH_LIMIT;
        let mut closed = false;
        loop {
            let backlog = self.queue_sends(backend, worker, false)?;
            if !backlog && !closed {
                // Everything the worker had is queued: close the
                // connections once it went out.
                self.streams.close_all(Instant::now());
                closed = true;
            }
            self.run_streams(backend, None::<&mut W>)?;
            backend.submit(&mut self.book)?;
            let streams_done = closed && self.streams.is_empty();
            if (!backlog && !backend.sends_pending() && streams_done) || Instant::now() >= deadline
            {
                return Ok(());
            }
            backend.wait(FLUSH_STEP, Duration::ZERO, &mut self.book)?;
            self.receive(backend, Instant::now(), None::<&mut W>)?;
        }
    }
}

/// The error numbers an ICMP error leaves pending on a socket with
/// `IP_RECVERR` (`sk_err`), which the next receive or send returns in its
/// place. Seeing one means the error queue has something to read; a send
/// that failed with one did not go out and is worth one retry (the error
/// may belong to another destination, and reading it cleared it).
fn is_async_error(e: i32) -> bool {
    matches!(
        e,
        libc::ECONNREFUSED
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::ENOPROTOOPT
            | libc::EPROTO
            | libc::EMSGSIZE
    )
}

/// Most error-queue entries read in one call, so a flood of ICMP errors
/// cannot starve the loop; the rest wait for the next turn (the socket
/// stays readable for errors, so the loop comes back at once).
const MAX_ERRQUEUE: usize = 1024;

/// Read the socket's error queue (`recvmsg(MSG_ERRQUEUE)`, never blocks)
/// and report every ICMP error with its original destination (the queued
/// message's `msg_name`). Returns how many entries were read; an empty
/// queue reads zero. Reading the last entry also clears the socket's
/// pending error (`sk_err`).
fn drain_error_queue<W: Worker>(fd: RawFd, now: Instant, inbox: &mut Inbox<'_, W>) -> usize {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut control = [0u8; 128];
    let mut read = 0;
    while read < MAX_ERRQUEUE {
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // No iovec: the bounced payload is not needed (it comes back
        // truncated, flagged MSG_TRUNC).
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
        // SAFETY: `msg` points at `name` and `control`, both alive and of
        // the sizes given for the duration of the call.
        let rc = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            // EAGAIN: the queue is empty; anything else: nothing to read.
            break;
        }
        read += 1;
        let clen = (msg.msg_controllen as usize).min(control.len());
        let nlen = (msg.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: `name` is initialised (zeroed, then written by the
        // kernel) for `nlen` bytes, at most its size.
        let raw = unsafe { std::slice::from_raw_parts((&raw const name).cast::<u8>(), nlen) };
        if let (Some(errno), Some(dest)) =
            (super::icmp_errno(&control[..clen]), super::sockaddr_to(raw))
        {
            inbox.unreachable(now, Flow::udp(dest), errno);
        }
    }
    read
}
