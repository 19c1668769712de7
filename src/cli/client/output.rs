//! What client commands print: human tables, JSON for scripts, and messages in either form.
//!
//! Every write goes through `Result`, so a closed pipe (`jetlog stream ls | head -1`) ends the
//! command quietly instead of panicking inside `println!`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use async_nats::HeaderMap;
use base64::Engine as _;
use comfy_table::{presets, Table};
use serde::Serialize;

use crate::jetstream::time::format_rfc3339;

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.as_ref())?;
    Ok(())
}

/// Writes a value as indented JSON, for one-shot commands such as `stream info --json`.
pub fn json_pretty(value: &impl Serialize) -> Result<()> {
    line(serde_json::to_string_pretty(value)?)
}

/// Writes a value as one compact JSON line, for streams of records (`sub`, `replay`).
pub fn json_line(value: &impl Serialize) -> Result<()> {
    line(serde_json::to_string(value)?)
}

/// A table with the given column names, in the style all commands share.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(header.iter().copied());
    table
}

/// A two-column table of names and values, for `info` commands.
pub fn properties(rows: Vec<(&str, String)>) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    for (name, value) in rows {
        table.add_row(vec![format!("{name}:"), value]);
    }
    // Flush left under the section title, one space between name and value.
    for column in table.column_iter_mut() {
        column.set_padding((0, 1));
    }
    table
}

/// The JSON spelling of an enum value (`file`, `limits`, `explicit`), which is also what
/// users type on the command line.
pub fn wire_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

/// Prints a table (comfy-table does the padding).
pub fn print_table(table: &Table) -> Result<()> {
    line(table.trim_fmt())
}

/// One message as the CLI shows it, whichever command fetched it.
pub struct MessageView<'a> {
    /// Stream sequence, for messages read from a stream; a running count for core messages.
    pub seq: Option<u64>,
    /// When the server stored the message, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: Option<i64>,
    pub subject: &'a str,
    pub reply: Option<&'a str>,
    pub headers: Option<&'a HeaderMap>,
    pub payload: &'a [u8],
}

impl MessageView<'_> {
    /// The JSON form: `seq`, `time`, `subject`, `reply`, `headers` (name to list of values,
    /// as a header may repeat) and either `data` (the payload as text, when it is UTF-8) or
    /// `data_base64`, in that order. Absent parts are left out, so the same shape serves
    /// core messages.
    pub fn record(&self) -> MessageRecord<'_> {
        let headers: BTreeMap<String, Vec<String>> =
            sorted_headers(self.headers).into_iter().collect();
        let (data, data_base64) = match std::str::from_utf8(self.payload) {
            Ok(text) => (Some(text), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(self.payload)),
            ),
        };
        MessageRecord {
            seq: self.seq,
            time: self
                .time_unix_nanos
                .map(|nanos| format_rfc3339(Some(nanos))),
            subject: self.subject,
            reply: self.reply,
            headers,
            data,
            data_base64,
        }
    }

    /// The human form: a title line, the headers, the payload and a blank line.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        if let Some(seq) = self.seq {
            out.push_str(&format!("[#{seq}] "));
        }
        out.push_str(self.subject);
        if let Some(nanos) = self.time_unix_nanos {
            out.push_str(&format!("  {}", format_rfc3339(Some(nanos))));
        }
        if let Some(reply) = self.reply {
            out.push_str(&format!("  (reply to {reply})"));
        }
        out.push('\n');
        for (name, values) in sorted_headers(self.headers) {
            for value in values {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
        match std::str::from_utf8(self.payload) {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&format!(
                "<{} bytes of binary data, base64: {}>",
                self.payload.len(),
                base64::engine::general_purpose::STANDARD.encode(self.payload)
            )),
        }
        out.push('\n');
        out
    }

    /// Prints the message in the form `--json` asks for.
    pub fn print(&self, json: bool) -> Result<()> {
        if json {
            json_line(&self.record())
        } else {
            line(self.to_human())
        }
    }
}

/// The JSON shape of a message; a struct, so the fields keep this order on output.
#[derive(Serialize)]
pub struct MessageRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

/// Headers sorted by name, so output is stable (the map itself has no order).
fn sorted_headers(headers: Option<&HeaderMap>) -> Vec<(String, Vec<String>)> {
    let mut list: Vec<(String, Vec<String>)> = headers
        .map(|h| {
            h.iter()
                .map(|(name, values)| {
                    let values = values.iter().map(|v| v.as_str().to_string()).collect();
                    (name.to_string(), values)
                })
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view<'a>(payload: &'a [u8], headers: Option<&'a HeaderMap>) -> MessageView<'a> {
        MessageView {
            seq: Some(7),
            time_unix_nanos: Some(1_700_000_000_500_000_000),
            subject: "orders.eu",
            reply: None,
            headers,
            payload,
        }
    }

    #[test]
    fn text_payloads_stay_text_and_binary_becomes_base64() {
        let mut headers = HeaderMap::new();
        headers.append("B", "2");
        headers.append("A", "1");
        headers.append("A", "3");
        let text = serde_json::to_string(&view(b"hello", Some(&headers)).record()).unwrap();
        assert!(text.starts_with(r#"{"seq":7,"time":"#), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            json!({
                "seq": 7,
                "time": "2023-11-14T22:13:20.5Z",
                "subject": "orders.eu",
                "headers": {"A": ["1", "3"], "B": ["2"]},
                "data": "hello"
            })
        );
        let json = serde_json::to_value(view(&[0xff, 0x00], None).record()).unwrap();
        assert_eq!(json["data_base64"], "/wA=");
        assert!(json.get("data").is_none());
    }

    #[test]
    fn human_form_lists_headers_in_name_order() {
        let mut headers = HeaderMap::new();
        headers.append("Zed", "z");
        headers.append("Alpha", "a");
        let text = view(b"body", Some(&headers)).to_human();
        assert_eq!(
            text,
            "[#7] orders.eu  2023-11-14T22:13:20.5Z\nAlpha: a\nZed: z\nbody\n"
        );
    }
}
