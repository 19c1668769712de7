//! `jetlog bench`, modelled on `nats bench`: core publish/subscribe and request/reply, and
//! JetStream publish (async with an in-flight window, or sync) and consume (pull or push).
//!
//! Contract: every client has its own connection. Every wait is bounded by `--timeout`: a
//! subscriber that receives nothing for that long, a publish whose ack does not come, or a
//! request without a reply ends the run with one error line and exit code 1. The human
//! summary and the `key=value` line go to stdout; the progress line goes to stderr, and only
//! when stderr is a terminal.

mod consume;
mod core_nats;
mod js;
pub(super) mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use async_nats::Client;
use bytes::Bytes;
use clap::Args;

use super::connect::{self, CommonArgs};
use super::output;
use super::progress::Progress;
use super::pubsub::check_publish_subject;
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
pub struct BenchArgs {
    /// Subject to publish to; with --js, the subject the stream captures.
    subject: String,
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
    #[command(flatten)]
    common: CommonArgs,
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
pub async fn run(args: BenchArgs) -> Result<()> {
    check_publish_subject(&args.subject)?;
    check_stream_name(&args.stream)?;
    let consumes = args.pull || args.push;
    let pubs = args.pubs.unwrap_or(if consumes { 0 } else { 1 });
    let subs = args
        .subs
        .unwrap_or(if consumes || args.request { 1 } else { 0 });
    if pubs > MAX_CLIENTS || subs > MAX_CLIENTS {
        bail!("--pub and --sub must be at most {MAX_CLIENTS}");
    }
    if !consumes && pubs == 0 {
        bail!("--pub must be at least 1");
    }
    if (consumes || args.request) && subs == 0 {
        bail!("--sub must be at least 1 with --request, --pull or --push");
    }
    if args.js && subs > 0 {
        bail!("--js measures publishing only; read the stream afterwards with --pull or --push");
    }
    if args.msgs == 0 || args.msgs > MAX_MSGS {
        bail!("--msgs must be between 1 and {MAX_MSGS}");
    }
    if args.async_window == 0 || args.batch == 0 {
        bail!("--async-window and --batch must be at least 1");
    }
    let size = usize::try_from(args.size).map_err(|_| anyhow::anyhow!("--size cannot be -1"))?;
    // One connection up front learns the server's limit, so an oversized payload is one clear
    // line rather than a failure in every publisher.
    let probe = connect::connect(&args.common).await?;
    let max_payload = probe.server_info().max_payload;
    if size > max_payload {
        bail!("--size {size} is larger than the server's max_payload ({max_payload} bytes)");
    }
    let plan = Plan {
        subject: args.subject,
        pubs,
        subs,
        msgs: args.msgs,
        payload: Bytes::from(vec![b'x'; size]),
        stream: args.stream,
        async_window: args.async_window,
        batch: args.batch,
        common: args.common,
        progress: Progress::new(),
    };
    let run = async {
        if args.request {
            core_nats::request_reply(&plan).await
        } else if args.js {
            js::publish(&plan, &probe, args.sync).await
        } else if args.pull {
            consume::pull(&plan, &probe).await
        } else if args.push {
            consume::push(&plan, &probe).await
        } else {
            core_nats::pub_sub(&plan).await
        }
    };
    let total = if consumes {
        plan.msgs
    } else {
        plan.msgs.saturating_mul(pubs as u64)
    };
    let report = tokio::select! {
        report = run => report,
        never = plan.progress.draw("bench", total) => match never {},
    };
    Progress::clear();
    let report: Report = report?;
    if let Some(path) = &args.csv {
        report.write_csv(path)?;
    }
    match plan.common.json {
        true => output::json_pretty(&report.to_json()),
        false => report.print(),
    }
}
