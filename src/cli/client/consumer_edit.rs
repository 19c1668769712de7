//! `consumer edit`: changes the settings given and keeps the rest exactly as the server
//! reports them, through `CONSUMER.CREATE` with the `update` action as natscli does. The
//! server decides what may change (a consumer's kind, ack policy and start cannot).

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use super::api;
use super::pubsub::check_filter_subject;
use super::units::nanos;
use crate::cli::parse_duration;

/// The consumer settings `consumer add` sets and `consumer edit` can change; in an edit,
/// those not given keep their value.
#[derive(Debug, Args)]
pub struct ConsumerSettings {
    /// Only messages on this subject (wildcards allowed).
    #[arg(long)]
    pub filter: Option<String>,
    /// How long the server waits for an ack before redelivering, e.g. 30s.
    #[arg(long, visible_alias = "wait", value_parser = parse_duration)]
    pub ack_wait: Option<Duration>,
    /// Most deliveries of one message (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_deliver: Option<i64>,
    /// Redelivery delays, comma separated (1s,5s,30s), or natscli's `linear` (from
    /// --backoff-steps, --backoff-min and --backoff-max) or `none`.
    #[arg(long, value_parser = parse_backoff, value_name = "DELAYS|linear|none")]
    pub backoff: Option<Backoff>,
    /// With `--backoff linear`: how many delays.
    #[arg(long, default_value_t = 10)]
    pub backoff_steps: u32,
    /// With `--backoff linear`: the first delay.
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    pub backoff_min: Duration,
    /// With `--backoff linear`: the last delay's bound.
    #[arg(long, value_parser = parse_duration, default_value = "20m")]
    pub backoff_max: Duration,
    /// Most messages delivered but not yet acknowledged.
    #[arg(long, visible_alias = "max-pending")]
    pub max_ack_pending: Option<i64>,
    /// A description.
    #[arg(long)]
    pub description: Option<String>,
}

/// `--backoff`: delays given, or a policy natscli names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    Delays(Vec<Duration>),
    Linear,
    None,
}

fn parse_backoff(text: &str) -> Result<Backoff, String> {
    match text {
        "linear" => Ok(Backoff::Linear),
        "none" => Ok(Backoff::None),
        _ => text
            .split(',')
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map(Backoff::Delays),
    }
}

/// natscli's linear backoff (jsm.go's `LinearBackoffPeriods`): `steps` delays from `min`,
/// evenly spaced below `max`.
pub fn linear_backoff(steps: u32, min: Duration, max: Duration) -> Result<Vec<Duration>> {
    if steps == 0 || min.is_zero() || max.is_zero() {
        bail!("--backoff linear needs --backoff-steps, --backoff-min and --backoff-max above 0");
    }
    let (min, max) = (min.min(max), min.max(max));
    let step = (max - min) / steps;
    if max != min && step.is_zero() {
        bail!("--backoff-min {min:?} to --backoff-max {max:?} is too small for {steps} steps");
    }
    Ok((0..steps).map(|i| min + step * i).collect())
}

impl ConsumerSettings {
    /// Writes the given settings into `config` under NATS' JSON names; whether any was given.
    pub(super) fn apply(&self, config: &mut Map<String, Value>) -> Result<bool> {
        let before = config.clone();
        if let Some(filter) = &self.filter {
            check_filter_subject(filter)?;
            config.insert("filter_subject".into(), json!(filter));
            config.remove("filter_subjects");
        }
        if let Some(description) = &self.description {
            config.insert("description".into(), json!(description));
        }
        if let Some(wait) = self.ack_wait {
            config.insert("ack_wait".into(), json!(nanos(wait)?));
        }
        if let Some(n) = self.max_deliver {
            config.insert("max_deliver".into(), json!(n));
        }
        let delays = match &self.backoff {
            Some(Backoff::Delays(delays)) => Some(delays.clone()),
            Some(Backoff::Linear) => Some(linear_backoff(
                self.backoff_steps,
                self.backoff_min,
                self.backoff_max,
            )?),
            Some(Backoff::None) => Some(Vec::new()),
            None => None,
        };
        match delays {
            Some(delays) if delays.is_empty() => {
                config.remove("backoff");
            }
            Some(delays) => {
                let backoff: Result<Vec<i64>> = delays.iter().map(|d| nanos(*d)).collect();
                config.insert("backoff".into(), json!(backoff?));
            }
            None => {}
        }
        if let Some(n) = self.max_ack_pending {
            config.insert("max_ack_pending".into(), json!(n));
        }
        Ok(*config != before)
    }
}

/// Updates consumer `name` of `stream`; the server's reply (its new info).
pub async fn edit(
    js: &Context,
    stream: &str,
    name: &str,
    args: &ConsumerSettings,
) -> Result<Value> {
    let info = api::request(js, &format!("CONSUMER.INFO.{stream}.{name}"), &json!({}))
        .await
        .with_context(|| format!("consumer {name} of stream {stream}"))?;
    let mut config = api::config_object(&info, "consumer")?;
    if !args.apply(&mut config)? {
        bail!("nothing to change: give at least one setting (see --help)");
    }
    let request = json!({"stream_name": stream, "config": config, "action": "update"});
    api::request(js, &format!("CONSUMER.CREATE.{stream}.{name}"), &request)
        .await
        .with_context(|| format!("cannot update consumer {name} of stream {stream}"))
}
