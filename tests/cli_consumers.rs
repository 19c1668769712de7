//! `jetlog consumer …` and `jetlog replay` run as processes.
//!
//! They run against jetlog; `JETLOG_REFERENCE_SERVER=nats-server cargo test --test
//! cli_consumers` runs the same tests against nats-server, to check the CLI is server-neutral.

mod cli_support;
mod common;

use std::time::Duration;

use cli_support::{block_on, jetlog, jetlog_at, js, AnyServer, Listening};
use common::TestServer;

/// A server with ORDERS on `orders.>` holding `n` messages `orders.{eu|us}.{i}` = `m{i}`.
fn server_with_orders(n: u64) -> (AnyServer, String) {
    let (server, url) = AnyServer::start();
    jetlog_at(&url, &["stream", "add", "ORDERS", "--subjects", "orders.>"]).ok();
    block_on(async {
        let js = js(&url).await;
        for i in 1..=n {
            let region = if i % 2 == 0 { "eu" } else { "us" };
            js.publish(format!("orders.{region}.{i}"), format!("m{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    });
    (server, url)
}

fn consumer_info(url: &str, name: &str) -> async_nats::jetstream::consumer::Info {
    let name = name.to_string();
    block_on(async move {
        let js = js(url).await;
        let stream = js.get_stream("ORDERS").await.expect("stream");
        stream.consumer_info(name).await.expect("consumer info")
    })
}

#[test]

fn add_a_pull_consumer_with_its_options() {
    let (_server, url) = server_with_orders(0);
    let out = jetlog_at(
        &url,
        &[
            "consumer",
            "add",
            "ORDERS",
            "WORKER",
            "--pull",
            "--filter",
            "orders.eu.>",
            "--ack",
            "explicit",
            "--ack-wait",
            "30s",
            "--max-deliver",
            "5",
            "--backoff",
            "1s,5s",
            "--deliver",
            "seq:3",
        ],
    );
    assert!(out
        .ok()
        .starts_with("consumer WORKER created on stream ORDERS\n"));
    let info = consumer_info(&url, "WORKER");
    let c = &info.config;
    assert_eq!(c.durable_name.as_deref(), Some("WORKER"));
    assert_eq!(c.filter_subject, "orders.eu.>");
    assert_eq!(c.max_deliver, 5);
    assert_eq!(c.backoff, [Duration::from_secs(1), Duration::from_secs(5)]);
    // With a backoff, nats-server takes the ack wait from its first step.
    assert_eq!(c.ack_wait, Duration::from_secs(1));
    assert!(c.deliver_subject.is_none());
    jetlog_at(
        &url,
        &["consumer", "add", "ORDERS", "SLOW", "--ack-wait", "45s"],
    )
    .ok();
    assert_eq!(
        consumer_info(&url, "SLOW").config.ack_wait,
        Duration::from_secs(45)
    );
}

#[test]

fn add_a_push_consumer() {
    let (_server, url) = server_with_orders(0);
    jetlog_at(
        &url,
        &[
            "consumer",
            "add",
            "ORDERS",
            "PUSHER",
            "--push",
            "deliver.here",
            "--ack",
            "none",
        ],
    )
    .ok();
    let info = consumer_info(&url, "PUSHER");
    assert_eq!(info.config.deliver_subject.as_deref(), Some("deliver.here"));
}

#[test]

fn ls_info_and_rm() {
    let (_server, url) = server_with_orders(3);
    jetlog_at(&url, &["consumer", "add", "ORDERS", "B"]).ok();
    jetlog_at(&url, &["consumer", "add", "ORDERS", "A"]).ok();
    assert_eq!(
        jetlog_at(&url, &["consumer", "ls", "ORDERS", "--names"]).ok(),
        "A\nB\n"
    );
    let table = jetlog_at(&url, &["consumer", "ls", "ORDERS"])
        .ok()
        .to_string();
    assert!(
        table.contains("Unprocessed") && table.contains(" A "),
        "{table}"
    );
    let json = jetlog_at(&url, &["consumer", "info", "ORDERS", "A", "--json"]).json();
    assert_eq!(json["name"], "A");
    assert_eq!(json["num_pending"], 3);
    jetlog_at(&url, &["consumer", "rm", "ORDERS", "A"]).fails_with("refusing without -f");
    jetlog_at(&url, &["consumer", "rm", "ORDERS", "A", "-f"]).ok();
    assert_eq!(
        jetlog_at(&url, &["consumer", "ls", "ORDERS", "--names"]).ok(),
        "B\n"
    );
    jetlog_at(&url, &["consumer", "info", "ORDERS", "A"]).fails_with("consumer not found");
}

#[test]

fn next_pulls_and_acknowledges() {
    let (_server, url) = server_with_orders(4);
    jetlog_at(&url, &["consumer", "add", "ORDERS", "W"]).ok();
    let json = jetlog_at(
        &url,
        &["consumer", "next", "ORDERS", "W", "--count", "2", "--json"],
    )
    .json_lines();
    let seqs: Vec<_> = json.iter().map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, [Some(1), Some(2)]);
    let info = consumer_info(&url, "W");
    assert_eq!(info.ack_floor.stream_sequence, 2);
    assert_eq!(info.num_ack_pending, 0);

    jetlog_at(&url, &["consumer", "next", "ORDERS", "W", "--no-ack"]).ok();
    assert_eq!(consumer_info(&url, "W").num_ack_pending, 1);
}

#[test]

fn next_on_an_empty_consumer_fails_within_the_timeout() {
    let (_server, url) = server_with_orders(0);
    jetlog_at(&url, &["consumer", "add", "ORDERS", "W"]).ok();
    let out = jetlog_at(
        &url,
        &["consumer", "next", "ORDERS", "W", "--timeout", "1s"],
    );
    out.fails_with("no message from consumer W");
    // It waits as long as it says (the server holds the request until it expires).
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "{:?}",
        out.elapsed
    );
    assert!(out.elapsed < Duration::from_secs(4));
}

#[test]

fn consumer_errors_name_the_cause() {
    let (_server, url) = server_with_orders(0);
    jetlog_at(&url, &["consumer", "add", "NOPE", "W"]).fails_with("stream not found");
    jetlog_at(&url, &["consumer", "next", "ORDERS", "MISSING"]).fails_with("consumer not found");
    jetlog_at(
        &url,
        &["consumer", "add", "ORDERS", "W", "--filter", "a..b"],
    )
    .fails_with("invalid subject");
    jetlog_at(&url, &["consumer", "add", "ORDERS", "P", "--push", "d"]).ok();
    jetlog_at(&url, &["consumer", "next", "ORDERS", "P"]).fails_with("push consumer");
}

#[test]
fn consumer_flags_are_checked_before_connecting() {
    let out = jetlog(&["consumer", "add", "S", "C", "--deliver", "sometime"]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("invalid --deliver"), "{}", out.stderr);
    let out = jetlog(&["consumer", "add", "S", "C", "--backoff", "1s,x"]);
    assert!(out.stderr.contains("invalid duration"), "{}", out.stderr);
    jetlog(&["consumer", "info", "S", "a.b"]).fails_with("invalid consumer name");
    let out = jetlog(&["replay", "S", "--since", "last tuesday"]);
    assert!(out.stderr.contains("invalid start"), "{}", out.stderr);
    jetlog(&["replay", "S", "--from-seq", "5", "--to-seq", "2"]).fails_with("before --from-seq");
}

#[test]

fn replay_prints_every_event_in_order_and_stops() {
    let (_server, url) = server_with_orders(5);
    let lines = jetlog_at(&url, &["replay", "ORDERS", "--json"]).json_lines();
    let seqs: Vec<_> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(lines[0]["subject"], "orders.us.1");
    assert_eq!(lines[0]["data"], "m1");
    assert!(lines[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    let text = jetlog_at(&url, &["replay", "ORDERS"]).ok().to_string();
    assert!(text.starts_with("[#1] orders.us.1  "), "{text}");
}

#[test]

fn replay_filters_and_bounds() {
    let (_server, url) = server_with_orders(10);
    let seqs = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["replay", "ORDERS", "--json"];
        all.extend_from_slice(args);
        jetlog_at(&url, &all)
            .json_lines()
            .iter()
            .filter_map(|l| l["seq"].as_u64())
            .collect()
    };
    assert_eq!(seqs(&["--subject", "orders.eu.>"]), [2, 4, 6, 8, 10]);
    assert_eq!(seqs(&["--from-seq", "8"]), [8, 9, 10]);
    assert_eq!(seqs(&["--from-seq", "3", "--to-seq", "5"]), [3, 4, 5]);
    assert_eq!(
        seqs(&["--subject", "orders.us.>", "--to-seq", "6"]),
        [1, 3, 5]
    );
    assert_eq!(seqs(&["--since", "1h"]).len(), 10);
    assert!(seqs(&["--since", "2200-01-01T00:00:00Z"]).is_empty());
    assert!(seqs(&["--subject", "orders.nothing"]).is_empty());
}

#[test]

fn replay_of_binary_data_is_base64() {
    let (_server, url) = server_with_orders(0);
    block_on(async {
        let js = js(&url).await;
        js.publish("orders.bin", vec![0xffu8, 0x00].into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    });
    let lines = jetlog_at(&url, &["replay", "ORDERS", "--json"]).json_lines();
    assert_eq!(lines[0]["data_base64"], "/wA=");
}

#[test]

fn replay_follow_reads_new_events_up_to_to_seq() {
    let (_server, url) = server_with_orders(2);
    let follower = Listening::start_now(
        &url,
        &["replay", "ORDERS", "--follow", "--to-seq", "4", "--json"],
    );
    std::thread::sleep(Duration::from_millis(500));
    block_on(async {
        let js = js(&url).await;
        for i in 3..=4 {
            js.publish(format!("orders.new.{i}"), "late".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    });
    let seqs: Vec<_> = follower
        .finish()
        .json_lines()
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// Pause and resume (nats-server 2.11+, so against jetlog only).
#[test]
fn pause_for_a_while_then_resume() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["stream", "add", "ORDERS", "--subjects", "orders.>"]).ok();
    jetlog_at(&url, &["consumer", "add", "ORDERS", "C"]).ok();
    let out = jetlog_at(&url, &["consumer", "pause", "ORDERS", "C", "--for", "1d"]);
    assert!(
        out.ok()
            .starts_with("consumer C of stream ORDERS paused until "),
        "{}",
        out.ok()
    );
    let json = jetlog_at(&url, &["consumer", "info", "ORDERS", "C", "--json"]).json();
    assert_eq!(json["paused"], true, "{json}");
    let until = jetlog_at(
        &url,
        &[
            "consumer",
            "pause",
            "ORDERS",
            "C",
            "--until",
            "2030-01-01T00:00:00Z",
            "--json",
        ],
    )
    .json();
    assert_eq!(until["pause_until"], "2030-01-01T00:00:00Z", "{until}");
    jetlog_at(
        &url,
        &["consumer", "pause", "ORDERS", "C", "--until", "soon"],
    )
    .fails_with("invalid time");
    let neither = jetlog_at(&url, &["consumer", "pause", "ORDERS", "C"]);
    assert_eq!(
        neither.code,
        Some(1),
        "clap asks for --for or --until: {neither:#?}"
    );
    assert!(neither.stderr.contains("--for"), "{neither:#?}");
    let out = jetlog_at(&url, &["consumer", "resume", "ORDERS", "C"]);
    assert_eq!(out.ok(), "consumer C of stream ORDERS resumed\n");
    let json = jetlog_at(&url, &["consumer", "info", "ORDERS", "C", "--json"]).json();
    assert!(
        json.get("paused").is_none() || json["paused"] == false,
        "{json}"
    );
}

#[test]
fn report_shows_each_consumers_progress() {
    let (_server, url) = server_with_orders(4);
    jetlog_at(&url, &["consumer", "add", "ORDERS", "W"]).ok();
    jetlog_at(&url, &["consumer", "add", "ORDERS", "IDLE"]).ok();
    jetlog_at(&url, &["consumer", "next", "ORDERS", "W", "--count", "2"]).ok();
    jetlog_at(&url, &["consumer", "next", "ORDERS", "W", "--no-ack"]).ok();
    let rows = jetlog_at(&url, &["consumer", "report", "ORDERS", "--json"]).json();
    assert_eq!(rows[0]["name"], "IDLE");
    assert_eq!(rows[0]["num_pending"], 4);
    assert_eq!(rows[1]["name"], "W");
    assert_eq!(rows[1]["ack_floor_stream_seq"], 2);
    assert_eq!(rows[1]["num_ack_pending"], 1);
    assert_eq!(rows[1]["num_pending"], 1);
    let text = jetlog_at(&url, &["consumer", "report", "ORDERS"])
        .ok()
        .to_string();
    assert!(
        text.contains("Ack Pending") && text.contains("IDLE"),
        "{text}"
    );
    jetlog_at(&url, &["consumer", "report", "NOPE"]).fails_with("10059");
}

#[test]
fn edit_changes_only_the_settings_given() {
    let (_server, url) = server_with_orders(2);
    jetlog_at(
        &url,
        &[
            "consumer",
            "add",
            "ORDERS",
            "W",
            "--ack-wait",
            "30s",
            "--max-deliver",
            "5",
        ],
    )
    .ok();
    let out = jetlog_at(
        &url,
        &[
            "consumer",
            "edit",
            "ORDERS",
            "W",
            "--ack-wait",
            "1m",
            "--max-ack-pending",
            "50",
            "--description",
            "workers",
        ],
    )
    .ok()
    .to_string();
    assert!(out.contains("consumer W of stream ORDERS updated"), "{out}");
    let info = consumer_info(&url, "W");
    assert_eq!(info.config.ack_wait, Duration::from_secs(60));
    assert_eq!(info.config.max_ack_pending, 50);
    assert_eq!(info.config.description.as_deref(), Some("workers"));
    assert_eq!(info.config.max_deliver, 5, "kept");
    jetlog_at(&url, &["consumer", "edit", "ORDERS", "W"]).fails_with("nothing to change");
    jetlog_at(
        &url,
        &["consumer", "edit", "ORDERS", "NOPE", "--max-deliver", "3"],
    )
    .fails_with("10014");
}
