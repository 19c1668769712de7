//! The store of one stream, on disk or in memory: [`StreamStore`].
//!
//! JetStream streams choose `storage: file` or `storage: memory`; the stream layer holds a
//! `StreamStore` and calls the same methods either way. An enum rather than a trait object:
//! the calls sit on the publish and fetch paths and are dispatched by a `match` the compiler
//! can inline, and the file log's `&mut self` methods and consuming `close` need no object
//! safety contortions. Every method has the meaning documented on [`Log`]; [`MemLog`] gives
//! the same results for the same calls, without durability.

use std::collections::BTreeMap;
use std::time::Instant;

use super::config::{LogConfig, LogState, NewMessage, PurgeRequest, StoredMessage};
use super::error::Result;
use super::log::{AppendResult, Log};
use super::memory::MemLog;

/// Where a stream keeps its messages.
///
/// The variants differ in size (the file log carries its segment table and buffers inline).
/// There is one store per stream, owned by its actor and never kept in bulk, so boxing the
/// file log would only add a pointer chase to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum StreamStore {
    /// A segmented log on disk (`storage: file`).
    File(Log),
    /// A log in memory (`storage: memory`); gone when dropped.
    Memory(MemLog),
}

/// Calls the same method on whichever log the store holds.
macro_rules! forward {
    ($store:expr, $log:ident => $call:expr) => {
        match $store {
            StreamStore::File($log) => $call,
            StreamStore::Memory($log) => $call,
        }
    };
}

impl StreamStore {
    /// Whether the messages live in memory only.
    pub fn is_memory(&self) -> bool {
        matches!(self, StreamStore::Memory(_))
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        forward!(self, log => log.config())
    }

    /// Appends one message; a refusal by the limits is `Err(StoreError::Rejected(_))`.
    pub fn append(&mut self, msg: &NewMessage) -> Result<u64> {
        forward!(self, log => log.append(msg))
    }

    /// Appends a batch; one result per message, in order.
    pub fn append_batch(&mut self, msgs: &[NewMessage]) -> Result<Vec<AppendResult>> {
        forward!(self, log => log.append_batch(msgs))
    }

    /// Makes everything written durable (nothing to do in memory).
    pub fn sync(&mut self) -> Result<()> {
        forward!(self, log => log.sync())
    }

    /// A full sync if the last one is at least `every` old (see `Log::sync_if_older`).
    pub fn sync_if_older(&mut self, every: std::time::Duration, now: Instant) -> Result<bool> {
        forward!(self, log => log.sync_if_older(every, now))
    }

    /// Applies the sync policy; whether a full sync ran (never, in memory).
    pub fn sync_if_due(&mut self, now: Instant) -> Result<bool> {
        forward!(self, log => log.sync_if_due(now))
    }

    /// The message with sequence `seq`, if stored.
    pub fn get(&self, seq: u64) -> Result<Option<StoredMessage>> {
        forward!(self, log => log.get(seq))
    }

    /// The first stored message at or after `start_seq` matching any of `filters`.
    pub fn next_matching(&self, start_seq: u64, filters: &[&str]) -> Result<Option<StoredMessage>> {
        forward!(self, log => log.next_matching(start_seq, filters))
    }

    /// Up to `max` stored messages at or after `start_seq` matching `filters`, in order.
    pub fn scan(&self, start_seq: u64, filters: &[&str], max: usize) -> Result<Vec<StoredMessage>> {
        forward!(self, log => log.scan(start_seq, filters, max))
    }

    /// Stored messages at or after `from` matching `filters`, if known without a scan.
    pub fn count_from(&self, from: u64, filters: &[&str]) -> Option<u64> {
        forward!(self, log => log.count_from(from, filters))
    }

    /// The newest message whose subject matches `subject`.
    pub fn last_for_subject(&self, subject: &str) -> Result<Option<StoredMessage>> {
        forward!(self, log => log.last_for_subject(subject))
    }

    /// The first stored sequence with a timestamp at or after `ts_ns`, else `last_seq + 1`.
    pub fn seq_at_or_after_time(&self, ts_ns: u64) -> Result<u64> {
        forward!(self, log => log.seq_at_or_after_time(ts_ns))
    }

