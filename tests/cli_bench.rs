//! `jetlog bench`, run as a process against a real jetlog server, with small message counts.

mod cli_support;
mod common;

use std::collections::BTreeMap;

use cli_support::{jetlog_at, stream_info, unreachable_url};
use common::TestServer;

/// The keys of the final line, in their stable order.
const KEYS: [&str; 12] = [
    "bench",
    "sync",
    "pubs",
    "subs",
    "msgs",
    "received",
    "size",
    "secs",
    "msgs_per_s",
    "mb_per_s",
    "p50_us",
    "p99_us",
];

/// Parses the last stdout line as `key=value` pairs, checking the keys and their order.
fn summary(stdout: &str) -> BTreeMap<String, String> {
    let last = stdout.lines().last().expect("a summary line");
    let pairs: Vec<(String, String)> = last
        .split(' ')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, KEYS, "keys of {last:?}");
    pairs.into_iter().collect()
}

fn number(map: &BTreeMap<String, String>, key: &str) -> f64 {
    map[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {map:?}"))
}

#[test]
fn core_pub_sub_counts_every_message() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let args = [
        "bench",
        "demo.core",
        "--pub",
        "2",
        "--sub",
        "2",
        "--msgs",
        "1000",
        "--size",
        "16",
    ];
    let run = jetlog_at(&url, &args);
    let out = summary(run.ok());
    assert_eq!(out["bench"], "core");
    assert_eq!(out["sync"], "false");
    assert_eq!((out["pubs"].as_str(), out["subs"].as_str()), ("2", "2"));
    // Each subscriber received every publisher's messages.
    assert_eq!(
        (out["msgs"].as_str(), out["received"].as_str()),
        ("2000", "4000")
    );
    assert_eq!(out["size"], "16");
    assert!(number(&out, "msgs_per_s") > 0.0);
    assert!(number(&out, "mb_per_s") >= 0.0);
    assert_eq!((out["p50_us"].as_str(), out["p99_us"].as_str()), ("-", "-"));
    assert!(run.stdout.contains("pub stats:") && run.stdout.contains("sub stats:"));
    // Not a terminal: no progress line on stderr.
    assert_eq!(run.stderr, "");
}

#[test]
fn request_reply_measures_latency() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let run = jetlog_at(
        &url,
        &[
            "bench",
            "svc.echo",
            "--request",
            "--pub",
            "2",
            "--sub",
            "2",
            "--msgs",
            "200",
        ],
    );
    let out = summary(run.ok());
    assert_eq!(out["bench"], "request");
    assert_eq!(
        (out["msgs"].as_str(), out["received"].as_str()),
        ("400", "400")
    );
    let (p50, p99) = (number(&out, "p50_us"), number(&out, "p99_us"));
    assert!(p50 > 0.0 && p50 <= p99, "{out:?}");
    assert!(run.stdout.contains("latency: min "));
}

#[test]
fn js_async_publish_stores_every_message() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let run = jetlog_at(
        &url,
        &[
            "bench",
            "bench.js",
            "--js",
            "--msgs",
            "2000",
            "--size",
            "64",
            "--async-window",
            "100",
        ],
    );
    let out = summary(run.ok());
    assert_eq!(
        (out["bench"].as_str(), out["sync"].as_str()),
        ("jspub", "false")
    );
    assert_eq!((out["msgs"].as_str(), out["size"].as_str()), ("2000", "64"));
    assert_eq!(out["p50_us"], "-");
    let info = stream_info(&url, "benchstream");
    assert_eq!(info.config.subjects, vec!["bench.js".to_string()]);
    assert_eq!(
        (info.state.messages, info.state.bytes > 2000 * 64),
        (2000, true)
    );
    // A second run reuses the stream.
    jetlog_at(
        &url,
        &["bench", "bench.js", "--js", "--msgs", "10", "--pub", "2"],
    )
    .ok();
    assert_eq!(stream_info(&url, "benchstream").state.messages, 2020);
}

#[test]
fn js_sync_publish_measures_ack_latency() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let run = jetlog_at(
        &url,
        &[
            "bench", "sync.x", "--js", "--sync", "--stream", "SYNC", "--msgs", "300",
        ],
    );
    let out = summary(run.ok());
    assert_eq!(
        (out["bench"].as_str(), out["sync"].as_str()),
        ("jspub", "true")
    );
    assert!(number(&out, "p50_us") > 0.0 && number(&out, "p99_us") >= number(&out, "p50_us"));
    assert_eq!(stream_info(&url, "SYNC").state.messages, 300);
}

