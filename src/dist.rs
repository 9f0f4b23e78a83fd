//! Durations as users write them, random delays (call hold, ring delay) and
//! the one small PRNG every worker, endpoint and simulation draws from.
//!
//! Delay distributions follow SIPp's `<pause distribution=...>` set (fixed,
//! uniform, exponential, lognormal, normal), written as one string so a
//! flag and a profile key read the same: `5s`, `uniform(1s,5s)`, `exp(3s)`,
//! `lognormal(3s,0.5)`, `normal(3s,1s)`. No I/O, no protocol knowledge: the
//! engine (ring delays) and the driver (hold times) both use it.

use std::time::Duration;

/// Errors in user-supplied durations and delay distributions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistError {
    #[error("'{0}' is not a duration (use e.g. 500ms, 30s, 2m, 1h, 1.5s)")]
    BadDuration(String),
    #[error(
        "'{0}' is not a delay (use 5s, uniform(1s,5s), exp(3s), lognormal(3s,0.5) or normal(3s,1s))"
    )]
    BadHold(String),
    #[error("in '{0}': {1}")]
    BadHoldParam(String, &'static str),
}

/// Parse `500ms`, `30s`, `2m`, `1h`, `1.5s`, `250us`, or a bare number of
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DistError> {
    let t = s.trim();
    let bad = || DistError::BadDuration(s.to_string());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// SplitMix64: a tiny, fast, seedable generator for identifiers, delays and
/// ratios. Per worker, no locking; not for cryptography (nonces use their
/// own keyed construction in `auth`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (0 → never, ≥ 1 → always).
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A random delay: how long an established call is held before the BYE (or
/// a registration before it is removed), or how long a UAS rings before it
/// answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between the bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean (memoryless call durations, Erlang models).
    Exp(Duration),
    /// Log-normal with this median and shape `sigma` (of the underlying
    /// normal): `median * exp(sigma * N(0,1))`. Real call durations have this
    /// long right tail.
    LogNormal { median: Duration, sigma: f64 },
    /// Normal with this mean and standard deviation, negative draws
    /// clamped to zero (SIPp's `normal` pause).
    Normal { mean: Duration, sd: Duration },
}

/// Samples are capped here so a heavy tail cannot keep a run alive forever.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

impl Default for Delay {
    fn default() -> Self {
        Delay::Fixed(Duration::ZERO)
    }
}

impl Delay {
    /// Parse `5s`, `uniform(1s,5s)`, `exp(3s)`, `lognormal(3s,0.5)`,
    /// `normal(3s,1s)`.
    pub fn parse(s: &str) -> Result<Delay, DistError> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || DistError::BadHold(s.to_string());
        let Some(open) = t.find('(') else {
            return parse_duration(&t).map(Delay::Fixed).map_err(|_| bad());
        };
        let name = &t[..open];
        let args = t[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let parts: Vec<&str> = args.split(',').collect();
        let dur = |i: usize| {
            parts
                .get(i)
                .ok_or_else(bad)
                .and_then(|p| parse_duration(p).map_err(|_| bad()))
        };
        match (name, parts.len()) {
            ("uniform", 2) => {
                let (a, b) = (dur(0)?, dur(1)?);
                if a > b {
                    return Err(DistError::BadHoldParam(
                        s.to_string(),
                        "lower bound above upper bound",
                    ));
                }
                Ok(Delay::Uniform(a, b))
            }
            ("exp", 1) => Ok(Delay::Exp(dur(0)?)),
            ("lognormal", 2) => {
                let median = dur(0)?;
                let sigma: f64 = parts[1].parse().map_err(|_| bad())?;
                if !(sigma.is_finite() && (0.0..=10.0).contains(&sigma)) {
                    return Err(DistError::BadHoldParam(
                        s.to_string(),
                        "sigma must be between 0 and 10",
                    ));
                }
                Ok(Delay::LogNormal { median, sigma })
            }
            ("normal", 2) => Ok(Delay::Normal {
                mean: dur(0)?,
                sd: dur(1)?,
            }),
            _ => Err(bad()),
        }
    }

    /// Whether every draw is zero (lets callers skip work, e.g. the 100
    /// Trying an immediately answering UAS does not need).
    pub fn is_zero(&self) -> bool {
        *self == Delay::Fixed(Duration::ZERO)
    }

    /// Draw one delay. A fixed delay consumes no randomness, so adding a
    /// distribution elsewhere does not shift other draws.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let secs = match *self {
            Delay::Fixed(d) => return d.min(MAX_DELAY),
            Delay::Uniform(a, b) => a.as_secs_f64() + (b - a).as_secs_f64() * rng.next_f64(),
            Delay::Exp(m) => -m.as_secs_f64() * (1.0 - rng.next_f64()).ln(),
            Delay::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * rng.normal()).exp()
            }
            Delay::Normal { mean, sd } => mean.as_secs_f64() + sd.as_secs_f64() * rng.normal(),
        };
        if secs.is_finite() && secs > 0.0 {
            Duration::from_secs_f64(secs.min(MAX_DELAY.as_secs_f64()))
        } else {
            Duration::ZERO
        }
    }

    /// The distribution's mean (for sizing and summaries; for `normal` the
    /// mean before clamping).
    pub fn mean(&self) -> Duration {
        match *self {
            Delay::Fixed(d) => d,
            Delay::Uniform(a, b) => (a + b) / 2,
            Delay::Exp(m) => m,
            Delay::LogNormal { median, sigma } => median.mul_f64((sigma * sigma / 2.0).exp()),
            Delay::Normal { mean, .. } => mean,
        }
    }
}

