//! `jetlog consumer …`: durable consumers on a stream, and pulling messages through them.
//!
//! Creation, deletion and pulling go through async-nats' typed consumer API; `info` and `ls`
//! read the server's JSON (`consumer_view`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::consumer::{self, pull, AckPolicy};
use async_nats::jetstream::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

use super::api::{self, describe};
use super::connect::{self, CommonArgs};
use super::consumer_config::ConsumerConfigArgs;
use super::consumer_edit::ConsumerSettings;
use super::consumer_view;
use super::output::{self, MessageView};
use super::stream::{check_stream_name, confirm};
use super::units::{format_duration, parse_since};
use crate::cli::parse_duration;
use crate::jetstream::stream_config::is_valid_name;

/// Most messages one `consumer next` asks for: a pull request is held by the server until it
/// is filled or expires, so a huge batch would only make the command wait longer.
const MAX_NEXT_COUNT: usize = 10_000;

#[derive(Debug, Args)]
pub struct ConsumerArgs {
    #[command(subcommand)]
    action: ConsumerAction,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum ConsumerAction {
    /// Create a durable consumer (pull unless --push is given).
    #[command(visible_alias = "create", aliases = ["new"])]
    Add {
        /// Stream name.
        stream: String,
        /// Consumer (durable) name (with --config, the file's when not given).
        #[arg(required_unless_present = "config")]
        name: Option<String>,
        #[command(flatten)]
        config: Box<ConsumerConfigArgs>,
    },
    /// List a stream's consumers.
    #[command(visible_alias = "list")]
    Ls {
        /// Stream name.
        stream: String,
        /// Only the names, one per line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Change a consumer's settings; those not given keep their value.
    #[command(visible_alias = "update")]
    Edit {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        #[command(flatten)]
        settings: ConsumerSettings,
    },
    /// A table of a stream's consumers and how far each has got (natscli's `consumer report`).
    Report {
        /// Stream name.
        stream: String,
    },
    /// Show a consumer's state only.
    State {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// Create a durable with another's configuration (and the settings given).
    #[command(visible_alias = "cp")]
    Copy {
        /// Stream name.
        stream: String,
        /// The consumer whose configuration is copied.
        source: String,
        /// The new consumer's name.
        destination: String,
        #[command(flatten)]
        settings: ConsumerSettings,
    },
    /// Start delivery again from a stream sequence (or where the deliver policy starts).
    Reset {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// The stream sequence to deliver from next.
        #[arg(long)]
        sequence: Option<u64>,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Take the pin from a priority group's pinned client.
    Unpin {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// The priority group.
        group: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// A replicated consumer's group: hand its leadership to another server.
    #[command(subcommand)]
    Cluster(super::consumer_ops::ConsumerCluster),
    /// Show a consumer's configuration and state.
    #[command(aliases = ["nfo"])]
    Info {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// Delete a consumer.
    #[command(visible_alias = "delete", aliases = ["del"])]
    Rm {
        /// Stream name.
        stream: String,
        /// Consumer (durable) name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Pull messages from a pull consumer and acknowledge them.
    Next {
        /// Stream name.
        stream: String,
        /// Consumer (durable) name.
        name: String,
        /// How many messages to pull.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Do not acknowledge the messages (they are redelivered after ack-wait).
        #[arg(long)]
        no_ack: bool,
        /// Wait a random part of this long before acknowledging each message, as natscli's
        /// `--wait` does to stand in for work.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        wait: Option<Duration>,
    },
    /// Pause a consumer: nothing is delivered until the time given (nats-server 2.11+).
    Pause {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// For how long, e.g. 1h or 2d.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration,
              conflicts_with = "until", required_unless_present = "until")]
        for_: Option<Duration>,
        /// Until this time (RFC 3339, e.g. 2030-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Resume a paused consumer.
    Resume {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
}

/// A start time from `--since` or `--deliver time:`: a duration back from now, or RFC 3339.
pub fn start_time(text: &str) -> Result<async_nats::datetime::DateTime, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?;
    let now_nanos = i64::try_from(now.as_nanos()).map_err(|_| "the clock is too far ahead")?;
    let nanos = parse_since(text, now_nanos)?;
    async_nats::datetime::from_nanos(i128::from(nanos)).map_err(|err| format!("{text:?}: {err}"))
}

/// One line for a failed consumer call, with the server's description when there is one.
fn consumer_error(err: async_nats::jetstream::stream::ConsumerError) -> anyhow::Error {
    match err.kind() {
        async_nats::jetstream::stream::ConsumerErrorKind::JetStream(api) => {
            anyhow!("{}", describe(&api))
        }
        _ => anyhow!("{err}"),
    }
}

fn check_consumer_name(name: &str) -> Result<()> {
    if !is_valid_name(name) {
        bail!("invalid consumer name {name:?}: it must be non-empty, without '.', '*', '>', '/', '\\' or whitespace");
    }
    Ok(())
}

/// `jetlog consumer …`.
pub async fn run(args: ConsumerArgs) -> Result<()> {
    let common = &args.common;
    let (stream, name) = match &args.action {
        ConsumerAction::Add {
            stream,
            name: Some(name),
            ..
        }
        | ConsumerAction::Info { stream, name }
        | ConsumerAction::State { stream, name }
        | ConsumerAction::Copy {
            stream,
            source: name,
            ..
        }
        | ConsumerAction::Reset { stream, name, .. }
        | ConsumerAction::Unpin { stream, name, .. }
        | ConsumerAction::Cluster(super::consumer_ops::ConsumerCluster::StepDown {
            stream,
            name,
        })
        | ConsumerAction::Edit { stream, name, .. }
        | ConsumerAction::Rm { stream, name, .. }
        | ConsumerAction::Next { stream, name, .. }
        | ConsumerAction::Pause { stream, name, .. }
        | ConsumerAction::Resume { stream, name } => (stream, Some(name)),
        ConsumerAction::Ls { stream, .. }
        | ConsumerAction::Report { stream }
        | ConsumerAction::Add { stream, .. } => (stream, None),
    };
    check_stream_name(stream)?;
    if let Some(name) = name {
        check_consumer_name(name)?;
    }
    let js = connect::connect_jetstream(common).await?;
    match args.action {
        ConsumerAction::Add {
            stream,
            name,
            config,
        } => {
            let config = config.to_config(name.as_deref().unwrap_or_default())?;
            let name = config["name"].as_str().unwrap_or_default().to_string();
            check_consumer_name(&name)?;
            let request = json!({ "stream_name": stream, "config": config });
            api::request(&js, &format!("CONSUMER.CREATE.{stream}.{name}"), &request)
                .await
                .with_context(|| format!("cannot create consumer {name} on stream {stream}"))?;
            if !common.json {
                output::line(format!("consumer {name} created on stream {stream}"))?;
            }
            consumer_view::show_info(info_json(&js, &stream, &name).await?, common.json)
        }
        ConsumerAction::Ls { stream, names } => {
            consumer_view::list(&js, common, &stream, names).await
        }
        ConsumerAction::Report { stream } => consumer_view::report(&js, common, &stream).await,
        ConsumerAction::Edit {
            stream,
            name,
            settings,
        } => {
            let info = super::consumer_edit::edit(&js, &stream, &name, &settings).await?;
            if !common.json {
                output::line(format!("consumer {name} of stream {stream} updated"))?;
            }
            consumer_view::show_info(info, common.json)
        }
        ConsumerAction::State { stream, name } => {
            super::consumer_ops::state(&js, common, &stream, &name).await
        }
        ConsumerAction::Copy {
            stream,
            source,
            destination,
            settings,
        } => {
            check_consumer_name(&destination)?;
            let names = (stream.as_str(), source.as_str(), destination.as_str());
            super::consumer_ops::copy(&js, common, names, &settings).await
        }
        ConsumerAction::Reset {
            stream,
            name,
            sequence,
            force,
        } => super::consumer_ops::reset(&js, common, (&stream, &name), sequence, force).await,
        ConsumerAction::Unpin {
            stream,
            name,
            group,
            force,
        } => {
            let names = (stream.as_str(), name.as_str(), group.as_str());
            super::consumer_ops::unpin(&js, common, names, force).await
        }
        ConsumerAction::Cluster(action) => super::consumer_ops::cluster(&js, common, action).await,
        ConsumerAction::Info { stream, name } => {
            consumer_view::show_info(info_json(&js, &stream, &name).await?, common.json)
        }
        ConsumerAction::Rm {
            stream,
            name,
            force,
        } => {
            info_json(&js, &stream, &name).await?;
            confirm(&format!("delete consumer {name} of stream {stream}"), force)?;
            js.delete_consumer_from_stream(&name, &stream)
                .await
                .map_err(consumer_error)
                .with_context(|| format!("cannot delete consumer {name} of stream {stream}"))?;
            if common.json {
                output::json_pretty(&json!({"success": true}))
            } else {
                output::line(format!("consumer {name} of stream {stream} deleted"))
            }
        }
        ConsumerAction::Next {
            stream,
            name,
            count,
            no_ack,
            wait,
        } => next(&js, common, (&stream, &name), count, no_ack, wait).await,
        ConsumerAction::Pause {
            stream,
            name,
            for_,
            until,
        } => {
            let until = match (for_, until) {
                (_, Some(until)) => {
                    crate::jetstream::time::parse_rfc3339(&until).map_err(|e| anyhow!(e))?;
                    until
                }
                (Some(span), None) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
                    let at = i64::try_from((now + span).as_nanos())?;
                    crate::jetstream::time::format_rfc3339(Some(at))
                }
                (None, None) => bail!("give --for or --until"),
            };
            pause(&js, common, &stream, &name, json!({ "pause_until": until })).await
        }
        ConsumerAction::Resume { stream, name } => {
            pause(&js, common, &stream, &name, json!({})).await
        }
    }
}

/// `CONSUMER.PAUSE` with `body` (a time pauses, no time resumes), and what it answered.
async fn pause(
    js: &Context,
    common: &CommonArgs,
    stream: &str,
    name: &str,
    body: Value,
) -> Result<()> {
    let reply = api::request(js, &format!("CONSUMER.PAUSE.{stream}.{name}"), &body)
        .await
        .with_context(|| format!("consumer {name} of stream {stream}"))?;
    if common.json {
        return output::json_pretty(&reply);
    }
    match reply["paused"].as_bool() {
        Some(true) => output::line(format!(
            "consumer {name} of stream {stream} paused until {}",
            reply["pause_until"].as_str().unwrap_or("?")
        )),
        _ => output::line(format!("consumer {name} of stream {stream} resumed")),
    }
}

async fn info_json(js: &Context, stream: &str, name: &str) -> Result<Value> {
    api::request(js, &format!("CONSUMER.INFO.{stream}.{name}"), &json!({}))
        .await
        .with_context(|| format!("consumer {name} of stream {stream}"))
}

/// `consumer next`: one pull request for up to `count` messages, waiting at most `--timeout`.
async fn next(
    js: &Context,
    common: &CommonArgs,
    (stream, name): (&str, &str),
    count: usize,
    no_ack: bool,
    wait: Option<Duration>,
) -> Result<()> {
    if count == 0 || count > MAX_NEXT_COUNT {
        bail!("--count must be between 1 and {MAX_NEXT_COUNT}");
    }
    let consumer: consumer::Consumer<pull::Config> = js
        .get_consumer_from_stream(name, stream)
        .await
        .map_err(|err| match err.kind() {
            async_nats::jetstream::stream::ConsumerErrorKind::InvalidConsumerType => {
                anyhow!("consumer {name} is a push consumer; next works with pull consumers")
            }
            _ => consumer_error(err),
        })
        .with_context(|| format!("consumer {name} of stream {stream}"))?;
    let mut batch = consumer
        .fetch()
        .max_messages(count)
        .expires(common.timeout)
        .messages()
        .await
        .map_err(|err| anyhow!("pulling from consumer {name}: {err}"))?;
    // The server ends the batch when it expires; the extra second covers the trip back.
    let deadline = tokio::time::Instant::now() + common.timeout + Duration::from_secs(1);
    let mut received = 0usize;
    while received < count {
        let message = match tokio::time::timeout_at(deadline, batch.next()).await {
            Ok(Some(message)) => {
                message.map_err(|err| anyhow!("pulling from consumer {name}: {err}"))?
            }
            Ok(None) | Err(_) => break,
        };
        let info = message
            .info()
            .map_err(|err| anyhow!("a message without JetStream metadata: {err}"))?;
        let seq = info.stream_sequence;
        let time = i64::try_from(info.published.unix_timestamp_nanos()).ok();
        MessageView {
            seq: Some(seq),
            time_unix_nanos: time,
            subject: message.subject.as_str(),
            reply: None,
            headers: message.headers.as_ref(),
            payload: &message.payload,
        }
        .print(common.json)?;
        if !no_ack && consumer.cached_info().config.ack_policy != AckPolicy::None {
            if let Some(wait) = wait {
                // The clock's nanoseconds are random enough to spread simulated work.
                let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
                let part = f64::from(now.subsec_nanos()) / 1e9;
                tokio::time::sleep(wait.mul_f64(part)).await;
            }
            message
                .double_ack()
                .await
                .map_err(|err| anyhow!("acknowledging message {seq}: {err}"))?;
        }
        received += 1;
    }
    if received == 0 {
        bail!(
            "no message from consumer {name} of stream {stream} within {}",
            format_duration(common.timeout)
        );
    }
    if received < count {
        // The batch ends early when the consumer has nothing more to hand out, or at expiry.
        let why = if tokio::time::Instant::now() + Duration::from_secs(1) < deadline {
            "no more were pending"
        } else {
            "the pull expired"
        };
        eprintln!("received {received} of {count} messages: {why}");
    }
    Ok(())
}