#[test]
fn pull_and_push_consume_what_the_stream_holds() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let fill = [
        "bench",
        "orders.new",
        "--js",
        "--stream",
        "ORDERS",
        "--msgs",
        "1000",
        "--size",
        "32",
    ];
    jetlog_at(&url, &fill).ok();
    for (mode, subs) in [
        ("--pull", "1"),
        ("--pull", "2"),
        ("--push", "1"),
        ("--push", "2"),
    ] {
        let run = jetlog_at(
            &url,
            &[
                "bench",
                "orders.new",
                mode,
                "--sub",
                subs,
                "--stream",
                "ORDERS",
                "--msgs",
                "1000",
            ],
        );
        let out = summary(run.ok());
        let bench = if mode == "--pull" { "jspull" } else { "jspush" };
        assert_eq!(out["bench"], bench, "{run:?}");
        assert_eq!((out["pubs"].as_str(), out["subs"].as_str()), ("0", subs));
        assert_eq!(
            (out["msgs"].as_str(), out["received"].as_str()),
            ("1000", "1000")
        );
        assert_eq!(out["size"], "32");
        // The run's consumer is gone, and the stream is left as it was.
        let info = stream_info(&url, "ORDERS");
        assert_eq!((info.state.consumer_count, info.state.messages), (0, 1000));
    }
}

#[test]
fn csv_has_one_row_per_client() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("run.csv");
    let path_text = path.to_str().expect("utf-8 path");
    let args = [
        "bench", "csv.x", "--pub", "2", "--sub", "1", "--msgs", "500", "--size", "10", "--csv",
        path_text,
    ];
    jetlog_at(&url, &args).ok();
    let text = std::fs::read_to_string(&path).expect("csv written");
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "role",
            "client",
            "msgs",
            "bytes",
            "secs",
            "msgs_per_s",
            "mb_per_s",
            "p50_us",
            "p99_us"
        ]
    );
    let clients: Vec<(&str, &str, &str, &str)> =
        rows[1..].iter().map(|r| (r[0], r[1], r[2], r[3])).collect();
    assert_eq!(
        clients,
        [
            ("pub", "1", "500", "5000"),
            ("pub", "2", "500", "5000"),
            ("sub", "1", "1000", "10000")
        ]
    );
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(
        &url,
        &["bench", "x", "--pull", "--stream", "NOPE", "--msgs", "10"],
    )
    .fails_with("stream NOPE: stream not found");
    jetlog_at(
        &url,
        &["bench", "few", "--js", "--stream", "FEW", "--msgs", "5"],
    )
    .ok();
    jetlog_at(
        &url,
        &["bench", "few", "--push", "--stream", "FEW", "--msgs", "10"],
    )
    .fails_with("stream FEW holds 5 messages, fewer than --msgs 10");
    jetlog_at(&url, &["bench", "a.*", "--msgs", "10"]).fails_with("invalid subject \"a.*\"");
    jetlog_at(&url, &["bench", "big", "--size", "2MB", "--msgs", "1"])
        .fails_with("larger than the server's max_payload");
    jetlog_at(&url, &["bench", "x", "--js", "--sub", "1", "--msgs", "1"])
        .fails_with("--js measures publishing only");
    let dead = unreachable_url();
    let run = jetlog_at(&dead, &["bench", "x", "--msgs", "1", "--timeout", "1s"]);
    run.fails_with("cannot connect to");
    assert!(run.elapsed.as_secs() < 3, "{run:?}");
}

#[test]
fn json_gives_the_summary_keys_and_each_clients_numbers() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let run = jetlog_at(
        &url,
        &["bench", "demo.req", "--request", "--msgs", "200", "--json"],
    );
    let out = run.json();
    let keys: Vec<&str> = KEYS.to_vec();
    for key in keys {
        assert!(out.get(key).is_some(), "{key} missing: {out}");
    }
    assert_eq!(out["bench"], "request", "{out}");
    assert_eq!(out["msgs"], 200);
    assert!(
        out["p50_us"].as_u64().is_some(),
        "requests are timed: {out}"
    );
    let roles: Vec<&str> = out["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["role"].as_str().unwrap_or_default())
        .collect();
    assert!(roles.contains(&"req") && roles.contains(&"reply"), "{out}");
}

