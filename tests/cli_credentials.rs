//! The client side of TLS and credentials in `jetlog`'s own commands (issue 16): `--tlsca`,
//! client certificates, `--tlsfirst`, credentials inside the server URL, nkey seed files and
//! natscli's environment variables, run as processes against a real server. A password never
//! appears in what the command prints.

mod cli_support;
mod common;

use cli_support::{jetlog, jetlog_at, jetlog_with_env};
use common::pki::Pki;
use common::TestServer;

fn tls_server(pki: &Pki, extra: &[&str]) -> TestServer {
    let cert = pki.arg("server-cert.pem");
    let key = pki.arg("server-key.pem");
    let mut flags = vec!["--tls", "--tlscert", &cert, "--tlskey", &key];
    flags.extend_from_slice(extra);
    TestServer::start(&flags)
}

#[test]
fn commands_reach_a_tls_server_with_the_ca_from_a_flag_or_the_environment() {
    let pki = Pki::new();
    let server = tls_server(&pki, &[]);
    let url = server.url();
    let ca = pki.arg("ca.pem");
    let add = [
        "stream",
        "add",
        "SECURE",
        "--subjects",
        "s.>",
        "--tlsca",
        &ca,
    ];
    jetlog_at(&url, &add).ok();
    jetlog_at(&url, &["pub", "s.one", "hello", "--js", "--tlsca", &ca]).ok();
    let run = jetlog_with_env(
        &["stream", "info", "SECURE", "--json", "-s", &url],
        &[("NATS_CA", ca.as_str())],
    );
    assert_eq!(run.json()["state"]["messages"], 1, "{run:#?}");
    // Without the CA the server's certificate is not trusted, and the command says so.
    let run = jetlog_at(&url, &["stream", "ls"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
}

#[test]
fn client_certificates_and_tls_first_are_offered_when_asked() {
    let pki = Pki::new();
    let ca = pki.arg("ca.pem");
    let server = tls_server(&pki, &["--tlsverify", "--tlscacert", &ca]);
    let url = server.url();
    let cert = pki.arg("client-cert.pem");
    let key = pki.arg("client-key.pem");
    jetlog_at(
        &url,
        &[
            "pub",
            "x",
            "1",
            "--tlsca",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
    )
    .ok();
    let run = jetlog_with_env(
        &["pub", "x", "2", "-s", &url],
        &[("NATS_CA", &ca), ("NATS_CERT", &cert), ("NATS_KEY", &key)],
    );
    run.ok();
    jetlog_at(&url, &["pub", "x", "3", "--tlscert", &cert]).fails_with("--tlscert and --tlskey");

    let conf = pki.path("first.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, handshake_first: true }}\n",
            pki.arg("server-cert.pem"),
            pki.arg("server-key.pem")
        ),
    )
    .unwrap();
    let first = TestServer::start(&["-c", conf.to_str().unwrap()]);
    jetlog_at(
        &first.url(),
        &["pub", "x", "4", "--tlsca", &ca, "--tlsfirst"],
    )
    .ok();
}

#[test]
fn credentials_in_the_url_and_in_variables_log_in_and_are_never_printed() {
    let server = TestServer::start(&["--user", "alice", "--pass", "s3cret"]);
    let with_creds = format!("nats://alice:s3cret@127.0.0.1:{}", server.port);
    jetlog_at(&with_creds, &["pub", "x", "hello"]).ok();
    let run = jetlog_with_env(
        &["pub", "x", "hi", "-s", &server.url()],
        &[("NATS_USER", "alice"), ("NATS_PASSWORD", "s3cret")],
    );
    run.ok();
    let wrong = format!("nats://alice:wr0ngpass@127.0.0.1:{}", server.port);
    let run = jetlog_at(&wrong, &["pub", "x", "hello"]);
    run.fails_with("authorization violation");
    assert!(
        run.stderr.contains("nats://alice:xxxxx@127.0.0.1"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("wr0ngpass"), "{run:#?}");

    let token = TestServer::start(&["--auth", "t0ken"]);
    let url = format!("nats://t0ken@127.0.0.1:{}", token.port);
    jetlog_at(&url, &["pub", "x", "hello"]).ok();
    let bad = format!("nats://n0pe@127.0.0.1:{}", token.port);
    let run = jetlog_at(&bad, &["pub", "x", "hello"]);
    assert_eq!(run.code, Some(1));
    assert!(!run.stderr.contains("n0pe"), "{run:#?}");
}

#[test]
fn an_nkey_seed_file_signs_in_and_a_missing_credentials_file_is_named() {
    let key = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users: [{{ nkey: {:?} }}] }}\n",
            key.public_key()
        ),
    )
    .unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, format!("{}\n", key.seed().unwrap())).unwrap();
    let seed = seed.to_str().unwrap();
    jetlog_at(&server.url(), &["pub", "x", "signed", "--nkey", seed]).ok();
    jetlog_with_env(
        &["pub", "x", "env", "-s", &server.url()],
        &[("NATS_NKEY", seed)],
    )
    .ok();
    jetlog_at(&server.url(), &["pub", "x", "unsigned"]).fails_with("authorization violation");
    jetlog(&["pub", "x", "1", "--creds", "/nonexistent/user.creds"])
        .fails_with("cannot read credentials file /nonexistent/user.creds");
}

#[test]
fn what_the_server_refuses_fails_the_command_with_its_words() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("perms.conf");
    std::fs::write(
        &conf,
        "authorization { users: [{ user: bob, password: pw, permissions: { publish: \"ok.>\", subscribe: [\"ok.>\", \"_INBOX.>\"] } }] }\n",
    )
    .unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let url = server.url();
    let auth = ["--user", "bob", "--password", "pw", "--timeout", "2s"];
    let mut args = vec!["pub", "secret.x", "hi"];
    args.extend_from_slice(&auth);
    let run = jetlog_at(&url, &args);
    run.fails_with(r#"Permissions Violation for Publish to "secret.x""#);
    assert!(!run.stdout.contains("published"), "{run:#?}");
    let mut args = vec!["pub", "ok.x", "hi"];
    args.extend_from_slice(&auth);
    jetlog_at(&url, &args).ok();
    let mut args = vec!["sub", "secret.>"];
    args.extend_from_slice(&auth);
    jetlog_at(&url, &args).fails_with(r#"Permissions Violation for Subscription to "secret.>""#);
    // An API request the user may not publish is refused, not "not answered in time".
    let mut args = vec!["stream", "ls"];
    args.extend_from_slice(&auth);
    let run = jetlog_at(&url, &args);
    run.fails_with(r#"Permissions Violation for Publish to "$JS.API.STREAM"#);
}

/// A credentials file is read and used by the client: against a server that asks for no
/// credentials the command goes through; a file without a seed is an error naming it.
/// (Servers that check the JWT inside are operator mode, the accounts issue.)
#[test]
fn a_credentials_file_is_read_and_sent() {
    let server = TestServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let key = nkeys::KeyPair::new_user();
    let creds = dir.path().join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            key.seed().unwrap()
        ),
    )
    .unwrap();
    let creds = creds.to_str().unwrap();
    jetlog_at(&server.url(), &["pub", "x", "with creds", "--creds", creds]).ok();
    jetlog_with_env(
        &["pub", "x", "env", "-s", &server.url()],
        &[("NATS_CREDS", creds)],
    )
    .ok();
    let broken = dir.path().join("broken.creds");
    std::fs::write(&broken, "no blocks here\n").unwrap();
    let run = jetlog_at(
        &server.url(),
        &["pub", "x", "1", "--creds", broken.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
}
