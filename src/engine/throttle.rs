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
//! REGISTER without credentials, an out-of-dialog OPTIONS. ACK, BYE and
//! CANCEL belong to an admitted attempt and always pass, and so does the
//! request that answers a challenge, but only once that is proven: the
//! endpoint (`uas`) admits a request with credentials free of charge only
//! when they verify and are the first use of their nonce. Any other
//! request with credentials takes a token like one without: a header that
//! merely looks like credentials (or credentials the server does not
//! check, with `--auth off`), a refresh reusing a nonce, a replay. Before
//! issue 13 the mere presence of an `Authorization` header passed, so
//! adding any bypassed `--max-rate`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

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

    /// Take one attempt's token; false when the server is at capacity (the
    /// request gets 503).
    pub fn admit(&self, now: Instant) -> bool {
        match self.bucket.lock() {
            Ok(mut b) => b.admit(now),
            // A worker panicked while holding the lock: fail open.
            Err(_) => true,
        }
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
}
