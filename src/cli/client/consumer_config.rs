//! The flags `consumer add` makes a consumer from, under natscli's names (`--target`,
//! `--deliver 1h`, `--wait`, `--max-pending`, …) with jetlog's own kept as aliases, and
//! `--config FILE` for a configuration written as JSON, as natscli reads one.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};

use super::consumer::start_time;
use super::consumer_edit::ConsumerSettings;
use super::pubsub::check_publish_subject;
use super::stream_config::read_config_file;
use super::stream_features::parse_pair;
use super::units::nanos;
use crate::cli::parse_duration;
use crate::jetstream::time::format_rfc3339;

/// The `--ack` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AckArg {
    Explicit,
    All,
    None,
}

/// The `--replay` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReplayArg {
    Instant,
    Original,
}

/// Where a consumer starts, as `--deliver` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPolicy(Map<String, Value>);

#[derive(Debug, Args)]
pub struct ConsumerConfigArgs {
    /// A JSON file holding the consumer's configuration (as natscli's `--config`); the
    /// other flags given change it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A pull consumer (the default).
    #[arg(long, conflicts_with = "push")]
    pull: bool,
    /// A push consumer delivering to this subject.
    #[arg(long, visible_alias = "target", value_name = "SUBJECT")]
    push: Option<String>,
    /// For push consumers: deliver to one member of this queue group.
    #[arg(long, requires = "push")]
    deliver_group: Option<String>,
    /// How messages are acknowledged (default explicit).
    #[arg(long, value_enum)]
    ack: Option<AckArg>,
    /// Where delivery starts: all (the default), new, last, subject (the last of each
    /// subject), a stream sequence (100), or a duration back (1h); also seq:N and time:T (an
    /// RFC 3339 time).
    #[arg(long, value_parser = parse_deliver_policy, value_name = "POLICY")]
    deliver: Option<StartPolicy>,
    /// Deliver at the speed the messages were stored at, or at once.
    #[arg(long, value_enum)]
    replay: Option<ReplayArg>,
    /// Copies of the consumer's state in a cluster (default: the stream's).
    #[arg(long)]
    replicas: Option<i64>,
    /// Keep the consumer's state in memory rather than as its stream does.
    #[arg(long)]
    memory: bool,
    /// For push consumers: an idle heartbeat at this interval.
    #[arg(long, value_parser = parse_duration, requires = "push", value_name = "DURATION")]
    heartbeat: Option<Duration>,
    /// For push consumers: flow control (needs --heartbeat).
    #[arg(long, requires = "heartbeat")]
    flow_control: bool,
    /// Deliver the headers only, with the body's size in `Nats-Msg-Size`.
    #[arg(long)]
    headers_only: bool,
    /// For pull consumers: most pull requests waiting at once.
    #[arg(long, value_name = "PULLS")]
    max_waiting: Option<i64>,
    /// For pull consumers: the largest batch a pull request may ask for.
    #[arg(long, value_name = "BATCH_SIZE")]
    max_pull_batch: Option<i64>,
    /// For pull consumers: the longest expiry a pull request may ask for.
    #[arg(long, value_parser = parse_duration, value_name = "EXPIRES")]
    max_pull_expire: Option<Duration>,
    /// For pull consumers: the most bytes a pull request may ask for.
    #[arg(long, value_name = "BYTES")]
    max_pull_bytes: Option<i64>,
    /// Remove the consumer once it has been unused for this long.
    #[arg(long, value_parser = parse_duration, value_name = "THRESHOLD")]
    inactive_threshold: Option<Duration>,
    /// Metadata as KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_pair, value_name = "KEY=VALUE")]
    metadata: Vec<(String, String)>,
    /// Start paused: until a time (`2030-01-01 00:00:00`, UTC, or RFC 3339) or for a duration.
    #[arg(long, value_parser = parse_pause, value_name = "TIME|DURATION")]
    pause: Option<String>,
    /// Pinned-client priority groups (comma separated or repeated).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["overflow_groups", "prioritized_groups"])]
    pinned_groups: Vec<String>,
    /// How long a pinned client may go without pulling before another is pinned.
    #[arg(long, value_parser = parse_duration, requires = "pinned_groups", value_name = "TTL")]
    pinned_ttl: Option<Duration>,
    /// Overflow priority groups (comma separated or repeated).
    #[arg(long, value_delimiter = ',', conflicts_with = "prioritized_groups")]
    overflow_groups: Vec<String>,
    /// Prioritized priority groups (comma separated or repeated).
    #[arg(long, value_delimiter = ',')]
    prioritized_groups: Vec<String>,
    /// Percentage of acks sampled for the ack advisories.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    sample: Option<u8>,
    /// An ephemeral consumer (named NAME): removed by the server once unused for its
    /// inactive threshold.
    #[arg(long)]
    ephemeral: bool,
    /// The settings `consumer edit` can change too.
    #[command(flatten)]
    pub settings: ConsumerSettings,
}

