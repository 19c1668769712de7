//! The stream configuration flags shared by `stream add` and `stream edit`, and how they are
//! written into a configuration object under NATS' JSON field names.

use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};

use super::pubsub::check_filter_subject;
use super::units::{nanos, parse_limit_duration, parse_size, parse_size_i32};
use crate::cli::parse_duration;

/// The `--storage` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StorageArg {
    File,
    Memory,
}

/// The `--retention` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RetentionArg {
    Limits,
    Interest,
    #[value(alias = "work", alias = "workq")]
    Workqueue,
}

/// The `--discard` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiscardArg {
    Old,
    New,
}

/// The JSON object in a `--config` file (a stream's or a consumer's configuration, as
/// natscli writes and reads them).
pub fn read_config_file(path: &std::path::Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(anyhow!(
            "{}: a configuration must be a JSON object",
            path.display()
        )),
        Err(e) => Err(anyhow!("{}: invalid JSON: {e}", path.display())),
    }
}

/// Configuration flags shared by `add` and `edit`. Every field is optional so `edit` can tell
/// "not given" from a value; `add` starts from defaults.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A JSON file holding the stream's configuration (as natscli's `--config`); the other
    /// flags given change it.
    #[arg(long = "config", id = "config_file", value_name = "FILE")]
    config_file: Option<std::path::PathBuf>,
    /// Subjects the stream stores, comma separated or repeated (default: the stream's name).
    #[arg(long, value_delimiter = ',')]
    subjects: Vec<String>,
    /// A description.
    #[arg(long)]
    description: Option<String>,
    /// Where messages are kept.
    #[arg(long, value_enum)]
    storage: Option<StorageArg>,
    /// When messages are removed: by limits, once all interested consumers acked, or once
    /// any consumer acked (workqueue).
    #[arg(long, value_enum)]
    retention: Option<RetentionArg>,
    /// Most messages kept (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_msgs: Option<i64>,
    /// Most bytes kept, e.g. 1GB (-1: unlimited).
    #[arg(long, value_parser = parse_size, allow_negative_numbers = true)]
    max_bytes: Option<i64>,
    /// Oldest message kept, e.g. 24h (0: unlimited).
    #[arg(long, value_parser = parse_limit_duration, allow_negative_numbers = true)]
    max_age: Option<Duration>,
    /// Most messages kept per subject (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_msgs_per_subject: Option<i64>,
    /// Largest message accepted, e.g. 1MB (-1: unlimited).
    #[arg(long, value_parser = parse_size_i32, allow_negative_numbers = true)]
    max_msg_size: Option<i32>,
    /// At a limit, drop old messages or refuse new ones.
    #[arg(long, value_enum)]
    discard: Option<DiscardArg>,
    /// How long message ids are remembered for deduplication, e.g. 2m.
    #[arg(long, value_parser = parse_duration)]
    dupe_window: Option<Duration>,
    /// Serve direct gets ($JS.API.DIRECT.GET); `--allow-direct=false` turns it off.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_direct: Option<bool>,
    /// Refuse message deletes.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    deny_delete: Option<bool>,
    /// Refuse purges.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    deny_purge: Option<bool>,
    /// Allow Nats-Rollup headers.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_rollup: Option<bool>,
    /// Copies of the data on different servers of a cluster (`num_replicas`); the server
    /// refuses what it cannot give.
    #[arg(long)]
    replicas: Option<i64>,
    /// Mirror this stream: its messages at their own sequences (no subjects of its own).
    #[arg(long, conflicts_with_all = ["subjects", "source"])]
    mirror: Option<String>,
    /// Take in the messages of these streams, comma separated or repeated (replaces the
    /// sources an `edit` had).
    #[arg(long, value_delimiter = ',')]
    source: Vec<String>,
    #[command(flatten)]
    features: Box<super::stream_features::FeatureArgs>,
}

impl ConfigArgs {
    /// The configuration in the `--config` file, when one was given.
    pub fn file_config(&self) -> Result<Option<Map<String, Value>>> {
        self.config_file
            .as_deref()
            .map(read_config_file)
            .transpose()
    }

    /// Whether the stream copies other streams and was given no subjects: it then has none
    /// of its own (not even its name), as nats-server makes it.
    pub fn copies_without_subjects(&self) -> bool {
        self.subjects.is_empty() && (self.mirror.is_some() || !self.source.is_empty())
    }

    /// Writes the given flags into a configuration object, under NATS' JSON field names.
    pub fn apply(&self, config: &mut Map<String, Value>) -> Result<()> {
        if !self.subjects.is_empty() {
            for subject in &self.subjects {
                check_filter_subject(subject)?;
            }
            config.insert("subjects".into(), json!(self.subjects));
        }
        let mut set = |key: &str, value: Value| {
            config.insert(key.to_string(), value);
        };
        if let Some(description) = &self.description {
            set("description", json!(description));
        }
        if let Some(storage) = self.storage {
            set("storage", json!(value_name(storage)));
        }
        if let Some(retention) = self.retention {
            set("retention", json!(value_name(retention)));
        }
        if let Some(discard) = self.discard {
            set("discard", json!(value_name(discard)));
        }
        if let Some(n) = self.max_msgs {
            set("max_msgs", json!(n));
        }
        if let Some(n) = self.replicas {
            set("num_replicas", json!(n));
        }
        if let Some(n) = self.max_bytes {
            set("max_bytes", json!(n));
        }
        if let Some(age) = self.max_age {
            set("max_age", json!(nanos(age)?));
        }
        if let Some(n) = self.max_msgs_per_subject {
            set("max_msgs_per_subject", json!(n));
        }
        if let Some(n) = self.max_msg_size {
            set("max_msg_size", json!(n));
        }
        if let Some(window) = self.dupe_window {
            set("duplicate_window", json!(nanos(window)?));
        }
        if let Some(origin) = &self.mirror {
            set("mirror", json!({ "name": origin }));
        }
        if !self.source.is_empty() {
            let sources: Vec<Value> = self.source.iter().map(|n| json!({ "name": n })).collect();
            set("sources", json!(sources));
        }
        for (key, flag) in [
            ("allow_direct", self.allow_direct),
            ("deny_delete", self.deny_delete),
            ("deny_purge", self.deny_purge),
            ("allow_rollup_hdrs", self.allow_rollup),
        ] {
            if let Some(on) = flag {
                set(key, json!(on));
            }
        }
        self.features.apply(config)
    }
}

/// The name clap shows for a value, which is also its NATS JSON spelling.
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
