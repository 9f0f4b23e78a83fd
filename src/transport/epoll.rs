//! The epoll backend of the turn (`super::turn`): epoll +
//! `recvmmsg`/`sendmmsg`, for kernels or sandboxes (seccomp) where io_uring
//! is not allowed. It waits with a nanosecond timeout (`epoll_pwait2`,
//! falling back to `epoll_wait` with milliseconds rounded up); it has no
//! batch window.
//!
//! ICMP errors: `EPOLLERR` (always reported by epoll) or a receive or send
//! failing with a pending ICMP error marks the error queue, which the turn
//! reads in its next receive phase.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::turn::{Book, Inbox, LoopIo, drive};
use super::{CONTROL_LEN, IoCounters, MAX_DATAGRAM, TransportError, Worker};

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
    events: [libc::epoll_event; 4],
}

impl Epoll {
    fn new(fd: RawFd) -> io::Result<Epoll> {
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
            events: [libc::epoll_event { events: 0, u64: 0 }; 4],
        };
        lp.interest(libc::EPOLL_CTL_ADD)?;
        Ok(lp)
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

    /// Wait for the socket or `sleep`; true when epoll reported `EPOLLERR`
    /// (the error queue holds something).
    fn epoll_wait(&mut self, sleep: Duration) -> io::Result<bool> {
        let ep = self.ep.as_raw_fd();
        let events = &mut self.events;
        let rc = if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: sleep.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(sleep.subsec_nanos() as i32),
            };
            // SAFETY: `events` and `ts` are valid for the call; null sigmask.
            let rc =
                unsafe { libc::epoll_pwait2(ep, events.as_mut_ptr(), 4, &ts, std::ptr::null()) };
            if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.pwait2 = false;
            }
            rc
        } else {
            let ms = sleep.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `events` is valid for 4 entries.
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 4, ms) }
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOSYS)) {
                return Ok(false);
            }
            return Err(e);
        }
        let n = usize::try_from(rc).unwrap_or(0).min(events.len());
        Ok(events[..n]
            .iter()
            .any(|e| e.events & libc::EPOLLERR as u32 != 0))
    }
}

impl LoopIo for Epoll {
    fn fd(&self) -> RawFd {
        self.fd
    }

    /// Up to [`MAX_RECV_BATCHES`] `recvmmsg` calls, each datagram to the
    /// inbox.
    fn reap<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
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
        if window >= timeout && !self.tx.blocked {
            std::thread::sleep(timeout);
            return Ok(());
        }
        if self.epoll_wait(timeout)? {
            book.error_pending();
        }
        Ok(())
    }

    fn sends_pending(&self) -> bool {
        self.tx.sent < self.tx.len
    }
}

/// Drive `worker` on `socket` until it returns [`Tick::Stop`](super::Tick::Stop).
pub fn run<W: Worker>(socket: &UdpSocket, worker: &mut W) -> Result<IoCounters, TransportError> {
    let mut lp = Epoll::new(socket.as_raw_fd()).map_err(TransportError::Epoll)?;
    drive(&mut lp, worker).map_err(TransportError::Epoll)
}
