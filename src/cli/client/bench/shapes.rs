//! natscli's `nats bench` subcommands (its shape since natscli 0.2): `pub`, `sub`, `service
//! request|serve`, `js pub sync|async`, `js ordered|consume|fetch`, each turned into the
//! [`Setup`] jetlog's flag form (`bench SUBJECT --pub N --js …`) makes too. natscli's flags
//! jetlog has no function for (`--multisubject`, `--throughput`, `--acks`, …) are refused by
//! clap as unknown, never accepted and ignored.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::js::PubKind;
use super::{Mode, Setup};
use crate::cli::client::units::parse_size;

/// natscli's default stream for JetStream benchmarks, and bucket for KV ones.
const DEFAULT_STREAM: &str = "benchstream";
const DEFAULT_BUCKET: &str = "benchbucket";

#[derive(Debug, Subcommand)]
pub enum BenchShape {
    /// Publish core NATS messages.
    Pub(CoreShape),
    /// Count core NATS messages others publish (each client waits for --msgs).
    Sub(CoreShape),
    /// Request/reply: `service request` sends, `service serve` answers until interrupted.
    #[command(subcommand)]
    Service(ServiceShape),
    /// JetStream: `js pub sync|async|atomic|fast`, `js ordered|consume|fetch`, `js get`.
    #[command(subcommand)]
    Js(JsShape),
    /// Key-value: `kv put` (creates the bucket when missing), `kv get`.
    Kv(KvShape),
}

#[derive(Debug, Args)]
pub struct KvShape {
    /// The bucket to use.
    #[arg(long, global = true, default_value = DEFAULT_BUCKET)]
    bucket: String,
    #[command(subcommand)]
    op: KvOp,
}

#[derive(Debug, Subcommand)]
pub enum KvOp {
    /// Put --msgs keys per client, each put acknowledged before the next.
    Put(ShapeArgs),
    /// Get the keys `kv put` stored, one at a time.
    Get(ShapeArgs),
}

#[derive(Debug, Subcommand)]
pub enum JsGetShape {
    /// One message at a time by sequence (STREAM.MSG.GET), from the stream's first.
    Sync(JsReadShape),
    /// Direct gets of --batch messages at a time (the stream needs allow_direct).
    Batch(JsGetBatchShape),
}

#[derive(Debug, Args)]
pub struct JsGetBatchShape {
    /// Only messages on these subjects.
    #[arg(long, default_value = ">")]
    filter: String,
    #[command(flatten)]
    read: JsReadShape,
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
    /// Read messages with gets: `js get sync`, `js get batch`.
    #[command(subcommand)]
    Get(JsGetShape),
}

#[derive(Debug, Subcommand)]
pub enum JsPubShape {
    /// Wait for each PubAck before the next publish, timing each.
    Sync(JsPubArgs),
    /// Keep up to --batch publishes in flight per client.
    Async(JsPubArgs),
    /// Atomic batches of --batch messages, each committed and acknowledged whole (the stream
    /// is created with allow_atomic when missing).
    #[command(visible_alias = "batch")]
    Atomic(JsPubArgs),
    /// One fast-ingest batch per client, paced by the server's flow acks of up to --batch
    /// messages (the stream is created with allow_batched when missing).
    Fast(JsPubArgs),
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
    /// Publishes in flight per client (`async`), messages per batch (`atomic`), or the most
    /// between flow acks (`fast`).
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
                let (kind, args) = match shape {
                    JsPubShape::Sync(args) => (PubKind::Sync, args),
                    JsPubShape::Async(args) => (PubKind::Async, args),
                    JsPubShape::Atomic(args) => (PubKind::Atomic, args),
                    JsPubShape::Fast(args) => (PubKind::Fast, args),
                };
                let clients = args.shared.clients;
                let mut setup = args
                    .shared
                    .setup(Mode::Js(kind), args.subject, (clients, 0));
                setup.stream = args.stream;
                setup.async_window = args.batch;
                setup
            }
            Self::Js(JsShape::Ordered(args)) => args.read(Mode::Ordered),
            Self::Js(JsShape::Consume(args) | JsShape::Fetch(args)) => args.read(Mode::Pull),
            Self::Js(JsShape::Get(JsGetShape::Sync(args))) => {
                args.read(Mode::Get { batched: false })
            }
            Self::Js(JsShape::Get(JsGetShape::Batch(args))) => {
                let mut setup = args.read.read(Mode::Get { batched: true });
                setup.subject = args.filter;
                setup
            }
            Self::Kv(KvShape { bucket, op }) => {
                let (put, shared) = match op {
                    KvOp::Put(shared) => (true, shared),
                    KvOp::Get(shared) => (false, shared),
                };
                let clients = shared.clients;
                let sides = if put { (clients, 0) } else { (0, clients) };
                let mut setup = shared.setup(Mode::Kv { put }, "bench".to_string(), sides);
                setup.stream = bucket;
                setup
            }
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
