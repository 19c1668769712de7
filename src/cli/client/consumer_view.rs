//! How consumers are shown: `consumer info`, `consumer ls` and `consumer report`.
//!
//! With `--json` the server's replies are printed as they came; otherwise they are decoded
//! into async-nats' `consumer::Info` and laid out in tables.

use anyhow::{Context as _, Result};
use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::Context;
use serde_json::{Map, Value};

use super::api::{self, decode};
use super::connect::CommonArgs;
use super::output;
use super::units::format_duration;
use crate::jetstream::time::format_rfc3339;

fn kind(config: &consumer::Config) -> &'static str {
    if config.deliver_subject.is_some() {
        "push"
    } else {
        "pull"
    }
}

fn deliver_text(policy: &DeliverPolicy) -> String {
    match policy {
        DeliverPolicy::All => "all".into(),
        DeliverPolicy::Last => "last".into(),
        DeliverPolicy::New => "new".into(),
        DeliverPolicy::LastPerSubject => "last-per-subject".into(),
        DeliverPolicy::ByStartSequence { start_sequence } => format!("from seq {start_sequence}"),
        DeliverPolicy::ByStartTime { start_time } => {
            let nanos = i64::try_from(start_time.unix_timestamp_nanos()).ok();
            format!("from {}", format_rfc3339(nanos))
        }
    }
}

/// Prints one consumer's configuration and state (the reply of `CONSUMER.INFO`).
pub fn show_info(info: Value, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&info);
    }
    let info: consumer::Info = decode(info, "consumer info")?;
    let c = &info.config;
    let mut rows = vec![
        ("Name", info.name.clone()),
        ("Stream", info.stream_name.clone()),
        ("Type", kind(c).to_string()),
    ];
    if let Some(subject) = &c.deliver_subject {
        rows.push(("Deliver subject", subject.clone()));
    }
    if let Some(group) = &c.deliver_group {
        rows.push(("Deliver group", group.clone()));
    }
    if !c.filter_subject.is_empty() {
        rows.push(("Filter", c.filter_subject.clone()));
    }
    let backoff: Vec<String> = c.backoff.iter().map(|d| format_duration(*d)).collect();
    rows.extend([
        ("Deliver policy", deliver_text(&c.deliver_policy)),
        ("Ack policy", output::wire_name(c.ack_policy)),
        ("Ack wait", format_duration(c.ack_wait)),
        ("Max deliver", c.max_deliver.to_string()),
        ("Backoff", backoff.join(", ")),
        ("Max ack pending", c.max_ack_pending.to_string()),
        ("Replay policy", output::wire_name(c.replay_policy)),
        (
            "Last delivered",
            format!(
                "consumer seq {}, stream seq {}",
                info.delivered.consumer_sequence, info.delivered.stream_sequence
            ),
        ),
        (
            "Ack floor",
            format!(
                "consumer seq {}, stream seq {}",
                info.ack_floor.consumer_sequence, info.ack_floor.stream_sequence
            ),
        ),
        ("Ack pending", info.num_ack_pending.to_string()),
        ("Redelivered", info.num_redelivered.to_string()),
        ("Waiting pulls", info.num_waiting.to_string()),
        ("Unprocessed", info.num_pending.to_string()),
    ]);
    if c.priority_policy != consumer::PriorityPolicy::None {
        rows.push(("Priority policy", output::wire_name(&c.priority_policy)));
        rows.push(("Priority groups", c.priority_groups.join(", ")));
    }
    for group in &info.priority_groups {
        if let Some(id) = &group.pinned_client_id {
            rows.push(("Pinned client", format!("{id} (group {})", group.group)));
        }
    }
    if info.paused {
        let left = info.pause_remaining.unwrap_or_default();
        rows.push(("Paused", format!("for another {}", format_duration(left))));
    }
    output::print_table(&output::properties(rows))
}

/// `consumer ls`.
pub async fn list(js: &Context, common: &CommonArgs, stream: &str, names_only: bool) -> Result<()> {
    let (subject, what) = if names_only {
        (format!("CONSUMER.NAMES.{stream}"), "consumers")
    } else {
        (format!("CONSUMER.LIST.{stream}"), "consumers")
    };
    let mut items = api::list_all(js, &subject, what, Map::new())
        .await
        .with_context(|| format!("stream {stream}"))?;
    if names_only {
        let mut names: Vec<String> = items
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        names.sort();
        if common.json {
            return output::json_pretty(&names);
        }
        return names.iter().try_for_each(output::line);
    }
    items.sort_by_key(|info| info["name"].as_str().unwrap_or("").to_string());
    if common.json {
        return output::json_pretty(&items);
    }
    if items.is_empty() {
        return output::line(format!("no consumers on stream {stream}"));
    }
    let mut table = output::table(&[
        "Name",
        "Type",
        "Filter",
        "Ack pending",
        "Unprocessed",
        "Last delivered",
    ]);
    for item in items {
        let info: consumer::Info = decode(item, "consumer list")?;
        table.add_row(vec![
            info.name.clone(),
            kind(&info.config).to_string(),
            info.config.filter_subject.clone(),
            info.num_ack_pending.to_string(),
            info.num_pending.to_string(),
            info.delivered.stream_sequence.to_string(),
        ]);
    }
    output::print_table(&table)
}

/// `consumer report`: every consumer of a stream with its delivery and ack state, as natscli
/// reports them.
pub async fn report(js: &Context, common: &CommonArgs, stream: &str) -> Result<()> {
    let mut items = api::list_all(
        js,
        &format!("CONSUMER.LIST.{stream}"),
        "consumers",
        Map::new(),
    )
    .await
    .with_context(|| format!("stream {stream}"))?;
    items.sort_by_key(|info| info["name"].as_str().unwrap_or("").to_string());
    let mut infos = Vec::new();
    for item in items {
        infos.push(decode::<consumer::Info>(item, "consumer list")?);
    }
    if common.json {
        let rows: Vec<Value> = infos
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name,
                    "mode": kind(&i.config),
                    "ack_policy": output::wire_name(i.config.ack_policy),
                    "ack_wait": i.config.ack_wait.as_nanos() as u64,
                    "num_ack_pending": i.num_ack_pending,
                    "num_redelivered": i.num_redelivered,
                    "num_waiting": i.num_waiting,
                    "num_pending": i.num_pending,
                    "delivered_stream_seq": i.delivered.stream_sequence,
                    "ack_floor_stream_seq": i.ack_floor.stream_sequence,
                })
            })
            .collect();
        return output::json_pretty(&rows);
    }
    if infos.is_empty() {
        return output::line(format!("no consumers on stream {stream}"));
    }
    let mut table = output::table(&[
        "Consumer",
        "Mode",
        "Ack Policy",
        "Ack Wait",
        "Ack Pending",
        "Redelivered",
        "Unprocessed",
        "Ack Floor",
    ]);
    for i in infos {
        table.add_row(vec![
            i.name.clone(),
            kind(&i.config).to_string(),
            output::wire_name(i.config.ack_policy),
            format_duration(i.config.ack_wait),
            i.num_ack_pending.to_string(),
            i.num_redelivered.to_string(),
            i.num_pending.to_string(),
            i.ack_floor.stream_sequence.to_string(),
        ]);
    }
    output::print_table(&table)
}
