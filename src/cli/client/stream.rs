//! `jetlog stream …`: create, inspect, change, empty and remove JetStream streams.
//!
//! Stream configurations travel as JSON objects: `add` starts from async-nats' default
//! `stream::Config` and `edit` from the configuration the server reports, and both apply only
//! the flags the user gave (`stream_config`). Editing the server's own object keeps every
//! field this CLI does not know about exactly as it was.

use std::io::{BufRead, IsTerminal, Write};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::stream::{self, RawMessage};
use async_nats::jetstream::Context;
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::api::{self, decode};
use super::connect::{self, CommonArgs};
use super::output::{self, MessageView};
use super::pubsub::{check_filter_subject, check_publish_subject};
use super::stream_backup;
use super::stream_cluster;
use super::stream_config::ConfigArgs;
use super::stream_edit;
use super::stream_view;
use crate::jetstream::stream_config::is_valid_name;

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    action: StreamAction,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum StreamAction {
    /// Create a stream.
    #[command(visible_alias = "create", aliases = ["new"])]
    Add {
        /// Stream name (with --config, the file's when not given).
        #[arg(required_unless_present = "config_file")]
        name: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List streams.
    #[command(visible_alias = "list", aliases = ["l"])]
    Ls {
        /// Only the names, one per line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Show a stream's configuration and state.
    #[command(aliases = ["nfo", "i"])]
    Info {
        /// Stream name.
        name: String,
    },
    /// Show a stream's state only.
    State {
        /// Stream name.
        name: String,
    },
    /// Create a stream with another's configuration (and the flags given), not its messages.
    #[command(visible_alias = "cp")]
    Copy {
        /// The stream whose configuration is copied.
        #[arg(value_name = "SOURCE")]
        from: String,
        /// The new stream's name.
        #[arg(value_name = "DESTINATION")]
        to: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Change a stream's configuration; flags not given keep their value.
    #[command(visible_alias = "update")]
    Edit {
        /// Stream name.
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Delete a stream and all its messages.
    #[command(visible_alias = "delete", aliases = ["del"])]
    Rm {
        /// Stream name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove messages: all of them, those on one subject, those below a sequence, or all
    /// but the newest N.
    Purge {
        /// Stream name.
        name: String,
        /// Only messages on this subject (wildcards allowed).
        #[arg(long)]
        subject: Option<String>,
        /// Remove messages below this sequence.
        #[arg(long, conflicts_with = "keep")]
        seq: Option<u64>,
        /// Keep this many of the newest messages.
        #[arg(long)]
        keep: Option<u64>,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show one message, by sequence or as the last on a subject.
    Get {
        /// Stream name.
        name: String,
        /// Stream sequence of the message.
        #[arg(required_unless_present = "last_for", conflicts_with = "last_for")]
        seq: Option<u64>,
        /// The last message stored on this subject.
        #[arg(long)]
        last_for: Option<String>,
    },
    /// Delete one message by sequence.
    Rmm {
        /// Stream name.
        name: String,
        /// Sequence of the message to delete.
        seq: u64,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// A table of all streams and their state.
    Report,
    /// Print a stream's messages from a start point to its current end (natscli's
    /// `stream view`, without the paging prompt).
    View {
        /// Stream name.
        name: String,
        /// Start at this stream sequence.
        #[arg(long, conflicts_with = "since")]
        id: Option<u64>,
        /// Start at this time: a duration back (1h) or an RFC 3339 time.
        #[arg(long, value_parser = super::consumer::start_time)]
        since: Option<async_nats::datetime::DateTime>,
        /// Only messages on this subject (wildcards allowed).
        #[arg(long)]
        subject: Option<String>,
        /// At most this many messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// The names of the streams that match every condition given (natscli's `stream find`).
    #[command(aliases = ["query"])]
    Find(stream_view::FindArgs),
    /// Seal a stream: no more messages, deletes or purges, for good.
    Seal {
        /// Stream name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Save a stream, its consumers and messages to a directory (`stream.tar.s2` and
    /// `backup.json`, as natscli writes them).
    #[command(visible_alias = "snapshot")]
    Backup {
        /// Stream name.
        name: String,
        /// Directory to write the backup to (created if missing; must not hold one).
        dir: std::path::PathBuf,
        /// Leave the consumers out.
        #[arg(long)]
        no_consumers: bool,
        /// Bytes per chunk the server sends (1 KiB to 1 MiB; default 128 KiB).
        #[arg(long, value_parser = super::units::parse_size)]
        chunk_size: Option<i64>,
        /// Bytes the server may send before the CLI acknowledges (default 8 MiB).
        #[arg(long, value_parser = super::units::parse_size)]
        window_size: Option<i64>,
        /// No progress line on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Create a stream again from a backup directory; the stream must not exist.
    Restore {
        /// Directory holding the backup.
        dir: std::path::PathBuf,
        /// No progress line on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// A replicated stream's group: step its leader down, replace one of its servers.
    #[command(subcommand)]
    Cluster(stream_cluster::ClusterAction),
    /// List the subjects a stream holds messages on, with their counts.
    #[command(aliases = ["subj"])]
    Subjects {
        /// Stream name.
        name: String,
        /// Only subjects matching this filter (wildcards allowed).
        #[arg(default_value = ">")]
        filter: String,
    },
}

/// Refuses names that would change the API subject they are put into.
pub fn check_stream_name(name: &str) -> Result<()> {
    if !is_valid_name(name) {
        bail!("invalid stream name {name:?}: it must be non-empty, without '.', '*', '>', '/', '\\' or whitespace");
    }
    Ok(())
}

/// `jetlog stream …`.
pub async fn run(args: StreamArgs) -> Result<()> {
    let common = &args.common;
    if let Some(name) = args.action.stream_name() {
        check_stream_name(name)?;
    }
    let js = connect::connect_jetstream(common).await?;
    match args.action {
        StreamAction::Add { name, config } => stream_edit::add(&js, common, name, &config).await,
        StreamAction::Ls { names } => stream_view::list(&js, common, names).await,
        StreamAction::Info { name } => {
            let info = info_json(&js, &name).await?;
            stream_view::show_info(info, common.json)
        }
        StreamAction::Edit { name, config } => stream_edit::edit(&js, common, &name, &config).await,
        StreamAction::Copy { from, to, config } => {
            stream_edit::copy(&js, common, &from, &to, &config).await
        }
        StreamAction::State { name } => {
            stream_view::show_state(info_json(&js, &name).await?, common.json)
        }
        StreamAction::Rm { name, force } => remove(&js, common, &name, force).await,
        StreamAction::Purge {
            name,
            subject,
            seq,
            keep,
            force,
        } => {
            let what = match (&subject, seq, keep) {
                (Some(subject), _, _) => {
                    format!("purge the messages on {subject} from stream {name}")
                }
                (None, Some(seq), _) => {
                    format!("purge the messages below {seq} from stream {name}")
                }
                (None, None, Some(keep)) => {
                    format!("purge all but the newest {keep} messages from stream {name}")
                }
                (None, None, None) => format!("purge every message from stream {name}"),
            };
            confirm(&what, force)?;
            purge(&js, common, &name, subject, seq, keep).await
        }
        StreamAction::Get {
            name,
            seq,
            last_for,
        } => get(&js, common, &name, seq, last_for).await,
        StreamAction::Rmm { name, seq, force } => {
            confirm(&format!("delete message {seq} from stream {name}"), force)?;
            remove_message(&js, common, &name, seq).await
        }
        StreamAction::Report => stream_view::report(&js, common).await,
        StreamAction::Find(find) => stream_view::find(&js, common, &find).await,
        StreamAction::View {
            name,
            id,
            since,
            subject,
            count,
        } => {
            let common = args.common.clone();
            super::replay::view(&js, common, name, subject, id, since, count).await
        }
        StreamAction::Seal { name, force } => {
            confirm(
                &format!("seal stream {name} (this cannot be undone)"),
                force,
            )?;
            let current = info_json(&js, &name).await?;
            let mut config = current
                .get("config")
                .cloned()
                .ok_or_else(|| anyhow!("unexpected stream info reply: no config object"))?;
            config["sealed"] = json!(true);
            let info = api::request(&js, &format!("STREAM.UPDATE.{name}"), &config)
                .await
                .with_context(|| format!("cannot seal stream {name}"))?;
            if !common.json {
                output::line(format!("stream {name} sealed"))?;
            }
            stream_view::show_info(info, common.json)
        }
        StreamAction::Subjects { name, filter } => {
            check_filter_subject(&filter)?;
            stream_view::subjects(&js, common, &name, &filter).await
        }
        StreamAction::Backup {
            name,
            dir,
            no_consumers,
            chunk_size,
            window_size,
            no_progress,
        } => {
            let options = stream_backup::BackupOptions {
                consumers: !no_consumers,
                chunk_size,
                window_size,
                progress: !no_progress,
            };
            let idle = common.timeout.max(std::time::Duration::from_secs(5));
            stream_backup::backup(&js, &name, &dir, options, idle).await
        }
        StreamAction::Restore { dir, no_progress } => {
            stream_backup::restore(&js, &dir, !no_progress).await
        }
        StreamAction::Cluster(action) => stream_cluster::run(&js, common, action).await,
    }
}

impl StreamAction {
    fn stream_name(&self) -> Option<&str> {
        match self {
            Self::Add { name, .. } => name.as_deref(),
            Self::Copy { from, .. } => Some(from),
            Self::Info { name }
            | Self::State { name }
            | Self::Edit { name, .. }
            | Self::Rm { name, .. }
            | Self::Purge { name, .. }
            | Self::Get { name, .. }
            | Self::Rmm { name, .. }
            | Self::Seal { name, .. }
            | Self::Subjects { name, .. }
            | Self::View { name, .. }
            | Self::Backup { name, .. } => Some(name),
            Self::Cluster(action) => Some(action.stream_name()),
            Self::Ls { .. } | Self::Report | Self::Find(_) | Self::Restore { .. } => None,
        }
    }
}

/// The server's `STREAM.INFO` reply for one stream.
pub async fn info_json(js: &Context, name: &str) -> Result<Value> {
    api::request(js, &format!("STREAM.INFO.{name}"), &json!({}))
        .await
        .with_context(|| format!("stream {name}"))
}

/// Asks on the terminal before a destructive step; without a terminal, `-f` is required so a
/// script never deletes by accident.
pub fn confirm(question: &str, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{question}: refusing without -f/--force (stdin is not a terminal)");
    }
    eprint!("{question}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled")
    }
}

async fn remove(js: &Context, common: &CommonArgs, name: &str, force: bool) -> Result<()> {
    // Look first, so a missing stream is reported before anyone is asked about it.
    let info: stream::Info = decode(info_json(js, name).await?, "stream info")?;
    confirm(
        &format!(
            "delete stream {name} and its {} messages",
            info.state.messages
        ),
        force,
    )?;
    let reply = api::request(js, &format!("STREAM.DELETE.{name}"), &json!({}))
        .await
        .with_context(|| format!("cannot delete stream {name}"))?;
    if common.json {
        output::json_pretty(&reply)
    } else {
        output::line(format!("stream {name} deleted"))
    }
}

async fn purge(
    js: &Context,
    common: &CommonArgs,
    name: &str,
    subject: Option<String>,
    seq: Option<u64>,
    keep: Option<u64>,
) -> Result<()> {
    if let Some(subject) = &subject {
        check_filter_subject(subject)?;
    }
    let request = stream::PurgeRequest {
        sequence: seq,
        filter: subject,
        keep,
    };
    let reply = api::request(js, &format!("STREAM.PURGE.{name}"), &request)
        .await
        .with_context(|| format!("cannot purge stream {name}"))?;
    if common.json {
        return output::json_pretty(&reply);
    }
    let purged: stream::PurgeResponse = decode(reply, "stream purge")?;
    let plural = if purged.purged == 1 { "" } else { "s" };
    output::line(format!(
        "purged {} message{plural} from {name}",
        purged.purged
    ))
}

async fn get(
    js: &Context,
    common: &CommonArgs,
    name: &str,
    seq: Option<u64>,
    last_for: Option<String>,
) -> Result<()> {
    let request = match (seq, &last_for) {
        (_, Some(subject)) => {
            check_publish_subject(subject)?;
            json!({ "last_by_subj": subject })
        }
        (Some(seq), None) => json!({ "seq": seq }),
        (None, None) => bail!("give a sequence or --last-for SUBJECT"),
    };
    let reply = api::request(js, &format!("STREAM.MSG.GET.{name}"), &request)
        .await
        .with_context(|| match (&last_for, seq) {
            (Some(subject), _) => format!("stream {name}: last message on {subject}"),
            (None, Some(seq)) => format!("stream {name}: message {seq}"),
            (None, None) => format!("stream {name}"),
        })?;
    let raw: RawMessage = decode(
        reply.get("message").cloned().unwrap_or(Value::Null),
        "message get",
    )?;
    let payload = BASE64
        .decode(&raw.payload)
        .map_err(|err| anyhow!("the server sent a payload that is not base64: {err}"))?;
    let headers = match &raw.headers {
        Some(encoded) => {
            let block = BASE64
                .decode(encoded)
                .map_err(|err| anyhow!("the server sent headers that are not base64: {err}"))?;
            Some(parse_header_block(&block)?)
        }
        None => None,
    };
    MessageView {
        seq: Some(raw.sequence),
        time_unix_nanos: i64::try_from(raw.time.unix_timestamp_nanos()).ok(),
        subject: &raw.subject,
        reply: None,
        headers: headers.as_ref(),
        payload: &payload,
    }
    .print(common.json)
}

/// Parses a stored header block (`NATS/1.0\r\nName: value\r\n…\r\n\r\n`), keeping every
/// value of a repeated header. async-nats' `StreamMessage::try_from` keeps only the last one,
/// so `stream get` does this itself.
fn parse_header_block(block: &[u8]) -> Result<HeaderMap> {
    let text = std::str::from_utf8(block).context("the stored headers are not UTF-8")?;
    let mut lines = text.split("\r\n");
    if !lines
        .next()
        .is_some_and(|first| first.starts_with("NATS/1.0"))
    {
        bail!("the stored headers do not start with NATS/1.0");
    }
    let mut headers = HeaderMap::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("a stored header line without ':': {line:?}"))?;
        let name = HeaderName::from_str(name.trim())
            .map_err(|_| anyhow!("a stored header with an invalid name: {line:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| anyhow!("a stored header with an invalid value: {line:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

async fn remove_message(js: &Context, common: &CommonArgs, name: &str, seq: u64) -> Result<()> {
    let reply = api::request(
        js,
        &format!("STREAM.MSG.DELETE.{name}"),
        &json!({ "seq": seq }),
    )
    .await
    .with_context(|| format!("cannot delete message {seq} from stream {name}"))?;
    if common.json {
        output::json_pretty(&reply)
    } else {
        output::line(format!("deleted message {seq} from {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_stored_headers_keep_every_value() {
        let block = b"NATS/1.0\r\nTrace: abc\r\nTrace: def\r\nLang:en\r\n\r\n";
        let headers = parse_header_block(block).expect("parses");
        let trace: Vec<&str> = headers.get_all("Trace").map(|v| v.as_str()).collect();
        assert_eq!(trace, ["abc", "def"]);
        assert_eq!(headers.get("Lang").map(|v| v.as_str()), Some("en"));
        assert!(parse_header_block(b"HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_header_block(b"NATS/1.0\r\nno colon\r\n\r\n").is_err());
    }
}
