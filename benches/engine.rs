//! The sans-IO engine alone: a client Endpoint and a server Endpoint
//! stepped in memory (each datagram one endpoint transmits is handed to the
//! other), one core, no sockets.
//!
//! - `engine/call`: complete calls (INVITE, 100, 180, 200, ACK, BYE, 200; hold 0)
//! - `engine/register`: digest registrations (REGISTER, 401, REGISTER, 200)
//! - `engine/sf_uac`: the same call as SIPp's own scenarios, `uac.xml`
//!   against `uas.xml` (tests/sipp_scenarios, `sipp -sd`), run by the
//!   scenario interpreter on both sides (issue 17)
//!
//! Also prints the heap bytes per call in hold (client and server side),
//! measured with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use sipstorm::engine::scenario::{CompileOptions, ScenarioSetup, compile_file};
use sipstorm::engine::{
    ClientConfig, Endpoint, Event, Outcome, SansIo, Scenario, ServerConfig, UserSource,
};
use sipstorm::flow::Flow;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const CADDR: &str = "127.0.0.1:5070";
const SADDR: &str = "127.0.0.1:5060";

/// What the bench runs: a built-in scenario, or SIPp's `uac.xml` against
/// `uas.xml`.
#[derive(Clone, Copy)]
enum Load {
    Builtin(Scenario),
    SippFiles,
}

fn endpoints(load: Load, now: Instant) -> (Endpoint, Endpoint) {
    let (c, s): (SocketAddr, SocketAddr) = (CADDR.parse().unwrap(), SADDR.parse().unwrap());
    let scenario = match load {
        Load::Builtin(sc) => sc,
        Load::SippFiles => Scenario::Call,
    };
    let mut cc = ClientConfig::new(scenario, s, c);
    cc.users = Arc::new(UserSource::pattern("u{000000..099999}", "pw-{user}").unwrap());
    let mut sc = ServerConfig {
        local: s,
        ..ServerConfig::default()
    };
    if let Load::SippFiles = load {
        let file = |name: &str| {
            let path = format!("{}/tests/sipp_scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
            let p = compile_file(std::path::Path::new(&path), &CompileOptions::default()).unwrap();
            ScenarioSetup::new(Arc::new(p))
        };
        cc.scenario_file = Some(file("uac.xml"));
        sc.scenario_file = Some(file("uas.xml"));
    }
    (Endpoint::client(cc, now), Endpoint::server(sc, now))
}

/// Finished attempts so far: scenario calls count in the scenario's own
/// counters (every one must succeed), built-in ones come as events.
fn scenario_done(c: &Endpoint) -> usize {
    c.scenario_counters().map_or(0, |k| {
        assert!(k.failed.iter().all(|&f| f == 0), "a scenario call failed");
        k.succeeded as usize
    })
}

/// Deliver everything both ways until both are quiet; returns finished attempts.
fn pump(c: &mut Endpoint, s: &mut Endpoint, now: Instant, buf: &mut Vec<u8>) -> usize {
    let (ca, sa): (SocketAddr, SocketAddr) = (CADDR.parse().unwrap(), SADDR.parse().unwrap());
    let (ca, sa) = (Flow::udp(ca), Flow::udp(sa));
    let mut done = 0;
    let sf_before = scenario_done(c);
    loop {
        let mut moved = false;
        while c.poll_transmit(buf).is_some() {
            s.handle(now, ca, buf);
            moved = true;
        }
        while s.poll_transmit(buf).is_some() {
            c.handle(now, sa, buf);
            moved = true;
        }
        while let Some(e) = c.poll_event() {
            match e {
                Event::CallDone { outcome, .. } | Event::RegisterDone { outcome, .. } => {
                    assert_eq!(outcome, Outcome::Success);
                    done += 1;
                }
                _ => {}
            }
        }
        if !moved {
            return done + scenario_done(c) - sf_before;
        }
    }
}

fn run(c: &mut Endpoint, s: &mut Endpoint, n: u64, buf: &mut Vec<u8>) -> Duration {
    const BATCH: u64 = 256;
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let now = Instant::now();
        let k = left.min(BATCH);
        for _ in 0..k {
            assert!(c.start_attempt(now, now, Duration::ZERO));
        }
        let mut done = 0;
        while done < k as usize {
            done += pump(c, s, now, buf);
        }
        c.handle_timeout(now);
        s.handle_timeout(now);
        left -= k;
    }
    t.elapsed()
}

const LOADS: [(&str, Load); 3] = [
    ("call", Load::Builtin(Scenario::Call)),
    ("register", Load::Builtin(Scenario::Register)),
    ("sf_uac", Load::SippFiles),
];

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(2048);
    for (name, load) in LOADS {
        let (mut c, mut s) = endpoints(load, Instant::now());
        g.bench_function(name, |b| {
            b.iter_custom(|n| run(&mut c, &mut s, n, &mut buf))
        });
    }
    g.finish();
    memory_in_hold();
}

/// Heap bytes per established call in hold, each side.
fn memory_in_hold() {
    const N: usize = 20_000;
    let now = Instant::now();
    let (mut c, mut s) = endpoints(Load::Builtin(Scenario::Call), now);
    let mut buf = Vec::with_capacity(2048);
    // Warm-up: the pools and slabs a paced run would have.
    for _ in 0..100 {
        c.start_attempt(now, now, Duration::ZERO);
    }
    pump(&mut c, &mut s, now, &mut buf);
    let before = LIVE.load(Ordering::Relaxed);
    // Paced like a real run: a batch at a time, so transactions (which
    // live milliseconds) do not all exist at once.
    for _ in 0..N / 100 {
        for _ in 0..100 {
            c.start_attempt(now, now, Duration::from_secs(3600));
        }
        pump(&mut c, &mut s, now, &mut buf);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let cs = c.state_sizes();
    let ss = s.state_sizes();
    eprintln!(
        "memory in hold: {N} calls, client {} sessions / {} txns, server {} sessions / {} txns; \
         heap {:.0} bytes per call (both sides together); engine estimate client {} B/call, \
         server {} B/call",
        cs.sessions,
        cs.transactions,
        ss.sessions,
        ss.transactions,
        (after - before) as f64 / N as f64,
        cs.approx_bytes / N,
        ss.approx_bytes / N,
    );
    assert_eq!(c.in_flight(), N);
}

criterion_group!(benches, bench);

/// User + system CPU time of this process (from /proc, 10 ms resolution),
/// so a loaded shared machine does not skew the per-core rate.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// `SIPSTORM_ENGINE_QUICK=N` runs N calls and N registrations without
/// criterion (for `perf record`), printing the rates.
fn main() {
    if let Some(n) = std::env::var("SIPSTORM_ENGINE_QUICK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let mut buf = Vec::with_capacity(2048);
        for (name, load) in LOADS {
            let (mut c, mut s) = endpoints(load, Instant::now());
            run(&mut c, &mut s, n / 10, &mut buf);
            let cpu0 = cpu_seconds();
            let d = run(&mut c, &mut s, n, &mut buf);
            let cpu = cpu_seconds() - cpu0;
            eprintln!(
                "{name}: {n} in {d:?} wall = {:.0}/s; {cpu:.2} s CPU = {:.0}/s per CPU second",
                n as f64 / d.as_secs_f64(),
                n as f64 / cpu
            );
        }
        memory_in_hold();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
