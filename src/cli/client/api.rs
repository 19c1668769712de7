//! JetStream API requests whose replies the CLI keeps as JSON.
//!
//! Management commands (`stream add/info/ls/…`, `consumer info/ls`) send async-nats' own
//! request types through `Context::request`, but keep the reply as `serde_json::Value`: with
//! `--json` it is printed as the server sent it, and only for human output is it decoded into
//! async-nats' typed `Info` structs. A reply carrying `error` becomes one line with the
//! server's description, status and `err_code`.

use anyhow::{anyhow, bail, Result};
use async_nats::jetstream::context::RequestErrorKind;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Pages a listing may take before the CLI stops asking: the server sends up to 256 items a
/// page, so this covers over a million streams while keeping the loop bounded.
const MAX_LIST_PAGES: usize = 4096;

/// The `config` object of a stream's or consumer's INFO reply (`what` names the reply).
pub fn config_object(info: &Value, what: &str) -> Result<serde_json::Map<String, Value>> {
    match info.get("config") {
        Some(Value::Object(map)) => Ok(map.clone()),
        _ => bail!("unexpected {what} info reply: no config object"),
    }
}

/// Sends `$JS.API.<subject>` with a JSON body and returns the reply, or the server's error.
pub async fn request(js: &Context, subject: &str, body: &impl Serialize) -> Result<Value> {
    let response: Response<Value> =
        js.request(subject.to_string(), body)
            .await
            .map_err(|err| match err.kind() {
                RequestErrorKind::NoResponders => anyhow!(
                    "JetStream is not enabled on this server (no responders on $JS.API.{subject})"
                ),
                RequestErrorKind::TimedOut => {
                    anyhow!("JetStream did not answer $JS.API.{subject} in time")
                }
                _ => anyhow!("JetStream request $JS.API.{subject} failed: {err}"),
            })?;
    match response {
        Response::Ok(value) => Ok(value),
        Response::Err { error } => Err(anyhow!("{}", describe(&error))),
    }
}

/// The server's error as one line: `stream not found (status 404, err_code 10059)`.
pub fn describe(error: &async_nats::jetstream::Error) -> String {
    // The typed error keeps its description private; its JSON form has it.
    let value = serde_json::to_value(error).unwrap_or(Value::Null);
    let description = value
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("unknown error");
    format!(
        "{description} (status {}, err_code {})",
        error.code(),
        error.error_code().0
    )
}

/// Decodes a reply into one of async-nats' typed structs for human output.
pub fn decode<T: DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|err| anyhow!("unexpected {what} reply: {err}"))
}

/// Collects every item of a paged listing (`STREAM.LIST`, `CONSUMER.LIST.<stream>`), whose
/// replies carry `total`, `offset` and the items under `key`.
pub async fn list_all(
    js: &Context,
    subject: &str,
    key: &str,
    mut body: serde_json::Map<String, Value>,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    for _ in 0..MAX_LIST_PAGES {
        body.insert("offset".into(), json!(items.len()));
        let page = request(js, subject, &body).await?;
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0);
        let batch = match page.get(key) {
            Some(Value::Array(batch)) => batch.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => bail!("unexpected {subject} reply: {key} is {other}"),
        };
        let empty = batch.is_empty();
        items.extend(batch);
        if empty || items.len() as u64 >= total {
            return Ok(items);
        }
    }
    bail!("{subject} did not finish within {MAX_LIST_PAGES} pages")
}
