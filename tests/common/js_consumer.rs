//! Helpers for the consumer feature tests (`js_consumer_pause`, `js_consumer_priority`,
//! `js_consumer_reset_pulls`): JetStream API calls through async-nats on stream `S`, pull
//! clients with their own inbox, advisories, and RFC 3339 times through jetlog's own
//! `jetstream::time`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use jetlog::jetstream::time::{format_rfc3339, parse_rfc3339};
use serde_json::{json, Value};

use super::{within, TestServer};

pub const SEC: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
pub const GROUP_NAME_ERROR: &str =
    "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters";

pub async fn call(client: &Client, subject: &str, body: Value) -> Value {
    call_raw(client, subject, body.to_string()).await
}

pub async fn call_raw(client: &Client, subject: &str, body: impl Into<Bytes>) -> Value {
    let reply = within(subject, client.request(subject.to_string(), body.into()))
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload)
        .unwrap_or_else(|e| panic!("{subject}: {e}: {:?}", reply.payload))
}

pub fn error(code: u64, err_code: u64, description: &str) -> Value {
    json!({ "code": code, "err_code": err_code, "description": description })
}

pub async fn connect(server: &TestServer) -> Client {
    within("connect", async_nats::connect(server.url()))
        .await
        .unwrap()
}

/// Connects and creates the file stream `S` on `s.>`.
pub async fn setup(server: &TestServer) -> Client {
    let client = connect(server).await;
    let created = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name":"S","subjects":["s.>"],"storage":"file"}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    client
}

