//! The HTTP monitoring endpoints of the real binary (`-m -1`): nats-server's field names,
//! counters that move with traffic, Prometheus text that parses, and a port that closes on
//! SIGTERM.

mod common;

use std::future::IntoFuture;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use bytes::Bytes;
use common::monitor::{get, get_json, HTTP_TIMEOUT};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::Value;

/// Starts a server with monitoring on a free port; returns it and the monitor's port.
fn start_monitored(extra: &[&str]) -> (TestServer, u16) {
    let mut args = vec!["-m", "-1"];
    args.extend_from_slice(extra);
    let server = TestServer::start(&args);
    let port = server.monitor_port().expect("monitor log line");
    (server, port)
}

fn has_fields(value: &Value, fields: &[&str], what: &str) {
    for field in fields {
        assert!(
            value.get(field).is_some(),
            "{what} lacks {field}: {value:#}"
        );
    }
}

fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, content_type, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parse")
}

/// The value of one series, matched by name and labels.
fn series(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no series {name} {labels:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a plain value"),
    }
}

#[test]
fn every_endpoint_answers_with_nats_server_field_names() {
    let (_server, port) = start_monitored(&[]);
    let (status, _, body) = get(port, "/healthz");
    assert_eq!(
        (status, body.replace(char::is_whitespace, "")),
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(
        get_json(port, "/healthz?js-enabled-only=true")["status"],
        "ok"
    );

    let varz = get_json(port, "/varz");
    has_fields(
        &varz,
        &[
            "server_id",
            "server_name",
            "version",
            "proto",
            "host",
            "port",
            "max_connections",
            "max_payload",
            "max_control_line",
            "ping_interval",
            "ping_max",
            "uptime",
            "start",
            "now",
            "mem",
            "cores",
            "cpu",
            "connections",
            "total_connections",
            "subscriptions",
            "in_msgs",
            "out_msgs",
            "in_bytes",
            "out_bytes",
            "slow_consumers",
            "jetstream",
        ],
        "varz",
    );
    assert_eq!(varz["http_port"], port);
    assert_eq!(
        varz["ping_interval"], 120_000_000_000u64,
        "a Go duration in ns"
    );
    assert!(varz["mem"].as_u64().unwrap() > 0);
    has_fields(
        &varz["jetstream"]["stats"]["api"],
        &["total", "errors"],
        "varz.jetstream",
    );

    let connz = get_json(port, "/connz");
    has_fields(
        &connz,
        &[
            "server_id",
            "now",
            "num_connections",
            "total",
            "offset",
            "limit",
            "connections",
        ],
        "connz",
    );
    assert_eq!(connz["limit"], 1024);

    let subsz = get_json(port, "/subsz");
    has_fields(
        &subsz,
        &["num_subscriptions", "num_inserts", "num_removes"],
        "subsz",
    );
    assert!(
        subsz.get("num_matches").is_none(),
        "not counted, so not reported"
    );

    let jsz = get_json(port, "/jsz");
    has_fields(
        &jsz,
        &[
            "memory",
            "storage",
            "streams",
            "consumers",
            "messages",
            "bytes",
            "api",
        ],
        "jsz",
    );
    assert!(jsz.get("account_details").is_none());

    let metrics = scrape(port);
    assert_eq!(series(&metrics, "jetlog_connections", &[]), 0.0);

    assert_eq!(get(port, "/nowhere").0, 404);
    assert_eq!(get(port, "/connz?sort=bogus").0, 400);
    assert_eq!(get(port, "/connz?limit=many").0, 400);
}

#[tokio::test]
async fn counters_move_after_traffic() {
    let (server, port) = start_monitored(&[]);
    let client = within(
        "connect",
        async_nats::ConnectOptions::new()
            .name("monitor-test")
            .connect(server.url()),
    )
    .await
    .unwrap();
    let mut sub = client.subscribe("mon.core").await.unwrap();
    for _ in 0..10 {
        client
            .publish("mon.core", Bytes::from(vec![b'x'; 100]))
            .await
            .unwrap();
    }
    within("flush", client.flush()).await.unwrap();
    for _ in 0..10 {
        within("delivery", sub.next()).await.unwrap();
    }
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: "MON".to_string(),
        subjects: vec!["mon.js.>".to_string()],
        ..Default::default()
    };
    let stream = within("stream", js.create_stream(config)).await.unwrap();
    for i in 0..5 {
        let ack = js
            .publish(format!("mon.js.{i}"), Bytes::from_static(b"hello"))
            .await
            .unwrap();
        within("ack", ack.into_future()).await.unwrap();
    }
    let consumer = pull::Config {
        durable_name: Some("C1".to_string()),
        ..Default::default()
    };
    within("consumer", stream.create_consumer(consumer))
        .await
        .unwrap();

    let varz = get_json(port, "/varz");
    // 10 core messages plus 5 JetStream publishes and the API requests.
    assert!(varz["in_msgs"].as_u64().unwrap() >= 15, "{varz:#}");
    assert!(varz["in_bytes"].as_u64().unwrap() >= 1000 + 25, "{varz:#}");
    assert!(varz["out_msgs"].as_u64().unwrap() >= 10, "{varz:#}");
    assert!(varz["out_bytes"].as_u64().unwrap() >= 1000, "{varz:#}");
    assert_eq!(varz["connections"], 1);
    assert_eq!(varz["total_connections"], 1);
    assert!(varz["subscriptions"].as_u64().unwrap() >= 2);
    assert!(varz["jetstream"]["stats"]["api"]["total"].as_u64().unwrap() >= 2);

    let connz = get_json(port, "/connz?subs=true&sort=msgs_from");
    assert_eq!(connz["num_connections"], 1);
    let conn = &connz["connections"][0];
    has_fields(
        conn,
        &[
            "cid",
            "ip",
            "port",
            "start",
            "last_activity",
            "uptime",
            "pending_bytes",
            "lang",
            "version",
        ],
        "connection",
    );
    assert_eq!(conn["name"], "monitor-test");
    assert_eq!(conn["ip"], "127.0.0.1");
    assert!(conn["in_msgs"].as_u64().unwrap() >= 15);
    assert!(conn["out_msgs"].as_u64().unwrap() >= 10);
    let listed: Vec<&str> = conn["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(listed.contains(&"mon.core"), "{listed:?}");
    assert_eq!(
        conn["subscriptions"].as_u64().unwrap() as usize,
        listed.len()
    );
    assert_eq!(
        get_json(port, "/connz?offset=1")["connections"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let subsz = get_json(port, "/subsz?subs=true");
    let subs = subsz["subscriptions_list"].as_array().unwrap();
    let core = subs
        .iter()
        .find(|s| s["subject"] == "mon.core")
        .expect("mon.core listed");
    assert_eq!(core["msgs"], 10);
    assert_eq!(core["account"], "$G");
    assert!(subsz["num_inserts"].as_u64().unwrap() >= subsz["num_subscriptions"].as_u64().unwrap());

    let jsz = get_json(port, "/jsz?consumers=true");
    assert_eq!(
        (
            jsz["streams"].as_u64(),
            jsz["consumers"].as_u64(),
            jsz["messages"].as_u64()
        ),
        (Some(1), Some(1), Some(5))
    );
    assert_eq!(
        jsz["storage"], jsz["bytes"],
        "a file stream's bytes count as storage"
    );
    let detail = &jsz["account_details"][0]["stream_detail"][0];
    assert_eq!(detail["name"], "MON");
    assert_eq!(detail["state"]["messages"], 5);
    assert!(
        detail.get("config").is_none(),
        "config only with config=true"
    );
    assert_eq!(detail["consumer_detail"][0]["name"], "C1");
    assert_eq!(detail["consumer_detail"][0]["num_pending"], 5);
    assert!(
        get_json(port, "/jsz?config=true")["account_details"][0]["stream_detail"][0]["config"]
            ["subjects"][0]
            == "mon.js.>"
    );

    let metrics = scrape(port);
    assert_eq!(
        series(&metrics, "jetlog_stream_messages", &[("stream", "MON")]),
        5.0
    );
    assert_eq!(
        series(
            &metrics,
            "jetlog_consumer_num_pending",
            &[("stream", "MON"), ("consumer", "C1")]
        ),
        5.0
    );
    assert_eq!(
        series(
            &metrics,
            "jetlog_consumer_num_ack_pending",
            &[("stream", "MON"), ("consumer", "C1")]
        ),
        0.0
    );
    assert!(series(&metrics, "jetlog_in_msgs_total", &[]) >= 15.0);
    assert_eq!(series(&metrics, "jetlog_connections", &[]), 1.0);

    // A closed connection's traffic stays in the totals.
    let in_msgs = varz["in_msgs"].as_u64().unwrap();
    drop(sub);
    drop(stream);
    drop(js);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let varz = get_json(port, "/varz");
        if varz["connections"] == 0 || Instant::now() > deadline {
            break varz;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        after["connections"], 0,
        "the client's connection did not close"
    );
    assert!(after["in_msgs"].as_u64().unwrap() >= in_msgs);
}

#[test]
fn ports_file_lists_the_monitor_and_the_port_closes_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let (server, port) = start_monitored(&["--ports_file_dir", &dir_arg]);
    let ports_file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        .expect("ports file")
        .path();
    let ports: Value =
        serde_json::from_str(&std::fs::read_to_string(&ports_file).unwrap()).unwrap();
    assert_eq!(ports["monitoring"][0], format!("http://127.0.0.1:{port}"));
    assert_eq!(get(port, "/healthz").0, 200);

    let status = server.terminate().expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), HTTP_TIMEOUT).is_err(),
        "monitor port still open"
    );
    assert!(!ports_file.exists(), "ports file removed on clean shutdown");
}