#[test]
fn natscli_bench_subcommands_run_as_natscli_names_them() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let json = |args: &[&str]| jetlog_at(&url, &[args, &["--json"][..]].concat()).json();
    let core = json(&[
        "bench",
        "pub",
        "shape.core",
        "--clients",
        "2",
        "--msgs",
        "500",
    ]);
    assert_eq!(
        (core["bench"].as_str(), core["pubs"].as_u64()),
        (Some("core"), Some(2))
    );
    assert_eq!(core["msgs"], 1000);
    // `bench sub` waits for messages published by another run.
    let sub = cli_support::Listening::start(
        &url,
        &[
            "bench",
            "sub",
            "shape.sub",
            "--clients",
            "2",
            "--msgs",
            "300",
            "--json",
        ],
    );
    jetlog_at(&url, &["bench", "pub", "shape.sub", "--msgs", "300"]).ok();
    let counted = sub.finish();
    assert_eq!(counted.json()["received"], 600, "{counted:?}");
    // `service serve` answers `service request` until it is stopped.
    let serve = cli_support::Listening::start(
        &url,
        &["bench", "service", "serve", "shape.svc", "--clients", "2"],
    );
    let requested = json(&["bench", "service", "request", "shape.svc", "--msgs", "200"]);
    assert_eq!(requested["msgs"], 200);
    assert!(requested["p50_us"].as_u64().is_some(), "{requested}");
    drop(serve);

    let js_pub = [
        "bench", "js", "pub", "async", "shape.js", "--stream", "SHAPES",
    ];
    let published = json(&[&js_pub[..], &["--msgs", "1000", "--batch", "50"]].concat());
    assert_eq!(
        (published["bench"].as_str(), published["msgs"].as_u64()),
        (Some("jspub"), Some(1000))
    );
    let sync_pub = [
        "bench", "js", "pub", "sync", "shape.js", "--stream", "SHAPES",
    ];
    let synced = json(&[&sync_pub[..], &["--msgs", "100"]].concat());
    assert_eq!(synced["sync"], true);
    assert_eq!(stream_info(&url, "SHAPES").state.messages, 1100);
    let read = ["--stream", "SHAPES", "--msgs", "1100", "--clients", "2"];
    let ordered = json(&[&["bench", "js", "ordered"][..], &read].concat());
    assert_eq!(
        (ordered["bench"].as_str(), ordered["received"].as_u64()),
        (Some("jsordered"), Some(2200))
    );
    let consumed = json(&[&["bench", "js", "consume"][..], &read].concat());
    assert_eq!(
        (consumed["bench"].as_str(), consumed["received"].as_u64()),
        (Some("jspull"), Some(1100))
    );
    let fetched = json(&[&["bench", "js", "fetch", "--batch", "50"][..], &read].concat());
    assert_eq!(fetched["received"], 1100);
    let batches = ["--msgs", "1000", "--batch", "100"];
    let atomic = [
        "bench", "js", "pub", "atomic", "shape.at", "--stream", "ATOMIC",
    ];
    let atomic = json(&[&atomic[..], &batches].concat());
    assert_eq!(
        (atomic["msgs"].as_u64(), atomic["sync"].as_bool()),
        (Some(1000), Some(true))
    );
    assert_eq!(stream_info(&url, "ATOMIC").state.messages, 1000);
    let fast = [
        "bench",
        "js",
        "pub",
        "fast",
        "shape.fa",
        "--stream",
        "FAST",
        "--clients",
        "2",
    ];
    let fast = json(&[&fast[..], &batches].concat());
    assert_eq!(fast["msgs"], 2000);
    assert_eq!(stream_info(&url, "FAST").state.messages, 2000);
    let get = [
        "bench", "js", "get", "sync", "--stream", "SHAPES", "--msgs", "300",
    ];
    let got = json(&get);
    assert_eq!(
        (got["bench"].as_str(), got["received"].as_u64()),
        (Some("jsget"), Some(300))
    );
    let batch_get = [
        "bench", "js", "get", "batch", "--stream", "SHAPES", "--msgs", "300",
    ];
    let refused = jetlog_at(&url, &batch_get);
    assert!(
        refused.stderr.contains("is allow_direct set?"),
        "{refused:?}"
    );
    jetlog_at(&url, &["stream", "edit", "SHAPES", "--allow-direct"]).ok();
    let got = json(&[&batch_get[..], &["--batch", "64"]].concat());
    assert_eq!(got["received"], 300);
    let put = json(&["bench", "kv", "put", "--clients", "2", "--msgs", "200"]);
    assert_eq!(
        (put["bench"].as_str(), put["pubs"].as_u64()),
        (Some("kv"), Some(2))
    );
    let read = json(&[
        "bench",
        "kv",
        "--bucket",
        "benchbucket",
        "get",
        "--clients",
        "2",
        "--msgs",
        "200",
    ]);
    assert_eq!(read["received"], 400);
    jetlog_at(&url, &["bench", "kv", "get", "--msgs", "500"]).fails_with("key 400 has no value");
    // natscli's flags jetlog has no function for are refused by name.
    let unknown = jetlog_at(&url, &[&js_pub[..], &["--multisubject"]].concat());
    assert_ne!(unknown.code, Some(0), "{unknown:?}");
    assert!(unknown.stderr.contains("'--multisubject'"), "{unknown:?}");
}
