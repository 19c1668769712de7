//! `jetlog server check …` run as a process, as a monitoring system runs natscli's checks:
//! one Nagios line (or JSON), and the exit code 0, 1, 2 for OK, WARNING, CRITICAL.

mod cli_support;
mod common;

use cli_support::{jetlog_at, AnyServer, Run};
use common::TestServer;
use futures::StreamExt;

/// The run's exit code and its one line of output.
fn line(run: &Run) -> (Option<i32>, String) {
    (run.code, run.stdout.trim_end().to_string())
}

#[test]
fn checks_print_nagios_lines_and_exit_with_their_status() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let (code, out) = line(&jetlog_at(&url, &["server", "check", "connection"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK Connection OK:connect time"), "{out}");
    assert!(
        out.contains(" | connect_time=") && out.contains("s;0.5000;1.0000 rtt="),
        "{out}"
    );

    jetlog_at(&url, &["stream", "add", "ORD", "--subjects", "o.>"]).ok();
    jetlog_at(&url, &["pub", "o.a", "x"]).ok();
    let stream = ["server", "check", "stream", "--stream", "ORD"];
    let warned = jetlog_at(&url, &[&stream[..], &["--msgs-warn", "5"]].concat());
    assert_eq!(
        line(&warned),
        (
            Some(1),
            "WARNING Stream Warn:1 messages OK:0 sources | sources=0 messages=1;5".into()
        )
    );
    let fine = jetlog_at(&url, &[&stream[..], &["--msgs-critical", "0"]].concat());
    assert_eq!(line(&fine).0, Some(0), "{fine:?}");
    let subjects = jetlog_at(
        &url,
        &[
            &stream[..],
            &["--subjects-warn", "1", "--subjects-critical", "5"],
        ]
        .concat(),
    );
    assert!(
        line(&subjects).1.contains("Warn:1 subjects"),
        "{subjects:?}"
    );
    let missing = jetlog_at(&url, &["server", "check", "stream", "--stream", "NOPE"]);
    assert_eq!(
        line(&missing),
        (
            Some(2),
            "CRITICAL Stream Crit:stream NOPE: stream not found".into()
        )
    );

    jetlog_at(&url, &["consumer", "add", "ORD", "C", "--pull"]).ok();
    let consumer = jetlog_at(
        &url,
        &[
            "server",
            "check",
            "consumer",
            "--stream",
            "ORD",
            "--consumer",
            "C",
            "--unprocessed-critical",
            "0",
            "--last-delivery-critical",
            "1m",
        ],
    );
    let (code, out) = line(&consumer);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("Crit:Unprocessed Messages: 1") && out.contains("Crit:No deliveries"),
        "{out}"
    );

    let js = jetlog_at(&url, &["server", "check", "jetstream", "--format", "json"]);
    let result: serde_json::Value = serde_json::from_str(&js.stdout).expect("json");
    assert_eq!(result["status"], "OK", "{result}");
    assert_eq!(result["check_suite"], "jetstream");
    assert!(
        result["ok"]
            .as_array()
            .expect("oks")
            .iter()
            .any(|o| o == "streams 1 (no limit)"),
        "{result}"
    );
}

#[test]
fn a_server_that_cannot_be_reached_is_critical() {
    let url = cli_support::unreachable_url();
    let run = jetlog_at(&url, &["server", "check", "connection", "--timeout", "1s"]);
    let (code, out) = line(&run);
    assert_eq!(code, Some(2), "{run:?}");
    assert!(
        out.starts_with("CRITICAL Connection Crit:connection failed"),
        "{out}"
    );
}

#[test]
fn the_kv_check_finds_the_bucket_its_values_and_a_key_that_holds_one() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["kv", "add", "CFG"]).ok();
    jetlog_at(&url, &["kv", "put", "CFG", "a", "1"]).ok();
    jetlog_at(&url, &["kv", "put", "CFG", "b", "2"]).ok();
    jetlog_at(&url, &["kv", "del", "CFG", "b", "-f"]).ok();
    let kv = |extra: &[&str]| {
        let args = [&["server", "check", "kv", "--bucket"][..], extra].concat();
        line(&jetlog_at(&url, &args))
    };
    let (code, out) = kv(&["CFG", "--key", "a"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("OK CFG OK:bucket CFG OK:key a found | values=2;-1;-1 bytes="),
        "{out}"
    );
    assert!(out.ends_with("B replicas=1"), "{out}");
    let (code, out) = kv(&["CFG", "--key", "b"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL CFG Crit:key b is deleted"),
        "{out}"
    );
    let (code, out) = kv(&["CFG", "--key", "zz"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:key zz not found"), "{out}");
    let (code, out) = kv(&["NOPE"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL NOPE Crit:bucket NOPE not found"),
        "{out}"
    );
    // A critical threshold below the warning one is a floor: 2 values is at most 5.
    let (code, out) = kv(&["CFG", "--values-critical", "1", "--values-warn", "5"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Warn:2 values"), "{out}");
    let (code, out) = kv(&["CFG", "--values-critical", "2", "--values-warn", "1"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:2 values"), "{out}");
}

/// A `.creds` file with a user JWT expiring `exp` seconds from now (0: never).
fn creds_expiring(dir: &std::path::Path, name: &str, exp: i64) -> String {
    use jetlog::server::jwt::{encode, now_secs};
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let mut claims = serde_json::json!({"sub": user.public_key(), "name": name,
        "nats": {"type": "user", "version": 2}});
    if exp > 0 {
        claims["exp"] = (now_secs() + exp).into();
    }
    let jwt = encode(claims, &account);
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().expect("seed")
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(&path, text).expect("write creds");
    path.to_string_lossy().into_owned()
}

#[test]
fn the_credential_check_reads_the_jwts_expiry() {
    let dir = tempfile::tempdir().expect("dir");
    let check = |path: &str, extra: &[&str]| {
        let args = [
            &["server", "check", "credential", "--credential", path][..],
            extra,
        ]
        .concat();
        line(&cli_support::jetlog(&args))
    };
    let day = creds_expiring(dir.path(), "day", 86_400);
    let (code, out) = check(
        &day,
        &["--validity-warn", "2d", "--validity-critical", "1h"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("WARNING Credential Warn:expires sooner than 2d"),
        "{out}"
    );
    assert!(out.contains(" | expiry=86"), "{out}");
    let (code, out) = check(&day, &["--validity-critical", "2d"]);
    assert_eq!(code, Some(2), "{out}");
    let (code, out) = check(&day, &["--validity-warn", "1h"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK Credential OK:expires in 20"), "{out}");
    let never = creds_expiring(dir.path(), "never", 0);
    let (code, out) = check(&never, &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL Credential Crit:never expires"),
        "{out}"
    );
    let (code, out) = check(&never, &["--require-expiry", "false"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK Credential OK:never expires"), "{out}");
    let (code, out) = check("/nonexistent/user.creds", &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:credential not accessible"), "{out}");
    let broken = dir.path().join("broken.creds");
    std::fs::write(&broken, "not a credential\n").expect("write");
    let (code, out) = check(broken.to_str().expect("path"), &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:invalid credential"), "{out}");
}

fn unix_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("clock after 1970").as_secs()
}

#[test]
fn the_message_check_judges_the_newest_message_by_age_and_content() {
    let (_server, url) = AnyServer::start();
    jetlog_at(&url, &["stream", "add", "EV", "--subjects", "ev.>"]).ok();
    jetlog_at(&url, &["pub", "ev.a", "hello world"]).ok();
    jetlog_at(&url, &["pub", "ev.old", "1000000000"]).ok();
    jetlog_at(&url, &["pub", "ev.t", &unix_now().to_string()]).ok();
    let check = |extra: &[&str]| {
        let args = [&["server", "check", "message", "--stream", "EV"][..], extra].concat();
        line(&jetlog_at(&url, &args))
    };
    // The default subject, `>`, takes the stream's newest message: ten digits of now.
    let (code, out) = check(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("OK Stream Message OK:Valid message on EV > > | age="),
        "{out}"
    );
    assert!(out.ends_with("s size=10B"), "{out}");
    let a = ["--subject", "ev.a"];
    let (code, out) = check(&[&a[..], &["--content", "wor(ld|k)$"]].concat());
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&[&a[..], &["--content", "^bye"]].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL Stream Message Crit:does not match regex: ^bye | age="),
        "{out}"
    );
    // Stored a moment ago: older than a millisecond, younger than an hour.
    let (code, out) = check(&[&a[..], &["--age-warn", "1ms", "--age-critical", "1h"]].concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("WARNING Stream Message Warn:"), "{out}");
    assert!(
        out.contains(" old | age=") && out.contains("s;0.0010;3600.0000 "),
        "{out}"
    );
    let (code, out) = check(&[&a[..], &["--age-critical", "1h"]].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(" | age=") && out.contains("s;;3600.0000 size=11B"),
        "{out}"
    );
    // The body as the time: now is fresh, 2001 is not.
    let stamped = ["--body-timestamp", "--age-critical", "1d"];
    let (code, out) = check(&[&["--subject", "ev.t"][..], &stamped].concat());
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&[&["--subject", "ev.old"][..], &stamped].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL Stream Message Crit:") && out.contains("h"),
        "{out}"
    );
    let (code, out) = check(&[&a[..], &["--body-timestamp"]].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("CRITICAL Stream Message Crit:invalid timestamp body: "),
        "{out}"
    );
    let (code, out) = check(&["--subject", "ev.none"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(2), "CRITICAL Stream Message Crit:no message found")
    );
    let missing = jetlog_at(&url, &["server", "check", "message", "--stream", "NOPE"]);
    assert_eq!(
        line(&missing),
        (
            Some(2),
            "CRITICAL Stream Message Crit:msg load failed: stream not found".into()
        )
    );
    let bad = jetlog_at(
        &url,
        &[
            "server",
            "check",
            "message",
            "--stream",
            "EV",
            "--content",
            "(",
        ],
    );
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr.starts_with(
            "error: invalid value '(' for '--content <CONTENT>': invalid regular expression: unclosed group\n"
        ),
        "{bad:?}"
    );
}

/// Answers requests on `svc.echo` with `hello WHO: BODY` (WHO from the `Who` header) and a
/// `Status-Text: fine` header, and on `svc.slow` the same after 300 ms.
async fn echo_service(url: &str) -> async_nats::Client {
    let client = async_nats::connect(url).await.expect("connect");
    let mut requests = client.subscribe("svc.*").await.expect("subscribe");
    client.flush().await.expect("flush");
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            if request.subject.as_str() == "svc.slow" {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let who = request.headers.as_ref().and_then(|h| h.get("Who"));
            let who = who.map_or(String::new(), |v| v.to_string());
            let body = format!("hello {who}: {}", String::from_utf8_lossy(&request.payload));
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Status-Text", "fine");
            let _ = responder
                .publish_with_headers(reply, headers, body.into())
                .await;
            let _ = responder.flush().await;
        }
    });
    client
}

#[test]
fn the_request_check_judges_a_services_answer() {
    let (_server, url) = AnyServer::start();
    cli_support::block_on(async {
        let _service = echo_service(&url).await;
        let check = |extra: &[&str]| {
            let args: Vec<String> = ["server", "check", "request"]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect();
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                line(&jetlog_at(&url, &args))
            })
        };
        let echo = [
            "--subject",
            "svc.echo",
            "--payload",
            "ping",
            "--headers",
            "Who=ops",
        ];
        let wanted = [
            "--match-payload",
            "^hello ops: ping$",
            "--match-headers",
            "Status-Text=fine",
        ];
        let (code, out) = check(&[&echo[..], &wanted, &["--response-critical", "5s"]].concat())
            .await
            .expect("run");
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.starts_with("OK svc.echo OK:Valid response | time="),
            "{out}"
        );
        assert!(out.ends_with("s;;5.0000"), "{out}");
        let (code, out) = check(&[&echo[..], &["--match-payload", "^bye"]].concat())
            .await
            .expect("run");
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.starts_with("CRITICAL svc.echo Crit:response does not match regexp | time="),
            "{out}"
        );
        let headers = [
            "--match-headers",
            "Status-Text=bad",
            "--match-headers",
            "X-None=1",
        ];
        let (code, out) = check(&[&echo[..], &headers].concat()).await.expect("run");
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.starts_with(
                r#"CRITICAL svc.echo Crit:invalid header "Status-Text" = "fine" Crit:invalid header "X-None" = """#
            ),
            "{out}"
        );
        let slow = ["--subject", "svc.slow", "--response-warn", "100ms"];
        let (code, out) = check(&slow).await.expect("run");
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.starts_with("WARNING svc.slow Warn:response took 3"),
            "{out}"
        );
        let (code, out) = check(&["--subject", "svc.none.here", "--timeout", "2s"])
            .await
            .expect("run");
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.starts_with("CRITICAL svc.none.here Crit:could not send request: "),
            "{out}"
        );
    });
}
