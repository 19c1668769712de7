//! `jetlog stream …` run as a process against a real jetlog server: what it prints, what the
//! server holds afterwards, and how it fails.

mod cli_support;
mod common;

use std::time::Duration;

use cli_support::{block_on, jetlog, jetlog_at, js, stream_exists, stream_info};
use common::TestServer;

/// Creates ORDERS on `orders.>` through the CLI.
fn add_orders(url: &str) {
    jetlog_at(url, &["stream", "add", "ORDERS", "--subjects", "orders.>"]).ok();
}

/// Publishes through JetStream with async-nats, returning the sequence.
fn publish(url: &str, subject: &str, body: &str) -> u64 {
    let (subject, body) = (subject.to_string(), body.to_string());
    block_on(async move {
        let js = js(url).await;
        js.publish(subject, body.into())
            .await
            .expect("publish")
            .await
            .expect("ack")
            .sequence
    })
}

#[test]
fn add_creates_the_stream_with_human_sizes_and_durations() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let out = jetlog_at(
        &url,
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.>,refunds.*",
            "--storage",
            "memory",
            "--retention",
            "limits",
            "--max-msgs",
            "1000",
            "--max-bytes",
            "1GB",
            "--max-age",
            "1d",
            "--max-msgs-per-subject",
            "10",
            "--max-msg-size",
            "1MB",
            "--discard",
            "new",
            "--dupe-window",
            "2m",
            "--allow-direct",
            "--deny-delete",
            "--allow-rollup",
        ],
    );
    let text = out.ok();
    assert!(text.starts_with("stream ORDERS created\n"), "{text}");
    assert!(text.contains("Max bytes:"), "{text}");
    assert!(text.contains("1.0 GiB"), "{text}");
    assert!(text.contains("24h0m0s"), "{text}");

    let info = stream_info(&url, "ORDERS");
    let c = &info.config;
    assert_eq!(c.subjects, ["orders.>", "refunds.*"]);
    assert_eq!(
        c.storage,
        async_nats::jetstream::stream::StorageType::Memory
    );
    assert_eq!(c.max_messages, 1000);
    assert_eq!(c.max_bytes, 1 << 30);
    assert_eq!(c.max_age, Duration::from_secs(24 * 3600));
    assert_eq!(c.max_messages_per_subject, 10);
    assert_eq!(c.max_message_size, 1 << 20);
    assert_eq!(c.discard, async_nats::jetstream::stream::DiscardPolicy::New);
    assert_eq!(c.duplicate_window, Duration::from_secs(120));
    assert!(c.allow_direct && c.deny_delete && c.allow_rollup && !c.deny_purge);
}

#[test]
fn add_defaults_to_unlimited_and_the_name_as_subject() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let out = jetlog_at(&url, &["stream", "add", "EVENTS", "--json"]);
    let json = out.json();
    assert_eq!(json["config"]["name"], "EVENTS");
    assert_eq!(json["config"]["subjects"], serde_json::json!(["EVENTS"]));
    let info = stream_info(&url, "EVENTS");
    assert_eq!(info.config.max_messages, -1);
    assert_eq!(info.config.max_bytes, -1);
    assert_eq!(
        info.config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
}

#[test]
fn add_refuses_bad_input_before_contacting_the_server() {
    let server = TestServer::start(&[]);
    let url = server.url();
    for (args, needle) in [
        (vec!["--max-bytes", "12XB"], "invalid size \"12XB\""),
        (vec!["--max-age", "3 days"], "invalid duration"),
        (vec!["--dupe-window", "soon"], "invalid duration"),
        (vec!["--max-msg-size", "4GB"], "invalid size"),
        (vec!["--discard", "middle"], "invalid value 'middle'"),
    ] {
        let mut all = vec!["stream", "add", "BAD", "--subjects", "bad.>"];
        all.extend(args);
        let out = jetlog_at(&url, &all);
        assert_eq!(out.code, Some(1), "{out:#?}");
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    jetlog_at(&url, &["stream", "add", "BAD", "--subjects", "bad..x"])
        .fails_with("invalid subject \"bad..x\"");
    jetlog_at(&url, &["stream", "add", "A.B"]).fails_with("invalid stream name \"A.B\"");
    assert!(!stream_exists(&url, "BAD"));
}

#[test]
fn server_errors_carry_the_description_and_err_code() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    jetlog_at(&url, &["stream", "add", "OTHER", "--subjects", "orders.eu"])
        .fails_with("err_code 10065");
    jetlog_at(&url, &["stream", "info", "NOPE"]).fails_with("stream not found");
    jetlog_at(&url, &["stream", "info", "NOPE"]).fails_with("err_code 10059");
    jetlog_at(&url, &["stream", "purge", "NOPE", "-f"]).fails_with("stream not found");
    jetlog_at(&url, &["stream", "get", "NOPE", "1"]).fails_with("stream not found");
    jetlog_at(&url, &["stream", "rm", "NOPE", "-f"]).fails_with("stream not found");
    jetlog_at(&url, &["stream", "edit", "NOPE", "--max-msgs", "5"]).fails_with("stream not found");
}

