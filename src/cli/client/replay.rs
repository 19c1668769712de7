//! `jetlog replay`: a stream's events in order, from a start point to the end as it was when
//! the command started (or on and on with `--follow`).
//!
//! It reads through an ordered consumer: an ephemeral, unacknowledged consumer that async-nats
//! recreates from the last sequence it saw whenever it notices a gap, so output is in stream
//! order with nothing repeated or skipped. The end is fixed up front from `STREAM.INFO`:
//! events published during the replay are not printed, which makes a replay of a busy stream
//! finish. With a subject filter the last matching event may lie before that end, so the
//! replay also stops when the server reports nothing more pending for the consumer.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::datetime::DateTime;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::{stream, Context};
use clap::Args;
use futures::StreamExt;

use super::api::{decode, describe};
use super::connect::{self, CommonArgs};
use super::consumer::start_time;
use super::output::MessageView;
use super::pubsub::check_filter_subject;
use super::stream::{check_stream_name, info_json};
use super::units::format_duration;

/// How often the progress line on a terminal is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The stream to replay.
    stream: String,
    /// Only events on this subject (wildcards allowed).
    #[arg(long)]
    subject: Option<String>,
    /// Start at this stream sequence.
    #[arg(long, conflicts_with = "since")]
    from_seq: Option<u64>,
    /// Start at this time: a duration back (1h) or an RFC 3339 time.
    #[arg(long, value_parser = start_time)]
    since: Option<DateTime>,
    /// Stop after this stream sequence.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Keep printing new events as they arrive, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Where `sub --stream` starts when it is not a sequence or a time.
    #[arg(skip)]
    policy: Option<DeliverPolicy>,
    #[command(flatten)]
    common: CommonArgs,
}

/// `sub`'s flags for reading a stream, as natscli's `sub --stream` and its start flags.
#[derive(Debug, Args)]
pub struct StreamSubArgs {
    /// Read this stream's messages (on SUBJECT, when given) through an ordered consumer.
    #[arg(long)]
    stream: Option<String>,
    /// From the stream's first message (the default with --stream).
    #[arg(long, group = "start")]
    all: bool,
    /// Only messages stored from now on.
    #[arg(long, group = "start")]
    new: bool,
    /// From the stream's last message.
    #[arg(long, group = "start")]
    last: bool,
    /// The last message of each subject, then new ones.
    #[arg(long, group = "start")]
    last_per_subject: bool,
    /// From this time: a duration back (1d3h) or an RFC 3339 time.
    #[arg(long, group = "start", value_parser = start_time, value_name = "DURATION")]
    since: Option<DateTime>,
    /// From this stream sequence.
    #[arg(long, group = "start", value_name = "SEQUENCE")]
    start_sequence: Option<u64>,
    /// Stop once every message stored when it started has been printed.
    #[arg(short = 'T', long)]
    terminate_at_end: bool,
}

impl StreamSubArgs {
    /// Whether `sub` reads a stream rather than subscribing to core NATS.
    pub fn wanted(&self) -> bool {
        self.stream.is_some()
            || self.all
            || self.new
            || self.last
            || self.last_per_subject
            || self.since.is_some()
            || self.start_sequence.is_some()
            || self.terminate_at_end
    }
}

/// `jetlog sub [SUBJECT] --stream S`: the stream's messages (those on SUBJECT) from the start
/// asked for, then new ones as they are stored; without `--stream`, the stream that captures
/// SUBJECT.
pub async fn subscribe_stream(
    subject: Option<String>,
    sub: StreamSubArgs,
    count: Option<u64>,
    common: CommonArgs,
) -> Result<()> {
    if let Some(subject) = &subject {
        check_filter_subject(subject)?;
    }
    let js = connect::connect_jetstream(&common).await?;
    let stream = match (sub.stream, &subject) {
        (Some(stream), _) => stream,
        (None, Some(subject)) => js
            .stream_by_subject(subject.as_str())
            .await
            .map_err(|err| anyhow!("no stream stores {subject}: {err}"))?,
        (None, None) => bail!("give a SUBJECT or --stream"),
    };
    check_stream_name(&stream)?;
    let policy = match (sub.new, sub.last, sub.last_per_subject) {
        (true, _, _) => Some(DeliverPolicy::New),
        (_, true, _) => Some(DeliverPolicy::Last),
        (_, _, true) => Some(DeliverPolicy::LastPerSubject),
        _ => None,
    };
    let args = ReplayArgs {
        stream,
        subject,
        from_seq: sub.start_sequence,
        since: sub.since,
        to_seq: None,
        follow: !sub.terminate_at_end,
        policy,
        common,
    };
    replay(&js, &args, count).await
}

