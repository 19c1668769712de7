//! Feeds mirrors from their origins on the JetStream timer: before each regular tick of a
//! mirror, the origin's messages after the mirror's last sequence are read under the origin's
//! lock and stored under the mirror's (never both at once), and the tick then hands them to
//! the mirror's consumers. See `jetstream::stream_mirror`.

use std::sync::atomic::Ordering;

use super::{lock, now_ns, JetStream, StreamEntry};
use crate::jetstream::stream_origin::OriginSpec;
use crate::server::internal::InternalClient;
use crate::store::record::record_len;
use crate::store::{StoredMessage, StreamStore};

/// Messages read from the origin at a time.
pub(super) const BATCH: usize = 1024;
/// How long one tick may copy for a stream before it yields to the next, so that a long
/// catch-up neither holds up the timer nor waits for ticks it does not need (at about 500 ns a
/// message, some 40,000 messages a tick).
pub(super) const PUMP_BUDGET: std::time::Duration = std::time::Duration::from_millis(20);

/// Copies what the origin has and the mirror lacks, within the time budget; whether it
/// stopped with more to copy (the timer then comes back at once).
pub(super) fn pump(js: &JetStream, entry: &StreamEntry, spec: &OriginSpec) -> bool {
    let origin = match super::origins::readable_origin(js, spec) {
        Ok(origin) => origin,
        Err(why) => {
            entry.lock().mirror_origin_unreadable(why);
            return false;
        }
    };
    let hold = super::origin_hold::hold_name(true, &entry.name, &spec.name);
    let held = match js.hold_origin(&origin, &hold, spec) {
        Ok(held) => held,
        Err(why) => {
            entry.lock().mirror_origin_unreadable(why);
            return false;
        }
    };
    let filters = spec.filters();
    let started = std::time::Instant::now();
    loop {
        let next = entry.lock().mirror_next();
        let read = {
            let origin = origin.lock();
            let log = origin.log();
            let from = next.unwrap_or_else(|| spec.start_in(log));
            read_batch(log, from, &filters).map(|(batch, lag)| (from, batch, lag))
        };
        let (from, batch, lag) = match read {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(mirror = %spec.name, error = %err, "cannot read the origin");
                return false;
            }
        };
        let full = batch.len() == BATCH;
        // The account's and server's storage limits hold for copies as for publishes.
        let fit = fitting(entry, &batch, 0);
        if let Err(err) = entry
            .lock()
            .mirror_store(from, &batch[..fit], lag, now_ns())
        {
            tracing::warn!(origin = %spec.name, error = %err, "mirror cannot store");
            return false;
        }
        if held {
            super::origin_hold::release(&origin, &hold, &batch[..fit]);
        }
        if fit < batch.len() {
            return false;
        }
        join_origin_direct_gets(js, entry, &spec.name);
        if !full {
            return false;
        }
        if started.elapsed() > PUMP_BUDGET {
            return true;
        }
    }
}

/// Up to `BATCH` messages of the origin from `from` on that match `filters`, and how many
/// more there are: none after a batch that is not full (it took everything the filter
/// matches); after a full one, counted from the subject maps or estimated from the last
/// sequence.
pub(super) fn read_batch(
    log: &StreamStore,
    from: u64,
    filters: &[&str],
) -> crate::store::Result<(Vec<StoredMessage>, u64)> {
    let batch = log.scan(from, filters, BATCH)?;
    let lag = match batch.last() {
        Some(last) if batch.len() == BATCH => log
            .count_from(last.seq + 1, filters)
            .unwrap_or_else(|| log.last_seq().saturating_sub(last.seq)),
        _ => 0,
    };
    Ok((batch, lag))
}

/// How many of `batch` fit the account's and server's storage room, each message taking
/// `extra` bytes more than its record (a source's header).
pub(super) fn fitting(entry: &StreamEntry, batch: &[StoredMessage], extra: usize) -> usize {
    let storage = entry.lock().config().storage;
    let Some((mut room, _)) = entry.limits.room(storage) else {
        return batch.len();
    };
    for (i, msg) in batch.iter().enumerate() {
        let size = record_len(
            msg.subject.len(),
            msg.headers.len() + extra,
            msg.payload.len(),
        );
        match room.checked_sub(size as u64) {
            Some(left) => room = left,
            None => return i,
        }
    }
    batch.len()
}

/// A mirror with `mirror_direct` that has caught up answers its origin's direct gets too:
/// it joins their queue group once, and stays while the stream's subscriptions do.
fn join_origin_direct_gets(js: &JetStream, entry: &StreamEntry, origin: &str) {
    let wanted = {
        let stream = entry.lock();
        stream.config().mirror_direct && stream.mirror_current()
    };
    if !wanted || entry.mirror_direct_joined.swap(true, Ordering::Relaxed) {
        return;
    }
    let client = InternalClient::new(js.router.clone());
    let joined = super::hooks::direct_get_subscriptions(&client, origin, &entry.tx);
    lock(&entry.subs).extend(joined);
}