#[test]
fn info_shows_configuration_and_state() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    publish(&url, "orders.eu.1", "one");
    publish(&url, "orders.us.2", "two");
    let text = jetlog_at(&url, &["stream", "info", "ORDERS"])
        .ok()
        .to_string();
    assert!(
        text.contains("Configuration:") && text.contains("State:"),
        "{text}"
    );
    assert!(text.contains("orders.>"), "{text}");
    let messages = text
        .lines()
        .find(|l| l.contains("Messages:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(messages.trim_end().ends_with('2'), "{messages}");

    let json = jetlog_at(&url, &["stream", "info", "ORDERS", "--json"]).json();
    assert_eq!(json["state"]["messages"], 2);
    assert_eq!(json["state"]["last_seq"], 2);
}

#[test]
fn ls_and_report_list_every_stream() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let empty = jetlog_at(&url, &["stream", "ls"]);
    assert_eq!(empty.ok().trim(), "no streams defined");
    add_orders(&url);
    jetlog_at(&url, &["stream", "add", "AUDIT", "--subjects", "audit.>"]).ok();
    publish(&url, "audit.login", "x");

    let text = jetlog_at(&url, &["stream", "ls"]).ok().to_string();
    let audit = text.find("AUDIT").expect("AUDIT listed");
    let orders = text.find("ORDERS").expect("ORDERS listed");
    assert!(audit < orders, "sorted by name: {text}");

    let names = jetlog_at(&url, &["stream", "ls", "--names"]);
    assert_eq!(names.ok(), "AUDIT\nORDERS\n");
    let json = jetlog_at(&url, &["stream", "ls", "--json"]).json();
    assert_eq!(json.as_array().map(Vec::len), Some(2));

    let report = jetlog_at(&url, &["stream", "report"]).ok().to_string();
    assert!(
        report.contains("Stream") && report.contains("Last seq"),
        "{report}"
    );
    assert!(
        report.contains("AUDIT") && report.contains("ORDERS"),
        "{report}"
    );
    let json = jetlog_at(&url, &["stream", "report", "--json"]).json();
    assert_eq!(json[0]["name"], "AUDIT");
    assert_eq!(json[0]["messages"], 1);
    assert_eq!(json[1]["messages"], 0);
}

#[test]
fn edit_changes_only_the_given_fields() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(
        &url,
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.>",
            "--max-bytes",
            "10MB",
        ],
    )
    .ok();
    let out = jetlog_at(
        &url,
        &[
            "stream",
            "edit",
            "ORDERS",
            "--max-msgs",
            "50",
            "--deny-purge",
            "--subjects",
            "orders.>,x.>",
        ],
    );
    assert!(out.ok().starts_with("stream ORDERS updated\n"));
    let info = stream_info(&url, "ORDERS");
    assert_eq!(info.config.max_messages, 50);
    assert_eq!(info.config.max_bytes, 10 << 20, "unchanged");
    assert!(info.config.deny_purge);
    assert_eq!(info.config.subjects, ["orders.>", "x.>"]);
    // nats-server refuses to lift deny_purge once set; jetlog does the same.
    jetlog_at(&url, &["stream", "edit", "ORDERS", "--deny-purge=false"])
        .fails_with("err_code 10052");
    jetlog_at(&url, &["stream", "edit", "ORDERS", "--allow-direct"]).ok();
    assert!(stream_info(&url, "ORDERS").config.allow_direct);
    jetlog_at(&url, &["stream", "edit", "ORDERS", "--allow-direct=false"]).ok();
    assert!(!stream_info(&url, "ORDERS").config.allow_direct);
}

