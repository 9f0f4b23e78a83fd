//! The epoll backend of the turn (`super::turn`): epoll +
//! `recvmmsg`/`sendmmsg`, for kernels or sandboxes (seccomp) where io_uring
//! is not allowed. It waits with a nanosecond timeout (`epoll_pwait2`,
//! falling back to `epoll_wait` with milliseconds rounded up); it has no
//! batch window.
//!
//! ICMP errors: `EPOLLERR` (always reported by epoll) or a receive or send
//! failing with a pending ICMP error marks the error queue, which the turn
//! reads in its next receive phase.
//!
//! Streams: every listener and connection socket is in the same epoll set
//! (level-triggered), its event data naming it. A ready listener is
//! drained with `accept4`; a ready connection with `read` into one
//! 64 KiB scratch buffer until it would block; sends are `sendmsg`
//! (`MSG_NOSIGNAL`) of the write queue's iovecs at once, with `EPOLLOUT`
//! watched only while a send would block or a connect is in progress
//! (its result read with `SO_ERROR`); a close is `EPOLL_CTL_DEL` and
//! `close`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::stream::{Listener, Op, Streams, close_fd, last_errno, listener_fd};
use super::turn::{Book, Inbox, LoopIo, drive};
use super::{CONTROL_LEN, IoCounters, MAX_DATAGRAM, TransportError, Worker};
use crate::flow::{ConnId, TransportKind};

/// Event data of a listener: this bit and its index.
const LISTENER_TAG: u64 = 1 << 62;
/// Event data of a connection: this bit and its id.
const CONN_TAG: u64 = 1 << 63;
/// Events one `epoll_wait` returns at most.
const EVENTS: usize = 256;
/// Connections accepted per listener per turn (fairness).
const MAX_ACCEPTS: usize = 256;
/// Reads per connection per turn (fairness).
const MAX_READS: usize = 16;
/// Scratch buffer of stream reads.
const STREAM_READ: usize = 64 * 1024;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 64;
/// Receive batches per turn before the worker gets a tick (fairness).
const MAX_RECV_BATCHES: usize = 16;
/// Receive buffer per datagram: exactly the payload limit, so a larger
/// datagram comes back with `MSG_TRUNC` and is counted truncated, as with
/// io_uring.
const RECV_BUF: usize = MAX_DATAGRAM;

struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF]]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[[u8; CONTROL_LEN]]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0u8; RECV_BUF]; BATCH].into_boxed_slice(),
            // SAFETY: all-zero is a valid value for these C structs.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            controls: vec![[0u8; CONTROL_LEN]; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            iovs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    /// Re-point every header at its buffers (lengths are overwritten by the
    /// kernel on each call).
    fn reset(&mut self) {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: RECV_BUF,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
    }
}

struct SendBatch {
    bufs: Vec<Vec<u8>>,
    names: Box<[libc::sockaddr_storage]>,
    namelens: Box<[libc::socklen_t]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Filled entries `[sent, len)` still to go out.
    len: usize,
    sent: usize,
    /// Entry `sent` already failed once with a pending ICMP error.
    retried: bool,
    /// The last flush stopped because the socket would block.
    blocked: bool,
}