/// `--pause`: natscli's `YYYY-MM-DD HH:MM:SS` (UTC), an RFC 3339 time, or a duration from now;
/// the RFC 3339 time the server is sent.
fn parse_pause(text: &str) -> Result<String, String> {
    let rfc3339 = text.replacen(' ', "T", 1) + if text.contains(' ') { "Z" } else { "" };
    if let Ok(Some(at)) = crate::jetstream::time::parse_rfc3339(&rfc3339) {
        return Ok(format_rfc3339(Some(at)));
    }
    let span = parse_duration(text).map_err(|_| {
        format!("invalid --pause {text:?}: a time (2030-01-01 00:00:00) or a duration")
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?;
    let at = i64::try_from((now + span).as_nanos()).map_err(|_| "the pause is too long")?;
    Ok(format_rfc3339(Some(at)))
}

/// Parses `--deliver` in natscli's spellings and jetlog's.
pub fn parse_deliver_policy(text: &str) -> Result<StartPolicy, String> {
    let policy = |name: &str| Map::from_iter([("deliver_policy".to_string(), json!(name))]);
    let by_seq = |seq: u64| {
        let mut map = policy("by_start_sequence");
        map.insert("opt_start_seq".into(), json!(seq));
        StartPolicy(map)
    };
    match text {
        "all" => return Ok(StartPolicy(policy("all"))),
        "last" => return Ok(StartPolicy(policy("last"))),
        "new" | "next" => return Ok(StartPolicy(policy("new"))),
        "subject" | "last-per-subject" | "last_per_subject" => {
            return Ok(StartPolicy(policy("last_per_subject")))
        }
        _ => {}
    }
    if let Some(seq) = text.strip_prefix("seq:") {
        return seq
            .parse::<u64>()
            .map(by_seq)
            .map_err(|_| format!("invalid --deliver {text:?}: seq:N needs a number"));
    }
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(by_seq(seq));
    }
    let since = text.strip_prefix("time:").unwrap_or(text);
    let at = start_time(since).map_err(|_| {
        format!(
            "invalid --deliver {text:?}: use all, new, last, subject, a sequence, a duration \
             back such as 1h, or time:T"
        )
    })?;
    let at = i64::try_from(at.unix_timestamp_nanos()).map_err(|_| "the time is out of range")?;
    let mut map = policy("by_start_time");
    map.insert("opt_start_time".into(), json!(format_rfc3339(Some(at))));
    Ok(StartPolicy(map))
}

impl ConsumerConfigArgs {
    /// The consumer's configuration under NATS' JSON names: the `--config` file's, or
    /// natscli's defaults (explicit acks, from the start), with the flags given written over.
    pub fn to_config(&self, name: &str) -> Result<Map<String, Value>> {
        let mut config = match &self.config {
            Some(path) => read_config_file(path)?,
            None => Map::from_iter([
                ("ack_policy".to_string(), json!("explicit")),
                ("deliver_policy".to_string(), json!("all")),
            ]),
        };
        if !name.is_empty() {
            config.insert("durable_name".into(), json!(name));
            config.insert("name".into(), json!(name));
        } else if let Some(durable) = config.get("durable_name").cloned() {
            config.entry("name").or_insert(durable);
        }
        let mut set = |key: &str, value: Value| {
            config.insert(key.to_string(), value);
        };
        if let Some(subject) = &self.push {
            check_publish_subject(subject)?;
            set("deliver_subject", json!(subject));
        }
        if let Some(group) = &self.deliver_group {
            set("deliver_group", json!(group));
        }
        if let Some(ack) = self.ack {
            let ack = match ack {
                AckArg::Explicit => "explicit",
                AckArg::All => "all",
                AckArg::None => "none",
            };
            set("ack_policy", json!(ack));
        }
        if let Some(replay) = self.replay {
            let replay = match replay {
                ReplayArg::Instant => "instant",
                ReplayArg::Original => "original",
            };
            set("replay_policy", json!(replay));
        }
        let counts = [
            ("num_replicas", self.replicas),
            ("max_waiting", self.max_waiting),
            ("max_batch", self.max_pull_batch),
            ("max_bytes", self.max_pull_bytes),
        ];
        for (key, value) in counts {
            if let Some(n) = value {
                set(key, json!(n));
            }
        }
        let durations = [
            ("idle_heartbeat", self.heartbeat),
            ("max_expires", self.max_pull_expire),
            ("inactive_threshold", self.inactive_threshold),
        ];
        for (key, value) in durations {
            if let Some(d) = value {
                set(key, json!(nanos(d)?));
            }
        }
        for (key, on) in [
            ("mem_storage", self.memory),
            ("flow_control", self.flow_control),
            ("headers_only", self.headers_only),
        ] {
            if on {
                set(key, json!(true));
            }
        }
        if !self.metadata.is_empty() {
            let metadata: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            config.insert("metadata".into(), Value::Object(metadata));
        }
        if let Some(until) = &self.pause {
            config.insert("pause_until".into(), json!(until));
        }
        let priority = [
            ("pinned_client", &self.pinned_groups),
            ("overflow", &self.overflow_groups),
            ("prioritized", &self.prioritized_groups),
        ];
        if let Some((policy, groups)) = priority.iter().find(|(_, g)| !g.is_empty()) {
            config.insert("priority_policy".into(), json!(policy));
            config.insert("priority_groups".into(), json!(groups));
        }
        if let Some(ttl) = self.pinned_ttl {
            config.insert("priority_timeout".into(), json!(nanos(ttl)?));
        }
        if let Some(percent) = self.sample {
            config.insert("sample_freq".into(), json!(format!("{percent}%")));
        }
        if self.ephemeral {
            config.remove("durable_name");
        }
        if let Some(StartPolicy(start)) = &self.deliver {
            for key in ["deliver_policy", "opt_start_seq", "opt_start_time"] {
                config.remove(key);
            }
            config.extend(start.clone());
        }
        self.settings.apply(&mut config)?;
        if config.get("name").is_none_or(Value::is_null) {
            return Err(anyhow!(
                "the consumer needs a name: give NAME, or durable_name in the --config file"
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Value {
        Value::Object(parse_deliver_policy(text).expect("parses").0)
    }

    #[test]
    fn deliver_policies_parse_from_natscli_and_jetlog_spellings() {
        assert_eq!(policy("all"), json!({"deliver_policy": "all"}));
        assert_eq!(policy("next"), json!({"deliver_policy": "new"}));
        for spelling in ["subject", "last-per-subject"] {
            assert_eq!(
                policy(spelling),
                json!({"deliver_policy": "last_per_subject"})
            );
        }
        let by_seq = json!({"deliver_policy": "by_start_sequence", "opt_start_seq": 42});
        assert_eq!(policy("42"), by_seq);
        assert_eq!(policy("seq:42"), by_seq);
        assert_eq!(
            policy("time:1970-01-01T00:00:01Z"),
            json!({"deliver_policy": "by_start_time", "opt_start_time": "1970-01-01T00:00:01Z"})
        );
        let back = policy("1h");
        assert_eq!(back["deliver_policy"], "by_start_time");
        let at = crate::jetstream::time::parse_rfc3339(back["opt_start_time"].as_str().unwrap());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let hour_back = now - at.unwrap().unwrap();
        assert!((3_599_000_000_000..3_601_000_000_000).contains(&hour_back));
        assert!(parse_deliver_policy("seq:x").is_err());
        assert!(parse_deliver_policy("sometime").is_err());
    }
}