#[test]
fn rm_needs_force_without_a_terminal() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    jetlog_at(&url, &["stream", "rm", "ORDERS"]).fails_with("refusing without -f/--force");
    assert!(stream_exists(&url, "ORDERS"));
    let out = jetlog_at(&url, &["stream", "rm", "ORDERS", "-f"]);
    assert_eq!(out.ok(), "stream ORDERS deleted\n");
    assert!(!stream_exists(&url, "ORDERS"));
}

#[test]
fn purge_all_by_subject_by_sequence_and_keep() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    for i in 1..=10 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        publish(&url, &format!("orders.{region}.{i}"), "x");
    }
    // Destructive: without a terminal to ask on, -f is required.
    jetlog_at(&url, &["stream", "purge", "ORDERS"]).fails_with("refusing without -f/--force");
    assert_eq!(stream_info(&url, "ORDERS").state.messages, 10);
    let out = jetlog_at(
        &url,
        &[
            "stream",
            "purge",
            "ORDERS",
            "--subject",
            "orders.eu.>",
            "-f",
        ],
    );
    assert_eq!(out.ok(), "purged 5 messages from ORDERS\n");
    assert_eq!(stream_info(&url, "ORDERS").state.messages, 5);

    let json = jetlog_at(
        &url,
        &["stream", "purge", "ORDERS", "--seq", "5", "--json", "-f"],
    )
    .json();
    assert_eq!(json["purged"], 2, "seq 1 and 3 are below 5");
    assert_eq!(stream_info(&url, "ORDERS").state.first_sequence, 5);

    jetlog_at(&url, &["stream", "purge", "ORDERS", "--keep", "1", "-f"]).ok();
    let state = stream_info(&url, "ORDERS").state;
    assert_eq!((state.messages, state.first_sequence), (1, 9));

    jetlog_at(&url, &["stream", "purge", "ORDERS", "--force"]).ok();
    assert_eq!(stream_info(&url, "ORDERS").state.messages, 0);

    let out = jetlog_at(
        &url,
        &["stream", "purge", "ORDERS", "--seq", "3", "--keep", "1"],
    );
    assert_eq!(out.code, Some(1), "clap refuses the combination: {out:#?}");
}

#[test]
fn get_by_sequence_and_last_for_subject() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    jetlog_at(
        &url,
        &[
            "pub",
            "orders.eu.1",
            "first",
            "--js",
            "-H",
            "Trace:abc",
            "-H",
            "Trace:def",
        ],
    )
    .ok();
    publish(&url, "orders.us.2", "second");
    publish(&url, "orders.eu.1", "third");

    let text = jetlog_at(&url, &["stream", "get", "ORDERS", "1"])
        .ok()
        .to_string();
    assert!(text.starts_with("[#1] orders.eu.1  "), "{text}");
    assert!(text.contains("\nTrace: abc\nTrace: def\nfirst\n"), "{text}");

    let json = jetlog_at(&url, &["stream", "get", "ORDERS", "1", "--json"]).json();
    assert_eq!(json["seq"], 1);
    assert_eq!(json["subject"], "orders.eu.1");
    assert_eq!(json["data"], "first");
    assert_eq!(json["headers"]["Trace"], serde_json::json!(["abc", "def"]));
    assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    let json = jetlog_at(
        &url,
        &[
            "stream",
            "get",
            "ORDERS",
            "--last-for",
            "orders.eu.1",
            "--json",
        ],
    )
    .json();
    assert_eq!(
        (json["seq"].as_u64(), json["data"].as_str()),
        (Some(3), Some("third"))
    );

    jetlog_at(&url, &["stream", "get", "ORDERS", "99"]).fails_with("no message found");
    jetlog_at(
        &url,
        &["stream", "get", "ORDERS", "--last-for", "orders.none"],
    )
    .fails_with("no message found");
}

#[test]
fn rmm_deletes_one_message() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    for i in 1..=3 {
        publish(&url, &format!("orders.{i}"), "x");
    }
    jetlog_at(&url, &["stream", "rmm", "ORDERS", "2"]).fails_with("refusing without -f/--force");
    let out = jetlog_at(&url, &["stream", "rmm", "ORDERS", "2", "-f"]);
    assert_eq!(out.ok(), "deleted message 2 from ORDERS\n");
    let state = stream_info(&url, "ORDERS").state;
    assert_eq!(state.messages, 2);
    jetlog_at(&url, &["stream", "get", "ORDERS", "2"]).fails_with("no message found");
    jetlog_at(&url, &["stream", "rmm", "ORDERS", "2", "-f"]).fails_with("err_code");
}

