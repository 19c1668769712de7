//! Feeds mirrors from their origins on the JetStream timer: before each regular tick of a
//! mirror, the origin's messages after the mirror's last sequence are read under the origin's
//! lock and stored under the mirror's (never both at once), and the tick then hands them to
//! the mirror's consumers. See `jetstream::stream_mirror`.

use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::stream_origin::OriginSpec;

/// Messages read from the origin at a time.
const BATCH: usize = 1024;
/// Batches a mirror may copy per tick, so that a long catch-up does not hold up the timer
/// (16,384 messages per 50 ms tick: over 300,000 a second).
const MAX_BATCHES_PER_TICK: usize = 16;

/// Copies what the origin has and the mirror lacks, up to the per-tick bound.
pub(super) fn pump(js: &JetStream, entry: &StreamEntry, spec: &OriginSpec) {
    let Some(origin) = js.stream_if_open(&spec.name) else {
        entry.lock().mirror_origin_missing();
        return;
    };
    let filters = spec.filters();
    for _ in 0..MAX_BATCHES_PER_TICK {
        let next = entry.lock().mirror_next();
        let read = {
            let origin = origin.lock();
            let log = origin.log();
            let from = next.unwrap_or_else(|| spec.start_in(log));
            log.scan(from, &filters, BATCH).map(|batch| {
                // A batch that is not full took everything the filter matches; after a full
                // one, what is left, counted from the maps or estimated from the last sequence.
                let lag = match batch.last() {
                    Some(last) if batch.len() == BATCH => log
                        .count_from(last.seq + 1, &filters)
                        .unwrap_or_else(|| log.last_seq().saturating_sub(last.seq)),
                    _ => 0,
                };
                (from, batch, lag)
            })
        };
        let (from, batch, lag) = match read {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(mirror = %spec.name, error = %err, "cannot read the origin");
                return;
            }
        };
        let full = batch.len() == BATCH;
        if let Err(err) = entry.lock().mirror_store(from, &batch, lag, now_ns()) {
            tracing::warn!(origin = %spec.name, error = %err, "mirror cannot store");
            return;
        }
        if !full {
            return;
        }
    }
}
