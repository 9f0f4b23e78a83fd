//! The kernel floor (issue 18): the CPU a minimal program spends per call
//! moving exactly the datagrams of one call — the same sizes, the same
//! count, to and from a peer on loopback — with the best batching the
//! kernel offers (`recvmmsg`/`sendmmsg`, one wake-up per tick), and
//! nothing else: no parsing, no state beyond a step counter per call.
//!
//! Every efficiency figure of a SIP generator is quoted against it: a tool
//! at 1.5× the floor spends half the floor again on everything that is
//! SIP. `benches/floor.rs` and `scripts/floor.sh` run it.
//!
//! A call is a list of [`FloorStep`]s: the client sends one datagram, the
//! peer answers with datagrams of the given sizes, and once all of them are
//! back the client sends the next step (steps with no answer follow at
//! once, as an ACK and a BYE do). Each datagram carries its call number in
//! its first eight bytes and its step in the ninth.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One step of a call as the floor replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorStep {
    /// Bytes of the client's datagram.
    pub send: usize,
    /// Bytes of each datagram the peer answers with.
    pub replies: Vec<usize>,
}

/// What a floor run measured on the client side.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FloorResult {
    /// Calls whose every step completed.
    pub calls: u64,
    /// Calls started.
    pub started: u64,
    /// CPU seconds of the client thread (exact, `CLOCK_THREAD_CPUTIME_ID`).
    pub cpu_s: f64,
    /// Loop wake-ups.
    pub wakeups: u64,
    /// Datagrams sent and received by the client.
    pub datagrams: u64,
    /// Wall time of the load (from the first start to the last answer).
    pub elapsed: Duration,
}

impl FloorResult {
    /// Client CPU per completed call, microseconds.
    pub fn cpu_us_per_call(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.cpu_s * 1e6 / self.calls as f64
        }
    }
}

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 256;
/// Largest datagram the floor moves.
const MAX: usize = super::MAX_DATAGRAM;
const HEADER: usize = 9;

