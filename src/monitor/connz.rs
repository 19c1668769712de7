//! `/connz`: open client connections, paged and sorted, with nats-server's field names
//! (`server/monitor.go`, `Connz`, `ConnInfo`). Closed connections are not kept, so
//! `state=closed` and the `stop`/`reason` fields are not offered.

use std::cmp::Reverse;
use std::time::SystemTime;

use serde::Serialize;

use super::clock::{rfc3339, since, uptime};
use super::query::Query;
use super::{MonitorError, MonitorState};
use crate::server::accounts::GLOBAL_ACCOUNT;
use crate::server::ConnectionReport;

/// Connections listed when `limit` is not given (nats-server `DefaultConnListSize`).
pub const DEFAULT_LIMIT: usize = 1024;

#[derive(Serialize)]
pub struct Connz {
    server_id: String,
    now: String,
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    connections: Vec<ConnInfo>,
}

#[derive(Serialize)]
struct ConnInfo {
    cid: u64,
    kind: &'static str,
    #[serde(rename = "type")]
    kind_type: &'static str,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    uptime: String,
    idle: String,
    pending_bytes: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<String>,
    /// With `auth=true`: the connection's account, left out for `$G` as nats-server does.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

/// nats-server's sort options that have a meaning here. Ids and start times sort up, the
/// rest down (largest first), as in nats-server.
fn sort(conns: &mut [ConnectionReport], by: &str, now: SystemTime) -> Result<(), MonitorError> {
    match by {
        "" | "cid" => conns.sort_by_key(|c| c.cid),
        "start" => conns.sort_by_key(|c| (c.started, c.cid)),
        "subs" => conns.sort_by_key(|c| Reverse(c.num_subscriptions)),
        "pending" => conns.sort_by_key(|c| Reverse(c.pending_bytes)),
        "msgs_to" => conns.sort_by_key(|c| Reverse(c.traffic.out_msgs)),
        "msgs_from" => conns.sort_by_key(|c| Reverse(c.traffic.in_msgs)),
        "bytes_to" => conns.sort_by_key(|c| Reverse(c.traffic.out_bytes)),
        "bytes_from" => conns.sort_by_key(|c| Reverse(c.traffic.in_bytes)),
        "last" => conns.sort_by_key(|c| Reverse(c.last_activity)),
        "idle" => conns.sort_by_key(|c| Reverse(since(c.last_activity, now))),
        "uptime" => conns.sort_by_key(|c| Reverse(since(c.started, now))),
        other => {
            return Err(MonitorError::BadRequest(format!(
                "invalid sorting option: {other}"
            )))
        }
    }
    Ok(())
}

/// `?offset=&limit=&sort=&subs=true&acc=<account>&auth=true`.
pub fn connz(monitor: &MonitorState, query: &Query) -> Result<Connz, MonitorError> {
    let offset = query.number("offset", 0)?;
    let limit = query.number("limit", DEFAULT_LIMIT)?;
    let with_subs = query.flag("subs")?;
    let with_auth = query.flag("auth")?;
    let now = SystemTime::now();
    let mut conns = monitor.view.connections(with_subs);
    if let Some(account) = query.get("acc") {
        conns.retain(|c| c.meta.account == account);
    }
    sort(&mut conns, query.get("sort").unwrap_or(""), now)?;
    let total = conns.len();
    let connections: Vec<ConnInfo> = conns
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|c| ConnInfo {
            cid: c.cid,
            kind: "Client",
            kind_type: "nats",
            ip: c.peer.ip().to_string(),
            port: c.peer.port(),
            start: rfc3339(c.started),
            last_activity: rfc3339(c.last_activity),
            uptime: uptime(since(c.started, now)),
            idle: uptime(since(c.last_activity, now)),
            pending_bytes: c.pending_bytes,
            in_msgs: c.traffic.in_msgs,
            out_msgs: c.traffic.out_msgs,
            in_bytes: c.traffic.in_bytes,
            out_bytes: c.traffic.out_bytes,
            subscriptions: c.num_subscriptions,
            name: c.meta.name.filter(|n| !n.is_empty()),
            lang: c.meta.lang.filter(|n| !n.is_empty()),
            version: c.meta.version.filter(|n| !n.is_empty()),
            subscriptions_list: c.subscriptions.into_iter().map(|s| s.subject).collect(),
            account: Some(c.meta.account)
                .filter(|a| with_auth && !a.is_empty() && a != GLOBAL_ACCOUNT),
        })
        .collect();
    Ok(Connz {
        server_id: monitor.view.server().server_id,
        now: rfc3339(now),
        num_connections: connections.len(),
        total,
        offset,
        limit,
        connections,
    })
}
