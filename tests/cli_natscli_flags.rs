//! natscli's spellings, run as a natscli user types them: `consumer add --target/--deliver
//! 1h/--deliver 100/--wait/--max-pending`, `--config FILE` for streams and consumers, and
//! `sub --stream`. Client commands, so `JETLOG_REFERENCE_SERVER=nats-server` runs them
//! against nats-server too.

mod cli_support;
mod common;

use cli_support::{jetlog_at, AnyServer};

/// A server with ORD on `o.>` holding o.a=m1, o.b=m2, o.a=m3.
fn server_with_orders() -> (AnyServer, String) {
    let (server, url) = AnyServer::start();
    jetlog_at(&url, &["stream", "add", "ORD", "--subjects", "o.>"]).ok();
    for (subject, body) in [("o.a", "m1"), ("o.b", "m2"), ("o.a", "m3")] {
        jetlog_at(&url, &["pub", subject, body, "--js"]).ok();
    }
    (server, url)
}

fn consumer_config(url: &str, name: &str) -> serde_json::Value {
    jetlog_at(url, &["consumer", "info", "ORD", name, "--json"]).json()["config"].clone()
}

#[test]
fn consumer_add_takes_natscli_flag_names() {
    let (_server, url) = server_with_orders();
    let add = |name: &str, extra: &[&str]| {
        let args = [&["consumer", "add", "ORD", name][..], extra].concat();
        jetlog_at(&url, &args).ok().to_string()
    };
    add(
        "SEQ",
        &[
            "--pull",
            "--deliver",
            "2",
            "--wait",
            "10s",
            "--max-pending",
            "5",
        ],
    );
    // natscli's short command names.
    assert_eq!(jetlog_at(&url, &["s", "l", "-n"]).ok().trim(), "ORD");
    let info = jetlog_at(&url, &["c", "nfo", "ORD", "SEQ", "--json"]).json();
    assert_eq!(info["name"], "SEQ");
    let config = consumer_config(&url, "SEQ");
    assert_eq!(config["deliver_policy"], "by_start_sequence");
    assert_eq!(config["opt_start_seq"], 2);
    assert_eq!(config["ack_wait"], 10_000_000_000u64);
    assert_eq!(config["max_ack_pending"], 5);
    add(
        "PUSH",
        &[
            "--target",
            "out.push",
            "--deliver",
            "1h",
            "--heartbeat",
            "5s",
            "--flow-control",
        ],
    );
    let config = consumer_config(&url, "PUSH");
    assert_eq!(config["deliver_subject"], "out.push");
    assert_eq!(config["deliver_policy"], "by_start_time");
    assert_eq!(config["idle_heartbeat"], 5_000_000_000u64);
    assert_eq!(config["flow_control"], true);
    add(
        "LPS",
        &[
            "--deliver",
            "subject",
            "--filter",
            "o.a",
            "--ack",
            "all",
            "--replay",
            "instant",
        ],
    );
    let config = consumer_config(&url, "LPS");
    assert_eq!(config["deliver_policy"], "last_per_subject");
    assert_eq!(config["ack_policy"], "all");
    // The consumer starts at sequence 2: `next` gets m2 first, and --wait delays its ack.
    let next = jetlog_at(&url, &["consumer", "next", "ORD", "SEQ", "--wait", "100ms"]);
    assert!(next.ok().contains("m2"), "{next:?}");
    let bad = jetlog_at(
        &url,
        &["consumer", "add", "ORD", "X", "--deliver", "sometime"],
    );
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("invalid --deliver \"sometime\""),
        "{bad:?}"
    );
}

