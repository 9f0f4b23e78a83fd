//! The io_uring backend of the turn (`super::turn`): one ring per worker.
//!
//! - Receive: one multishot `RecvMsg` (kernel ≥ 6.0) selecting buffers from a
//!   provided-buffer ring (`IORING_REGISTER_PBUF_RING`, ≥ 5.19). Each
//!   completion carries one datagram in a buffer laid out as
//!   `io_uring_recvmsg_out | name | control | payload` (see
//!   `RECV_BUF_SIZE`), parsed with [`RecvMsgOut`]. Buffers go back to the
//!   ring after the worker has seen the datagram; the ring tail is published
//!   once per turn. When the kernel runs out of buffers it ends the
//!   multishot (no `IORING_CQE_F_MORE`) and the datagrams wait in the socket
//!   queue until the next turn re-arms it.
//! - Send: a fixed pool of send slots, each owning its `msghdr`, `iovec`,
//!   destination and payload, alive until the `SendMsg` completion returns the
//!   slot. All sends of a turn go to the kernel in the same `io_uring_enter`.
//! - Wait: one `io_uring_enter(GETEVENTS, min_complete = 1)` per turn with an
//!   `EXT_ARG` timeout equal to the worker's next deadline, batching
//!   wake-ups with `min_wait_usec` where the kernel has it.
//! - ICMP errors: a multishot `POLL_ADD` for `POLLERR` completes whenever an
//!   error is queued on the socket. A pending error also makes the
//!   multishot receive complete with it (`-ECONNREFUSED`, ending the
//!   multishot, which is re-armed) or a send fail with it (the send did not
//!   happen and is submitted once more). Any of these marks the error
//!   queue, which the turn reads before the worker's tick.
//! - Streams (when the worker has any): each listener has a multishot
//!   `Accept`; a connect is a `Connect` on a socket the stream core made
//!   (its address in the connection's boxed `OpMem`); each connection has
//!   a multishot `Recv` selecting buffers from a second provided-buffer
//!   ring (group [`STREAM_BGID`], [`STREAM_BUFS`] buffers of
//!   [`STREAM_BUF_SIZE`] bytes shared by all connections); a send is one
//!   `SendMsg` (`MSG_NOSIGNAL`) of the write queue's iovecs, at most one in
//!   flight per connection; a close is an `AsyncCancel` of each operation
//!   in flight on the socket (by its `user_data`), then, once nothing is,
//!   a `Close`. A
//!   connection's entry (and the memory its operations point at: `OpMem`,
//!   the write queue's chunks) leaves the table only after its `Close`
//!   completed. `user_data` of a stream operation is its kind in the top
//!   byte and the connection id (or listener index) in the low 32 bits.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::stream::{Listener, Op, Streams, listener_fd};
use super::turn::{Book, Inbox, LoopIo, drive};
use super::{CONTROL_LEN, IoCounters, MAX_DATAGRAM, TransportError, Worker};
use crate::flow::{ConnId, TransportKind};

/// Buffer group of the stream receive ring.
const STREAM_BGID: u16 = 2;
/// Provided stream receive buffers per worker (power of two).
const STREAM_BUFS: u16 = 512;
/// One stream receive buffer: a whole TLS record (16 KiB plus overhead)
/// usually fits; 512 of them are 8 MiB per worker.
const STREAM_BUF_SIZE: usize = 16 * 1024;
/// Top byte of `user_data` for stream operations.
const OP_ACCEPT: u64 = 1;
const OP_CONNECT: u64 = 2;
const OP_RECV: u64 = 3;
const OP_SEND: u64 = 4;
const OP_CANCEL: u64 = 5;
const OP_CLOSE: u64 = 6;

fn stream_tag(op: u64, low: u32) -> u64 {
    (op << 56) | u64::from(low)
}

