//! `--segment I/N`: N processes split one test and `merge` adds them up
//! exactly. Several real processes on this machine against one `serve`
//! (and, when installed, one local Kamailio whose location table proves the
//! users were disjoint), plus the arithmetic as properties.

mod e2e_common;
use e2e_common::*;

use std::path::{Path, PathBuf};
use std::process::Child;

use proptest::prelude::*;
use sipstorm::segment::{Segment, share_count, share_range};

const N: u32 = 3;
const USERS: u64 = 90;

/// Start N `run --segment i/N` processes at once; their report dirs.
fn run_segments(target: &str, tag: &str) -> Vec<PathBuf> {
    let mut kids: Vec<(Child, PathBuf)> = Vec::new();
    for i in 0..N {
        let out = tmpdir(tag);
        let child = bin()
            .args(["run", "--target", target, "--scenario", "register"])
            .args(["--segment", &format!("{i}/{N}")])
            .args(["--count", &USERS.to_string(), "--rate", "60"])
            .args(["--user-pattern", "u{0000..0089}"])
            .args(["--workers", "1", "--drain", "5s", "--quiet"])
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        kids.push((child, out));
    }
    kids.into_iter()
        .map(|(mut c, out)| {
            let st = c.wait().unwrap();
            assert!(st.success(), "segment exited {st:?}");
            out
        })
        .collect()
}

fn merge_and_check(dirs: &[PathBuf]) {
    let merged = tmpdir("merged");
    let o = bin().arg("merge").arg(&merged).args(dirs).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let m = report(&merged);
    let parts: Vec<serde_json::Value> = dirs.iter().map(|d| report(d)).collect();
    let sum = |f: &dyn Fn(&serde_json::Value) -> u64| parts.iter().map(f).sum::<u64>();
    let attempted = |r: &serde_json::Value| r["totals"]["register"]["attempted"].as_u64().unwrap();
    let succeeded = |r: &serde_json::Value| r["totals"]["register"]["succeeded"].as_u64().unwrap();
    // Shares of the count: 30 each, summing to the whole.
    for p in &parts {
        assert_eq!(attempted(p), USERS / u64::from(N));
    }
    assert_eq!(attempted(&m), USERS);
    assert_eq!(sum(&attempted), USERS);
    assert_eq!(succeeded(&m), sum(&succeeded));
    assert_eq!(succeeded(&m), USERS);
    assert_eq!(m["segments"], N);
    // Rate shares sum to the rate asked of the whole test.
    let offered: f64 = parts
        .iter()
        .map(|p| p["rate"]["offered_per_s"].as_f64().unwrap())
        .sum();
    assert!((offered - 60.0).abs() < 1e-6, "{offered}");
    // Histograms merged losslessly: RRD sample counts add up.
    let rrd = |r: &serde_json::Value| r["rfc6076"]["rrd_ms"]["count"].as_u64().unwrap();
    assert_eq!(rrd(&m), sum(&rrd));
}

#[test]
fn three_processes_split_one_test_against_serve() {
    let server = Server::start("auto", 1, &[]);
    let dirs = run_segments(&server.addr, "seg");
    server.stop();
    merge_and_check(&dirs);
}

#[test]
fn segments_register_disjoint_users_at_kamailio() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has = std::process::Command::new("sh")
        .args([
            "-c",
            "PATH=$PATH:/usr/sbin command -v kamailio && command -v kamcmd",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("skipped: kamailio not installed");
        return;
    }
    let run = tmpdir("seg-kam");
    let port = 20000 + ((std::process::id() + 7) % 20000);
    let started = std::process::Command::new(root.join("scripts/kamailio/start.sh"))
        .arg(&run)
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", show(&started));
    let result = std::panic::catch_unwind(|| {
        let dirs = run_segments(&format!("127.0.0.1:{port}"), "seg-kam-out");
        merge_and_check(&dirs);
        // Every one of the 90 users holds a binding and no other AoR is
        // there: each segment registered its own users, none twice.
        let aors = run.join("aors.txt");
        let list: String = (0..USERS).map(|i| format!("u{i:04}\n")).collect();
        std::fs::write(&aors, list).unwrap();
        let ctl = format!("unixs:{}/kamailio_ctl", run.display());
        let o = std::process::Command::new("python3")
            .arg(root.join("scripts/kamailio/check-bindings.py"))
            .arg(&ctl)
            .arg(&aors)
            .arg("--exact")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
    });
    let _ = std::process::Command::new(root.join("scripts/kamailio/stop.sh"))
        .arg(&run)
        .output();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

proptest! {
    /// Count shares sum to the whole; user blocks are disjoint, in order
    /// and cover every user; rate shares sum to the rate.
    #[test]
    fn segment_arithmetic(total in 0u64..1_000_000, len in 0usize..100_000, parts in 1u32..64, rate in 0.1f64..1e6) {
        let mut count = 0;
        let mut next = 0;
        let mut rates = 0.0;
        for i in 0..parts {
            let s = Segment { index: i, count: parts };
            count += s.share_count(total);
            prop_assert_eq!(s.share_count(total), share_count(total, i as usize, parts as usize));
            let r = s.user_range(len);
            prop_assert_eq!(r.clone(), share_range(len, i as usize, parts as usize));
            prop_assert_eq!(r.start, next);
            next = r.end;
            rates += s.share_rate(rate);
        }
        prop_assert_eq!(count, total);
        prop_assert_eq!(next, len);
        prop_assert!((rates - rate).abs() <= rate * 1e-9);
    }
}

#[test]
fn segment_syntax() {
    for (s, ok) in [
        ("0/1", true),
        ("2/3", true),
        ("3/3", false),
        ("1/0", false),
        ("x", false),
        ("1-3", false),
    ] {
        assert_eq!(s.parse::<Segment>().is_ok(), ok, "{s}");
    }
}
