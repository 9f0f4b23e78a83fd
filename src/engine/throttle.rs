//! A capacity limit for the built-in server (`serve --max-rate N`), so that
//! `sipstorm search` can be tested against a target whose capacity is known.
//!
//! RFC 7501 §3 defines the Session Establishment Rate and the Registration
//! Rate as the highest attempt rate a DUT sustains with zero failures; a
//! server with a known capacity lets a test check that the RFC 7502 §4.8
//! search finds it. Beyond the capacity new attempts are answered
//! `503 Service Unavailable` (RFC 3261 §21.5.4: "temporarily unable to
//! process the request due to a temporary overloading"), which the client
//! counts as a failure at once, instead of being dropped (a dropped request
//! is retransmitted and would only fail after Timer B/F, 64·T1 later).
//!
//! Only requests that *start* an attempt consume capacity: an INVITE or
//! REGISTER without credentials, an out-of-dialog OPTIONS. The second,
//! authenticated REGISTER, ACK, BYE and CANCEL belong to an admitted
//! attempt and always pass, so one attempt is one token whatever the
//! scenario.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sip::{Builder, Message, Method};

/// A token bucket: `rate` tokens per second, at most `burst` stored.
///
/// Shared by every server worker (behind a mutex: taken only when a limit
/// is configured, and only for attempt-starting requests), so the limit is
/// the server's, not each worker's.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// `rate` attempts per second; the burst is 1/10 s worth (at least one),
    /// enough to absorb the pacing jitter of an open-loop generator running
    /// just under the limit without letting a faster one through.
    pub fn new(rate: f64) -> TokenBucket {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        let burst = (rate / 10.0).max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Take one token if there is one.
    pub fn admit(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The server's capacity limit, cloned into every worker.
#[derive(Debug, Clone)]
pub struct Throttle {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl Throttle {
    /// A limit of `max_rate` new attempts per second across all workers.
    pub fn new(max_rate: f64) -> Throttle {
        Throttle {
            bucket: Arc::new(Mutex::new(TokenBucket::new(max_rate))),
        }
    }

    /// Decide about one datagram. `None`: pass it on to the engine.
    /// `Some(())` with `out` filled: the request starts an attempt beyond
    /// the capacity; send `out` (a 503) instead of handling it.
    pub fn check(&self, now: Instant, data: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let msg = crate::sip::parse(data).ok()?;
        if !starts_attempt(&msg) {
            return None;
        }
        let admitted = match self.bucket.lock() {
            Ok(mut b) => b.admit(now),
            // A worker panicked while holding the lock: fail open.
            Err(_) => true,
        };
        if admitted {
            return None;
        }
        let mut b =
            Builder::response_to(out, &msg, 503, b"Service Unavailable", Some(b"throttled"));
        b.header(b"Retry-After", b"1");
        b.finish(None, b"");
        Some(())
    }
}

/// One server worker's view of the limit: the shared [`Throttle`] and the
/// 503s it has decided but not yet sent.
#[derive(Debug)]
pub struct Gate {
    throttle: Throttle,
    pending: Vec<(crate::flow::Flow, Vec<u8>)>,
}

impl Gate {
    pub fn new(throttle: Throttle) -> Gate {
        Gate {
            throttle,
            pending: Vec::new(),
        }
    }

    /// `true`: the datagram was refused (a 503 is queued for `from`) and
    /// must not reach the engine.
    pub fn intercept(&mut self, now: Instant, from: crate::flow::Flow, data: &[u8]) -> bool {
        let mut out = Vec::new();
        if self.throttle.check(now, data, &mut out).is_some() {
            self.pending.push((from, out));
            return true;
        }
        false
    }

    /// A queued 503, before anything the engine has to send.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<crate::flow::Flow> {
        let (to, out) = self.pending.pop()?;
        *buf = out;
        Some(to)
    }
}

/// A request that begins a new attempt (see the module comment).
fn starts_attempt(msg: &Message<'_>) -> bool {
    let Some(method) = msg.method() else {
        return false;
    };
    let in_dialog = msg.to().and_then(|t| t.tag).is_some();
    match method {
        Method::Register => msg.authorization().is_none(),
        Method::Invite => !in_dialog && msg.proxy_authorization().is_none(),
        Method::Options => !in_dialog,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_admits_the_rate_and_no_more() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(300.0);
        // Offered 600/s for 2 s: about 300/s pass (plus the initial burst).
        let admitted = (0..1200)
            .filter(|i| b.admit(t0 + Duration::from_micros(i * 1_666)))
            .count();
        assert!((600..=632).contains(&admitted), "{admitted}");
        // Offered 250/s: everything passes.
        let mut b = TokenBucket::new(300.0);
        assert!((0..500).all(|i| b.admit(t0 + Duration::from_micros(i * 4_000))));
    }

    #[test]
    fn only_attempt_starts_are_throttled() {
        let th = Throttle::new(1.0);
        let now = Instant::now();
        let reg = b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let bye = b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        assert!(th.check(now, reg, &mut out).is_none());
        assert!(th.check(now, reg, &mut out).is_some());
        assert!(out.starts_with(b"SIP/2.0 503 "));
        assert!(crate::sip::parse(&out).is_ok());
        assert!(th.check(now, bye, &mut out).is_none());
        assert!(th.check(now, b"garbage", &mut out).is_none());
    }
}
