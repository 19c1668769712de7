//! Streams with sources on the same server (docs/sources-facts.md): new sequences with the
//! `Nats-Stream-Source` header, filters and transforms, own publishes mixed in, dedup across
//! sources, positions that survive kill -9 and a purge, sources added, removed and re-added
//! by update, an origin deleted and created anew, and the config errors nats-server gives.
//! Workqueue and interest origins: `js_origin_holds.rs`.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::Client;
use common::js_consumer::{call, call_raw, connect, create_stream as create, error};
use common::{within, TestServer};
use serde_json::{json, Value};

/// How long a source may take to catch up in these tests (it is fed every 50 ms).
const CATCH_UP: Duration = Duration::from_secs(20);

async fn publish(client: &Client, subject: &str, count: u64, id_prefix: Option<&str>) {
    let js = jetstream::new(client.clone());
    let mut acks = Vec::new();
    for i in 0..count {
        let mut headers = async_nats::HeaderMap::new();
        // The stream is the subject's first token in capitals (`o.a` is O's).
        let stream = subject[..1].to_uppercase();
        headers.insert("Nats-Expected-Stream", stream.as_str());
        if let Some(prefix) = id_prefix {
            headers.insert("Nats-Msg-Id", format!("{prefix}{i}").as_str());
        }
        let payload = format!("{subject}:{i}").into();
        acks.push(
            js.publish_with_headers(subject.to_string(), headers, payload)
                .await
                .expect("publish"),
        );
        if acks.len() == 256 || i + 1 == count {
            for ack in acks.drain(..) {
                within("ack", ack.into_future()).await.expect("stored");
            }
        }
    }
}

async fn info(client: &Client, name: &str) -> Value {
    call_raw(client, &format!("$JS.API.STREAM.INFO.{name}"), "").await
}

