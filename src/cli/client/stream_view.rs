//! How streams are shown: `stream info`, `stream ls` and `stream report`.
//!
//! With `--json` the server's replies are printed as they came; otherwise they are decoded
//! into async-nats' `stream::Info` and laid out in tables.

use anyhow::Result;
use async_nats::jetstream::stream;
use async_nats::jetstream::Context;
use serde_json::{json, Map, Value};

use super::api::{self, decode};
use super::connect::CommonArgs;
use super::output;
use super::units::{
    format_duration, format_limit_count, format_limit_duration, format_limit_size, format_size,
};
use crate::jetstream::time::format_rfc3339;

/// A server timestamp, or `never` for the zero time NATS uses for "no message yet".
pub fn time(datetime: async_nats::datetime::DateTime) -> String {
    match i64::try_from(datetime.unix_timestamp_nanos()) {
        Ok(nanos) if datetime.year() > 1 => format_rfc3339(Some(nanos)),
        _ => "never".to_string(),
    }
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

/// Prints one stream's configuration and state (the reply of `STREAM.INFO`, `CREATE` or
/// `UPDATE`).
pub fn show_info(info: Value, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&info);
    }
    let info: stream::Info = decode(info, "stream info")?;
    let config = &info.config;
    let state = &info.state;
    let mut rows = vec![("Name", config.name.clone())];
    if let Some(description) = config.description.as_ref().filter(|d| !d.is_empty()) {
        rows.push(("Description", description.clone()));
    }
    rows.extend([
        ("Subjects", config.subjects.join(", ")),
        ("Created", time(info.created)),
        ("Storage", output::wire_name(config.storage)),
        ("Replicas", config.num_replicas.to_string()),
        ("Retention", output::wire_name(config.retention)),
        ("Discard", output::wire_name(config.discard)),
        ("Max messages", format_limit_count(config.max_messages)),
        ("Max bytes", format_limit_size(config.max_bytes)),
        ("Max age", format_limit_duration(config.max_age)),
        (
            "Max msgs per subject",
            format_limit_count(config.max_messages_per_subject),
        ),
        (
            "Max message size",
            format_limit_size(i64::from(config.max_message_size)),
        ),
        ("Duplicate window", format_duration(config.duplicate_window)),
        ("Allow direct", yes_no(config.allow_direct)),
        ("Allow rollup", yes_no(config.allow_rollup)),
        ("Deny delete", yes_no(config.deny_delete)),
        ("Deny purge", yes_no(config.deny_purge)),
        ("Sealed", yes_no(config.sealed)),
    ]);
    // The 2.10–2.12 settings, shown only when a stream uses them.
    if let Some(t) = config
        .subject_transform
        .as_ref()
        .filter(|t| !t.destination.is_empty())
    {
        rows.push((
            "Subject transform",
            format!("{} → {}", or_all(&t.source), t.destination),
        ));
    }
    if let Some(r) = config
        .republish
        .as_ref()
        .filter(|r| !r.destination.is_empty())
    {
        let what = if r.headers_only {
            " (headers only)"
        } else {
            ""
        };
        rows.push((
            "Republish",
            format!("{} → {}{what}", or_all(&r.source), r.destination),
        ));
    }
    if config.allow_message_ttl {
        rows.push(("Per-message TTL", "allowed".to_string()));
    }
    if let Some(ttl) = config.subject_delete_marker_ttl {
        rows.push(("Delete markers", format!("kept {}", format_duration(ttl))));
    }
    if config.allow_message_counter {
        rows.push(("Counter", "yes (Nats-Incr)".to_string()));
    }
    if config.allow_message_schedules {
        rows.push(("Message schedules", "allowed (Nats-Schedule)".to_string()));
    }
    if config.allow_atomic_publish {
        rows.push(("Atomic batches", "allowed (Nats-Batch-Id)".to_string()));
    }
    if let Some(mirror) = &config.mirror {
        rows.push(("Mirror", origin_text(&mirror.name, &mirror.filter_subject)));
    }
    if let Some(sources) = config.sources.as_ref().filter(|s| !s.is_empty()) {
        let names: Vec<String> = sources
            .iter()
            .map(|s| origin_text(&s.name, &s.filter_subject))
            .collect();
        rows.push(("Sources", names.join(", ")));
    }
    // In a cluster, where the stream runs, as natscli's "Cluster Information".
    if let Some(cluster) = info.cluster.as_ref() {
        if let Some(name) = cluster.name.as_ref() {
            let leader = cluster.leader.as_deref().unwrap_or("none");
            rows.push(("Cluster", format!("{name}, leader {leader}")));
        }
        for peer in &cluster.replicas {
            let state = match (peer.current, peer.lag.unwrap_or(0)) {
                (true, _) => "current".to_string(),
                (false, lag) => format!("outdated, lag {lag}"),
            };
            rows.push(("Replica", format!("{}, {state}", peer.name)));
        }
    }
    output::line("Configuration:")?;
    output::print_table(&output::properties(rows))?;
    // How far each origin is behind, as natscli shows it.
    let origins = info.mirror.iter().chain(info.sources.iter());
    let rows: Vec<(&str, String)> = origins
        .map(|o| {
            let seen = match o.active {
                Some(ago) => format!("{} ago", format_duration(ago)),
                None => "never".to_string(),
            };
            (
                "Origin",
                format!("{}: lag {}, last seen {seen}", o.name, o.lag),
            )
        })
        .collect();
    if !rows.is_empty() {
        output::line("\nCopying:")?;
        output::print_table(&output::properties(rows))?;
    }
    output::line("\nState:")?;
    print_state(state)
}

