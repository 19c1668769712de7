//! Raises the open-file soft limit to the hard limit when the server starts, as every Go
//! program does since Go 1.19, nats-server included, and splits the limit between client
//! connections and the store's files: the store's descriptor cache
//! ([`crate::store::fd_cache`]) may keep half of it open, so that streams, however many,
//! never take the descriptors connections need.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What to ask for when the hard limit is unlimited: Linux refuses more than `nr_open`
/// (1,048,576 unless raised), so ask for that.
const UNLIMITED_HARD_TARGET: u64 = 1 << 20;

/// The share of the open-files limit the store's files may hold: one in this many.
const STORE_SHARE_DIVISOR: u64 = 2;

/// How many store files may be open at once under an open-files limit of `limit` (`None`:
/// unlimited, counted as [`UNLIMITED_HARD_TARGET`]).
pub fn store_file_budget(limit: Option<u64>) -> usize {
    let budget = limit.unwrap_or(UNLIMITED_HARD_TARGET) / STORE_SHARE_DIVISOR;
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// Raises the soft limit on open files to the hard one. Returns the soft limit in effect
/// afterwards (`None` when unlimited); a refusal leaves the limit as it was.
pub fn raise_open_files_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    let target = limit.maximum.unwrap_or(UNLIMITED_HARD_TARGET);
    if soft >= target {
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(target),
        Err(err) => {
            tracing::warn!(soft, target, error = %err, "cannot raise the open files limit");
            Some(soft)
        }
    }
}
