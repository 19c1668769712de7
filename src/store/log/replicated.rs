//! What a replicated stream needs of its log: a checkpoint that is durable together with
//! the removals, and taking back the newest messages.
//!
//! **The checkpoint.** A replica applies its group's entries to the log, and after a crash
//! must know which entry its log reflects. [`Log::set_applied`] records the entry's index
//! and the last sequence after it, to be written into `deletes.dat` by the next `sync`, in
//! the same atomic file as the removals the entry caused. A log that keeps a checkpoint also
//! defers unlinking emptied segments to `sync`, after that file: otherwise an unlink made in
//! the middle of an entry would need `deletes.dat` written then, holding that entry's
//! removals under the previous entry's checkpoint, and replaying the entry would remove
//! more than it did the first time. What an interrupted entry appended is cut off by
//! truncating back to the checkpoint's last sequence.
//!
//! **Truncation**, [`Log::truncate_after`]. Everywhere else the log only moves forward: a removed sequence is never assigned again.
//! A replicated stream needs the one exception. Its leader stores a publish before the other
//! replicas have it; if the leader loses its office before the entry commits, the group's new
//! leader may assign the same sequences to other messages, and the old leader must drop its
//! own before it can follow. So the messages after a given sequence are cut off, and the
//! next append reuses the sequence after it.
//!
//! The cut is physical and rare, so it favours being easy to trust over being fast: later
//! segment files are removed newest first, the segment holding the cut is shortened to the
//! end of the last record kept, `deletes.dat` is rewritten to name the new last sequence,
//! and then the log is opened again from disk by the ordinary recovery. A crash part-way
//! leaves a log that the same call, made again, finishes (it is made again: a replicated
//! stream truncates to its applied point every time it opens).

use std::time::Instant;

use crate::store::error::{Result, StoreError};
use crate::store::io::{tmp_path, write_atomically, Vfs};
use crate::store::meta::{Applied, DeletesFile, DELETES_FILE, SNAPSHOT_FILE};

use super::{open, Log};

impl Log {
    /// The checkpoint of the last replicated entry applied, as of the last `sync` (or as
    /// found at open); `None` for a log that was never given one.
    pub fn applied(&self) -> Option<Applied> {
        self.applied
    }

    /// Makes the log the store of a new group that has applied nothing yet (a stream that
    /// becomes replicated, or stops being so and later becomes it again): its checkpoint is
    /// entry 0 at the current last sequence, made durable by the next `sync`, so that the
    /// messages it holds are the group's from its start.
    pub fn begin_group(&mut self) {
        self.applied = Some(Applied {
            index: 0,
            last_seq: self.last_seq,
        });
        self.defer_unlink = true;
        self.deletes_dirty = true;
    }

    /// Records that the entry at `index` has been applied: its checkpoint (with the current
    /// last sequence) is made durable by the next `sync`, atomically with the entry's
    /// removals. From now on emptied segments are unlinked only by `sync`.
    pub fn set_applied(&mut self, index: u64) {
        debug_assert!(
            self.applied.is_none_or(|a| a.index <= index),
            "applied goes back"
        );
        self.applied = Some(Applied {
            index,
            last_seq: self.last_seq,
        });
        self.defer_unlink = true;
        self.deletes_dirty = true;
    }

    /// Writes `deletes.dat` atomically and durably. A failure makes the log read-only, since
    /// the rename may or may not have happened.
    pub(super) fn write_deletes(&mut self) -> Result<()> {
        let file = DeletesFile {
            floor: self.floor,
            last_seq: self.last_seq,
            last_ts_ns: self.last_ts_ns,
            ranges: self.deleted.ranges().collect(),
            applied: self.applied,
        };
        let bytes = file.encode();
        let path = self.dir.join(DELETES_FILE);
        if let Err(e) = write_atomically(self.vfs.as_ref(), &self.dir, &path, &bytes) {
            return Err(self.fail(e));
        }
        self.deletes_crc = crc32fast::hash(&bytes);
        self.deletes_dirty = false;
        self.deletes_written_at = Some(Instant::now());
        Ok(())
    }

