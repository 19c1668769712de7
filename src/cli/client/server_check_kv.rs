//! `jetlog server check kv`: a key-value bucket, its number of values, and optionally one key
//! that must hold a value (not a delete or purge marker), judged as natscli judges them.

use anyhow::Result;
use base64::Engine;
use serde_json::{json, Value};

use super::server_check::{api_request as request, connected, KvCheck, Outcome};

/// The `KV-Operation` header of a stored message's base64 headers, if any.
fn operation(hdrs: &Value) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(hdrs.as_str()?)
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("KV-Operation")
            .then(|| value.trim().to_string())
    })
}

pub(super) async fn kv(args: KvCheck) -> Result<()> {
    let bucket = args.bucket.clone();
    let mut outcome = Outcome::new_named(bucket.clone(), "kv");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let stream = format!("KV_{bucket}");
    let info = match request(&client, format!("$JS.API.STREAM.INFO.{stream}"), json!({})).await {
        Ok(info) => info,
        Err(e) if e["err_code"] == 10059 => {
            outcome.critical(format!("bucket {bucket} not found"));
            return outcome.finish(format);
        }
        Err(e) => {
            outcome.critical(format!("could not load bucket: {}", e["description"]));
            return outcome.finish(format);
        }
    };
    outcome.ok(format!("bucket {bucket}"));
    let values = info["state"]["messages"].as_u64().unwrap_or(0);
    let (warn, crit) = (args.values_warn, args.values_critical);
    outcome.perf("values", values as f64, warn as f64, crit as f64, "");
    if let Some(key) = &args.key {
        let subject = format!("$JS.API.STREAM.MSG.GET.{stream}");
        let last = json!({ "last_by_subj": format!("$KV.{bucket}.{key}") });
        match request(&client, subject, last).await {
            Ok(found) => match operation(&found["message"]["hdrs"]).as_deref() {
                Some("DEL") => outcome.critical(format!("key {key} is deleted")),
                Some("PURGE") => outcome.critical(format!("key {key} is purged")),
                None | Some("PUT") => outcome.ok(format!("key {key} found")),
                Some(other) => {
                    outcome.critical(format!("unknown key operation for {key}: {other}"))
                }
            },
            Err(e) if e["err_code"] == 10037 => outcome.critical(format!("key {key} not found")),
            Err(e) => outcome.critical(format!("key {key} not loaded: {}", e["description"])),
        }
    }
    if warn > -1 || crit > -1 {
        let at_most = |limit: i64| limit > -1 && values <= limit as u64;
        let at_least = |limit: i64| limit > -1 && values >= limit as u64;
        // A critical threshold below the warning one is a floor, else a ceiling.
        let (critical, warned) = match crit < warn {
            true => (at_most(crit), at_most(warn)),
            false => (at_least(crit), at_least(warn)),
        };
        match (critical, warned) {
            (true, _) => outcome.critical(format!("{values} values")),
            (false, true) => outcome.warn(format!("{values} values")),
            _ => outcome.ok(format!("{values} values")),
        }
    }
    let bytes = info["state"]["bytes"].as_u64().unwrap_or(0);
    let replicas = info["config"]["num_replicas"].as_u64().unwrap_or(1);
    outcome.perf("bytes", bytes as f64, 0.0, 0.0, "B");
    outcome.perf("replicas", replicas as f64, 0.0, 0.0, "");
    outcome.finish(format)
}
