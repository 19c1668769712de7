//! The log of one stream: a directory of segments plus two small metadata files.
//!
//! Contract with the caller (the stream actor):
//! - `append_batch` writes a whole batch with one `write` (a batch larger than a segment is
//!   written in segment-sized parts), assigns sequences and applies the limits. Nothing is
//!   durable yet.
//! - `sync_if_due` (once per batch) applies the [`SyncPolicy`]; with `Always` it fdatasyncs
//!   every written segment, fsyncs the directory if a segment was created or removed, and
//!   writes `deletes.dat` if deletes changed. Only after it returns `Ok` may the batch be
//!   acknowledged.
//! - Any failed fsync (or a failed rollback of a failed write) makes the log read-only for
//!   good: later writes return [`StoreError::ReadOnly`]. Reads keep working.
//! - Reads take `&self` and verify every record's CRC; a damaged record is an error, never
//!   data.
//!
//! Memory: per stored message the log keeps nothing in memory except the active segment's
//! index (12 bytes per message of that one segment) and up to [`INDEX_CACHE_SEGMENTS`]
//! sealed indexes loaded on demand. Per subject it keeps one map entry. Per segment, a summary
//! and an open file.

mod open;
mod read;
mod remove;
mod replicated;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::subject::is_storable_subject;

use super::config::{limit, Discard, LogConfig, NewMessage, SyncPolicy};
use super::error::{Rejection, Result, StoreError};
use super::index::SegmentIndex;
use super::io::{write_atomically, Vfs};
use super::meta::{Applied, Snapshot, SubjectEntry, SNAPSHOT_FILE};
use super::ranges::RangeSet;
use super::record::{
    encode_record, encode_record_compressed, record_len, MAX_RECORD_BYTES, MAX_SUBJECT_BYTES,
};
use super::recovery::RecoveryReport;
use super::segment::Segment;
use super::subjects::Subjects;

/// Sealed-segment indexes kept loaded at once (each is 12 bytes per message of its segment,
/// about 0.8 MiB for an 8 MiB segment of 128-byte messages).
pub const INDEX_CACHE_SEGMENTS: usize = 8;
/// With `SyncPolicy::Never`, how often changed deletes are written to `deletes.dat`.
pub const NEVER_POLICY_DELETES_INTERVAL: Duration = Duration::from_secs(1);

/// Per-message outcome of an append: the assigned sequence or why it was refused.
pub type AppendResult = std::result::Result<u64, Rejection>;

/// A small LRU of sealed-segment indexes, keyed by segment base sequence.
#[derive(Debug, Default)]
struct IndexCache {
    entries: VecDeque<(u64, Arc<SegmentIndex>)>,
}

impl IndexCache {
    fn get(&mut self, base: u64) -> Option<Arc<SegmentIndex>> {
        let pos = self.entries.iter().position(|(b, _)| *b == base)?;
        let entry = self.entries.remove(pos)?;
        let index = entry.1.clone();
        self.entries.push_back(entry);
        Some(index)
    }
    fn put(&mut self, base: u64, index: Arc<SegmentIndex>) {
        self.entries.retain(|(b, _)| *b != base);
        self.entries.push_back((base, index));
        while self.entries.len() > INDEX_CACHE_SEGMENTS {
            self.entries.pop_front();
        }
    }
    fn forget(&mut self, base: u64) {
        self.entries.retain(|(b, _)| *b != base);
    }
}

/// A segment's index, either borrowed from the active segment or shared from the cache.
enum IndexRef<'a> {
    Active(&'a SegmentIndex),
    Cached(Arc<SegmentIndex>),
}

impl std::ops::Deref for IndexRef<'_> {
    type Target = SegmentIndex;
    fn deref(&self) -> &SegmentIndex {
        match self {
            IndexRef::Active(i) => i,
            IndexRef::Cached(i) => i,
        }
    }
}

