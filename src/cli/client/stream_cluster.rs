//! `jetlog stream cluster …`: a replicated stream's group, as natscli's `stream cluster`
//! commands drive it: hand its leadership to another server (`step-down`, optionally to a
//! preferred one) and replace one of its servers (`peer-remove`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use super::api;
use super::connect::CommonArgs;
use super::output;
use super::stream::confirm;
use super::stream_view;

/// How often the leader is looked at while a step-down takes effect.
const LEADER_POLL: Duration = Duration::from_millis(250);
/// How long a step-down is waited for, at least (the server hands over within seconds).
const STEP_DOWN_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Hand the stream's leadership to another of its servers.
    #[command(name = "step-down")]
    StepDown {
        /// Stream name.
        name: String,
        /// The server to lead next (by name).
        #[arg(long)]
        preferred: Option<String>,
    },
    /// Take a server off the stream: another server without a replica takes its place and
    /// fetches the stream.
    #[command(name = "peer-remove")]
    PeerRemove {
        /// Stream name.
        name: String,
        /// The server to take off (its name, or its peer id).
        peer: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

impl ClusterAction {
    pub fn stream_name(&self) -> &str {
        match self {
            Self::StepDown { name, .. } | Self::PeerRemove { name, .. } => name,
        }
    }
}

/// `jetlog stream cluster …`.
pub async fn run(js: &Context, common: &CommonArgs, action: ClusterAction) -> Result<()> {
    match action {
        ClusterAction::StepDown { name, preferred } => {
            step_down(js, common, &name, preferred.as_deref()).await
        }
        ClusterAction::PeerRemove { name, peer, force } => {
            confirm(&format!("remove server {peer} from stream {name}"), force)?;
            api::request(
                js,
                &format!("STREAM.PEER.REMOVE.{name}"),
                &json!({ "peer": peer }),
            )
            .await
            .with_context(|| format!("cannot remove server {peer} from stream {name}"))?;
            match common.json {
                true => output::line(json!({ "success": true }).to_string()),
                false => output::line(format!(
                    "removal of server {peer} from stream {name} requested"
                )),
            }
        }
    }
}

/// Asks the leader to step down and waits (bounded) until another server leads.
async fn step_down(
    js: &Context,
    common: &CommonArgs,
    name: &str,
    preferred: Option<&str>,
) -> Result<()> {
    let body = match preferred {
        Some(server) => json!({ "placement": { "preferred": server } }),
        None => json!({}),
    };
    let group = Group {
        what: format!("stream {name}"),
        info: format!("STREAM.INFO.{name}"),
        step_down: format!("STREAM.LEADER.STEPDOWN.{name}"),
    };
    let info = step_down_group(js, common, &group, &body).await?;
    stream_view::show_info(info, common.json)
}

/// A replicated group's API subjects (after `$JS.API.`), and what to call it.
pub(super) struct Group {
    pub what: String,
    pub info: String,
    pub step_down: String,
}

/// Asks `group`'s leader to step down and waits (bounded) until another server leads; the
/// group's info then.
pub(super) async fn step_down_group(
    js: &Context,
    common: &CommonArgs,
    group: &Group,
    body: &Value,
) -> Result<Value> {
    let what = &group.what;
    let info_of = || async { api::request(js, &group.info, &json!({})).await };
    let before = leader(&info_of().await.with_context(|| what.clone())?);
    if before.is_empty() {
        bail!("{what} has no leader to step down");
    }
    api::request(js, &group.step_down, body)
        .await
        .with_context(|| format!("leader {before} of {what} did not step down"))?;
    let deadline = Instant::now() + common.timeout.max(STEP_DOWN_WAIT);
    loop {
        tokio::time::sleep(LEADER_POLL).await;
        // Requests go unanswered while the group elects: asked again until the deadline.
        if let Ok(info) = info_of().await {
            let now = leader(&info);
            if !now.is_empty() && now != before {
                if !common.json {
                    output::line(format!("{what}: leader {before} stepped down, {now} leads"))?;
                }
                return Ok(info);
            }
        }
        if Instant::now() >= deadline {
            bail!("{what}: {before} still leads after the step-down");
        }
    }
}

fn leader(info: &Value) -> String {
    info["cluster"]["leader"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
