//! `jetlog server check message` and `server check request`: the two checks that look at what
//! applications put on the wire, a stream's newest message and a service's answer, judged as
//! natscli judges them (jsm.go's `monitor` package), with Go-compatible regular expressions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use async_nats::HeaderMap;
use base64::Engine;
use clap::Args;
use regex::bytes::Regex;
use serde_json::json;

use super::server_check::{api_request, connected, CheckOutput, Outcome};
use super::stream_features::parse_pair;
use super::units::format_duration;
use crate::cli::parse_duration;
use crate::jetstream::time::parse_rfc3339;

/// The API's error code for "no message found".
const NO_MESSAGE_FOUND: u64 = 10037;

#[derive(Debug, Args)]
pub struct MessageCheck {
    /// The stream holding the message.
    #[arg(long)]
    stream: String,
    /// The subject whose newest message is checked; a wildcard takes the newest of all the
    /// subjects it matches.
    #[arg(long, default_value = ">")]
    subject: String,
    /// Warning when the message is older than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    age_warn: Option<Duration>,
    /// Critical when the message is older than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    age_critical: Option<Duration>,
    /// A regular expression the body must match (the default, `.`, wants a non-empty body).
    #[arg(long, default_value = ".", value_parser = parse_regex)]
    content: Regex,
    /// Read the body as a Unix time in seconds, and take the age from it instead of from
    /// when the stream stored the message.
    #[arg(long)]
    body_timestamp: bool,
    #[command(flatten)]
    out: CheckOutput,
}

#[derive(Debug, Args)]
pub struct RequestCheck {
    /// The subject to send the request to.
    #[arg(long)]
    subject: String,
    /// The request's body.
    #[arg(long, default_value = "")]
    payload: String,
    /// A header to send, as KEY=VALUE (repeat the flag for more).
    #[arg(long = "headers", value_parser = parse_pair, value_name = "KEY=VALUE")]
    headers: Vec<(String, String)>,
    /// A regular expression the response's body must match.
    #[arg(long, value_parser = parse_regex, value_name = "REGEX")]
    match_payload: Option<Regex>,
    /// A header the response must carry with this value, as KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_pair, value_name = "KEY=VALUE")]
    match_headers: Vec<(String, String)>,
    /// Warning when the response takes longer than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    response_warn: Option<Duration>,
    /// Critical when the response takes longer than this.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    response_critical: Option<Duration>,
    #[command(flatten)]
    out: CheckOutput,
}

/// A regular expression of Go's syntax (RE2), which the `regex` crate shares. The crate's
/// error draws a caret under the pattern over several lines; its last line says what is wrong.
fn parse_regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| {
        let text = e.to_string();
        let why = text
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        format!("invalid regular expression: {why}")
    })
}

fn seconds(limit: Option<Duration>) -> f64 {
    limit.map_or(0.0, |d| d.as_secs_f64())
}

/// Rounds to whole milliseconds, as the checks print durations.
fn to_millis(d: Duration) -> Duration {
    Duration::from_millis((d.as_nanos() as f64 / 1e6).round() as u64)
}

/// Critical past `crit`, else a warning past `warn`, with `what` and the duration.
fn judge_duration(
    outcome: &mut Outcome,
    took: Duration,
    (warn, crit): (Option<Duration>, Option<Duration>),
    what: impl Fn(String) -> String,
) {
    let over = |limit: Option<Duration>| limit.is_some_and(|l| !l.is_zero() && took > l);
    let text = what(format_duration(to_millis(took)));
    if over(crit) {
        outcome.critical(text);
    } else if over(warn) {
        outcome.warn(text);
    }
}

pub(super) async fn message(args: MessageCheck) -> Result<()> {
    let mut outcome = Outcome::new("Stream Message", "message");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let subject = format!("$JS.API.STREAM.MSG.GET.{}", args.stream);
    let found = api_request(&client, subject, json!({ "last_by_subj": args.subject })).await;
    let message = match found {
        Ok(answer) => answer["message"].clone(),
        Err(e) if e["err_code"] == NO_MESSAGE_FOUND => {
            outcome.critical("no message found".to_string());
            return outcome.finish(format);
        }
        Err(e) => {
            let why = e["description"].as_str().unwrap_or("the server refused");
            outcome.critical(format!("msg load failed: {why}"));
            return outcome.finish(format);
        }
    };
    let body = message["data"]
        .as_str()
        .map(|data| base64::engine::general_purpose::STANDARD.decode(data))
        .transpose()?
        .unwrap_or_default();
    let stored_at = message["time"].as_str().map(parse_rfc3339);
    let at_nanos = if args.body_timestamp {
        let text = String::from_utf8_lossy(&body);
        match text.trim().parse::<i64>() {
            Ok(secs) => secs.saturating_mul(1_000_000_000),
            Err(e) => {
                outcome.critical(format!("invalid timestamp body: {e}"));
                return outcome.finish(format);
            }
        }
    } else {
        match stored_at {
            Some(Ok(Some(nanos))) => nanos,
            _ => anyhow::bail!("the server's message has no valid time: {message}"),
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let age = Duration::from_nanos(now.saturating_sub(at_nanos).max(0) as u64);
    let limits = (args.age_warn, args.age_critical);
    let (warn, crit) = (seconds(limits.0), seconds(limits.1));
    outcome.perf("age", to_millis(age).as_secs_f64(), warn, crit, "s");
    outcome.perf("size", body.len() as f64, 0.0, 0.0, "B");
    judge_duration(&mut outcome, age, limits, |d| format!("{d} old"));
    if !args.content.is_match(&body) {
        let pattern = args.content.as_str();
        outcome.critical(format!("does not match regex: {pattern}"));
    }
    if outcome.is_quiet() {
        outcome.ok(format!(
            "Valid message on {} > {}",
            args.stream, args.subject
        ));
    }
    outcome.finish(format)
}

pub(super) async fn request(args: RequestCheck) -> Result<()> {
    let mut outcome = Outcome::new_named(args.subject.clone(), "request");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let mut headers = HeaderMap::new();
    for (key, value) in &args.headers {
        headers.append(key.as_str(), value.as_str());
    }
    let request = async_nats::Request::new()
        .payload(args.payload.clone().into())
        .headers(headers)
        .timeout(Some(args.out.common.timeout));
    let started = Instant::now();
    let answer = client.send_request(args.subject.clone(), request).await;
    let took = started.elapsed();
    let limits = (args.response_warn, args.response_critical);
    let (warn, crit) = (seconds(limits.0), seconds(limits.1));
    outcome.perf("time", to_millis(took).as_secs_f64(), warn, crit, "s");
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            outcome.critical(format!("could not send request: {e}"));
            return outcome.finish(format);
        }
    };
    if let Some(pattern) = &args.match_payload {
        if !pattern.is_match(&response.payload) {
            outcome.critical("response does not match regexp".to_string());
        }
    }
    // natscli takes the last of a repeated key; so does this map.
    let wanted: BTreeMap<&str, &str> = args
        .match_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (key, value) in wanted {
        let got = response
            .headers
            .as_ref()
            .and_then(|h| h.get(key))
            .map_or("", |v| v.as_str());
        if got != value {
            outcome.critical(format!("invalid header {key:?} = {got:?}"));
        }
    }
    judge_duration(&mut outcome, took, limits, |d| format!("response took {d}"));
    if outcome.is_quiet() {
        outcome.ok("Valid response".to_string());
    }
    outcome.finish(format)
}
