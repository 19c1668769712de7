//! `jetlog kv …` run as a process against a real jetlog server: what it prints, what the
//! bucket holds afterwards (checked through async-nats), and how it fails.

mod cli_support;
mod common;

use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use cli_support::{block_on, jetlog_at, jetlog_with_stdin, js, unreachable_url, Listening};
use common::TestServer;

/// The latest entry of a key, read behind the CLI's back.
fn entry(url: &str, bucket: &str, key: &str) -> Option<(u64, Vec<u8>, Operation)> {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    block_on(async move {
        let store = js(url).await.get_key_value(bucket).await.expect("bucket");
        store
            .entry(key)
            .await
            .expect("entry")
            .map(|e| (e.revision, e.value.to_vec(), e.operation))
    })
}

fn add_bucket(url: &str, bucket: &str, history: &str) {
    jetlog_at(url, &["kv", "add", bucket, "--history", history]).ok();
}

#[test]
fn add_creates_a_bucket_with_the_nats_flags() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let out = jetlog_at(
        &url,
        &[
            "kv",
            "add",
            "CONF",
            "--history",
            "5",
            "--ttl",
            "1h",
            "--max-value-size",
            "1KB",
            "--max-bucket-size",
            "1MB",
            "--storage",
            "memory",
            "--description",
            "app settings",
        ],
    );
    let text = out.ok();
    assert!(
        text.starts_with("key-value bucket CONF created\n"),
        "{text}"
    );
    assert!(text.contains("History kept:    5"), "{text}");
    let info = cli_support::stream_info(&url, "KV_CONF");
    let c = &info.config;
    assert_eq!(c.subjects, ["$KV.CONF.>"]);
    assert_eq!(c.max_messages_per_subject, 5);
    assert_eq!(c.max_age, Duration::from_secs(3600));
    assert_eq!((c.max_message_size, c.max_bytes), (1024, 1 << 20));
    assert_eq!(
        c.storage,
        async_nats::jetstream::stream::StorageType::Memory
    );
    assert!(c.allow_rollup && c.deny_delete && c.allow_direct);

    let json = jetlog_at(&url, &["kv", "info", "CONF", "--json"]).json();
    assert_eq!(json["config"]["name"], "KV_CONF");
    jetlog_at(&url, &["kv", "add", "BAD", "--history", "65"]).fails_with("--history");
    jetlog_at(&url, &["kv", "add", "a.b"]).fails_with("invalid bucket name \"a.b\"");
}

