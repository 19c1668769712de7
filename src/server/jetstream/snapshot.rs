//! `$JS.API.STREAM.SNAPSHOT.<stream>`: a stream's state, consumers and messages sent to the
//! client as an archive (`jetstream::snapshot_archive`) in chunks, paced by the client's acks
//! as nats-server paces them (`docs/snapshot-facts.md` §1–2). The transfer runs on a thread of
//! its own after the reply; it reads the stream in batches under its lock, so publishes go on,
//! and it sends what was stored when the snapshot started.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{find, stream_info_of, Reply};
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::advisories::event;
use crate::jetstream::api_types::StreamInfoRequest;
use crate::jetstream::consumer::fresh_id;
use crate::jetstream::snapshot_archive::{ArchiveWriter, CONSUMER_PREFIX, STATE_ENTRY};
use crate::jetstream::snapshot_state::{archived, ArchivedConsumer};
use crate::jetstream::time::format_rfc3339;
use crate::jetstream::{versioning, ApiError};
use crate::protocol::subject::is_valid_literal_subject;
use crate::server::internal::{self, InternalClient};
use crate::server::outbound::{InternalDelivery, InternalSink};
use crate::server::router::Router;

const DEFAULT_CHUNK: usize = 128 * 1024;
const MIN_CHUNK: usize = 1024;
const MAX_CHUNK: usize = 1024 * 1024;
const DEFAULT_WINDOW: usize = 8 * 1024 * 1024;
const MAX_WINDOW: usize = 32 * 1024 * 1024;
/// How long the transfer waits for a free slot in the window before it gives up.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it waits for the client to subscribe to the deliver subject.
const INTEREST_WAIT: Duration = Duration::from_secs(2);
/// Messages read under the stream's lock at a time.
const READ_BATCH: usize = 1024;
/// How often a waiting transfer looks for an ack.
const POLL: Duration = Duration::from_millis(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    #[serde(default)]
    deliver_subject: String,
    #[serde(default)]
    no_consumers: bool,
    #[serde(default)]
    chunk_size: i64,
    #[serde(default)]
    window_size: i64,
    /// Asked a 2.14 server to check the messages first; every message is checked as it is
    /// read, as on 2.15, so it changes nothing.
    #[serde(default)]
    #[allow(dead_code)]
    jsck: bool,
}

/// A JSON body that is missing, `{}` or has no keys: nats-server's "bad request".
pub(super) fn is_empty_request(payload: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => map.is_empty(),
        _ => payload.iter().all(u8::is_ascii_whitespace),
    }
}

/// Decodes `payload` as `T`, refusing unknown fields with nats-server's wording.
pub(super) fn strict<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(payload).map_err(|e| {
        let text = e.to_string();
        match text.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                ApiError::invalid_json(format!("json: unknown field {field:?}"))
            }
            None => ApiError::invalid_json(text),
        }
    })
}

/// The sink of a transfer's own subscription (acks, or restore pieces): plain channel
/// deliveries, nothing excluded or taken inline.
pub(super) fn transfer_sink(tx: tokio::sync::mpsc::Sender<InternalDelivery>) -> InternalSink {
    InternalSink {
        tag: 0,
        tx,
        exclude: &[],
        inline: None,
        origin: false,
    }
}

/// Everything the transfer sends, fixed when the snapshot starts.
struct Plan {
    stream: String,
    deliver: String,
    chunk: usize,
    window_chunks: usize,
    state: Value,
    consumers: Vec<(String, Vec<u8>)>,
    first_seq: u64,
    last_seq: u64,
}