/// Publishes through JetStream and returns the stream sequence.
pub async fn publish(client: &Client, subject: &str, payload: &str) -> u64 {
    let ack = call_raw(client, subject, payload.to_string()).await;
    ack["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("publish {subject}: {ack}"))
}

/// `STREAM.CREATE` of `name` with `config` (its name filled in); the reply, error or not.
pub async fn create_stream(client: &Client, name: &str, config: Value) -> Value {
    let mut config = config;
    config["name"] = json!(name);
    call(client, &format!("$JS.API.STREAM.CREATE.{name}"), config).await
}

pub async fn create(client: &Client, name: &str, config: Value) -> Value {
    call(
        client,
        &format!("$JS.API.CONSUMER.CREATE.S.{name}"),
        json!({"stream_name":"S","config":config}),
    )
    .await
}

pub async fn create_ok(client: &Client, name: &str, config: Value) -> Value {
    let reply = create(client, name, config.clone()).await;
    assert!(reply.get("error").is_none(), "create {config}: {reply}");
    reply
}

pub async fn info(client: &Client, name: &str) -> Value {
    call(
        client,
        &format!("$JS.API.CONSUMER.INFO.S.{name}"),
        json!({}),
    )
    .await
}

pub async fn info_ok(client: &Client, name: &str) -> Value {
    let reply = info(client, name).await;
    assert!(reply.get("error").is_none(), "info {name}: {reply}");
    reply
}

/// Polls CONSUMER.INFO until `num_waiting` is `n` (bounded).
pub async fn wait_for_waiting(client: &Client, name: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = info_ok(client, name).await;
        if info["num_waiting"] == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: num_waiting never became {n}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls CONSUMER.INFO until the consumer is gone (404/10014); returns how long that took.
pub async fn wait_until_deleted(client: &Client, name: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let info = info(client, name).await;
        if info.get("error").is_some() {
            assert_eq!(
                info["error"],
                error(404, 10014, "consumer not found"),
                "{name}"
            );
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} was not deleted within {limit:?}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn describe(m: &Message) -> String {
    format!(
        "status {:?} {:?}, subject {}, reply {:?}, payload {:?}, headers {:?}",
        m.status.map(|s| s.as_u16()),
        m.description,
        m.subject,
        m.reply,
        String::from_utf8_lossy(&m.payload),
        m.headers
    )
}

pub fn header(m: &Message, name: &str) -> Option<String> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

/// (delivery count, stream sequence, consumer sequence) from the `$JS.ACK` reply subject.
pub fn ack_info(m: &Message) -> (u64, u64, u64) {
    let reply = m
        .reply
        .as_ref()
        .unwrap_or_else(|| panic!("{}", describe(m)));
    let tokens: Vec<&str> = reply.split('.').collect();
    assert_eq!(tokens.len(), 9, "ack subject {reply}");
    let n = |i: usize| tokens[i].parse::<u64>().expect("number in ack subject");
    (n(4), n(5), n(6))
}

pub fn stream_seq(m: &Message) -> u64 {
    ack_info(m).1
}

/// Acknowledges with a reply, so the ack is known to be processed when this returns.
pub async fn ack(client: &Client, m: &Message) {
    let reply = m.reply.clone().expect("ack subject");
    within("double ack", client.request(reply, Bytes::new()))
        .await
        .unwrap_or_else(|e| panic!("ack of {}: {e}", describe(m)));
}

/// One pull client: its own inbox, pull requests published with that inbox as reply.
pub struct Puller {
    client: Client,
    subject: String,
    inbox: String,
    sub: Subscriber,
}

impl Puller {
    pub async fn new(client: &Client, consumer: &str) -> Self {
        let inbox = client.new_inbox();
        let sub = client.subscribe(inbox.clone()).await.unwrap();
        client.flush().await.unwrap();
        Self {
            client: client.clone(),
            subject: format!("$JS.API.CONSUMER.MSG.NEXT.S.{consumer}"),
            inbox,
            sub,
        }
    }

    pub async fn pull(&self, body: Value) {
        self.pull_raw(body.to_string()).await;
    }

    pub async fn pull_raw(&self, body: impl Into<Bytes>) {
        self.client
            .publish_with_reply(self.subject.clone(), self.inbox.clone(), body.into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
    }

    pub async fn next(&mut self, what: &str) -> Message {
        within(what, self.sub.next())
            .await
            .expect("subscription open")
    }

    pub async fn next_within(&mut self, limit: Duration) -> Option<Message> {
        tokio::time::timeout(limit, self.sub.next())
            .await
            .ok()
            .flatten()
    }

    /// The next delivery must be a message, not a status.
    pub async fn message(&mut self, what: &str) -> Message {
        let m = self.next(what).await;
        assert!(
            m.status.is_none(),
            "{what}: expected a message, got {}",
            describe(&m)
        );
        m
    }

    /// The next delivery must be the status `code` with exactly `text`.
    pub async fn status(&mut self, code: u16, text: &str, what: &str) -> Message {
        let m = self.next(what).await;
        assert_eq!(
            (m.status.map(|s| s.as_u16()), m.description.as_deref()),
            (Some(code), Some(text)),
            "{what}: {}",
            describe(&m)
        );
        m
    }

    pub async fn silent_for(&mut self, limit: Duration, what: &str) {
        if let Some(m) = self.next_within(limit).await {
            panic!("{what}: expected nothing, got {}", describe(&m));
        }
    }
}

pub async fn subscribe(client: &Client, subject: &str) -> Subscriber {
    let sub = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    sub
}

pub async fn advisory(sub: &mut Subscriber, what: &str) -> Value {
    let m = within(what, sub.next()).await.expect("subscription open");
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{what}: {e}: {m:?}"))
}

pub async fn no_advisory(sub: &mut Subscriber, limit: Duration, what: &str) {
    if let Ok(Some(m)) = tokio::time::timeout(limit, sub.next()).await {
        panic!(
            "{what}: unexpected advisory {}",
            String::from_utf8_lossy(&m.payload)
        );
    }
}

// Times, through jetlog's RFC 3339 functions.

pub fn now_nanos() -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    i64::try_from(nanos).expect("now fits in i64 nanoseconds")
}

/// Whole milliseconds from now, as nanoseconds since the epoch.
pub fn in_ms(ms: i64) -> i64 {
    (now_nanos() / 1_000_000 + ms) * 1_000_000
}

/// Nanoseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(nanos: i64) -> String {
    format_rfc3339(Some(nanos))
}

/// Nanoseconds since the epoch of an RFC 3339 time; the zero time is refused.
pub fn unix_nanos(text: &str) -> i64 {
    parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time: {text:?}: {e}"))
        .unwrap_or_else(|| panic!("the zero time where a time was expected: {text:?}"))
}

pub fn time_of(value: &Value, what: &str) -> i64 {
    unix_nanos(
        value
            .as_str()
            .unwrap_or_else(|| panic!("{what}: not a time: {value}")),
    )
}
