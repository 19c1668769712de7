//! `/jsz`: JetStream's totals and, on request, each stream and consumer, with nats-server's
//! field names (`server/monitor.go`, `JSInfo`, `AccountDetail`, `StreamDetail`): the totals of
//! every account with JetStream, and each account's details on request.

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
    accounts: usize,
    api: ApiStats,
    streams: usize,
    consumers: u64,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_cluster: Option<crate::server::cluster_js::report::MetaClusterReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    account_details: Vec<AccountDetail>,
    /// jetlog's, with `raft=true`: every Raft group this server is a member of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    raft_groups: Vec<crate::server::cluster_js::raft_report::RaftGroupReport>,
}

#[derive(Serialize)]
struct AccountDetail {
    name: String,
    id: String,
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
    /// With `raft=true`, a replicated stream's group (nats-server 2.10+).
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_raft_group: Option<String>,
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

fn stream_detail(s: &crate::server::StreamReport, with_config: bool, raft: bool) -> StreamDetail {
    StreamDetail {
        name: s.info.config.name.clone(),
        created: s.info.created.clone(),
        cluster: s.info.cluster.clone(),
        config: with_config.then(|| s.info.config.clone()),
        stream_raft_group: s
            .info
            .cluster
            .as_ref()
            .and_then(|c| c.raft_group.clone())
            .filter(|_| raft),
        state: s.info.state.clone(),
        consumer_detail: s.consumers.clone(),
    }
}

/// `?accounts=true` lists the accounts (`acc=<name>` one of them), `streams=true` its streams, `consumers=true` their
/// consumers, `config=true` each stream's config; each implies the ones before it.
/// `raft=true` names each replicated stream's group and lists this server's Raft groups.
pub fn jsz(monitor: &MonitorState, query: &Query) -> Result<Jsz, MonitorError> {
    if query.flag("leader_only")? && !monitor.view.is_meta_leader() {
        return Err(MonitorError::NotLeader);
    }
    let with_config = query.flag("config")?;
    let with_raft = query.flag("raft")?;
    let with_consumers = query.flag("consumers")?;
    let with_streams = with_consumers || with_config || query.flag("streams")?;
    let with_account = with_streams || query.flag("accounts")?;
    let server = monitor.view.server();
    let js = monitor.view.jetstream(with_consumers);
    // With JetStream off nats-server still answers, zeroed and marked disabled.
    let disabled = js.is_none();
    let js = js.unwrap_or_default();
    let (memory, storage) = storage_totals(&js);
    let per_account = match with_account {
        true => monitor.view.jetstream_accounts(with_consumers),
        false => Vec::new(),
    };
    let only = query.get("acc");
    let account_details = per_account
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name))
        .map(|(name, js)| {
            let (memory, storage) = storage_totals(&js);
            let stream_detail = match with_streams {
                true => js
                    .streams
                    .iter()
                    .map(|s| stream_detail(s, with_config, with_raft))
                    .collect(),
                false => Vec::new(),
            };
            AccountDetail {
                id: name.clone(),
                name,
                memory,
                storage,
                api: ApiStats::of(&js),
                stream_detail,
            }
        })
        .collect();
    Ok(Jsz {
        server_id: server.server_id,
        now: rfc3339(SystemTime::now()),
        disabled,
        config: JetStreamConfig::new(&js, server.config.sync),
        memory,
        storage,
        accounts: monitor.view.jetstream_accounts(false).len(),
        api: ApiStats::of(&js),
        streams: js.streams.len(),
        consumers: js.streams.iter().map(|s| s.info.state.consumer_count).sum(),
        messages: js.streams.iter().map(|s| s.info.state.messages).sum(),
        bytes: js.streams.iter().map(|s| s.info.state.bytes).sum(),
        meta_cluster: monitor.view.meta_cluster(),
        account_details,
        raft_groups: match with_raft {
            true => monitor.view.raft_groups(),
            false => Vec::new(),
        },
    })
}