#[test]
fn put_get_create_and_update_with_revisions() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_bucket(&url, "APP", "10");

    let put = jetlog_at(&url, &["kv", "put", "APP", "color", "red"]);
    assert_eq!(put.ok(), "APP > color revision 1\n");
    let json = jetlog_at(&url, &["kv", "put", "APP", "color", "blue", "--json"]).json();
    assert_eq!(json["revision"], 2);
    // Without a value argument the value is stdin, bytes and all.
    let binary = [0u8, 159, 146, 150];
    jetlog_with_stdin(&url, &["kv", "put", "APP", "blob"], &binary).ok();
    assert_eq!(
        entry(&url, "APP", "blob").map(|e| e.1),
        Some(binary.to_vec())
    );

    let got = jetlog_at(&url, &["kv", "get", "APP", "color"]);
    let text = got.ok();
    assert!(
        text.starts_with("APP > color revision 2 created "),
        "{text}"
    );
    assert!(text.ends_with("\n\nblue\n"), "{text}");
    let raw = jetlog_at(&url, &["kv", "get", "APP", "color", "--raw"]);
    assert_eq!(raw.ok(), "blue");
    let old = jetlog_at(
        &url,
        &["kv", "get", "APP", "color", "--revision", "1", "--json"],
    )
    .json();
    assert_eq!(
        (&old["value"], &old["revision"], &old["operation"]),
        (
            &serde_json::json!("red"),
            &serde_json::json!(1),
            &serde_json::json!("PUT")
        )
    );
    let blob = jetlog_at(&url, &["kv", "get", "APP", "blob", "--json"]).json();
    assert_eq!(blob["value_base64"], "AJ+Slg==");

    jetlog_at(&url, &["kv", "create", "APP", "color", "green"])
        .fails_with("APP > color already has a value");
    let created = jetlog_at(&url, &["kv", "create", "APP", "size", "xl"]);
    assert_eq!(created.ok(), "APP > size revision 4\n");

    jetlog_at(&url, &["kv", "update", "APP", "color", "green", "1"])
        .fails_with("APP > color is not at revision 1");
    let updated = jetlog_at(&url, &["kv", "update", "APP", "color", "green", "2"]);
    assert_eq!(updated.ok(), "APP > color revision 5\n");
    assert_eq!(
        entry(&url, "APP", "color"),
        Some((5, b"green".to_vec(), Operation::Put))
    );

    jetlog_at(&url, &["kv", "get", "APP", "nothing"]).fails_with("APP > nothing not found");
    jetlog_at(&url, &["kv", "get", "APP", "color", "--revision", "4"])
        .fails_with("has no revision 4");
    let missing = jetlog_at(&url, &["kv", "get", "NOPE", "k"]);
    missing.fails_with("key-value bucket NOPE");
    // The same error format as the stream commands.
    missing.fails_with("stream not found (status 404, err_code 10059)");

    // Revert: revision 1's value (red) comes back as the newest.
    jetlog_at(&url, &["kv", "revert", "APP", "color", "1"])
        .fails_with("refusing without -f/--force");
    let reverted = jetlog_at(&url, &["kv", "revert", "APP", "color", "1", "-f"]);
    assert_eq!(reverted.ok(), "APP > color revision 6\n");
    assert_eq!(
        entry(&url, "APP", "color"),
        Some((6, b"red".to_vec(), Operation::Put))
    );
    jetlog_at(&url, &["kv", "revert", "APP", "color", "4", "-f"])
        .fails_with("APP > color has no value at revision 4");
}

#[test]
fn del_purge_history_keys_and_ls() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_bucket(&url, "INV", "5");
    add_bucket(&url, "ALPHA", "1");
    for (key, value) in [("a", "1"), ("a", "2"), ("b", "3"), ("c.d", "4")] {
        jetlog_at(&url, &["kv", "put", "INV", key, value]).ok();
    }

    // Without a terminal, destructive steps need -f.
    jetlog_at(&url, &["kv", "del", "INV", "b"]).fails_with("refusing without -f/--force");
    assert_eq!(entry(&url, "INV", "b").map(|e| e.2), Some(Operation::Put));
    assert_eq!(
        jetlog_at(&url, &["kv", "del", "INV", "b", "-f"]).ok(),
        "deleted INV > b\n"
    );
    assert_eq!(
        entry(&url, "INV", "b").map(|e| e.2),
        Some(Operation::Delete)
    );
    jetlog_at(&url, &["kv", "get", "INV", "b"]).fails_with("INV > b was deleted at revision 5");

    let history = jetlog_at(&url, &["kv", "history", "INV", "a", "--json"]).json();
    let revisions: Vec<u64> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(revisions, vec![1, 2]);
    let table = jetlog_at(&url, &["kv", "history", "INV", "a"])
        .ok()
        .to_string();
    assert!(
        table.contains("Revision") && table.contains("PUT"),
        "{table}"
    );

    jetlog_at(&url, &["kv", "purge", "INV", "a", "-f"]).ok();
    let history = jetlog_at(&url, &["kv", "history", "INV", "a", "--json"]).json();
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    assert_eq!(history[0]["operation"], "PURGE");

    // Keys with a value only: `a` was purged and `b` deleted.
    assert_eq!(jetlog_at(&url, &["kv", "keys", "INV"]).ok(), "c.d\n");
    assert_eq!(jetlog_at(&url, &["kv", "ls", "INV"]).ok(), "c.d\n");
    assert_eq!(jetlog_at(&url, &["kv", "ls", "-n"]).ok(), "ALPHA\nINV\n");
    let table = jetlog_at(&url, &["kv", "ls"]).ok().to_string();
    assert!(table.contains("Bucket") && table.contains("INV"), "{table}");
    let listed = jetlog_at(&url, &["kv", "ls", "--json"]).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    jetlog_at(&url, &["kv", "rm", "ALPHA"]).fails_with("refusing without -f/--force");
    jetlog_at(&url, &["kv", "rm", "ALPHA", "-f"]).ok();
    assert_eq!(jetlog_at(&url, &["kv", "ls", "-n"]).ok(), "INV\n");
    jetlog_at(&url, &["kv", "rm", "ALPHA", "-f"]).fails_with("key-value bucket ALPHA");
}

