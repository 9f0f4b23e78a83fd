//! Fuzz the SIPp scenario reader and compiler (sipstorm issue 17): a
//! malformed scenario is refused with a `FILE:LINE` message, never a panic.
//! Run: `cargo +nightly fuzz run scenario` (seeds: fuzz/seeds/scenario, the
//! `sipp -sd` exports of tests/sipp_scenarios/).
//!
//! A program that compiles is also run for one call: a client scenario
//! starts a call and gets the fuzz input as its first answer; a server one
//! gets the input as its first request. Neither may panic.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sipstorm::engine::scenario::{CompileOptions, Role, ScenarioSetup, compile_bytes};
use sipstorm::engine::{ClientConfig, Endpoint, SansIo, Scenario, ServerConfig};
use sipstorm::flow::Flow;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = compile_bytes(data, "fuzz.xml", &CompileOptions::default()) else {
        return;
    };
    let role = p.role;
    let setup = ScenarioSetup::new(Arc::new(p));
    let now = Instant::now();
    let peer = "127.0.0.1:5070".parse().unwrap();
    let mut ep = match role {
        Role::Uac => {
            let mut c = ClientConfig::new(Scenario::Call, peer, "127.0.0.1:5071".parse().unwrap());
            c.scenario_file = Some(setup);
            let mut ep = Endpoint::client(c, now);
            ep.start_attempt(now, now, Duration::ZERO);
            ep
        }
        Role::Uas => {
            let mut s = ServerConfig::default();
            s.scenario_file = Some(setup);
            Endpoint::server(s, now)
        }
    };
    ep.handle(now, Flow::udp(peer), data);
    ep.handle_timeout(now + Duration::from_secs(40));
    let mut buf = Vec::new();
    while ep.poll_transmit(&mut buf).is_some() {}
});
