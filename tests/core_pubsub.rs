//! Core NATS behaviour through the async-nats client: what we promise existing clients.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use async_nats::{ConnectOptions, HeaderMap};
use bytes::Bytes;
use common::{within, TestServer};
use futures::StreamExt;

async fn connect(server: &TestServer) -> async_nats::Client {
    within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect")
}

/// Waits until the server has processed everything `client` sent so far. async-nats'
/// `flush` only flushes the socket; a request nobody answers comes back as "no responders"
/// only after the server has read (in order) everything before it, subscriptions included.
async fn round_trip(client: &async_nats::Client) {
    let subject = format!("sync.{}", client.new_inbox());
    let result = within("round trip", client.request(subject, Bytes::new())).await;
    assert!(result.is_err(), "nobody answers the sync subject");
}

/// Takes `n` messages from a subscriber, failing if they do not arrive in time.
async fn take(sub: &mut async_nats::Subscriber, n: usize) -> Vec<async_nats::Message> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match within("a message", sub.next()).await {
            Some(msg) => out.push(msg),
            None => break,
        }
    }
    out
}

/// Asserts nothing arrives on `sub` for a short while.
async fn assert_silent(sub: &mut async_nats::Subscriber) {
    let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(
        got.is_err(),
        "expected no message, got {:?}",
        got.ok().flatten().map(|m| m.subject)
    );
}

#[tokio::test]
async fn publish_reaches_literal_and_wildcard_subscribers() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let mut literal = client.subscribe("orders.eu.created").await.unwrap();
    let mut star = client.subscribe("orders.*.created").await.unwrap();
    let mut tail = client.subscribe("orders.>").await.unwrap();
    let mut other = client.subscribe("orders.*").await.unwrap();
    round_trip(&client).await;

    client
        .publish("orders.eu.created", Bytes::from_static(b"1"))
        .await
        .unwrap();
    client
        .publish("orders.us.shipped.late", Bytes::from_static(b"2"))
        .await
        .unwrap();
    round_trip(&client).await;

    assert_eq!(take(&mut literal, 1).await[0].payload, "1");
    assert_eq!(take(&mut star, 1).await[0].payload, "1");
    let tail_msgs = take(&mut tail, 2).await;
    assert_eq!(tail_msgs[0].subject.as_str(), "orders.eu.created");
    assert_eq!(tail_msgs[1].subject.as_str(), "orders.us.shipped.late");
    assert_silent(&mut other).await;
}

#[tokio::test]
async fn each_message_goes_to_exactly_one_queue_member() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            client
                .queue_subscribe("jobs.>", "workers".into())
                .await
                .unwrap(),
        );
    }
    let mut plain = client.subscribe("jobs.>").await.unwrap();
    round_trip(&client).await;

    const N: usize = 300;
    for i in 0..N {
        client
            .publish(format!("jobs.{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    round_trip(&client).await;

    assert_eq!(
        take(&mut plain, N).await.len(),
        N,
        "plain subscribers get every message"
    );
    let mut seen = HashSet::new();
    let mut per_member = Vec::new();
    for member in &mut members {
        let mut count = 0;
        while let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(300), member.next()).await
        {
            assert!(
                seen.insert(msg.payload.clone()),
                "message delivered twice: {:?}",
                msg.payload
            );
            count += 1;
        }
        per_member.push(count);
    }
    assert_eq!(
        seen.len(),
        N,
        "every message reached the group: {per_member:?}"
    );
    assert!(
        per_member.iter().all(|c| *c > 0),
        "load is spread: {per_member:?}"
    );
}

#[tokio::test]
async fn request_reply_round_trip() {
    let server = TestServer::start(&[]);
    let responder = connect(&server).await;
    let mut service = responder.subscribe("svc.echo").await.unwrap();
    round_trip(&responder).await;
    let task = tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            if let Some(reply) = msg.reply {
                let mut answer = b"echo:".to_vec();
                answer.extend_from_slice(&msg.payload);
                responder.publish(reply, answer.into()).await.unwrap();
                responder.flush().await.unwrap();
            }
        }
    });
    let client = connect(&server).await;
    for i in 0..20 {
        let reply = within(
            "reply",
            client.request("svc.echo", Bytes::from(format!("{i}"))),
        )
        .await
        .unwrap();
        assert_eq!(reply.payload, format!("echo:{i}"));
    }
    task.abort();
}

#[tokio::test]
async fn request_without_responders_fails_fast() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let started = std::time::Instant::now();
    let err = within("no responders", client.request("nobody.home", Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, not by timeout"
    );
}