#[test]
fn streams_and_consumers_are_made_from_config_files() {
    let (_server, url) = server_with_orders();
    let dir = tempfile::tempdir().expect("dir");
    let stream_file = dir.path().join("stream.json");
    let stream = r#"{"name":"FILED","subjects":["filed.>"],"max_msgs":10,"storage":"file"}"#;
    std::fs::write(&stream_file, stream).expect("write");
    let file = stream_file.to_str().expect("path");
    // No NAME: the file's; a flag given changes the file's value.
    jetlog_at(
        &url,
        &["stream", "add", "--config", file, "--max-msgs", "7"],
    )
    .ok();
    let info = jetlog_at(&url, &["stream", "info", "FILED", "--json"]).json();
    assert_eq!(info["config"]["subjects"], serde_json::json!(["filed.>"]));
    assert_eq!(info["config"]["max_msgs"], 7);
    // An edit from the file sets the file's configuration again.
    jetlog_at(&url, &["stream", "edit", "FILED", "--config", file]).ok();
    let info = jetlog_at(&url, &["stream", "info", "FILED", "--json"]).json();
    assert_eq!(info["config"]["max_msgs"], 10);

    // natscli's other stream flags write their JSON fields.
    let flags = ["--max-consumers", "5", "--no-ack", "--tag", "ssd"];
    jetlog_at(
        &url,
        &[
            &["stream", "add", "FLAGGED", "--subjects", "fl.>"][..],
            &flags,
        ]
        .concat(),
    )
    .ok();
    let config = jetlog_at(&url, &["stream", "info", "FLAGGED", "--json"]).json()["config"].clone();
    assert_eq!(config["max_consumers"], 5);
    assert_eq!(config["no_ack"], true);
    assert_eq!(config["placement"]["tags"], serde_json::json!(["ssd"]));

    let consumer_file = dir.path().join("consumer.json");
    let consumer = r#"{"durable_name":"FROMFILE","ack_policy":"explicit","deliver_policy":"last","max_deliver":3}"#;
    std::fs::write(&consumer_file, consumer).expect("write");
    let file = consumer_file.to_str().expect("path");
    jetlog_at(&url, &["consumer", "add", "ORD", "--config", file]).ok();
    let config = consumer_config(&url, "FROMFILE");
    assert_eq!(config["deliver_policy"], "last");
    assert_eq!(config["max_deliver"], 3);

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"name\": ").expect("write");
    let broken = broken.to_str().expect("path");
    jetlog_at(&url, &["stream", "add", "--config", broken]).fails_with("invalid JSON");
    jetlog_at(&url, &["consumer", "add", "ORD", "--config", broken]).fails_with("invalid JSON");
    let nameless = dir.path().join("nameless.json");
    std::fs::write(&nameless, "{\"ack_policy\":\"explicit\"}").expect("write");
    let nameless = nameless.to_str().expect("path");
    jetlog_at(&url, &["consumer", "add", "ORD", "--config", nameless])
        .fails_with("the consumer needs a name");
}

