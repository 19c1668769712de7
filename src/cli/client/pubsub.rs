//! Core NATS commands: `pub` (optionally through JetStream), `sub`, `req` and `reply`.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::client::RequestErrorKind;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{Client, HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use serde_json::json;

use super::api::describe;
use super::connect::{self, CommonArgs};
use super::output::{self, MessageView};
use super::units::format_duration;
use crate::protocol::subject::{is_valid_literal_subject, is_valid_queue_name, is_valid_subject};

/// JetStream publishes in flight before `pub --js` waits for the oldest ack: enough to keep
/// the server's group commit fed, small enough that acks print soon after their publish.
const JS_PUBLISH_WINDOW: usize = 256;

#[derive(Debug, Args)]
pub struct PubArgs {
    /// Subject to publish to (no wildcards).
    subject: String,
    /// Message body; read from stdin when omitted and stdin is not a terminal.
    body: Option<String>,
    /// How many times to publish the message.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// A header as NAME:VALUE; may be repeated.
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Publish through JetStream: wait for each PubAck and print its stream and sequence.
    #[arg(long = "js", visible_alias = "jetstream")]
    js: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct SubArgs {
    /// Subject to subscribe to; wildcards `*` and `>` are allowed.
    #[arg(required_unless_present = "stream")]
    subject: Option<String>,
    /// Join this queue group: each message goes to one member of the group.
    #[arg(long)]
    queue: Option<String>,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    stream: super::replay::StreamSubArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ReqArgs {
    /// Subject to send the request to.
    subject: String,
    /// Request body.
    #[arg(default_value = "")]
    body: String,
    /// A header as NAME:VALUE; may be repeated.
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// Subject to answer requests on; wildcards are allowed.
    subject: String,
    /// The body of every reply.
    #[arg(default_value = "")]
    body: String,
    /// Join this queue group, so several responders share the load.
    #[arg(long)]
    queue: Option<String>,
    /// Exit after answering this many requests (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Checks a subject a message is sent to, before anything is sent.
pub fn check_publish_subject(subject: &str) -> Result<()> {
    if !is_valid_literal_subject(subject) {
        bail!("invalid subject {subject:?}: tokens must be non-empty, without spaces or wildcards");
    }
    Ok(())
}

/// Checks a subject filter (wildcards allowed).
pub fn check_filter_subject(subject: &str) -> Result<()> {
    if !is_valid_subject(subject) {
        bail!("invalid subject {subject:?}: tokens must be non-empty, without spaces, and `>` only last");
    }
    Ok(())
}

/// Parses `-H NAME:VALUE` flags into a header map, refusing what the wire cannot carry.
pub fn parse_headers(flags: &[String]) -> Result<Option<HeaderMap>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut headers = HeaderMap::new();
    for flag in flags {
        let (name, value) = flag
            .split_once(':')
            .ok_or_else(|| anyhow!("invalid header {flag:?}: expected NAME:VALUE"))?;
        let name = HeaderName::from_str(name.trim())
            .map_err(|_| anyhow!("invalid header name in {flag:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| anyhow!("invalid header value in {flag:?}"))?;
        headers.append(name, value);
    }
    Ok(Some(headers))
}

/// The body of `pub`: the argument, or stdin when piped, bounded by the server's max_payload.
pub fn read_body(body: Option<String>, max_payload_bytes: usize) -> Result<Bytes> {
    if let Some(body) = body {
        return Ok(Bytes::from(body));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Bytes::new());
    }
    let mut buffer = Vec::new();
    let limit = u64::try_from(max_payload_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    stdin
        .lock()
        .take(limit)
        .read_to_end(&mut buffer)
        .context("reading the body from stdin")?;
    if buffer.len() > max_payload_bytes {
        bail!(
            "the body on stdin is larger than the server's max_payload ({max_payload_bytes} bytes)"
        );
    }
    Ok(Bytes::from(buffer))
}

/// `jetlog pub`.
pub async fn publish(args: PubArgs) -> Result<()> {
    check_publish_subject(&args.subject)?;
    let headers = parse_headers(&args.headers)?;
    let client = connect::connect(&args.common).await?;
    let max_payload = client.server_info().max_payload;
    let body = read_body(args.body, max_payload)?;
    if body.len() > max_payload {
        bail!(
            "the body ({} bytes) is larger than the server's max_payload ({max_payload} bytes)",
            body.len()
        );
    }
    let batch = headers
        .as_ref()
        .and_then(|h| h.get("Nats-Batch-Id"))
        .map(|v| v.to_string())
        .filter(|id| !id.is_empty());
    if let (true, Some(batch)) = (args.js, batch) {
        if args.count != 1 {
            bail!(
                "--count repeats a message; a batch message has one sequence (Nats-Batch-Sequence)"
            );
        }
        return publish_batch_message(&client, &args.subject, headers, body, &batch, &args.common)
            .await;
    }
    if args.js {
        return publish_js(
            &client,
            &args.subject,
            headers,
            body,
            args.count,
            &args.common,
        )
        .await;
    }
    for _ in 0..args.count {
        let sent = match &headers {
            Some(h) => {
                client
                    .publish_with_headers(args.subject.clone(), h.clone(), body.clone())
                    .await
            }
            None => client.publish(args.subject.clone(), body.clone()).await,
        };
        sent.map_err(|err| anyhow!("publishing to {}: {err}", args.subject))?;
    }
    connect::flush(&client, &args.common).await?;
    if args.common.json {
        output::json_line(
            &json!({"subject": args.subject, "count": args.count, "bytes": body.len()}),
        )
    } else {
        let plural = if args.count == 1 { "" } else { "s" };
        output::line(format!(
            "published {} message{plural} ({} bytes each) to {}",
            args.count,
            body.len(),
            args.subject
        ))
    }
}

/// `pub --js`: publishes with a bounded window of unacknowledged messages and prints each
/// PubAck in publish order.
async fn publish_js(
    client: &Client,
    subject: &str,
    headers: Option<HeaderMap>,
    body: Bytes,
    count: u64,
    common: &CommonArgs,
) -> Result<()> {
    let js = connect::jetstream(client.clone(), common);
    let mut in_flight = VecDeque::with_capacity(JS_PUBLISH_WINDOW);
    for _ in 0..count {
        let future = match &headers {
            Some(h) => {
                js.publish_with_headers(subject.to_string(), h.clone(), body.clone())
                    .await
            }
            None => js.publish(subject.to_string(), body.clone()).await,
        }
        .map_err(|err| anyhow!("publishing to {subject}: {err}"))?;
        in_flight.push_back(future);
        if in_flight.len() >= JS_PUBLISH_WINDOW {
            if let Some(oldest) = in_flight.pop_front() {
                print_ack(oldest.await, subject, common)?;
            }
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        print_ack(oldest.await, subject, common)?;
    }
    Ok(())
}

/// `pub --js` with `Nats-Batch-Id` (ADR-50): a staged message gets an empty reply, the
/// commit the batch's ack (`batch`, `count`); both are shown as what they are.
async fn publish_batch_message(
    client: &Client,
    subject: &str,
    headers: Option<HeaderMap>,
    body: Bytes,
    batch: &str,
    common: &CommonArgs,
) -> Result<()> {
    let headers = headers.unwrap_or_default();
    let sequence = headers
        .get("Nats-Batch-Sequence")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let reply = tokio::time::timeout(
        common.timeout,
        client.request_with_headers(subject.to_string(), headers, body),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "no reply for {subject} within {}",
            format_duration(common.timeout)
        )
    })?
    .map_err(|err| match err.kind() {
        RequestErrorKind::NoResponders => anyhow!("no stream captures subject {subject}"),
        _ => anyhow!("publish to {subject} failed: {err}"),
    })?;
    if reply.payload.is_empty() {
        return match common.json {
            true => output::json_line(&json!({"batch": batch, "staged": sequence})),
            false => output::line(format!("staged as message {sequence} of batch {batch}")),
        };
    }
    let ack: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|err| anyhow!("unexpected reply to {subject}: {err}"))?;
    if let Some(error) = ack.get("error") {
        let error: async_nats::jetstream::Error = serde_json::from_value(error.clone())
            .map_err(|err| anyhow!("unexpected error reply to {subject}: {err}"))?;
        bail!("publish to {subject} refused: {}", describe(&error));
    }
    if common.json {
        return output::json_line(&ack);
    }
    output::line(format!(
        "batch {batch} committed: {} messages stored in {}, the last as seq {}",
        ack["count"],
        ack["stream"].as_str().unwrap_or("?"),
        ack["seq"]
    ))
}

fn print_ack(
    ack: Result<
        async_nats::jetstream::publish::PublishAck,
        async_nats::jetstream::context::PublishError,
    >,
    subject: &str,
    common: &CommonArgs,
) -> Result<()> {
    let ack = ack.map_err(|err| match err.kind() {
        PublishErrorKind::StreamNotFound => anyhow!("no stream captures subject {subject}"),
        PublishErrorKind::TimedOut => anyhow!(
            "no PubAck for {subject} within {}",
            format_duration(common.timeout)
        ),
        _ => match std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        {
            Some(api) => anyhow!("publish to {subject} refused: {}", describe(api)),
            None => anyhow!("publish to {subject} failed: {err}"),
        },
    })?;
    if common.json {
        let mut line = json!({
            "stream": ack.stream,
            "seq": ack.sequence,
            "duplicate": ack.duplicate,
        });
        if let Some(total) = &ack.value {
            line["val"] = total.clone().into();
        }
        output::json_line(&line)
    } else {
        let duplicate = if ack.duplicate { " (duplicate)" } else { "" };
        // A counter stream's PubAck carries the subject's new total.
        let total = ack
            .value
            .as_ref()
            .map(|v| format!(", total {v}"))
            .unwrap_or_default();
        output::line(format!(
            "stored in {} as seq {}{duplicate}{total}",
            ack.stream, ack.sequence
        ))
    }
}

/// `jetlog sub`.
pub async fn subscribe(args: SubArgs) -> Result<()> {
    if args.stream.wanted() {
        if args.queue.is_some() {
            bail!("--queue is for core NATS subscriptions; a stream is read by one consumer");
        }
        let subscribe = super::replay::subscribe_stream;
        return subscribe(args.subject, args.stream, args.count, args.common).await;
    }
    let Some(subject) = args.subject else {
        bail!("give a SUBJECT to subscribe to");
    };
    check_filter_subject(&subject)?;
    if let Some(queue) = &args.queue {
        if !is_valid_queue_name(queue) {
            bail!("invalid queue group {queue:?}");
        }
    }
    let client = connect::connect(&args.common).await?;
    let subscribed = match &args.queue {
        Some(queue) => client.queue_subscribe(subject.clone(), queue.clone()).await,
        None => client.subscribe(subject.clone()).await,
    };
    let mut subscriber = subscribed.map_err(|err| anyhow!("subscribing to {subject}: {err}"))?;
    // Once the server has the SUB, say so on stderr: scripts and tests wait for this line
    // before publishing.
    connect::flush(&client, &args.common).await?;
    eprintln!("listening on {subject}");
    let mut received = 0u64;
    while args.count.is_none_or(|count| received < count) {
        let Some(message) = subscriber.next().await else {
            bail!("the connection to the server was closed");
        };
        received += 1;
        MessageView {
            seq: Some(received),
            time_unix_nanos: None,
            subject: message.subject.as_str(),
            reply: message.reply.as_ref().map(|r| r.as_str()),
            headers: message.headers.as_ref(),
            payload: &message.payload,
        }
        .print(args.common.json)?;
    }
    Ok(())
}

/// `jetlog req`.
pub async fn request(args: ReqArgs) -> Result<()> {
    check_publish_subject(&args.subject)?;
    let headers = parse_headers(&args.headers)?;
    let client = connect::connect(&args.common).await?;
    let body = Bytes::from(args.body);
    let reply = match headers {
        Some(h) => {
            client
                .request_with_headers(args.subject.clone(), h, body)
                .await
        }
        None => client.request(args.subject.clone(), body).await,
    }
    .map_err(|err| match err.kind() {
        RequestErrorKind::NoResponders => anyhow!("no responders on {}", args.subject),
        RequestErrorKind::TimedOut => anyhow!(
            "no reply on {} within {}",
            args.subject,
            format_duration(args.common.timeout)
        ),
        _ => anyhow!("request on {} failed: {err}", args.subject),
    })?;
    if args.common.json {
        let view = MessageView {
            seq: None,
            time_unix_nanos: None,
            subject: reply.subject.as_str(),
            reply: None,
            headers: reply.headers.as_ref(),
            payload: &reply.payload,
        };
        return output::json_line(&view.record());
    }
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, &reply.payload)?;
    std::io::Write::write_all(&mut stdout, b"\n")?;
    Ok(())
}

/// `jetlog reply`: answers every request on the subject with the same body.
pub async fn reply(args: ReplyArgs) -> Result<()> {
    check_filter_subject(&args.subject)?;
    let subject = &args.subject;
    let client = connect::connect(&args.common).await?;
    let subscribed = match &args.queue {
        Some(queue) => client.queue_subscribe(subject.clone(), queue.clone()).await,
        None => client.subscribe(subject.clone()).await,
    };
    let mut subscriber = subscribed.map_err(|err| anyhow!("subscribing to {subject}: {err}"))?;
    connect::flush(&client, &args.common).await?;
    eprintln!("listening on {subject}");
    let body = Bytes::from(args.body);
    let mut answered = 0u64;
    while args.count.is_none_or(|count| answered < count) {
        let Some(message) = subscriber.next().await else {
            bail!("the connection to the server was closed");
        };
        let Some(reply_to) = message.reply.clone() else {
            // A plain publish has nobody to answer; show it and keep serving.
            eprintln!(
                "ignored a message on {} without a reply subject",
                message.subject
            );
            continue;
        };
        client
            .publish(reply_to, body.clone())
            .await
            .map_err(|err| anyhow!("replying: {err}"))?;
        answered += 1;
        MessageView {
            seq: Some(answered),
            time_unix_nanos: None,
            subject: message.subject.as_str(),
            reply: None,
            headers: message.headers.as_ref(),
            payload: &message.payload,
        }
        .print(args.common.json)?;
    }
    connect::flush(&client, &args.common).await
}