/// A persistent, segmented message log. See the module docs for the durability contract.
#[derive(Debug)]
pub struct Log {
    /// The log's directory; holds nothing but this log's files.
    dir: PathBuf,
    /// All file operations go through here (real files, or a fault-injecting layer in tests).
    vfs: Arc<dyn Vfs>,
    /// Limits and policies, normalised.
    config: LogConfig,
    /// Segments by ascending base sequence; only the last one can be unsealed (active).
    segments: Vec<Segment>,
    /// subject → first/last/count of stored messages.
    subjects: Subjects,
    /// Deleted sequences at or above `floor` (only those inside existing segments matter).
    deleted: RangeSet,
    /// Every sequence below this is gone. Invariant: while messages are stored it is the first
    /// stored sequence.
    floor: u64,
    /// Highest sequence ever assigned; never goes back, also across restarts.
    last_seq: u64,
    /// Timestamp of `last_seq`.
    last_ts_ns: u64,
    /// Messages stored.
    msgs: u64,
    /// Bytes stored (record sizes).
    bytes: u64,
    /// `deletes.dat` is behind the in-memory deletes/floor.
    deletes_dirty: bool,
    /// CRC32 of the `deletes.dat` bytes on disk (0 if none), so a snapshot can prove it was
    /// taken with the same deletes.
    deletes_crc: u32,
    /// When `deletes.dat` was last written (for the `Never` policy's pacing).
    deletes_written_at: Option<Instant>,
    /// A segment file was created or removed since the directory was last fsynced.
    dir_dirty: bool,
    /// When the last full sync finished (for `Interval`).
    last_sync: Instant,
    /// Set once an fsync or rollback failed: the log is read-only from then on.
    failed: Option<String>,
    /// Reused buffer in which a batch is encoded, so appends allocate nothing per batch.
    write_buf: Vec<u8>,
    /// The compressor's reused state, made at the first compressed append.
    encoder: Option<Box<snap::raw::Encoder>>,
    /// Loaded sealed-segment indexes. A mutex only so reads can take `&self`; the log has one
    /// owner, so it is never contended.
    index_cache: Mutex<IndexCache>,
    /// What recovery found when the log was opened, plus corrupt records met by reads.
    report: Mutex<RecoveryReport>,
    /// Newest timestamp seen (from appends or `expire`), used as "now" for `max_age` when the
    /// limits change.
    clock_ns: u64,
    /// Messages `max_age` must not remove (a per-message TTL of `never`); kept by the stream,
    /// which rebuilds it from the stored headers on open.
    age_exempt: BTreeSet<u64>,
    /// A replicated stream's checkpoint, kept in `deletes.dat` (see `replicated.rs`).
    applied: Option<Applied>,
    /// Set for a replicated stream's log: emptied segments are unlinked only by `sync`,
    /// after `deletes.dat` holds the checkpoint of the entry that emptied them.
    defer_unlink: bool,
}