#[test]
fn sub_reads_a_stream_from_where_it_is_asked_to() {
    let (_server, url) = server_with_orders();
    let bodies = |args: &[&str]| -> Vec<String> {
        let run = jetlog_at(&url, &[&["sub"][..], args, &["--json"]].concat());
        let lines = run.json_lines();
        lines
            .iter()
            .map(|m| m["data"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(bodies(&["--stream", "ORD", "-T"]), ["m1", "m2", "m3"]);
    assert_eq!(bodies(&["o.a", "--stream", "ORD", "-T"]), ["m1", "m3"]);
    // Without --stream, the stream that stores the subject.
    assert_eq!(bodies(&["o.a", "--last", "-T"]), ["m3"]);
    assert_eq!(
        bodies(&["o.>", "--start-sequence", "2", "-T"]),
        ["m2", "m3"]
    );
    assert_eq!(bodies(&["o.>", "--last-per-subject", "-T"]), ["m2", "m3"]);
    assert_eq!(bodies(&["--stream", "ORD", "--count", "2"]), ["m1", "m2"]);
    assert!(bodies(&["--stream", "ORD", "--new", "-T"]).is_empty());
    let both = jetlog_at(&url, &["sub", "--stream", "ORD", "--new", "--last"]);
    assert_eq!(both.code, Some(1), "{both:?}");
    assert!(both.stderr.contains("cannot be used with"), "{both:?}");
    jetlog_at(&url, &["sub", "o.a", "--stream", "ORD", "--queue", "q"])
        .fails_with("--queue is for core NATS subscriptions");
    jetlog_at(&url, &["sub", "nowhere.x", "--all", "-T"]).fails_with("no stream stores nowhere.x");
}

/// natscli's consumer flags for features nats-server 2.9 lacks (metadata, pause, priority
/// groups), so against jetlog only.
#[test]
fn consumer_add_takes_natscli_flags_of_newer_servers() {
    let server = common::TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["stream", "add", "ORD", "--subjects", "o.>"]).ok();
    let add = |name: &str, extra: &[&str]| {
        let args = [&["consumer", "add", "ORD", name][..], extra].concat();
        jetlog_at(&url, &args).ok().to_string()
    };
    let linear = [
        "--backoff",
        "linear",
        "--backoff-steps",
        "3",
        "--backoff-min",
        "1s",
    ];
    add(
        "LIN",
        &[&linear[..], &["--backoff-max", "4s", "--max-deliver", "5"]].concat(),
    );
    let config = consumer_config(&url, "LIN");
    let second = 1_000_000_000u64;
    assert_eq!(
        config["backoff"],
        serde_json::json!([second, 2 * second, 3 * second])
    );
    let newer = [
        "--metadata",
        "team=ops",
        "--pause",
        "2099-01-02 03:04:05",
        "--pinned-groups",
        "A",
        "--pinned-ttl",
        "30s",
        "--sample",
        "50",
    ];
    add("NEWER", &newer);
    let config = consumer_config(&url, "NEWER");
    assert_eq!(config["metadata"]["team"], "ops");
    assert_eq!(config["pause_until"], "2099-01-02T03:04:05Z");
    assert_eq!(config["priority_policy"], "pinned_client");
    assert_eq!(config["priority_groups"], serde_json::json!(["A"]));
    assert_eq!(config["priority_timeout"], 30 * second);
    assert_eq!(config["sample_freq"], "50%");
    add("EPH", &["--ephemeral", "--inactive-threshold", "1m"]);
    let config = consumer_config(&url, "EPH");
    assert!(config.get("durable_name").is_none(), "{config}");
    assert_eq!(config["name"], "EPH");
    let bad = jetlog_at(&url, &["consumer", "add", "ORD", "X", "--pause", "someday"]);
    assert!(
        bad.stderr.contains("invalid --pause \"someday\""),
        "{bad:?}"
    );
}

/// natscli's `stream state/copy` and `consumer state/copy/reset/unpin/cluster step-down`.
#[test]
fn natscli_stream_and_consumer_commands_beyond_add_and_info() {
    let server = common::TestServer::start(&[]);
    let url = server.url();
    jetlog_at(
        &url,
        &[
            "stream",
            "add",
            "ORD",
            "--subjects",
            "o.>",
            "--max-msgs",
            "9",
        ],
    )
    .ok();
    for body in ["m1", "m2", "m3"] {
        jetlog_at(&url, &["pub", "o.a", body, "--js"]).ok();
    }
    let state = jetlog_at(&url, &["stream", "state", "ORD", "--json"]).json();
    assert_eq!(
        (state["messages"].as_u64(), state["last_seq"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(state.get("config").is_none(), "{state}");
    jetlog_at(
        &url,
        &["stream", "copy", "ORD", "COPY", "--subjects", "c.>"],
    )
    .ok();
    let copied = jetlog_at(&url, &["stream", "info", "COPY", "--json"]).json();
    assert_eq!(copied["config"]["max_msgs"], 9);
    assert_eq!(copied["state"]["messages"], 0);

    jetlog_at(
        &url,
        &[
            "consumer",
            "add",
            "ORD",
            "C",
            "--pull",
            "--max-deliver",
            "4",
        ],
    )
    .ok();
    jetlog_at(&url, &["consumer", "next", "ORD", "C", "--count", "2"]).ok();
    let state = jetlog_at(&url, &["consumer", "state", "ORD", "C", "--json"]).json();
    assert_eq!(state["ack_floor"]["stream_seq"], 2);
    assert!(state.get("config").is_none(), "{state}");
    jetlog_at(
        &url,
        &["consumer", "cp", "ORD", "C", "C2", "--max-ack-pending", "7"],
    )
    .ok();
    let copy = jetlog_at(&url, &["consumer", "info", "ORD", "C2", "--json"]).json();
    assert_eq!(
        (
            copy["config"]["max_deliver"].as_i64(),
            copy["config"]["max_ack_pending"].as_i64()
        ),
        (Some(4), Some(7))
    );
    assert_eq!(copy["num_pending"], 3);
    let reset = jetlog_at(&url, &["consumer", "reset", "ORD", "C", "--sequence", "1"]);
    reset.fails_with("refusing without -f/--force");
    let reset = jetlog_at(
        &url,
        &["consumer", "reset", "ORD", "C", "--sequence", "1", "-f"],
    );
    assert!(reset.ok().contains("from stream sequence 1"), "{reset:?}");
    let next = jetlog_at(&url, &["consumer", "next", "ORD", "C"]);
    assert!(next.ok().contains("m1"), "{next:?}");
    jetlog_at(&url, &["consumer", "unpin", "ORD", "C", "g", "-f"])
        .fails_with("Provided priority group does not exist for this consumer");
    // One server: no group to step down.
    jetlog_at(&url, &["consumer", "cluster", "step-down", "ORD", "C"])
        .fails_with("JetStream clustering support required");
}