    /// Deletes one message; whether it was stored.
    pub fn delete(&mut self, seq: u64) -> Result<bool> {
        forward!(self, log => log.delete(seq))
    }

    /// Makes an empty, never-used log start at sequence `first` (a stream's `first_seq`).
    pub fn start_at(&mut self, first: u64) -> Result<()> {
        forward!(self, log => log.start_at(first))
    }

    /// Leaves every sequence below `next` unused, so the next append gets `next`.
    pub fn skip_to(&mut self, next: u64) -> Result<()> {
        forward!(self, log => log.skip_to(next))
    }

    /// Removes every message above `last`, so the next append gets `last + 1` (see
    /// `Log::truncate_after`).
    pub fn truncate_after(&mut self, last: u64) -> Result<()> {
        forward!(self, log => log.truncate_after(last))
    }

    /// The checkpoint of the last replicated entry applied (see `Log::applied`).
    pub fn applied(&self) -> Option<crate::store::meta::Applied> {
        forward!(self, log => log.applied())
    }

    /// Makes the store a new group's (see `Log::begin_group`).
    pub fn begin_group(&mut self) {
        forward!(self, log => log.begin_group())
    }

    /// Records that the entry at `index` has been applied (see `Log::set_applied`).
    pub fn set_applied(&mut self, index: u64) {
        forward!(self, log => log.set_applied(index))
    }

    /// Purges messages; how many were removed.
    pub fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        forward!(self, log => log.purge(req))
    }

    /// Removes messages older than `max_age` relative to `now_ns`; how many.
    pub fn expire(&mut self, now_ns: u64) -> Result<u64> {
        forward!(self, log => log.expire(now_ns))
    }

    /// Keeps message `seq` from being removed by `max_age` (a per-message TTL of `never`).
    pub fn exempt_from_age(&mut self, seq: u64) {
        forward!(self, log => log.exempt_from_age(seq))
    }

    /// When `expire` will next have something to do.
    pub fn next_expiry_ns(&self) -> Result<Option<u64>> {
        forward!(self, log => log.next_expiry_ns())
    }

    /// Counters and bounds, and the deleted sequences if asked for.
    pub fn state(&self, include_deleted: bool) -> Result<LogState> {
        forward!(self, log => log.state(include_deleted))
    }

    /// Messages per subject for the subjects matching `filter`.
    pub fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        forward!(self, log => log.subject_counts(filter))
    }

    /// Changes the limits and applies retention at once.
    pub fn update_config(&mut self, config: LogConfig) -> Result<()> {
        forward!(self, log => log.update_config(config))
    }

    /// Messages stored.
    pub fn msgs(&self) -> u64 {
        forward!(self, log => log.msgs())
    }

    /// Highest sequence ever assigned.
    pub fn last_seq(&self) -> u64 {
        forward!(self, log => log.last_seq())
    }

    /// Whether the store refuses writes after a failed fsync, and why (never, in memory).
    pub fn read_only_cause(&self) -> Option<&str> {
        match self {
            StreamStore::File(log) => log.read_only_cause(),
            StreamStore::Memory(_) => None,
        }
    }

    /// Shuts the store down: the file log syncs and writes its clean-shutdown snapshot; a
    /// memory log's messages are dropped.
    pub fn close(self) -> Result<()> {
        match self {
            StreamStore::File(log) => log.close(),
            StreamStore::Memory(_) => Ok(()),
        }
    }

    /// Closes a file log cleanly while its owner keeps it (see `Log::close_in_place`).
    pub fn close_in_place(&mut self) -> Result<()> {
        match self {
            StreamStore::File(log) => log.close_in_place(),
            StreamStore::Memory(_) => Ok(()),
        }
    }
}

impl From<Log> for StreamStore {
    fn from(log: Log) -> Self {
        StreamStore::File(log)
    }
}

impl From<MemLog> for StreamStore {
    fn from(log: MemLog) -> Self {
        StreamStore::Memory(log)
    }
}

/// The stream actor moves its store into a worker thread; keep that possible.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<StreamStore>();
};
