//! The JetStream checks of `jetlog server check`: a stream, a consumer, and the account's use
//! of its limits, judged as natscli's checks judge them.

use anyhow::Result;
use serde_json::Value;

use super::server_check::{
    api, connected, ConsumerCheck, JetStreamCheck, MetaCheck, Outcome, StreamCheck,
};
use super::units::format_duration;
use crate::jetstream::time::parse_rfc3339;

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub(super) async fn stream(args: StreamCheck) -> Result<()> {
    let mut outcome = Outcome::new("Stream", "stream");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let info = match api(&client, &format!("$JS.API.STREAM.INFO.{}", args.stream)).await {
        Ok(info) => info,
        Err(e) => {
            outcome.critical(format!("stream {}: {e}", args.stream));
            return outcome.finish(format);
        }
    };
    cluster(&mut outcome, &info["cluster"], &args);
    // The mirror, or each source: how far behind, and when last heard from.
    let origins: Vec<&Value> = match &info["mirror"] {
        Value::Null => info["sources"].as_array().into_iter().flatten().collect(),
        mirror => vec![mirror],
    };
    if info["mirror"].is_null() {
        let n = origins.len();
        let (min, max) = (args.min_sources.unwrap_or(0), args.max_sources.unwrap_or(0));
        outcome.perf("sources", n as f64, min as f64, max as f64, "");
        if (min > 0 && n < min) || (max > 0 && n > max) {
            outcome.critical(format!("{n} sources"));
        } else {
            outcome.ok(format!("{n} sources"));
        }
    }
    if args.lag_critical.is_some() || args.seen_critical.is_some() {
        let lagged = origins
            .iter()
            .filter(|o| args.lag_critical.is_some_and(|l| count(&o["lag"]) >= l))
            .count();
        let inactive = origins
            .iter()
            .filter(|o| {
                // `active` is the nanoseconds since last contact; -1 is never.
                let ago = o["active"].as_i64().unwrap_or(-1);
                args.seen_critical
                    .is_some_and(|s| ago < 0 || ago as u128 >= s.as_nanos())
            })
            .count();
        outcome.perf("sources_lagged", lagged as f64, 0.0, 0.0, "");
        outcome.perf("sources_inactive", inactive as f64, 0.0, 0.0, "");
        match lagged {
            0 => outcome.ok(format!("{} sources current", origins.len())),
            n => outcome.critical(format!("{n} sources are lagged")),
        }
        match inactive {
            0 => outcome.ok(format!("{} sources active", origins.len())),
            n => outcome.critical(format!("{n} sources are inactive")),
        }
    }
    let state = &info["state"];
    if args.subjects_warn.is_some() || args.subjects_critical.is_some() {
        let n = count(&state["num_subjects"]);
        let (warn, crit) = (
            args.subjects_warn.unwrap_or(0),
            args.subjects_critical.unwrap_or(0),
        );
        outcome.perf("subjects", n as f64, warn as f64, crit as f64, "");
        // A critical threshold above the warning one is an upper bound, else a lower one.
        let upper = warn < crit;
        match () {
            _ if upper && n >= crit => outcome.critical(format!("{n} subjects")),
            _ if upper && n >= warn => outcome.warn(format!("{n} subjects")),
            _ if !upper && n <= crit => outcome.critical(format!("{n} subjects")),
            _ if !upper && n <= warn => outcome.warn(format!("{n} subjects")),
            _ => outcome.ok(format!("{n} subjects")),
        }
    }
    if args.msgs_warn.is_some() || args.msgs_critical.is_some() {
        let n = count(&state["messages"]);
        let (warn, crit) = (args.msgs_warn.unwrap_or(0), args.msgs_critical.unwrap_or(0));
        outcome.perf("messages", n as f64, warn as f64, crit as f64, "");
        if crit > 0 && n <= crit {
            outcome.critical(format!("{n} messages"));
        } else if warn > 0 && n <= warn {
            outcome.warn(format!("{n} messages"));
        } else {
            outcome.ok(format!("{n} messages"));
        }
    }
    outcome.finish(format)
}