#[test]
fn stream_commands_report_an_unreachable_server_quickly() {
    let url = cli_support::unreachable_url();
    let out = jetlog(&["stream", "ls", "-s", &url]);
    out.fails_with(&format!("cannot connect to {url}"));
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
    // natscli's order: the connection flags before the command.
    let before = jetlog(&["-s", &url, "-j", "stream", "ls"]);
    before.fails_with(&format!("cannot connect to {url}"));
}

#[test]
fn info_shows_level_1_and_2_settings_and_pub_shows_a_counters_total() {
    let server = TestServer::start(&[]);
    let url = server.url();
    for (subject, body) in [
        (
            "$JS.API.STREAM.CREATE.SESSIONS",
            r#"{"name":"SESSIONS","subjects":["sess.>"],"subject_delete_marker_ttl":5000000000,"subject_transform":{"src":"sess.*","dest":"s.$1"},"republish":{"dest":"copy.>","headers_only":true}}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.HITS",
            r#"{"name":"HITS","subjects":["hits.>"],"allow_msg_counter":true,"allow_atomic":true}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.LATER",
            r#"{"name":"LATER","subjects":["later.>"],"allow_msg_schedules":true}"#,
        ),
    ] {
        jetlog_at(&url, &["req", subject, body]).ok();
    }
    let out = jetlog_at(&url, &["stream", "info", "SESSIONS"]);
    let text = out.ok();
    for needle in [
        "Subject transform",
        "sess.* → s.$1",
        "Republish",
        "> → copy.> (headers only)",
        "Per-message TTL",
        "Delete markers",
        "kept 5s",
    ] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
    assert!(!text.contains("Counter"), "{text}");
    assert!(!text.contains("Atomic batches"), "{text}");
    let hits = jetlog_at(&url, &["stream", "info", "HITS"]);
    let hits = hits.ok();
    assert!(hits.contains("Counter"), "{hits}");
    assert!(hits.contains("Atomic batches"), "{hits}");
    let later = jetlog_at(&url, &["stream", "info", "LATER"]);
    assert!(later.ok().contains("Message schedules"), "{}", later.ok());
    let first = jetlog_at(&url, &["pub", "--js", "-H", "Nats-Incr:5", "hits.eu", ""]);
    assert!(first.ok().contains("as seq 1, total 5"), "{}", first.ok());
    let json = jetlog_at(
        &url,
        &["pub", "--js", "--json", "-H", "Nats-Incr:-7", "hits.eu", ""],
    );
    assert_eq!(json.json()["val"], "-2");
}

#[test]
fn subjects_lists_counts_and_seal_stops_a_stream_for_good() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    for subject in ["orders.eu.1", "orders.eu.1", "orders.us.1"] {
        publish(&url, subject, "x");
    }
    let text = jetlog_at(&url, &["stream", "subjects", "ORDERS"])
        .ok()
        .to_string();
    assert!(text.contains("orders.eu.1") && text.contains('2'), "{text}");
    let json = jetlog_at(
        &url,
        &["stream", "subjects", "ORDERS", "orders.us.>", "--json"],
    )
    .json();
    assert_eq!(json, serde_json::json!({"orders.us.1": 1}));

    jetlog_at(&url, &["stream", "seal", "ORDERS"]).fails_with("refusing without -f/--force");
    let out = jetlog_at(&url, &["stream", "seal", "ORDERS", "-f"]);
    assert!(
        out.ok().starts_with("stream ORDERS sealed\n"),
        "{}",
        out.ok()
    );
    assert!(stream_info(&url, "ORDERS").config.sealed);
    jetlog_at(&url, &["pub", "--js", "orders.eu.2", "late"]).fails_with("sealed");
}

#[test]
fn pub_js_stages_and_commits_an_atomic_batch() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(
        &url,
        &[
            "req",
            "$JS.API.STREAM.CREATE.B",
            r#"{"name":"B","subjects":["b.>"],"allow_atomic":true}"#,
        ],
    )
    .ok();
    let batch = |seq: &str, commit: bool| {
        let seq_header = format!("Nats-Batch-Sequence:{seq}");
        let mut args = vec!["pub", "--js", "-H", "Nats-Batch-Id:x", "-H", &seq_header];
        if commit {
            args.extend(["-H", "Nats-Batch-Commit:1"]);
        }
        args.extend(["b.1", "body"]);
        jetlog_at(&url, &args)
    };
    assert_eq!(batch("1", false).ok(), "staged as message 1 of batch x\n");
    assert_eq!(
        batch("2", true).ok(),
        "batch x committed: 2 messages stored in B, the last as seq 2\n"
    );
    batch("5", false).fails_with("atomic publish batch is incomplete (status 400, err_code 10176)");
}

