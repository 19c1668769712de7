//! `jetlog server check …`: natscli's health checks for monitoring systems. Each check prints
//! one Nagios line (`OK Name OK:… | perfdata`; `--format json` for a JSON result, `text` for
//! people) and exits 0, 1, 2 or 3 for OK, WARNING, CRITICAL and UNKNOWN, as natscli's do.
//! Thresholds that are not given are not checked.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use async_nats::Client;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use super::connect::{self, CommonArgs};
use crate::cli::parse_duration;

/// The checks under `jetlog server check`.
#[derive(Debug, Subcommand)]
pub enum CheckKind {
    /// Connecting, the server's round trip, and a message through it.
    #[command(visible_alias = "conn")]
    Connection(ConnectionCheck),
    /// A stream: its messages and subjects, and how far its mirror or sources lag.
    Stream(StreamCheck),
    /// A consumer: outstanding acks, waiting pulls, unprocessed messages, redeliveries, and
    /// how long since it last delivered or was acknowledged.
    Consumer(ConsumerCheck),
    /// The account's JetStream use against its limits.
    #[command(visible_alias = "js")]
    Jetstream(JetStreamCheck),
    /// The JetStream meta group: its leader, how many servers, and how far behind and how
    /// long unheard each other one is (over the system account).
    #[command(visible_alias = "raft")]
    Meta(MetaCheck),
    /// A key-value bucket: its values, and optionally a key that must hold one.
    Kv(KvCheck),
    /// One server, by name, over the system account: its uptime, CPU, memory, connections
    /// and subscriptions, and whether it requires authentication and TLS and runs JetStream.
    Server(ServerCheck),
    /// A credentials file: the user JWT in it, and how long until it expires.
    Credential(CredentialCheck),
    /// A stream's newest message (on a subject): its age, and its body against a regular
    /// expression.
    Message(super::server_check_msg::MessageCheck),
    /// A request-reply service: whether it answers, how fast, and what with.
    #[command(visible_alias = "req")]
    Request(super::server_check_msg::RequestCheck),
}

#[derive(Debug, Args)]
pub struct CredentialCheck {
    /// The file holding the credential.
    #[arg(long)]
    pub(super) credential: std::path::PathBuf,
    /// Warning when it expires sooner than this.
    #[arg(long, value_parser = parse_duration)]
    pub(super) validity_warn: Option<Duration>,
    /// Critical when it expires sooner than this.
    #[arg(long, value_parser = parse_duration)]
    pub(super) validity_critical: Option<Duration>,
    /// Critical when it never expires (`--require-expiry false` to allow that).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(super) require_expiry: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value = "nagios")]
    pub(super) format: Format,
}