/// The stream's group: its leader, how many peers, and how far behind and how long unheard
/// each follower is, as natscli's stream check judges them: when the stream has replicas,
/// or a peer flag asks. (A stream of one server also reports its leader in `cluster`.)
fn cluster(outcome: &mut Outcome, cluster: &Value, args: &StreamCheck) {
    let asked = args.peer_expect.is_some()
        || args.peer_lag_critical.is_some()
        || args.peer_seen_critical.is_some();
    if !asked && cluster["replicas"].as_array().is_none_or(Vec::is_empty) {
        return;
    }
    if cluster.is_null() {
        outcome.critical("Stream is not clustered".to_string());
        return;
    }
    let none = Vec::new();
    let replicas = cluster["replicas"].as_array().unwrap_or(&none);
    if cluster["leader"].as_str().is_none_or(str::is_empty) {
        outcome.critical("No leader".to_string());
        return;
    }
    let peers = replicas.len() + 1;
    if let Some(expected) = args.peer_expect.filter(|e| *e != peers) {
        outcome.critical(format!("Expected {expected} replicas got {peers}"));
        return;
    }
    outcome.ok(format!("{peers} peers"));
    let lagged = replicas
        .iter()
        .filter(|r| args.peer_lag_critical.is_some_and(|l| count(&r["lag"]) > l))
        .count();
    let inactive = replicas
        .iter()
        .filter(|r| {
            args.peer_seen_critical
                .is_some_and(|s| u128::from(count(&r["active"])) > s.as_nanos())
        })
        .count();
    let offline = replicas.iter().filter(|r| r["offline"] == true).count();
    if offline > 0 {
        outcome.critical(format!("{offline} replicas offline"));
    }
    match (args.peer_lag_critical, lagged) {
        (None, _) => {}
        (Some(_), 0) => outcome.ok("replicas are current".to_string()),
        (Some(_), n) => outcome.critical(format!("{n} replicas lagged")),
    }
    match (args.peer_seen_critical, inactive) {
        (None, _) => {}
        (Some(_), 0) => outcome.ok("replicas are active".to_string()),
        (Some(_), n) => outcome.critical(format!("{n} replicas inactive")),
    }
}

/// Seconds since an RFC 3339 time, if there is one.
fn seconds_since(time: &Value) -> Option<f64> {
    let at = parse_rfc3339(time.as_str()?).ok().flatten()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Some((now.saturating_sub(at.max(0) as u64)) as f64 / 1e9)
}

pub(super) async fn consumer(args: ConsumerCheck) -> Result<()> {
    let mut outcome = Outcome::new("Consumer", "consumer");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let subject = format!("$JS.API.CONSUMER.INFO.{}.{}", args.stream, args.consumer);
    let info = match api(&client, &subject).await {
        Ok(info) => info,
        Err(e) => {
            outcome.critical(format!("consumer {} > {}: {e}", args.stream, args.consumer));
            return outcome.finish(format);
        }
    };
    let limits = [
        (
            "ack_pending",
            "Ack Pending",
            "num_ack_pending",
            args.outstanding_ack_critical,
        ),
        (
            "pull_waiting",
            "Waiting Pulls",
            "num_waiting",
            args.waiting_critical,
        ),
        (
            "pending",
            "Unprocessed Messages",
            "num_pending",
            args.unprocessed_critical,
        ),
        (
            "redelivered",
            "Redelivered",
            "num_redelivered",
            args.redelivery_critical,
        ),
    ];
    for (name, label, field, critical) in limits {
        let n = count(&info[field]);
        outcome.perf(name, n as f64, 0.0, critical.unwrap_or(0) as f64, "");
        match critical {
            Some(limit) if n > limit => outcome.critical(format!("{label}: {n}")),
            Some(_) => outcome.ok(format!("{label}: {n}")),
            None => {}
        }
    }
    let ages = [
        (
            "last_delivery",
            ("delivery", "deliveries"),
            &info["delivered"]["last_active"],
            args.last_delivery_critical,
        ),
        (
            "last_ack",
            ("ack", "acks"),
            &info["ack_floor"]["last_active"],
            args.last_ack_critical,
        ),
    ];
    for (name, (what, whats), at, critical) in ages {
        let ago = seconds_since(at);
        if let Some(ago) = ago {
            let limit = critical.map_or(0.0, |c| c.as_secs_f64());
            outcome.perf(name, ago, 0.0, limit, "s");
        }
        let Some(limit) = critical else {
            continue;
        };
        match ago {
            None => outcome.critical(format!("No {whats}")),
            Some(ago) if ago >= limit.as_secs_f64() => {
                outcome.critical(format!("Last {what} {ago:.0}s ago"))
            }
            Some(ago) => outcome.ok(format!("Last {what} {ago:.0}s ago")),
        }
    }
    if outcome.is_quiet() {
        outcome.ok("consumer exists".to_string());
    }
    outcome.finish(format)
}

