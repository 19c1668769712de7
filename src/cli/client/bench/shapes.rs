//! natscli's `nats bench` subcommands (its shape since natscli 0.2): `pub`, `sub`, `service
//! request|serve`, `js pub sync|async`, `js ordered|consume|fetch`, each turned into the
//! [`Setup`] jetlog's flag form (`bench SUBJECT --pub N --js …`) makes too. natscli's flags
//! jetlog has no function for (`--multisubject`, `--throughput`, `--acks`, …) are refused by
//! clap as unknown, never accepted and ignored.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Mode, Setup};
use crate::cli::client::units::parse_size;

/// natscli's default stream for JetStream benchmarks.
const DEFAULT_STREAM: &str = "benchstream";

#[derive(Debug, Subcommand)]
pub enum BenchShape {
    /// Publish core NATS messages.
    Pub(CoreShape),
    /// Count core NATS messages others publish (each client waits for --msgs).
    Sub(CoreShape),
    /// Request/reply: `service request` sends, `service serve` answers until interrupted.
    #[command(subcommand)]
    Service(ServiceShape),
    /// JetStream: `js pub sync|async`, `js ordered|consume|fetch`.
    #[command(subcommand)]
    Js(JsShape),
}

#[derive(Debug, Subcommand)]
pub enum ServiceShape {
    /// Send requests, one at a time per client, and time each reply.
    Request(CoreShape),
    /// Answer requests (in a queue group) until interrupted.
    Serve(CoreShape),
}

#[derive(Debug, Subcommand)]
pub enum JsShape {
    /// Publish into --stream (created when missing).
    #[command(subcommand)]
    Pub(JsPubShape),
    /// Read --msgs messages through an ordered consumer per client.
    Ordered(JsReadShape),
    /// Read --msgs messages through a durable pull consumer the clients share, acking each.
    Consume(JsReadShape),
    /// As `consume`: jetlog's pull readers fetch in batches of --batch either way.
    Fetch(JsReadShape),
}

#[derive(Debug, Subcommand)]
pub enum JsPubShape {
    /// Wait for each PubAck before the next publish, timing each.
    Sync(JsPubArgs),
    /// Keep up to --batch publishes in flight per client.
    Async(JsPubArgs),
}

/// The flags natscli's bench commands share.
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Messages to publish, request or receive per client (`js consume`/`fetch`: in all, the
    /// clients sharing one consumer).
    #[arg(long, default_value_t = 100_000)]
    msgs: u64,
    /// Payload size, e.g. 128, 1KB, 64KiB.
    #[arg(long, default_value = "128", value_parser = parse_size)]
    size: i64,
    /// Save one CSV row per client to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// No progress line on a terminal.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
pub struct CoreShape {
    /// Subject to use for the benchmark.
    subject: String,
    #[command(flatten)]
    shared: ShapeArgs,
}

#[derive(Debug, Args)]
pub struct JsPubArgs {
    /// Subject to publish to (the stream captures it).
    subject: String,
    /// The stream to publish into.
    #[arg(long, default_value = DEFAULT_STREAM)]
    stream: String,
    /// With `async`: publishes in flight per client.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[command(flatten)]
    shared: ShapeArgs,
}

#[derive(Debug, Args)]
pub struct JsReadShape {
    /// The stream to read.
    #[arg(long, default_value = DEFAULT_STREAM)]
    stream: String,
    /// Messages asked for in one pull request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[command(flatten)]
    shared: ShapeArgs,
}

impl ShapeArgs {
    fn setup(self, mode: Mode, subject: String, (pubs, subs): (usize, usize)) -> Setup {
        Setup {
            mode,
            subject,
            pubs,
            subs,
            msgs: self.msgs,
            size: self.size,
            stream: DEFAULT_STREAM.to_string(),
            async_window: 500,
            batch: 100,
            csv: self.csv,
            progress: !self.no_progress,
        }
    }
}

impl BenchShape {
    /// The run natscli's command asks for.
    pub fn setup(self) -> Setup {
        match self {
            Self::Pub(core) => {
                let clients = core.shared.clients;
                core.shared.setup(Mode::Core, core.subject, (clients, 0))
            }
            Self::Sub(core) => {
                let clients = core.shared.clients;
                core.shared.setup(Mode::Core, core.subject, (0, clients))
            }
            Self::Service(ServiceShape::Request(core)) => {
                let clients = core.shared.clients;
                core.shared.setup(Mode::Request, core.subject, (clients, 0))
            }
            Self::Service(ServiceShape::Serve(core)) => {
                let clients = core.shared.clients;
                core.shared.setup(Mode::Request, core.subject, (0, clients))
            }
            Self::Js(JsShape::Pub(shape)) => {
                let (sync, args) = match shape {
                    JsPubShape::Sync(args) => (true, args),
                    JsPubShape::Async(args) => (false, args),
                };
                let clients = args.shared.clients;
                let mut setup = args
                    .shared
                    .setup(Mode::Js { sync }, args.subject, (clients, 0));
                setup.stream = args.stream;
                setup.async_window = args.batch;
                setup
            }
            Self::Js(JsShape::Ordered(args)) => args.read(Mode::Ordered),
            Self::Js(JsShape::Consume(args) | JsShape::Fetch(args)) => args.read(Mode::Pull),
        }
    }
}

impl JsReadShape {
    fn read(self, mode: Mode) -> Setup {
        let clients = self.shared.clients;
        // The readers need no subject; the flag form's check wants a valid one.
        let mut setup = self.shared.setup(mode, "bench".to_string(), (0, clients));
        setup.stream = self.stream;
        setup.batch = self.batch;
        setup
    }
}
