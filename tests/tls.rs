//! TLS on the client port (issue 16, first part): certificates made in the test with rcgen,
//! async-nats with its TLS options against the real server, and raw sockets for the ways a
//! handshake goes wrong. Every wait is bounded.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use common::pki::Pki;
use common::{within, TestServer};
use futures::StreamExt;

fn tls_flags(pki: &Pki) -> Vec<String> {
    vec![
        "--tls".into(),
        "--tlscert".into(),
        pki.arg("server-cert.pem"),
        "--tlskey".into(),
        pki.arg("server-key.pem"),
    ]
}

fn start(flags: &[String]) -> TestServer {
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::start(&refs)
}

/// Starts a server from a config file with a `tls` block for the server certificate, `extra`
/// keys inside that block, and `rest` (other top-level keys) after it.
fn start_with_tls_block(pki: &Pki, extra: &str, rest: &str) -> TestServer {
    let conf = pki.path("tls-block.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  {extra}\n}}\n{rest}",
            pki.arg("server-cert.pem"),
            pki.arg("server-key.pem")
        ),
    )
    .unwrap();
    start(&["-c".into(), conf.to_str().unwrap().into()])
}

/// A TLS connection trusting `ca` (and presenting `client`'s certificate when given), bounded.
async fn tls_connect(
    pki: &Pki,
    server: &TestServer,
    ca: &str,
    client: Option<&str>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let mut options = ConnectOptions::new()
        .add_root_certificates(pki.path(ca))
        .require_tls(true);
    if let Some(name) = client {
        options = options.add_client_certificate(
            pki.path(&format!("{name}-cert.pem")),
            pki.path(&format!("{name}-key.pem")),
        );
    }
    tokio::time::timeout(Duration::from_secs(10), options.connect(server.url()))
        .await
        .expect("the connection attempt is bounded")
}

