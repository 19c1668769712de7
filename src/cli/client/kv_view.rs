//! How key-value buckets and entries are shown: one line per change for `watch`, a table for
//! `history` and `ls`, the value for `get`, and the same facts as JSON with `--json`.
//!
//! Values are bytes: they are shown as text when they are UTF-8 and as base64 otherwise, in
//! both forms, so binary values survive a round trip through a script.

use anyhow::Result;
use async_nats::jetstream::kv::{Entry, Operation};
use async_nats::jetstream::stream;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::api::decode;
use super::output;
use super::stream_view::time;
use super::units::{format_limit_duration, format_limit_size, format_size};

/// The longest value `history` shows in its table before eliding the middle.
const HISTORY_VALUE_CHARS_MAX: usize = 40;

/// The operation as the KV-Operation header spells it (and `nats kv` prints it).
fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Put => "PUT",
        Operation::Delete => "DEL",
        Operation::Purge => "PURGE",
    }
}

/// For messages about a key whose latest entry is a marker.
pub fn operation_past_tense(operation: Operation) -> &'static str {
    match operation {
        Operation::Put => "written",
        Operation::Delete => "deleted",
        Operation::Purge => "purged",
    }
}

/// The JSON shape of an entry; a struct, so fields keep this order.
#[derive(Serialize)]
struct EntryRecord<'a> {
    bucket: &'a str,
    key: &'a str,
    revision: u64,
    created: String,
    operation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl<'a> EntryRecord<'a> {
    fn of(entry: &'a Entry) -> Self {
        let (value, value_base64) = match std::str::from_utf8(&entry.value) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(BASE64.encode(&entry.value))),
        };
        Self {
            bucket: &entry.bucket,
            key: &entry.key,
            revision: entry.revision,
            created: time(entry.created),
            operation: operation_name(entry.operation),
            value,
            value_base64,
        }
    }
}

/// A value as text, or as base64 when it is not UTF-8.
fn printable(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_string(),
        Err(_) => format!("base64:{}", BASE64.encode(value)),
    }
}

/// Shortens a long value to its start and end, on character boundaries.
fn elide(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let side = max_chars.saturating_sub(3) / 2;
    let head: String = text.chars().take(side).collect();
    let tail: String = text.chars().skip(count - side).collect();
    format!("{head}...{tail}")
}

/// After `put`, `create` and `update`: the revision the value got.
pub fn show_written(bucket: &str, key: &str, revision: u64, json: bool) -> Result<()> {
    if json {
        return output::json_line(&json!({"bucket": bucket, "key": key, "revision": revision}));
    }
    output::line(format!("{bucket} > {key} revision {revision}"))
}

/// After `del` and `purge` of a key.
pub fn show_done(done: &str, bucket: &str, key: &str, json: bool) -> Result<()> {
    if json {
        return output::json_line(&json!({"bucket": bucket, "key": key, done: true}));
    }
    output::line(format!("{done} {bucket} > {key}"))
}

/// `get`: the raw bytes, the JSON record, or a title line and the value.
pub fn show_entry(entry: &Entry, raw: bool, json: bool) -> Result<()> {
    if raw {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&entry.value)?;
        out.flush()?;
        return Ok(());
    }
    if json {
        return output::json_line(&EntryRecord::of(entry));
    }
    output::line(format!(
        "{} > {} revision {} created {}\n\n{}",
        entry.bucket,
        entry.key,
        entry.revision,
        time(entry.created),
        printable(&entry.value)
    ))
}

/// `watch`: one line per change, as it arrives.
pub fn show_change(entry: &Entry, json: bool) -> Result<()> {
    if json {
        return output::json_line(&EntryRecord::of(entry));
    }
    let op = operation_name(entry.operation);
    let head = format!(
        "[{}] {op} {} > {}",
        time(entry.created),
        entry.bucket,
        entry.key
    );
    match entry.operation {
        Operation::Put => output::line(format!("{head}: {}", printable(&entry.value))),
        Operation::Delete | Operation::Purge => output::line(head),
    }
}