#[derive(Debug, Args)]
pub struct ServerCheck {
    /// The server to check (the one whose name contains this answers).
    #[arg(long)]
    pub(super) name: String,
    /// Warning at this CPU use, in percent.
    #[arg(long, default_value_t = 0)]
    pub(super) cpu_warn: u64,
    #[arg(long, default_value_t = 0)]
    pub(super) cpu_critical: u64,
    /// Warning at this memory use, in bytes.
    #[arg(long, default_value_t = 0)]
    pub(super) mem_warn: u64,
    #[arg(long, default_value_t = 0)]
    pub(super) mem_critical: u64,
    /// Warning at this many connections (at or below it when it is above the critical one).
    #[arg(long, default_value_t = 0)]
    pub(super) conn_warn: u64,
    #[arg(long, default_value_t = 0)]
    pub(super) conn_critical: u64,
    /// Warning at this many subscriptions (at or below it when it is above the critical one).
    #[arg(long, default_value_t = 0)]
    pub(super) subs_warn: u64,
    #[arg(long, default_value_t = 0)]
    pub(super) subs_critical: u64,
    /// Warning when the server has been up for this long or less.
    #[arg(long, value_parser = parse_duration)]
    pub(super) uptime_warn: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    pub(super) uptime_critical: Option<Duration>,
    /// Critical unless the server requires authentication.
    #[arg(long)]
    pub(super) auth_required: bool,
    /// Critical unless the server requires TLS.
    #[arg(long)]
    pub(super) tls_required: bool,
    /// Critical unless the server runs JetStream.
    #[arg(long)]
    pub(super) js_required: bool,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct KvCheck {
    /// The bucket to check.
    #[arg(long)]
    pub(super) bucket: String,
    /// Critical unless this key holds a value (not a delete or purge marker).
    #[arg(long)]
    pub(super) key: Option<String>,
    /// Warning at this many values (at or below it when it is above the critical one); -1
    /// for none.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub(super) values_warn: i64,
    /// Critical at this many values (at or below it when it is below the warning one); -1
    /// for none.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub(super) values_critical: i64,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct MetaCheck {
    /// How many servers the meta group must have.
    #[arg(long, value_name = "SERVERS")]
    pub(super) expect: usize,
    /// Critical when a server is more than this many operations behind the leader.
    #[arg(long, value_name = "OPS")]
    pub(super) lag_critical: u64,
    /// Critical when a server last answered the leader longer ago than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(super) seen_critical: Duration,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct CheckOutput {
    /// How to print the result.
    #[arg(long, value_enum, default_value = "nagios")]
    pub(super) format: Format,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Format {
    Nagios,
    Json,
    Text,
}

#[derive(Debug, Args)]
pub struct ConnectionCheck {
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    connect_warn: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    connect_critical: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    rtt_warn: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    rtt_critical: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    req_warn: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    req_critical: Duration,
    #[command(flatten)]
    out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct StreamCheck {
    /// The stream to check.
    #[arg(long)]
    pub(super) stream: String,
    /// Critical when the mirror or any source is this many messages behind.
    #[arg(long, value_name = "MSGS")]
    pub(super) lag_critical: Option<u64>,
    /// Critical when the mirror or any source was last heard from longer ago than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(super) seen_critical: Option<Duration>,
    /// Critical unless the stream's group has this many peers (its leader included).
    #[arg(long, value_name = "SERVERS")]
    pub(super) peer_expect: Option<usize>,
    /// Critical when a peer is more than this many operations behind its leader.
    #[arg(long, value_name = "OPS")]
    pub(super) peer_lag_critical: Option<u64>,
    /// Critical when a peer last answered its leader longer ago than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(super) peer_seen_critical: Option<Duration>,
    /// Critical with fewer sources than this.
    #[arg(long, value_name = "SOURCES")]
    pub(super) min_sources: Option<usize>,
    /// Critical with more sources than this.
    #[arg(long, value_name = "SOURCES")]
    pub(super) max_sources: Option<usize>,
    /// Warning with this many messages or fewer.
    #[arg(long, value_name = "MSGS")]
    pub(super) msgs_warn: Option<u64>,
    /// Critical with this many messages or fewer.
    #[arg(long, value_name = "MSGS")]
    pub(super) msgs_critical: Option<u64>,
    /// Warning at this many subjects (at or below it when it is above the critical one).
    #[arg(long, value_name = "SUBJECTS")]
    pub(super) subjects_warn: Option<u64>,
    /// Critical at this many subjects (at or below it when it is below the warning one).
    #[arg(long, value_name = "SUBJECTS")]
    pub(super) subjects_critical: Option<u64>,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct ConsumerCheck {
    #[arg(long)]
    pub(super) stream: String,
    #[arg(long)]
    pub(super) consumer: String,
    /// Critical with more acknowledgements outstanding than this.
    #[arg(long)]
    pub(super) outstanding_ack_critical: Option<u64>,
    /// Critical with more waiting pull requests than this.
    #[arg(long)]
    pub(super) waiting_critical: Option<u64>,
    /// Critical with more unprocessed messages than this.
    #[arg(long)]
    pub(super) unprocessed_critical: Option<u64>,
    /// Critical with more redelivered messages than this.
    #[arg(long)]
    pub(super) redelivery_critical: Option<u64>,
    /// Critical when nothing was delivered for this long.
    #[arg(long, value_parser = parse_duration)]
    pub(super) last_delivery_critical: Option<Duration>,
    /// Critical when nothing was acknowledged for this long.
    #[arg(long, value_parser = parse_duration)]
    pub(super) last_ack_critical: Option<Duration>,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct JetStreamCheck {
    /// Warning at this percentage of the memory limit.
    #[arg(long, default_value_t = 75)]
    pub(super) mem_warn: u64,
    #[arg(long, default_value_t = 90)]
    pub(super) mem_critical: u64,
    /// Warning at this percentage of the file storage limit.
    #[arg(long, default_value_t = 75)]
    pub(super) store_warn: u64,
    #[arg(long, default_value_t = 90)]
    pub(super) store_critical: u64,
    /// Warning at this percentage of the streams limit.
    #[arg(long)]
    pub(super) streams_warn: Option<u64>,
    #[arg(long)]
    pub(super) streams_critical: Option<u64>,
    /// Warning at this percentage of the consumers limit.
    #[arg(long)]
    pub(super) consumers_warn: Option<u64>,
    #[arg(long)]
    pub(super) consumers_critical: Option<u64>,
    #[command(flatten)]
    pub(super) out: CheckOutput,
}

/// One measured value, printed as Nagios performance data.
#[derive(Debug, Serialize)]
struct Perf {
    name: &'static str,
    value: f64,
    #[serde(rename = "warning")]
    warn: f64,
    #[serde(rename = "critical")]
    crit: f64,
    #[serde(skip_serializing_if = "str::is_empty")]
    unit: &'static str,
}

impl Perf {
    fn nagios(&self) -> String {
        let number = |v: f64| match self.unit {
            "s" => format!("{v:.4}"),
            _ => format!("{v:.0}"),
        };
        let mut out = format!("{}={}{}", self.name, number(self.value), self.unit);
        if self.warn != 0.0 || self.crit != 0.0 {
            out.push(';');
            if self.warn != 0.0 {
                out.push_str(&number(self.warn));
            }
            if self.crit != 0.0 {
                out.push(';');
                out.push_str(&number(self.crit));
            }
        }
        out
    }
}

/// A check's findings.
#[derive(Debug, Serialize)]
pub(super) struct Outcome {
    #[serde(rename = "check_name")]
    name: std::borrow::Cow<'static, str>,
    #[serde(rename = "check_suite")]
    suite: &'static str,
    status: &'static str,
    #[serde(rename = "critical", skip_serializing_if = "Vec::is_empty")]
    criticals: Vec<String>,
    #[serde(rename = "warning", skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(rename = "ok", skip_serializing_if = "Vec::is_empty")]
    oks: Vec<String>,
    perf_data: Vec<Perf>,
}

impl Outcome {
    pub(super) fn new(name: &'static str, suite: &'static str) -> Self {
        Self::new_named(std::borrow::Cow::Borrowed(name), suite)
    }

    /// [`Outcome::new`] for a check named by what it checks (a bucket).
    pub(super) fn new_named(
        name: impl Into<std::borrow::Cow<'static, str>>,
        suite: &'static str,
    ) -> Self {
        Self {
            name: name.into(),
            suite,
            status: "UNKNOWN",
            criticals: Vec::new(),
            warnings: Vec::new(),
            oks: Vec::new(),
            perf_data: Vec::new(),
        }
    }

    /// Whether nothing has been found yet.
    pub(super) fn is_quiet(&self) -> bool {
        self.criticals.is_empty() && self.warnings.is_empty() && self.oks.is_empty()
    }

    pub(super) fn critical(&mut self, text: String) {
        self.criticals.push(text);
    }

    pub(super) fn warn(&mut self, text: String) {
        self.warnings.push(text);
    }

    pub(super) fn ok(&mut self, text: String) {
        self.oks.push(text);
    }

    pub(super) fn perf(
        &mut self,
        name: &'static str,
        value: f64,
        warn: f64,
        crit: f64,
        unit: &'static str,
    ) {
        self.perf_data.push(Perf {
            name,
            value,
            warn,
            crit,
            unit,
        });
    }

    /// Settles the status, prints the result, and exits with the Nagios code.
    pub(super) fn finish(mut self, format: Format) -> Result<()> {
        let code = match (self.criticals.is_empty(), self.warnings.is_empty()) {
            (false, _) => 2,
            (true, false) => 1,
            (true, true) if self.oks.is_empty() => 3,
            (true, true) => 0,
        };
        self.status = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code];
        let text = match format {
            Format::Json => serde_json::to_string_pretty(&self)?,
            Format::Nagios => self.nagios(),
            Format::Text => self.human(),
        };
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{text}")?;
        stdout.flush()?;
        if code != 0 {
            std::process::exit(code as i32);
        }
        Ok(())
    }

    fn nagios(&self) -> String {
        let mut parts = vec![self.name.to_string()];
        parts.extend(self.criticals.iter().map(|c| format!("Crit:{c}")));
        parts.extend(self.warnings.iter().map(|w| format!("Warn:{w}")));
        parts.extend(self.oks.iter().map(|o| format!("OK:{o}")));
        let line = format!("{} {}", self.status, parts.join(" "));
        match self.perf_data.is_empty() {
            true => line,
            false => {
                let perf: Vec<String> = self.perf_data.iter().map(Perf::nagios).collect();
                format!("{line} | {}", perf.join(" "))
            }
        }
    }

    fn human(&self) -> String {
        let mut out = format!("{}: {}\n", self.name, self.status);
        let rows = self.criticals.iter().map(|c| ("Critical", c));
        let rows = rows.chain(self.warnings.iter().map(|w| ("Warning", w)));
        for (status, text) in rows.chain(self.oks.iter().map(|o| ("OK", o))) {
            out.push_str(&format!("  {status:<8} {text}\n"));
        }
        out.trim_end().to_string()
    }
}

pub async fn run(kind: CheckKind) -> Result<()> {
    match kind {
        CheckKind::Connection(args) => connection(args).await,
        CheckKind::Stream(args) => super::server_check_js::stream(args).await,
        CheckKind::Consumer(args) => super::server_check_js::consumer(args).await,
        CheckKind::Jetstream(args) => super::server_check_js::jetstream(args).await,
        CheckKind::Meta(args) => super::server_check_js::meta(args).await,
        CheckKind::Kv(args) => super::server_check_kv::kv(args).await,
        CheckKind::Server(args) => super::server_check_server::server(args).await,
        CheckKind::Credential(args) => super::server_check_server::credential(args),
        CheckKind::Message(args) => super::server_check_msg::message(args).await,
        CheckKind::Request(args) => super::server_check_msg::request(args).await,
    }
}

/// Records a measured duration as perf data `name`, and warns or goes critical past its
/// thresholds.
fn timed(
    outcome: &mut Outcome,
    name: &'static str,
    took: Duration,
    (warn, crit): (Duration, Duration),
    what: &str,
) {
    outcome.perf(
        name,
        took.as_secs_f64(),
        warn.as_secs_f64(),
        crit.as_secs_f64(),
        "s",
    );
    if took >= crit {
        outcome.critical(format!("{what} exceeded {}s", crit.as_secs_f64()));
    } else if took >= warn {
        outcome.warn(format!("{what} exceeded {}s", warn.as_secs_f64()));
    } else {
        outcome.ok(format!("{what} {:.2}ms", took.as_secs_f64() * 1000.0));
    }
}

/// A connection for a check; a failure to connect is the check's critical finding.
pub(super) async fn connected(outcome: &mut Outcome, common: &CommonArgs) -> Option<Client> {
    match connect::connect(common).await {
        Ok(client) => Some(client),
        Err(e) => {
            outcome.critical(format!("connection failed: {e:#}"));
            None
        }
    }
}

async fn connection(args: ConnectionCheck) -> Result<()> {
    let mut outcome = Outcome::new("Connection", "connections");
    let started = Instant::now();
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(args.out.format);
    };
    let connect = (args.connect_warn, args.connect_critical);
    timed(
        &mut outcome,
        "connect_time",
        started.elapsed(),
        connect,
        "connect time",
    );
    // A flush is a PING answered by a PONG: the server's round trip.
    let started = Instant::now();
    let flushed = tokio::time::timeout(args.out.common.timeout, client.flush()).await;
    let rtt = started.elapsed();
    if !matches!(flushed, Ok(Ok(()))) {
        outcome.critical("rtt failed: no PONG".to_string());
        return outcome.finish(args.out.format);
    }
    let thresholds = (args.rtt_warn, args.rtt_critical);
    timed(&mut outcome, "rtt", rtt, thresholds, "rtt time");
    // A message to an inbox of its own, through the server and back.
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await?;
    let body: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let started = Instant::now();
    client.publish(inbox, body.clone().into()).await?;
    let got = tokio::time::timeout(args.out.common.timeout, sub.next()).await;
    let took = started.elapsed();
    match got {
        Ok(Some(msg)) if msg.payload == body.as_bytes() => {
            let thresholds = (args.req_warn, args.req_critical);
            timed(&mut outcome, "request_time", took, thresholds, "round trip");
        }
        Ok(Some(_)) => outcome.critical("did not receive the message sent".to_string()),
        _ => outcome.critical("did not receive the message sent in time".to_string()),
    }
    outcome.finish(args.out.format)
}

/// The answer to a JetStream API request, or why there is none.
pub(super) async fn api(client: &async_nats::Client, subject: &str) -> Result<Value, String> {
    api_request(client, subject.to_string(), json!({}))
        .await
        .map_err(|error| {
            error["description"]
                .as_str()
                .unwrap_or("the server refused")
                .to_string()
        })
}

/// The answer to a JetStream API request with `body`; an error is the answer's error
/// object (`err_code` and `description`), or one with only a `description` when there was
/// no answer.
pub(super) async fn api_request(
    client: &async_nats::Client,
    subject: String,
    body: Value,
) -> Result<Value, Value> {
    let failed = |e: String| json!({ "description": e });
    let reply = client
        .request(subject, body.to_string().into())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let answer: Value =
        serde_json::from_slice(&reply.payload).map_err(|e| failed(e.to_string()))?;
    match answer.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(answer),
    }
}
