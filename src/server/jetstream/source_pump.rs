//! Feeds streams from their sources on the JetStream timer: before each regular tick of a
//! stream with sources, each origin's messages from the source's position on are read under
//! the origin's lock and stored under the stream's (never both at once); the tick then hands
//! them to the stream's consumers. See `jetstream::stream_sourcing`.

use std::time::Instant;

use super::mirror_pump::{read_batch, BATCH, PUMP_BUDGET};
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::stream_origin::OriginSpec;
use crate::jetstream::stream_sourcing::{origin_ident, SourceStart};
use crate::jetstream::time::parse_rfc3339;
use crate::store::StreamStore;

/// Room a copy's `Nats-Stream-Source` header takes, counted against the storage limits.
const SOURCE_HEADER_ROOM: usize = 96;

/// Copies what each origin has and the stream lacks, within the time budget (shared by the
/// sources; each gets at least one batch); whether some source stopped with more to copy.
pub(super) fn pump(js: &JetStream, entry: &StreamEntry) -> bool {
    let specs = entry.lock().source_specs();
    let started = Instant::now();
    let mut more = false;
    for (iname, spec) in specs {
        more |= pump_one(js, entry, &iname, &spec, started);
    }
    more
}

fn pump_one(
    js: &JetStream,
    entry: &StreamEntry,
    iname: &str,
    spec: &OriginSpec,
    started: Instant,
) -> bool {
    let origin = match super::origins::readable_origin(js, spec) {
        Ok(origin) => origin,
        Err(why) => {
            entry.lock().source_origin_unreadable(iname, why);
            return false;
        }
    };
    let hold = super::origin_hold::hold_name(false, &entry.name, iname);
    let held = match js.hold_origin(&origin, &hold, spec) {
        Ok(held) => held,
        Err(why) => {
            entry.lock().source_origin_unreadable(iname, why);
            return false;
        }
    };
    let filters = spec.filters();
    loop {
        let Some((start, _)) = entry.lock().source_start(iname, now_ns()) else {
            return false;
        };
        let read = {
            let origin = origin.lock();
            let ident = origin_ident(origin.created_ns());
            let log = origin.log();
            let from = match start {
                SourceStart::At(seq) => seq,
                SourceStart::Fresh { not_before_ns } => fresh_start(spec, log, not_before_ns),
            };
            read_batch(log, from, &filters).map(|(batch, lag)| (from, batch, lag, ident))
        };
        let (from, batch, lag, ident) = match read {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(source = %spec.name, error = %err, "cannot read the source");
                return false;
            }
        };
        let full = batch.len() == BATCH;
        // The account's and server's storage limits hold for copies as for publishes.
        let fit = super::mirror_pump::fitting(entry, &batch, SOURCE_HEADER_ROOM);
        let stored = entry
            .lock()
            .source_store(iname, from, &batch[..fit], lag, &ident, now_ns());
        if held && matches!(stored, Ok(true)) {
            super::origin_hold::release(&origin, &hold, &batch[..fit]);
        }
        match stored {
            Ok(true) if fit == batch.len() => {}
            Ok(_) => return false,
            Err(err) => {
                tracing::warn!(source = %spec.name, error = %err, "cannot store from the source");
                return false;
            }
        }
        if !full {
            return false;
        }
        if started.elapsed() > PUMP_BUDGET {
            return true;
        }
    }
}

/// Where a source with no position starts: `opt_start_seq`; else `opt_start_time`, no
/// earlier than `not_before_ns`; else from `not_before_ns` when given (a stream whose own
/// first messages are gone); else the origin's first message.
fn fresh_start(spec: &OriginSpec, log: &StreamStore, not_before_ns: Option<u64>) -> u64 {
    if spec.opt_start_seq > 0 {
        return spec.opt_start_seq;
    }
    let by_time = spec
        .opt_start_time
        .as_deref()
        .and_then(|t| parse_rfc3339(t).ok().flatten())
        .map(|at| at.max(0) as u64);
    let at = match (by_time, not_before_ns) {
        (Some(at), Some(floor)) => Some(at.max(floor)),
        (at, floor) => at.or(floor),
    };
    match at {
        Some(at) => log.seq_at_or_after_time(at).unwrap_or(1),
        None => log.state(false).map_or(1, |s| s.first_seq.max(1)),
    }
}
