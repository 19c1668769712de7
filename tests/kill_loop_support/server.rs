//! The kill loop's handling of the server: starting it on a port it can come back to,
//! killing and restarting it, timing its recovery, and reading the stream and the consumer
//! back at the end. Shared with `tests/reliability_soak.rs`.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use tokio::time::{sleep, timeout};

use super::verdict::Stored;
use super::workload::{connect, AckerRecord, ACK_LIMIT, CONSUMER, PULL_EXPIRES, STREAM, SUBJECTS};
use crate::common::{within, TestServer};

/// A restart that has not answered a stream info request within this long has failed.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(10);
/// Pause between recovery probes.
pub const PROBE_PAUSE: Duration = Duration::from_millis(5);
/// Bound on stopping the clients, and on each drain.
pub const STOP_LIMIT: Duration = Duration::from_secs(10);
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long the acker may wait for a delivered but unacked message to come back.
pub const CONSUMER_ACK_WAIT: Duration = Duration::from_secs(1);
/// Messages per pull request of the final read-back.
pub const DRAIN_BATCH: usize = 1000;

pub fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// A port that was free a moment ago. Every restart binds it again, so that the clients'
/// own reconnects find the new server, as they would in production.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Nearest-rank percentile of a sorted slice.
pub fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub async fn create_stream_and_consumer(server: &TestServer) {
    let js = jetstream::new(
        within("connect", async_nats::connect(server.url()))
            .await
            .unwrap(),
    );
    let stream = within(
        "create stream",
        js.create_stream(stream::Config {
            name: STREAM.to_string(),
            subjects: vec![SUBJECTS.to_string()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let config = pull::Config {
        durable_name: Some(CONSUMER.to_string()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: CONSUMER_ACK_WAIT,
        ..Default::default()
    };
    within("create consumer", stream.create_consumer(config))
        .await
        .unwrap();
}

/// Waits until a fresh client gets the stream's info from the restarted server; returns how
/// long that took from `restarted`, or None if it never did.
pub async fn recovery_time(url: &str, restarted: Instant) -> Option<Duration> {
    while restarted.elapsed() < RECOVERY_LIMIT {
        let probe = async {
            let client = async_nats::connect(url).await.ok()?;
            jetstream::new(client).get_stream(STREAM).await.ok()
        };
        if let Ok(Some(_)) = timeout(ACK_LIMIT, probe).await {
            return Some(restarted.elapsed());
        }
        sleep(PROBE_PAUSE).await;
    }
    None
}

/// Kills the server with SIGKILL and starts it again on the same store and port. Blocking
/// calls run in place so the clients' tasks keep running on the other worker.
pub fn kill_and_restart(server: TestServer, args: &[&str]) -> (TestServer, Instant) {
    tokio::task::block_in_place(|| {
        let store = server.kill_and_take_store();
        let restarted = Instant::now();
        (TestServer::start_in(store, args), restarted)
    })
}

/// Pulls from the durable consumer until nothing is pending or waiting for an ack, so every
/// message that was delivered but not confirmed comes back once more. Any confirmed one among
/// them counts as forgotten.
pub async fn drain_consumer(url: &str, acker: &mut AckerRecord) {
    let js = connect(url).await;
    let client = js.client();
    let stream = within("stream", js.get_stream(STREAM)).await.unwrap();
    let consumer: PullConsumer = within("consumer", stream.get_consumer(CONSUMER))
        .await
        .expect("the durable consumer survived the kills");
    acker.fire_and_forget = true;
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        assert!(Instant::now() < deadline, "consumer drain timed out");
        if acker.pull_once(&client, &consumer).await != Some(0) {
            continue;
        }
        let info = within("consumer info", consumer.get_info()).await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
    }
}

/// Reads every message of the stream back with an ephemeral consumer.
pub async fn read_back(url: &str) -> (Vec<Stored>, stream::State) {
    let js = jetstream::new(within("connect", async_nats::connect(url)).await.unwrap());
    let stream = within("stream", js.get_stream(STREAM)).await.unwrap();
    let state = within("stream info", stream.get_info())
        .await
        .unwrap()
        .state;
    let consumer: PullConsumer = within(
        "read-back consumer",
        stream.create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut stored = Vec::new();
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut last_seen = 0;
    while last_seen < state.last_sequence {
        assert!(
            Instant::now() < deadline,
            "read-back timed out at {last_seen}"
        );
        let batch = consumer
            .batch()
            .max_messages(DRAIN_BATCH)
            .expires(PULL_EXPIRES)
            .messages();
        let mut batch = within("read-back batch", batch).await.unwrap();
        while let Some(msg) = within("read-back message", batch.next()).await {
            let msg = msg.unwrap();
            let seq = msg.info().unwrap().stream_sequence;
            let id = super::workload::msg_id_of(&msg);
            last_seen = last_seen.max(seq);
            stored.push(Stored {
                seq,
                id,
                payload: msg.payload.to_vec(),
            });
        }
    }
    (stored, state)
}

/// Joins a client task that was told to stop; its waits are bounded, so this is too.
pub async fn within_limit<T>(what: &str, task: tokio::task::JoinHandle<T>) -> T {
    timeout(STOP_LIMIT, task)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .expect(what)
}