/// `history`: every kept revision of a key, oldest first.
pub fn show_history(entries: &[Entry], json: bool) -> Result<()> {
    if json {
        let records: Vec<EntryRecord> = entries.iter().map(EntryRecord::of).collect();
        return output::json_pretty(&records);
    }
    if entries.is_empty() {
        return output::line("no history for this key");
    }
    let mut table = output::table(&["Key", "Revision", "Op", "Created", "Length", "Value"]);
    for entry in entries {
        table.add_row(vec![
            entry.key.clone(),
            entry.revision.to_string(),
            operation_name(entry.operation).to_string(),
            time(entry.created),
            entry.value.len().to_string(),
            elide(&printable(&entry.value), HISTORY_VALUE_CHARS_MAX),
        ]);
    }
    output::print_table(&table)
}

/// `keys` and `ls BUCKET`.
pub fn show_keys(keys: &[String], json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&keys);
    }
    if keys.is_empty() {
        return output::line("no keys in this bucket");
    }
    keys.iter().try_for_each(output::line)
}

/// `ls`: the buckets, as names or a table.
pub fn show_buckets(buckets: &[(String, Value)], names_only: bool, json: bool) -> Result<()> {
    if names_only {
        let names: Vec<&str> = buckets.iter().map(|(name, _)| name.as_str()).collect();
        if json {
            return output::json_pretty(&names);
        }
        return names.iter().try_for_each(output::line);
    }
    if json {
        let infos: Vec<&Value> = buckets.iter().map(|(_, info)| info).collect();
        return output::json_pretty(&infos);
    }
    if buckets.is_empty() {
        return output::line("no key-value buckets defined");
    }
    let mut table = output::table(&["Bucket", "Description", "Values", "Size", "Last update"]);
    for (name, info) in buckets {
        let info: stream::Info = decode(info.clone(), "stream list")?;
        table.add_row(vec![
            name.clone(),
            info.config.description.clone().unwrap_or_default(),
            info.state.messages.to_string(),
            format_size(info.state.bytes),
            time(info.state.last_timestamp),
        ]);
    }
    output::print_table(&table)
}

/// `info` and `add`: the bucket's settings in KV terms, from its stream's info.
pub fn show_status(info: Value, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&info);
    }
    let info: stream::Info = decode(info, "stream info")?;
    let config = &info.config;
    let bucket = config.name.strip_prefix("KV_").unwrap_or(&config.name);
    let mut rows = vec![("Bucket", bucket.to_string())];
    if let Some(description) = config.description.as_ref().filter(|d| !d.is_empty()) {
        rows.push(("Description", description.clone()));
    }
    rows.extend([
        ("Created", time(info.created)),
        ("History kept", config.max_messages_per_subject.to_string()),
        ("TTL", format_limit_duration(config.max_age)),
        ("Values stored", info.state.messages.to_string()),
        ("Bucket size", format_size(info.state.bytes)),
        ("Max bucket size", format_limit_size(config.max_bytes)),
        (
            "Max value size",
            format_limit_size(i64::from(config.max_message_size)),
        ),
        ("Storage", output::wire_name(config.storage)),
        ("Stream", config.name.clone()),
    ]);
    output::print_table(&output::properties(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_keep_their_start_and_end() {
        assert_eq!(elide("short", 40), "short");
        let long = "a".repeat(30) + &"b".repeat(30);
        let shown = elide(&long, 11);
        assert_eq!(shown, "aaaa...bbbb");
        // Multi-byte characters are never split.
        assert_eq!(elide("ééééééééééé", 7), "éé...éé");
    }

    #[test]
    fn binary_values_are_marked_and_encoded() {
        assert_eq!(printable(b"blue"), "blue");
        assert_eq!(printable(&[0xff, 0x00]), "base64:/wA=");
    }
}