/// A progress line on stderr, drawn only when stderr is a terminal.
struct Progress {
    enabled: bool,
    last_drawn: Option<tokio::time::Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
            last_drawn: None,
        }
    }

    fn update(&mut self, printed: u64, seq: u64, end: Option<u64>) {
        let now = tokio::time::Instant::now();
        if !self.enabled || self.last_drawn.is_some_and(|t| now - t < PROGRESS_INTERVAL) {
            return;
        }
        self.last_drawn = Some(now);
        let of = end.map(|e| format!(" of {e}")).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[Kreplayed {printed} events, at seq {seq}{of}");
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// `jetlog replay`.
pub async fn run(args: ReplayArgs) -> Result<()> {
    check_stream_name(&args.stream)?;
    if let Some(subject) = &args.subject {
        check_filter_subject(subject)?;
    }
    if let (Some(from), Some(to)) = (args.from_seq, args.to_seq) {
        if to < from {
            bail!("--to-seq {to} is before --from-seq {from}");
        }
    }
    let js = connect::connect_jetstream(&args.common).await?;
    replay(&js, &args, None).await
}

/// `stream view`: up to `count` messages of `stream` from `--id`/`--since` on (all of them
/// when no count is given), ending at the stream's current end, as `replay` prints them.
pub async fn view(
    js: &Context,
    common: CommonArgs,
    stream: String,
    subject: Option<String>,
    from_seq: Option<u64>,
    since: Option<DateTime>,
    count: Option<u64>,
) -> Result<()> {
    if let Some(subject) = &subject {
        check_filter_subject(subject)?;
    }
    let args = ReplayArgs {
        stream,
        subject,
        from_seq,
        since,
        to_seq: None,
        follow: false,
        policy: None,
        common,
    };
    replay(js, &args, count).await
}

/// Prints the stream's events per `args`, at most `limit` of them when one is given.
async fn replay(js: &Context, args: &ReplayArgs, limit: Option<u64>) -> Result<()> {
    let common = &args.common;
    let info: stream::Info = decode(info_json(js, &args.stream).await?, "stream info")?;
    // Without --follow the replay ends at the stream's last sequence as of now.
    let end = match (args.follow, args.to_seq) {
        (true, to) => to,
        (false, Some(to)) => Some(to.min(info.state.last_sequence)),
        (false, None) => Some(info.state.last_sequence),
    };
    let start = args.from_seq.unwrap_or(1);
    if !args.follow && (info.state.messages == 0 || end.is_some_and(|e| e < start)) {
        return Ok(());
    }
    let deliver_policy = match (args.from_seq, args.since, args.policy) {
        (Some(start_sequence), _, _) => DeliverPolicy::ByStartSequence { start_sequence },
        (None, Some(start_time), _) => DeliverPolicy::ByStartTime { start_time },
        (None, None, policy) => policy.unwrap_or(DeliverPolicy::All),
    };
    let consumer = js
        .create_consumer_on_stream(
            pull::OrderedConfig {
                filter_subject: args.subject.clone().unwrap_or_default(),
                deliver_policy,
                ..Default::default()
            },
            args.stream.as_str(),
        )
        .await
        .map_err(|err| match err.kind() {
            async_nats::jetstream::stream::ConsumerErrorKind::JetStream(api) => {
                anyhow!("{}", describe(&api))
            }
            _ => anyhow!("{err}"),
        })
        .with_context(|| {
            format!(
                "cannot create an ordered consumer on stream {}",
                args.stream
            )
        })?;
    if !args.follow && consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|err| anyhow!("reading stream {}: {err}", args.stream))?;
    let mut progress = Progress::new(!args.follow);
    let mut printed = 0u64;
    loop {
        let next = if args.follow {
            messages.next().await
        } else {
            tokio::time::timeout(common.timeout, messages.next())
                .await
                .map_err(|_| {
                    anyhow!(
                        "replay of {} stalled: no event within {} after {printed} events",
                        args.stream,
                        format_duration(common.timeout)
                    )
                })?
        };
        let Some(message) = next else {
            bail!("the connection to the server was closed");
        };
        let message = message.map_err(|err| anyhow!("reading stream {}: {err}", args.stream))?;
        let meta = message
            .info()
            .map_err(|err| anyhow!("an event without JetStream metadata: {err}"))?;
        let (seq, pending) = (meta.stream_sequence, meta.pending);
        if end.is_some_and(|e| seq > e) {
            break;
        }
        MessageView {
            seq: Some(seq),
            time_unix_nanos: i64::try_from(meta.published.unix_timestamp_nanos()).ok(),
            subject: message.subject.as_str(),
            reply: None,
            headers: message.headers.as_ref(),
            payload: &message.payload,
        }
        .print(common.json)?;
        printed += 1;
        progress.update(printed, seq, end);
        if end == Some(seq) || (!args.follow && pending == 0) || limit == Some(printed) {
            break;
        }
    }
    progress.finish();
    Ok(())
}