impl std::fmt::Display for Delay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delay::Fixed(d) => write!(f, "{d:?}"),
            Delay::Uniform(a, b) => write!(f, "uniform({a:?},{b:?})"),
            Delay::Exp(m) => write!(f, "exp({m:?})"),
            Delay::LogNormal { median, sigma } => write!(f, "lognormal({median:?},{sigma})"),
            Delay::Normal { mean, sd } => write!(f, "normal({mean:?},{sd:?})"),
        }
    }
}

/// A pause length distribution of a SIPp scenario (`<pause
/// distribution="...">`), in milliseconds as SIPp reads them (doubles).
/// Draws below 1 ms are a zero pause (SIPp turns negative samples into 0)
/// and draws are capped at [`MAX_DELAY`], like `--hold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PauseDist {
    /// Always `value` ms.
    Fixed(f64),
    /// Uniform in [min, max].
    Uniform { min: f64, max: f64 },
    /// Normal; negative draws become 0.
    Normal { mean: f64, stdev: f64 },
    /// e^N(mu, sigma): `mu` and `sigma` are those of the logarithm of the
    /// pause in ms (SIPp's docs: `mean="12.28" stdev="1"` has a median of
    /// about 60 s).
    LogNormal { mu: f64, sigma: f64 },
    /// Exponential with this mean.
    Exponential { mean: f64 },
    /// Weibull with scale `lambda` (ms) and shape `k`: λ·(−ln U)^(1/k).
    Weibull { lambda: f64, k: f64 },
    /// Pareto with shape `k` and scale (minimum) `x_m`: x_m·U^(−1/k).
    Pareto { k: f64, x_m: f64 },
    /// Gamma with shape `k` and scale `theta` (Marsaglia–Tsang).
    Gamma { k: f64, theta: f64 },
    /// Negative binomial: failures before the `n`-th success, success
    /// probability `p` (a gamma–Poisson mixture), used as ms.
    NegBin { p: f64, n: f64 },
}

