//! The clients of the kill loop: publishers that record which ids got a PubAck, and an acker
//! that records which acks the server confirmed (AckSync).
//!
//! Both keep one async-nats connection across server kills, as an application would: the
//! server comes back on the same port, the client reconnects and flushes what it buffered.
//! Every wait is bounded, so a task notices the stop flag within about `ACK_LIMIT`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::time::{sleep, timeout};

/// The stream every publisher writes to.
pub const STREAM: &str = "KILLS";
/// Its subjects; publisher `p` publishes to `kills.<p>`.
pub const SUBJECTS: &str = "kills.>";
/// The durable consumer the acker drives.
pub const CONSUMER: &str = "acker";
/// PubAcks a publisher waits for at once: enough to keep group commits busy.
const PUBLISH_WINDOW: usize = 8;
/// How long a publish may wait for its PubAck, and an AckSync for its confirmation; after
/// that the outcome is unknown and the id is not counted as acknowledged.
pub const ACK_LIMIT: Duration = Duration::from_secs(1);
/// Pause after a failure so a publisher does not spin while the server is gone.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Messages the acker asks for per pull request.
const PULL_BATCH: usize = 64;
/// How long one pull request waits for messages.
pub const PULL_EXPIRES: Duration = Duration::from_millis(300);
/// The body of a positive ack.
const ACK: &[u8] = b"+ACK";

/// The `Nats-Msg-Id` of publisher `p`'s `n`th message.
pub fn msg_id(p: usize, n: u64) -> String {
    format!("{p}-{n}")
}

/// The payload of publisher `p`'s `n`th message: its id and a filler whose length varies, so
/// records differ in size and a misplaced or damaged byte shows at the drain.
pub fn payload(p: usize, n: u64) -> String {
    let filler = "x".repeat(((n * 7 + p as u64) % 200) as usize);
    format!("{}:{filler}", msg_id(p, n))
}

/// Splits a `Nats-Msg-Id` back into (publisher, number).
pub fn parse_id(id: &str) -> Option<(usize, u64)> {
    let (p, n) = id.split_once('-')?;
    Some((p.parse().ok()?, n.parse().ok()?))
}

/// Connects with settings that suit a server which dies and returns on the same port: retry
/// forever, quickly, and let `ACK_LIMIT` (not the client's defaults) bound each request.
pub async fn connect_client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis(10 * attempts.min(10) as u64))
        .connection_timeout(Duration::from_secs(1))
        .request_timeout(Some(ACK_LIMIT))
        .connect(url)
        .await
        .expect("connect options are valid")
}

/// A JetStream context on a client from [`connect_client`].
pub async fn connect(url: &str) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(ACK_LIMIT)
        .build(connect_client(url).await)
}

/// What one publisher saw.
#[derive(Debug, Default)]
pub struct PublisherRecord {
    pub publisher: usize,
    /// Ids `0..attempted` were handed to the client at least once.
    pub attempted: u64,
    /// Acknowledged ids and the stream sequence their PubAck named.
    pub acked: BTreeMap<u64, u64>,
    /// Acknowledged ids whose PubAck said `duplicate` (a retry of a stored message).
    pub acked_as_duplicate: u64,
    /// Publishes that failed or timed out (expected while the server is down).
    pub failures: u64,
}

/// Publishes ids 0, 1, 2, ... until `stop`, each until it is acknowledged: an id whose outcome
/// is unknown is sent again with the same `Nats-Msg-Id`, so the dedup window (rebuilt from the
/// log on restart) must keep it from being stored twice.
pub async fn publish_until(js: Context, p: usize, stop: Arc<AtomicBool>) -> PublisherRecord {
    publish_paced(js, p, stop, Duration::ZERO).await
}

