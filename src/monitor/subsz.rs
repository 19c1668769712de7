//! `/subsz`: the subscription index's size and churn, and with `?subs=true` the client
//! subscriptions, with nats-server's field names (`server/monitor.go`, `Subsz`, `SubDetail`).
//! Match counts, cache sizes and fan-out are not kept (the match caches are per publisher,
//! and counting matches would put a shared counter on the message path), so those fields
//! are left out.

use std::time::SystemTime;

use serde::Serialize;

use super::clock::rfc3339;
use super::query::Query;
use super::{MonitorError, MonitorState};

/// Subscriptions listed when `limit` is not given (nats-server `DefaultSubListSize`).
pub const DEFAULT_LIMIT: usize = 1024;

#[derive(Serialize)]
pub struct Subsz {
    server_id: String,
    now: String,
    num_subscriptions: usize,
    num_inserts: u64,
    num_removes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    offset: usize,
    limit: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<SubDetail>,
}

#[derive(Serialize)]
struct SubDetail {
    account: String,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    qgroup: Option<String>,
    sid: String,
    msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    max: u64,
    cid: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `?subs=true&offset=&limit=&acc=<account>`: `acc` narrows the list and the count to one
/// account (its internal subscriptions counted, as for the server).
pub fn subsz(monitor: &MonitorState, query: &Query) -> Result<Subsz, MonitorError> {
    let offset = query.number("offset", 0)?;
    let limit = query.number("limit", DEFAULT_LIMIT)?;
    let server = monitor.view.server();
    let only = query.get("acc");
    let num_subscriptions = match only {
        Some(name) => monitor
            .view
            .accounts()
            .into_iter()
            .find(|a| a.name == name)
            .map_or(0, |a| a.subscriptions),
        None => server.subscriptions,
    };
    let (total, subscriptions_list) = if query.flag("subs")? {
        let mut subs = monitor.view.client_subscriptions();
        if let Some(name) = only {
            subs.retain(|s| s.account == name);
        }
        let total = subs.len();
        let listed = subs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|s| SubDetail {
                account: s.account,
                subject: s.subject,
                qgroup: s.queue,
                sid: s.sid,
                msgs: s.msgs,
                max: s.max,
                cid: s.cid,
            })
            .collect();
        (Some(total), listed)
    } else {
        (None, Vec::new())
    };
    Ok(Subsz {
        server_id: server.server_id,
        now: rfc3339(SystemTime::now()),
        num_subscriptions,
        num_inserts: server.subscription_inserts,
        num_removes: server.subscription_removes,
        total,
        offset,
        limit,
        subscriptions_list,
    })
}