impl PauseDist {
    /// Draw one pause.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let ms = match *self {
            PauseDist::Fixed(v) => v,
            PauseDist::Uniform { min, max } => min + (max - min) * rng.next_f64(),
            PauseDist::Normal { mean, stdev } => mean + stdev * rng.normal(),
            PauseDist::LogNormal { mu, sigma } => (mu + sigma * rng.normal()).exp(),
            PauseDist::Exponential { mean } => -mean * (1.0 - rng.next_f64()).ln(),
            PauseDist::Weibull { lambda, k } => {
                lambda * (-(1.0 - rng.next_f64()).ln()).powf(1.0 / k)
            }
            PauseDist::Pareto { k, x_m } => x_m * (1.0 - rng.next_f64()).powf(-1.0 / k),
            PauseDist::Gamma { k, theta } => gamma(rng, k) * theta,
            PauseDist::NegBin { p, n } => {
                // Poisson(λ) with λ ~ Gamma(n, (1-p)/p).
                let lambda = gamma(rng, n) * (1.0 - p) / p;
                poisson(rng, lambda)
            }
        };
        if ms.is_finite() && ms >= 1.0 {
            Duration::from_secs_f64((ms / 1e3).min(MAX_DELAY.as_secs_f64()))
        } else {
            Duration::ZERO
        }
    }

    /// The distribution's mean in ms (for checks and summaries).
    pub fn mean_ms(&self) -> f64 {
        match *self {
            PauseDist::Fixed(v) => v,
            PauseDist::Uniform { min, max } => (min + max) / 2.0,
            PauseDist::Normal { mean, .. } | PauseDist::Exponential { mean } => mean,
            PauseDist::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            PauseDist::Weibull { lambda, k } => lambda * gamma_fn(1.0 + 1.0 / k),
            PauseDist::Pareto { k, x_m } => {
                if k > 1.0 {
                    k * x_m / (k - 1.0)
                } else {
                    f64::INFINITY
                }
            }
            PauseDist::Gamma { k, theta } => k * theta,
            PauseDist::NegBin { p, n } => n * (1.0 - p) / p,
        }
    }
}

