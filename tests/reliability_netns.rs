//! Real packet loss on loopback: `scripts/netns-loss.sh` makes a private
//! network namespace whose `lo` drops a share of UDP datagrams at random
//! (nftables; this kernel has no netem), runs `sipstorm serve` and
//! `sipstorm run` in it, and deletes it. Needs root, `ip` and `nft` (the
//! README's test command installs them); without root it says so and
//! checks nothing.

mod e2e_common;
use e2e_common::*;
use std::path::Path;

fn can_make_namespaces() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipped: network namespaces need root");
    }
    root
}

fn lossy_run(loss: u32, tag: &str, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = tmpdir(tag);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/netns-loss.sh");
    let o = std::process::Command::new(script)
        .env("SIPSTORM_BIN", env!("CARGO_BIN_EXE_sipstorm"))
        .arg(loss.to_string())
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    let r = report(&out);
    (o, r)
}

#[test]
fn ten_percent_loss_is_recovered_by_retransmission() {
    if !can_make_namespaces() {
        return;
    }
    let common = [
        "--count",
        "200",
        "--rate",
        "100",
        "--t1",
        "100ms",
        "--workers",
        "1",
    ];
    for scenario in ["call", "register"] {
        let mut args = vec!["--scenario", scenario];
        args.extend(common);
        let (o, r) = lossy_run(10, scenario, &args);
        assert!(o.status.success(), "{scenario}: {}", show(&o));
        let t = &r["totals"][scenario];
        let done = if scenario == "call" {
            "completed"
        } else {
            "succeeded"
        };
        assert_eq!(t[done], 200, "{scenario}: {t}");
        assert!(
            r["messages"]["retransmitted"].as_u64().unwrap() > 0,
            "{}",
            r["messages"]
        );
    }
}

#[test]
fn heavy_loss_counts_every_attempt_and_fails_only_by_timeout() {
    if !can_make_namespaces() {
        return;
    }
    let (o, r) = lossy_run(
        35,
        "heavy",
        &[
            "--scenario",
            "register",
            "--count",
            "200",
            "--rate",
            "100",
            "--t1",
            "50ms",
            "--workers",
            "1",
        ],
    );
    let t = &r["totals"]["register"];
    let (attempted, succeeded, failed, timed_out) = (
        t["attempted"].as_u64().unwrap(),
        t["succeeded"].as_u64().unwrap(),
        t["failed"].as_u64().unwrap(),
        t["timed_out"].as_u64().unwrap(),
    );
    assert_eq!(attempted, 200);
    assert_eq!(succeeded + failed, attempted, "{t}");
    // A lost 200 never turns a right password into a 401: whatever failed,
    // failed by running out of retransmissions.
    assert_eq!(failed, timed_out, "{t} {}", r["responses"]);
    assert_eq!(
        o.status.code(),
        Some(if failed == 0 { 0 } else { 1 }),
        "{}",
        show(&o)
    );
}