/// Buffer group id of the receive ring (one ring per io_uring instance).
const BGID: u16 = 1;
/// Provided receive buffers per worker (power of two).
const RECV_BUFS: u16 = 2048;
/// `struct io_uring_recvmsg_out` (include/uapi/linux/io_uring.h: namelen,
/// controllen, payloadlen, flags, four `__u32`), which a multishot
/// `RecvMsg` writes at the start of every buffer it fills.
const RECVMSG_OUT_LEN: usize = 16;
/// The name area of every buffer: the receive `msghdr`'s `msg_namelen`,
/// room for the largest address the socket reports.
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// One provided buffer, laid out by the kernel as `io_uring_recvmsg_out`
/// (16) | name (28) | control ([`CONTROL_LEN`], 64) | payload: sized so
/// the payload area is exactly [`MAX_DATAGRAM`] (3,988) and the whole
/// buffer one 4 KiB page (2048 buffers: 8 MiB per worker). A larger
/// datagram completes with `MSG_TRUNC` and is counted truncated.
const RECV_BUF_SIZE: usize = RECVMSG_OUT_LEN + NAME_LEN + CONTROL_LEN + MAX_DATAGRAM;
const _: () = assert!(RECV_BUF_SIZE == 4096, "one page per provided buffer");
/// Concurrent `SendMsg` operations per worker.
const SEND_SLOTS: usize = 1024;
/// Submission queue size.
const SQ_ENTRIES: u32 = 2048;
/// `user_data` of the multishot receive; sends use their slot index.
const RECV_TAG: u64 = u64::MAX;
/// `user_data` of the multishot `POLLERR` poll.
const ERR_TAG: u64 = u64::MAX - 1;
/// Completions a wait asks for before the batch window closes.
const BATCH_WANT: usize = 64;

/// Check once that this kernel and its seccomp policy allow what the loop
/// needs: a ring, `EXT_ARG` waits and a provided-buffer ring.
///
/// `SIPSTORM_SIMULATE_NO_URING=1` makes the probe fail with `EPERM`, as a
/// container's seccomp policy would, so the fallback path can be tested on
/// a kernel that has io_uring.
pub fn probe() -> io::Result<()> {
    if std::env::var_os("SIPSTORM_SIMULATE_NO_URING").is_some() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let ring = build_ring(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel lacks IORING_FEAT_EXT_ARG",
        ));
    }
    let probe_bufs = BufRing::new(8, RECV_BUF_SIZE)?;
    // SAFETY: the ring memory stays alive until it is unregistered just below
    // (and `probe_bufs` outlives that call).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(probe_bufs.ring_addr(), 8, BGID, 0)?
    };
    ring.submitter().unregister_buf_ring(BGID)?;
    let mut p = io_uring::Probe::new();
    ring.submitter().register_probe(&mut p)?;
    if !p.is_supported(opcode::RecvMsgMulti::CODE) || !p.is_supported(opcode::SendMsg::CODE) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel lacks IORING_OP_RECVMSG",
        ));
    }
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::Connect::CODE, "CONNECT"),
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Close::CODE, "CLOSE"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !p.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("kernel lacks IORING_OP_{name}"),
            ));
        }
    }
    Ok(())
}

/// A provided-buffer ring: page-aligned ring of `BufRingEntry` shared with the
/// kernel, plus the buffers it points into.
struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
    entries: u16,
    /// Bytes per buffer.
    size: usize,
    /// Our copy of the tail; published to the kernel by `commit`.
    tail: u16,
}