    /// Removes every message with a sequence above `last`, and makes `last` the highest
    /// sequence assigned, so the next append gets `last + 1`. Durable before it returns.
    /// Nothing removed comes back: where a purge or the limits already removed everything up
    /// to past `last`, the log is left empty, continuing after `last`.
    pub fn truncate_after(&mut self, last: u64) -> Result<()> {
        self.check_writable()?;
        if last >= self.last_seq {
            return Ok(());
        }
        self.floor = self.floor.min(last + 1);
        if let Err(e) = self.sync() {
            return Err(self.fail(e));
        }
        let vfs = self.vfs.clone();
        let last_ts_ns = match self.cut_segments(vfs.as_ref(), last) {
            Ok(ts) => ts,
            Err(e) => return Err(self.fail(e)),
        };
        // A checkpoint past the cut no longer describes the log.
        let applied = self.applied.filter(|a| a.last_seq <= last);
        let deletes = DeletesFile {
            floor: self.floor,
            last_seq: last,
            last_ts_ns,
            applied,
            ranges: self
                .deleted
                .ranges()
                .filter(|(lo, _)| *lo <= last)
                .map(|(lo, hi)| (lo, hi.min(last)))
                .collect(),
        };
        let path = self.dir.join(DELETES_FILE);
        if let Err(e) = write_atomically(vfs.as_ref(), &self.dir, &path, &deletes.encode()) {
            return Err(self.fail(e));
        }
        let _ = vfs.remove(&self.dir.join(SNAPSHOT_FILE));
        let exempt: Vec<u64> = self.age_exempt.range(..=last).copied().collect();
        // Close every file before the directory is read again.
        self.segments.clear();
        let mut reopened = open::open(&self.dir, self.config.clone(), vfs)?;
        debug_assert_eq!(reopened.last_seq, last);
        reopened.age_exempt.extend(exempt);
        reopened.defer_unlink = self.defer_unlink;
        *self = reopened;
        Ok(())
    }

    /// Removes the segment files wholly after `last` and shortens the one holding it.
    /// Returns the timestamp of the newest record kept (0 if none).
    fn cut_segments(&mut self, vfs: &dyn Vfs, last: u64) -> Result<u64> {
        while let Some(seg) = self.segments.last() {
            if seg.base_seq() <= last {
                break;
            }
            for path in [&seg.index_path, &tmp_path(&seg.index_path), &seg.path] {
                match vfs.remove(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
            self.segments.pop();
            self.index_cache_forget_last();
        }
        let Some(pos) = self.segments.len().checked_sub(1) else {
            vfs.sync_dir(&self.dir)
                .map_err(|e| StoreError::io(&self.dir, e))?;
            return Ok(0);
        };
        let cut_at = {
            let index = self.index_at(pos)?;
            let first_cut = index.entries_from(last + 1).next();
            first_cut.map(|(_, off, _)| off)
        };
        let mut kept_ts = 0;
        for p in (0..=pos).rev() {
            let index = self.index_at(p)?;
            let newest_kept = index
                .entries_from(index.base_seq())
                .take_while(|(seq, _, _)| *seq <= last)
                .filter(|(seq, _, _)| *seq >= self.floor && !self.deleted.contains(*seq))
                .last();
            if let Some((_, _, ts)) = newest_kept {
                kept_ts = ts;
                break;
            }
        }
        let seg = &self.segments[pos];
        if let Some(offset) = cut_at {
            let offset = u64::from(offset);
            seg.file
                .set_len(offset)
                .and_then(|()| seg.file.sync_data())
                .map_err(|e| StoreError::io(&seg.path, e))?;
            for path in [&seg.index_path, &tmp_path(&seg.index_path)] {
                match vfs.remove(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
        }
        vfs.sync_dir(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, e))?;
        Ok(kept_ts)
    }

    fn index_cache_forget_last(&mut self) {
        let mut cache = self.index_cache.lock().unwrap_or_else(|p| p.into_inner());
        let bases: Vec<u64> = cache.entries.iter().map(|(b, _)| *b).collect();
        for base in bases {
            if !self.segments.iter().any(|s| s.base_seq() == base) {
                cache.forget(base);
            }
        }
    }
}
