//! The in-memory log, for JetStream streams with `storage: memory`.
//!
//! Contract: [`MemLog`] has the API of [`Log`](super::Log) minus the files, and the same
//! semantics. Fed the same calls, both return the same sequences, the same per-message
//! [`Rejection`]s, remove the same messages under every limit and purge, and report the same
//! [`LogState`](super::LogState): bytes are counted with the file log's record-size formula
//! ([`record_len`]), `first_seq` follows the same rules, and a refused message consumes no
//! sequence. The differences are the point of it: nothing survives a drop, `sync` and
//! `sync_if_due` do nothing, and no call can fail on I/O (they keep `Result` so that
//! [`StreamStore`](super::StreamStore) can forward both kinds alike; only a bad
//! configuration or purge request is an error).
//!
//! Memory: per stored message one `BTreeMap` entry keyed by sequence, holding a 64-byte
//! [`MemMsg`] (timestamp, shared subject name, one buffer for headers and payload); per
//! subject one map entry. The message bytes are copied once, at append, into a buffer of
//! exactly their size: a `NewMessage`'s `Bytes` may be a slice of a much larger connection
//! read buffer, and keeping that slice would pin the whole buffer for as long as the message
//! is stored. Reads then share the stored buffer (`Bytes::slice`) and copy nothing.

mod read;
mod remove;
mod subjects;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::protocol::subject::is_storable_subject;

use super::config::{limit, Discard, LogConfig, NewMessage, StoredMessage};
use super::error::{Rejection, Result, StoreError};
use super::log::AppendResult;
use super::meta::Applied;
use super::record::{record_len, MAX_RECORD_BYTES, MAX_SUBJECT_BYTES};
use subjects::MemSubjects;

/// One stored message. The sequence is the map key.
#[derive(Debug, Clone)]
struct MemMsg {
    /// Unix time in nanoseconds, as given at append.
    ts_ns: u64,
    /// The subject, shared with every other message of the subject and the subject map.
    subject: Arc<str>,
    /// Headers followed by payload, in one exact-size buffer (see the module docs).
    data: Bytes,
    /// Where the headers end in `data`.
    headers_len: usize,
}

impl MemMsg {
    /// Bytes this message counts for: the size its record would have in the file log.
    fn record_len(&self) -> u64 {
        record_len(self.subject.len(), 0, self.data.len()) as u64
    }

    /// The message as the API returns it; the bytes are shared, not copied.
    fn to_stored(&self, seq: u64) -> StoredMessage {
        let headers = if self.headers_len == 0 {
            Bytes::new()
        } else {
            self.data.slice(..self.headers_len)
        };
        StoredMessage {
            seq,
            ts_ns: self.ts_ns,
            subject: self.subject.as_ref().to_owned(),
            headers,
            payload: self.data.slice(self.headers_len..),
        }
    }
}

/// A message log held in memory, with the semantics of the file [`Log`](super::Log).
#[derive(Debug)]
pub struct MemLog {
    /// Limits and policies, normalised. `segment_bytes` and `sync` are checked as for the file
    /// log (so a configuration is valid for both kinds) but otherwise unused.
    config: LogConfig,
    /// Stored messages by sequence. A `BTreeMap` rather than a ring: deletes and filtered
    /// purges leave holes anywhere, and ordered ranges serve scans and oldest-first removal.
    messages: BTreeMap<u64, MemMsg>,
    /// subject → first/last/count of stored messages.
    subjects: MemSubjects,
    /// Highest sequence ever assigned; never goes back.
    last_seq: u64,
    /// Timestamp of `last_seq`.
    last_ts_ns: u64,
    /// Bytes stored, as file-log record sizes.
    bytes: u64,
    /// Newest timestamp seen (from appends or `expire`), used as "now" for `max_age` when the
    /// limits change; the file log keeps the same clock.
    clock_ns: u64,
    /// Messages `max_age` must not remove (see the file log's field of the same name).
    age_exempt: BTreeSet<u64>,
    /// A replicated stream's checkpoint (see `Log::set_applied`); gone with the process,
    /// like the messages.
    applied: Option<Applied>,
}