#[test]
fn add_makes_mirrors_and_sources_and_info_shows_their_lag() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    publish(&url, "orders.eu.1", "one");
    publish(&url, "orders.us.2", "two");
    jetlog_at(&url, &["stream", "add", "BACKUP", "--mirror", "ORDERS"]).ok();
    jetlog_at(&url, &["stream", "add", "ALL", "--source", "ORDERS"]).ok();
    let info = |name: &str| jetlog_at(&url, &["stream", "info", name, "--json"]).json();
    let mirror = info("BACKUP");
    assert_eq!(mirror["config"]["mirror"]["name"], "ORDERS");
    assert!(mirror["config"].get("subjects").is_none(), "{mirror}");
    let sourced = info("ALL");
    assert_eq!(sourced["config"]["sources"][0]["name"], "ORDERS");
    assert!(sourced["config"].get("subjects").is_none(), "{sourced}");
    // Both catch up within a few of the server's 50 ms ticks.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while info("BACKUP")["state"]["messages"] != 2 || info("ALL")["state"]["messages"] != 2 {
        assert!(std::time::Instant::now() < deadline, "no catch-up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = jetlog_at(&url, &["stream", "info", "ALL"]).ok().to_string();
    assert!(
        text.contains("Sources:") && text.contains("ORDERS"),
        "{text}"
    );
    assert!(text.contains("ORDERS: lag 0, last seen"), "{text}");
    let refused = jetlog_at(
        &url,
        &[
            "stream",
            "add",
            "BAD",
            "--mirror",
            "ORDERS",
            "--subjects",
            "x",
        ],
    );
    assert_ne!(
        refused.code,
        Some(0),
        "--mirror with --subjects: {refused:#?}"
    );
}

#[test]
fn find_lists_the_streams_that_meet_every_condition() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    publish(&url, "orders.eu.1", "one");
    jetlog_at(&url, &["stream", "add", "EMPTY", "--subjects", "empty.>"]).ok();
    jetlog_at(&url, &["stream", "add", "COPY", "--mirror", "ORDERS"]).ok();
    jetlog_at(&url, &["stream", "add", "ALL", "--source", "ORDERS"]).ok();
    let find = |args: &[&str]| {
        let mut argv = vec!["stream", "find", "--json"];
        argv.extend_from_slice(args);
        jetlog_at(&url, &argv).json()
    };
    assert_eq!(
        find(&["--subject", "orders.eu.1"]),
        serde_json::json!(["ORDERS"])
    );
    assert_eq!(find(&["--mirrored"]), serde_json::json!(["COPY"]));
    assert_eq!(find(&["--sourced"]), serde_json::json!(["ALL"]));
    assert_eq!(
        find(&["--sourced", "--invert"]),
        serde_json::json!(["COPY", "EMPTY", "ORDERS"])
    );
    assert_eq!(
        find(&["--subject", "empty.x", "--empty"]),
        serde_json::json!(["EMPTY"])
    );
    let none = jetlog_at(&url, &["stream", "find", "--subject", "nothing.here"]);
    assert_eq!(none.ok().trim(), "no streams found");
}

#[test]
fn view_prints_messages_from_a_start_point() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_orders(&url);
    for i in 1..=5 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        publish(&url, &format!("orders.{region}.{i}"), &format!("m{i}"));
    }
    let seqs = |args: &[&str]| -> Vec<u64> {
        let mut argv = vec!["stream", "view", "ORDERS", "--json"];
        argv.extend_from_slice(args);
        let lines = jetlog_at(&url, &argv).json_lines();
        lines.iter().filter_map(|m| m["seq"].as_u64()).collect()
    };
    assert_eq!(seqs(&[]), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(&["--id", "3", "--count", "2"]), [3, 4]);
    assert_eq!(seqs(&["--subject", "orders.eu.>"]), [2, 4]);
    let text = jetlog_at(&url, &["stream", "view", "ORDERS", "--count", "1"])
        .ok()
        .to_string();
    assert!(
        text.contains("orders.us.1") && text.contains("m1"),
        "{text}"
    );
    jetlog_at(&url, &["stream", "add", "EMPTY", "--subjects", "empty.>"]).ok();
    assert!(jetlog_at(&url, &["stream", "view", "EMPTY"])
        .ok()
        .is_empty());
}