impl BufRing {
    fn new(entries: u16, size: usize) -> io::Result<BufRing> {
        let oom = || io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring allocation failed");
        let ring_layout =
            Layout::from_size_align(usize::from(entries) * size_of::<BufRingEntry>(), 4096)
                .map_err(|_| oom())?;
        let bufs_layout =
            Layout::from_size_align(usize::from(entries) * size, 4096).map_err(|_| oom())?;
        // SAFETY: both layouts have non-zero size (entries > 0).
        let ring = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if ring.is_null() || bufs.is_null() {
            // SAFETY: only non-null pointers from alloc_zeroed with these layouts are freed.
            unsafe {
                if !ring.is_null() {
                    dealloc(ring.cast(), ring_layout);
                }
                if !bufs.is_null() {
                    dealloc(bufs, bufs_layout);
                }
            }
            return Err(oom());
        }
        let mut br = BufRing {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            entries,
            size,
            tail: 0,
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.commit();
        Ok(br)
    }

    fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    /// Hand buffer `bid` back to the kernel (visible after `commit`).
    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.entries - 1));
        // SAFETY: idx < entries, so the entry is inside the ring allocation;
        // the kernel only reads entries between its head and the published
        // tail, and this slot is past the published tail.
        let entry = unsafe { &mut *self.ring.add(idx) };
        // SAFETY: bid < entries, so the buffer is inside the allocation.
        let addr = unsafe { self.bufs.add(usize::from(bid) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publish the tail so the kernel sees the pushed buffers.
    fn commit(&self) {
        // SAFETY: `ring` is the first entry of a live, page-aligned ring; the
        // tail field overlays entry 0's `resv`, which the kernel reads
        // atomically, so we store it atomically with release ordering.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut().cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, which the kernel has completed.
    fn get(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid >= self.entries || len > self.size {
            return None;
        }
        // SAFETY: in bounds (checked above); the kernel handed this buffer
        // back to us in a completion and does not touch it until we push it
        // again, which happens after the returned borrow ends.
        Some(unsafe {
            std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * self.size), len)
        })
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly these layouts; the io_uring
        // that used them is dropped before (field order in `Loop`).
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}

/// One in-flight send: everything the kernel reads until completion.
struct SendSlot {
    buf: Vec<u8>,
    addr: libc::sockaddr_storage,
    iov: libc::iovec,
    msg: libc::msghdr,
    /// This send already failed once with a pending ICMP error.
    retried: bool,
}

/// Loop state. Field order matters: the ring is dropped (and with it every
/// in-flight operation) before the memory those operations point into.
struct Loop {
    ring: IoUring,
    bufs: BufRing,
    /// Stream receive buffers (only when the worker has streams).
    sbufs: Option<BufRing>,
    /// Listeners: transport, socket, multishot accept armed.
    listeners: Vec<(TransportKind, RawFd, bool)>,
    recv_msg: Box<libc::msghdr>,
    slots: Box<[SendSlot]>,
    free: Vec<usize>,
    fd: types::Fd,
    recv_armed: bool,
    /// The `POLLERR` poll is armed; `err_poll` false once the kernel
    /// refused it (then completions with errors are the only signal).
    err_armed: bool,
    err_poll: bool,
    /// Sends refused by a pending ICMP error, to submit once more.
    resend: Vec<usize>,
    /// The kernel supports `min_wait_usec` (batched wake-ups).
    min_timeout: bool,
}

/// Build a ring: the one place that chooses setup flags (the probe and
/// every worker go through here).
///
/// COOP_TASKRUN: no inter-processor interrupts to run completion task
/// work; it runs when the loop enters the kernel with GETEVENTS, which
/// every wait does (see `submit_wait`; the turn core reaps completions
/// only after a wait). TASKRUN_FLAG makes pending task work visible in
/// the SQ flags. SINGLE_ISSUER: only the thread that built the ring
/// submits (each worker builds its own). DEFER_TASKRUN (6.1+): completion
/// work runs only when the worker enters with GETEVENTS, never as an
/// interrupting task-work run while it handles a turn; it needs
/// SINGLE_ISSUER, and the turn reaps completions only after a GETEVENTS
/// enter (every wait, and the zero-timeout wait of a busy loop).
/// `SIPSTORM_NO_DEFER_TASKRUN=1` leaves it out (for A/B measurement).
/// Kernels without a flag get the next simpler ring.
fn build_ring(entries: u32) -> io::Result<IoUring> {
    let base = || {
        let mut b = IoUring::builder();
        b.setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_single_issuer();
        b
    };
    let defer = std::env::var_os("SIPSTORM_NO_DEFER_TASKRUN").is_none();
    if defer && let Ok(r) = base().setup_defer_taskrun().build(entries) {
        return Ok(r);
    }
    base().build(entries).or_else(|_| IoUring::new(entries))
}

impl Loop {
    fn new(socket: &UdpSocket, listeners: &[Listener], streams: bool) -> io::Result<Loop> {
        let ring = build_ring(SQ_ENTRIES)?;
        let bufs = BufRing::new(RECV_BUFS, RECV_BUF_SIZE)?;
        // SAFETY: the ring memory lives in `bufs`, which is dropped after
        // `ring` (field order of `Loop`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.ring_addr(), RECV_BUFS, BGID, 0)?
        };
        let sbufs = if streams {
            let sb = BufRing::new(STREAM_BUFS, STREAM_BUF_SIZE)?;
            // SAFETY: the ring memory lives in `sbufs`, dropped after
            // `ring` (field order of `Loop`).
            unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    sb.ring_addr(),
                    STREAM_BUFS,
                    STREAM_BGID,
                    0,
                )?
            };
            Some(sb)
        } else {
            None
        };
        let recv_msg = Box::new(recv_template());
        let slots = (0..SEND_SLOTS)
            .map(|_| SendSlot {
                buf: Vec::with_capacity(1500),
                // SAFETY: all-zero is a valid value for these C structs.
                addr: unsafe { zeroed() },
                // SAFETY: as above.
                iov: unsafe { zeroed() },
                // SAFETY: as above.
                msg: unsafe { zeroed() },
                retried: false,
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let min_timeout = ring.params().is_feature_min_timeout()
            && std::env::var_os("SIPSTORM_NO_BATCH_WAIT").is_none();
        Ok(Loop {
            ring,
            bufs,
            sbufs,
            listeners: listeners
                .iter()
                .map(|l| (l.kind, listener_fd(l), false))
                .collect(),
            recv_msg,
            slots,
            free: (0..SEND_SLOTS).rev().collect(),
            fd: types::Fd(socket.as_raw_fd()),
            recv_armed: false,
            err_armed: false,
            err_poll: true,
            resend: Vec::new(),
            min_timeout,
        })
    }

    /// Queue an SQE, submitting first if the queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry pushed points at memory owned by `self`
            // (receive msghdr, buffer ring, send slots) that stays valid and
            // untouched until its completion (or until the ring is dropped).
            let r = unsafe { self.ring.submission().push(entry) };
            if r.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_recv(&mut self) -> io::Result<()> {
        let e = opcode::RecvMsgMulti::new(self.fd, &raw const *self.recv_msg, BGID)
            .build()
            .user_data(RECV_TAG);
        self.push(&e)?;
        self.recv_armed = true;
        Ok(())
    }

    /// Arm the multishot poll that completes when an error is queued on the
    /// socket (`POLLERR`: `sk_err` set or the error queue not empty).
    fn arm_err_poll(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(self.fd, libc::POLLERR as u32)
            .multi(true)
            .build()
            .user_data(ERR_TAG);
        self.push(&e)?;
        self.err_armed = true;
        Ok(())
    }

    /// Submit the send of slot `idx` (its `msg` already points at its
    /// buffers).
    fn push_send(&mut self, idx: usize) -> io::Result<()> {
        let e = opcode::SendMsg::new(self.fd, &raw const self.slots[idx].msg)
            .build()
            .user_data(idx as u64);
        self.push(&e)
    }

    /// Submit queued SQEs and wait for one completion or `timeout`.
    ///
    /// Always an enter with GETEVENTS (`want = 1`), even for a zero
    /// timeout: that is what runs the kernel's deferred completion work, so
    /// a loop that never sleeps still sees its completions.
    ///
    /// With `IORING_FEAT_MIN_TIMEOUT` (6.12+) a wait asks for
    /// [`BATCH_WANT`] completions but settles for one after `window`
    /// ([`Worker::batch_window`], capped by `timeout`): under moderate load
    /// one wake-up then handles the datagrams of a whole window instead of
    /// one each, which is most of the CPU a load generator spends per call.
    /// Arrival times stay exact (kernel timestamps, see `RxClock`).
    /// `timeout` (the worker's next deadline) still bounds the wait. A
    /// window at least as long as `timeout` waits for the deadline (or
    /// [`BATCH_WANT`] completions) whatever arrives.
    fn submit_wait(&mut self, timeout: Duration, window: Duration) -> io::Result<()> {
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let min_wait = window.min(timeout);
        let batch = self.min_timeout && min_wait >= Duration::from_micros(1);
        let r = if window >= timeout {
            // Hold everything until the deadline: only a full batch of
            // completions ends the wait earlier (any kernel).
            let args = SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(BATCH_WANT, &args)
        } else if batch {
            let args = SubmitArgs::new()
                .timespec(&ts)
                .min_wait_usec(u32::try_from(min_wait.as_micros()).unwrap_or(u32::MAX));
            self.ring.submitter().submit_with_args(BATCH_WANT, &args)
        } else {
            let args = SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The `msghdr` the multishot receive is armed with: only its name and
/// control lengths count, and they fix the layout of every provided buffer
/// (`io_uring_recvmsg_out | name | control | payload`).
fn recv_template() -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_namelen = NAME_LEN as libc::socklen_t;
    m.msg_controllen = CONTROL_LEN as _;
    m
}

impl LoopIo for Loop {
    fn fd(&self) -> RawFd {
        self.fd.0
    }

    /// Re-arm the multishot receive and the error poll if they ended, then
    /// deliver every completion: datagrams to the inbox, send slots back to
    /// the pool (or to a resend), and the buffers back to the kernel.
    fn reap<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
        if !self.recv_armed {
            self.arm_recv()?;
        }
        if self.err_poll && !self.err_armed {
            self.arm_err_poll()?;
        }
        for i in 0..self.listeners.len() {
            if !self.listeners[i].2 {
                let e = opcode::AcceptMulti::new(types::Fd(self.listeners[i].1))
                    .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(stream_tag(OP_ACCEPT, i as u32));
                self.push(&e)?;
                self.listeners[i].2 = true;
            }
        }
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let res = cqe.result();
            let flags = cqe.flags();
            let op = ud >> 56;
            if (OP_ACCEPT..=OP_CLOSE).contains(&op) {
                let low = ud as u32;
                if op == OP_ACCEPT {
                    let Some(l) = self.listeners.get_mut(low as usize) else {
                        continue;
                    };
                    if !cqueue::more(flags) {
                        l.2 = false;
                    }
                    if res >= 0 {
                        inbox.accepted(l.0, res);
                    }
                    continue;
                }
                let id = ConnId(low);
                let Some(c) = inbox.streams().table.get_mut(id) else {
                    continue;
                };
                let io = &mut c.layer.io;
                match op {
                    OP_CONNECT => {
                        io.ops -= 1;
                        inbox.connected(id, if res < 0 { Err(-res) } else { Ok(()) });
                    }
                    OP_RECV => {
                        if !cqueue::more(flags) {
                            io.ops -= 1;
                            io.recv_armed = false;
                        }
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            if res > 0
                                && let Some(sb) = &self.sbufs
                                && let Some(data) = sb.get(bid, usize::try_from(res).unwrap_or(0))
                            {
                                inbox.stream_data(id, data);
                            }
                            if let Some(sb) = &mut self.sbufs {
                                sb.push(bid);
                            }
                        } else if res == 0 {
                            inbox.stream_eof(id);
                        } else if res == -libc::ENOBUFS {
                            // The buffer ring ran dry: armed again below.
                        } else if res < 0 && res != -libc::ECANCELED {
                            inbox.stream_error(id, -res);
                        }
                        if let Some(c) = inbox.streams().table.get(id)
                            && !c.layer.io.recv_armed
                            && !c.layer.closing()
                            && res != 0
                        {
                            inbox.streams().todo.push((id, Op::Recv));
                        }
                    }
                    OP_SEND => {
                        io.ops -= 1;
                        inbox.stream_sent(id, usize::try_from(res).map_err(|_| -res));
                    }
                    OP_CANCEL => io.ops -= 1,
                    _ => {
                        io.ops -= 1;
                        inbox.streams().remove(id);
                        continue;
                    }
                }
                if let Some(c) = inbox.streams().table.get(id)
                    && c.layer.closing()
                    && c.layer.io.ops == 0
                    && !c.layer.io.close_sent
                {
                    inbox.streams().todo.push((id, Op::Close));
                }
                continue;
            }
            if ud == ERR_TAG {
                if !cqueue::more(flags) {
                    self.err_armed = false;
                }
                if res < 0 {
                    // Multishot poll not supported: rely on the error
                    // completions of receive and send.
                    self.err_poll = false;
                } else {
                    inbox.book().error_pending();
                }
            } else if ud == RECV_TAG {
                if !cqueue::more(flags) {
                    self.recv_armed = false;
                }
                if res < 0 {
                    // A pending ICMP error is noted for the error queue;
                    // anything else (ENOBUFS: the ring ran dry) just ends
                    // the multishot, re-armed next turn.
                    inbox.book().receive_failed(-res);
                }
                let Some(bid) = cqueue::buffer_select(flags) else {
                    continue;
                };
                if res > 0
                    && let Some(data) = self.bufs.get(bid, usize::try_from(res).unwrap_or(0))
                    && let Ok(out) = RecvMsgOut::parse(data, &self.recv_msg)
                {
                    inbox.datagram(
                        out.name_data(),
                        out.control_data(),
                        out.payload_data(),
                        out.is_payload_truncated(),
                    );
                }
                self.bufs.push(bid);
            } else if let Some(slot) = usize::try_from(ud).ok().filter(|&i| i < SEND_SLOTS) {
                let result = usize::try_from(res).map_err(|_| -res);
                if inbox.book().send_done(result, self.slots[slot].retried) {
                    self.slots[slot].retried = true;
                    self.resend.push(slot);
                    continue;
                }
                self.slots[slot].retried = false;
                self.free.push(slot);
            }
        }
        drop(cq);
        self.bufs.commit();
        if let Some(sb) = &self.sbufs {
            sb.commit();
        }
        while let Some(idx) = self.resend.pop() {
            self.push_send(idx)?;
        }
        Ok(())
    }

    fn send_buf(&mut self) -> Option<&mut Vec<u8>> {
        let &idx = self.free.last()?;
        Some(&mut self.slots[idx].buf)
    }

    fn queue_send(&mut self, to: SocketAddr, _book: &mut Book) -> io::Result<()> {
        let idx = self
            .free
            .pop()
            .ok_or_else(|| io::Error::other("send queued without a free slot"))?;
        let slot = &mut self.slots[idx];
        let namelen = super::sockaddr_from(to, &mut slot.addr);
        slot.iov = libc::iovec {
            iov_base: slot.buf.as_mut_ptr().cast(),
            iov_len: slot.buf.len(),
        };
        slot.msg.msg_name = (&raw mut slot.addr).cast();
        slot.msg.msg_namelen = namelen;
        slot.msg.msg_iov = &raw mut slot.iov;
        slot.msg.msg_iovlen = 1;
        slot.msg.msg_control = std::ptr::null_mut();
        slot.msg.msg_controllen = 0;
        self.push_send(idx)
    }

    /// Nothing to do: the SQEs go to the kernel with the next wait.
    fn submit(&mut self, _book: &mut Book) -> io::Result<()> {
        Ok(())
    }

    fn wait(&mut self, timeout: Duration, window: Duration, _book: &mut Book) -> io::Result<()> {
        // A multishot receive that ended (the buffer ring ran dry) is
        // re-armed by the next reap: come back at once.
        let timeout = if self.recv_armed {
            timeout
        } else {
            Duration::ZERO
        };
        self.submit_wait(timeout, window)
    }

    fn sends_pending(&self) -> bool {
        self.free.len() != SEND_SLOTS || !self.resend.is_empty()
    }

    fn streams<W: Worker>(&mut self, inbox: &mut Inbox<'_, W>) -> io::Result<()> {
        let todo = inbox.streams().take_todo();
        for (id, op) in todo {
            let streams = inbox.streams();
            if op == Op::Send {
                let Some(c) = streams.table.get(id) else {
                    continue;
                };
                let io = &c.layer.io;
                if io.sending > 0 || io.connecting || io.cancel_sent || !c.layer.can_send() {
                    continue;
                }
                let (n, total) = streams.fill_iovs(id);
                let Some(c) = streams.table.get_mut(id) else {
                    continue;
                };
                if n == 0 {
                    continue;
                }
                let e = opcode::SendMsg::new(types::Fd(c.layer.fd), &raw const c.layer.io.mem.msg)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
                    .user_data(stream_tag(OP_SEND, id.0));
                c.layer.io.sending = total;
                c.layer.io.ops += 1;
                self.push(&e)?;
                continue;
            }
            let Some(c) = streams.table.get_mut(id) else {
                continue;
            };
            let fd = types::Fd(c.layer.fd);
            let closing = c.layer.closing();
            let io = &mut c.layer.io;
            let entry = match op {
                Op::Connect => {
                    if closing || io.connecting {
                        continue;
                    }
                    io.connecting = true;
                    opcode::Connect::new(fd, (&raw const io.mem.addr).cast(), io.mem.addr_len)
                        .build()
                        .user_data(stream_tag(OP_CONNECT, id.0))
                }
                Op::Recv => {
                    if io.recv_armed || io.close_sent || self.sbufs.is_none() {
                        continue;
                    }
                    io.recv_armed = true;
                    opcode::RecvMulti::new(fd, STREAM_BGID)
                        .build()
                        .user_data(stream_tag(OP_RECV, id.0))
                }
                Op::Close => {
                    c.layer.set_closing();
                    let io = &mut c.layer.io;
                    if io.close_sent {
                        continue;
                    }
                    if io.ops > 0 {
                        if io.cancel_sent {
                            continue;
                        }
                        io.cancel_sent = true;
                        // Cancel each operation in flight by its user_data
                        // (a cancel by fd scans every request of the ring:
                        // costly with thousands of armed receives).
                        let inflight = [
                            (io.connecting, OP_CONNECT),
                            (io.recv_armed, OP_RECV),
                            (io.sending > 0, OP_SEND),
                        ];
                        let mut cancels = 0;
                        for (on, op) in inflight {
                            if on {
                                let e = opcode::AsyncCancel::new(stream_tag(op, id.0))
                                    .build()
                                    .user_data(stream_tag(OP_CANCEL, id.0));
                                self.push(&e)?;
                                cancels += 1;
                            }
                        }
                        if let Some(c) = inbox.streams().table.get_mut(id) {
                            c.layer.io.ops += cancels;
                        }
                        continue;
                    } else {
                        io.close_sent = true;
                        opcode::Close::new(fd)
                            .build()
                            .user_data(stream_tag(OP_CLOSE, id.0))
                    }
                }
                Op::Send => continue,
            };
            c.layer.io.ops += 1;
            self.push(&entry)?;
        }
        Ok(())
    }
}

/// Drive `worker` on `socket`, `listeners` and the connections of
/// `streams` until it returns [`Tick::Stop`](super::Tick::Stop).
///
/// `streams` outlives the ring (it is the caller's): the ring, and with it
/// every operation in flight, is gone before the connections' memory is.
pub(crate) fn run<W: Worker>(
    socket: &UdpSocket,
    listeners: &[Listener],
    streams: &mut Streams,
    worker: &mut W,
) -> Result<IoCounters, TransportError> {
    let mut lp = Loop::new(socket, listeners, streams.enabled())
        .map_err(TransportError::UringUnavailable)?;
    drive(&mut lp, streams, worker).map_err(TransportError::Uring)
}