pub(super) fn stream_snapshot(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    if is_empty_request(payload) {
        return Err(ApiError::bad_request(None));
    }
    let entry = find(js, name)?;
    let req: SnapshotRequest = strict(payload)?;
    if req.deliver_subject.is_empty() || !is_valid_literal_subject(&req.deliver_subject) {
        return Err(ApiError::new(400, 10015, "deliver subject not valid"));
    }
    let chunk = match req.chunk_size {
        0 => DEFAULT_CHUNK,
        n => (n.max(0) as usize).clamp(MIN_CHUNK, MAX_CHUNK),
    };
    let window = match req.window_size {
        0 => DEFAULT_WINDOW,
        n => (n.max(0) as usize).clamp(MIN_CHUNK, MAX_WINDOW),
    }
    .max(chunk);
    let info = stream_info_of(js, &entry, &StreamInfoRequest::default())?;
    // The stored config: its required level, not the server's own keys INFO adds.
    let mut config = info.config.clone();
    let level = versioning::stream_level(&config).to_string();
    versioning::strip(&mut config.metadata);
    config
        .metadata
        .get_or_insert_with(Default::default)
        .insert(versioning::REQUIRED_LEVEL_KEY.to_string(), level);
    let state = serde_json::to_value(&info.state).map_err(ApiError::store_failed)?;
    let consumers = if req.no_consumers {
        Vec::new()
    } else {
        archived_consumers(&entry, info.state.last_seq)
    };
    let mut archived_state = state.clone();
    archived_state["consumer_count"] = json!(consumers.len());
    let plan = Plan {
        stream: name.to_string(),
        deliver: req.deliver_subject,
        chunk,
        window_chunks: (window / chunk).max(1),
        state: archived_state,
        consumers,
        first_seq: info.state.first_seq,
        last_seq: info.state.last_seq,
    };
    let router = js.router.clone();
    let reply_state = state.clone();
    std::thread::Builder::new()
        .name(format!("snapshot-{name}"))
        .spawn(move || send_snapshot(router, &entry, plan, reply_state))
        .map_err(|e| ApiError::new(500, 10064, format!("snapshot failed: {e}")))?;
    Ok(json!({"config": config, "state": state}))
}

