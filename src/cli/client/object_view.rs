//! How object-store buckets and objects are shown: tables and property lists for people,
//! the object metadata (as the clients store it) or the server's stream info for `--json`.

use std::path::Path;

use anyhow::Result;
use async_nats::jetstream::object_store::ObjectInfo;
use async_nats::jetstream::stream;
use serde_json::{json, Value};

use super::api::decode;
use super::output;
use super::stream_view::time;
use super::units::{format_limit_duration, format_limit_size, format_size};

fn modified(info: &ObjectInfo) -> String {
    info.modified.map(time).unwrap_or_else(|| "unknown".into())
}

/// Where a link points, as `bucket > name` (or `bucket` for a link to a whole bucket).
fn link_target(info: &ObjectInfo) -> Option<String> {
    let link = info.options.as_ref()?.link.as_ref()?;
    Some(match &link.name {
        Some(name) => format!("{} > {name}", link.bucket),
        None => link.bucket.clone(),
    })
}

/// `put` and `info BUCKET NAME`: one object's metadata.
pub fn show_object(info: &ObjectInfo, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(info);
    }
    let mut rows = vec![("Name", format!("{} > {}", info.bucket, info.name))];
    if let Some(description) = info.description.as_ref().filter(|d| !d.is_empty()) {
        rows.push(("Description", description.clone()));
    }
    if let Some(target) = link_target(info) {
        rows.push(("Link to", target));
    } else {
        rows.extend([
            ("Size", format_size(info.size as u64)),
            ("Chunks", info.chunks.to_string()),
            ("Digest", info.digest.clone().unwrap_or_default()),
        ]);
    }
    rows.push(("Modified", modified(info)));
    if let Some(headers) = &info.headers {
        let mut lines: Vec<String> = headers
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| format!("{name}: {v}")))
            .collect();
        lines.sort();
        if !lines.is_empty() {
            rows.push(("Headers", lines.join("\n")));
        }
    }
    output::print_table(&output::properties(rows))
}

/// `ls BUCKET`: the live objects.
pub fn show_objects(objects: &[ObjectInfo], names_only: bool, json: bool) -> Result<()> {
    if names_only {
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        if json {
            return output::json_pretty(&names);
        }
        return names.iter().try_for_each(output::line);
    }
    if json {
        return output::json_pretty(&objects);
    }
    if objects.is_empty() {
        return output::line("no objects in this bucket");
    }
    let mut table = output::table(&["Name", "Size", "Modified"]);
    for object in objects {
        let size = match link_target(object) {
            Some(target) => format!("link to {target}"),
            None => format_size(object.size as u64),
        };
        table.add_row(vec![object.name.clone(), size, modified(object)]);
    }
    output::print_table(&table)
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
        return output::line("no object store buckets defined");
    }
    let mut table = output::table(&["Bucket", "Description", "Size", "Last update"]);
    for (name, info) in buckets {
        let info: stream::Info = decode(info.clone(), "stream list")?;
        table.add_row(vec![
            name.clone(),
            info.config.description.clone().unwrap_or_default(),
            format_size(info.state.bytes),
            time(info.state.last_timestamp),
        ]);
    }
    output::print_table(&table)
}

/// `add` and `info BUCKET`: the bucket's settings, from its stream's info.
pub fn show_bucket(info: Value, json: bool) -> Result<()> {
    if json {
        return output::json_pretty(&info);
    }
    let info: stream::Info = decode(info, "stream info")?;
    let config = &info.config;
    let bucket = config.name.strip_prefix("OBJ_").unwrap_or(&config.name);
    let mut rows = vec![("Bucket", bucket.to_string())];
    if let Some(description) = config.description.as_ref().filter(|d| !d.is_empty()) {
        rows.push(("Description", description.clone()));
    }
    rows.extend([
        ("Created", time(info.created)),
        ("TTL", format_limit_duration(config.max_age)),
        ("Size", format_size(info.state.bytes)),
        ("Max bucket size", format_limit_size(config.max_bytes)),
        ("Storage", output::wire_name(config.storage)),
        ("Sealed", if config.sealed { "yes" } else { "no" }.into()),
        ("Stream", config.name.clone()),
    ]);
    output::print_table(&output::properties(rows))
}

/// After `get` into a file.
pub fn show_fetched(bucket: &str, name: &str, path: &Path, bytes: u64, json: bool) -> Result<()> {
    if json {
        return output::json_line(&json!({
            "bucket": bucket, "name": name, "file": path.display().to_string(), "bytes": bytes
        }));
    }
    output::line(format!(
        "wrote {bucket} > {name} to {} ({})",
        path.display(),
        format_size(bytes)
    ))
}

/// After `rm` of an object or a bucket.
pub fn show_removed(bucket: &str, name: Option<&str>, json: bool) -> Result<()> {
    if json {
        return output::json_line(&json!({"bucket": bucket, "name": name, "deleted": true}));
    }
    match name {
        Some(name) => output::line(format!("deleted {bucket} > {name}")),
        None => output::line(format!("object store bucket {bucket} deleted")),
    }
}
