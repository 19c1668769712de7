//! `jetlog bench`, modelled on `nats bench`: core publish/subscribe and request/reply, and
//! JetStream publish (async with an in-flight window, or sync) and consume (pull or push).
//!
//! Contract: every client has its own connection. Every wait is bounded by `--timeout`: a
//! subscriber that receives nothing for that long, a publish whose ack does not come, or a
//! request without a reply ends the run with one error line and exit code 1. The human
//! summary and the `key=value` line go to stdout; the progress line goes to stderr, and only
//! when stderr is a terminal.

mod batch_pub;
mod consume;
mod core_nats;
mod js;
mod reads;
pub(super) mod report;
mod shapes;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use async_nats::Client;
use bytes::Bytes;
use clap::Args;

use super::connect::{self, CommonArgs};
use super::output;
use super::progress::Progress;
use super::pubsub::{check_filter_subject, check_publish_subject};
use super::stream::check_stream_name;
use super::units::parse_size;
use report::Report;

/// Clients per side: far more than a benchmark on one machine needs, and a bound on the
/// connections one command opens.
const MAX_CLIENTS: usize = 1000;

/// Messages per client. Latencies are kept per message (4 bytes each), so this bounds the
/// memory a sync or request run holds.
const MAX_MSGS: u64 = 100_000_000;

/// Messages a publisher sends before it lets the other clients on the runtime's one thread
/// run, so subscribers keep up instead of being cut off as slow consumers.
const YIELD_EVERY_MSGS: u64 = 64;

/// The queue group responders (and push consumers with several subscribers) share.
const QUEUE_GROUP: &str = "jetlog-bench";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    /// natscli's form: `bench pub SUBJECT`, `bench js pub async SUBJECT`, … (see --help).
    #[command(subcommand)]
    shape: Option<shapes::BenchShape>,
    /// Subject to publish to; with --js, the subject the stream captures.
    #[arg(required = true)]
    subject: Option<String>,
    /// Publishers (requesters with --request). Default 1.
    #[arg(long = "pub", value_name = "N", conflicts_with_all = ["pull", "push"])]
    pubs: Option<usize>,
    /// Subscribers (responders with --request, consumers with --pull/--push). Default 0, or 1
    /// with --request, --pull or --push.
    #[arg(long = "sub", value_name = "N")]
    subs: Option<usize>,
    /// Messages each publisher sends (requests each requester makes); with --pull/--push,
    /// messages read from the stream in all.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    msgs: u64,
    /// Payload size, e.g. 128, 1KB, 64KiB.
    #[arg(long, value_name = "BYTES", default_value = "128", value_parser = parse_size)]
    size: i64,
    /// Publish through JetStream into --stream (created when missing).
    #[arg(long = "js", visible_alias = "jetstream", conflicts_with_all = ["request", "pull", "push"])]
    js: bool,
    /// With --js: wait for each PubAck before the next publish, and measure its latency.
    #[arg(long, requires = "js")]
    sync: bool,
    /// Read --msgs messages from --stream through a durable pull consumer, acking each.
    #[arg(long, conflicts_with_all = ["push", "request"])]
    pull: bool,
    /// Read --msgs messages from --stream through a push consumer, acking each.
    #[arg(long, conflicts_with = "request")]
    push: bool,
    /// The stream --js publishes to and --pull/--push read from.
    #[arg(long, default_value = "benchstream")]
    stream: String,
    /// With --js: publishes in flight before a publisher waits for the oldest ack.
    #[arg(long, value_name = "N", default_value_t = 500)]
    async_window: usize,
    /// With --pull: messages asked for in one fetch.
    #[arg(long, value_name = "N", default_value_t = 100)]
    batch: usize,
    /// Request/reply: requesters send one request at a time to queue-grouped responders.
    #[arg(long)]
    request: bool,
    /// Write one CSV row per client to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// No progress line on a terminal.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Core publishers and counting subscribers (either side may be absent: natscli's
    /// `bench pub` and `bench sub` run apart).
    Core,
    /// Requesters and queue-grouped responders (either side may be absent).
    Request,
    /// JetStream publishers.
    Js(js::PubKind),
    /// Readers sharing one durable pull consumer.
    Pull,
    /// Readers sharing one durable push consumer.
    Push,
    /// Readers with an ordered consumer each.
    Ordered,
    /// Readers getting messages by sequence, or in batches of direct gets.
    Get { batched: bool },
    /// Key-value writers or readers.
    Kv { put: bool },
}

/// A run as asked for, by jetlog's flags or natscli's subcommands, before it is checked.
#[derive(Debug)]
struct Setup {
    mode: Mode,
    subject: String,
    pubs: usize,
    subs: usize,
    msgs: u64,
    size: i64,
    stream: String,
    async_window: usize,
    batch: usize,
    csv: Option<PathBuf>,
    progress: bool,
}

