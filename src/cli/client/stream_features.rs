//! The stream flags of natscli beyond limits and storage: placement, compression, batches,
//! counters, TTLs, schedules, transforms, republish, metadata and consumer limits, written
//! under NATS' JSON names. The server decides what it accepts; a flag is never dropped here.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};

use super::units::nanos;
use crate::cli::parse_duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    S2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PersistModeArg {
    Default,
    Async,
}

/// A `KEY=VALUE` flag, as natscli's string maps take them.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE got '{text}'")),
    }
}

/// The allow-flags are given bare (`--allow-msg-ttl`) or with a value (`--allow-msg-ttl=false`).
#[derive(Debug, Args)]
pub struct FeatureArgs {
    /// Compress stored messages (file storage).
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
    /// Place the stream on servers with this tag (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Place the stream in this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Do not answer publishes with a PubAck (`--ack` to answer again).
    #[arg(long, conflicts_with = "ack")]
    no_ack: bool,
    /// Answer publishes with a PubAck (the default).
    #[arg(long)]
    ack: bool,
    /// Discard new messages per subject at --max-msgs-per-subject (sets discard new).
    #[arg(long)]
    discard_per_subject: bool,
    /// The stream's first sequence.
    #[arg(long, value_name = "SEQ")]
    first_sequence: Option<u64>,
    /// Most consumers the stream allows (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_consumers: Option<i64>,
    /// Remove the stream's mirror (`stream edit`), making it a stream of its own.
    #[arg(long)]
    no_mirror: bool,
    /// Allow atomic batch publishes (`allow_atomic`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_batch: Option<bool>,
    /// Allow fast-ingest batch publishes (`allow_batched`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_fast: Option<bool>,
    /// Make the stream a distributed counter (`allow_msg_counter`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_counter: Option<bool>,
    /// Serve direct gets on a mirror (`mirror_direct`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_mirror_direct: Option<bool>,
    /// Allow per-message TTLs (`Nats-TTL`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_msg_ttl: Option<bool>,
    /// Allow message schedules (`allow_msg_schedules`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_schedules: Option<bool>,
    /// How long the markers of messages removed by limits stay (needs --allow-msg-ttl).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    subject_del_markers_ttl: Option<Duration>,
    /// Transform stored subjects from this pattern (with --transform-destination).
    #[arg(long, requires = "transform_destination")]
    transform_source: Option<String>,
    /// The pattern stored subjects are transformed into.
    #[arg(long, requires = "transform_source")]
    transform_destination: Option<String>,
    /// Remove the stream's subject transform.
    #[arg(long, conflicts_with = "transform_source")]
    no_transform: bool,
    /// Metadata as KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_pair, value_name = "KEY=VALUE")]
    metadata: Vec<(String, String)>,
    /// Republish stored messages on this subject pattern (with --republish-destination).
    #[arg(long, requires = "republish_destination")]
    republish_source: Option<String>,
    /// Where stored messages are republished.
    #[arg(long, requires = "republish_source")]
    republish_destination: Option<String>,
    /// Republish the headers only.
    #[arg(long, requires = "republish_source")]
    republish_headers: bool,
    /// Remove the stream's republish.
    #[arg(long, conflicts_with = "republish_source")]
    no_republish: bool,
    /// The longest inactive threshold a consumer of the stream may have.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    limit_consumer_inactive: Option<Duration>,
    /// The most ack pending a consumer of the stream may have.
    #[arg(long, value_name = "PENDING")]
    limit_consumer_max_pending: Option<i64>,
    /// How publishes are made durable: `default` (synced before the PubAck) or `async`.
    #[arg(long, value_enum)]
    persist_mode: Option<PersistModeArg>,
}