impl SendBatch {
    fn new() -> SendBatch {
        SendBatch {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(1500)).collect(),
            // SAFETY: all-zero is a valid value for these C structs.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            namelens: vec![0; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            iovs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            len: 0,
            sent: 0,
            retried: false,
            blocked: false,
        }
    }

    /// The next free entry's buffer; `None` while the batch is full.
    fn buf(&mut self) -> Option<&mut Vec<u8>> {
        if self.sent == self.len {
            self.sent = 0;
            self.len = 0;
        }
        self.bufs.get_mut(self.len)
    }

    /// Take the entry [`SendBatch::buf`] gave out, addressed to `to`.
    fn push(&mut self, to: SocketAddr) {
        let i = self.len;
        self.namelens[i] = super::sockaddr_from(to, &mut self.names[i]);
        self.len += 1;
    }

    /// Send `[sent, len)` until done or the socket would block (then
    /// `blocked`).
    fn flush(&mut self, fd: RawFd, book: &mut Book) {
        self.blocked = false;
        while self.sent < self.len {
            for i in self.sent..self.len {
                self.iovs[i] = libc::iovec {
                    iov_base: self.bufs[i].as_mut_ptr().cast(),
                    iov_len: self.bufs[i].len(),
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = (&raw mut self.names[i]).cast();
                h.msg_namelen = self.namelens[i];
                h.msg_iov = &raw mut self.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            let n = (self.len - self.sent) as libc::c_uint;
            // SAFETY: headers `[sent, len)` point at live buffers and
            // addresses owned by `self` for the duration of the call.
            let rc = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr().add(self.sent), n, 0) };
            if rc < 0 {
                match io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
                {
                    libc::EAGAIN => {
                        self.blocked = true;
                        return;
                    }
                    libc::EINTR => {}
                    // The first datagram failed: once more if a pending
                    // ICMP error refused it, else it is lost.
                    e => {
                        if book.send_done(Err(e), self.retried) {
                            self.retried = true;
                        } else {
                            self.sent += 1;
                            self.retried = false;
                        }
                    }
                }
                continue;
            }
            let n = usize::try_from(rc).unwrap_or(0);
            if n > 0 {
                self.retried = false;
            }
            for i in self.sent..self.sent + n {
                book.send_done(Ok(self.bufs[i].len()), false);
            }
            self.sent += n;
        }
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loop state: the socket, its epoll instance and the two batches.
struct Epoll {
    fd: RawFd,
    ep: OwnedFd,
    /// `EPOLLOUT` is in the interest set (sends are blocked).
    want_out: bool,
    /// `epoll_pwait2` is available.
    pwait2: bool,
    rx: RecvBatch,
    tx: SendBatch,
    events: Box<[libc::epoll_event; EVENTS]>,
    /// Stream events of the last wait: (event data, event bits).
    ready: Vec<(u64, u32)>,
    /// Listening sockets and their transports.
    listeners: Vec<(TransportKind, RawFd)>,
    /// Scratch buffer of stream reads (allocated when streams are used).
    scratch: Vec<u8>,
}

impl Epoll {
    fn new(fd: RawFd, listeners: &[Listener]) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked and owned below.
        let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `ep` is a new descriptor nothing else owns.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut lp = Epoll {
            fd,
            ep,
            want_out: false,
            pwait2: true,
            rx: RecvBatch::new(),
            tx: SendBatch::new(),
            events: Box::new([libc::epoll_event { events: 0, u64: 0 }; EVENTS]),
            ready: Vec::new(),
            listeners: listeners.iter().map(|l| (l.kind, listener_fd(l))).collect(),
            scratch: Vec::new(),
        };
        lp.interest(libc::EPOLL_CTL_ADD)?;
        for (i, &(_, lfd)) in lp.listeners.iter().enumerate() {
            lp.ctl(
                libc::EPOLL_CTL_ADD,
                lfd,
                libc::EPOLLIN as u32,
                LISTENER_TAG | i as u64,
            )?;
        }
        Ok(lp)
    }

    /// `epoll_ctl` on another descriptor of this loop.
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is valid for the call; `fd` is a descriptor this
        // loop owns (a listener or a connection socket).
        cvt(unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Set the interest of connection `id` (registering it the first time).
    fn conn_interest(&self, streams: &mut Streams, id: ConnId, out: bool) {
        let Some(c) = streams.table.get_mut(id) else {
            return;
        };
        let io = &mut c.layer.io;
        let events =
            (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | if out { libc::EPOLLOUT as u32 } else { 0 };
        let op = if io.recv_armed {
            if io.want_out == out {
                return;
            }
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        if self
            .ctl(op, c.layer.fd, events, CONN_TAG | u64::from(id.0))
            .is_ok()
        {
            io.recv_armed = true;
            io.want_out = out;
        }
    }

    /// Accept what is waiting on listener `i`.
    fn accept_from<W: Worker>(&mut self, i: usize, inbox: &mut Inbox<'_, W>) {
        let Some(&(kind, lfd)) = self.listeners.get(i) else {
            return;
        };
        for _ in 0..MAX_ACCEPTS {
            // SAFETY: `lfd` is a listening socket this loop watches; null
            // address pointers are allowed.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                // EAGAIN: drained; EMFILE and the like: try next turn.
                return;
            }
            inbox.accepted(kind, fd);
        }
    }

    /// Read what connection `id` has, up to [`MAX_READS`] reads.
    fn read_conn<W: Worker>(&mut self, id: ConnId, inbox: &mut Inbox<'_, W>) {
        if self.scratch.is_empty() {
            self.scratch = vec![0; STREAM_READ];
        }
        for _ in 0..MAX_READS {
            let Some(c) = inbox.streams().table.get(id) else {
                return;
            };
            if c.layer.closing() && c.layer.io.close_sent {
                return;
            }
            let fd = c.layer.fd;
            // SAFETY: `scratch` is valid for writes of its length; `fd` is
            // the connection's open socket.
            let n = unsafe { libc::read(fd, self.scratch.as_mut_ptr().cast(), self.scratch.len()) };
            match n {
                0 => {
                    inbox.stream_eof(id);
                    self.forget(inbox.streams(), id);
                    return;
                }
                n if n > 0 => {
                    let n = usize::try_from(n).unwrap_or(0);
                    inbox.stream_data(id, &self.scratch[..n]);
                    if n < self.scratch.len() {
                        return;
                    }
                }
                _ => {
                    let e = last_errno();
                    if e != libc::EAGAIN && e != libc::EINTR {
                        inbox.stream_error(id, e);
                        self.forget(inbox.streams(), id);
                    }
                    return;
                }
            }
        }
    }

    /// Stop watching a connection whose stream ended (it stays readable
    /// at EOF, which would wake every turn until it is closed).
    fn forget(&self, streams: &mut Streams, id: ConnId) {
        if let Some(c) = streams.table.get_mut(id)
            && c.layer.io.recv_armed
        {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, c.layer.fd, 0, 0);
            c.layer.io.recv_armed = false;
            c.layer.io.want_out = false;
        }
    }

    /// Send what connection `id` has queued until done or it would block.
    fn send_conn<W: Worker>(&mut self, id: ConnId, inbox: &mut Inbox<'_, W>) {
        loop {
            let Some(c) = inbox.streams().table.get(id) else {
                return;
            };
            if !c.layer.can_send() || c.layer.io.connecting {
                return;
            }
            let fd = c.layer.fd;
            let (n, _) = inbox.streams().fill_iovs(id);
            if n == 0 {
                self.conn_interest(inbox.streams(), id, false);
                return;
            }
            let Some(c) = inbox.streams().table.get(id) else {
                return;
            };
            // SAFETY: the msghdr points at the iovecs in the connection's
            // OpMem, which point into its write queue: all alive and
            // unchanged for the duration of the call.
            let rc = unsafe {
                libc::sendmsg(
                    fd,
                    &raw const c.layer.io.mem.msg,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                let e = last_errno();
                if e == libc::EAGAIN {
                    self.conn_interest(inbox.streams(), id, true);
                    return;
                }
                if e != libc::EINTR {
                    inbox.stream_sent(id, Err(e));
                    return;
                }
                continue;
            }
            inbox.stream_sent(id, Ok(usize::try_from(rc).unwrap_or(0)));
        }
    }

    /// A connect finished (the socket became writable or failed).
    fn connect_done<W: Worker>(&mut self, id: ConnId, inbox: &mut Inbox<'_, W>) {
        let Some(c) = inbox.streams().table.get_mut(id) else {
            return;
        };
        if !c.layer.io.connecting {
            return;
        }
        let fd = c.layer.fd;
        let mut err: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut err).cast(),
                &mut len,
            )
        };
        let result = if rc < 0 {
            Err(last_errno())
        } else if err != 0 {
            Err(err)
        } else {
            Ok(())
        };
        self.conn_interest(inbox.streams(), id, false);
        inbox.connected(id, result);
    }

    /// Start the connect of `id`.
    fn connect<W: Worker>(&mut self, id: ConnId, inbox: &mut Inbox<'_, W>) {
        let Some(c) = inbox.streams().table.get_mut(id) else {
            return;
        };
        if c.layer.closing() {
            return;
        }
        let fd = c.layer.fd;
        let m = &c.layer.io.mem;
        // SAFETY: `m.addr` holds a valid address of length `m.addr_len`.
        let rc = unsafe { libc::connect(fd, (&raw const m.addr).cast(), m.addr_len) };
        let e = if rc < 0 { last_errno() } else { 0 };
        if e == libc::EINPROGRESS || e == libc::EINTR {
            c.layer.io.connecting = true;
            self.conn_interest(inbox.streams(), id, true);
        } else {
            self.conn_interest(inbox.streams(), id, false);
            inbox.connected(id, if e == 0 { Ok(()) } else { Err(e) });
        }
    }

    /// Close connection `id`: out of the set, closed, out of the table.
    fn close_conn(&mut self, streams: &mut Streams, id: ConnId) {
        let Some(c) = streams.table.get_mut(id) else {
            return;
        };
        c.layer.set_closing();
        if c.layer.io.recv_armed {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, c.layer.fd, 0, 0);
        }
        c.layer.io.close_sent = true;
        close_fd(c.layer.fd);
        streams.remove(id);
    }

    /// Register (or update) the socket: readable, and writable while sends
    /// are blocked.
    fn interest(&mut self, op: libc::c_int) -> io::Result<()> {
        let events = if self.want_out {
            libc::EPOLLIN | libc::EPOLLOUT
        } else {
            libc::EPOLLIN
        };
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: 0,
        };
        // SAFETY: `ev` is valid for the call; `fd` is the caller's open
        // socket and `ep` our epoll instance.
        cvt(unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, self.fd, &mut ev) })?;
        Ok(())
    }

    /// Wait for the sockets or `sleep`; true when epoll reported
    /// `EPOLLERR` on the UDP socket (its error queue holds something).
    /// Stream events are kept in `ready` for the next reap.
    fn epoll_wait(&mut self, sleep: Duration) -> io::Result<bool> {
        let ep = self.ep.as_raw_fd();
        let events = &mut self.events;
        let max = EVENTS as libc::c_int;
        let rc = if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: sleep.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(sleep.subsec_nanos() as i32),
            };
            // SAFETY: `events` and `ts` are valid for the call; null sigmask.
            let rc =
                unsafe { libc::epoll_pwait2(ep, events.as_mut_ptr(), max, &ts, std::ptr::null()) };
            if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.pwait2 = false;
            }
            rc
        } else {
            let ms = sleep.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `events` is valid for `max` entries.
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), max, ms) }
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOSYS)) {
                return Ok(false);
            }
            return Err(e);
        }
        let n = usize::try_from(rc).unwrap_or(0).min(events.len());
        let mut udp_err = false;
        for e in &events[..n] {
            let (data, bits) = (e.u64, e.events);
            if data == 0 {
                udp_err |= bits & libc::EPOLLERR as u32 != 0;
            } else {
                self.ready.push((data, bits));
            }
        }
        Ok(udp_err)
    }
}

