//! Limits and policies of one log, and the plain data types that cross its API.
//!
//! Limits follow nats-server's convention: a negative value (we use `-1`) or `0` means
//! "unlimited" for `max_msgs`, `max_bytes`, `max_msgs_per_subject` and `max_msg_size`; a
//! `max_age` of zero means "keep forever". `LogConfig::normalised` folds every spelling of
//! "unlimited" into `-1` so the rest of the store only checks `> 0`.

use std::time::Duration;

use bytes::Bytes;

use super::error::{Result, StoreError};

/// Default size at which a segment is sealed and a new one started (8 MiB, as nats-server's
/// default block size for limits streams).
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Smallest allowed segment size; smaller segments would mostly hold headers and indexes.
pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;
/// Largest allowed segment size: record offsets in the index are `u32`, and one oversized
/// record may still be appended to a nearly full segment, so keep well below 4 GiB.
pub const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// When the log makes appended data durable. See `Log::sync_if_due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fdatasync after every batch (the caller calls `sync_if_due` once per batch, before
    /// acknowledging anything in it). Nothing acknowledged is lost on power failure.
    #[default]
    Always,
    /// fdatasync when at least this much time passed since the last one. Acknowledged writes
    /// of the last interval can be lost on power failure (not on a process crash).
    Interval(Duration),
    /// Never fsync segment data; leave it to the OS. Deletes are still written to the deletes
    /// file (durably) at most once per second so they are not forgotten on a process crash.
    Never,
}

/// What to do when a limit would be passed by a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    /// Remove the oldest messages to make room (nats `discard: old`, the default).
    #[default]
    Old,
    /// Refuse the new message with a [`super::Rejection`] (nats `discard: new`).
    New,
}

/// Limits and policies of one log. Build with `LogConfig::default()` and struct update syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Maximum number of messages kept; `-1` or `0` = unlimited.
    pub max_msgs: i64,
    /// Maximum bytes kept, counted as stored record sizes; `-1` or `0` = unlimited.
    pub max_bytes: i64,
    /// Messages older than this (by their timestamp) are removed; zero = forever.
    pub max_age: Duration,
    /// Maximum messages kept per subject; `-1` or `0` = unlimited.
    pub max_msgs_per_subject: i64,
    /// Maximum headers + payload bytes of one message; `-1` or `0` = unlimited.
    pub max_msg_size: i64,
    /// What to do when `max_msgs` or `max_bytes` would be passed.
    pub discard: Discard,
    /// With `discard: New`, also refuse a message whose subject holds
    /// `max_msgs_per_subject` messages (instead of removing that subject's oldest).
    pub discard_new_per_subject: bool,
    /// Segment size at which the active segment is sealed.
    pub segment_bytes: u64,
    /// When appended data is fsynced.
    pub sync: SyncPolicy,
    /// Payloads are stored compressed where that makes them smaller (a stream's
    /// `compression: s2`). Reading handles both kinds whatever this says, so it can change
    /// at any time: it applies to what is appended from then on.
    pub compress: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_msgs: -1,
            max_bytes: -1,
            max_age: Duration::ZERO,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            discard: Discard::Old,
            discard_new_per_subject: false,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync: SyncPolicy::Always,
            compress: false,
        }
    }
}

/// `Some(limit)` when a limit field is set, `None` when it means "unlimited".
pub(crate) fn limit(value: i64) -> Option<u64> {
    (value > 0).then_some(value as u64)
}

impl LogConfig {
    /// Checks the configuration and folds every "unlimited" spelling into `-1`.
    pub fn normalised(mut self) -> Result<Self> {
        for v in [
            &mut self.max_msgs,
            &mut self.max_bytes,
            &mut self.max_msgs_per_subject,
            &mut self.max_msg_size,
        ] {
            if *v <= 0 {
                *v = -1;
            }
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(StoreError::InvalidConfig(format!(
                "segment_bytes {} outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.discard_new_per_subject
            && (self.discard != Discard::New || self.max_msgs_per_subject <= 0)
        {
            return Err(StoreError::InvalidConfig(
                "discard_new_per_subject requires discard new and max_msgs_per_subject > 0".into(),
            ));
        }
        if let SyncPolicy::Interval(d) = self.sync {
            if d.is_zero() {
                return Err(StoreError::InvalidConfig(
                    "sync interval must be > 0".into(),
                ));
            }
        }
        Ok(self)
    }
}

/// A message to append. The timestamp is supplied by the caller so that the clock is injected
/// (tests and the stream state machine control time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Literal subject (no wildcards).
    pub subject: String,
    /// Raw NATS header block (`NATS/1.0\r\n...`), empty when the message has none.
    pub headers: Bytes,
    /// Payload bytes.
    pub payload: Bytes,
    /// Unix time in nanoseconds.
    pub ts_ns: u64,
}

impl NewMessage {
    /// A message without headers.
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>, ts_ns: u64) -> Self {
        NewMessage {
            subject: subject.into(),
            headers: Bytes::new(),
            payload: payload.into(),
            ts_ns,
        }
    }
}

/// A message read back from the log. Bytes are copied out of the read buffer, so holding a
/// message never pins a larger buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// Unix time in nanoseconds, as given at append.
    pub ts_ns: u64,
    /// Subject.
    pub subject: String,
    /// Raw header block, possibly empty.
    pub headers: Bytes,
    /// Payload.
    pub payload: Bytes,
}

/// What to purge. All fields empty = everything (nats `$JS.API.STREAM.PURGE` semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Only messages whose subject matches this pattern.
    pub filter: Option<String>,
    /// Only messages with a sequence strictly below this one (nats `seq`).
    pub up_to_seq: Option<u64>,
    /// Keep the newest this many (of those matching `filter`).
    pub keep: Option<u64>,
}

/// A summary of the log, as JetStream's `StreamState` needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// Messages stored.
    pub msgs: u64,
    /// Bytes stored, counted as record sizes on disk.
    pub bytes: u64,
    /// First stored sequence; `last_seq + 1` when empty, `0` for a log that never held one.
    pub first_seq: u64,
    /// Timestamp of the first stored message, `0` when empty.
    pub first_ts_ns: u64,
    /// Highest sequence ever assigned (kept when messages are removed).
    pub last_seq: u64,
    /// Timestamp of the message with `last_seq`, `0` if none was ever appended.
    pub last_ts_ns: u64,
    /// Number of distinct subjects stored.
    pub num_subjects: u64,
    /// Sequences between `first_seq` and `last_seq` that hold no message.
    pub num_deleted: u64,
    /// Those sequences, when asked for.
    pub deleted: Vec<u64>,
}