#[test]
fn port_zero_leaves_monitoring_off() {
    let server = TestServer::start(&["-m", "0"]);
    assert!(
        !server.log_contains("monitor"),
        "{:?}",
        server.log.lock().unwrap()
    );
}

/// Storage limits and a domain set in the config file show in `/jsz` and `/varz`.
#[test]
fn jetstream_limits_and_domain_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("js.conf");
    std::fs::write(
        &path,
        "jetstream { max_file_store: 1GB, max_memory_store: 64MB, domain: hub }\n",
    )
    .unwrap();
    let (_server, port) = start_monitored(&["-c", path.to_str().unwrap()]);
    let jsz = get_json(port, "/jsz?config=true");
    assert_eq!(jsz["config"]["max_storage"], 1u64 << 30, "{jsz}");
    assert_eq!(jsz["config"]["max_memory"], 64u64 << 20, "{jsz}");
    assert_eq!(jsz["config"]["domain"], "hub", "{jsz}");
    let varz = get_json(port, "/varz");
    assert_eq!(
        varz["jetstream"]["config"]["max_storage"],
        1u64 << 30,
        "{varz}"
    );
}

/// `/accountz` lists the global and system accounts of a server without configured
/// accounts, and details each on request.
#[test]
fn accountz_lists_the_global_and_system_accounts() {
    let (_server, port) = start_monitored(&[]);
    let list = get_json(port, "/accountz");
    assert_eq!(
        list["accounts"],
        serde_json::json!(["$G", "$SYS"]),
        "{list}"
    );
    assert_eq!(list["system_account"], "$SYS", "{list}");
    let detail = get_json(port, "/accountz?acc=$G");
    has_fields(
        &detail["account_detail"],
        &[
            "account_name",
            "update_time",
            "jetstream_enabled",
            "client_connections",
            "subscriptions",
        ],
        "account_detail",
    );
    assert_eq!(detail["account_detail"]["account_name"], "$G");
    assert_eq!(detail["account_detail"]["jetstream_enabled"], true);
    let system = get_json(port, "/accountz?acc=$SYS");
    assert_eq!(system["account_detail"]["is_system"], true, "{system}");
    assert_eq!(
        system["account_detail"]["jetstream_enabled"], false,
        "{system}"
    );
    assert_eq!(get(port, "/accountz?acc=OTHER").0, 400);
}
