//! The kernel floor (issue 18): the CPU a minimal program spends per call
//! moving exactly the datagrams of one sipstorm call to a peer on loopback,
//! batched (`recvmmsg`/`sendmmsg`, one wake-up per 1 ms tick) — see
//! `sipstorm::transport::floor`. The sizes and count come from one real
//! call of the engine (client against the built-in target, hold 0, ring 0)
//! run in virtual time, so the floor moves what sipstorm moves.
//!
//! `cargo bench --bench floor -- [--seconds S] [RATE...]` prints one JSON
//! line per rate (default 1000 3000 30000): client CPU µs per call, calls,
//! wake-ups. Under `cargo test --benches` it runs one short, small round
//! as a smoke test. `scripts/floor.sh` runs it with the machine's load
//! average recorded and writes results/.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipstorm::engine::sim::{NetConfig, Sim};
use sipstorm::engine::{ClientConfig, Endpoint, Scenario, ServerConfig};
use sipstorm::transport::floor::{self, FloorStep};

/// The datagrams of one call, grouped into client steps and the peer's
/// answers to each.
fn call_shape() -> Vec<FloorStep> {
    let now = Instant::now();
    let (c, s): (SocketAddr, SocketAddr) = (
        "127.0.0.1:5070".parse().unwrap(),
        "127.0.0.1:5060".parse().unwrap(),
    );
    let mut sim = Sim::new(
        NetConfig {
            latency: Duration::from_millis(1),
            ..NetConfig::default()
        },
        now,
    );
    sim.trace_on = true;
    let ci = sim.add(
        c,
        Endpoint::client(ClientConfig::new(Scenario::Call, s, c), now),
    );
    sim.add(
        s,
        Endpoint::server(
            ServerConfig {
                local: s,
                ..ServerConfig::default()
            },
            now,
        ),
    );
    assert!(sim.ep(ci).start_attempt(now, now, Duration::ZERO));
    sim.run_for(Duration::from_secs(1));
    let mut steps: Vec<FloorStep> = Vec::new();
    for (_, from, _, bytes) in &sim.trace {
        if *from == c {
            steps.push(FloorStep {
                send: bytes.len(),
                replies: Vec::new(),
            });
        } else if let Some(last) = steps.last_mut() {
            last.replies.push(bytes.len());
        }
    }
    steps
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mut seconds = 5.0;
    let mut rates = Vec::new();
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        if a == "--seconds" {
            seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds S");
        } else if let Ok(r) = a.parse::<f64>() {
            rates.push(r);
        }
    }
    let steps = Arc::new(call_shape());
    let datagrams: usize = steps.iter().map(|s| 1 + s.replies.len()).sum();
    if !bench {
        // cargo test --benches: one short round proves it works.
        let r = floor::run_pair(
            steps,
            500.0,
            Duration::from_millis(200),
            Duration::from_millis(1),
        )
        .expect("floor run");
        assert_eq!(r.calls, 100, "{r:?}");
        assert_eq!(r.datagrams as usize, 100 * datagrams, "{r:?}");
        println!("floor smoke: {r:?}");
        return;
    }
    if rates.is_empty() {
        rates = vec![1000.0, 3000.0, 30000.0];
    }
    let shape: Vec<String> = steps
        .iter()
        .map(|s| format!("{}->{:?}", s.send, s.replies))
        .collect();
    for rate in rates {
        let r = floor::run_pair(
            steps.clone(),
            rate,
            Duration::from_secs_f64(seconds),
            Duration::from_millis(1),
        )
        .expect("floor run");
        println!(
            "{{\"rate\": {rate}, \"calls\": {}, \"started\": {}, \"cpu_us_per_call\": {:.3}, \"cpu_s\": {:.4}, \"wakeups\": {}, \"datagrams_per_call\": {datagrams}, \"shape\": {:?}}}",
            r.calls,
            r.started,
            r.cpu_us_per_call(),
            r.cpu_s,
            r.wakeups,
            shape.join(" ")
        );
    }
}