/// Gamma(k, 1) by Marsaglia and Tsang (2000), with the U^(1/k) boost for
/// k < 1.
fn gamma(rng: &mut Rng, k: f64) -> f64 {
    if k.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !k.is_finite() {
        return 0.0;
    }
    if k < 1.0 {
        let u = 1.0 - rng.next_f64();
        return gamma(rng, k + 1.0) * u.powf(1.0 / k);
    }
    let d = k - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    for _ in 0..1000 {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
    d
}

/// Poisson(λ): Knuth's product for small λ, a rounded normal beyond.
fn poisson(rng: &mut Rng, lambda: f64) -> f64 {
    if lambda.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !lambda.is_finite() {
        return 0.0;
    }
    if lambda > 60.0 {
        return (lambda + lambda.sqrt() * rng.normal()).round().max(0.0);
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0.0, 1.0);
    loop {
        p *= rng.next_f64();
        if p <= l {
            return k;
        }
        k += 1.0;
    }
}

/// The gamma function Γ(x) for x > 0 (Lanczos, g = 7), for the Weibull mean.
fn gamma_fn(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma_fn(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("7", Duration::from_secs(7)),
            (" 3s ", Duration::from_secs(3)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        for s in ["", "s", "abc", "5 parsecs", "-1s", "1..2s", "1e400s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn delays_parse() {
        let s = Duration::from_secs;
        let ok = [
            ("5s", Delay::Fixed(s(5))),
            ("uniform(1s,5s)", Delay::Uniform(s(1), s(5))),
            ("uniform(1s, 5s)", Delay::Uniform(s(1), s(5))),
            ("exp(3s)", Delay::Exp(s(3))),
            (
                "lognormal(3s,0.5)",
                Delay::LogNormal {
                    median: s(3),
                    sigma: 0.5,
                },
            ),
            (
                "normal(3s,500ms)",
                Delay::Normal {
                    mean: s(3),
                    sd: Duration::from_millis(500),
                },
            ),
        ];
        for (t, h) in ok {
            assert_eq!(Delay::parse(t), Ok(h), "{t}");
            // Display is parseable again (the report echoes it).
            assert_eq!(Delay::parse(&h.to_string()), Ok(h), "{h}");
        }
        for t in [
            "",
            "uniform(5s,1s)",
            "uniform(1s)",
            "exp()",
            "exp(3s",
            "lognormal(3s,-1)",
            "gauss(1s)",
            "lognormal(3s,x)",
            "normal(3s)",
        ] {
            assert!(Delay::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn samples_have_the_right_mean() {
        let mut rng = Rng::new(42);
        for h in [
            Delay::Uniform(Duration::from_secs(1), Duration::from_secs(5)),
            Delay::Exp(Duration::from_secs(3)),
            Delay::LogNormal {
                median: Duration::from_secs(2),
                sigma: 0.5,
            },
            Delay::Normal {
                mean: Duration::from_secs(4),
                sd: Duration::from_millis(500),
            },
        ] {
            let n = 20_000;
            let sum: f64 = (0..n).map(|_| h.sample(&mut rng).as_secs_f64()).sum();
            let mean = sum / n as f64;
            let want = h.mean().as_secs_f64();
            assert!((mean - want).abs() / want < 0.05, "{h}: {mean} vs {want}");
        }
    }

    #[test]
    fn samples_stay_in_bounds() {
        let mut rng = Rng::new(7);
        let normal = Delay::Normal {
            mean: Duration::from_millis(100),
            sd: Duration::from_secs(1),
        };
        let exp = Delay::Exp(Duration::from_secs(20 * 3600));
        for _ in 0..10_000 {
            // Clamped below at zero, capped above at MAX_DELAY.
            assert!(normal.sample(&mut rng) <= MAX_DELAY);
            assert!(exp.sample(&mut rng) <= MAX_DELAY);
        }
        let u = Delay::Uniform(Duration::from_secs(1), Duration::from_secs(2));
        for _ in 0..10_000 {
            let d = u.sample(&mut rng);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
        assert!(Delay::default().is_zero());
        assert_eq!(Delay::default().sample(&mut rng), Duration::ZERO);
    }

    #[test]
    fn pause_distributions_have_their_means() {
        let mut rng = Rng::new(11);
        let cases = [
            PauseDist::Fixed(250.0),
            PauseDist::Uniform {
                min: 100.0,
                max: 300.0,
            },
            PauseDist::Normal {
                mean: 500.0,
                stdev: 50.0,
            },
            PauseDist::LogNormal {
                mu: 6.0,
                sigma: 0.5,
            },
            PauseDist::Exponential { mean: 400.0 },
            PauseDist::Weibull {
                lambda: 300.0,
                k: 1.5,
            },
            PauseDist::Pareto { k: 3.0, x_m: 100.0 },
            PauseDist::Gamma {
                k: 2.0,
                theta: 150.0,
            },
            PauseDist::Gamma {
                k: 0.5,
                theta: 400.0,
            },
            PauseDist::NegBin { p: 0.1, n: 20.0 },
        ];
        for d in cases {
            let n = 40_000;
            let sum: f64 = (0..n).map(|_| d.sample(&mut rng).as_secs_f64() * 1e3).sum();
            let mean = sum / n as f64;
            let want = d.mean_ms();
            assert!((mean - want).abs() / want < 0.05, "{d:?}: {mean} vs {want}");
        }
        // Negative normal draws and draws below a millisecond are no pause.
        let neg = PauseDist::Normal {
            mean: -100.0,
            stdev: 1.0,
        };
        assert_eq!(neg.sample(&mut rng), Duration::ZERO);
        assert_eq!(PauseDist::Fixed(0.4).sample(&mut rng), Duration::ZERO);
        assert!((gamma_fn(5.0) - 24.0).abs() < 1e-9);
    }
}
