//! Measurements, not tests: ignored by default, they print numbers and
//! assert nothing about speed. Times are CPU time of the process
//! (getrusage user+sys), so other load on a shared machine inflates them
//! less than wall-clock time would. Run with
//! `cargo test --release --test report_measure -- --ignored --nocapture`.

#[path = "report_support.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use sipstorm::report;
use sipstorm::stats::{Aggregate, Counter, Method, Metric, WorkerStats};
use support::*;

/// CPU seconds (user + sys) used by this process so far.
fn cpu() -> f64 {
    let u = sipstorm::run::process_usage();
    u.cpu_user_s + u.cpu_sys_s
}

/// A CPU-time stopwatch.
struct Instant(f64);
impl Instant {
    fn now() -> Self {
        Instant(cpu())
    }
    fn elapsed(&self) -> Duration {
        Duration::from_secs_f64((cpu() - self.0).max(0.0))
    }
}

/// Cost of the hot path: `record` (two histogram increments), `count` and
/// `response`.
#[test]
#[ignore]
fn measure_hot_path() {
    let mut w = WorkerStats::new();
    let n = 20_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        let d = Duration::from_micros(500 + (i * 7919) % 50_000);
        w.record(black_box(Metric::Srd), d, d + Duration::from_micros(3));
    }
    let record_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        w.count(black_box(Counter::MsgSent), black_box(i & 1));
    }
    let count_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        w.response(black_box(Method::Invite), black_box(200 + (i % 3) as u16));
    }
    let response_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    let s = w.take_interval();
    let take_us = t.elapsed().as_micros();
    black_box(s);
    println!(
        "record {record_ns:.2} ns/call (service+corrected)  count {count_ns:.2} ns  response {response_ns:.2} ns  take_interval {take_us} us"
    );
}

/// A one-hour, 2-worker call run at 2 x 500 calls/s: aggregation cost per
/// snapshot, then the time and size of writing the report directory.
#[test]
#[ignore]
fn measure_hour_long_report() {
    let secs = 3600u64;
    let mut agg = Aggregate::new(t0());
    let mut workers = [WorkerStats::new(), WorkerStats::new()];
    let mut add_time = Duration::ZERO;
    let mut take_time = Duration::ZERO;
    for sec in 1..=secs {
        for (i, w) in workers.iter_mut().enumerate() {
            call_second(w, 500, 5 + sec % 7, (sec % 2) * (i as u64));
            let t = Instant::now();
            let snap = w.take_interval();
            take_time += t.elapsed();
            let t = Instant::now();
            agg.add(i, snap, Duration::from_millis(sec * 1000 + i as u64));
            add_time += t.elapsed();
        }
    }
    let (mut info, _) = synthetic_run(t0(), 1, 1, 1, 1, 0);
    info.duration = Duration::from_secs(secs);
    info.offered_rate = Some(1000.0);
    let dir = tmpdir("measure-hour");
    let t = Instant::now();
    report::write_report(&dir, &info, &agg).unwrap();
    let write = t.elapsed();
    let t = Instant::now();
    report::render_dir(&dir).unwrap();
    let render = t.elapsed();
    let t = Instant::now();
    let merged = report::merge(&dir.join("merged"), &[dir.clone(), dir.clone()]).unwrap();
    let merge = t.elapsed();
    assert_eq!(merged.totals.call.attempted, 2 * 2 * 500 * secs);
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    let usage = sipstorm::run::process_usage();
    println!(
        "3600 s x 2 workers: take_interval {:.0} us/snapshot, Aggregate::add {:.0} us/snapshot; write_report {:.2} s, render_dir {:.2} s, merge of 2 {:.2} s",
        take_time.as_micros() as f64 / (2 * secs) as f64,
        add_time.as_micros() as f64 / (2 * secs) as f64,
        write.as_secs_f64(),
        render.as_secs_f64(),
        merge.as_secs_f64()
    );
    println!(
        "files: report.json {} KiB, intervals.hlog {} KiB, report.html {} KiB; process max RSS {} MiB",
        size("report.json") / 1024,
        size("intervals.hlog") / 1024,
        size("report.html") / 1024,
        usage.max_rss_kib / 1024
    );
    std::fs::remove_dir_all(&dir).ok();
}
