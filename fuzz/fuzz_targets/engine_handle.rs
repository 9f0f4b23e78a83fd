//! Fuzz the engine's `handle()` (sipstorm issue 8): any datagram, delivered
//! to a client with attempts in flight or to the registrar/UAS, must not
//! panic, and the endpoint must still drain to no state at all once every
//! RFC 3261 timer has run out.
//!
//! The first byte picks the receiver (client call / register / options,
//! or server); the rest is the datagram, delivered twice (a retransmission).
//! Run: `cargo +nightly fuzz run engine_handle fuzz/corpus/engine_handle fuzz/seeds/parse`
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipstorm::engine::{ClientConfig, Endpoint, SansIo, Scenario, ServerConfig, UserSource};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, dgram)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let (c, s) = (addr("10.0.0.1:5060"), addr("10.0.0.2:5060"));
    let mut ep = match sel % 4 {
        3 => Endpoint::server(
            ServerConfig {
                local: s,
                ..ServerConfig::default()
            },
            t0,
        ),
        k => {
            let sc = [Scenario::Call, Scenario::Register, Scenario::Options][k as usize];
            let mut cc = ClientConfig::new(sc, s, c);
            cc.users = Arc::new(UserSource::pattern("u{0..9}", "pw-{user}").expect("pattern"));
            let mut ep = Endpoint::client(cc, t0);
            for _ in 0..3 {
                ep.start_attempt(t0, t0, Duration::from_millis(10));
            }
            ep
        }
    };
    let from = if sel % 4 == 3 { c } else { s };
    let mut buf = Vec::new();
    while ep.poll_transmit(&mut buf).is_some() {}
    for dt in [1u64, 2] {
        let now = t0 + Duration::from_millis(dt);
        ep.handle(now, sipstorm::flow::Flow::udp(from), dgram);
        while ep.poll_transmit(&mut buf).is_some() {}
        while ep.poll_event().is_some() {}
    }
    if sel % 4 != 3 {
        ep.shutdown(t0 + Duration::from_millis(3));
    }
    let mut now = t0;
    for _ in 0..400 {
        let Some(t) = ep.poll_timeout() else { break };
        now = t.max(now);
        ep.handle_timeout(now);
        while ep.poll_transmit(&mut buf).is_some() {}
        while ep.poll_event().is_some() {}
    }
    if sel % 4 != 3 {
        assert_eq!(ep.in_flight(), 0, "attempts left after every timer");
        let st = ep.state_sizes();
        assert_eq!((st.sessions, st.transactions), (0, 0), "{st:?}");
    }
});