pub(super) async fn jetstream(args: JetStreamCheck) -> Result<()> {
    let mut outcome = Outcome::new("JetStream", "jetstream");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let info = match api(&client, "$JS.API.INFO").await {
        Ok(info) => info,
        Err(e) => {
            outcome.critical(format!("JetStream: {e}"));
            return outcome.finish(format);
        }
    };
    let limits = &info["limits"];
    let uses = [
        (
            "memory",
            "memory",
            &info["memory"],
            &limits["max_memory"],
            Some(args.mem_warn),
            Some(args.mem_critical),
        ),
        (
            "storage",
            "storage",
            &info["storage"],
            &limits["max_storage"],
            Some(args.store_warn),
            Some(args.store_critical),
        ),
        (
            "streams",
            "streams",
            &info["streams"],
            &limits["max_streams"],
            args.streams_warn,
            args.streams_critical,
        ),
        (
            "consumers",
            "consumers",
            &info["consumers"],
            &limits["max_consumers"],
            args.consumers_warn,
            args.consumers_critical,
        ),
    ];
    for (name, label, used, limit, warn, crit) in uses {
        let used = count(used);
        outcome.perf(name, used as f64, 0.0, 0.0, "");
        // A limit of -1 (none) is not a limit to run out of.
        let Some(limit) = limit.as_i64().filter(|l| *l > 0) else {
            outcome.ok(format!("{label} {used} (no limit)"));
            continue;
        };
        let percent = used.saturating_mul(100) / limit as u64;
        match (warn, crit) {
            (_, Some(c)) if percent >= c => outcome.critical(format!("{percent}% {label}")),
            (Some(w), _) if percent >= w => outcome.warn(format!("{percent}% {label}")),
            _ => outcome.ok(format!("{percent}% {label}")),
        }
    }
    outcome.finish(format)
}

/// `server check meta`: the meta group as its leader reports it (`$SYS.REQ.SERVER.PING.JSZ`
/// with `leader_only`, so that only the leader answers), judged as natscli judges it.
pub(super) async fn meta(args: MetaCheck) -> Result<()> {
    let mut outcome = Outcome::new("JetStream Meta Cluster", "meta");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let asked = client.request("$SYS.REQ.SERVER.PING.JSZ", r#"{"leader_only":true}"#.into());
    let answer = match tokio::time::timeout(args.out.common.timeout, asked).await {
        Ok(Ok(reply)) => serde_json::from_slice::<Value>(&reply.payload),
        Ok(Err(e)) => {
            outcome.critical(format!("JSZ API request failed: {e}"));
            return outcome.finish(format);
        }
        Err(_) => {
            outcome.critical("JSZ API request failed: timed out".to_string());
            return outcome.finish(format);
        }
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            outcome.critical(format!("invalid result received: {e}"));
            return outcome.finish(format);
        }
    };
    if let Some(error) = answer["error"]["description"].as_str() {
        outcome.critical(format!("invalid result received: {error}"));
        return outcome.finish(format);
    }
    let meta = &answer["data"]["meta_cluster"];
    if meta.is_null() {
        outcome.critical("no cluster information".to_string());
        return outcome.finish(format);
    }
    let Some(leader) = meta["leader"].as_str().filter(|l| !l.is_empty()) else {
        outcome.critical("No leader".to_string());
        return outcome.finish(format);
    };
    let none = Vec::new();
    let replicas = meta["replicas"].as_array().unwrap_or(&none);
    let peers = replicas.len() + 1;
    let expect = args.expect as f64;
    outcome.perf("peers", peers as f64, expect, expect, "");
    if peers != args.expect {
        outcome.critical(format!("{peers} peers of expected {}", args.expect));
    }
    let seen = args.seen_critical.as_nanos();
    let tally = |f: &dyn Fn(&Value) -> bool| replicas.iter().filter(|r| f(r)).count();
    let not_current = tally(&|r| r["current"] != true);
    let offline = tally(&|r| r["offline"] == true);
    let inactive = tally(&|r| u128::from(count(&r["active"])) > seen);
    let lagged = tally(&|r| count(&r["lag"]) > args.lag_critical);
    outcome.perf("peer_offline", offline as f64, 0.0, 0.0, "");
    outcome.perf("peer_not_current", not_current as f64, 0.0, 0.0, "");
    outcome.perf("peer_inactive", inactive as f64, 0.0, 0.0, "");
    outcome.perf("peer_lagged", lagged as f64, 0.0, 0.0, "");
    if not_current > 0 {
        outcome.critical(format!("{not_current} not current"));
    }
    if inactive > 0 {
        let seen = format_duration(args.seen_critical);
        outcome.critical(format!("{inactive} inactive more than {seen}"));
    }
    if offline > 0 {
        outcome.critical(format!("{offline} offline"));
    }
    if lagged > 0 {
        outcome.critical(format!(
            "{lagged} lagged more than {} ops",
            args.lag_critical
        ));
    }
    if outcome.is_quiet() {
        outcome.ok(format!("{peers} peers led by {leader}"));
    }
    outcome.finish(format)
}
