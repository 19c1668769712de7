//! `$JS.API.STREAM.RESTORE.<stream>`: a stream rebuilt from a snapshot archive the client
//! sends in chunks (`docs/snapshot-facts.md` §4). Each chunk is written to a file under
//! `<store>/restores/` and acknowledged once it is there; the empty message that ends the
//! transfer is answered with the new stream's info, or the error.
//!
//! Unlike nats-server, which creates the stream as soon as the archive's state arrives and
//! leaves whatever it had stored when a later part turns out damaged, jetlog reads the whole
//! archive through once before it creates anything, builds the stream's log in a directory
//! of its own, and only then moves it into place and opens it: a damaged or truncated backup
//! leaves nothing behind.

use std::fs;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{requested_config, stream_info_of, Reply};
use super::snapshot::{is_empty_request, strict, transfer_sink};
use super::{now_ns, JetStream};
use crate::jetstream::advisories::{event, stream_action, Lifecycle};
use crate::jetstream::api_types::StreamInfoRequest;
use crate::jetstream::consumer::fresh_id;
use crate::jetstream::snapshot_archive::{ArchiveReader, CONSUMER_PREFIX, STATE_ENTRY};
use crate::jetstream::snapshot_state::{persisted, ArchivedConsumer};
use crate::jetstream::stream::log_config;
use crate::jetstream::stream_config::Storage;
use crate::jetstream::time::format_rfc3339;
use crate::jetstream::{ApiError, StreamConfig};
use crate::protocol::subject::is_storable_subject;
use crate::server::internal::{self, InternalClient};
use crate::store::{Log, NewMessage};

/// A restore that hears nothing for this long is abandoned (nats-server's stall timeout).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages appended at a time while the log is built.
const APPEND_BATCH: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    config: Value,
    /// The stream's state when the snapshot was taken; the archive carries its own copy,
    /// which is the one used (as by a single nats-server).
    #[serde(default)]
    #[allow(dead_code)]
    state: Value,
}

/// The archive's `state.json`: what the rebuilt log must reproduce.
#[derive(Deserialize, Default)]
struct ArchivedStreamState {
    #[serde(default)]
    first_seq: u64,
    #[serde(default)]
    last_seq: u64,
}

fn failed(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10062, format!("restore failed: {why}"))
}

fn name_in_use() -> ApiError {
    ApiError::new(400, 10130, "stream name already in use, cannot restore")
}

pub(super) fn stream_restore(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    if is_empty_request(payload) {
        return Err(ApiError::bad_request(None));
    }
    let req: RestoreRequest = strict(payload)?;
    let body = serde_json::to_vec(&req.config).map_err(ApiError::invalid_json)?;
    let config = requested_config(js, name, &body)?;
    if config.name != name {
        return Err(ApiError::new(
            400,
            10056,
            "stream name in subject does not match request",
        ));
    }
    if config.storage == Storage::Memory {
        return Err(failed(
            "jetlog restores file streams only (restore a memory stream's backup with storage: file)",
        ));
    }
    if js.cluster().is_some() {
        super::cluster_replicated::refuse_unbuilt(&config)?;
    }
    js.restorable(&config)?;
    let subject = format!("$JS.SNAPSHOT.RESTORE.{name}.{}", fresh_id());
    let dir = js.store_dir.join("restores").join(fresh_id());
    fs::create_dir_all(&dir).map_err(failed)?;
    let (tx, rx) = internal::channel();
    let client = InternalClient::new(js.router.clone());
    let sub = client.subscribe(&subject, None, transfer_sink(tx));
    js.announce(event(
        format!("$JS.EVENT.ADVISORY.STREAM.RESTORE_CREATE.{name}"),
        "io.nats.jetstream.advisory.v1.restore_create",
        now_ns(),
        json!({"stream": name}),
    ));
    let session = Session {
        config,
        dir,
        client,
        sub,
        rx,
        started: now_ns(),
    };
    let js = js.handle();
    std::thread::Builder::new()
        .name(format!("restore-{name}"))
        .spawn(move || {
            if let Some(js) = js.upgrade() {
                session.run(&js);
            }
        })
        .map_err(failed)?;
    Ok(json!({ "deliver_subject": subject }))
}

/// One restore in progress.
struct Session {
    config: StreamConfig,
    dir: PathBuf,
    client: InternalClient,
    sub: std::sync::Arc<crate::server::outbound::Subscription>,
    rx: tokio::sync::mpsc::Receiver<crate::server::outbound::InternalDelivery>,
    started: u64,
}

