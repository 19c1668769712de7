//! A consumer's read-ahead: the next few matching messages of the stream, read in one scan.
//!
//! Without it every first delivery is a lookup of its own (an index search and a `pread`
//! per message); with it a consumer working through a backlog pays one read per batch. The
//! buffer is a cache of the log from the consumer's `next_seq` on, so anything that removes
//! messages or moves `next_seq` other than by taking the front must clear it.

use std::collections::VecDeque;

use crate::store::{StoredMessage, StreamStore};

/// Messages the first scan after a clear reads; each further refill doubles it, so a
/// consumer that takes one message now and then reads little and one draining a backlog
/// soon reads in large batches.
const FIRST_SCAN_MSGS: usize = 16;
/// Most messages one scan reads.
const MAX_SCAN_MSGS: usize = 256;
/// Most bytes (estimated from the last message read) one scan should bring into memory,
/// whatever the message count says: bounds a consumer's buffer for large messages.
const MAX_SCAN_BYTES: usize = 256 * 1024;

#[derive(Debug)]
pub struct ReadAhead {
    msgs: VecDeque<StoredMessage>,
    /// The buffer holds every matching message from this sequence up to its back.
    covers_from: u64,
    /// Messages the next scan asks for.
    next_scan: usize,
    /// Size of the last message read, for the byte bound.
    last_size: usize,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead {
            msgs: VecDeque::new(),
            covers_from: 0,
            next_scan: FIRST_SCAN_MSGS,
            last_size: 0,
        }
    }
}

impl ReadAhead {
    /// The first stored message at or after `from` matching `filters`, from the buffer or,
    /// when it is empty, from a new scan.
    pub fn next(
        &mut self,
        store: &StreamStore,
        from: u64,
        filters: &[&str],
    ) -> Option<StoredMessage> {
        if !self.msgs.is_empty() {
            if from == self.covers_from {
                return self.take_front();
            }
            // The position moved other than by taking the front: the buffer says nothing
            // about what lies at `from`.
            self.clear();
        }
        let by_bytes = MAX_SCAN_BYTES / self.last_size.max(1);
        let want = self.next_scan.min(by_bytes).clamp(1, MAX_SCAN_MSGS);
        self.msgs = store.scan(from, filters, want).ok()?.into();
        if let Some(last) = self.msgs.back() {
            self.last_size = last.subject.len() + last.headers.len() + last.payload.len();
        }
        self.next_scan = (self.next_scan * 2).min(MAX_SCAN_MSGS);
        self.take_front()
    }

    fn take_front(&mut self) -> Option<StoredMessage> {
        let msg = self.msgs.pop_front()?;
        self.covers_from = msg.seq + 1;
        Some(msg)
    }

    /// Forgets everything buffered (messages were removed, or the position moved back).
    pub fn clear(&mut self) {
        self.msgs.clear();
        self.next_scan = FIRST_SCAN_MSGS;
    }
}