impl Epoll {
    /// Up to [`MAX_RECV_BATCHES`] `recvmmsg` calls, each datagram to the
    /// inbox.
    fn reap_datagrams<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
        let rx = &mut self.rx;
        for _ in 0..MAX_RECV_BATCHES {
            rx.reset();
            // SAFETY: every header points at buffers owned by `rx`, valid
            // for the lengths given, for the duration of the call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd,
                    rx.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => Ok(()),
                    // An ICMP error (port unreachable, ...) pending on the
                    // socket: its details are on the error queue.
                    Some(c) if inbox.book().receive_failed(c) => Ok(()),
                    _ => Err(e),
                };
            }
            let n = usize::try_from(rc).unwrap_or(0);
            for i in 0..n {
                let h = &rx.hdrs[i];
                let clen = h.msg_hdr.msg_controllen.min(CONTROL_LEN);
                let nlen =
                    (h.msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
                // SAFETY: `names[i]` is initialised for `nlen` bytes (at
                // most its size).
                let name = unsafe {
                    std::slice::from_raw_parts((&raw const rx.names[i]).cast::<u8>(), nlen)
                };
                let len = (h.msg_len as usize).min(RECV_BUF);
                inbox.datagram(
                    name,
                    &rx.controls[i][..clen],
                    &rx.bufs[i][..len],
                    h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                );
            }
            if n < BATCH {
                break;
            }
        }
        Ok(())
    }
}