impl Session {
    fn run(mut self, js: &JetStream) {
        let archive = self.dir.join("archive");
        let outcome = self.receive(&archive);
        self.client.unsubscribe(&self.sub);
        let Some((reply, bytes)) = outcome else {
            // Stalled, or a chunk without a reply: nobody waits for an answer.
            let _ = fs::remove_dir_all(&self.dir);
            return;
        };
        let name = self.config.name.clone();
        // In a cluster the stream is built here with one replica, then given to the catalog
        // (`restore_cluster`), which answers.
        let wanted = self.config.clone();
        let mut here = self.config.clone();
        if js.cluster().is_some() {
            here.num_replicas = 1;
        }
        let result = js.install(here, &archive, &self.dir.join("log"));
        let _ = fs::remove_dir_all(&self.dir);
        js.announce(event(
            format!("$JS.EVENT.ADVISORY.STREAM.RESTORE_COMPLETE.{name}"),
            "io.nats.jetstream.advisory.v1.restore_complete",
            now_ns(),
            json!({
                "stream": name,
                "start": format_rfc3339(Some(self.started as i64)),
                "end": format_rfc3339(Some(now_ns() as i64)),
                "bytes": bytes,
            }),
        ));
        match (result, js.cluster()) {
            (Ok(()), Some(cluster)) => super::restore_cluster::adopt(js, cluster, wanted, reply),
            (result, _) => {
                let body = restored_answer(js, &name, result, false);
                self.client.publish(reply, None, body);
            }
        }
    }

    /// Takes chunks into `archive` until the empty one that ends the transfer; returns its
    /// reply subject and the bytes received, or `None` when the restore is abandoned.
    fn receive(&mut self, archive: &Path) -> Option<(Bytes, u64)> {
        let mut file = fs::File::create(archive).ok()?;
        let mut bytes = 0u64;
        let mut heard = Instant::now();
        loop {
            let delivery = match self.rx.try_recv() {
                Ok(delivery) => delivery,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    if heard.elapsed() > STALL_TIMEOUT {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(_) => return None,
            };
            heard = Instant::now();
            // nats-server ends a restore whose chunk has no reply subject.
            let reply = delivery.msg.reply?;
            if delivery.msg.payload.is_empty() {
                file.sync_all().ok()?;
                return Some((reply, bytes));
            }
            file.write_all(&delivery.msg.payload).ok()?;
            bytes += delivery.msg.payload.len() as u64;
            self.client.publish(reply, None, Bytes::new());
        }
    }
}

/// The answer to a restore: the stream's info (with its cluster, in one), or the error.
pub(super) fn restored_answer(
    js: &JetStream,
    name: &str,
    result: Result<(), ApiError>,
    clustered: bool,
) -> Bytes {
    let mut body = match result.and_then(|_| {
        let entry = super::api::find(js, name)?;
        let mut info = stream_info_of(js, &entry, &StreamInfoRequest::default())?;
        if !clustered {
            info.cluster = None;
        }
        serde_json::to_value(&info).map_err(ApiError::store_failed)
    }) {
        Ok(Value::Object(map)) => map,
        Ok(_) => serde_json::Map::new(),
        Err(err) => {
            let mut map = serde_json::Map::new();
            map.insert("error".into(), json!(err));
            map
        }
    };
    body.insert(
        "type".into(),
        json!("io.nats.jetstream.api.v1.stream_create_response"),
    );
    Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
}

/// What the archive holds, read through once before anything is built.
struct Checked {
    state: ArchivedStreamState,
    consumers: Vec<(String, ArchivedConsumer)>,
    messages: u64,
}

fn check_archive(path: &Path) -> Result<Checked, ApiError> {
    let file = fs::File::open(path).map_err(failed)?;
    let mut reader = ArchiveReader::new(BufReader::new(file)).map_err(failed)?;
    let first = reader.next_entry().map_err(failed)?;
    let state = match first {
        Some(e) if e.name == STATE_ENTRY => {
            serde_json::from_slice::<ArchivedStreamState>(&e.payload)
                .map_err(|e| failed(format!("stream state: {e}")))?
        }
        _ => return Err(failed("expected state.json first")),
    };
    let mut consumers = Vec::new();
    let mut last = 0u64;
    let mut messages = 0u64;
    while let Some(entry) = reader.next_entry().map_err(failed)? {
        if !entry.is_message() {
            let name = entry
                .name
                .strip_prefix(CONSUMER_PREFIX)
                .filter(|_| messages == 0)
                .ok_or_else(|| failed(format!("unexpected entry {:?}", entry.name)))?;
            let consumer: ArchivedConsumer = serde_json::from_slice(&entry.payload)
                .map_err(|e| failed(format!("consumer {name}: {e}")))?;
            consumers.push((name.to_string(), consumer));
            continue;
        }
        if entry.seq <= last || entry.seq > state.last_seq.max(entry.seq) {
            return Err(failed(format!(
                "message sequence {} out of order",
                entry.seq
            )));
        }
        if !is_storable_subject(&entry.name) {
            return Err(failed(format!(
                "message {} has an invalid subject",
                entry.seq
            )));
        }
        last = entry.seq;
        messages += 1;
    }
    if last > state.last_seq {
        return Err(failed("messages past the archive's last sequence"));
    }
    Ok(Checked {
        state,
        consumers,
        messages,
    })
}

/// Appends the archive's messages to a new log in `dir` at their own sequences.
fn build_log(
    config: &StreamConfig,
    archive: &Path,
    dir: &Path,
    checked: &Checked,
) -> Result<(), ApiError> {
    let limits = log_config(config, crate::store::SyncPolicy::Never);
    let mut log = Log::open(dir, limits).map_err(failed)?;
    let file = fs::File::open(archive).map_err(failed)?;
    let mut reader = ArchiveReader::new(BufReader::new(file)).map_err(failed)?;
    let mut batch: Vec<NewMessage> = Vec::with_capacity(APPEND_BATCH);
    let mut batch_first = 0u64;
    let append = |log: &mut Log, batch: &mut Vec<NewMessage>, first: u64| -> Result<(), ApiError> {
        if batch.is_empty() {
            return Ok(());
        }
        log.skip_to(first).map_err(failed)?;
        for (i, result) in log
            .append_batch(batch)
            .map_err(failed)?
            .into_iter()
            .enumerate()
        {
            match result {
                Ok(seq) if seq == first + i as u64 => {}
                Ok(seq) => {
                    return Err(failed(format!(
                        "message stored at {seq}, not {}",
                        first + i as u64
                    )))
                }
                Err(why) => return Err(failed(format!("message {}: {why:?}", first + i as u64))),
            }
        }
        batch.clear();
        Ok(())
    };
    while let Some(entry) = reader.next_entry().map_err(failed)? {
        if !entry.is_message() {
            continue;
        }
        if !batch.is_empty() && entry.seq != batch_first + batch.len() as u64 {
            append(&mut log, &mut batch, batch_first)?;
        }
        if batch.is_empty() {
            batch_first = entry.seq;
        }
        batch.push(NewMessage {
            subject: entry.name,
            headers: Bytes::from(entry.headers),
            payload: Bytes::from(entry.payload),
            ts_ns: entry.ts_ns.max(0) as u64,
        });
        if batch.len() >= APPEND_BATCH {
            append(&mut log, &mut batch, batch_first)?;
        }
    }
    append(&mut log, &mut batch, batch_first)?;
    if checked.messages == 0 && checked.state.first_seq > 1 {
        log.skip_to(checked.state.first_seq).map_err(failed)?;
    }
    // Deleted sequences at the end stay used, as in the stream that was backed up.
    log.skip_to(checked.state.last_seq + 1).map_err(failed)?;
    log.close().map_err(failed)
}

impl JetStream {
    /// What a restore of `config` needs before any data arrives: the name free, the
    /// account's and server's limits room for it.
    fn restorable(&self, config: &StreamConfig) -> Result<(), ApiError> {
        self.wait_opened(None);
        let in_catalog = self.cluster().is_some_and(|c| {
            c.catalog()
                .stream(&self.account_name, &config.name)
                .is_some()
        });
        if self.stream(&config.name).is_some() || in_catalog {
            return Err(name_in_use());
        }
        let existing = super::lock(&self.streams).len();
        self.account_limits().check_stream(config, Some(existing))?;
        self.limits.check_reservation(&self.account_name, config)
    }