impl FeatureArgs {
    /// Writes the given flags into `config`, under NATS' JSON names.
    pub fn apply(&self, config: &mut Map<String, Value>) -> Result<()> {
        if let Some(compression) = self.compression {
            let name = match compression {
                CompressionArg::None => "none",
                CompressionArg::S2 => "s2",
            };
            config.insert("compression".into(), json!(name));
        }
        if !self.tag.is_empty() || self.cluster.is_some() {
            let placement = object(config, "placement");
            if !self.tag.is_empty() {
                placement.insert("tags".into(), json!(self.tag));
            }
            if let Some(cluster) = &self.cluster {
                placement.insert("cluster".into(), json!(cluster));
            }
        }
        if self.no_ack || self.ack {
            config.insert("no_ack".into(), json!(self.no_ack));
        }
        if self.discard_per_subject {
            config.insert("discard".into(), json!("new"));
            config.insert("discard_new_per_subject".into(), json!(true));
        }
        if let Some(seq) = self.first_sequence {
            config.insert("first_seq".into(), json!(seq));
        }
        if let Some(n) = self.max_consumers {
            config.insert("max_consumers".into(), json!(n));
        }
        for (key, flag) in [
            ("allow_atomic", self.allow_batch),
            ("allow_batched", self.allow_fast),
            ("allow_msg_counter", self.allow_counter),
            ("mirror_direct", self.allow_mirror_direct),
            ("allow_msg_ttl", self.allow_msg_ttl),
            ("allow_msg_schedules", self.allow_schedules),
        ] {
            if let Some(on) = flag {
                config.insert(key.into(), json!(on));
            }
        }
        if let Some(ttl) = self.subject_del_markers_ttl {
            config.insert("subject_delete_marker_ttl".into(), json!(nanos(ttl)?));
        }
        self.apply_removals(config);
        if let (Some(src), Some(dest)) = (&self.transform_source, &self.transform_destination) {
            config.insert(
                "subject_transform".into(),
                json!({"src": src, "dest": dest}),
            );
        }
        if !self.metadata.is_empty() {
            let metadata = object(config, "metadata");
            for (key, value) in &self.metadata {
                metadata.insert(key.clone(), json!(value));
            }
        }
        if let (Some(src), Some(dest)) = (&self.republish_source, &self.republish_destination) {
            let republish =
                json!({"src": src, "dest": dest, "headers_only": self.republish_headers});
            config.insert("republish".into(), republish);
        }
        if self.limit_consumer_inactive.is_some() || self.limit_consumer_max_pending.is_some() {
            let inactive = self.limit_consumer_inactive.map(nanos).transpose()?;
            let limits = object(config, "consumer_limits");
            if let Some(ns) = inactive {
                limits.insert("inactive_threshold".into(), json!(ns));
            }
            if let Some(n) = self.limit_consumer_max_pending {
                limits.insert("max_ack_pending".into(), json!(n));
            }
        }
        if let Some(mode) = self.persist_mode {
            let name = match mode {
                PersistModeArg::Default => "default",
                PersistModeArg::Async => "async",
            };
            config.insert("persist_mode".into(), json!(name));
        }
        Ok(())
    }

    fn apply_removals(&self, config: &mut Map<String, Value>) {
        for (key, remove) in [
            ("mirror", self.no_mirror),
            ("subject_transform", self.no_transform),
            ("republish", self.no_republish),
        ] {
            if remove {
                config.remove(key);
            }
        }
    }
}

/// The object at `key` in `config`, made when missing or not an object.
fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("made an object just above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        features: FeatureArgs,
    }

    fn config_of(args: &[&str]) -> Value {
        let flags = Flags::try_parse_from([&["t"][..], args].concat()).expect("parses");
        let mut config = Map::new();
        flags.features.apply(&mut config).expect("applies");
        Value::Object(config)
    }

    #[test]
    fn natscli_flags_write_the_json_fields() {
        let config = config_of(&[
            "--compression",
            "s2",
            "--tag",
            "ssd",
            "--no-ack",
            "--allow-msg-ttl",
            "--allow-batch=false",
            "--subject-del-markers-ttl",
            "1m",
            "--metadata",
            "team=ops",
            "--limit-consumer-max-pending",
            "100",
            "--transform-source",
            "a.>",
            "--transform-destination",
            "b.>",
        ]);
        assert_eq!(config["compression"], "s2");
        assert_eq!(config["placement"], json!({"tags": ["ssd"]}));
        assert_eq!(config["no_ack"], true);
        assert_eq!(config["allow_msg_ttl"], true);
        assert_eq!(config["allow_atomic"], false);
        assert_eq!(config["subject_delete_marker_ttl"], 60_000_000_000i64);
        assert_eq!(config["metadata"], json!({"team": "ops"}));
        assert_eq!(config["consumer_limits"], json!({"max_ack_pending": 100}));
        assert_eq!(
            config["subject_transform"],
            json!({"src": "a.>", "dest": "b.>"})
        );
        assert!(Flags::try_parse_from(["t", "--metadata", "novalue"]).is_err());
    }
}