/// `stream state`: the state part of `stream info`.
pub fn show_state(info: Value, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&info["state"]);
    }
    let info: stream::Info = decode(info, "stream info")?;
    print_state(&info.state)
}

fn print_state(state: &stream::State) -> Result<()> {
    let deleted = state.deleted_count.unwrap_or(0);
    let rows = vec![
        ("Messages", state.messages.to_string()),
        ("Bytes", format_size(state.bytes)),
        (
            "First sequence",
            format!("{} ({})", state.first_sequence, time(state.first_timestamp)),
        ),
        (
            "Last sequence",
            format!("{} ({})", state.last_sequence, time(state.last_timestamp)),
        ),
        ("Deleted messages", deleted.to_string()),
        ("Subjects", state.subjects_count.to_string()),
        ("Consumers", state.consumer_count.to_string()),
    ];
    output::print_table(&output::properties(rows))
}

/// Every stream's info, sorted by name.
async fn all_infos(js: &Context) -> Result<Vec<Value>> {
    let mut infos = api::list_all(js, "STREAM.LIST", "streams", Map::new()).await?;
    infos.sort_by_key(|info| info["config"]["name"].as_str().unwrap_or("").to_string());
    Ok(infos)
}

/// `stream ls`.
pub async fn list(js: &Context, common: &CommonArgs, names_only: bool) -> Result<()> {
    if names_only {
        let mut names: Vec<String> = api::list_all(js, "STREAM.NAMES", "streams", Map::new())
            .await?
            .into_iter()
            .filter_map(|name| name.as_str().map(str::to_string))
            .collect();
        names.sort();
        if common.json {
            return output::json_pretty(&names);
        }
        return names.iter().try_for_each(output::line);
    }
    let infos = all_infos(js).await?;
    if common.json {
        return output::json_pretty(&infos);
    }
    if infos.is_empty() {
        return output::line("no streams defined");
    }
    let mut table = output::table(&["Name", "Subjects", "Messages", "Size", "Last message"]);
    for info in infos {
        let info: stream::Info = decode(info, "stream list")?;
        table.add_row(vec![
            info.config.name.clone(),
            info.config.subjects.join(", "),
            info.state.messages.to_string(),
            format_size(info.state.bytes),
            time(info.state.last_timestamp),
        ]);
    }
    output::print_table(&table)
}

/// `stream report`: the state of every stream, one row each.
pub async fn report(js: &Context, common: &CommonArgs) -> Result<()> {
    let mut rows = Vec::new();
    for info in all_infos(js).await? {
        let info: stream::Info = decode(info, "stream list")?;
        rows.push(info);
    }
    if common.json {
        let report: Vec<Value> = rows
            .iter()
            .map(|info| {
                json!({
                    "name": info.config.name,
                    "storage": output::wire_name(info.config.storage),
                    "retention": output::wire_name(info.config.retention),
                    "consumers": info.state.consumer_count,
                    "messages": info.state.messages,
                    "bytes": info.state.bytes,
                    "first_seq": info.state.first_sequence,
                    "last_seq": info.state.last_sequence,
                    "num_deleted": info.state.deleted_count.unwrap_or(0),
                    "num_subjects": info.state.subjects_count,
                })
            })
            .collect();
        return output::json_pretty(&report);
    }
    if rows.is_empty() {
        return output::line("no streams defined");
    }
    let mut table = output::table(&[
        "Stream",
        "Storage",
        "Retention",
        "Consumers",
        "Messages",
        "Bytes",
        "First seq",
        "Last seq",
        "Deleted",
        "Subjects",
    ]);
    for info in rows {
        table.add_row(vec![
            info.config.name.clone(),
            output::wire_name(info.config.storage),
            output::wire_name(info.config.retention),
            info.state.consumer_count.to_string(),
            info.state.messages.to_string(),
            format_size(info.state.bytes),
            info.state.first_sequence.to_string(),
            info.state.last_sequence.to_string(),
            info.state.deleted_count.unwrap_or(0).to_string(),
            info.state.subjects_count.to_string(),
        ]);
    }
    output::print_table(&table)
}

