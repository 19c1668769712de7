//! natscli's consumer commands beyond making and reading one: `state`, `copy`, `reset`,
//! `unpin` and `cluster step-down`, each one request to the server's API.

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use super::api;
use super::connect::CommonArgs;
use super::consumer_edit::ConsumerSettings;
use super::consumer_view;
use super::output;
use super::stream::confirm;
use super::stream_cluster::{step_down_group, Group};

/// `consumer cluster …`.
#[derive(Debug, Subcommand)]
pub enum ConsumerCluster {
    /// Hand the consumer's leadership (its stream's group's, in jetlog) to another server.
    #[command(name = "step-down", visible_alias = "elect")]
    StepDown {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
}

async fn info_json(js: &Context, stream: &str, name: &str) -> Result<Value> {
    api::request(js, &format!("CONSUMER.INFO.{stream}.{name}"), &json!({}))
        .await
        .with_context(|| format!("consumer {name} of stream {stream}"))
}

/// `consumer state`: where the consumer stands, without its configuration.
pub async fn state(js: &Context, common: &CommonArgs, stream: &str, name: &str) -> Result<()> {
    let mut info = info_json(js, stream, name).await?;
    if let Value::Object(map) = &mut info {
        map.remove("config");
    }
    if common.json {
        return output::json_pretty(&info);
    }
    let number = |key: &str| info[key].as_u64().unwrap_or(0).to_string();
    let pair = |key: &str| {
        format!(
            "consumer seq {}, stream seq {}",
            info[key]["consumer_seq"].as_u64().unwrap_or(0),
            info[key]["stream_seq"].as_u64().unwrap_or(0)
        )
    };
    let rows = vec![
        ("Last delivered", pair("delivered")),
        ("Ack floor", pair("ack_floor")),
        ("Ack pending", number("num_ack_pending")),
        ("Redelivered", number("num_redelivered")),
        ("Waiting pulls", number("num_waiting")),
        ("Unprocessed", number("num_pending")),
        (
            "Paused",
            info["paused"].as_bool().unwrap_or(false).to_string(),
        ),
    ];
    output::print_table(&output::properties(rows))
}

/// `consumer copy STREAM SOURCE DESTINATION`: a new durable with SOURCE's configuration
/// (and the settings given), starting afresh.
pub async fn copy(
    js: &Context,
    common: &CommonArgs,
    (stream, source, destination): (&str, &str, &str),
    settings: &ConsumerSettings,
) -> Result<()> {
    let info = info_json(js, stream, source).await?;
    let mut config = api::config_object(&info, "consumer")?;
    config.insert("durable_name".into(), json!(destination));
    config.insert("name".into(), json!(destination));
    // A push consumer's deliver subject is its own: two would share one inbox.
    if config.get("deliver_subject").is_some_and(|s| !s.is_null()) {
        bail!("consumer {source} is a push consumer: a copy would share its deliver subject; make it with consumer add");
    }
    settings.apply(&mut config)?;
    let request = json!({ "stream_name": stream, "config": config });
    let made = api::request(
        js,
        &format!("CONSUMER.CREATE.{stream}.{destination}"),
        &request,
    )
    .await
    .with_context(|| format!("cannot create consumer {destination} on stream {stream}"))?;
    if !common.json {
        output::line(format!(
            "consumer {destination} created on stream {stream} from {source}'s configuration"
        ))?;
    }
    consumer_view::show_info(made, common.json)
}

/// `consumer reset`: delivery starts again at `seq` (or where its deliver policy starts).
pub async fn reset(
    js: &Context,
    common: &CommonArgs,
    (stream, name): (&str, &str),
    seq: Option<u64>,
    force: bool,
) -> Result<()> {
    info_json(js, stream, name).await?;
    let to = seq.map_or("its start".to_string(), |s| format!("stream sequence {s}"));
    confirm(
        &format!("reset consumer {name} of stream {stream} to {to}"),
        force,
    )?;
    let body = seq.map_or(json!({}), |seq| json!({ "seq": seq }));
    let reply = api::request(js, &format!("CONSUMER.RESET.{stream}.{name}"), &body)
        .await
        .with_context(|| format!("cannot reset consumer {name} of stream {stream}"))?;
    if common.json {
        return output::json_pretty(&reply);
    }
    let at = reply["reset_seq"].as_u64().unwrap_or(0);
    output::line(format!(
        "consumer {name} of stream {stream} reset: delivery goes on from stream sequence {at}"
    ))
}

/// `consumer unpin`: the group's pinned client loses its pin.
pub async fn unpin(
    js: &Context,
    common: &CommonArgs,
    (stream, name, group): (&str, &str, &str),
    force: bool,
) -> Result<()> {
    info_json(js, stream, name).await?;
    confirm(&format!("unpin group {group} of consumer {name}"), force)?;
    let body = json!({ "group": group });
    api::request(js, &format!("CONSUMER.UNPIN.{stream}.{name}"), &body)
        .await
        .with_context(|| format!("cannot unpin group {group} of consumer {name}"))?;
    match common.json {
        true => output::line(json!({ "success": true }).to_string()),
        false => output::line(format!("group {group} of consumer {name} unpinned")),
    }
}

/// `consumer cluster …`.
pub async fn cluster(js: &Context, common: &CommonArgs, action: ConsumerCluster) -> Result<()> {
    let ConsumerCluster::StepDown { stream, name } = action;
    let group = Group {
        what: format!("consumer {name} of stream {stream}"),
        info: format!("CONSUMER.INFO.{stream}.{name}"),
        step_down: format!("CONSUMER.LEADER.STEPDOWN.{stream}.{name}"),
    };
    let info = step_down_group(js, common, &group, &json!({})).await?;
    consumer_view::show_info(info, common.json)
}
