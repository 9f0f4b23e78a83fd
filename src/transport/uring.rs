//! The io_uring event loop: one ring per worker.
//!
//! - Receive: one multishot `RecvMsg` (kernel ≥ 6.0) selecting buffers from a
//!   provided-buffer ring (`IORING_REGISTER_PBUF_RING`, ≥ 5.19). Each
//!   completion carries one datagram in a buffer laid out as
//!   `io_uring_recvmsg_out | name | control | payload`, parsed with
//!   [`RecvMsgOut`]. Buffers go back to the ring after the worker has seen the
//!   datagram; the ring tail is published once per turn. When the kernel runs
//!   out of buffers it ends the multishot (no `IORING_CQE_F_MORE`) and the
//!   datagrams wait in the socket queue until the loop re-arms it.
//! - Send: a fixed pool of send slots, each owning its `msghdr`, `iovec`,
//!   destination and payload, alive until the `SendMsg` completion returns the
//!   slot. All sends of a turn go to the kernel in the same `io_uring_enter`.
//! - Wait: one `io_uring_enter(GETEVENTS, min_complete = 1)` per turn with an
//!   `EXT_ARG` timeout equal to the worker's next deadline.
//! - ICMP errors: a multishot `POLL_ADD` for `POLLERR` completes whenever an
//!   error is queued on the socket. A pending error also makes the
//!   multishot receive complete with it (`-ECONNREFUSED`, ending the
//!   multishot, which is re-armed) or a send fail with it (the send did not
//!   happen and is submitted once more). Any of these marks the error
//!   queue, which is read with a plain non-blocking
//!   `recvmsg(MSG_ERRQUEUE)` before the worker's tick
//!   ([`super::drain_error_queue`]).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::flow::Flow;

use super::{CONTROL_LEN, IoCounters, Tick, TransportError, Worker};

/// Buffer group id of the receive ring (one ring per io_uring instance).
const BGID: u16 = 1;
/// Provided receive buffers per worker (power of two).
const RECV_BUFS: u16 = 2048;
/// Size of one provided buffer: header + name + control + payload.
const RECV_BUF_SIZE: usize = 2048;
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
/// Longest the loop waits for the last sends after the worker stopped.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

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
    let ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel lacks IORING_FEAT_EXT_ARG",
        ));
    }
    let probe_bufs = BufRing::new(8)?;
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
    /// Our copy of the tail; published to the kernel by `commit`.
    tail: u16,
}

impl BufRing {
    fn new(entries: u16) -> io::Result<BufRing> {
        let oom = || io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring allocation failed");
        let ring_layout =
            Layout::from_size_align(usize::from(entries) * size_of::<BufRingEntry>(), 4096)
                .map_err(|_| oom())?;
        let bufs_layout =
            Layout::from_size_align(usize::from(entries) * RECV_BUF_SIZE, 64).map_err(|_| oom())?;
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
        let addr = unsafe { self.bufs.add(usize::from(bid) * RECV_BUF_SIZE) };
        entry.set_addr(addr as u64);
        entry.set_len(RECV_BUF_SIZE as u32);
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
        if bid >= self.entries || len > RECV_BUF_SIZE {
            return None;
        }
        // SAFETY: in bounds (checked above); the kernel handed this buffer
        // back to us in a completion and does not touch it until we push it
        // again, which happens after the returned borrow ends.
        Some(unsafe {
            std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * RECV_BUF_SIZE), len)
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
    recv_msg: Box<libc::msghdr>,
    slots: Box<[SendSlot]>,
    free: Vec<usize>,
    fd: types::Fd,
    recv_armed: bool,
    /// The `POLLERR` poll is armed; `err_poll` false once the kernel
    /// refused it (then completions with errors are the only signal).
    err_armed: bool,
    err_poll: bool,
    /// The error queue may hold ICMP errors: read it before the tick.
    errq: bool,
    /// Sends refused by a pending ICMP error, to submit once more.
    resend: Vec<usize>,
    io: IoCounters,
    /// The kernel supports `min_wait_usec` (batched wake-ups).
    min_timeout: bool,
    /// Arrival instants from kernel timestamps.
    clock: super::RxClock,
}

impl Loop {
    fn new(socket: &UdpSocket) -> io::Result<Loop> {
        // COOP_TASKRUN: no inter-processor interrupts to run completion task
        // work; it runs when we enter the kernel with GETEVENTS, which every
        // turn does (see `submit_wait`). TASKRUN_FLAG makes pending task
        // work visible in the SQ flags. Older kernels get a plain ring.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_single_issuer()
            .build(SQ_ENTRIES)
            .or_else(|_| IoUring::new(SQ_ENTRIES))?;
        let bufs = BufRing::new(RECV_BUFS)?;
        // SAFETY: the ring memory lives in `bufs`, which is dropped after
        // `ring` (field order of `Loop`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.ring_addr(), RECV_BUFS, BGID, 0)?
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { zeroed() });
        recv_msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        recv_msg.msg_controllen = CONTROL_LEN as _;
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
            recv_msg,
            slots,
            free: (0..SEND_SLOTS).rev().collect(),
            fd: types::Fd(socket.as_raw_fd()),
            recv_armed: false,
            err_armed: false,
            err_poll: true,
            errq: false,
            resend: Vec::new(),
            io: IoCounters::default(),
            min_timeout,
            clock: super::RxClock::new(Instant::now()),
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

