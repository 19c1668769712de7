//! Raises the open-file soft limit to the hard limit when the server starts, as every Go
//! program does since Go 1.19, nats-server included. jetlog needs a descriptor per client
//! connection and keeps one open per segment file (8 MiB each) for the life of a stream, so
//! the soft limit many systems start processes with, 1024, would stop a server at about 8 GiB
//! of streams with no connection left to spare.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What to ask for when the hard limit is unlimited: Linux refuses more than `nr_open`
/// (1,048,576 unless raised), so ask for that.
const UNLIMITED_HARD_TARGET: u64 = 1 << 20;

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