impl BenchArgs {
    /// The run jetlog's flag form asks for, with its own defaults and checks.
    fn setup(self) -> Result<Setup> {
        let consumes = self.pull || self.push;
        let pubs = self.pubs.unwrap_or(if consumes { 0 } else { 1 });
        let subs = self
            .subs
            .unwrap_or(if consumes || self.request { 1 } else { 0 });
        if !consumes && pubs == 0 {
            bail!("--pub must be at least 1");
        }
        if (consumes || self.request) && subs == 0 {
            bail!("--sub must be at least 1 with --request, --pull or --push");
        }
        if self.js && subs > 0 {
            bail!(
                "--js measures publishing only; read the stream afterwards with --pull or --push"
            );
        }
        let mode = match (self.request, self.js, self.pull, self.push) {
            (true, _, _, _) => Mode::Request,
            (_, true, _, _) if self.sync => Mode::Js(js::PubKind::Sync),
            (_, true, _, _) => Mode::Js(js::PubKind::Async),
            (_, _, true, _) => Mode::Pull,
            (_, _, _, true) => Mode::Push,
            _ => Mode::Core,
        };
        Ok(Setup {
            mode,
            subject: self.subject.unwrap_or_default(),
            pubs,
            subs,
            msgs: self.msgs,
            size: self.size,
            stream: self.stream,
            async_window: self.async_window,
            batch: self.batch,
            csv: self.csv,
            progress: !self.no_progress,
        })
    }
}

/// The checked shape of a run, shared by every mode.
pub struct Plan {
    /// Where publishers send and core subscribers listen (already checked).
    subject: String,
    /// Publishers or requesters; 0 for a consume run.
    pubs: usize,
    /// Subscribers, responders or consumers.
    subs: usize,
    /// Per publisher or requester; in all for a consume run.
    msgs: u64,
    /// One buffer shared by every message, never copied per publish.
    payload: Bytes,
    /// The JetStream stream of `--js`, `--pull` and `--push`.
    stream: String,
    /// Unacknowledged JetStream publishes a publisher allows itself.
    async_window: usize,
    /// Messages per pull request.
    batch: usize,
    /// Connection flags, and the `--timeout` that bounds every wait.
    common: CommonArgs,
    /// Messages finished so far, for the progress line.
    progress: Progress,
}

impl Plan {
    /// Opens one client's own connection.
    async fn connect(&self) -> Result<Client> {
        connect::connect(&self.common).await
    }

    /// The most any single wait of the run may take.
    fn stall_limit(&self) -> Duration {
        self.common.timeout
    }
}

/// `jetlog bench`.
pub async fn run(mut args: BenchArgs) -> Result<()> {
    let common = args.common.clone();
    let setup = match args.shape.take() {
        Some(shape) => shape.setup(),
        None => args.setup()?,
    };
    execute(setup, common).await
}

async fn execute(setup: Setup, common: CommonArgs) -> Result<()> {
    match setup.mode {
        Mode::Get { batched: true } => check_filter_subject(&setup.subject)?,
        _ => check_publish_subject(&setup.subject)?,
    }
    check_stream_name(&setup.stream)?;
    let (pubs, subs) = (setup.pubs, setup.subs);
    if pubs > MAX_CLIENTS || subs > MAX_CLIENTS {
        bail!("--pub, --sub and --clients must be at most {MAX_CLIENTS}");
    }
    if pubs == 0 && subs == 0 {
        bail!("--clients must be at least 1");
    }
    if setup.msgs == 0 || setup.msgs > MAX_MSGS {
        bail!("--msgs must be between 1 and {MAX_MSGS}");
    }
    if setup.async_window == 0 || setup.batch == 0 {
        bail!("--async-window and --batch must be at least 1");
    }
    let size = usize::try_from(setup.size).map_err(|_| anyhow::anyhow!("--size cannot be -1"))?;
    // One connection up front learns the server's limit, so an oversized payload is one clear
    // line rather than a failure in every publisher.
    let probe = connect::connect(&common).await?;
    let max_payload = probe.server_info().max_payload;
    if size > max_payload {
        bail!("--size {size} is larger than the server's max_payload ({max_payload} bytes)");
    }
    let plan = Plan {
        subject: setup.subject,
        pubs,
        subs,
        msgs: setup.msgs,
        payload: Bytes::from(vec![b'x'; size]),
        stream: setup.stream,
        async_window: setup.async_window,
        batch: setup.batch,
        common,
        progress: Progress::new(),
    };
    let run = async {
        match setup.mode {
            Mode::Request => core_nats::request_reply(&plan).await,
            Mode::Js(kind) => js::publish(&plan, &probe, kind).await,
            Mode::Pull => consume::pull(&plan, &probe).await,
            Mode::Push => consume::push(&plan, &probe).await,
            Mode::Ordered => consume::ordered(&plan).await,
            Mode::Get { batched } => reads::gets(&plan, batched).await,
            Mode::Kv { put } => reads::kv(&plan, put).await,
            Mode::Core => core_nats::pub_sub(&plan).await,
        }
    };
    // What the progress line counts to; 0 (unknown) for responders that run until stopped.
    let total = match setup.mode {
        Mode::Pull | Mode::Push => plan.msgs,
        Mode::Request if pubs == 0 => 0,
        _ => plan.msgs.saturating_mul(pubs.max(subs) as u64),
    };
    let report = match setup.progress {
        true => tokio::select! {
            report = run => report,
            never = plan.progress.draw("bench", total) => match never {},
        },
        false => run.await,
    };
    if setup.progress {
        Progress::clear();
    }
    let report: Report = report?;
    if let Some(path) = &setup.csv {
        report.write_csv(path)?;
    }
    match plan.common.json {
        true => output::json_pretty(&report.to_json()),
        false => report.print(),
    }
}
