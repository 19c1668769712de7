//! JetStream's state for the monitoring endpoints: each stream's info, its consumers' infos,
//! and the API counters, built with the same functions that answer `STREAM.INFO` and
//! `CONSUMER.INFO`, so the numbers agree with what clients are told.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::api::stream_info_of;
use super::api_consumers::consumer_info;
use super::JetStream;
use crate::jetstream::api_types::{StreamInfo, StreamInfoRequest};
use crate::jetstream::consumer_config::ConsumerInfo;
use crate::jetstream::stream_config::Storage;

/// JetStream's streams and consumers, with the API counters (all empty when it is off).
#[derive(Debug, Clone, Default)]
pub struct JetStreamReport {
    pub store_dir: PathBuf,
    pub api_total: u64,
    pub api_errors: u64,
    /// `jetstream { max_memory_store, max_file_store }`, when set.
    pub max_memory: Option<u64>,
    pub max_storage: Option<u64>,
    pub domain: Option<String>,
    /// Every stream, by name, with its consumers' infos when they were asked for.
    pub streams: Vec<StreamReport>,
}

/// One stream, and its consumers when they were asked for.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// The account the stream belongs to.
    pub account: String,
    pub info: StreamInfo,
    pub consumers: Vec<ConsumerInfo>,
}

impl JetStream {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// A snapshot of every stream. A stream or consumer deleted while the snapshot is taken
    /// is left out rather than reported half gone.
    pub fn report(&self, with_consumers: bool) -> JetStreamReport {
        let mut streams = Vec::new();
        // Monitoring never waits for streams still opening at start: it shows those open.
        for entry in self.open_streams() {
            let Ok(info) = stream_info_of(self, &entry, &StreamInfoRequest::default()) else {
                continue;
            };
            let mut consumers = Vec::new();
            if with_consumers {
                let names: Vec<String> = entry.lock().consumers().keys().cloned().collect();
                consumers = names
                    .iter()
                    .filter_map(|name| consumer_info(self, &entry, name).ok())
                    .collect();
            }
            streams.push(StreamReport {
                account: self.account_name.clone(),
                info,
                consumers,
            });
        }
        JetStreamReport {
            store_dir: self.store_dir.clone(),
            api_total: self.api_total.load(Ordering::Relaxed),
            api_errors: self.api_errors.load(Ordering::Relaxed),
            max_memory: self.limits.max(Storage::Memory),
            max_storage: self.limits.max(Storage::File),
            domain: self.domain.clone(),
            streams,
        }
    }
}
