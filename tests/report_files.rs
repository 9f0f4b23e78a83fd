//! The report directory written from a synthetic run: schema validation of
//! the real `report.json`, a readable interval log, the HTML with its plots,
//! re-rendering, and no password anywhere.

#[path = "report_support.rs"]
mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use sipstorm::report::{self, INTERVALS_HLOG, REPORT_HTML, REPORT_JSON, SUMMARY_TXT};
use support::*;

#[test]
fn written_report_matches_schema_and_spec_fields() {
    let dir = tmpdir("report-files-schema");
    let (info, agg) = synthetic_run(t0(), 5, 2, 50, 10, 1);
    let r = report::write_report(&dir, &info, &agg).unwrap();
    for f in [REPORT_JSON, INTERVALS_HLOG, SUMMARY_TXT, REPORT_HTML] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_valid(&dir.join(REPORT_JSON));

    // The SPEC.md field paths scripts rely on, read from the file itself.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(REPORT_JSON)).unwrap()).unwrap();
    let paths = [
        "/schema",
        "/tool/version",
        "/tool/git_sha",
        "/config",
        "/started_at",
        "/duration_s",
        "/rate/offered_per_s",
        "/rate/achieved_per_s",
        "/totals/register/attempted",
        "/totals/register/succeeded",
        "/totals/register/failed",
        "/totals/register/timed_out",
        "/totals/call/attempted",
        "/totals/call/established",
        "/totals/call/completed",
        "/totals/call/failed",
        "/totals/call/timed_out",
        "/totals/call/cancelled",
        "/rfc6076/rrd_ms/p999",
        "/rfc6076/srd_ms/count",
        "/rfc6076/srd_ms/min",
        "/rfc6076/srd_ms/p50",
        "/rfc6076/srd_ms/p90",
        "/rfc6076/srd_ms/p99",
        "/rfc6076/srd_ms/max",
        "/rfc6076/sdd_ms/mean",
        "/rfc6076/ira_pct",
        "/rfc6076/ser_pct",
        "/rfc6076/seer_pct",
        "/rfc6076/isa_pct",
        "/rfc6076/scr_pct",
        "/latency_ms/srd/p99",
        "/latency_ms/srd_co/p99",
        "/latency_ms/options_rtt_co/count",
        "/responses/200",
        "/messages/sent",
        "/messages/received",
        "/messages/retransmitted",
        "/messages/unparseable",
        "/messages/unexpected",
        "/process/cpu_user_s",
        "/process/cpu_sys_s",
        "/process/max_rss_kib",
    ];
    for p in paths {
        assert!(v.pointer(p).is_some(), "missing {p}");
    }
    assert_eq!(v["schema"], "sipstorm.report/v1");
    assert_eq!(v["started_at"], "2026-11-22T00:00:00.000Z");

    // Known values: 5 s x 2 workers x 50 calls, 1 busy per worker-second.
    assert_eq!(r.totals.call.attempted, 500);
    assert_eq!(r.totals.call.established, 490);
    assert_eq!(r.totals.call.failed, 10);
    assert_eq!(r.rate.achieved_per_s, 100.0);
    assert_eq!(r.responses["486"], 10);
    assert_eq!(r.responses["200"], 490 + 500);
    assert_eq!(r.rfc6076.ser_pct, Some(98.0));
    assert_eq!(r.rfc6076.seer_pct, Some(100.0)); // 486 counts as effective
    assert_eq!(r.rfc6076.isa_pct, Some(0.0));
    assert_eq!(r.rfc6076.scr_pct, Some(98.0));
    assert_eq!(r.rfc6076.ira_pct, None); // no registrations
    assert_eq!(r.latency_ms["srd"].count, 500);
    assert_eq!(r.latency_ms["srd_co"].count, 500);
    assert_eq!(r.latency_ms["rrd"].count, 0);
    assert!(r.latency_ms["srd_co"].p50 > r.latency_ms["srd"].p50);
    assert_eq!(r.timeseries.t_s, vec![0, 1, 2, 3, 4]);
    assert_eq!(r.timeseries.attempted, vec![100; 5]);
    assert_eq!(r.timeseries.responses["486"], vec![2; 5]);
    assert!(r.warnings.iter().any(|w| w.contains("10 attempts failed")));
    assert_eq!(r.failed_attempts(), 10);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_password_in_any_output() {
    let dir = tmpdir("report-files-password");
    let (info, agg) = synthetic_run(t0(), 2, 1, 5, 10, 0);
    report::write_report(&dir, &info, &agg).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(PLANTED_PASSWORD),
            "{} leaks the password",
            path.display()
        );
    }
    let json = std::fs::read_to_string(dir.join(REPORT_JSON)).unwrap();
    assert!(json.contains("u{000..099}"), "non-secret config kept");
    assert!(json.contains("<redacted>"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn interval_log_is_readable_with_one_histogram_per_metric_per_second() {
    let dir = tmpdir("report-files-hlog");
    let (info, agg) = synthetic_run(t0(), 4, 2, 20, 5, 0);
    report::write_report(&dir, &info, &agg).unwrap();
    let bytes = std::fs::read(dir.join(INTERVALS_HLOG)).unwrap();
    let mut per_tag: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut saw_start = false;
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.expect("parseable interval log") {
            LogEntry::StartTime(t) => {
                saw_start = true;
                assert_eq!(t.as_secs(), 1_795_305_600);
            }
            LogEntry::BaseTime(_) => {}
            LogEntry::Interval(iv) => {
                let tag = iv
                    .tag()
                    .expect("every interval is tagged")
                    .as_str()
                    .to_string();
                assert_eq!(iv.duration().as_secs(), 1);
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(iv.encoded_histogram())
                    .unwrap();
                // The V2 compressed cookie, as Java's HistogramLogReader expects.
                assert_eq!(&raw[..4], &[0x1c, 0x84, 0x93, 0x14]);
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut &raw[..]).unwrap();
                let e = per_tag.entry(tag).or_default();
                e.0 += 1;
                e.1 += h.len();
            }
        }
    }
    assert!(saw_start);
    for tag in [
        "srd",
        "srd_co",
        "answer",
        "answer_co",
        "sdd",
        "invite_rtt",
        "session_duration",
    ] {
        assert_eq!(per_tag[tag], (4, 160), "{tag}");
    }
    assert!(!per_tag.contains_key("rrd"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn html_is_self_contained_with_plots_and_render_dir_reproduces_it() {
    let dir = tmpdir("report-files-html");
    let (info, agg) = synthetic_run(t0(), 6, 2, 30, 8, 1);
    report::write_report(&dir, &info, &agg).unwrap();
    let html = std::fs::read_to_string(dir.join(REPORT_HTML)).unwrap();
    let summary = std::fs::read_to_string(dir.join(SUMMARY_TXT)).unwrap();
    // One spectrum per metric with samples (srd, answer, sdd,
    // session_duration, invite_rtt) + throughput + p99 + responses.
    assert_eq!(html.matches("<svg").count(), 8, "svg count");
    assert_eq!(html.matches("</svg>").count(), 8);
    for caption in [
        "SRD percentile spectrum",
        "Throughput over time",
        "p99 latency over time",
        "Final responses over time",
    ] {
        assert!(html.contains(caption), "{caption}");
    }
    assert!(
        html.contains("<polyline") || html.contains("<path"),
        "lines drawn"
    );
    assert!(html.contains("99.9%"), "percentile axis labels");
    // Self-contained: no scripts, no external resources.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http"));
    assert!(!html.contains("href=\"http"));
    assert!(summary.contains("SRD (co)"));
    assert!(summary.contains("SER 96.67%"), "{summary}");

    std::fs::remove_file(dir.join(REPORT_HTML)).unwrap();
    std::fs::remove_file(dir.join(SUMMARY_TXT)).unwrap();
    report::render_dir(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(REPORT_HTML)).unwrap(),
        html
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(SUMMARY_TXT)).unwrap(),
        summary
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn render_dir_errors_are_usage_errors() {
    let dir = tmpdir("report-files-missing");
    let e = report::render_dir(&dir).unwrap_err();
    assert!(e.is_usage(), "{e}");
    std::fs::write(dir.join(REPORT_JSON), "{\"schema\": \"other/v9\"}").unwrap();
    let e = report::render_dir(&dir).unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("other/v9"), "{e}");
    std::fs::write(dir.join(REPORT_JSON), "not json").unwrap();
    assert!(report::render_dir(&dir).unwrap_err().is_usage());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn saturated_generator_is_warned_about() {
    let dir = tmpdir("report-files-saturated");
    let (mut info, agg) = synthetic_run(t0(), 3, 1, 10, 8, 0);
    info.offered_rate = Some(100.0); // achieved 10/s
    let r = report::write_report(&dir, &info, &agg).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("generator itself was saturated")),
        "{:?}",
        r.warnings
    );
    let summary = std::fs::read_to_string(dir.join(SUMMARY_TXT)).unwrap();
    assert!(summary.contains("saturated"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Leaves a realistic report in `target/tmp/sample-report/` for a human (or
/// headless Chromium) to look at; asserts only that it was written.
#[test]
fn sample_report_for_eyes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample-report");
    std::fs::create_dir_all(&dir).unwrap();
    let (info, agg) = synthetic_run(t0(), 20, 2, 200, 3, 2);
    report::write_report(&dir, &info, &agg).unwrap();
    assert!(dir.join(REPORT_HTML).is_file());
}

/// The schema has teeth: dropping a SPEC field or changing `schema` fails.
#[test]
fn schema_rejects_reports_missing_spec_fields() {
    let dir = tmpdir("report-files-schema-neg");
    let (info, agg) = synthetic_run(t0(), 2, 1, 5, 10, 0);
    report::write_report(&dir, &info, &agg).unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(REPORT_JSON)).unwrap()).unwrap();
    type Mutation = (&'static str, fn(&mut serde_json::Value));
    let mutations: [Mutation; 4] = [
        ("no call.cancelled", |v| {
            v["totals"]["call"]
                .as_object_mut()
                .unwrap()
                .remove("cancelled");
        }),
        ("other schema", |v| {
            v["schema"] = "sipstorm.report/v2".into()
        }),
        ("no srd_co", |v| {
            v["latency_ms"].as_object_mut().unwrap().remove("srd_co");
        }),
        ("negative count", |v| v["messages"]["sent"] = (-1).into()),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        let path = dir.join("bad.json");
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        let result = std::panic::catch_unwind(|| assert_valid(&path));
        assert!(result.is_err(), "schema accepted a report with {what}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file of a report directory, by name, with its bytes.
fn snapshot(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// After a failed rewrite: every file of `before` is byte-identical, no
/// temporary file is left, and nothing else appeared.
fn assert_intact(dir: &std::path::Path, before: &BTreeMap<String, Vec<u8>>, what: &str) {
    let after = snapshot(dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{what}: files changed"
    );
    for (name, bytes) in before {
        assert!(&after[name] == bytes, "{what}: {name} was rewritten");
    }
}

/// A directory where a report file should be fails the whole write before
/// any file is replaced: the previous report stays as it was (before the
/// fix, the files written ahead of the obstacle were already replaced by
/// the new run's), the directory is left alone, and the error names it.
#[test]
fn a_directory_in_the_way_leaves_the_previous_report_intact() {
    for name in [INTERVALS_HLOG, SUMMARY_TXT, REPORT_HTML, REPORT_JSON] {
        let dir = tmpdir("report-files-dir-in-the-way");
        let (info, agg) = synthetic_run(t0(), 2, 1, 5, 10, 0);
        report::write_report(&dir, &info, &agg).unwrap();
        std::fs::remove_file(dir.join(name)).unwrap();
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("keep"), "mine").unwrap();
        let before = snapshot(&dir);

        let (info, agg) = synthetic_run(t0(), 3, 2, 7, 12, 1);
        let e = report::write_report(&dir, &info, &agg).unwrap_err();
        assert!(e.to_string().contains(name), "{name}: {e}");
        assert!(!e.is_usage(), "{name}: a runtime error, exit 3");
        assert_intact(&dir, &before, name);
        assert_eq!(
            std::fs::read_to_string(dir.join(name).join("keep")).unwrap(),
            "mine"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// `sipstorm ARGS` with files limited to 4 KiB (RLIMIT_FSIZE, SIGXFSZ
/// ignored): every write past 4 KiB fails with EFBIG, as on a full disk.
fn sipstorm_on_a_full_disk(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_sipstorm"))
        .args(args)
        .output()
        .unwrap()
}

/// A disk that fills up while a report is rewritten leaves the previous
/// report intact, for each command that writes one: `report DIR` (before
/// the fix: report.html truncated to 4 KiB, summary.txt replaced), `merge`
/// and `run`. The error names the file and the exit code is 3.
#[test]
fn a_full_disk_leaves_the_previous_report_intact() {
    let root = tmpdir("report-files-full-disk");
    let (a, b, merged, ran) = (
        root.join("a"),
        root.join("b"),
        root.join("merged"),
        root.join("ran"),
    );
    for (dir, start) in [(&a, t0()), (&b, t0() + std::time::Duration::from_secs(1))] {
        let (info, agg) = synthetic_run(start, 6, 2, 30, 8, 1);
        report::write_report(dir, &info, &agg).unwrap();
    }
    report::merge(&merged, &[a.clone(), b.clone()]).unwrap();
    let run_args = |out: &std::path::Path| -> Vec<std::ffi::OsString> {
        [
            "run",
            "--scenario",
            "options",
            "--rate",
            "200",
            "--count",
            "40",
        ]
        .iter()
        .map(Into::into)
        .chain(
            ["--workers", "1", "--quiet", "--out"]
                .iter()
                .map(Into::into),
        )
        .chain(std::iter::once(out.as_os_str().to_owned()))
        .collect()
    };
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_sipstorm"))
        .args(run_args(&ran))
        .output()
        .unwrap();
    assert!(first.status.success(), "{first:?}");
    // Old summaries that a rewrite would visibly replace.
    for dir in [&a, &merged, &ran] {
        std::fs::write(dir.join(SUMMARY_TXT), "the previous summary\n").unwrap();
    }

    let cases: [(&str, &std::path::Path, Vec<std::ffi::OsString>); 3] = [
        ("report DIR", &a, vec!["report".into(), a.clone().into()]),
        (
            "merge OUT IN...",
            &merged,
            vec![
                "merge".into(),
                merged.clone().into(),
                a.clone().into(),
                b.clone().into(),
            ],
        ),
        ("run --out DIR", &ran, run_args(&ran)),
    ];
    for (what, dir, args) in cases {
        let before = snapshot(dir);
        assert!(
            before.values().any(|f| f.len() > 4096),
            "{what}: a file over the limit"
        );
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        let o = sipstorm_on_a_full_disk(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{what}: {stderr}");
        assert!(
            [INTERVALS_HLOG, SUMMARY_TXT, REPORT_HTML, REPORT_JSON]
                .iter()
                .any(|f| stderr.contains(&dir.join(f).display().to_string())),
            "{what}: the error names the file: {stderr}"
        );
        assert_intact(dir, &before, what);
    }
    std::fs::remove_dir_all(&root).ok();
}

/// A run config with a password pattern (the real `RunConfig::to_json`,
/// and the raw flag values as a careless caller might pass them) reaches no
/// report file and no error message of the report layer: `write_report`,
/// a failed `write_report`, `render_dir`, `merge` and `compare` of a
/// report whose config was never scrubbed, and loading a broken one.
#[test]
fn a_password_pattern_reaches_no_report_file_and_no_error() {
    const SECRET: &str = "pw-S3cr3t-{user}";
    let values = sipstorm::config::RunValues {
        scenario: Some("register".into()),
        user_pattern: Some("u{000..009}".into()),
        password_pattern: Some(SECRET.into()),
        ..Default::default()
    };
    let cfg = sipstorm::config::RunConfig::build(values.clone()).unwrap();
    let mut config = cfg.to_json();
    config["flags"] = serde_json::to_value(&values).unwrap();
    assert!(config.to_string().contains(SECRET), "the test plants it");
    let root = tmpdir("report-files-password-pattern");
    let (dir, other, merged) = (root.join("run"), root.join("other"), root.join("merged"));
    let (mut info, agg) = synthetic_run(t0(), 2, 1, 5, 10, 0);
    info.config = config.clone();
    report::write_report(&dir, &info, &agg).unwrap();
    report::render_dir(&dir).unwrap();

    // A report written by something that did not scrub its config.
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(REPORT_JSON)).unwrap()).unwrap();
    raw["config"] = config.clone();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(REPORT_JSON), raw.to_string()).unwrap();
    report::merge(&merged, &[dir.clone(), other.clone()]).unwrap();
    let cmp = report::compare(&dir, &other, &["rrd.p99<+10%".to_string()]).unwrap();
    assert!(!cmp.table.contains(SECRET));

    let mut errors: Vec<String> = Vec::new();
    // Loading a report that carries the secret and is broken elsewhere.
    let mut broken = raw.clone();
    broken["duration_s"] = serde_json::json!("not a number");
    std::fs::write(other.join(REPORT_JSON), broken.to_string()).unwrap();
    errors.push(report::load_report(&other).unwrap_err().to_string());
    errors.push(
        report::merge(&merged, std::slice::from_ref(&other))
            .unwrap_err()
            .to_string(),
    );
    errors.push(report::compare(&dir, &other, &[]).unwrap_err().to_string());
    // A failed write of a run with that config.
    std::fs::remove_file(dir.join(REPORT_HTML)).unwrap();
    std::fs::create_dir(dir.join(REPORT_HTML)).unwrap();
    errors.push(
        report::write_report(&dir, &info, &agg)
            .unwrap_err()
            .to_string(),
    );
    errors.push(report::render_dir(&dir).unwrap_err().to_string());
    for e in &errors {
        assert!(
            !e.contains(SECRET),
            "an error echoes the password pattern: {e}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("duration_s") || e.contains("not a number"))
    );

    for d in [&dir, &merged] {
        for (name, bytes) in snapshot(d) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(SECRET), "{}/{name} leaks it", d.display());
            assert!(
                !text.contains("S3cr3t"),
                "{}/{name} leaks part of it",
                d.display()
            );
        }
    }
    std::fs::remove_dir_all(&root).ok();
}
