//! Stamps the binary with the commit it was built from (`tool.git_sha` in
//! reports), so `compare` can say which builds it compared. An explicit
//! `SIPSTORM_GIT_SHA` wins; outside a git checkout it stays unknown.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SIPSTORM_GIT_SHA");
    if std::env::var_os("SIPSTORM_GIT_SHA").is_some() {
        return;
    }
    let Some(sha) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=SIPSTORM_GIT_SHA={sha}");
    // Rebuild when HEAD moves: HEAD itself (branch switch) and the ref it
    // points at (a commit), wherever this checkout keeps them.
    for file in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &r])
        && Path::new(&p).exists()
    {
        println!("cargo:rerun-if-changed={p}");
    }
}
