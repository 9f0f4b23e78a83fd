//! Every shipped profile parses, validates and runs briefly (against the
//! embedded target, or a local Kamailio when one is installed); invalid
//! profiles fail with exit code 2 and a message naming file, key and
//! expectation; users files in SIPp's CSV forms load and split by segment.

mod e2e_common;
use e2e_common::*;

use std::path::{Path, PathBuf};

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_profile_parses_and_is_documented() {
    let all = shipped();
    assert!(all.len() >= 6, "{all:?}");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap_or_default();
    for p in all {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with('#'),
            "{} has no header comment",
            p.display()
        );
        let (_, v) = sipstorm::profile::load(&p).unwrap_or_else(|e| panic!("{e}"));
        sipstorm::config::RunConfig::build(v).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(readme.contains(name), "README does not mention {name}");
    }
}

fn run_briefly(profile: &Path, target: Option<&str>) {
    let out = tmpdir("profile");
    let scenario_failed = if std::fs::read_to_string(profile)
        .unwrap()
        .contains("scenario = \"register\"")
    {
        "register.failed==0"
    } else {
        "call.failed==0"
    };
    let mut c = bin();
    c.args(["run", "--profile"]).arg(profile);
    if let Some(t) = target {
        c.args(["--target", t]);
    }
    // Short and small; latency thresholds are for real runs, not for a
    // debug build on a shared machine.
    let o = c
        .args(["--duration", "1s", "--rate", "20", "--hold", "100ms"])
        .args(["--drain", "5s", "--workers", "1", "--quiet"])
        .args(["--threshold", scenario_failed])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}: {}", profile.display(), show(&o));
    let r = report(&out);
    assert!(r["rate"]["achieved_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn embedded_profiles_run() {
    for p in shipped() {
        let text = std::fs::read_to_string(&p).unwrap();
        if text.lines().any(|l| l.starts_with("target")) {
            continue;
        }
        run_briefly(&p, None);
    }
}

#[test]
fn kamailio_profiles_run_when_kamailio_is_installed() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kamailio/start.sh");
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
    let run = tmpdir("kamailio");
    let port = 20000 + (std::process::id() % 20000);
    let started = std::process::Command::new(&script)
        .arg(&run)
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", show(&started));
    let stop = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kamailio/stop.sh");
    let target = format!("127.0.0.1:{port}");
    let result = std::panic::catch_unwind(|| {
        for p in shipped() {
            if p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("kamailio")
            {
                run_briefly(&p, Some(&target));
            }
        }
    });
    let _ = std::process::Command::new(stop).arg(&run).output();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn invalid_profiles_name_file_key_and_expectation() {
    let dir = tmpdir("bad-profiles");
    let cases = [
        (
            "unknown.toml",
            "rate = 10.0\nratee = 5\n",
            &["unknown.toml", "ratee", "expected one of"][..],
        ),
        (
            "type.toml",
            "rate = \"fast\"\n",
            &["type.toml", "key `rate`", "expected f64"],
        ),
        (
            "value.toml",
            "rate = -3.0\n",
            &["value.toml", "key `rate`", "positive"],
        ),
        (
            "hold.toml",
            "hold = \"uniform(5s,1s)\"\n",
            &["hold.toml", "key `hold`"],
        ),
        (
            "ratio.toml",
            "cancel-ratio = 2.0\n",
            &["ratio.toml", "key `cancel-ratio`", "between 0 and 1"],
        ),
        (
            "scenario.toml",
            "scenario = \"dance\"\n",
            &["scenario.toml", "key `scenario`", "expected register"],
        ),
        ("syntax.toml", "rate = \n", &["syntax.toml", "line 1"]),
        (
            "dur.toml",
            "duration = \"soon\"\n",
            &["dur.toml", "key `duration`"],
        ),
    ];
    for (name, text, expect) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let o = bin()
            .args(["run", "--quiet", "--profile"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for e in expect {
            assert!(err.contains(e), "{name}: {e:?} not in {err}");
        }
    }
    // A flag overrides the bad profile value, so the flag is what counts.
    let p = dir.join("value.toml");
    let o = bin()
        .args(["run", "--quiet", "--rate", "-1", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--rate"),
        "{}",
        show(&o)
    );
    let o = bin()
        .args(["run", "--profile", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such file"));
}

#[test]
fn users_csv_forms_and_segments() {
    use sipstorm::segment::Segment;
    use sipstorm::users::Users;
    let text = "SEQUENTIAL\n# comment\nu1;plain1\nu2;[authentication username=auth2 password=secret2]\nu3;p3\nu4;p4\nu5;p5\n";
    let u = Users::parse(text, "users.csv").unwrap();
    assert_eq!(u.users.len(), 5);
    assert_eq!(u.users[0].password.expose(), "plain1");
    assert_eq!(u.users[1].auth_name, "auth2");
    assert_eq!(u.users[1].password.expose(), "secret2");
    // Segments take disjoint blocks that cover every user.
    let mut seen = Vec::new();
    for i in 0..3 {
        let s: Segment = format!("{i}/3").parse().unwrap();
        seen.extend(s.user_range(u.users.len()));
    }
    assert_eq!(seen, (0..5).collect::<Vec<_>>());
    for bad in [
        "",
        "BOGUS\nu1;p\n",
        "SEQUENTIAL\nu1;[authentication password=x\n",
    ] {
        assert!(Users::parse(bad, "bad.csv").is_err(), "{bad:?}");
    }
}
