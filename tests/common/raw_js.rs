//! Raw-protocol helpers for JetStream tests that need exact bytes: API requests and pull
//! requests on one connection, with bounded reads.

use std::time::Duration;

use serde_json::{json, Value};

use super::{RawClient, TestServer};

/// A raw connection subscribed to `r` for API replies and to `pull.>` for pull deliveries.
pub fn raw_client(server: &TestServer) -> RawClient {
    raw_client_at(server.port)
}

/// The same to any server on 127.0.0.1 (nats-server too, for side-by-side measurements).
pub fn raw_client_at(port: u16) -> RawClient {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    let mut raw = RawClient::from_stream(stream);
    raw.read_info();
    raw.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n");
    raw.send(b"SUB r 1\r\nSUB pull.> 2\r\nPING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    raw
}

pub fn publish(raw: &mut RawClient, subject: &str, reply: &str, payload: &str) {
    raw.send(format!("PUB {subject} {reply} {}\r\n{payload}\r\n", payload.len()).as_bytes());
}

/// Sends a JetStream API request and returns its JSON reply. Whatever else arrives around
/// the reply (deliveries, statuses) stays buffered for the next read.
pub fn api(raw: &mut RawClient, subject: &str, body: &Value) -> Value {
    publish(raw, subject, "r", &body.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut bytes = Vec::new();
    loop {
        if let Some((reply, range)) = api_reply(&bytes) {
            let mut rest = bytes[..range.start].to_vec();
            rest.extend_from_slice(&bytes[range.end..]);
            raw.unread(rest);
            return serde_json::from_slice(reply)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(reply)));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no reply to {subject}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend(raw.read_until_contains(b"\r\n", left.min(Duration::from_millis(200))));
    }
}

/// The payload of the first whole `MSG r 1 <len>` in `bytes`, and the range the message
/// takes.
fn api_reply(bytes: &[u8]) -> Option<(&[u8], std::ops::Range<usize>)> {
    let start = bytes.windows(8).position(|w| w == b"MSG r 1 ")?;
    let line_end = start + bytes[start..].windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&bytes[start + 8..line_end])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let payload = line_end + 2;
    let end = payload + len + 2;
    (bytes.len() >= end).then(|| (&bytes[payload..payload + len], start..end))
}

pub fn create_stream(raw: &mut RawClient, config: Value) -> Value {
    let name = config["name"].as_str().expect("name").to_string();
    let reply = api(raw, &format!("$JS.API.STREAM.CREATE.{name}"), &config);
    assert!(reply.get("error").is_none(), "{reply}");
    reply
}

pub fn create_pull_consumer(raw: &mut RawClient, stream: &str, name: &str) {
    let body =
        json!({"stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit"}});
    let reply = api(
        raw,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}"),
        &body,
    );
    assert!(reply.get("error").is_none(), "{reply}");
}