#[tokio::test]
async fn multi_valued_headers_round_trip() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let mut sub = client.subscribe("h.test").await.unwrap();
    round_trip(&client).await;
    let mut headers = HeaderMap::new();
    headers.insert("Trace-Id", "abc-123");
    headers.append("X-Multi", "one");
    headers.append("X-Multi", "two");
    client
        .publish_with_headers("h.test", headers, Bytes::from_static(b"body"))
        .await
        .unwrap();
    round_trip(&client).await;

    let msg = take(&mut sub, 1).await.remove(0);
    assert_eq!(msg.payload, "body");
    let got = msg.headers.expect("headers");
    assert_eq!(got.get("Trace-Id").map(|v| v.as_str()), Some("abc-123"));
    let multi: Vec<_> = got
        .get_all("X-Multi")
        .map(|v| v.as_str().to_string())
        .collect();
    assert_eq!(multi, ["one", "two"]);
}

#[tokio::test]
async fn unsubscribe_after_max_delivers_exactly_max() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let mut sub = client.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    round_trip(&client).await;
    for i in 0..5 {
        client
            .publish("limited", Bytes::from(format!("{i}")))
            .await
            .unwrap();
    }
    round_trip(&client).await;
    let mut got = Vec::new();
    while let Some(msg) = within("end of subscription", sub.next()).await {
        got.push(msg.payload);
    }
    assert_eq!(got, ["0", "1", "2"]);
}

#[tokio::test]
async fn echo_off_hides_own_messages_from_own_subscriptions() {
    let server = TestServer::start(&[]);
    let quiet = within(
        "connect",
        ConnectOptions::new().no_echo().connect(server.url()),
    )
    .await
    .unwrap();
    let other = connect(&server).await;
    let mut own = quiet.subscribe("echo.test").await.unwrap();
    let mut theirs = other.subscribe("echo.test").await.unwrap();
    round_trip(&quiet).await;
    round_trip(&other).await;

    quiet
        .publish("echo.test", Bytes::from_static(b"mine"))
        .await
        .unwrap();
    round_trip(&quiet).await;
    assert_eq!(take(&mut theirs, 1).await[0].payload, "mine");
    assert_silent(&mut own).await;

    other
        .publish("echo.test", Bytes::from_static(b"yours"))
        .await
        .unwrap();
    round_trip(&other).await;
    assert_eq!(take(&mut own, 1).await[0].payload, "yours");
}

#[tokio::test]
async fn payload_over_max_payload_is_refused() {
    let server = TestServer::start(&["--max_payload", "1024"]);
    let client = connect(&server).await;
    assert_eq!(client.server_info().max_payload, 1024);
    let err = client
        .publish("big", Bytes::from(vec![0u8; 1025]))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
    );
    // Exactly the limit is fine.
    let mut sub = client.subscribe("big").await.unwrap();
    round_trip(&client).await;
    client
        .publish("big", Bytes::from(vec![7u8; 1024]))
        .await
        .unwrap();
    round_trip(&client).await;
    assert_eq!(take(&mut sub, 1).await[0].payload.len(), 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_off_while_a_fast_one_keeps_receiving() {
    const MAX_PENDING: usize = 4 << 20;
    let server = TestServer::start(&["--max_pending", &MAX_PENDING.to_string()]);
    // The slow consumer subscribes over raw TCP and then never reads.
    let mut slow = server.raw();
    slow.send(b"CONNECT {\"verbose\":false}\r\nSUB firehose 1\r\nPING\r\n");
    slow.read_until_contains(b"PONG\r\n", Duration::from_secs(5));

    let fast_client = connect(&server).await;
    let mut fast = fast_client.subscribe("firehose").await.unwrap();
    round_trip(&fast_client).await;
    let publisher = connect(&server).await;

    // The publisher waits for the fast subscriber after every chunk, so the fast one never has
    // more than a chunk (480 KiB) outstanding however loaded the machine is, while the slow one
    // falls past MAX_PENDING within the first few chunks.
    const N: usize = 6000;
    const CHUNK: usize = 60;
    let payload = Bytes::from(vec![b'x'; 8 * 1024]);
    let mut got = 0;
    'publishing: for _ in 0..N / CHUNK {
        for _ in 0..CHUNK {
            publisher
                .publish("firehose", payload.clone())
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
        for _ in 0..CHUNK {
            match tokio::time::timeout(Duration::from_secs(20), fast.next()).await {
                Ok(Some(_)) => got += 1,
                _ => break 'publishing,
            }
        }
    }
    assert_eq!(
        got,
        N,
        "the fast subscriber got everything; log: {:?}",
        server.log.lock().unwrap()
    );

    // The slow one was disconnected: draining its socket ends in EOF well short of N messages.
    let (bytes, closed) = slow.read_for(Duration::from_secs(10));
    assert!(closed, "slow consumer connection was closed");
    assert!(
        bytes.len() < N * payload.len(),
        "slow consumer did not get everything"
    );
    assert!(
        server.logs_within("Slow Consumer Detected", Duration::from_secs(5)),
        "and it was logged"
    );
}