/// A transform's source as the server reads it: empty means every subject.
fn or_all(source: &str) -> &str {
    if source.is_empty() {
        ">"
    } else {
        source
    }
}

/// `stream subjects`: every subject matching `filter` and how many messages it holds, read
/// page by page (the server sends at most 100,000 subjects per reply), sorted by subject.
pub async fn subjects(js: &Context, common: &CommonArgs, name: &str, filter: &str) -> Result<()> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    loop {
        let request = json!({"subjects_filter": filter, "offset": counts.len()});
        let reply = api::request(js, &format!("STREAM.INFO.{name}"), &request)
            .await
            .map_err(|e| e.context(format!("stream {name}")))?;
        let page = reply["state"]["subjects"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let before = counts.len();
        for (subject, count) in page {
            counts.insert(subject, count.as_u64().unwrap_or(0));
        }
        let total = reply["total"].as_u64().unwrap_or(0) as usize;
        if counts.len() >= total || counts.len() == before {
            break;
        }
    }
    if common.json {
        return output::json_pretty(&counts);
    }
    if counts.is_empty() {
        return output::line(format!("no subjects in {name} match {filter}"));
    }
    let mut table = output::table(&["Subject", "Messages"]);
    for (subject, count) in counts {
        table.add_row(vec![subject, count.to_string()]);
    }
    output::print_table(&table)
}

/// An origin stream as `stream info` names it: with its filter when it has one.
fn origin_text(name: &str, filter: &Option<String>) -> String {
    match filter.as_deref().filter(|f| !f.is_empty()) {
        Some(filter) => format!("{name} (filter {filter})"),
        None => name.to_string(),
    }
}

/// The conditions of `stream find`; a stream is listed when it meets all that are given.
#[derive(Debug, clap::Args)]
pub struct FindArgs {
    /// Streams holding this subject (wildcards allowed), as the server matches it.
    #[arg(long)]
    subject: Option<String>,
    /// Streams with no messages.
    #[arg(long)]
    empty: bool,
    /// Streams with fewer than N consumers.
    #[arg(long, value_name = "N")]
    consumers: Option<u64>,
    /// Mirrors.
    #[arg(long)]
    mirrored: bool,
    /// Streams with sources.
    #[arg(long)]
    sourced: bool,
    /// The streams that do not match, instead.
    #[arg(long)]
    invert: bool,
}

/// `stream find`: the matching streams' names, sorted.
pub async fn find(js: &Context, common: &CommonArgs, args: &FindArgs) -> Result<()> {
    let mut filter = Map::new();
    if let Some(subject) = &args.subject {
        filter.insert("subject".into(), json!(subject));
    }
    let by_subject = api::list_all(js, "STREAM.LIST", "streams", filter).await?;
    let named: Vec<&str> = by_subject
        .iter()
        .filter_map(|i| i["config"]["name"].as_str())
        .collect();
    let mut found = Vec::new();
    for info in all_infos(js).await? {
        let name = info["config"]["name"].as_str().unwrap_or("").to_string();
        let matches = named.contains(&name.as_str())
            && (!args.empty || info["state"]["messages"].as_u64() == Some(0))
            && args
                .consumers
                .is_none_or(|n| info["state"]["consumer_count"].as_u64().unwrap_or(0) < n)
            && (!args.mirrored || info["config"].get("mirror").is_some_and(|m| !m.is_null()))
            && (!args.sourced
                || info["config"]["sources"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()));
        if matches != args.invert {
            found.push(name);
        }
    }
    if common.json {
        return output::json_pretty(&found);
    }
    if found.is_empty() {
        return output::line("no streams found");
    }
    found.iter().try_for_each(output::line)
}
