//! `run` against `serve` with the settings that reach real servers (issue
//! 14), over real loopback sockets, IPv4 and IPv6: a served domain, a users
//! file whose digest usernames differ from the AOR users (passwords with
//! `;` and spaces), extra headers, an offer template, a Route, a callee
//! pattern and the first local port; requests for other domains get 404.

mod e2e_common;
use e2e_common::*;

use std::path::Path;

const USERS: &str = "SEQUENTIAL\n\
    1000;[authentication username=auth-1000 password=\"s3 cr;t 1\"];tok-1000\n\
    1001;[authentication username=auth-1001 password=s3;cr;t-2];tok-1001\n\
    1002;[authentication username=auth-1002 password=\"p \\\"q\\\"\"];tok-1002\n\
    1003;plain-password;tok-1003\n";

const OFFER: &str = "Content-Type: application/sdp\n\n\
    v=0\no=- 1 1 IN IP{media_ip_type} {media_ip}\ns={user}\n\
    c=IN IP{media_ip_type} {media_ip}\nt=0 0\nm=audio {media_port} RTP/AVP 0\n";

fn run(server: &Server, dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = tmpdir("reach-run");
    let users = dir.join("users.csv");
    let o = bin()
        .args(["run", "--target", &server.addr, "--quiet", "--workers", "2"])
        .args(["--rate", "200", "--count", "8", "--hold", "100ms"])
        .arg("--users")
        .arg(&users)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.code().is_some(), "{}", show(&o));
    (o.status.code(), report(&out))
}

/// A port P such that P and P + 1 (the two workers' `--local-port`) are
/// free on `ip` right now.
fn free_port_pair(ip: &str) -> u16 {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    for _ in 0..100 {
        let a = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && std::net::UdpSocket::bind((ip, p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free UDP ports on {ip}");
}

fn files() -> std::path::PathBuf {
    let dir = tmpdir("reach-files");
    std::fs::write(dir.join("users.csv"), USERS).unwrap();
    std::fs::write(dir.join("offer.sdp"), OFFER).unwrap();
    dir
}

#[test]
fn serve_domain_and_users_file_over_ipv4_and_ipv6() {
    let dir = files();
    let users = dir.join("users.csv");
    let sdp = dir.join("offer.sdp");
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        let server = Server::start_on(
            "auto",
            1,
            &[listen],
            &[
                "--domain",
                "example.test",
                "--domain",
                "other.example",
                "--users",
                users.to_str().unwrap(),
            ],
        );
        let route = format!("sip:{};lr", server.addr);
        let port = free_port_pair(if listen.starts_with('[') {
            "::1"
        } else {
            "127.0.0.1"
        })
        .to_string();
        let common = [
            "--domain",
            "example.test",
            "--route",
            &route,
            "--header",
            "X-Tok: {field:2} {user}@{domain}",
            "--from-display",
            "Load \"1\"",
        ];
        for scenario in ["register", "call", "options"] {
            let mut args: Vec<&str> = common.to_vec();
            args.extend(["--scenario", scenario]);
            if scenario == "call" {
                args.extend(["--callee", "{1000..1003}", "--sdp", sdp.to_str().unwrap()]);
                args.extend(["--local-port", &port]);
            }
            let (code, r) = run(&server, &dir, &args);
            assert_eq!(code, Some(0), "{listen} {scenario}: {r}");
            let t = &r["totals"];
            let ok = match scenario {
                "register" => &t["register"]["succeeded"],
                "call" => &t["call"]["completed"],
                _ => &t["options"]["succeeded"],
            };
            assert_eq!(ok, 8, "{listen} {scenario}: {t}");
            if scenario == "register" {
                // Every one was challenged and answered with auth-USER.
                assert_eq!(r["responses"]["401"], 8, "{listen}");
            }
            assert_eq!(r["config"]["reach"]["domain"], "example.test");
            assert_eq!(r["config"]["reach"]["header_names"][0], "X-Tok");
        }
        // Another domain is not served: 404, exit code 1.
        for scenario in ["register", "call"] {
            let (code, r) = run(
                &server,
                &dir,
                &["--domain", "elsewhere.test", "--scenario", scenario],
            );
            assert_eq!(code, Some(1), "{listen} {scenario}");
            assert_eq!(r["responses"]["404"], 8, "{listen} {scenario}: {r}");
        }
        server.stop();
    }
}

/// Without `--target`, the embedded server takes the run's domain and
/// users file.
#[test]
fn embedded_server_serves_the_runs_domain_and_users() {
    let dir = files();
    let out = tmpdir("reach-embedded");
    let o = bin()
        .args([
            "run",
            "--scenario",
            "register",
            "--count",
            "8",
            "--rate",
            "200",
        ])
        .args(["--domain", "example.test", "--quiet", "--workers", "1"])
        .arg("--users")
        .arg(dir.join("users.csv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(report(&out)["totals"]["register"]["succeeded"], 8);
}
