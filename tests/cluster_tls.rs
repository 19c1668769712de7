//! Routes over mutual TLS: servers whose certificates chain to the cluster's CA form the mesh
//! and carry traffic; a server with a certificate from another CA is refused by both sides'
//! handshakes and never registered.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{interest_reached, member_args, wait_for_mesh};
use common::pki::Pki;
use common::{within, TestServer};
use futures::StreamExt;

/// A member whose routes use TLS with the named certificate (`<name>-cert.pem`).
fn tls_member(
    pki: &Pki,
    name: &str,
    seed: Option<&str>,
    cert: &str,
) -> (TestServer, tempfile::TempDir) {
    let conf = format!(
        "cluster {{\n  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n    ca_file: \"{}\"\n    timeout: 2\n  }}\n}}\n",
        pki.arg(&format!("{cert}-cert.pem")),
        pki.arg(&format!("{cert}-key.pem")),
        pki.arg("ca.pem"),
    );
    let args = member_args(name, seed);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with_config(&conf, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_over_mutual_tls_carry_traffic_and_refuse_a_stranger() {
    let pki = Pki::new();
    let (seed, _c0) = tls_member(&pki, "S0", None, "server");
    let seed_url = seed.route_url();
    let (s1, _c1) = tls_member(&pki, "S1", Some(&seed_url), "server");
    let (s2, _c2) = tls_member(&pki, "S2", Some(&seed_url), "server");
    let servers = [seed, s1, s2];
    wait_for_mesh(&servers);

    // A plain route connection gets no INFO: the handshake comes first.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", servers[0].route_port())).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut first = [0u8; 4];
    let read = std::io::Read::read(&mut plain, &mut first);
    assert!(
        !matches!(read, Ok(4) if &first == b"INFO"),
        "INFO sent before the TLS handshake"
    );

    let a = within("connect", async_nats::connect(servers[1].url()))
        .await
        .unwrap();
    let c = within("connect", async_nats::connect(servers[2].url()))
        .await
        .unwrap();
    let mut sub = c.subscribe("secret.>").await.unwrap();
    interest_reached(&a, &c).await;
    for i in 0..50 {
        a.publish(format!("secret.{i}"), "x".into()).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..50 {
        let msg = within("a message over TLS", sub.next()).await.unwrap();
        assert_eq!(msg.subject.as_str(), format!("secret.{i}"));
    }

    // A server whose certificate another CA signed ("rotated") cannot join.
    let (stranger, _c3) = tls_member(&pki, "X", Some(&seed_url), "rotated");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !servers[0].log_contains("TLS route handshake error") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        servers[0].log_contains("TLS route handshake error"),
        "{:?}",
        servers[0].log
    );
    assert!(
        stranger.registered_routes().is_empty(),
        "{:?}",
        stranger.log
    );
    assert_eq!(servers[0].registered_routes().len(), 2);
}

#[test]
fn route_tls_without_a_ca_is_refused_at_start() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.conf");
    std::fs::write(
        &path,
        format!(
            "cluster {{\n  port: -1\n  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n  }}\n}}\n",
            pki.arg("server-cert.pem"),
            pki.arg("server-key.pem")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["server", "-t", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("s.conf:3:7: invalid value for tls: cluster.tls needs ca_file"),
        "{stderr}"
    );
}
