//! k6-style stages in a profile: ramp up, plateau, ramp down.

mod e2e_common;
use e2e_common::*;

use std::time::Duration;

use sipstorm::schedule::Stages;

#[test]
fn stage_arithmetic() {
    let s = |v: &[(u64, f64)]| {
        Stages::new(
            &v.iter()
                .map(|&(d, r)| (Duration::from_secs(d), r))
                .collect::<Vec<_>>(),
        )
    };
    // Ramp 0→100 over 10 s (500), plateau 10 s (1000), ramp down (500).
    let st = s(&[(10, 100.0), (10, 100.0), (10, 0.0)]).unwrap();
    assert!((st.total() - 2000.0).abs() < 1e-9);
    assert_eq!(st.duration(), Duration::from_secs(30));
    let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
    assert!(near(st.time_of(0.0), 0.0));
    assert!(near(st.time_of(125.0), 5.0)); // 100/10·t²/2 = 125 at t = 5
    assert!(near(st.time_of(500.0), 10.0));
    assert!(near(st.time_of(1000.0), 15.0));
    assert!(near(st.time_of(1500.0), 20.0));
    assert!(near(st.time_of(1875.0), 25.0));
    assert_eq!(st.time_of(2000.5), None);
    // Intended times never go backwards.
    let mut last = 0.0;
    for i in 0..2000 {
        let t = st.time_of(i as f64).unwrap();
        assert!(t >= last);
        last = t;
    }
    // A segment's share keeps the shape at a fraction of the rate.
    let half = st.scaled(0.5);
    assert!((half.total() - 1000.0).abs() < 1e-9);
    for bad in [vec![(10, -1.0)], vec![(0, 5.0)], vec![(10, 0.0)], vec![]] {
        assert!(s(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_staged_profile_runs_its_shape() {
    let dir = tmpdir("stages");
    let p = dir.join("staged.toml");
    std::fs::write(
        &p,
        "scenario = \"options\"\nstages = [\n  {duration = \"1s\", rate = 60.0},\n  {duration = \"1s\", rate = 60.0},\n  {duration = \"1s\", rate = 0.0},\n]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = bin()
        .args(["run", "--quiet", "--workers", "1", "--profile"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let r = report(&out);
    // 30 + 60 + 30 attempts over 3 s.
    let n = r["totals"]["options"]["attempted"].as_u64().unwrap();
    assert!((118..=121).contains(&n), "{n}");
    assert!((r["rate"]["offered_per_s"].as_f64().unwrap() - 40.0).abs() < 1e-6);
    // Bad stages name the profile and key.
    std::fs::write(&p, "stages = [{duration = \"1s\", rate = -5.0}]\n").unwrap();
    let o = bin()
        .args(["run", "--quiet", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("staged.toml") && e.contains("stages"), "{e}");
    std::fs::write(&p, "stages = [{duration = \"1s\", rat = 5.0}]\n").unwrap();
    let o = bin()
        .args(["run", "--quiet", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rat"));
}