impl Log {
    /// Opens (or creates) the log in `dir` on the real file system, through the process's
    /// descriptor cache ([`super::fd_cache::shared`]).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Self::open_with_vfs(dir, config, Arc::new(super::fd_cache::shared().clone()))
    }

    /// Opens the log through the given file-system layer.
    pub fn open_with_vfs(
        dir: impl AsRef<Path>,
        config: LogConfig,
        vfs: Arc<dyn Vfs>,
    ) -> Result<Log> {
        open::open(dir.as_ref(), config.normalised()?, vfs)
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found when the log was opened (and corrupt records met since).
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Whether the log refuses writes after a failed fsync; the cause if so.
    pub fn read_only_cause(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check_writable(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(StoreError::ReadOnly {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a failure that leaves the disk state unknown and returns the original error.
    fn fail(&mut self, err: StoreError) -> StoreError {
        if self.failed.is_none() {
            tracing::error!(error = %err, dir = %self.dir.display(), "store is now read-only");
            self.failed = Some(err.to_string());
        }
        err
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

    /// Appends a batch with one write per segment touched (normally one), then applies the
    /// limits (`discard: old` removals, per-subject eviction, `max_age` relative to the newest
    /// timestamp appended). Returns one result per message, in order. Not durable until
    /// `sync`/`sync_if_due`.
    ///
    /// On an I/O error nothing of the failing part is stored (the file is cut back) and the
    /// error is returned; a batch larger than one segment is written in parts, and parts
    /// written before the failure stay stored.
    pub fn append_batch(&mut self, msgs: &[NewMessage]) -> Result<Vec<AppendResult>> {
        self.check_writable()?;
        let mut results = Vec::with_capacity(msgs.len());
        let mut buf = std::mem::take(&mut self.write_buf);
        buf.clear();
        let mut encoder = match self.config.compress {
            true => Some(
                self.encoder
                    .take()
                    .unwrap_or_else(|| Box::new(snap::raw::Encoder::new())),
            ),
            false => None,
        };
        let outcome = self.encode_and_write(msgs, &mut buf, &mut results, encoder.as_deref_mut());
        self.encoder = encoder.or(self.encoder.take());
        self.write_buf = buf;
        outcome?;
        self.enforce_after_append(msgs, &results)?;
        Ok(results)
    }

    fn encode_and_write(
        &mut self,
        msgs: &[NewMessage],
        buf: &mut Vec<u8>,
        results: &mut Vec<AppendResult>,
        mut encoder: Option<&mut snap::raw::Encoder>,
    ) -> Result<()> {
        let per_subject = limit(self.config.max_msgs_per_subject);
        let mut batch_counts: HashMap<&str, u64> = HashMap::new();
        let mut running_msgs = self.msgs;
        let mut running_bytes = self.bytes;
        // (message index, sequence, offset in buf, record length)
        let mut part: Vec<(usize, u64, usize, usize)> = Vec::new();
        let mut next_seq = self.last_seq + 1;
        for (i, m) in msgs.iter().enumerate() {
            let len = match self.admit(
                m,
                per_subject,
                &mut batch_counts,
                running_msgs,
                running_bytes,
            ) {
                Ok((len, replaces)) => {
                    if !replaces {
                        running_msgs += 1;
                    }
                    running_bytes += len as u64;
                    len
                }
                Err(rejection) => {
                    results.push(Err(rejection));
                    continue;
                }
            };
            part.push((i, next_seq, buf.len(), len));
            match encoder.as_deref_mut() {
                Some(encoder) => {
                    encode_record_compressed(buf, next_seq, m, encoder);
                }
                None => encode_record(buf, next_seq, m),
            }
            results.push(Ok(next_seq));
            next_seq += 1;
            if buf.len() as u64 >= self.config.segment_bytes {
                self.write_part(msgs, &part, buf)?;
                part.clear();
                buf.clear();
                // The part just written is in the subject map now; counting it again in the
                // batch's own tally would refuse messages below max_msgs_per_subject.
                batch_counts.clear();
            }
        }
        if !part.is_empty() {
            self.write_part(msgs, &part, buf)?;
        }
        Ok(())
    }

    /// Applies the per-message limits of `discard: new`, `max_msg_size` and subject rules.
    /// Returns the record length and whether the message will replace its subject's oldest
    /// (so the message count does not grow).
    fn admit<'m>(
        &self,
        m: &'m NewMessage,
        per_subject: Option<u64>,
        batch_counts: &mut HashMap<&'m str, u64>,
        running_msgs: u64,
        running_bytes: u64,
    ) -> std::result::Result<(usize, bool), Rejection> {
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
        let mut at_subject_limit = false;
        if let Some(max) = per_subject {
            let stored = self.subjects.get(&m.subject).map_or(0, |i| i.count);
            let pending = batch_counts.get(m.subject.as_str()).copied().unwrap_or(0);
            at_subject_limit = stored + pending >= max;
            if at_subject_limit && self.config.discard_new_per_subject {
                return Err(Rejection::MaxMsgsPerSubject);
            }
        }
        // As nats-server's filestore: a message that replaces its subject's oldest does not
        // grow the stream, so `discard: new` does not refuse it.
        if self.config.discard == Discard::New && !at_subject_limit {
            if limit(self.config.max_msgs).is_some_and(|max| running_msgs + 1 > max) {
                return Err(Rejection::MaxMsgs);
            }
            if limit(self.config.max_bytes).is_some_and(|max| running_bytes + len as u64 > max) {
                return Err(Rejection::MaxBytes);
            }
        }
        if per_subject.is_some() {
            *batch_counts.entry(m.subject.as_str()).or_insert(0) += 1;
        }
        Ok((len, at_subject_limit))
    }

    /// Writes one encoded part to the active segment (sealing and starting a segment first if
    /// it would not fit), then records the messages in memory.
    fn write_part(
        &mut self,
        msgs: &[NewMessage],
        part: &[(usize, u64, usize, usize)],
        buf: &[u8],
    ) -> Result<()> {
        let Some(&(_, first_seq, _, _)) = part.first() else {
            return Ok(());
        };
        let need_new = match self.segments.last() {
            None => true,
            Some(s) => {
                s.sealed
                    || (s.has_records()
                        && s.summary.file_len + buf.len() as u64 > self.config.segment_bytes)
            }
        };
        if need_new {
            self.seal_active()?;
            let seg = Segment::create(self.vfs.as_ref(), &self.dir, first_seq)?;
            self.segments.push(seg);
            self.dir_dirty = true;
        }
        let reserve_limit = self.config.segment_bytes;
        let Some(seg) = self.segments.last_mut() else {
            return Err(StoreError::InvalidConfig("no active segment".into()));
        };
        let base_offset = seg.summary.file_len;
        if let Err((err, rollback)) = seg.append(buf, reserve_limit) {
            return Err(match rollback {
                None => err,
                Some(rb) => {
                    self.fail(rb);
                    err
                }
            });
        }
        let index = seg
            .index
            .get_or_insert_with(|| SegmentIndex::new(first_seq));
        for &(i, seq, at, len) in part {
            let m = &msgs[i];
            debug_assert!(seq > self.last_seq, "sequences only grow");
            index.push(seq, (base_offset + at as u64) as u32, m.ts_ns);
            let s = &mut seg.summary;
            if s.first_rec == 0 {
                s.first_rec = seq;
                s.min_ts_ns = m.ts_ns;
                s.max_ts_ns = m.ts_ns;
            }
            s.last_rec = seq;
            s.min_ts_ns = s.min_ts_ns.min(m.ts_ns);
            s.max_ts_ns = s.max_ts_ns.max(m.ts_ns);
            s.msgs += 1;
            s.bytes += len as u64;
            self.subjects.add(&m.subject, seq);
            self.msgs += 1;
            self.bytes += len as u64;
            self.last_seq = seq;
            self.last_ts_ns = m.ts_ns;
            self.clock_ns = self.clock_ns.max(m.ts_ns);
        }
        if self.msgs == part.len() as u64 {
            // The log was empty: the first stored message is this part's first.
            self.floor = first_seq;
        }
        Ok(())
    }

    /// Seals the active segment: its preallocated space is trimmed off, so a sealed segment's
    /// file is exactly its records, then its index is written to `<base>.idx` and moved to the
    /// cache. The trim becomes durable with the next sync, like the last records. The index
    /// file is not fsynced: a torn or lost index fails its checksum or length check and is
    /// rebuilt from the segment, which is the source of truth.
    fn seal_active(&mut self) -> Result<()> {
        let Some(seg) = self.segments.last_mut() else {
            return Ok(());
        };
        if seg.sealed {
            return Ok(());
        }
        if let Err(e) = seg.trim() {
            // Zeros after a sealed segment's last record are read as its end by recovery, and
            // the clean-shutdown snapshot will not match (so the next open scans): refusing the
            // append would cost more than keeping the zeros.
            tracing::warn!(path = %seg.path.display(), error = %e, "preallocated space not trimmed at seal");
        }
        seg.sealed = true;
        let index = seg
            .index
            .take()
            .unwrap_or_else(|| SegmentIndex::new(seg.base_seq()));
        let bytes = index.encode(seg.summary.file_len);
        let written = self.vfs.open(&seg.index_path, true).and_then(|f| {
            f.set_len(0)
                .and_then(|()| super::io::write_all_at(f.as_ref(), &bytes, 0))
        });
        if let Err(e) = written {
            tracing::warn!(path = %seg.index_path.display(), error = %e, "index not written; it will be rebuilt");
        }
        let base = seg.base_seq();
        if let Ok(mut cache) = self.index_cache.lock() {
            cache.put(base, Arc::new(index));
        }
        Ok(())
    }

    /// Makes everything written so far durable: fdatasync written segments, fsync the
    /// directory if files were created or removed, write `deletes.dat` if deletes changed.
    /// A failure makes the log read-only.
    pub fn sync(&mut self) -> Result<()> {
        self.check_writable()?;
        for i in 0..self.segments.len() {
            if let Err(e) = self.segments[i].sync() {
                return Err(self.fail(e));
            }
        }
        if self.dir_dirty {
            if let Err(e) = self.vfs.sync_dir(&self.dir) {
                return Err(self.fail(StoreError::io(&self.dir, e)));
            }
            self.dir_dirty = false;
        }
        if self.deletes_dirty {
            self.write_deletes()?;
        }
        if self.defer_unlink {
            self.remove_empty_segments_now()?;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// A full [`Log::sync`] if the last one is at least `every` old, whatever the policy:
    /// for a replica, whose group's log already holds what it applies, and whose store only
    /// needs to be durable often enough to keep the replay after a crash short.
    pub fn sync_if_older(&mut self, every: std::time::Duration, now: Instant) -> Result<bool> {
        if now.saturating_duration_since(self.last_sync) < every {
            return Ok(false);
        }
        self.sync().map(|()| true)
    }

    /// Applies the sync policy; call once after each batch (and periodically when idle).
    /// Returns whether a full sync ran. With `Always` it always syncs.
    pub fn sync_if_due(&mut self, now: Instant) -> Result<bool> {
        match self.config.sync {
            SyncPolicy::Always => self.sync().map(|()| true),
            SyncPolicy::Interval(every) => {
                if now.saturating_duration_since(self.last_sync) >= every {
                    self.sync()?;
                    self.last_sync = now;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            SyncPolicy::Never => {
                let due = self.deletes_written_at.is_none_or(|t| {
                    now.saturating_duration_since(t) >= NEVER_POLICY_DELETES_INTERVAL
                });
                if self.deletes_dirty && due {
                    self.check_writable()?;
                    self.write_deletes()?;
                }
                Ok(false)
            }
        }
    }

    /// Makes an empty log that never held a message start at sequence `first` (a stream's
    /// `first_seq`): the sequences below it count as used, and the change is durable before
    /// this returns. A log that holds or held messages is left alone.
    pub fn start_at(&mut self, first: u64) -> Result<()> {
        self.check_writable()?;
        if self.last_seq != 0 || first <= 1 {
            return Ok(());
        }
        self.last_seq = first - 1;
        self.floor = first;
        self.deletes_dirty = true;
        self.write_deletes()
    }

    /// Changes the limits; retention is applied at once (`max_age` against the newest
    /// timestamp seen). The segment size applies to segments created from now on.
    pub fn update_config(&mut self, config: LogConfig) -> Result<()> {
        self.check_writable()?;
        self.config = config.normalised()?;
        self.enforce_limits(true)?;
        self.expire(self.clock_ns)?;
        Ok(())
    }

    /// Trims the active segment's preallocated space, syncs everything and writes the
    /// clean-shutdown snapshot, so the next open reads no record except the active segment's.
    /// After a clean close every segment file is exactly as long as its data: a closed log
    /// holds no reserved space, and the snapshot's lengths match the files. Dropping a log
    /// without `close` is safe too; the next open then scans every segment.
    pub fn close(mut self) -> Result<()> {
        self.close_in_place()
    }

    /// [`Log::close`] for a log whose owner keeps it (a stream still registered when the
    /// server stops); the log takes no writes afterwards.
    pub fn close_in_place(&mut self) -> Result<()> {
        self.check_writable()?;
        if let Some(seg) = self.segments.last_mut() {
            seg.trim()?;
        }
        self.sync()?;
        let snapshot = Snapshot {
            deletes_crc: self.deletes_crc,
            segments: self.segments.iter().map(|s| s.summary).collect(),
            subjects: self
                .subjects
                .iter()
                .map(|(subject, info)| SubjectEntry {
                    subject: subject.to_owned(),
                    first: info.first,
                    last: info.last,
                    count: info.count,
                })
                .collect(),
        };
        let path = self.dir.join(SNAPSHOT_FILE);
        write_atomically(self.vfs.as_ref(), &self.dir, &path, &snapshot.encode())?;
        // A write after the snapshot would make it wrong: the log is done.
        self.failed = Some("the log is closed".into());
        Ok(())
    }
}

/// The stream actor moves its log into a worker thread; keep that possible.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Log>();
};
