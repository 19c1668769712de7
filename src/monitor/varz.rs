//! `/varz`: the server's identity, limits and running totals, with nats-server's field names
//! (`server/monitor.go`, `Varz`). Fields jetlog has no honest value for (gateways,
//! leafnodes, TLS, JetStream limits) are left out, and `cluster` when there is none.

use std::time::SystemTime;

use serde::Serialize;

use super::clock::{rfc3339, since, uptime};
use super::jsz::{storage_totals, ApiStats, JetStreamConfig};
use super::MonitorState;
use crate::server::ServerReport;

#[derive(Serialize)]
pub struct Varz {
    server_id: String,
    server_name: String,
    version: String,
    proto: u8,
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_port: Option<u16>,
    auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_required: bool,
    max_connections: usize,
    /// Nanoseconds, as Go marshals a `time.Duration`.
    ping_interval: u128,
    ping_max: u32,
    /// Seconds, as nats-server reports it (a float).
    auth_timeout: f64,
    max_control_line: usize,
    max_payload: usize,
    max_pending: usize,
    write_deadline: u128,
    /// `{}` when JetStream is off, as nats-server shows it.
    #[serde(serialize_with = "empty_when_off")]
    jetstream: Option<JetStreamVarz>,
    start: String,
    now: String,
    uptime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem: Option<u64>,
    cores: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<f64>,
    connections: usize,
    total_connections: u64,
    subscriptions: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    slow_consumers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterVarz>,
    /// Route connections, and the distinct servers they reach (the same here: one route
    /// per server).
    routes: usize,
    remotes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connect_urls: Vec<String>,
}

#[derive(Serialize)]
struct ClusterVarz {
    name: String,
    addr: String,
    cluster_port: u16,
    /// The configured routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
}

#[derive(Serialize)]
struct JetStreamVarz {
    config: JetStreamConfig,
    stats: JetStreamStats,
}

#[derive(Serialize)]
struct JetStreamStats {
    memory: u64,
    storage: u64,
    accounts: u32,
    api: ApiStats,
}

pub fn varz(monitor: &MonitorState) -> Varz {
    let server: ServerReport = monitor.view.server();
    let cluster = monitor.view.cluster(false);
    let routes = cluster.as_ref().map_or(0, |c| c.routes.len());
    let connect_urls = cluster
        .as_ref()
        .map(|c| c.connect_urls.clone())
        .unwrap_or_default();
    let report = monitor.view.jetstream(false);
    let now = SystemTime::now();
    let config = &server.config;
    Varz {
        server_id: server.server_id,
        server_name: server.server_name,
        version: server.version,
        proto: server.proto,
        host: server.host,
        port: server.port,
        http_host: monitor.listen.map(|a| a.ip().to_string()),
        http_port: monitor.listen.map(|a| a.port()),
        auth_required: config.auth.is_some() && config.no_auth_user.is_none(),
        tls_required: config.tls.as_ref().is_some_and(|t| !t.allow_non_tls),
        max_connections: config.max_connections,
        ping_interval: config.ping_interval.as_nanos(),
        ping_max: config.max_pings_out,
        auth_timeout: config.auth_timeout.as_secs_f64(),
        max_control_line: config.max_control_line_bytes,
        max_payload: config.max_payload_bytes,
        max_pending: config.max_pending_bytes,
        write_deadline: config.write_deadline.as_nanos(),
        jetstream: report.map(|js| {
            let (memory, storage) = storage_totals(&js);
            JetStreamVarz {
                config: JetStreamConfig::new(&js, config.sync),
                stats: JetStreamStats {
                    memory,
                    storage,
                    accounts: 1,
                    api: ApiStats::of(&js),
                },
            }
        }),
        start: rfc3339(server.started),
        now: rfc3339(now),
        uptime: uptime(since(server.started, now)),
        mem: super::process::resident_bytes(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        cpu: monitor.cpu.percent(),
        connections: server.connections,
        total_connections: server.total_connections,
        subscriptions: server.subscriptions,
        in_msgs: server.traffic.in_msgs,
        out_msgs: server.traffic.out_msgs,
        in_bytes: server.traffic.in_bytes,
        out_bytes: server.traffic.out_bytes,
        slow_consumers: server.slow_consumers,
        cluster: cluster.map(|c| ClusterVarz {
            name: c.name,
            addr: c.listen.map_or_else(String::new, |a| a.ip().to_string()),
            cluster_port: c.listen.map_or(0, |a| a.port()),
            urls: c.configured,
        }),
        routes,
        remotes: routes,
        connect_urls,
    }
}

fn empty_when_off<S: serde::Serializer>(
    js: &Option<JetStreamVarz>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match js {
        Some(js) => js.serialize(serializer),
        None => serde_json::Map::new().serialize(serializer),
    }
}