    /// Builds the stream from a received archive and opens it; on any error nothing of it
    /// is left.
    fn install(
        &self,
        config: StreamConfig,
        archive: &Path,
        staging: &Path,
    ) -> Result<(), ApiError> {
        let checked = check_archive(archive)?;
        self.restorable(&config)?;
        self.check_overlap(&config, None)?;
        build_log(&config, archive, staging, &checked)?;
        let name = config.name.clone();
        let dir = self.stream_dir(&name);
        if dir.exists() {
            return Err(name_in_use());
        }
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(failed)?;
        }
        let created_ns = now_ns() as i64;
        self.catalog
            .put_stream(&config, created_ns)
            .map_err(ApiError::store_failed)?;
        let undo = |why: ApiError| {
            let _ = self.catalog.delete_stream(&name);
            let _ = fs::remove_dir_all(&dir);
            why
        };
        fs::rename(staging, &dir).map_err(|e| undo(failed(e)))?;
        for (consumer, archived) in &checked.consumers {
            let state = persisted(&archived.state);
            // A backup of a replicated stream restored with fewer replicas: its durables
            // had the stream's replicas, and take the restored stream's.
            let mut consumer_config = archived.config.clone();
            consumer_config.num_replicas = consumer_config.num_replicas.min(config.num_replicas);
            self.catalog
                .put_consumer(&name, consumer, &consumer_config, created_ns)
                .and_then(|_| {
                    self.catalog
                        .put_consumer_states(&[(&name, consumer, &state)])
                })
                .map_err(|e| undo(ApiError::store_failed(e)))?;
        }
        let entry = self.open_stream(config, created_ns, None).map_err(undo)?;
        drop(entry);
        self.announce(stream_action(&name, Lifecycle::Created, now_ns()));
        Ok(())
    }
}
