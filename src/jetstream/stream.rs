//! One stream: its configuration, its log, and the rules a publish must pass to be stored.
//!
//! `Stream` is a synchronous state machine: the server's stream actor hands it a batch of
//! publishes with the current time, gets one `PubAck` per publish back, then calls `sync`
//! before any ack leaves. Messages without expectations are appended together with one write;
//! a message whose checks depend on what was stored before it (expected sequences, a message
//! id already in the batch, a rollup) first flushes what is pending, so every check sees the
//! exact state nats-server's one-at-a-time processing would show it.

use super::msg_ttl::{MsgTtl, TtlIndex};
use super::stream_counters::CounterChange;
pub use super::stream_expectations::{header, MAX_HEADER_BYTES};
use super::stream_fast_batch::{parse_reply, FastGate, FastRef};
use super::stream_republish::{Republished, Transforms};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::api_types::PubAck;
use super::dedup::DedupWindow;
use super::error::ApiError;
use super::stream_config::{Discard, PersistMode, Storage, StreamConfig};
use crate::protocol::headers::header_value;
use crate::protocol::Publish;
use crate::store::{
    self, Log, LogConfig, MemLog, NewMessage, PurgeRequest, Rejection, StoreError, StreamStore,
    SyncPolicy,
};

/// How often a stream with `persist_mode: async` syncs its log (nats-server leaves it to its
/// `sync_interval`, 2 minutes by default; a second loses less on a power failure).
pub const ASYNC_PERSIST_SYNC: Duration = Duration::from_secs(1);

/// A publish accepted by the checks and waiting to be appended.
struct Pending {
    index: usize,
    msg_id: Option<String>,
    ttl: Option<MsgTtl>,
    /// A counter's new total, for the PubAck.
    val: Option<String>,
    /// The fast batch the message belongs to (see `stream_fast_batch`).
    fast: Option<FastRef>,
}

/// A stream and its log.
pub struct Stream {
    config: StreamConfig,
    created_ns: i64,
    dir: PathBuf,
    /// A file log, or a memory log for `storage: memory` (same semantics, nothing on disk).
    pub(super) log: StreamStore,
    /// The stream's consumers (see `stream_consumers`).
    pub(super) consumers: super::stream_consumers::Consumers,
    sync: SyncPolicy,
    pub(super) dedup: DedupWindow,
    /// The `Nats-Msg-Id` of the newest stored message, for `Nats-Expected-Last-Msg-Id`.
    pub(super) last_msg_id: Option<String>,
    /// When messages with a per-message TTL fall due (see `stream_ttl`).
    pub(super) ttl: TtlIndex,
    /// Subjects emptied by age that are owed a delete marker (see `stream_markers`).
    pub(super) markers_owed: Vec<String>,
    /// What the upkeep stored (delete markers, scheduled messages) and the consumers have
    /// not yet heard of.
    pub(super) upkeep_stored: Vec<(u64, String)>,
    /// The compiled `subject_transform` and `republish` (see `stream_republish`).
    pub(super) transforms: Transforms,
    /// Republished copies waiting for their batch to be durable.
    pub(super) republished: Vec<Republished>,
    /// Atomic batches being staged, and what the last commits stored (see `stream_batch`).
    pub(super) batches: super::stream_batch::Batches,
    /// Message schedules by subject (see `stream_schedules`), and whether the stream is
    /// storing a scheduled message (whose headers skip the publish checks).
    pub(super) schedules: super::stream_schedules::Schedules,
    pub(super) producing: bool,
    /// Advisories the stream itself raised (an abandoned batch), for the actor to publish.
    pub(super) advisories: Vec<super::consumer::Action>,
    /// What a mirror knows of its origin (see `stream_mirror`).
    pub(super) mirror: super::stream_mirror::MirrorState,
    /// The sources and where each has got to (see `stream_sourcing`), and whether the
    /// stream is storing a sourced message (which the publish checks take as its origin had it).
    pub(super) sources: super::stream_sources::Sources,
    pub(super) sourcing: bool,
    /// A replica's retention by its group's entries (see `replica_consumers`); `None` for a
    /// stream that is not replicated.
    pub(super) replicated_retention: Option<super::replica_consumers::ReplicatedRetention>,
}

