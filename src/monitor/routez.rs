//! `/routez`: the routes to the other servers of the cluster, with nats-server's field names
//! (`server/monitor.go`, `Routez` and `RouteInfo`). `?subs=1` lists each route's interest.
//! Fields jetlog has no value for (round-trip time, permissions, compression) are left out.

use std::time::SystemTime;

use serde::Serialize;

use super::clock::{rfc3339, since, uptime};
use super::query::Query;
use super::{MonitorError, MonitorState};
use crate::server::RouteReport;

#[derive(Serialize)]
pub struct Routez {
    server_id: String,
    server_name: String,
    now: String,
    num_routes: usize,
    routes: Vec<RouteInfo>,
}

#[derive(Serialize)]
struct RouteInfo {
    rid: u64,
    remote_id: String,
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: String,
    uptime: String,
    pending_size: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
}

pub fn routez(monitor: &MonitorState, query: &Query) -> Result<Routez, MonitorError> {
    let subs = query.flag("subs")?;
    let server = monitor.view.server();
    let now = SystemTime::now();
    let routes: Vec<RouteInfo> = monitor
        .view
        .cluster(subs)
        .map(|c| c.routes)
        .unwrap_or_default()
        .into_iter()
        .map(|r: RouteReport| RouteInfo {
            rid: r.rid,
            remote_id: r.remote_id,
            remote_name: r.remote_name,
            did_solicit: r.did_solicit,
            is_configured: r.is_configured,
            ip: r.peer.ip().to_string(),
            port: r.peer.port(),
            start: rfc3339(r.started),
            uptime: uptime(since(r.started, now)),
            pending_size: r.pending_bytes,
            in_msgs: r.in_msgs,
            out_msgs: r.out_msgs,
            in_bytes: r.in_bytes,
            out_bytes: r.out_bytes,
            subscriptions: r.subscriptions,
            subscriptions_list: subs.then_some(r.subscriptions_list),
        })
        .collect();
    Ok(Routez {
        server_id: server.server_id,
        server_name: server.server_name,
        now: rfc3339(now),
        num_routes: routes.len(),
        routes,
    })
}