/// Waits (bounded) for `needle` to appear in the server's log.
fn wait_for_log(server: &TestServer, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn round_trip(client: &async_nats::Client) {
    let mut sub = client.subscribe("tls.check").await.expect("subscribe");
    client
        .publish("tls.check", "over TLS".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let msg = within("message", sub.next()).await.expect("message");
    assert_eq!(&msg.payload[..], b"over TLS");
}

#[tokio::test]
async fn clients_upgrade_after_info_and_jetstream_works_over_tls() {
    let pki = Pki::new();
    let server = start(&tls_flags(&pki));
    let info = server.raw().read_info();
    assert_eq!(info["tls_required"], true, "{info}");
    assert!(info.get("tls_verify").is_none(), "{info}");
    let client = tls_connect(&pki, &server, "ca.pem", None)
        .await
        .expect("TLS connect");
    round_trip(&client).await;
    let js = async_nats::jetstream::new(client);
    let stream = async_nats::jetstream::stream::Config {
        name: "SECURE".into(),
        subjects: vec!["secure.>".into()],
        ..Default::default()
    };
    within("create", js.create_stream(stream)).await.unwrap();
    let ack = within("publish", async {
        js.publish("secure.a", "x".into()).await?.await
    })
    .await
    .unwrap();
    assert_eq!(ack.sequence, 1);
    assert!(server.log_contains("TLS required for client connections"));
}

#[tokio::test]
async fn handshake_first_serves_clients_that_start_with_tls() {
    let pki = Pki::new();
    let server = start_with_tls_block(&pki, "handshake_first: true", "");
    let client = within(
        "connect",
        ConnectOptions::new()
            .add_root_certificates(pki.path("ca.pem"))
            .tls_first()
            .connect(server.url()),
    )
    .await
    .expect("TLS-first connect");
    round_trip(&client).await;
    // A client that waits for a plaintext INFO gets none.
    let mut raw = server.raw();
    let (got, _) = raw.read_for(Duration::from_millis(300));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn verify_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let mut flags = tls_flags(&pki);
    flags.extend([
        "--tlsverify".into(),
        "--tlscacert".into(),
        pki.arg("ca.pem"),
    ]);
    let server = start(&flags);
    let info = server.raw().read_info();
    assert_eq!(info["tls_verify"], true, "{info}");
    let without = tls_connect(&pki, &server, "ca.pem", None).await;
    let refused = match without {
        Err(_) => true,
        // The TLS 1.3 server refuses the missing certificate after the client's side of the
        // handshake is done, so the connection may open and die at its first use.
        Ok(client) => client.flush().await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    let client = tls_connect(&pki, &server, "ca.pem", Some("client"))
        .await
        .expect("connect with a client certificate");
    round_trip(&client).await;
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_does_not_connect() {
    let pki = Pki::new();
    let server = start(&tls_flags(&pki));
    let result = tls_connect(&pki, &server, "other-ca.pem", None).await;
    assert!(
        result.is_err(),
        "connected to a server whose CA it does not trust"
    );
}

/// A server presenting an expired certificate, one for another host, or a self-signed one is
/// refused by the client, and the server keeps serving.
#[tokio::test]
async fn clients_refuse_expired_wrong_host_and_self_signed_certificates() {
    let pki = Pki::new();
    for name in ["expired", "elsewhere", "selfsigned"] {
        let flags = vec![
            "--tls".to_string(),
            "--tlscert".into(),
            pki.arg(&format!("{name}-cert.pem")),
            "--tlskey".into(),
            pki.arg(&format!("{name}-key.pem")),
        ];
        let server = start(&flags);
        let result = tls_connect(&pki, &server, "ca.pem", None).await;
        assert!(
            result.is_err(),
            "{name}: the client accepted the certificate"
        );
        assert_eq!(server.raw().read_info()["tls_required"], true, "{name}");
    }
}

/// A TLS client on a plaintext port: its ClientHello is not NATS, so it is told so and cut.
#[test]
fn a_tls_handshake_on_a_plaintext_port_is_a_protocol_error() {
    let server = TestServer::start(&[]);
    let mut raw = server.raw();
    raw.read_info();
    // The first bytes of a TLS 1.2 ClientHello record.
    raw.send(&[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, b'\r', b'\n',
    ]);
    let (got, closed) = raw.read_for(Duration::from_secs(2));
    assert!(
        String::from_utf8_lossy(&got).contains("-ERR 'Unknown Protocol Operation'"),
        "{got:?}"
    );
    assert!(closed);
}

#[test]
fn plaintext_garbage_and_silence_are_dropped_and_logged() {
    let pki = Pki::new();
    let server = start_with_tls_block(&pki, "timeout: 0.5", "");
    // A plaintext client: reads INFO, then speaks NATS where a ClientHello should be.
    let mut raw = server.raw();
    raw.read_info();
    raw.send(b"CONNECT {}\r\nPING\r\n");
    let (got, closed) = raw.read_for(Duration::from_secs(3));
    assert!(closed, "still open after plaintext: {got:?}");
    assert!(!String::from_utf8_lossy(&got).contains("PONG"));
    // A client that never starts the handshake is dropped after the timeout.
    let started = Instant::now();
    let mut silent = server.raw();
    silent.read_info();
    let (_, closed) = silent.read_for(Duration::from_secs(5));
    assert!(closed, "a silent client was kept");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_contains("TLS handshake error") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log_contains("TLS handshake error"));
}

#[test]
fn unreadable_or_mismatched_key_files_stop_the_server_at_start() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "not a key").unwrap();
    let cases = [
        (
            pki.arg("server-cert.pem"),
            pki.arg("garbage.pem"),
            "cannot read private key file",
        ),
        (
            pki.arg("missing.pem"),
            pki.arg("server-key.pem"),
            "cannot read certificate file",
        ),
        (
            pki.arg("server-cert.pem"),
            pki.arg("client-key.pem"),
            "certificate and key do not fit",
        ),
    ];
    for (cert, key, expected) in cases {
        let store = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_jetlog"))
            .args(["server", "-a", "127.0.0.1", "-p", "-1", "--store_dir"])
            .arg(store.path())
            .args(["--tls", "--tlscert", &cert, "--tlskey", &key])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args([
            "server",
            "-p",
            "-1",
            "--tlscert",
            &pki.arg("server-cert.pem"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tlscert and --tlskey"));
}

/// SIGHUP (or `--signal reload`) rotates the certificates for new connections without
/// dropping the ones already made; a bad file at reload keeps the certificates in force.
#[tokio::test]
async fn sighup_reloads_certificates_without_dropping_connections() {
    let pki = Pki::new();
    let cert = pki.path("live-cert.pem");
    let key = pki.path("live-key.pem");
    std::fs::copy(pki.path("server-cert.pem"), &cert).unwrap();
    std::fs::copy(pki.path("server-key.pem"), &key).unwrap();
    let flags: Vec<String> = vec![
        "--tls".into(),
        "--tlscert".into(),
        cert.to_str().unwrap().into(),
        "--tlskey".into(),
        key.to_str().unwrap().into(),
    ];
    let server = start(&flags);
    let before = tls_connect(&pki, &server, "ca.pem", None)
        .await
        .expect("connect");
    std::fs::copy(pki.path("rotated-cert.pem"), &cert).unwrap();
    std::fs::copy(pki.path("rotated-key.pem"), &key).unwrap();
    let reload = |expect: &'static str| {
        let out = Command::new(env!("CARGO_BIN_EXE_jetlog"))
            .args(["server", "--signal", &format!("reload={}", server.pid())])
            .output()
            .expect("signal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !server.log_contains(expect) {
            assert!(Instant::now() < deadline, "no {expect:?} in the log");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    reload("Reloaded: TLS certificates");
    round_trip(&before).await;
    assert!(
        tls_connect(&pki, &server, "ca.pem", None).await.is_err(),
        "old CA still served"
    );
    let after = tls_connect(&pki, &server, "other-ca.pem", None)
        .await
        .expect("rotated");
    round_trip(&after).await;
    // A broken key at the next reload: refused, logged, the rotated certificate stays.
    std::fs::write(&key, "not a key").unwrap();
    reload("Failed to reload server configuration");
    let still = tls_connect(&pki, &server, "other-ca.pem", None)
        .await
        .expect("kept");
    round_trip(&still).await;
}

/// `https_port` serves the monitoring endpoints over TLS with the client port's certificates.
#[tokio::test]
async fn https_monitoring_uses_the_same_certificates() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let pki = Pki::new();
    let mut flags = tls_flags(&pki);
    flags.extend(["--https_port".into(), "-1".into()]);
    let server = start(&flags);
    let port: u16 = server
        .log
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| {
            line.split("Starting https monitor on ")
                .nth(1)
                .map(str::to_string)
        })
        .and_then(|addr| addr.rsplit(':').next().and_then(|p| p.trim().parse().ok()))
        .expect("https monitor port in the log");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = within("handshake", connector.connect(name, tcp))
        .await
        .unwrap();
    tls.write_all(b"GET /varz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    within("response", tls.read_to_end(&mut response))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"server_id\""), "{text}");
    // Plain HTTP on the HTTPS port is not served.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    plain
        .write_all(b"GET /varz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("server_id"));
}

#[test]
fn https_monitoring_needs_tls_and_excludes_http() {
    for (args, expected) in [
        (
            vec!["--https_port", "-1"],
            "TLS cert and key required for HTTPS",
        ),
        (
            vec!["-m", "8222", "-ms", "8443"],
            "can't specify both HTTP (8222) and HTTPs (8443) ports",
        ),
    ] {
        let store = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_jetlog"))
            .args(["server", "-a", "127.0.0.1", "-p", "-1", "--store_dir"])
            .arg(store.path())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// `allow_non_tls`: INFO offers TLS (`tls_available`), TLS clients upgrade and plaintext
/// clients are served as they are, on one port.
#[tokio::test]
async fn allow_non_tls_serves_both_kinds_of_client() {
    let pki = Pki::new();
    let server = start_with_tls_block(&pki, "", "allow_non_tls: true\n");
    let info = server.raw().read_info();
    assert_eq!(info["tls_available"], true, "{info}");
    assert!(info.get("tls_required").is_none(), "{info}");
    let plain = within("plain connect", async_nats::connect(server.url()))
        .await
        .expect("plaintext client");
    round_trip(&plain).await;
    let secure = tls_connect(&pki, &server, "ca.pem", None)
        .await
        .expect("TLS client");
    round_trip(&secure).await;
    // Without TLS to offer, the key is a mistake.
    let bad = pki.path("bad.conf");
    std::fs::write(&bad, "allow_non_tls: true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["server", "-t", "-c", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_non_tls needs TLS"));
}

/// `pinned_certs`: only clients whose certificate's public key is pinned get in, even among
/// certificates the CA signed.
#[tokio::test]
async fn pinned_certs_let_in_only_the_pinned_client_keys() {
    use rustls_pki_types::pem::PemObject;
    let pki = Pki::new();
    let der = rustls_pki_types::CertificateDer::from_pem_file(pki.path("client-cert.pem")).unwrap();
    let pin = jetlog::server::tls::spki_sha256_hex(&der).expect("a parsable certificate");
    let extra = format!(
        "ca_file: {:?}\n  verify: true\n  pinned_certs: [\"{}\"]",
        pki.arg("ca.pem"),
        pin.to_uppercase()
    );
    let server = start_with_tls_block(&pki, &extra, "");
    let pinned = tls_connect(&pki, &server, "ca.pem", Some("client"))
        .await
        .expect("the pinned client");
    round_trip(&pinned).await;
    let other = tls_connect(&pki, &server, "ca.pem", Some("elsewhere")).await;
    let refused = match other {
        Err(_) => true,
        Ok(client) => client.flush().await.is_err(),
    };
    assert!(refused, "a client whose key is not pinned got in");
    wait_for_log(&server, "certificate not pinned");
}

/// `verify_and_map`: the client certificate is the credential; its e-mail address (or DNS
/// name, URI, or subject as Go prints it) names the user, whose permissions apply.
#[tokio::test]
async fn verify_and_map_takes_the_user_from_the_certificate() {
    let pki = Pki::new();
    let extra = format!("ca_file: {:?}\n  verify_and_map: true", pki.arg("ca.pem"));
    let users = "authorization { users: [\n\
           { user: \"alice@example.com\", permissions: { publish: \"tls.>\", subscribe: \"tls.>\" } }\n\
           { user: \"O=Acme,CN=bob\" }\n\
         ] }\n";
    let server = start_with_tls_block(&pki, &extra, users);
    let info = server.raw().read_info();
    assert_eq!(info["tls_verify"], true, "{info}");
    let alice = tls_connect(&pki, &server, "ca.pem", Some("alice"))
        .await
        .expect("alice by e-mail");
    round_trip(&alice).await;
    let bob = tls_connect(&pki, &server, "ca.pem", Some("bob"))
        .await
        .expect("bob by subject");
    round_trip(&bob).await;
    // A certificate the CA signed but whose names no user has is refused.
    let nobody = tls_connect(&pki, &server, "ca.pem", Some("client")).await;
    assert!(nobody.is_err(), "a certificate naming no user got in");
    wait_for_log(&server, "authentication error");
}