/// Waits until the stream holds `count` messages; its info.
async fn holds(client: &Client, name: &str, count: u64) -> Value {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let info = info(client, name).await;
        if info["state"]["messages"] == count {
            return info;
        }
        assert!(Instant::now() < deadline, "{name} stuck at {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Subject, payload and headers of the message at `seq`.
async fn message(client: &Client, stream: &str, seq: u64) -> (String, String, String) {
    let got = call(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        json!({ "seq": seq }),
    )
    .await;
    let decode = |field: &str| {
        let text = got["message"][field].as_str().unwrap_or("");
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
            .expect("base64");
        String::from_utf8(bytes).expect("utf-8")
    };
    let subject = got["message"]["subject"].as_str().unwrap_or("").to_string();
    (subject, decode("data"), decode("hdrs"))
}

/// nats-server's identity of a stream: the first 8 bytes of SHA-256 of its creation time as
/// INFO shows it, each as one of 62 letters and digits.
fn ident_of(created: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = ring::digest::digest(&ring::digest::SHA256, created.as_bytes());
    let hash = digest.as_ref()[..8].iter();
    hash.map(|b| DIGITS[usize::from(*b) % 62] as char).collect()
}

/// The `Nats-Stream-Source` header's value.
fn source_header(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("Nats-Stream-Source: "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn sources_copy_at_new_sequences_with_their_header() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    create(&client, "P", json!({"subjects": ["p.>"]})).await;
    publish(&client, "o.a", 3, None).await;
    publish(&client, "p.a", 2, None).await;
    let made = create(
        &client,
        "T",
        json!({"subjects": ["t.>"], "sources": [
            {"name": "O"},
            {"name": "P", "subject_transforms": [{"src": "p.*", "dest": "q.{{wildcard(1)}}"}]},
        ]}),
    )
    .await;
    assert_eq!(
        made["sources"][0],
        json!({"name": "O", "lag": 0, "active": -1})
    );
    assert!(made["config"].get("duplicate_window").is_none(), "{made}");
    publish(&client, "t.own", 1, None).await;
    let origin_created = info(&client, "O").await["created"]
        .as_str()
        .expect("created")
        .to_string();
    let full = holds(&client, "T", 6).await;
    let entries = full["sources"].as_array().expect("sources");
    assert_eq!(entries[0]["name"], "O");
    assert_eq!(entries[0]["seq"], 3);
    assert_eq!(entries[0]["lag"], 0);
    assert!(
        entries[0]["active"].as_i64().is_some_and(|a| a >= 0),
        "{full}"
    );
    assert_eq!(
        entries[1]["subject_transforms"],
        json!([{"src": "p.*", "dest": "q.{{wildcard(1)}}"}])
    );
    let mut seen = Vec::new();
    for seq in 1..=6 {
        let (subject, data, headers) = message(&client, "T", seq).await;
        // A sourced message loses its publisher's expectations; an own publish keeps them.
        assert_eq!(
            headers.contains("Nats-Expected"),
            subject == "t.own",
            "{headers}"
        );
        let header = source_header(&headers);
        let fields: Vec<&str> = header.split(' ').collect();
        seen.push((subject.clone(), data.clone()));
        match subject.as_str() {
            "t.own" => assert_eq!(header, ""),
            "o.a" => {
                let i: u64 = data["o.a:".len()..].parse().expect("index");
                let origin_seq = (i + 1).to_string();
                assert_eq!(fields[..5], ["O", origin_seq.as_str(), ">", ">", "o.a"]);
                assert_eq!(fields[5], ident_of(&origin_created), "{header}");
            }
            "q.a" => {
                let i: u64 = data["p.a:".len()..].parse().expect("index");
                let origin_seq = (i + 1).to_string();
                let want = ["P", origin_seq.as_str(), "p.*", "q.{{wildcard(1)}}", "p.a"];
                assert_eq!(fields[..5], want);
            }
            other => panic!("unexpected subject {other}"),
        }
    }
    assert_eq!(
        seen.iter().filter(|(s, _)| s == "o.a").count(),
        3,
        "{seen:?}"
    );
    // A publisher may not forge the header.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Stream-Source", "O 99 > > o.a");
    let forged = client
        .request_with_headers("t.x", headers, "x".into())
        .await
        .expect("reply");
    let forged: Value = serde_json::from_slice(&forged.payload).expect("json");
    assert_eq!(
        forged["error"],
        error(400, 10227, "message stream source header is not allowed")
    );
}

#[tokio::test]
async fn duplicates_across_sources_are_dropped_within_the_window() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    create(&client, "P", json!({"subjects": ["p.>"]})).await;
    publish(&client, "o.a", 5, Some("id")).await;
    publish(&client, "p.a", 5, Some("id")).await;
    create(
        &client,
        "D",
        json!({"duplicate_window": 60_000_000_000u64, "sources": [{"name": "O"}, {"name": "P"}]}),
    )
    .await;
    holds(&client, "D", 5).await;
    // Both sources have read everything: the second copy of each id was dropped.
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let now = info(&client, "D").await;
        let seqs: Vec<Value> = now["sources"]
            .as_array()
            .map(|a| a.iter().map(|s| s["seq"].clone()).collect())
            .unwrap_or_default();
        if seqs == [json!(5), json!(5)] {
            assert_eq!(now["state"]["messages"], 5, "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn without_a_window_the_same_id_is_stored_from_each_source() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    create(&client, "P", json!({"subjects": ["p.>"]})).await;
    publish(&client, "o.a", 5, Some("id")).await;
    publish(&client, "p.a", 5, Some("id")).await;
    let made = create(
        &client,
        "ND",
        json!({"sources": [{"name": "O"}, {"name": "P"}]}),
    )
    .await;
    assert!(made["config"].get("duplicate_window").is_none(), "{made}");
    holds(&client, "ND", 10).await;
}

#[tokio::test]
async fn a_refused_message_is_retried_and_nothing_after_it_is_copied_twice() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.a", 2, None).await;
    publish(&client, "o.b", 1, None).await;
    // One message per subject, new ones refused: origin 2 (o.a again) is refused, and 3
    // (o.b), which would fit, waits behind it as in nats-server.
    let config = json!({"sources": [{"name": "O"}], "max_msgs_per_subject": 1,
        "discard": "new", "discard_new_per_subject": true});
    create(&client, "T", config).await;
    holds(&client, "T", 1).await;
    // Two retries later nothing more has come in, and nothing twice.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let stuck = info(&client, "T").await;
    assert_eq!(stuck["state"]["messages"], 1, "{stuck}");
    assert_eq!(stuck["state"]["last_seq"], 1, "{stuck}");
    // Room again: origin 2 and 3 come at the next try, once each.
    call(&client, "$JS.API.STREAM.MSG.DELETE.T", json!({"seq": 1})).await;
    let done = holds(&client, "T", 2).await;
    assert_eq!(done["state"]["last_seq"], 3, "{done}");
    let mut origin_seqs = Vec::new();
    for seq in 2..=3 {
        let (_, _, headers) = message(&client, "T", seq).await;
        let header = source_header(&headers);
        origin_seqs.push(header.split(' ').nth(1).unwrap_or("").to_string());
    }
    assert_eq!(origin_seqs, ["2", "3"]);
}

#[tokio::test]
async fn a_source_killed_during_its_catch_up_loses_and_repeats_nothing() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.x", 30_000, None).await;
    create(&client, "T", json!({"sources": [{"name": "O"}]})).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let done = holds(&client, "T", 30_000).await;
    assert_eq!(done["sources"][0]["seq"], 30_000);
    for seq in [1, 15_000, 30_000] {
        let (_, data, headers) = message(&client, "T", seq).await;
        assert_eq!(data, format!("o.x:{}", seq - 1));
        assert!(source_header(&headers).starts_with(&format!("O {seq} > > o.x ")));
    }
    // After a purge and a restart the positions stand: nothing is copied again.
    call(&client, "$JS.API.STREAM.PURGE.T", json!({})).await;
    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    publish(&client, "o.x", 1, None).await;
    let after = holds(&client, "T", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(info(&client, "T").await["state"]["messages"], 1, "{after}");
}

#[tokio::test]
async fn sources_added_removed_and_re_added_by_update() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    create(&client, "P", json!({"subjects": ["p.>"]})).await;
    publish(&client, "o.a", 6, None).await;
    publish(&client, "p.a", 2, None).await;
    create(&client, "T", json!({"sources": [{"name": "O"}]})).await;
    holds(&client, "T", 6).await;
    let update = |sources: Value| {
        let client = client.clone();
        async move {
            call(
                &client,
                "$JS.API.STREAM.UPDATE.T",
                json!({"name": "T", "sources": sources}),
            )
            .await
        }
    };
    let added = update(json!([{"name": "O"}, {"name": "P"}])).await;
    assert!(added["error"].is_null(), "{added}");
    holds(&client, "T", 8).await;
    update(json!([{"name": "P"}])).await;
    publish(&client, "o.a", 2, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(info(&client, "T").await["state"]["messages"], 8);
    // Re-added, O resumes after the last message it had stored: only the two new ones come.
    update(json!([{"name": "P"}, {"name": "O"}])).await;
    holds(&client, "T", 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = info(&client, "T").await;
    assert_eq!(done["state"]["messages"], 10, "{done}");
    let (_, data, _) = message(&client, "T", 10).await;
    assert_eq!(data, "o.a:1");
}

#[tokio::test]
async fn an_origin_created_anew_is_read_from_its_start() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "T", json!({"sources": [{"name": "O"}]})).await;
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let waiting = info(&client, "T").await;
        if !waiting["sources"][0]["error"].is_null() {
            assert_eq!(
                waiting["sources"][0]["error"],
                error(404, 10059, "stream not found")
            );
            break;
        }
        assert!(Instant::now() < deadline, "{waiting}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.a", 3, None).await;
    holds(&client, "T", 3).await;
    call(&client, "$JS.API.STREAM.DELETE.O", json!({})).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.b", 2, None).await;
    holds(&client, "T", 5).await;
    let (subject, _, headers) = message(&client, "T", 4).await;
    assert_eq!(subject, "o.b");
    assert!(
        source_header(&headers).starts_with("O 1 > > o.b "),
        "{headers}"
    );
}

#[tokio::test]
async fn source_configs_get_nats_servers_errors() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(
        &client,
        "O",
        json!({"subjects": ["o.>"], "max_msg_size": 1024}),
    )
    .await;
    let cases = [
        (
            json!({"sources": [{"name": "O"}], "allow_msg_schedules": true}),
            error(400, 10187, "stream source can not also schedule messages"),
        ),
        (
            json!({"sources": [{"name": "a.b"}]}),
            error(400, 10141, "sourced stream name is invalid"),
        ),
        (
            json!({"sources": [null]}),
            error(400, 10141, "sourced stream name is invalid"),
        ),
        (
            json!({"sources": [{"name": null}]}),
            error(400, 10141, "sourced stream name is invalid"),
        ),
        (
            json!({"sources": [{"name": "O"}, {"name": "O", "filter_subject": ">"}]}),
            error(400, 10140, "duplicate source configuration detected"),
        ),
        (
            json!({"sources": [{"name": "O", "filter_subject": "o.a",
                    "subject_transforms": [{"src": "o.a", "dest": "t.a"}]}]}),
            error(
                400,
                10144,
                "source with multiple subject transforms cannot also have a single subject filter",
            ),
        ),
        (
            json!({"sources": [{"name": "O", "subject_transforms": [{"src": "o..b", "dest": "x"}]}]}),
            error(400, 10145, "source transform source: invalid subject o..b"),
        ),
        (
            json!({"sources": [{"name": "O", "subject_transforms": [
                {"src": "o.*", "dest": "t.a"}, {"src": "o.a", "dest": "t.b"}]}]}),
            error(400, 10147, "source filters can not overlap"),
        ),
        (
            json!({"sources": [{"name": "O"}], "max_msg_size": 10}),
            error(
                400,
                10046,
                "stream source must have max message size >= target",
            ),
        ),
        (
            json!({"mirror": {"name": "O"}, "max_msg_size": 10}),
            error(
                400,
                10030,
                "stream mirror must have max message size >= source",
            ),
        ),
        (
            json!({"sources": [{"name": "T"}]}),
            error(500, 10052, "detected cycle"),
        ),
        (
            json!({"sources": [{"name": "O", "filter_subject": "o..a"}]}),
            error(
                500,
                10049,
                "subject filter 'o..a' for the source: invalid subject",
            ),
        ),
        (
            json!({"sources": [{"name": "O", "opt_start_time": "yesterday"}]}),
            error(
                400,
                10025,
                "invalid JSON: opt_start_time \"yesterday\" is not an RFC 3339 time",
            ),
        ),
        (
            json!({"mirror": {"name": "O"}, "sources": [{"name": "O"}]}),
            error(
                400,
                10031,
                "stream mirrors can not also contain other sources",
            ),
        ),
    ];
    for (config, want) in cases {
        let made = create(&client, "T", config.clone()).await;
        assert_eq!(made["error"], want, "{config}");
    }
    let dest = create(
        &client,
        "T",
        json!({"sources": [{"name": "O", "subject_transforms": [{"src": "o.*", "dest": "t.$3"}]}]}),
    )
    .await;
    assert_eq!(dest["error"]["err_code"], 10146, "{dest}");
    // A cycle through another stream: B takes A, then A is made to take B.
    create(&client, "A", json!({"subjects": ["a.>"]})).await;
    create(
        &client,
        "B",
        json!({"subjects": ["b.>"], "sources": [{"name": "A"}]}),
    )
    .await;
    let cycle = call(
        &client,
        "$JS.API.STREAM.UPDATE.A",
        json!({"name": "A", "subjects": ["a.>"], "sources": [{"name": "B"}]}),
    )
    .await;
    assert_eq!(cycle["error"], error(500, 10052, "detected cycle"));
    // External prefixes in nats-server's words (tests/js_sources_external.rs runs them).
    let prefixes = [
        (
            json!({"api": "$JS.hub.API", "deliver": "d.*"}),
            error(
                400,
                10024,
                "stream external delivery prefix d.* must not contain wildcards",
            ),
        ),
        (
            json!({"api": "$JS.x.*"}),
            error(
                500,
                10052,
                "stream external api prefix \"$JS.x.*\" must be a valid subject without wildcards",
            ),
        ),
        (
            json!({"api": "$JS.API"}),
            error(
                400,
                10021,
                "stream external api prefix $JS.API must not overlap with $JS.API",
            ),
        ),
    ];
    for (external, expected) in prefixes {
        let refused = create(
            &client,
            "T",
            json!({"sources": [{"name": "O", "external": external}]}),
        )
        .await;
        assert_eq!(refused["error"], expected, "{external}");
    }
}

#[tokio::test]
async fn async_nats_reads_a_sourced_streams_info() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.a", 4, None).await;
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            name: "AGG".into(),
            sources: Some(vec![jetstream::stream::Source {
                name: "O".into(),
                filter_subject: Some("o.a".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .await
        .expect("create");
    holds(&client, "AGG", 4).await;
    // A consumer filters on the origin's subjects, which the stream stores but does not list.
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("C".into()),
            filter_subject: "o.a".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(4)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut got = 0;
    while let Some(m) = within("message", futures::StreamExt::next(&mut batch)).await {
        m.expect("message").ack().await.expect("ack");
        got += 1;
    }
    assert_eq!(got, 4);
    let info = stream.info().await.expect("info");
    assert_eq!(info.sources.len(), 1);
    assert_eq!(info.sources[0].name, "O");
    assert_eq!(info.sources[0].filter_subject.as_deref(), Some("o.a"));
    assert!(info.sources[0].active.is_some());
}

/// The `sources.state` file under a store.
fn state_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "sources.state") {
            return Some(path);
        }
        if path.is_dir() {
            if let Some(found) = state_file(&path) {
                return Some(found);
            }
        }
    }
    None
}

#[tokio::test]
async fn positions_come_from_the_headers_when_the_state_file_is_stale_wrong_or_gone() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.x", 3000, None).await;
    create(&client, "T", json!({"sources": [{"name": "O"}]})).await;
    holds(&client, "T", 3000).await;
    drop(client);
    let mut store = server.kill_and_take_store();
    let file = state_file(store.path()).expect("sources.state");
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["valid_to"], 3000, "{saved}");
    let (iname, position) = saved["sources"]
        .as_object()
        .and_then(|m| m.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("one source");
    assert_eq!(position[0], 3001, "{saved}");
    let ident = position[1].clone();
    // Written before the last copies (a kill between the log's sync and the file's write),
    // written for a longer log than there is, and not there at all: each time the headers
    // put the source at 3001, and nothing is copied twice.
    let stale = json!({"valid_to": 100, "sources": {iname.clone(): [101, ident.clone()]}});
    let ahead = json!({"valid_to": 9999, "sources": {iname: [1, ident]}});
    for damage in [Some(stale), Some(ahead), None] {
        match &damage {
            Some(state) => std::fs::write(&file, state.to_string()).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let server = TestServer::start_in(store, &[]);
        let client = connect(&server).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = info(&client, "T").await;
        assert_eq!(now["state"]["messages"], 3000, "after {damage:?}: {now}");
        assert_eq!(now["sources"][0]["seq"], 3000, "after {damage:?}: {now}");
        drop(client);
        store = server.kill_and_take_store();
    }
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    publish(&client, "o.x", 1, None).await;
    holds(&client, "T", 3001).await;
    let (_, _, headers) = message(&client, "T", 3001).await;
    assert!(
        source_header(&headers).starts_with("O 3001 > > o.x "),
        "{headers}"
    );
}
