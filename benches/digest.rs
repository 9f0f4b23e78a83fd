//! Digest authentication hot paths (issue 2): what a UAC pays per
//! challenged request and a registrar per REGISTER, with HA1 cached.
//!
//! `cargo bench --bench digest -- --warm-up-time 1 --measurement-time 3`
//!
//! Two groups measure the same operations: `digest/*` in wall-clock time
//! (criterion's default) and `digest_cpu/*` in this thread's CPU time, read
//! from `/proc/thread-self/schedstat`. The build machine is shared by many
//! processes on 2 cores, so wall-clock figures include time spent waiting for
//! a CPU; CPU time does not. schedstat advances in scheduler ticks (4 ms at
//! HZ=250), so that group uses 20 flat samples of ~150 ms each (±3 %).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use sipstorm::auth::{
    Algorithm, Ha1, NONCE_LEN, NonceMint, parse_authorization, parse_challenge, verify,
    write_authorization,
};

const CHALLENGE_MD5: &[u8] = br#"Digest realm="sipstorm", nonce="00000000000003e85c1f0a9b3d2e4f6a7b8c9d0e1f2a3b4c5d6e7f80", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=MD5, qop="auth,auth-int""#;
const CHALLENGE_SHA: &[u8] = br#"Digest realm="sipstorm", nonce="00000000000003e85c1f0a9b3d2e4f6a7b8c9d0e1f2a3b4c5d6e7f80", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=SHA-256, qop="auth,auth-int""#;
const URI: &[u8] = b"sip:127.0.0.1:5060";

fn answer(challenge: &[u8]) -> (Vec<u8>, Ha1) {
    let ch = parse_challenge(challenge).unwrap();
    let ha1 = Ha1::from_challenge(&ch, b"u000001", b"pw-u000001");
    let mut out = Vec::new();
    write_authorization(
        &mut out,
        &ch,
        b"u000001",
        &ha1,
        b"REGISTER",
        URI,
        b"",
        1,
        b"6b8b4567",
    )
    .unwrap();
    (out, ha1)
}

/// CPU time of the calling thread in ns (first field of schedstat); `None`
/// where the file does not exist (then the CPU group is skipped).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_ascii_whitespace().next()?.parse().ok()
}

/// `f` timed per iteration in thread CPU time.
fn cpu_bench<R>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut f: impl FnMut() -> R,
) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t0 = thread_cpu_ns().unwrap_or(0);
            for _ in 0..iters {
                black_box(f());
            }
            Duration::from_nanos(thread_cpu_ns().unwrap_or(0).saturating_sub(t0))
        })
    });
}

/// The same operations as [`bench`], in CPU time.
fn bench_cpu(c: &mut Criterion) {
    if thread_cpu_ns().is_none() {
        return;
    }
    let mut g = c.benchmark_group("digest_cpu");
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    cpu_bench(&mut g, "parse_challenge", || {
        parse_challenge(black_box(CHALLENGE_MD5)).unwrap()
    });
    cpu_bench(&mut g, "ha1_md5", || {
        Ha1::new(
            Algorithm::Md5,
            black_box(b"u000001"),
            b"sipstorm",
            b"pw-u000001",
        )
    });
    for (name, challenge) in [("md5", CHALLENGE_MD5), ("sha256", CHALLENGE_SHA)] {
        let ch = parse_challenge(challenge).unwrap();
        let ha1 = Ha1::from_challenge(&ch, b"u000001", b"pw-u000001");
        let mut out = Vec::with_capacity(512);
        cpu_bench(&mut g, &format!("response_{name}_auth_cached_ha1"), || {
            out.clear();
            write_authorization(
                &mut out,
                black_box(&ch),
                b"u000001",
                &ha1,
                b"REGISTER",
                URI,
                b"",
                1,
                b"6b8b4567",
            )
            .unwrap();
            out.len()
        });
        let (value, ha1) = answer(challenge);
        let creds = parse_authorization(&value).unwrap();
        cpu_bench(&mut g, &format!("parse_authorization_{name}"), || {
            parse_authorization(black_box(&value)).unwrap()
        });
        cpu_bench(&mut g, &format!("verify_{name}"), || {
            verify(black_box(&creds), &ha1, b"REGISTER", b"")
        });
    }
    let mut mint = NonceMint::new([42; 32]);
    let mut buf = [0u8; NONCE_LEN];
    cpu_bench(&mut g, "nonce_mint", || {
        mint.mint(black_box(1_000), &mut buf).len()
    });
    let nonce = mint.mint(1_000, &mut buf).to_vec();
    let mint = NonceMint::new([42; 32]);
    cpu_bench(&mut g, "nonce_check", || {
        mint.check(black_box(&nonce), 1_010, 30)
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");

    g.bench_function("parse_challenge", |b| {
        b.iter(|| parse_challenge(black_box(CHALLENGE_MD5)).unwrap())
    });

    g.bench_function("ha1_md5", |b| {
        b.iter(|| {
            Ha1::new(
                Algorithm::Md5,
                black_box(b"u000001"),
                b"sipstorm",
                b"pw-u000001",
            )
        })
    });

    for (name, challenge) in [("md5", CHALLENGE_MD5), ("sha256", CHALLENGE_SHA)] {
        let ch = parse_challenge(challenge).unwrap();
        let ha1 = Ha1::from_challenge(&ch, b"u000001", b"pw-u000001");
        let mut out = Vec::with_capacity(512);
        g.bench_function(format!("response_{name}_auth_cached_ha1"), |b| {
            b.iter(|| {
                out.clear();
                write_authorization(
                    &mut out,
                    black_box(&ch),
                    b"u000001",
                    &ha1,
                    b"REGISTER",
                    URI,
                    b"",
                    1,
                    b"6b8b4567",
                )
                .unwrap();
                out.len()
            })
        });

        let (value, ha1) = answer(challenge);
        let creds = parse_authorization(&value).unwrap();
        g.bench_function(format!("parse_authorization_{name}"), |b| {
            b.iter(|| parse_authorization(black_box(&value)).unwrap())
        });
        g.bench_function(format!("verify_{name}"), |b| {
            b.iter(|| assert!(verify(black_box(&creds), &ha1, b"REGISTER", b"")))
        });
    }

    let mut mint = NonceMint::new([42; 32]);
    let mut buf = [0u8; NONCE_LEN];
    g.bench_function("nonce_mint", |b| {
        b.iter(|| mint.mint(black_box(1_000), &mut buf).len())
    });
    let nonce = mint.mint(1_000, &mut buf).to_vec();
    let mint = NonceMint::new([42; 32]);
    g.bench_function("nonce_check", |b| {
        b.iter(|| mint.check(black_box(&nonce), 1_010, 30))
    });
    g.finish();
}

criterion_group!(benches, bench, bench_cpu);
criterion_main!(benches);