impl LoopIo for Epoll {
    fn fd(&self) -> RawFd {
        self.fd
    }

    /// Up to [`MAX_RECV_BATCHES`] `recvmmsg` calls, each datagram to the
    /// inbox; then the stream events of the last wait.
    fn reap<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
        self.reap_datagrams(inbox)?;
        let ready = std::mem::take(&mut self.ready);
        for &(data, bits) in &ready {
            if data & CONN_TAG != 0 {
                let id = ConnId((data & u64::from(u32::MAX)) as u32);
                let Some(c) = inbox.streams().table.get(id) else {
                    continue;
                };
                if c.layer.io.connecting {
                    self.connect_done(id, inbox);
                    continue;
                }
                let err =
                    (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;
                if bits & err != 0 {
                    self.read_conn(id, inbox);
                }
                if bits & libc::EPOLLOUT as u32 != 0 {
                    self.send_conn(id, inbox);
                }
            } else if data & LISTENER_TAG != 0 {
                self.accept_from((data & !LISTENER_TAG) as usize, inbox);
            }
        }
        self.ready = ready;
        self.ready.clear();
        Ok(())
    }

    fn streams<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
        // Completions queue further operations: go on until none is left.
        for _ in 0..64 {
            let todo = inbox.streams().take_todo();
            if todo.is_empty() {
                break;
            }
            for (id, op) in todo {
                match op {
                    Op::Connect => self.connect(id, inbox),
                    Op::Recv => {
                        let out = inbox
                            .streams()
                            .table
                            .get(id)
                            .is_some_and(|c| c.layer.io.want_out);
                        if inbox
                            .streams()
                            .table
                            .get(id)
                            .is_some_and(|c| !c.layer.io.close_sent)
                        {
                            self.conn_interest(inbox.streams(), id, out);
                        }
                    }
                    Op::Send => self.send_conn(id, inbox),
                    Op::Close => self.close_conn(inbox.streams(), id),
                }
            }
        }
        Ok(())
    }
    fn send_buf(&mut self) -> Option<&mut Vec<u8>> {
        self.tx.buf()
    }

    /// A full batch goes out at once; a partial one with the next submit
    /// or wait.
    fn queue_send(&mut self, to: SocketAddr, book: &mut Book) -> io::Result<()> {
        self.tx.push(to);
        if self.tx.len == BATCH {
            self.tx.flush(self.fd, book);
        }
        Ok(())
    }

    fn submit(&mut self, book: &mut Book) -> io::Result<()> {
        self.tx.flush(self.fd, book);
        Ok(())
    }

    /// Send what is queued, watch for writability while the socket is
    /// full, then wait. epoll cannot hold a wake-up back by a window, but a
    /// window covering the whole wait means "wake at the deadline": then
    /// the loop simply sleeps (unless sends wait for writability), and the
    /// next receive phase reaps what arrived, kernel-stamped.
    fn wait(&mut self, timeout: Duration, window: Duration, book: &mut Book) -> io::Result<()> {
        self.tx.flush(self.fd, book);
        if self.tx.blocked != self.want_out {
            self.want_out = self.tx.blocked;
            self.interest(libc::EPOLL_CTL_MOD)?;
        }
        // A window covering the whole wait: sleep to the deadline, then
        // collect the readiness that came meanwhile without waiting (the
        // stream connections learn of connects, accepts and data from it).
        let timeout = if window >= timeout && !self.tx.blocked {
            std::thread::sleep(timeout);
            Duration::ZERO
        } else {
            timeout
        };
        if self.epoll_wait(timeout)? {
            book.error_pending();
        }
        Ok(())
    }

    fn sends_pending(&self) -> bool {
        self.tx.sent < self.tx.len
    }
}

/// Drive `worker` on `socket`, `listeners` and the connections of
/// `streams` until it returns [`Tick::Stop`](super::Tick::Stop).
pub(crate) fn run<W: Worker>(
    socket: &UdpSocket,
    listeners: &[Listener],
    streams: &mut Streams,
    worker: &mut W,
) -> Result<IoCounters, TransportError> {
    let mut lp = Epoll::new(socket.as_raw_fd(), listeners).map_err(TransportError::Epoll)?;
    let r = drive(&mut lp, streams, worker).map_err(TransportError::Epoll);
    // Connections still open are closed with the stream core.
    r
}
