//! `jetlog server ping|info|list|report`: natscli's operator commands, asked of every server through
//! the system account (`$SYS.REQ.SERVER.PING…`), so the connection must be a system-account
//! user's. Replies are gathered until `--expect` servers answered, or until no other answer
//! came for `GATHER_QUIET` after the last, within `--timeout`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use async_nats::Client;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

use super::connect::{self, CommonArgs};
use super::output;
use super::units::{format_duration, format_size};

/// How long after the last answer the gathering stops when `--expect` is not given: the
/// servers of one cluster answer within a few milliseconds of each other.
const GATHER_QUIET: Duration = Duration::from_millis(300);

/// The operator's commands under `jetlog server`.
#[derive(Debug, Subcommand)]
pub enum ServerOps {
    /// Ping every server through the system account: who answered, and how fast.
    Ping(OpsArgs),
    /// One server's settings and counters (its VARZ): the one named, or the first to answer.
    Info {
        /// A server name or id.
        #[arg(value_name = "SERVER")]
        name: Option<String>,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// A table of every server: version, connections, subscriptions, traffic, memory, CPU.
    List(OpsArgs),
    /// Every server's connections, or its JetStream usage, in one table.
    Report {
        #[command(subcommand)]
        what: ReportKind,
    },
    /// Health checks for monitoring systems (Nagios output and exit codes), as natscli's.
    Check {
        #[command(subcommand)]
        what: super::server_check::CheckKind,
    },
}

/// What `server report` shows.
#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Each client connection of each server: account, address, traffic, subscriptions.
    Connections(OpsArgs),
    /// Each server's JetStream: streams, consumers, messages, storage and API use.
    #[command(visible_alias = "js")]
    Jetstream(OpsArgs),
    /// Each account's activity across the servers: connections, subscriptions, traffic.
    #[command(visible_alias = "acct")]
    Accounts(AccountsArgs),
}

#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// Only this account.
    pub(super) account: Option<String>,
    /// What to sort by, largest first.
    #[arg(long, value_enum, default_value = "subs")]
    pub(super) sort: AccountSort,
    /// Show at most this many accounts.
    #[arg(long, default_value_t = 1000)]
    pub(super) top: usize,
    #[command(flatten)]
    pub(super) ops: OpsArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum AccountSort {
    InBytes,
    OutBytes,
    InMsgs,
    OutMsgs,
    Conns,
    Subs,
}

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Stop once this many servers have answered.
    #[arg(long, value_name = "N")]
    expect: Option<usize>,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// One server's answer and how long it took.
pub(super) struct Answer {
    pub(super) body: Value,
    rtt: Duration,
}

/// Sends `subject` to every server and gathers the answers.
async fn gather(client: &Client, subject: &str, args: &OpsArgs) -> Result<Vec<Answer>> {
    gather_with(client, subject, "", args).await
}

/// Sends `subject` with the request options `body` to every server and gathers the answers.
pub(super) async fn gather_with(
    client: &Client,
    subject: &str,
    body: &str,
    args: &OpsArgs,
) -> Result<Vec<Answer>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    let sent = Instant::now();
    client
        .publish_with_reply(subject.to_string(), inbox, body.to_string().into())
        .await?;
    client.flush().await?;
    let deadline = sent + args.common.timeout;
    let mut answers = Vec::new();
    while args.expect.is_none_or(|n| answers.len() < n) {
        let now = Instant::now();
        let mut wait = deadline.saturating_duration_since(now);
        if args.expect.is_none() && !answers.is_empty() {
            wait = wait.min(GATHER_QUIET);
        }
        let Ok(Some(msg)) = tokio::time::timeout(wait, replies.next()).await else {
            break;
        };
        if msg
            .status
            .is_some_and(|s| s == async_nats::StatusCode::NO_RESPONDERS)
        {
            bail!("no server answered {subject}: connect as a user of the system account");
        }
        let body: Value = serde_json::from_slice(&msg.payload)?;
        answers.push(Answer {
            body,
            rtt: sent.elapsed(),
        });
    }
    if answers.is_empty() {
        bail!(
            "no server answered {subject} within {}: connect as a user of the system account",
            format_duration(args.common.timeout)
        );
    }
    Ok(answers)
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Runs one of the operator's commands.
pub async fn run(ops: ServerOps) -> Result<()> {
    match ops {
        ServerOps::Ping(args) => ping(&args).await,
        ServerOps::Info { name, ops } => info(name.as_deref(), &ops).await,
        ServerOps::List(args) => list(&args).await,
        ServerOps::Report {
            what: ReportKind::Connections(args),
        } => report_connections(&args).await,
        ServerOps::Report {
            what: ReportKind::Jetstream(args),
        } => report_jetstream(&args).await,
        ServerOps::Report {
            what: ReportKind::Accounts(args),
        } => super::server_report_accounts::report(&args).await,
        ServerOps::Check { what } => super::server_check::run(what).await,
    }
}

