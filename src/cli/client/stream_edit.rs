//! `stream add`, `edit` and `copy`: a stream's configuration as a JSON object, from
//! async-nats' defaults (`add`), the server's (`edit`), another stream's (`copy`, natscli's:
//! the configuration, not the data) or a `--config` file, with only the flags given applied
//! (`stream_config`).

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::stream;
use async_nats::jetstream::Context;
use serde_json::{json, Map, Value};

use super::api;
use super::connect::CommonArgs;
use super::output;
use super::stream::{check_stream_name, info_json};
use super::stream_config::ConfigArgs;
use super::stream_view;

pub(super) async fn add(
    js: &Context,
    common: &CommonArgs,
    name: Option<String>,
    args: &ConfigArgs,
) -> Result<()> {
    let (name, mut config) = match args.file_config()? {
        Some(mut file) => {
            let name = match name.or_else(|| file.get("name")?.as_str().map(str::to_string)) {
                Some(name) => name,
                None => bail!("the stream needs a name: give NAME, or name in the --config file"),
            };
            check_stream_name(&name)?;
            file.insert("name".into(), json!(name));
            (name, file)
        }
        None => {
            let name = name.unwrap_or_default();
            // async-nats' default config gives the full shape; "unlimited" is -1 for NATS.
            let defaults = stream::Config {
                name: name.clone(),
                subjects: vec![name.clone()],
                max_messages: -1,
                max_bytes: -1,
                max_messages_per_subject: -1,
                max_message_size: -1,
                max_consumers: -1,
                num_replicas: 1,
                ..Default::default()
            };
            match serde_json::to_value(&defaults)? {
                Value::Object(map) => (name, map),
                _ => bail!("async-nats' stream config did not encode as an object"),
            }
        }
    };
    let name = name.as_str();
    args.apply(&mut config)?;
    if args.copies_without_subjects() && args.file_config()?.is_none() {
        config.remove("subjects");
    }
    let subject = format!("STREAM.CREATE.{name}");
    let done = format!("stream {name} created");
    send(
        js,
        common,
        (&subject, &config),
        format!("cannot create stream {name}"),
        done,
    )
    .await
}

/// Sends `config` to the API `subject`, then prints `done` and the stream's info.
async fn send(
    js: &Context,
    common: &CommonArgs,
    (subject, config): (&str, &Map<String, Value>),
    failed: String,
    done: String,
) -> Result<()> {
    let info = api::request(js, subject, config).await.context(failed)?;
    if !common.json {
        output::line(done)?;
    }
    stream_view::show_info(info, common.json)
}

pub(super) async fn edit(
    js: &Context,
    common: &CommonArgs,
    name: &str,
    args: &ConfigArgs,
) -> Result<()> {
    let current = info_json(js, name).await?;
    let mut config = match args.file_config()? {
        Some(file) => file,
        None => api::config_object(&current, "stream")?,
    };
    config.insert("name".into(), json!(name));
    args.apply(&mut config)?;
    let subject = format!("STREAM.UPDATE.{name}");
    let done = format!("stream {name} updated");
    send(
        js,
        common,
        (&subject, &config),
        format!("cannot update stream {name}"),
        done,
    )
    .await
}

/// `stream copy SOURCE DESTINATION`: a new stream with SOURCE's configuration (and the flags
/// given), none of its messages.
pub(super) async fn copy(
    js: &Context,
    common: &CommonArgs,
    source: &str,
    destination: &str,
    args: &ConfigArgs,
) -> Result<()> {
    check_stream_name(destination)?;
    let mut config = api::config_object(&info_json(js, source).await?, "stream")?;
    config.insert("name".into(), json!(destination));
    args.apply(&mut config)?;
    let subject = format!("STREAM.CREATE.{destination}");
    let failed = format!("cannot create stream {destination}");
    let done = format!("stream {destination} created from {source}'s configuration");
    send(js, common, (&subject, &config), failed, done).await
}
