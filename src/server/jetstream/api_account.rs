//! `$JS.API.INFO`: what an account's streams hold, and the limits it is held to.

use serde::Serialize;
use serde_json::json;

use super::api::Reply;
use super::{AccountLimits, JetStream};
use crate::jetstream::stream_config::Storage;

/// What an account's streams hold on this server; in a cluster the meta leader adds up
/// every server's.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(super) struct Usage {
    pub memory: u64,
    pub storage: u64,
    pub streams: usize,
    pub consumers: usize,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.memory += other.memory;
        self.storage += other.storage;
        self.streams += other.streams;
        self.consumers += other.consumers;
    }
}

pub(super) fn local_usage(js: &JetStream) -> Usage {
    let mut usage = Usage::default();
    for entry in js.streams() {
        let stream = entry.lock();
        usage.streams += 1;
        usage.consumers += stream.consumers().len();
        let bytes = stream.log().state(false).map(|s| s.bytes).unwrap_or(0);
        match stream.config().storage {
            Storage::Memory => usage.memory += bytes,
            Storage::File => usage.storage += bytes,
        }
    }
    usage
}

pub(super) fn account_info(js: &JetStream) -> Reply {
    account_info_of(js, local_usage(js))
}

/// The account info reply for `usage`, with this server's limits and API counters.
pub(super) fn account_info_of(js: &JetStream, usage: Usage) -> Reply {
    Ok(json!({
        "memory": usage.memory,
        "storage": usage.storage,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "streams": usage.streams,
        "consumers": usage.consumers,
        "limits": {
            "max_memory": js.limits().max(Storage::Memory).map_or(-1, |m| m as i64),
            "max_storage": js.limits().max(Storage::File).map_or(-1, |m| m as i64),
            "max_streams": AccountLimits::reported(js.account_limits().max_streams),
            "max_consumers": AccountLimits::reported(js.account_limits().max_consumers),
            "max_ack_pending": AccountLimits::reported(js.account_limits().max_ack_pending),
            "memory_max_stream_bytes": AccountLimits::reported(js.account_limits().memory_max_stream_bytes),
            "storage_max_stream_bytes": AccountLimits::reported(js.account_limits().store_max_stream_bytes),
            "max_bytes_required": js.account_limits().max_bytes_required
        },
        "domain": js.domain(),
        "api": {
            "level": crate::jetstream::api_level::JS_API_LEVEL,
            "total": js.api_total.load(std::sync::atomic::Ordering::Relaxed),
            "errors": js.api_errors.load(std::sync::atomic::Ordering::Relaxed)
        }
    }))
}