#[test]
fn watch_prints_current_values_then_changes_in_order() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_bucket(&url, "LIVE", "5");
    jetlog_at(&url, &["kv", "put", "LIVE", "mode", "old"]).ok();
    jetlog_at(&url, &["kv", "put", "LIVE", "mode", "current"]).ok();

    let watch = Listening::start(&url, &["kv", "watch", "LIVE", "--count", "4", "--json"]);
    let updates = Listening::start(
        &url,
        &[
            "kv",
            "watch",
            "LIVE",
            "mode",
            "--updates-only",
            "--count",
            "1",
        ],
    );
    let everything = Listening::start(
        &url,
        &["kv", "watch", "LIVE", "--include-history", "--count", "3"],
    );
    jetlog_at(&url, &["kv", "put", "LIVE", "mode", "new"]).ok();
    jetlog_at(&url, &["kv", "put", "LIVE", "other", "x"]).ok();
    jetlog_at(&url, &["kv", "del", "LIVE", "other", "-f"]).ok();

    let lines = watch.finish().json_lines();
    let seen: Vec<(u64, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["revision"].as_u64().expect("revision"),
                l["key"].as_str().expect("key"),
                l["operation"].as_str().expect("op"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (2, "mode", "PUT"),
            (3, "mode", "PUT"),
            (4, "other", "PUT"),
            (5, "other", "DEL")
        ]
    );

    let text = updates.finish().ok().to_string();
    assert!(text.contains("PUT LIVE > mode: new"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let text = everything.finish().ok().to_string();
    let values: Vec<&str> = text.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(values, vec!["old", "current", "new"], "{text}");
}

#[test]
fn bad_names_are_refused_before_connecting() {
    let url = unreachable_url();
    jetlog_at(&url, &["kv", "put", "my bucket", "k", "v"]).fails_with("invalid bucket name");
    jetlog_at(&url, &["kv", "ls", "a*"]).fails_with("invalid bucket name");
    // A good name gets as far as the connection.
    jetlog_at(&url, &["kv", "ls"]).fails_with("cannot connect");
}

#[test]
fn add_takes_natscli_flags_for_sources_mirrors_and_features() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_bucket(&url, "ORIGIN", "1");
    jetlog_at(&url, &["kv", "put", "ORIGIN", "a", "1"]).ok();
    let features = ["--compress", "--marker-ttl", "1m", "--tags", "ssd"];
    let aggregate = ["kv", "add", "AGG", "--source", "ORIGIN"];
    jetlog_at(&url, &[&aggregate[..], &features].concat()).ok();
    let config = jetlog_at(&url, &["stream", "info", "KV_AGG", "--json"]).json()["config"].clone();
    assert_eq!(config["compression"], "s2");
    assert_eq!(config["allow_msg_ttl"], true);
    assert_eq!(config["subject_delete_marker_ttl"], 60_000_000_000u64);
    assert_eq!(config["placement"]["tags"], serde_json::json!(["ssd"]));
    let transform = &config["sources"][0]["subject_transforms"][0];
    assert_eq!(
        (transform["src"].as_str(), transform["dest"].as_str()),
        (Some("$KV.ORIGIN.>"), Some("$KV.AGG.>"))
    );
    // The source's value arrives under the aggregate's own key.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while entry(&url, "AGG", "a").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the source's value never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    jetlog_at(&url, &["kv", "add", "READ", "--mirror", "ORIGIN"]).ok();
    let config = jetlog_at(&url, &["stream", "info", "KV_READ", "--json"]).json()["config"].clone();
    assert_eq!(config["mirror"]["name"], "KV_ORIGIN");
    assert_eq!(config["mirror_direct"], true);
    let both = jetlog_at(
        &url,
        &["kv", "add", "X", "--mirror", "ORIGIN", "--source", "AGG"],
    );
    assert!(both.stderr.contains("cannot be used with"), "{both:?}");
}