/// [`publish_until`], sending at most one message (new or retried) per `pause`; zero does not
/// pace.
pub async fn publish_paced(
    js: Context,
    p: usize,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> PublisherRecord {
    let mut record = PublisherRecord {
        publisher: p,
        ..PublisherRecord::default()
    };
    let subject = format!("kills.{p}");
    let mut retry: VecDeque<u64> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut pace = (!pause.is_zero()).then(|| {
        let mut pace = tokio::time::interval(pause);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pace
    });
    while !stop.load(Ordering::Relaxed) {
        while in_flight.len() < PUBLISH_WINDOW {
            if let Some(pace) = &mut pace {
                pace.tick().await;
            }
            let n = retry.pop_front().unwrap_or_else(|| {
                record.attempted += 1;
                record.attempted - 1
            });
            let publish = PublishMessage::build()
                .message_id(msg_id(p, n))
                .payload(payload(p, n).into());
            match timeout(ACK_LIMIT, js.send_publish(subject.clone(), publish)).await {
                Ok(Ok(ack)) => in_flight.push(async move {
                    let outcome = timeout(ACK_LIMIT, ack.into_future()).await;
                    (n, outcome.ok().and_then(Result::ok))
                }),
                _ => {
                    record.failures += 1;
                    retry.push_back(n);
                    sleep(RETRY_PAUSE).await;
                    break;
                }
            }
        }
        // Each future is bounded by ACK_LIMIT, so this wait is too.
        match in_flight.next().await {
            Some((n, Some(ack))) => {
                record.acked.insert(n, ack.sequence);
                record.acked_as_duplicate += u64::from(ack.duplicate);
            }
            Some((n, None)) => {
                record.failures += 1;
                retry.push_back(n);
            }
            None => {}
        }
    }
    record
}

/// The `Nats-Msg-Id` a delivered message carries (empty if none).
pub fn msg_id_of(msg: &async_nats::Message) -> String {
    msg.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// What the acker saw.
#[derive(Debug, Default)]
pub struct AckerRecord {
    /// Deliveries received, redeliveries included.
    pub received: u64,
    /// Ids whose AckSync the server confirmed, with the number of the pull request that
    /// delivered them.
    pub confirmed: HashMap<String, u64>,
    /// Confirmed ids delivered again by a later pull request. Must stay 0: a pull request sent
    /// after the confirmation arrived can only be answered by a server that knows of the ack.
    pub confirmed_redelivered: u64,
    /// AckSyncs that failed or timed out (outcome unknown).
    pub ack_failures: u64,
    /// Pull requests that failed (expected while the server is down).
    pub pull_failures: u64,
    /// Pull requests sent so far; numbers them.
    pub pulls: u64,
    /// Ack without waiting for a confirmation: for the final drain, where only redeliveries
    /// are checked and one fsync per ack would make a large backlog slow to clear.
    pub fire_and_forget: bool,
    /// Every id delivered at least once: in the end every stored message must be here.
    pub delivered_ids: HashSet<String>,
    /// Ids deliberately left unacked (one delivery in `LEAVE_UNACKED_EVERY` during the loop)
    /// and not delivered again since. Must be empty after the drain: an unacked message is
    /// always delivered again, across kills too.
    pub left_unacked: HashSet<String>,
    /// How many deliveries were left unacked on purpose.
    pub left_unacked_total: u64,
    /// AckSync one delivery in this many and ack the others without waiting; 0 and 1 mean
    /// every delivery is acked with AckSync.
    pub sync_every: u64,
}

/// During the loop, one delivery in this many is not acked, so redelivery after `ack_wait`
/// (and after kills) is exercised too.
pub const LEAVE_UNACKED_EVERY: u64 = 23;

impl AckerRecord {
    /// Takes one delivery from pull request `pull`: checks it against the confirmed acks, then
    /// acks it, with AckSync unless `fire_and_forget` or `sync_every` says otherwise.
    async fn take(&mut self, client: &async_nats::Client, msg: &jetstream::Message, pull: u64) {
        self.received += 1;
        let id = msg_id_of(msg);
        // Deliveries of the same pull request may have left the server before our ack of an
        // earlier delivery landed, so only a later pull request proves a forgotten ack.
        if self.confirmed.get(&id).is_some_and(|&at| at < pull) {
            self.confirmed_redelivered += 1;
        }
        self.left_unacked.remove(&id);
        self.delivered_ids.insert(id.clone());
        if !self.fire_and_forget && self.received.is_multiple_of(LEAVE_UNACKED_EVERY) {
            self.left_unacked_total += 1;
            self.left_unacked.insert(id);
            return;
        }
        // AckSync is an ack sent as a request. Sent with `request` rather than the client's
        // `double_ack`, because `double_ack` takes any reply as a confirmation, a 503 "no
        // responders" status included, and that status is no proof that the ack was stored.
        let Some(reply) = msg.reply.clone() else {
            self.ack_failures += 1;
            return;
        };
        let sync = self.sync_every <= 1 || self.received.is_multiple_of(self.sync_every);
        if self.fire_and_forget || !sync {
            if client
                .publish(reply, bytes::Bytes::from_static(ACK))
                .await
                .is_err()
            {
                self.ack_failures += 1;
            }
            return;
        }
        match timeout(
            ACK_LIMIT,
            client.request(reply, bytes::Bytes::from_static(ACK)),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.confirmed.entry(id).or_insert(pull);
            }
            _ => self.ack_failures += 1,
        }
    }

    /// Sends one pull request and takes what it delivers: how many, or None if the request
    /// failed.
    pub async fn pull_once(
        &mut self,
        client: &async_nats::Client,
        consumer: &PullConsumer,
    ) -> Option<u64> {
        self.pulls += 1;
        let pull = self.pulls;
        let batch = consumer
            .batch()
            .max_messages(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .messages();
        let Ok(Ok(mut batch)) = timeout(ACK_LIMIT, batch).await else {
            self.pull_failures += 1;
            return None;
        };
        let mut taken = 0;
        // A batch ends by itself after PULL_EXPIRES; the timeout only guards a lost server.
        while let Ok(Some(next)) = timeout(PULL_EXPIRES + ACK_LIMIT, batch.next()).await {
            match next {
                Ok(msg) => {
                    self.take(client, &msg, pull).await;
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        Some(taken)
    }
}

/// Pulls and acks with AckSync until `stop`.
pub async fn ack_until(js: Context, stop: Arc<AtomicBool>) -> AckerRecord {
    ack_some_until(js, 1, stop).await
}

/// Pulls and acks until `stop`, one delivery in `sync_every` with AckSync.
pub async fn ack_some_until(js: Context, sync_every: u64, stop: Arc<AtomicBool>) -> AckerRecord {
    let mut record = AckerRecord {
        sync_every,
        ..AckerRecord::default()
    };
    let client = js.client();
    let mut consumer: Option<PullConsumer> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = &consumer else {
            let stream = timeout(ACK_LIMIT, js.get_stream(STREAM)).await;
            if let Ok(Ok(stream)) = stream {
                if let Ok(Ok(c)) = timeout(ACK_LIMIT, stream.get_consumer(CONSUMER)).await {
                    consumer = Some(c);
                    continue;
                }
            }
            record.pull_failures += 1;
            sleep(RETRY_PAUSE).await;
            continue;
        };
        if record.pull_once(&client, c).await.is_none() {
            sleep(RETRY_PAUSE).await;
        }
    }
    record
}