/// Store limits for a stream configuration.
pub fn log_config(config: &StreamConfig, sync: SyncPolicy) -> LogConfig {
    LogConfig {
        max_msgs: config.max_msgs,
        max_bytes: config.max_bytes,
        // With subject delete markers the stream ages messages out itself, to see which
        // subjects empty (see `stream_markers`).
        max_age: match config.subject_delete_marker_ttl > 0 {
            true => Duration::ZERO,
            false => Duration::from_nanos(config.max_age.max(0) as u64),
        },
        max_msgs_per_subject: config.max_msgs_per_subject,
        max_msg_size: config.max_msg_size,
        discard: match config.discard {
            Discard::Old => store::Discard::Old,
            Discard::New => store::Discard::New,
        },
        discard_new_per_subject: config.discard_new_per_subject,
        sync,
        compress: config.compression == "s2",
        ..LogConfig::default()
    }
}

/// Messages read per scan while the duplicate window is rebuilt at open.
const REBUILD_BATCH: usize = 4096;

pub(super) fn store_error(err: StoreError) -> ApiError {
    match err {
        // A full disk is a resource limit, as nats-server reports it; the batch was rolled
        // back and publishing resumes once space is freed.
        StoreError::NoSpace { .. } => ApiError::insufficient_resources(),
        other => ApiError::store_failed(other),
    }
}

pub(super) fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::MsgTooLarge => ApiError::message_too_large(),
        Rejection::InvalidSubject => ApiError::bad_request(Some("invalid subject")),
        other => ApiError::store_failed(other),
    }
}

impl Stream {
    /// Opens (or creates) the stream's log in `dir` and rebuilds its duplicate window from the
    /// messages of the last window, so deduplication survives a restart. A memory stream
    /// starts empty and touches no files.
    pub fn open(
        dir: &Path,
        config: StreamConfig,
        created_ns: i64,
        sync: SyncPolicy,
        now_ns: u64,
    ) -> Result<Self, ApiError> {
        // `persist_mode: async` acknowledges before the fsync: the log syncs on an interval.
        let sync = match (config.persist_mode, sync) {
            (PersistMode::Async, SyncPolicy::Always) => SyncPolicy::Interval(ASYNC_PERSIST_SYNC),
            _ => sync,
        };
        let limits = log_config(&config, sync);
        let mirror = super::stream_mirror::MirrorState::of(&config);
        let log = match config.storage {
            Storage::File => StreamStore::from(Log::open(dir, limits).map_err(store_error)?),
            Storage::Memory => StreamStore::from(MemLog::new(limits).map_err(store_error)?),
        };
        let mut stream = Self {
            dedup: DedupWindow::new(config.duplicate_window.max(0) as u64),
            config,
            created_ns,
            dir: dir.to_path_buf(),
            log,
            consumers: Default::default(),
            replicated_retention: None,
            sync,
            last_msg_id: None,
            ttl: TtlIndex::default(),
            markers_owed: Vec::new(),
            upkeep_stored: Vec::new(),
            transforms: Transforms::default(),
            republished: Vec::new(),
            batches: Default::default(),
            schedules: Default::default(),
            producing: false,
            advisories: Vec::new(),
            mirror,
            sources: super::stream_sources::Sources::default(),
            sourcing: false,
        };
        stream.sources = super::stream_sources::Sources::of(&stream.config);
        stream.recover_source_positions()?;
        stream.transforms = Transforms::of(&stream.config);
        stream.roll_back_torn_batch()?;
        stream.rebuild_dedup(now_ns)?;
        stream.rebuild_ttls()?;
        stream.rebuild_schedules(now_ns)?;
        Ok(stream)
    }

    fn rebuild_dedup(&mut self, now_ns: u64) -> Result<(), ApiError> {
        let since = now_ns.saturating_sub(self.config.duplicate_window.max(0) as u64);
        let seq = self.log.seq_at_or_after_time(since).map_err(store_error)?;
        self.each_stored_from(seq, |stream, msg| {
            if let Some(id) = header_value(&msg.headers, header::MSG_ID) {
                stream
                    .dedup
                    .insert(String::from_utf8_lossy(id).into_owned(), msg.seq, msg.ts_ns);
            }
        })?;
        let last = self.log.last_seq();
        if let Some(msg) = self.log.get(last).map_err(store_error)? {
            self.last_msg_id = header_value(&msg.headers, header::MSG_ID)
                .map(|v| String::from_utf8_lossy(v).into_owned());
        }
        self.dedup.expire(now_ns);
        Ok(())
    }