    /// Deliver every completion: datagrams to the worker, send slots back to
    /// the pool.
    fn drain_completions<W: Worker>(&mut self, now: Instant, worker: &mut W) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let res = cqe.result();
            let flags = cqe.flags();
            if ud == ERR_TAG {
                if !cqueue::more(flags) {
                    self.err_armed = false;
                }
                if res < 0 {
                    // Multishot poll not supported: rely on the error
                    // completions of receive and send.
                    self.err_poll = false;
                } else {
                    self.errq = true;
                }
            } else if ud == RECV_TAG {
                if !cqueue::more(flags) {
                    self.recv_armed = false;
                }
                if res < 0 && super::is_async_error(-res) {
                    self.errq = true;
                }
                let Some(bid) = cqueue::buffer_select(flags) else {
                    continue;
                };
                if res > 0 {
                    let len = usize::try_from(res).unwrap_or(0);
                    if let Some(data) = self.bufs.get(bid, len)
                        && let Ok(out) = RecvMsgOut::parse(data, &self.recv_msg)
                    {
                        super::note_drops(&mut self.io, super::rxq_ovfl(out.control_data()));
                        if out.is_payload_truncated() {
                            self.io.truncated += 1;
                        } else if let Some(from) = super::sockaddr_to(out.name_data()) {
                            let payload = out.payload_data();
                            self.io.datagrams_received += 1;
                            self.io.bytes_received += payload.len() as u64;
                            let at = self.clock.arrival(out.control_data());
                            worker.handle(at, Flow::udp(from), payload);
                        }
                    }
                }
                self.bufs.push(bid);
            } else if let Some(slot) = usize::try_from(ud).ok().filter(|&i| i < SEND_SLOTS) {
                if res < 0 && super::is_async_error(-res) && !self.slots[slot].retried {
                    // A pending ICMP error (maybe for another destination)
                    // was returned instead of sending; reading it cleared
                    // it, so send once more. The error is on the queue.
                    self.errq = true;
                    self.slots[slot].retried = true;
                    self.resend.push(slot);
                    continue;
                }
                if res < 0 {
                    self.io.send_errors += 1;
                } else {
                    self.io.datagrams_sent += 1;
                    self.io.bytes_sent += u64::try_from(res).unwrap_or(0);
                }
                self.slots[slot].retried = false;
                self.free.push(slot);
            }
        }
        drop(cq);
        self.bufs.commit();
        if std::mem::take(&mut self.errq) {
            super::drain_error_queue(self.fd.0, now, &mut self.io, worker);
        }
    }

    /// Submit again the sends a pending ICMP error refused.
    fn resend(&mut self) -> io::Result<()> {
        while let Some(idx) = self.resend.pop() {
            self.push_send(idx)?;
        }
        Ok(())
    }

    /// Move the worker's queued datagrams into send SQEs (as many as there
    /// are free slots). Returns true if the worker may have more.
    fn queue_sends<W: Worker>(&mut self, worker: &mut W) -> io::Result<bool> {
        while let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx];
            let Some(dst) = worker.poll_transmit(&mut slot.buf) else {
                self.free.push(idx);
                return Ok(false);
            };
            let namelen = super::sockaddr_from(dst.peer, &mut slot.addr);
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
            self.push_send(idx)?;
        }
        Ok(true)
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
    /// `timeout` (the worker's next deadline) still bounds the wait.
    fn submit_wait(&mut self, timeout: Duration, window: Duration) -> io::Result<()> {
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let min_wait = window.min(timeout);
        let batch = self.min_timeout && min_wait >= Duration::from_micros(1);
        let r = if batch {
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

/// Drive `worker` on `socket` until it returns [`Tick::Stop`].
pub fn run<W: Worker>(socket: &UdpSocket, worker: &mut W) -> Result<IoCounters, TransportError> {
    let mut lp = Loop::new(socket).map_err(TransportError::UringUnavailable)?;
    let err = TransportError::Uring;
    loop {
        if !lp.recv_armed {
            lp.arm_recv().map_err(err)?;
        }
        if lp.err_poll && !lp.err_armed {
            lp.arm_err_poll().map_err(err)?;
        }
        let now = Instant::now();
        lp.clock.turn(now);
        lp.drain_completions(now, worker);
        lp.resend().map_err(err)?;
        lp.io.turns += 1;
        let tick = worker.tick(now, &lp.io);
        let more = lp.queue_sends(worker).map_err(err)?;
        match tick {
            Tick::Stop => break,
            Tick::Continue(wake) => {
                // With sends still waiting for a slot, come back as soon as a
                // send completes (any completion wakes the wait).
                let sleep = if !lp.recv_armed {
                    Duration::ZERO
                } else {
                    super::sleep_for(Instant::now(), wake)
                };
                let sleep = if more {
                    sleep.min(Duration::from_millis(1))
                } else {
                    sleep
                };
                lp.submit_wait(sleep, worker.batch_window()).map_err(err)?;
            }
        }
    }
    // Flush: everything the worker still queued, then wait for the sends.
    let deadline = Instant::now() + FLUSH_LIMIT;
    loop {
        let more = lp.queue_sends(worker).map_err(err)?;
        if !more && lp.free.len() == SEND_SLOTS {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        lp.submit_wait(Duration::from_millis(5), Duration::ZERO)
            .map_err(err)?;
        let now = Instant::now();
        lp.clock.turn(now);
        lp.drain_completions(now, &mut Discard(worker));
        lp.resend().map_err(err)?;
    }
    Ok(lp.io)
}

/// While flushing, received datagrams are still counted but the worker has
/// already stopped, so they are dropped.
struct Discard<'a, W>(&'a mut W);

impl<W: Worker> Worker for Discard<'_, W> {
    fn handle(&mut self, _now: Instant, _from: Flow, _data: &[u8]) {}
    fn tick(&mut self, _now: Instant, _io: &IoCounters) -> Tick {
        Tick::Stop
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        self.0.poll_transmit(buf)
    }
}
