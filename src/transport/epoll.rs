//! The fallback event loop: epoll + `recvmmsg`/`sendmmsg`, for kernels or
//! sandboxes (seccomp) where io_uring is not allowed. Same turn structure as
//! the io_uring loop: receive a batch, tick, send a batch, wait with a
//! nanosecond timeout (`epoll_pwait2`, falling back to `epoll_wait` with
//! milliseconds rounded up).
//!
//! ICMP errors: `EPOLLERR` (always reported by epoll) or a receive or send
//! failing with a pending ICMP error marks the error queue for reading at
//! the next receive phase ([`super::drain_error_queue`]).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::flow::Flow;

use super::{CONTROL_LEN, IoCounters, Tick, TransportError, Worker};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 64;
/// Receive batches per turn before the worker gets a tick (fairness).
const MAX_RECV_BATCHES: usize = 16;
/// Receive buffer per datagram.
const RECV_BUF: usize = 2048;
/// Longest the loop waits for the last sends after the worker stopped.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF]]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[[u8; CONTROL_LEN]]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Arrival instants from kernel timestamps.
    clock: super::RxClock,
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
            clock: super::RxClock::new(Instant::now()),
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
        }
    }

    fn fill<W: Worker>(&mut self, worker: &mut W) -> bool {
        if self.sent == self.len {
            self.sent = 0;
            self.len = 0;
        }
        while self.len < BATCH {
            let i = self.len;
            let Some(dst) = worker.poll_transmit(&mut self.bufs[i]) else {
                return false;
            };
            self.namelens[i] = super::sockaddr_from(dst.peer, &mut self.names[i]);
            self.len += 1;
        }
        true
    }

    /// Send `[sent, len)`; returns Ok(true) when the socket would block.
    /// Sets `errq` when a send met a pending ICMP error.
    fn flush(&mut self, fd: RawFd, io: &mut IoCounters, errq: &mut bool) -> io::Result<bool> {
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
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(true),
                    Some(libc::EINTR) => continue,
                    // An ICMP error pending on the socket (maybe for
                    // another destination) was returned instead of sending
                    // the first datagram; reading it cleared it, so send
                    // that datagram once more. The error itself is read
                    // from the error queue.
                    Some(e) if super::is_async_error(e) && !self.retried => {
                        *errq = true;
                        self.retried = true;
                        continue;
                    }
                    // Refused again, or ENOBUFS and the like: count the
                    // datagram lost (SIP retransmission takes over).
                    _ => {
                        io.send_errors += 1;
                        self.sent += 1;
                        self.retried = false;
                        continue;
                    }
                }
            }
            let n = usize::try_from(rc).unwrap_or(0);
            if n > 0 {
                self.retried = false;
            }
            for i in self.sent..self.sent + n {
                io.datagrams_sent += 1;
                io.bytes_sent += self.bufs[i].len() as u64;
            }
            self.sent += n;
        }
        Ok(false)
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Drive `worker` on `socket` until it returns [`Tick::Stop`].
pub fn run<W: Worker>(socket: &UdpSocket, worker: &mut W) -> Result<IoCounters, TransportError> {
    let err = TransportError::Epoll;
    let fd = socket.as_raw_fd();
    // SAFETY: plain syscall; the result is checked and owned below.
    let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(err)?;
    // SAFETY: `ep` is a new descriptor nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: `ev` is valid for the call; `fd` is the caller's open socket.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
        .map_err(err)?;
    let mut want_out = false;
    let mut pwait2 = true;

    let mut rx = RecvBatch::new();
    let mut tx = SendBatch::new();
    let mut io = IoCounters::default();
    let mut events: [libc::epoll_event; 4] = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // The error queue may hold ICMP errors (EPOLLERR, or a receive or send
    // returned one).
    let mut errq = false;

    loop {
        let now = Instant::now();
        receive(fd, &mut rx, &mut io, now, worker, &mut errq).map_err(err)?;
        if std::mem::take(&mut errq) {
            super::drain_error_queue(fd, now, &mut io, worker);
        }
        io.turns += 1;
        let tick = worker.tick(now, &io);
        // Send everything queued, batch by batch, until the socket blocks.
        let blocked = loop {
            let more = tx.fill(worker);
            let blocked = tx.flush(fd, &mut io, &mut errq).map_err(err)?;
            if blocked || !more {
                break blocked;
            }
        };
        if blocked != want_out {
            want_out = blocked;
            ev.events = if blocked {
                (libc::EPOLLIN | libc::EPOLLOUT) as u32
            } else {
                libc::EPOLLIN as u32
            };
            // SAFETY: as for EPOLL_CTL_ADD.
            cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut ev) })
                .map_err(err)?;
        }
        let wake = match tick {
            Tick::Stop => break,
            Tick::Continue(w) => w,
        };
        let sleep = super::sleep_for(Instant::now(), wake);
        errq |= wait(ep.as_raw_fd(), &mut events, sleep, &mut pwait2).map_err(err)?;
    }
    // Flush what the worker still queued.
    let deadline = Instant::now() + FLUSH_LIMIT;
    loop {
        let more = tx.fill(worker);
        let blocked = tx.flush(fd, &mut io, &mut errq).map_err(err)?;
        if (!more && !blocked) || Instant::now() >= deadline {
            break;
        }
        if blocked {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(io)
}

fn receive<W: Worker>(
    fd: RawFd,
    rx: &mut RecvBatch,
    io: &mut IoCounters,
    now: Instant,
    worker: &mut W,
    errq: &mut bool,
) -> io::Result<()> {
    rx.clock.turn(now);
    for _ in 0..MAX_RECV_BATCHES {
        rx.reset();
        // SAFETY: every header points at buffers owned by `rx`, valid for
        // the lengths given, for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
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
                Some(c) if super::is_async_error(c) => {
                    *errq = true;
                    Ok(())
                }
                _ => Err(e),
            };
        }
        let n = usize::try_from(rc).unwrap_or(0);
        for i in 0..n {
            let h = &rx.hdrs[i];
            let clen = h.msg_hdr.msg_controllen.min(CONTROL_LEN);
            super::note_drops(io, super::rxq_ovfl(&rx.controls[i][..clen]));
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                io.truncated += 1;
                continue;
            }
            let nlen = (h.msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
            // SAFETY: `names[i]` is initialised for `nlen` bytes (at most its size).
            let raw =
                unsafe { std::slice::from_raw_parts((&raw const rx.names[i]).cast::<u8>(), nlen) };
            let Some(from) = super::sockaddr_to(raw) else {
                continue;
            };
            let len = (h.msg_len as usize).min(RECV_BUF);
            io.datagrams_received += 1;
            io.bytes_received += len as u64;
            let at = rx.clock.arrival(&rx.controls[i][..clen]);
            worker.handle(at, Flow::udp(from), &rx.bufs[i][..len]);
        }
        if n < BATCH {
            break;
        }
    }
    Ok(())
}

/// Wait for the socket or `sleep`; true when epoll reported `EPOLLERR`
/// (the error queue holds something).
fn wait(
    ep: RawFd,
    events: &mut [libc::epoll_event; 4],
    sleep: Duration,
    pwait2: &mut bool,
) -> io::Result<bool> {
    let rc = if *pwait2 {
        let ts = libc::timespec {
            tv_sec: sleep.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(sleep.subsec_nanos() as i32),
        };
        // SAFETY: `events` and `ts` are valid for the call; null sigmask.
        let rc = unsafe { libc::epoll_pwait2(ep, events.as_mut_ptr(), 4, &ts, std::ptr::null()) };
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            *pwait2 = false;
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