/// Batched datagram I/O on one non-blocking socket.
struct Batch {
    bufs: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: (0..BATCH).map(|_| vec![0u8; MAX]).collect(),
            // SAFETY: all-zero is a valid value for these C structs.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            iovs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    /// Receive up to [`BATCH`] datagrams; returns how many (0 when none
    /// waits). Datagram `i` is `self.bufs[i][..len(i)]`.
    fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
        }
        // SAFETY: every header points at buffers owned by `self`, valid for
        // the lengths given, for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(usize::try_from(rc).unwrap_or(0))
    }

    fn len(&self, i: usize) -> usize {
        (self.hdrs[i].msg_len as usize).min(MAX)
    }

    /// The sender of datagram `i`.
    fn from(&self, i: usize) -> Option<SocketAddr> {
        let n =
            (self.hdrs[i].msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: `names[i]` is initialised (zeroed, then written by the
        // kernel) for `n` bytes, at most its size.
        let raw = unsafe { std::slice::from_raw_parts((&raw const self.names[i]).cast::<u8>(), n) };
        super::sockaddr_to(raw)
    }
}

/// Datagrams queued to send, flushed with `sendmmsg`.
struct Outbox {
    queue: Vec<(SocketAddr, u64, u8, usize)>,
    bufs: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            queue: Vec::new(),
            bufs: (0..BATCH).map(|_| vec![b'x'; MAX]).collect(),
            // SAFETY: all-zero is a valid value for these C structs.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            iovs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    /// Queue a datagram of `size` bytes for call `call`, step `step`.
    fn push(&mut self, to: SocketAddr, call: u64, step: u8, size: usize) {
        self.queue.push((to, call, step, size.clamp(HEADER, MAX)));
    }

    /// Send everything queued, [`BATCH`] per system call. Returns the
    /// datagrams the kernel took (a full socket buffer drops the rest, as
    /// it would any generator's).
    fn flush(&mut self, sock: &UdpSocket) -> u64 {
        let mut sent = 0u64;
        let queue = std::mem::take(&mut self.queue);
        for chunk in queue.chunks(BATCH) {
            for (i, &(to, call, step, size)) in chunk.iter().enumerate() {
                let b = &mut self.bufs[i];
                b[..8].copy_from_slice(&call.to_le_bytes());
                b[8] = step;
                let namelen = super::sockaddr_from(to, &mut self.names[i]);
                self.iovs[i] = libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: size,
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = (&raw mut self.names[i]).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &raw mut self.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            let mut done = 0;
            while done < chunk.len() {
                let n = (chunk.len() - done) as libc::c_uint;
                // SAFETY: headers `[done, len)` point at buffers and
                // addresses owned by `self`, alive for the call.
                let rc = unsafe {
                    libc::sendmmsg(sock.as_raw_fd(), self.hdrs.as_mut_ptr().add(done), n, 0)
                };
                if rc <= 0 {
                    break;
                }
                done += rc as usize;
            }
            sent += done as u64;
        }
        self.queue = queue;
        self.queue.clear();
        sent
    }
}

/// The call number and step a floor datagram carries.
fn header(d: &[u8]) -> Option<(u64, u8)> {
    let call = u64::from_le_bytes(d.get(..8)?.try_into().ok()?);
    Some((call, *d.get(8)?))
}

/// The floor's peer: answer every client datagram of step `s` with the
/// datagrams of `steps[s].replies`, until `stop`. Runs on its own thread
/// (the target's side; its CPU is not the floor).
pub fn peer(sock: &UdpSocket, steps: &[FloorStep], stop: &AtomicBool) -> io::Result<u64> {
    let mut rx = Batch::new();
    let mut tx = Outbox::new();
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let n = rx.recv(sock)?;
        if n == 0 {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        for i in 0..n {
            let Some(from) = rx.from(i) else { continue };
            let Some((call, step)) = header(&rx.bufs[i][..rx.len(i)]) else {
                continue;
            };
            if let Some(st) = steps.get(usize::from(step)) {
                for &size in &st.replies {
                    tx.push(from, call, step, size);
                }
                answered += 1;
            }
        }
        tx.flush(sock);
    }
    Ok(answered)
}

/// Run `rate` calls per second for `duration` against `peer_addr`, one
/// wake-up per `tick`, then wait up to `drain` for the last answers.
pub fn client(
    sock: &UdpSocket,
    peer_addr: SocketAddr,
    steps: &[FloorStep],
    rate: f64,
    duration: Duration,
    tick: Duration,
    drain: Duration,
) -> io::Result<FloorResult> {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    // Per call: current step and replies received for it.
    let mut state: Vec<(u8, u8)> = vec![(0, 0); usize::try_from(total).unwrap_or(0)];
    let mut rx = Batch::new();
    let mut tx = Outbox::new();
    let mut r = FloorResult::default();
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let last_step = steps.len();
    // Queue step `s` of `call` and every reply-less step after it.
    let advance = |tx: &mut Outbox, st: &mut (u8, u8), call: u64, done: &mut u64| {
        loop {
            let s = usize::from(st.0);
            if s >= last_step {
                *done += 1;
                return;
            }
            tx.push(peer_addr, call, st.0, steps[s].send);
            if !steps[s].replies.is_empty() {
                return;
            }
            st.0 += 1;
        }
    };
    let mut next = t0;
    loop {
        let now = Instant::now();
        let due = ((now - t0).as_secs_f64() * rate).min(total as f64) as u64;
        while r.started < due {
            let call = r.started;
            if let Some(st) = state.get_mut(call as usize) {
                advance(&mut tx, st, call, &mut r.calls);
            }
            r.started += 1;
        }
        loop {
            let n = rx.recv(sock)?;
            for i in 0..n {
                r.datagrams += 1;
                let Some((call, step)) = header(&rx.bufs[i][..rx.len(i)]) else {
                    continue;
                };
                let Some(st) = state.get_mut(call as usize) else {
                    continue;
                };
                if st.0 != step {
                    continue;
                }
                st.1 += 1;
                if usize::from(st.1) == steps[usize::from(step)].replies.len() {
                    *st = (st.0 + 1, 0);
                    advance(&mut tx, st, call, &mut r.calls);
                }
            }
            if n < BATCH {
                break;
            }
        }
        r.datagrams += tx.flush(sock);
        if r.calls == total || now - t0 > duration + drain {
            break;
        }
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        r.wakeups += 1;
    }
    r.elapsed = t0.elapsed();
    r.cpu_s = thread_cpu_s() - cpu0;
    Ok(r)
}

/// CPU seconds of the calling thread, exact.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant; clock_gettime writes only into `ts`.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Run client and peer on loopback (the peer on its own thread), pinned
/// nowhere: the caller pins. Returns the client's measurement.
pub fn run_pair(
    steps: Arc<Vec<FloorStep>>,
    rate: f64,
    duration: Duration,
    tick: Duration,
) -> io::Result<FloorResult> {
    let opts = super::SocketOptions {
        recv_errors: false,
        rx_timestamps: false,
        ..super::SocketOptions::default()
    };
    let bind = |a: &str| {
        super::bind_udp(a.parse().expect("literal address"), opts)
            .map_err(|e| io::Error::other(e.to_string()))
    };
    let (client_sock, peer_sock) = (bind("127.0.0.1:0")?, bind("127.0.0.1:0")?);
    let peer_addr = peer_sock.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, steps2) = (stop.clone(), steps.clone());
    let h = std::thread::spawn(move || peer(&peer_sock, &steps2, &stop2));
    let r = client(
        &client_sock,
        peer_addr,
        &steps,
        rate,
        duration,
        tick,
        Duration::from_secs(2),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Vec<FloorStep> {
        vec![
            FloorStep {
                send: 900,
                replies: vec![400, 900],
            },
            FloorStep {
                send: 400,
                replies: vec![],
            },
            FloorStep {
                send: 400,
                replies: vec![400],
            },
        ]
    }

    #[test]
    fn every_call_completes_with_its_datagrams() {
        let r = run_pair(
            Arc::new(call()),
            2000.0,
            Duration::from_millis(100),
            Duration::from_millis(1),
        )
        .unwrap();
        assert_eq!(r.started, 200);
        assert_eq!(r.calls, 200, "{r:?}");
        // Three sends and three answers per call.
        assert_eq!(r.datagrams, 6 * 200, "{r:?}");
        assert!(r.cpu_s > 0.0 && r.cpu_us_per_call() > 0.0);
        // One wake-up per tick, not per datagram.
        assert!(r.wakeups < 1000, "{r:?}");
    }

    #[test]
    fn header_round_trips() {
        let mut b = vec![0u8; 16];
        b[..8].copy_from_slice(&42u64.to_le_bytes());
        b[8] = 2;
        assert_eq!(header(&b), Some((42, 2)));
        assert_eq!(header(&b[..5]), None);
    }
}
