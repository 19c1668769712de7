//! The system account's requests, answered with the monitoring endpoints' JSON in nats-server's
//! envelope (`{"server": {…}, "data": {…}}`; `"statsz"` for the ping): `$SYS.REQ.SERVER.PING`
//! and `PING.<X>`, `$SYS.REQ.SERVER.<id>.<X>`, and `$SYS.REQ.ACCOUNT.<account>.<X>`. Other
//! accounts reach their own `CONNZ` and `STATZ` through the imports every account has.
//! A request's JSON body carries the endpoint's options (`{"subscriptions": true}`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::query::Query;
use super::{accountz, connz, health, jsz, process, subsz, varz, MonitorState};
use crate::server::ServerView;

/// Starts answering system requests for the server behind `view`.
pub fn start(view: ServerView) -> std::io::Result<()> {
    let id = view.server().server_id;
    let started = view.server().started;
    let uptime = super::clock::since(started, std::time::SystemTime::now());
    let started_at = std::time::Instant::now()
        .checked_sub(uptime)
        .unwrap_or_else(std::time::Instant::now);
    let state = Arc::new(MonitorState {
        view: view.clone(),
        listen: None,
        cpu: process::CpuSampler::new(started_at),
    });
    let subjects = vec![
        "$SYS.REQ.SERVER.PING".to_string(),
        "$SYS.REQ.SERVER.PING.*".to_string(),
        format!("$SYS.REQ.SERVER.{id}.*"),
        "$SYS.REQ.ACCOUNT.*.*".to_string(),
    ];
    view.serve_system_requests(
        subjects,
        Arc::new(move |subject, body| answer(&state, subject, body)),
    )
}

/// A request's options as query parameters, under the endpoints' names.
fn options(body: &[u8]) -> Result<Query, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Query::default());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(map) = value else {
        return Err("the request options are not a JSON object".to_string());
    };
    let pairs = map.into_iter().filter_map(|(key, value)| {
        let name = match key.as_str() {
            "subscriptions" => "subs",
            "account" => "acc",
            "include_unused" => "unused",
            other => other,
        };
        let text = match value {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            _ => return None,
        };
        Some((name.to_string(), text))
    });
    Ok(Query::from_pairs(pairs))
}

fn envelope(state: &MonitorState, key: &str, data: Result<Value, String>) -> Vec<u8> {
    let server = state.view.system_server_block();
    let body = match data {
        Ok(data) => json!({ "server": server, key: data }),
        Err(description) => {
            json!({ "server": server, "error": { "code": 400, "description": description } })
        }
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn to_json<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> Result<Value, String> {
    r.map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

/// One server's stats, as the ping answers (nats-server's `ServerStats`, the fields jetlog
/// keeps).
fn statsz(state: &MonitorState) -> Value {
    let server = state.view.server();
    let varz = to_json(Ok::<_, String>(varz::varz(state))).unwrap_or_default();
    json!({
        "start": varz["start"],
        "mem": varz["mem"],
        "cores": varz["cores"],
        "cpu": varz["cpu"],
        "connections": server.connections,
        "total_connections": server.total_connections,
        "active_accounts": state.view.accounts().iter().filter(|a| a.connections > 0).count(),
        "subscriptions": server.subscriptions,
        "sent": { "msgs": server.traffic.out_msgs, "bytes": server.traffic.out_bytes },
        "received": { "msgs": server.traffic.in_msgs, "bytes": server.traffic.in_bytes },
        "slow_consumers": server.slow_consumers,
        "active_servers": 1,
    })
}

/// The answer to one system request; `None` where nats-server stays silent (a `JSZ` asked
/// only of the meta leader, on another server).
fn answer(state: &MonitorState, subject: &str, body: &[u8]) -> Option<Vec<u8>> {
    let query = match options(body) {
        Ok(query) => query,
        Err(e) => return Some(envelope(state, "data", Err(e))),
    };
    let tokens: Vec<&str> = subject.split('.').skip(2).collect();
    if matches!(tokens.as_slice(), ["SERVER", ..]) && filtered_out(state, body) {
        return None;
    }
    if matches!(tokens.as_slice(), ["SERVER", _, "JSZ"])
        && query.flag("leader_only").unwrap_or(false)
        && !state.view.is_meta_leader()
    {
        return None;
    }
    Some(match tokens.as_slice() {
        ["SERVER", "PING"] | ["SERVER", _, "STATSZ"] => {
            envelope(state, "statsz", Ok(statsz(state)))
        }
        ["SERVER", _, endpoint] => {
            envelope(state, "data", server_endpoint(state, endpoint, &query))
        }
        ["ACCOUNT", account, endpoint] => envelope(
            state,
            "data",
            account_endpoint(state, account, endpoint, query),
        ),
        _ => envelope(state, "data", Err(format!("unknown request {subject}"))),
    })
}

/// nats-server's `filterRequest`: whether a server request's event filter (`name`, `host`
/// and `cluster`, contained or with `exact_match` equal; every one of `tags`; `domain`)
/// leaves this server out, so that it does not answer. jetlog servers have no tags.
fn filtered_out(state: &MonitorState, body: &[u8]) -> bool {
    let Ok(Value::Object(filter)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let me = state.view.event_identity();
    let exact = filter.get("exact_match") == Some(&Value::Bool(true));
    let asked = |key: &str| {
        filter
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let differs = |key: &str, mine: &str| match asked(key) {
        None => false,
        Some(want) if exact => want != mine,
        Some(want) => !mine.contains(want),
    };
    let tags = filter
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let domain = asked("domain").is_some_and(|d| me.domain.as_deref() != Some(d));
    differs("name", &me.name)
        || differs("host", &me.host)
        || differs("cluster", &me.cluster)
        || tags
        || domain
}

fn server_endpoint(state: &MonitorState, endpoint: &str, query: &Query) -> Result<Value, String> {
    match endpoint {
        "VARZ" => to_json(Ok::<_, String>(varz::varz(state))),
        "CONNZ" => to_json(connz::connz(state, query)),
        "SUBSZ" => to_json(subsz::subsz(state, query)),
        "JSZ" => to_json(jsz::jsz(state, query)),
        "ACCOUNTZ" => to_json(accountz::accountz(state, query)),
        "HEALTHZ" => to_json(Ok::<_, String>(health::healthz(state, query).1)),
        other => Err(format!("{other} is not served")),
    }
}

/// `$SYS.REQ.ACCOUNT.<account>.<X>`: the endpoint narrowed to the account (`PING`: all).
fn account_endpoint(
    state: &MonitorState,
    account: &str,
    endpoint: &str,
    query: Query,
) -> Result<Value, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if account != "PING" {
        pairs.push(("acc".to_string(), account.to_string()));
    }
    let narrowed = |extra: &[(&str, &str)]| {
        let mut all = pairs.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for key in ["subs", "offset", "limit", "sort", "unused", "auth"] {
            if let Some(v) = query.get(key) {
                all.push((key.to_string(), v.to_string()));
            }
        }
        Query::from_pairs(all)
    };
    match endpoint {
        "CONNZ" => to_json(connz::connz(state, &narrowed(&[]))),
        "STATZ" => to_json(accountz::accstatz(state, &narrowed(&[]))),
        "SUBSZ" => to_json(subsz::subsz(state, &narrowed(&[]))),
        "JSZ" => to_json(jsz::jsz(state, &narrowed(&[("streams", "true")]))),
        "INFO" => to_json(accountz::accountz(state, &narrowed(&[])))
            .map(|v| v.get("account_detail").cloned().unwrap_or(Value::Null)),
        other => Err(format!("{other} is not served for accounts")),
    }
}