/// The answering server's name, from a reply's envelope.
fn server_name(answer: &Answer) -> String {
    text(&answer.body["server"]["name"])
}

async fn report_connections(args: &OpsArgs) -> Result<()> {
    let client = connect::connect(&args.common).await?;
    let subject = "$SYS.REQ.SERVER.PING.CONNZ";
    let mut answers = gather_with(&client, subject, r#"{"auth":true}"#, args).await?;
    answers.sort_by_key(server_name);
    if args.common.json {
        let rows: Vec<&Value> = answers.iter().map(|a| &a.body["data"]).collect();
        return output::json_pretty(&rows);
    }
    let mut table = output::table(&[
        "Server", "CID", "Name", "Account", "Address", "Uptime", "Msgs in", "Msgs out", "Subs",
    ]);
    for a in &answers {
        let empty = Vec::new();
        let conns = a.body["data"]["connections"].as_array().unwrap_or(&empty);
        for c in conns {
            table.add_row(vec![
                server_name(a),
                c["cid"].to_string(),
                c["name"].as_str().unwrap_or("").to_string(),
                c["account"].as_str().unwrap_or("$G").to_string(),
                format!("{}:{}", text(&c["ip"]), c["port"]),
                text(&c["uptime"]),
                c["in_msgs"].to_string(),
                c["out_msgs"].to_string(),
                c["subscriptions"].to_string(),
            ]);
        }
    }
    output::print_table(&table)
}

async fn report_jetstream(args: &OpsArgs) -> Result<()> {
    let client = connect::connect(&args.common).await?;
    let subject = "$SYS.REQ.SERVER.PING.JSZ";
    let mut answers = gather_with(&client, subject, r#"{"accounts":true}"#, args).await?;
    answers.sort_by_key(server_name);
    if args.common.json {
        let rows: Vec<&Value> = answers.iter().map(|a| &a.body["data"]).collect();
        return output::json_pretty(&rows);
    }
    let mut table = output::table(&[
        "Server",
        "Streams",
        "Consumers",
        "Messages",
        "Bytes",
        "Memory",
        "Storage",
        "API requests",
        "API errors",
    ]);
    for a in &answers {
        let d = &a.body["data"];
        let size = |v: &Value| format_size(v.as_u64().unwrap_or(0));
        table.add_row(vec![
            server_name(a),
            d["streams"].to_string(),
            d["consumers"].to_string(),
            d["messages"].to_string(),
            size(&d["bytes"]),
            size(&d["memory"]),
            size(&d["storage"]),
            d["api"]["total"].to_string(),
            d["api"]["errors"].to_string(),
        ]);
    }
    output::print_table(&table)?;
    // In a cluster, the meta group as its leader sees it (only the leader lists replicas),
    // as natscli's "RAFT Meta Group Information".
    let leader = answers
        .iter()
        .map(|a| &a.body["data"]["meta_cluster"])
        .find(|m| m["replicas"].is_array());
    let Some(meta) = leader else {
        return Ok(());
    };
    output::line(format!(
        "Meta group of cluster {}: {} servers, term {}",
        text(&meta["name"]),
        meta["cluster_size"],
        meta["term"]
    ))?;
    let mut table = output::table(&["Name", "ID", "Leader", "Current", "Lag"]);
    table.add_row(vec![
        text(&meta["leader"]),
        text(&meta["peer"]),
        "yes".to_string(),
        "true".to_string(),
        "0".to_string(),
    ]);
    for replica in meta["replicas"].as_array().into_iter().flatten() {
        table.add_row(vec![
            text(&replica["name"]),
            text(&replica["peer"]),
            String::new(),
            replica["current"].to_string(),
            replica["lag"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    output::print_table(&table)
}

async fn ping(args: &OpsArgs) -> Result<()> {
    let client = connect::connect(&args.common).await?;
    let answers = gather(&client, "$SYS.REQ.SERVER.PING", args).await?;
    if args.common.json {
        let rows: Vec<Value> = answers
            .iter()
            .map(|a| json!({"server": a.body["server"], "rtt": a.rtt.as_nanos() as u64}))
            .collect();
        return output::json_pretty(&rows);
    }
    for a in &answers {
        let server = &a.body["server"];
        output::line(format!(
            "{} ({}) rtt {}",
            text(&server["name"]),
            text(&server["id"]),
            format_duration(a.rtt)
        ))?;
    }
    output::line(format!("{} servers answered", answers.len()))
}

async fn info(wanted: Option<&str>, args: &OpsArgs) -> Result<()> {
    let client = connect::connect(&args.common).await?;
    let answers = gather(&client, "$SYS.REQ.SERVER.PING.VARZ", args).await?;
    let named = |a: &&Answer| {
        let server = &a.body["server"];
        wanted.is_none_or(|w| server["name"] == w || server["id"] == w)
    };
    let Some(answer) = answers.iter().find(named) else {
        bail!("no server named {:?} answered", wanted.unwrap_or_default());
    };
    let data = &answer.body["data"];
    if args.common.json {
        return output::json_pretty(data);
    }
    let rows = vec![
        ("Name", text(&data["server_name"])),
        ("Id", text(&data["server_id"])),
        ("Version", text(&data["version"])),
        ("Host", format!("{}:{}", text(&data["host"]), data["port"])),
        ("Started", text(&data["start"])),
        ("Uptime", text(&data["uptime"])),
        ("Connections", data["connections"].to_string()),
        ("Subscriptions", data["subscriptions"].to_string()),
        ("Messages in", data["in_msgs"].to_string()),
        ("Messages out", data["out_msgs"].to_string()),
        (
            "Bytes in",
            format_size(data["in_bytes"].as_u64().unwrap_or(0)),
        ),
        (
            "Bytes out",
            format_size(data["out_bytes"].as_u64().unwrap_or(0)),
        ),
        ("Memory", format_size(data["mem"].as_u64().unwrap_or(0))),
        ("CPU", format!("{}%", data["cpu"])),
        (
            "Max payload",
            format_size(data["max_payload"].as_u64().unwrap_or(0)),
        ),
    ];
    output::print_table(&output::properties(rows))
}

async fn list(args: &OpsArgs) -> Result<()> {
    let client = connect::connect(&args.common).await?;
    let mut answers = gather(&client, "$SYS.REQ.SERVER.PING", args).await?;
    answers.sort_by_key(|a| text(&a.body["server"]["name"]));
    if args.common.json {
        let rows: Vec<&Value> = answers.iter().map(|a| &a.body).collect();
        return output::json_pretty(&rows);
    }
    let mut table = output::table(&[
        "Name", "Cluster", "Version", "Conns", "Subs", "Msgs in", "Msgs out", "Memory", "CPU",
        "RTT",
    ]);
    for a in &answers {
        let (server, stats) = (&a.body["server"], &a.body["statsz"]);
        table.add_row(vec![
            text(&server["name"]),
            server["cluster"].as_str().unwrap_or("").to_string(),
            text(&server["ver"]),
            stats["connections"].to_string(),
            stats["subscriptions"].to_string(),
            stats["received"]["msgs"].to_string(),
            stats["sent"]["msgs"].to_string(),
            format_size(stats["mem"].as_u64().unwrap_or(0)),
            format!("{}%", stats["cpu"]),
            format_duration(a.rtt),
        ]);
    }
    output::print_table(&table)
}
