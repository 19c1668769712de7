//! Helpers for the tests of replicated (R3) streams: the stream ORDERS on `orders.>`,
//! publishes with message ids that retry across leader changes, and waits on the replicas.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};

use super::js_cluster::{api, until_answered, META_READY};
use super::monitor::get_json;
use super::TestServer;

/// Publishes `from..to` with message ids through `js`, retrying one whose ack did not come
/// (a leader change); returns the acknowledged sequences.
pub async fn publish_range(js: &jetstream::Context, from: u64, to: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for n in from..to {
        let deadline = Instant::now() + META_READY;
        loop {
            let headers = {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", format!("m{n}").as_str());
                h
            };
            let sent = js
                .publish_with_headers(format!("orders.{}", n % 3), headers, format!("{n}").into())
                .await;
            let acked = match sent {
                Ok(ack) => {
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        std::future::IntoFuture::into_future(ack),
                    )
                    .await
                }
                Err(_) => break,
            };
            if let Ok(Ok(ack)) = acked {
                assert_eq!(ack.stream, "ORDERS");
                seqs.push(ack.sequence);
                break;
            }
            assert!(Instant::now() < deadline, "message {n} never acknowledged");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    seqs
}

/// An R3 stream ORDERS on `orders.>`, made through `client`.
pub async fn create_orders(client: &async_nats::Client) {
    let created = api(
        client,
        "$JS.API.STREAM.CREATE.ORDERS",
        json!({"name": "ORDERS", "subjects": ["orders.>"], "num_replicas": 3}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
}

/// A count from a server's own `/jsz`: the messages its replicas hold, or its streams.
pub fn jsz_count(server: &TestServer, what: &str) -> u64 {
    let port = server.monitor_port().expect("monitor");
    get_json(port, "/jsz")[what].as_u64().unwrap_or(0)
}

/// Waits (bounded) until the server's `/healthz` body says `what`.
pub fn wait_for_health(server: &TestServer, what: &str) {
    let port = server.monitor_port().expect("monitor");
    let deadline = Instant::now() + Duration::from_secs(9);
    loop {
        let (_, _, body) = super::monitor::get(port, "/healthz");
        if body.contains(what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz says {body}, not {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The messages a live server's own replica holds.
pub fn replica_messages(server: &TestServer) -> u64 {
    jsz_count(server, "messages")
}

pub fn wait_for_replicas(servers: &[TestServer], want: u64) {
    let deadline = Instant::now() + META_READY;
    for server in servers {
        while replica_messages(server) != want {
            assert!(
                Instant::now() < deadline,
                "a replica holds {} of {want}",
                replica_messages(server)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Steps ORDERS's leader `from` down and waits (bounded) until another leads; its name.
pub async fn step_down(client: &async_nats::Client, from: &str) -> String {
    let stepped = api(client, "$JS.API.STREAM.LEADER.STEPDOWN.ORDERS", json!({})).await;
    assert_eq!(stepped["success"], true, "{stepped}");
    let deadline = Instant::now() + META_READY;
    loop {
        let now = info(client).await;
        let current = now["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !current.is_empty() && current != from {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "the leadership never moved: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Hands ORDERS's leadership to server `to` (`placement.preferred`), unless it leads
/// already, and waits (bounded) until it leads.
pub async fn step_down_to(client: &async_nats::Client, to: &str) {
    step_down_stream_to(client, "ORDERS", to).await;
}

/// [`step_down_to`] for `stream`.
pub async fn step_down_stream_to(client: &async_nats::Client, stream: &str, to: &str) {
    let info = format!("$JS.API.STREAM.INFO.{stream}");
    if until_answered(client, &info, json!({})).await["cluster"]["leader"] == to {
        return;
    }
    let body = json!({"placement": {"preferred": to}});
    let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
    let stepped = api(client, &subject, body).await;
    assert_eq!(stepped["success"], true, "{stepped}");
    let deadline = Instant::now() + META_READY;
    while until_answered(client, &info, json!({})).await["cluster"]["leader"] != to {
        assert!(
            Instant::now() < deadline,
            "{to} never came to lead {stream}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn info(client: &async_nats::Client) -> Value {
    until_answered(client, "$JS.API.STREAM.INFO.ORDERS", json!({})).await
}

/// Acknowledges `msg` with AckSync and waits (at most 3 s) for the server's answer.
/// async-nats's `double_ack` takes any message on its inbox as the answer, the "503 no
/// responders" status too: while a stream changes leader, nobody subscribes the ack subject
/// for a moment, and an ack that reached no one looked answered (which made the fault
/// harness count messages "acknowledged, then delivered again"). A request tells them apart.
pub async fn ack_sync(msg: &jetstream::Message) -> Result<(), String> {
    let reply = msg.reply.clone().ok_or("not a JetStream message")?;
    let client = msg.context.client();
    let asked = client.request(reply, bytes::Bytes::from_static(b"+ACK"));
    match tokio::time::timeout(Duration::from_secs(3), asked).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

/// Pulls until `want` messages have come (bounded), acknowledging each with AckSync;
/// returns their stream sequences in delivery order.
pub async fn pull_and_ack(consumer: &PullConsumer, want: usize) -> Vec<u64> {
    let deadline = Instant::now() + META_READY;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(Instant::now() < deadline, "only {got:?} came");
        let Ok(mut batch) = consumer
            .batch()
            .max_messages(want - got.len())
            .expires(Duration::from_secs(3))
            .messages()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(msg)) = batch.next().await {
            let seq = msg.info().expect("a JetStream message").stream_sequence;
            if ack_sync(&msg).await.is_ok() {
                got.push(seq);
            }
        }
    }
    got
}

/// Creates pull durable `name` of `stream` with the default config.
pub async fn create_durable(js: &jetstream::Context, stream: &str, name: &str) -> PullConsumer {
    create_durable_with(js, stream, name, Default::default()).await
}

/// Creates pull durable `name` of `stream` with `config` (its name set here).
pub async fn create_durable_with(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    config: jetstream::consumer::pull::Config,
) -> PullConsumer {
    js.get_stream(stream)
        .await
        .expect("stream")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(name.into()),
            ..config
        })
        .await
        .expect("consumer")
}

/// A new pull durable `name` of `stream` with the default config, once its stream's leader
/// answers for it (bounded).
pub async fn new_durable(js: &jetstream::Context, stream: &str, name: &str) -> PullConsumer {
    create_durable(js, stream, name).await;
    durable_of(js, stream, name).await
}

/// Durable `name` of `stream`, once its stream's leader answers (bounded).
pub async fn durable_of(js: &jetstream::Context, stream: &str, name: &str) -> PullConsumer {
    let deadline = Instant::now() + META_READY;
    loop {
        let found = async {
            js.get_stream(stream)
                .await
                .ok()?
                .get_consumer(name)
                .await
                .ok()
        };
        if let Ok(Some(consumer)) = tokio::time::timeout(Duration::from_secs(3), found).await {
            return consumer;
        }
        assert!(Instant::now() < deadline, "consumer {name} never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of the message at `seq` of `stream`, read through its leader.
pub async fn stored_body(client: &async_nats::Client, stream: &str, seq: u64) -> Vec<u8> {
    let subject = format!("$JS.API.STREAM.MSG.GET.{stream}");
    let got = until_answered(client, &subject, json!({ "seq": seq })).await;
    let data = got["message"]["data"].as_str().expect("data");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
}

/// Where server `name` stands in `cluster()`'s list: its servers are S0, S1 and S2, in order.
pub fn server_index(name: &str) -> usize {
    name.strip_prefix('S')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a cluster server's name: {name:?}"))
}

/// Starts cluster member `name` again on its `store`, routed to `seed`, with monitoring on,
/// as `cluster()` started it.
pub fn restart_member(name: &str, seed: Option<&str>, store: tempfile::TempDir) -> TestServer {
    let args = super::cluster::member_args(name, seed);
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["-m", "-1"])
        .collect();
    TestServer::start_in(store, &args)
}

/// Kills (kill -9) a server of `cluster()` that does not lead `stream`: its place in the
/// list, its name and its store, for the restart.
pub async fn kill_a_follower(
    servers: &mut Vec<TestServer>,
    client: &async_nats::Client,
    stream: &str,
) -> (usize, String, tempfile::TempDir) {
    let subject = format!("$JS.API.STREAM.INFO.{stream}");
    let info = until_answered(client, &subject, json!({})).await;
    let leader = info["cluster"]["leader"].as_str().expect("leader");
    let down = (0..3)
        .find(|i| *i != server_index(leader))
        .expect("a follower");
    let store = servers.remove(down).kill_and_take_store();
    (down, format!("S{down}"), store)
}

/// Waits (bounded) until `server` logs that it caught up from a snapshot.
pub async fn until_caught_up(server: &TestServer) {
    let deadline = Instant::now() + META_READY;
    while !server.log_contains("caught up") {
        assert!(
            Instant::now() < deadline,
            "never caught up from a snapshot: {:#?}",
            server.log_lines()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