/// Each consumer's `consumers/<name>` entry, in name order.
fn archived_consumers(entry: &StreamEntry, last_seq: u64) -> Vec<(String, Vec<u8>)> {
    let stream = entry.lock();
    stream
        .consumers()
        .values()
        .map(|c| {
            let body = ArchivedConsumer {
                config: c.config.clone(),
                state: archived(&c.state_pb(), last_seq),
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            (format!("{CONSUMER_PREFIX}{}", c.name), bytes)
        })
        .collect()
}

/// How a transfer ended.
enum End {
    Done,
    NoFlow,
    NoInterest,
    Failed(String),
}

/// The sending side: chunks cut from the archive as it grows, each full one counted against
/// the window until the client acks it.
struct Sender {
    client: InternalClient,
    rx: tokio::sync::mpsc::Receiver<InternalDelivery>,
    deliver: Bytes,
    ack_prefix: String,
    chunk: usize,
    free: usize,
    sent_full: u64,
}

impl Sender {
    /// Sends every full chunk `out` holds; the rest stays for later.
    fn send_full(&mut self, out: &mut Vec<u8>) -> Result<(), End> {
        while out.len() >= self.chunk {
            self.take_acks();
            let deadline = Instant::now() + ACK_TIMEOUT;
            while self.free == 0 {
                if !self.client.has_interest(&self.deliver) {
                    return Err(End::NoInterest);
                }
                if Instant::now() >= deadline {
                    return Err(End::NoFlow);
                }
                std::thread::sleep(POLL);
                self.take_acks();
            }
            let rest = out.split_off(self.chunk);
            let body = std::mem::replace(out, rest);
            self.sent_full += 1;
            let reply = format!("{}.{}.{}", self.ack_prefix, body.len(), self.sent_full);
            self.free -= 1;
            self.client.queue_publish_with_reply(
                self.deliver.clone(),
                Some(Bytes::from(reply)),
                None,
                Bytes::from(body),
            );
            self.client.flush();
        }
        Ok(())
    }

    fn take_acks(&mut self) {
        while self.rx.try_recv().is_ok() {
            self.free += 1;
        }
    }

    /// The last, short chunk (no reply: it needs no ack) and the end marker.
    fn finish(&mut self, rest: Vec<u8>, end: &End) {
        if matches!(end, End::Done) && !rest.is_empty() {
            self.client
                .queue_publish(self.deliver.clone(), None, Bytes::from(rest));
        }
        let status: Option<String> = match end {
            End::Done if self.sent_full == 0 => None,
            End::Done => Some("204".into()),
            End::NoFlow => Some("408 No Flow Response".into()),
            End::NoInterest => Some("408 No Interest".into()),
            End::Failed(why) => Some(format!("500 {why}")),
        };
        let headers = status.map(|s| Bytes::from(format!("NATS/1.0 {s}\r\n\r\n")));
        self.client
            .queue_publish(self.deliver.clone(), headers, Bytes::new());
        self.client.flush();
    }
}

/// Publishes an advisory from a transfer's thread.
fn announce(router: &Arc<Router>, advisory: crate::jetstream::consumer::Action) {
    let mut client = InternalClient::new(router.clone());
    super::actor::perform(advisory, &mut client);
    client.flush();
}

fn send_snapshot(router: Arc<Router>, entry: &StreamEntry, plan: Plan, state: Value) {
    let start = now_ns();
    let stream = plan.stream.clone();
    announce(
        &router,
        event(
            format!("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_CREATE.{stream}"),
            "io.nats.jetstream.advisory.v1.snapshot_create",
            start,
            json!({"stream": stream, "state": state}),
        ),
    );
    let client = InternalClient::new(router.clone());
    let waited = Instant::now();
    while !client.has_interest(plan.deliver.as_str()) && waited.elapsed() < INTEREST_WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (tx, rx) = internal::channel();
    let ack_prefix = format!("$JS.SNAPSHOT.ACK.{stream}.{}", fresh_id());
    let sub = client.subscribe(&format!("{ack_prefix}.>"), None, transfer_sink(tx));
    let mut sender = Sender {
        client,
        rx,
        deliver: Bytes::from(plan.deliver.clone()),
        ack_prefix,
        chunk: plan.chunk,
        free: plan.window_chunks,
        sent_full: 0,
    };
    let (end, rest) = match write_archive(entry, &plan, &mut sender) {
        Ok(rest) => (End::Done, rest),
        Err(end) => (end, Vec::new()),
    };
    sender.finish(rest, &end);
    sender.client.unsubscribe(&sub);
    let error = match &end {
        End::Done => None,
        End::NoFlow => Some("no flow response".to_string()),
        End::NoInterest => Some("no interest".to_string()),
        End::Failed(why) => Some(why.clone()),
    };
    let mut fields = json!({
        "stream": stream,
        "start": format_rfc3339(Some(start as i64)),
        "end": format_rfc3339(Some(now_ns() as i64)),
    });
    if let Some(error) = error {
        fields["error"] = json!(error);
    }
    announce(
        &router,
        event(
            format!("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE.{stream}"),
            "io.nats.jetstream.advisory.v1.snapshot_complete",
            now_ns(),
            fields,
        ),
    );
}

/// Writes the whole archive, sending full chunks as they fill; returns what is left over.
fn write_archive(entry: &StreamEntry, plan: &Plan, sender: &mut Sender) -> Result<Vec<u8>, End> {
    let failed = |e: std::io::Error| End::Failed(e.to_string());
    let mut archive = ArchiveWriter::new(Vec::new()).map_err(failed)?;
    let state = serde_json::to_vec(&plan.state).unwrap_or_default();
    archive
        .entry(STATE_ENTRY, now_ns() as i64, 0, b"", &state)
        .map_err(failed)?;
    for (name, body) in &plan.consumers {
        archive
            .entry(name, now_ns() as i64, 0, b"", body)
            .map_err(failed)?;
    }
    let mut next = plan.first_seq.max(1);
    while next <= plan.last_seq && plan.last_seq > 0 {
        let batch = {
            let stream = entry.lock();
            stream.log().scan(next, &[], READ_BATCH)
        }
        .map_err(|e| End::Failed(e.to_string()))?;
        let Some(last) = batch.last().map(|m| m.seq) else {
            break;
        };
        for msg in batch.iter().filter(|m| m.seq <= plan.last_seq) {
            archive
                .entry(
                    &msg.subject,
                    msg.ts_ns as i64,
                    msg.seq,
                    &msg.headers,
                    &msg.payload,
                )
                .map_err(failed)?;
            sender.send_full(archive.output())?;
        }
        next = last + 1;
    }
    archive.finish().map_err(failed)?;
    sender.send_full(archive.output())?;
    Ok(std::mem::take(archive.output()))
}