impl MemLog {
    /// An empty log with the given limits.
    pub fn new(config: LogConfig) -> Result<MemLog> {
        Ok(MemLog {
            config: config.normalised()?,
            messages: BTreeMap::new(),
            subjects: MemSubjects::default(),
            last_seq: 0,
            last_ts_ns: 0,
            bytes: 0,
            clock_ns: 0,
            age_exempt: BTreeSet::new(),
            applied: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends one message; a refusal by the limits is `Err(StoreError::Rejected(_))`.
    pub fn append(&mut self, msg: &NewMessage) -> Result<u64> {
        let mut out = self.append_batch(std::slice::from_ref(msg))?;
        match out.pop() {
            Some(Ok(seq)) => Ok(seq),
            Some(Err(rejection)) => Err(rejection.into()),
            None => Err(StoreError::InvalidConfig("empty append".into())),
        }
    }

    /// Appends a batch, then applies the limits (per-subject eviction, `discard: old`
    /// removals, `max_age` relative to the newest timestamp appended), exactly as
    /// `Log::append_batch`. Returns one result per message, in order.
    pub fn append_batch(&mut self, msgs: &[NewMessage]) -> Result<Vec<AppendResult>> {
        let per_subject = limit(self.config.max_msgs_per_subject);
        let mut results = Vec::with_capacity(msgs.len());
        // As the file log: messages that replace their subject's oldest do not count towards
        // `max_msgs` under `discard: new`, but every admitted message counts its bytes.
        let mut running_msgs = self.msgs();
        let mut running_bytes = self.bytes;
        for m in msgs {
            match self.admit(m, per_subject, running_msgs, running_bytes) {
                Ok((len, replaces)) => {
                    if !replaces {
                        running_msgs += 1;
                    }
                    running_bytes += len;
                    results.push(Ok(self.store(m, len)));
                }
                Err(rejection) => results.push(Err(rejection)),
            }
        }
        self.enforce_after_append(msgs, &results);
        Ok(results)
    }

    /// The per-message checks of `Log::admit`: subject, sizes, `discard: new` limits.
    /// Returns the record length and whether the message will replace its subject's oldest.
    ///
    /// Messages of the batch are stored as they are admitted and nothing is evicted until the
    /// batch ends, so the subject map's count already includes earlier messages of the batch.
    fn admit(
        &self,
        m: &NewMessage,
        per_subject: Option<u64>,
        running_msgs: u64,
        running_bytes: u64,
    ) -> std::result::Result<(u64, bool), Rejection> {
        if m.subject.len() > MAX_SUBJECT_BYTES || !is_storable_subject(&m.subject) {
            return Err(Rejection::InvalidSubject);
        }
        let body = m.headers.len() + m.payload.len();
        if limit(self.config.max_msg_size).is_some_and(|max| body as u64 > max) {
            return Err(Rejection::MsgTooLarge);
        }
        let len = record_len(m.subject.len(), m.headers.len(), m.payload.len());
        if len > MAX_RECORD_BYTES {
            return Err(Rejection::MsgTooLarge);
        }
        let len = len as u64;
        let mut at_subject_limit = false;
        if let Some(max) = per_subject {
            let stored = self.subjects.get(&m.subject).map_or(0, |i| i.count);
            at_subject_limit = stored >= max;
            if at_subject_limit && self.config.discard_new_per_subject {
                return Err(Rejection::MaxMsgsPerSubject);
            }
        }
        // As nats-server's filestore (and our file log): a message that replaces its
        // subject's oldest does not grow the stream, so `discard: new` does not refuse it.
        if self.config.discard == Discard::New && !at_subject_limit {
            if limit(self.config.max_msgs).is_some_and(|max| running_msgs + 1 > max) {
                return Err(Rejection::MaxMsgs);
            }
            if limit(self.config.max_bytes).is_some_and(|max| running_bytes + len > max) {
                return Err(Rejection::MaxBytes);
            }
        }
        Ok((len, at_subject_limit))
    }

    /// Stores an admitted message under the next sequence and returns that sequence.
    fn store(&mut self, m: &NewMessage, len: u64) -> u64 {
        let seq = self.last_seq + 1;
        let mut data = BytesMut::with_capacity(m.headers.len() + m.payload.len());
        data.extend_from_slice(&m.headers);
        data.extend_from_slice(&m.payload);
        let msg = MemMsg {
            ts_ns: m.ts_ns,
            subject: self.subjects.add(&m.subject, seq),
            data: data.freeze(),
            headers_len: m.headers.len(),
        };
        debug_assert_eq!(
            msg.record_len(),
            len,
            "byte accounting matches the file log"
        );
        let previous = self.messages.insert(seq, msg);
        debug_assert!(previous.is_none(), "sequences only grow");
        self.bytes += len;
        self.last_seq = seq;
        self.last_ts_ns = m.ts_ns;
        self.clock_ns = self.clock_ns.max(m.ts_ns);
        seq
    }

    /// Nothing to make durable; kept so callers treat both kinds alike.
    pub fn sync(&mut self) -> Result<()> {
        Ok(())
    }

    /// Nothing to make durable: always `Ok(false)` ("no sync ran"), whatever the policy.
    pub fn sync_if_due(&mut self, _now: Instant) -> Result<bool> {
        Ok(false)
    }

    /// Nothing to make durable: always `Ok(false)`.
    pub fn sync_if_older(&mut self, _every: std::time::Duration, _now: Instant) -> Result<bool> {
        Ok(false)
    }

    /// Changes the limits; retention is applied at once (`max_age` against the newest
    /// timestamp seen). An invalid configuration is refused and the old one stays.
    pub fn update_config(&mut self, config: LogConfig) -> Result<()> {
        self.config = config.normalised()?;
        self.enforce_limits(true);
        self.expire_at(self.clock_ns);
        Ok(())
    }

    /// Messages stored.
    pub fn msgs(&self) -> u64 {
        self.messages.len() as u64
    }

    /// Makes an empty log that never held a message start at sequence `first` (see
    /// `Log::start_at`).
    pub fn start_at(&mut self, first: u64) -> Result<()> {
        if self.last_seq == 0 && first > 1 {
            self.last_seq = first - 1;
        }
        Ok(())
    }

    /// The checkpoint of the last replicated entry applied (see `Log::applied`).
    pub fn applied(&self) -> Option<Applied> {
        self.applied
    }

    /// Makes the store a new group's (see `Log::begin_group`).
    pub fn begin_group(&mut self) {
        self.applied = Some(Applied {
            index: 0,
            last_seq: self.last_seq,
        });
    }

    /// Records that the entry at `index` has been applied (see `Log::set_applied`).
    pub fn set_applied(&mut self, index: u64) {
        self.applied = Some(Applied {
            index,
            last_seq: self.last_seq,
        });
    }

    /// Highest sequence ever assigned.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Leaves every sequence below `next` unused (see `Log::skip_to`).
    pub fn skip_to(&mut self, next: u64) -> Result<()> {
        self.last_seq = self.last_seq.max(next.saturating_sub(1));
        Ok(())
    }
}

/// The stream actor moves its store into a worker thread; keep that possible.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<MemLog>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_bytes_do_not_pin_the_callers_buffer() {
        let read_buf = Bytes::from(vec![9u8; 64 * 1024]);
        let mut log = MemLog::new(LogConfig::default()).expect("config");
        let msg = NewMessage {
            subject: "a".into(),
            headers: read_buf.slice(0..4),
            payload: read_buf.slice(4..10),
            ts_ns: 1,
        };
        log.append(&msg).expect("append");
        let stored = log.messages.get(&1).expect("stored");
        assert_eq!(
            stored.data.len(),
            10,
            "one buffer of exactly the message's size"
        );
        assert_ne!(stored.data.as_ptr(), read_buf.as_ptr());
    }

    #[test]
    fn reads_share_the_stored_buffer() {
        let mut log = MemLog::new(LogConfig::default()).expect("config");
        log.append(&NewMessage::new("a", vec![1u8; 100], 1))
            .expect("append");
        let first = log.get(1).expect("get").expect("stored");
        let second = log.get(1).expect("get").expect("stored");
        assert_eq!(first.payload.as_ptr(), second.payload.as_ptr());
    }

    #[test]
    fn removing_a_subjects_newest_finds_the_one_before() {
        let mut log = MemLog::new(LogConfig::default()).expect("config");
        for (i, s) in ["a", "b", "a", "b", "a"].iter().enumerate() {
            log.append(&NewMessage::new(*s, vec![], i as u64))
                .expect("append");
        }
        assert!(log.delete(5).expect("delete"));
        assert_eq!(
            log.subjects.get("a").map(|i| (i.last, i.count)),
            Some((3, 2))
        );
        assert_eq!(
            log.last_for_subject("a").expect("last").map(|m| m.seq),
            Some(3)
        );
    }
}
