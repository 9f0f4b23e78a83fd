//! Shared helpers for the report integration tests: synthetic runs built
//! from `WorkerStats` with known values (no sockets). Included by the other
//! `report_*` tests with `#[path]`; as its own test target it has no tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sipstorm::report::{ProcessUsage, RunInfo};
use sipstorm::stats::{Aggregate, Counter, Method, Metric, WorkerStats};

/// The password planted in the config; it must never reach any output.
pub const PLANTED_PASSWORD: &str = "hunter2-planted";

/// One worker's second of a synthetic call scenario.
pub fn call_second(w: &mut WorkerStats, calls: u64, srd_ms: u64, busy: u64) {
    w.count(Counter::CallAttempted, calls);
    w.count(Counter::CallEstablished, calls - busy);
    w.count(Counter::CallCompleted, calls - busy);
    w.count(Counter::CallFailed, busy);
    w.count(Counter::MsgSent, calls * 3);
    w.count(Counter::MsgReceived, calls * 4);
    for i in 0..calls {
        let srd = Duration::from_micros(srd_ms * 1000 + i * 37);
        w.record(Metric::Srd, srd, srd + Duration::from_micros(150));
        w.record(
            Metric::Answer,
            srd * 2,
            srd * 2 + Duration::from_micros(150),
        );
        w.record(Metric::InviteRtt, srd * 2, srd * 2);
        w.record(
            Metric::Sdd,
            Duration::from_micros(800 + i),
            Duration::from_micros(800 + i),
        );
        w.record(
            Metric::SessionDuration,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        w.response(Method::Invite, if i < busy { 486 } else { 200 });
        w.response(Method::Bye, 200);
    }
}

/// A synthetic call run: `secs` seconds, `workers` workers, `calls` calls
/// per worker per second, SRD around `srd_ms`, `busy` 486s per worker per
/// second. Returns the run info and the aggregate.
pub fn synthetic_run(
    start: SystemTime,
    secs: u64,
    workers: usize,
    calls: u64,
    srd_ms: u64,
    busy: u64,
) -> (RunInfo, Aggregate) {
    let mut agg = Aggregate::new(start);
    let mut stats: Vec<WorkerStats> = (0..workers).map(|_| WorkerStats::new()).collect();
    for sec in 1..=secs {
        for (i, w) in stats.iter_mut().enumerate() {
            call_second(w, calls, srd_ms + sec % 3, busy);
            let t = Duration::from_millis(sec * 1000 + i as u64 * 3);
            agg.add(i, w.take_interval(), t);
        }
    }
    let config = json!({
        "scenario": "call",
        "rate": (calls * workers as u64) as f64,
        "users": {"user_pattern": "u{000..099}", "password_pattern": PLANTED_PASSWORD},
        "auth": {"password": PLANTED_PASSWORD}
    });
    let mut info = RunInfo::new(
        "call",
        Some((calls * workers as u64) as f64),
        config,
        start,
        Duration::from_secs(secs),
    );
    info.git_sha = Some("0123456789abcdef".to_string());
    info.process = ProcessUsage {
        cpu_user_s: 1.5,
        cpu_sys_s: 0.5,
        cpu_total_s: 2.0,
        max_rss_kib: 20_000,
    };
    (info, agg)
}

/// A fixed start time, so outputs are reproducible.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_305_600)
}

/// A fresh empty directory under the target tmp dir.
pub fn tmpdir(name: &str) -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn validator() -> jsonschema::Validator {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

/// Validate a written `report.json` against `schema/report.schema.json`.
pub fn assert_valid(path: &Path) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = validator();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
}