    /// Calls `f` with every stored message from `seq` on: what the open-time rebuilds (dedup,
    /// TTLs, schedules) read. In batches: one scan reads its records in large windows, where a
    /// lookup per message cost a read per message (8.7 s to reopen a stream of 10M messages
    /// stored within the dedup window).
    pub(super) fn each_stored_from(
        &mut self,
        mut seq: u64,
        mut f: impl FnMut(&mut Self, &store::StoredMessage),
    ) -> Result<(), ApiError> {
        loop {
            let batch = self
                .log
                .scan(seq, &[], REBUILD_BATCH)
                .map_err(store_error)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            seq = last.seq + 1;
            for msg in &batch {
                f(self, msg);
            }
        }
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    pub fn created_ns(&self) -> i64 {
        self.created_ns
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> &StreamStore {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut StreamStore {
        &mut self.log
    }

    /// Replaces the configuration (already checked with `StreamConfig::check_update`) and
    /// applies the new limits to the log at once.
    pub fn update(&mut self, config: StreamConfig) -> Result<(), ApiError> {
        self.log
            .update_config(log_config(&config, self.sync))
            .map_err(store_error)?;
        self.dedup.set_window(config.duplicate_window.max(0) as u64);
        self.transforms = Transforms::of(&config);
        self.batches.on_update(&config);
        if config.mirror.is_none() && self.mirror.spec.is_some() {
            self.mirror = super::stream_mirror::MirrorState::default();
        }
        let sources_changed = config.sources != self.config.sources;
        self.config = config;
        if sources_changed {
            self.update_sources()?;
        }
        Ok(())
    }

    /// Checks and stores a batch of publishes; one ack per publish, in order. Nothing here is
    /// durable until `sync` returns.
    ///
    /// Takes the publishes as they came off the wire, owned or borrowed, so the caller need
    /// not copy them into another type first.
    pub fn process<M: Borrow<Publish>>(&mut self, batch: &[M], now_ns: u64) -> Vec<PubAck> {
        self.dedup.expire(now_ns);
        let mut acks: Vec<Option<PubAck>> = vec![None; batch.len()];
        let mut pending: Vec<Pending> = Vec::new();
        let mut messages: Vec<NewMessage> = Vec::new();
        let mut pending_ids: HashMap<String, usize> = HashMap::new();
        // Sourced messages stop at the first one refused: it is read again later, and those
        // after it with it (see `stream_sourcing`).
        let stop_at_refusal = self.sourcing;
        let flush_each = self.sourcing && self.config.discard == Discard::New;
        for (index, msg) in batch.iter().enumerate() {
            if stop_at_refusal && index > 0 && matches!(acks[index - 1], Some(PubAck::Failed(_))) {
                break;
            }
            let mut msg: &Publish = msg.borrow();
            let fast_op = match self.producing {
                true => None,
                false => msg.reply.as_deref().and_then(parse_reply),
            };
            let mut fast = None;
            let stripped;
            if let Some(op) = fast_op {
                match self.fast_gate(msg, op, now_ns) {
                    FastGate::Done(ack) => {
                        acks[index] = Some(ack);
                        continue;
                    }
                    FastGate::Store {
                        fast: f,
                        replies,
                        headers,
                    } => {
                        fast = Some(f);
                        acks[index] = Some(PubAck::Fast {
                            stored: None,
                            replies,
                        });
                        if let Some(headers) = headers {
                            stripped = Publish {
                                headers: Some(headers),
                                ..msg.clone()
                            };
                            msg = &stripped;
                        }
                    }
                }
            }
            let batch = match self.producing || fast.is_some() {
                // A scheduled message is stored as produced, whatever its headers say.
                true => None,
                false => super::stream_batch::batch_id(msg.headers.as_deref()),
            };
            if let Some(id) = batch {
                // A commit must see everything before it stored.
                self.flush(&mut pending, &mut messages, &mut acks, now_ns);
                pending_ids.clear();
                acks[index] = Some(self.batch_publish(msg, &id, now_ns));
                continue;
            }
            let subject = self.stored_subject(&msg.subject);
            let expect = match self.check_stateless(msg) {
                Ok(expect) => expect,
                Err(err) => {
                    acks[index] = Some(self.refused(&fast, PubAck::Failed(err), &mut acks[index]));
                    continue;
                }
            };
            let id_pending = expect
                .msg_id
                .as_ref()
                .is_some_and(|id| pending_ids.contains_key(id));
            if expect.needs_settled_state() || id_pending {
                self.flush(&mut pending, &mut messages, &mut acks, now_ns);
                pending_ids.clear();
            }
            if let Err(err) = self.check_stateful(&subject, &expect) {
                acks[index] = Some(self.refused(&fast, PubAck::Failed(err), &mut acks[index]));
                continue;
            }
            if let Some(seq) = expect.msg_id.as_deref().and_then(|id| self.dedup.get(id)) {
                acks[index] =
                    Some(self.refused(&fast, PubAck::Duplicate { seq }, &mut acks[index]));
                continue;
            }
            let change = match (&expect.incr, &expect.sourced) {
                (Some(incr), _) => Some(CounterChange::Local(incr)),
                (None, Some(count)) => Some(CounterChange::Sourced(count)),
                (None, None) => None,
            };
            let (payload, val, counted_headers) = match change {
                None => (msg.payload.clone(), None, None),
                Some(change) => match self.counter_base(&subject_text(&subject)) {
                    Ok(mut base) => {
                        let given = expect.headers.as_ref().or(msg.headers.as_ref());
                        let counted = base.apply(change, given);
                        (
                            counted.body,
                            Some(counted.total.to_string()),
                            counted.headers,
                        )
                    }
                    Err(err) => {
                        acks[index] =
                            Some(self.refused(&fast, PubAck::Failed(err), &mut acks[index]));
                        continue;
                    }
                },
            };
            if let Some(id) = &expect.msg_id {
                pending_ids.insert(id.clone(), index);
            }
            messages.push(NewMessage {
                subject: subject_text(&subject),
                headers: counted_headers
                    .or_else(|| expect.headers.clone())
                    .or_else(|| msg.headers.clone())
                    .unwrap_or_default(),
                payload,
                ts_ns: now_ns,
            });
            pending.push(Pending {
                index,
                msg_id: expect.msg_id.clone(),
                ttl: expect.ttl,
                val,
                fast,
            });
            if flush_each {
                // Discard-new limits may refuse one message and take the next.
                self.flush(&mut pending, &mut messages, &mut acks, now_ns);
                pending_ids.clear();
            }
            if let Some(rollup) = &expect.rollup {
                self.flush(&mut pending, &mut messages, &mut acks, now_ns);
                pending_ids.clear();
                if let Some(seq) = acks[index].as_ref().and_then(PubAck::stored_seq) {
                    if let Err(err) = self.roll_up(rollup, &subject, seq) {
                        acks[index] = Some(PubAck::Failed(err));
                    }
                }
            }
        }
        self.flush(&mut pending, &mut messages, &mut acks, now_ns);
        acks.into_iter()
            .map(|ack| {
                ack.unwrap_or_else(|| {
                    PubAck::Failed(ApiError::store_failed("message was not processed"))
                })
            })
            .collect()
    }

    /// Appends what is pending with one write and records each outcome.
    fn flush(
        &mut self,
        pending: &mut Vec<Pending>,
        messages: &mut Vec<NewMessage>,
        acks: &mut [Option<PubAck>],
        now_ns: u64,
    ) {
        if pending.is_empty() {
            return;
        }
        let mut lasts = match self.republish_lasts(messages) {
            Ok(lasts) => lasts,
            Err(err) => {
                for p in pending.iter() {
                    let refused = PubAck::Failed(err.clone());
                    acks[p.index] = Some(self.refused(&p.fast, refused, &mut acks[p.index]));
                }
                pending.clear();
                messages.clear();
                return;
            }
        };
        match self.log.append_batch(messages) {
            Ok(results) => {
                for ((p, result), msg) in pending.iter().zip(results).zip(messages.iter()) {
                    acks[p.index] = Some(match result {
                        Ok(seq) => {
                            if let Some(lasts) = &mut lasts {
                                self.republish_stored(seq, msg, lasts);
                            }
                            if let Some(ttl) = p.ttl {
                                self.record_ttl(seq, now_ns, ttl);
                            }
                            if let Some(id) = &p.msg_id {
                                self.dedup.insert(id.clone(), seq, now_ns);
                            }
                            self.schedule_stored(
                                seq,
                                &msg.subject,
                                &msg.headers,
                                msg.ts_ns,
                                now_ns,
                            );
                            self.last_msg_id = p.msg_id.clone();
                            match (&p.fast, &p.val) {
                                (Some(f), _) => self.fast_stored(f, seq, acks[p.index].take()),
                                (None, Some(val)) => PubAck::Counted {
                                    seq,
                                    val: val.clone(),
                                },
                                (None, None) => PubAck::Stored { seq },
                            }
                        }
                        Err(rejection) => {
                            let refused = PubAck::Failed(rejection_error(rejection));
                            self.refused(&p.fast, refused, &mut acks[p.index])
                        }
                    });
                }
            }
            Err(err) => {
                let err = store_error(err);
                for p in pending.iter() {
                    let refused = PubAck::Failed(err.clone());
                    acks[p.index] = Some(self.refused(&p.fast, refused, &mut acks[p.index]));
                }
            }
        }
        pending.clear();
        messages.clear();
    }

    /// Applies `Nats-Rollup` after the message at `seq` was stored.
    pub(super) fn roll_up(
        &mut self,
        rollup: &str,
        subject: &[u8],
        seq: u64,
    ) -> Result<(), ApiError> {
        let filter = (rollup == "sub").then(|| String::from_utf8_lossy(subject).into_owned());
        let req = PurgeRequest {
            filter,
            up_to_seq: Some(seq),
            keep: None,
        };
        self.log
            .purge(&req)
            .map(drop)
            .map_err(ApiError::rollup_failed)
    }

    /// Periodic upkeep: removes messages past max_age and, under an interval sync policy,
    /// syncs what the last batches appended so that no acknowledged write waits for the next
    /// publish to become durable.
    /// Returns how many messages expired.
    pub fn tick(&mut self, now_ns: u64, now: Instant) -> Result<u64, ApiError> {
        self.expire_batches(now_ns);
        let mut expired = self.expire_ttls(now_ns)?;
        self.fire_schedules(now_ns)?;
        if self.has_markers() {
            expired += self.expire_by_age(now_ns)?;
            self.write_markers(now_ns);
        } else if self.config.max_age > 0 {
            expired += self.log.expire(now_ns).map_err(store_error)?;
        }
        self.sync(now)?;
        Ok(expired)
    }

    /// The soonest moment a consumer has something to do on time: a held-back message may go
    /// (replay original, rate limit), a pull request expires or owes a heartbeat. The timer
    /// ticks the stream then rather than at its next regular tick.
    pub fn next_wake_ns(&self) -> Option<u64> {
        self.consumers
            .values()
            .filter_map(|c| c.next_deadline_ns())
            .chain(self.ttl.next_due_ns())
            .chain(self.batches.next_deadline_ns())
            .chain(self.schedules.next_due_ns())
            .min()
    }

    /// Whether this stream needs periodic ticks at all: an idle stream whose consumers have
    /// nothing outstanding costs the timer nothing (10,000 such streams were 200,000 ticks a
    /// second).
    pub fn needs_ticks(&self) -> bool {
        self.config.max_age > 0
            || matches!(self.sync, SyncPolicy::Interval(_))
            || !self.batches.is_empty()
            || self.mirror.spec.is_some()
            || !self.sources.is_empty()
            || self.consumers.values().any(|c| c.needs_ticks())
    }

    /// Makes everything appended so far durable as the sync policy requires. Under `always`
    /// this is the fsync no acknowledgement may precede.
    pub fn sync(&mut self, now: Instant) -> Result<(), ApiError> {
        self.log.sync_if_due(now).map(drop).map_err(store_error)
    }
}

/// A subject as the store keeps it: the bytes themselves when they are UTF-8 (the usual case,
/// checked much faster than the lossy conversion walks them), replacement characters otherwise.
fn subject_text(subject: &[u8]) -> String {
    match std::str::from_utf8(subject) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(subject).into_owned(),
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
