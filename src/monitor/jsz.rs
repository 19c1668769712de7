//! `/jsz`: JetStream's totals and, on request, each stream and consumer, with nats-server's
//! field names (`server/monitor.go`, `JSInfo`, `AccountDetail`, `StreamDetail`). jetlog has
//! one account, reported as nats-server names the global one, `$G`.

use std::time::SystemTime;

use serde::Serialize;

use super::clock::rfc3339;
use super::query::Query;
use super::{MonitorError, MonitorState};
use crate::jetstream::api_types::{ClusterInfo, StreamState};
use crate::jetstream::consumer_config::ConsumerInfo;
use crate::jetstream::stream_config::Storage;
use crate::jetstream::StreamConfig;
use crate::server::{JetStreamReport, SyncMode};

/// The name nats-server gives the account clients use when no accounts are configured.
pub const GLOBAL_ACCOUNT: &str = "$G";

/// What JetStream runs with. `max_memory`/`max_storage` appear when the config file sets
/// server-wide limits; without them jetlog has none, and nothing is made up.
#[derive(Serialize)]
pub struct JetStreamConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_storage: Option<u64>,
    store_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    /// Nanoseconds between syncs under `--sync <interval>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    sync_interval: Option<u128>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sync_always: bool,
}

impl JetStreamConfig {
    pub fn new(js: &JetStreamReport, sync: SyncMode) -> Self {
        Self {
            max_memory: js.max_memory,
            max_storage: js.max_storage,
            store_dir: js.store_dir.display().to_string(),
            domain: js.domain.clone(),
            sync_interval: match sync {
                SyncMode::Interval(d) => Some(d.as_nanos()),
                _ => None,
            },
            sync_always: sync == SyncMode::Always,
        }
    }
}

#[derive(Serialize)]
pub struct ApiStats {
    total: u64,
    errors: u64,
}

impl ApiStats {
    pub fn of(js: &JetStreamReport) -> Self {
        Self {
            total: js.api_total,
            errors: js.api_errors,
        }
    }
}

#[derive(Serialize)]
pub struct Jsz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    config: JetStreamConfig,
    memory: u64,
    storage: u64,
    accounts: u32,
    api: ApiStats,
    streams: usize,
    consumers: u64,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    account_details: Vec<AccountDetail>,
}

#[derive(Serialize)]
struct AccountDetail {
    name: &'static str,
    id: &'static str,
    memory: u64,
    storage: u64,
    api: ApiStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stream_detail: Vec<StreamDetail>,
}

#[derive(Serialize)]
struct StreamDetail {
    name: String,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<StreamConfig>,
    state: StreamState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consumer_detail: Vec<ConsumerInfo>,
}

/// (memory, storage): bytes held by memory streams and by file streams.
pub fn storage_totals(js: &JetStreamReport) -> (u64, u64) {
    js.streams
        .iter()
        .fold((0, 0), |(memory, storage), s| match s.info.config.storage {
            Storage::Memory => (memory + s.info.state.bytes, storage),
            Storage::File => (memory, storage + s.info.state.bytes),
        })
}

/// `?accounts=true` lists the account, `streams=true` its streams, `consumers=true` their
/// consumers, `config=true` each stream's config; each implies the ones before it.
pub fn jsz(monitor: &MonitorState, query: &Query) -> Result<Jsz, MonitorError> {
    let with_config = query.flag("config")?;
    let with_consumers = query.flag("consumers")?;
    let with_streams = with_consumers || with_config || query.flag("streams")?;
    let with_account = with_streams || query.flag("accounts")?;
    let server = monitor.view.server();
    let js = monitor.view.jetstream(with_consumers);
    // With JetStream off nats-server still answers, zeroed and marked disabled.
    let disabled = js.is_none();
    let js = js.unwrap_or_default();
    let (memory, storage) = storage_totals(&js);
    let account_details = if with_account {
        let stream_detail = if with_streams {
            js.streams
                .iter()
                .map(|s| StreamDetail {
                    name: s.info.config.name.clone(),
                    created: s.info.created.clone(),
                    cluster: s.info.cluster.clone(),
                    config: with_config.then(|| s.info.config.clone()),
                    state: s.info.state.clone(),
                    consumer_detail: s.consumers.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        vec![AccountDetail {
            name: GLOBAL_ACCOUNT,
            id: GLOBAL_ACCOUNT,
            memory,
            storage,
            api: ApiStats::of(&js),
            stream_detail,
        }]
    } else {
        Vec::new()
    };
    Ok(Jsz {
        server_id: server.server_id,
        now: rfc3339(SystemTime::now()),
        disabled,
        config: JetStreamConfig::new(&js, server.config.sync),
        memory,
        storage,
        accounts: 1,
        api: ApiStats::of(&js),
        streams: js.streams.len(),
        consumers: js.streams.iter().map(|s| s.info.state.consumer_count).sum(),
        messages: js.streams.iter().map(|s| s.info.state.messages).sum(),
        bytes: js.streams.iter().map(|s| s.info.state.bytes).sum(),
        account_details,
    })
}
