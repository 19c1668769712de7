//! Timer precision (issue 15): a pull request's 408 should come when its `expires` ends, and
//! a push consumer's first message as soon as a client subscribes to its deliver subject.
//! jetlog used to act on both at its next 50 ms tick: 408s came 22-50 ms late and first
//! pushes 35-47 ms after the subscription; nats-server takes 1-2 ms.
//!
//! The test bounds the medians at 10 ms, loose enough for a loaded CI machine; the old
//! behaviour failed it in most runs. The measurement (ignored; figures in
//! docs/benchmarks.md) takes more samples and can be pointed at nats-server:
//! `JETLOG_TIMING_PORT=<port> cargo test --release --test timer_precision -- --ignored
//! --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::raw_js::{api, create_pull_consumer, create_stream, publish, raw_client_at};
use common::{RawClient, TestServer};
use serde_json::json;

/// What one round of requests measured.
struct Timings {
    /// How long after its `expires` each 408 arrived.
    expiry_late: Vec<Duration>,
    /// From a SUB on a new push consumer's deliver subject to its first message.
    first_push: Vec<Duration>,
    /// From the consumer create request to its first message, the subscriber being there.
    create_to_push: Vec<Duration>,
}

const EXPIRES: Duration = Duration::from_millis(100);

fn measure(raw: &mut RawClient, samples: usize, tag: &str) -> Timings {
    let stream = format!("TIMING{tag}");
    create_stream(
        raw,
        json!({"name": stream, "subjects": [format!("timing{tag}.>")]}),
    );
    create_pull_consumer(raw, &stream, "C");
    let mut expiry_late = Vec::new();
    for i in 0..samples {
        let started = Instant::now();
        publish(
            raw,
            &format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.C"),
            &format!("pull.e{i}"),
            &json!({"batch": 1, "expires": EXPIRES.as_nanos() as u64}).to_string(),
        );
        let got = raw.read_until_contains(b"408", Duration::from_secs(5));
        assert!(String::from_utf8_lossy(&got).contains("408 Request Timeout"));
        expiry_late.push(started.elapsed().saturating_sub(EXPIRES));
    }
    publish(raw, &format!("timing{tag}.x"), "", "pushed");
    let mut first_push = Vec::new();
    let mut create_to_push = Vec::new();
    for i in 0..samples * 2 {
        let deliver = format!("push{tag}.{i}");
        let subscribe_first = i % 2 == 1;
        if subscribe_first {
            raw.send(format!("SUB {deliver} {}\r\nPING\r\n", 100 + i).as_bytes());
            raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
        }
        let body = json!({"stream_name": stream, "config": {
            "durable_name": format!("P{i}"), "deliver_subject": deliver, "ack_policy": "none"}});
        let created = Instant::now();
        let reply = api(
            raw,
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.P{i}"),
            &body,
        );
        assert!(reply.get("error").is_none(), "{reply}");
        let subscribed = Instant::now();
        if !subscribe_first {
            raw.send(format!("SUB {deliver} {}\r\n", 100 + i).as_bytes());
        }
        let got = raw.read_until_contains(b"pushed", Duration::from_secs(5));
        assert!(String::from_utf8_lossy(&got).contains("pushed"));
        match subscribe_first {
            true => create_to_push.push(created.elapsed()),
            false => first_push.push(subscribed.elapsed()),
        }
    }
    Timings {
        expiry_late,
        first_push,
        create_to_push,
    }
}

/// (p50, p90, max) of `samples`.
fn spread(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), at(1.0))
}

#[test]
fn pull_expiry_and_first_push_delivery_keep_time() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client_at(server.port);
    let timings = measure(&mut raw, 7, "");
    let bound = Duration::from_millis(10);
    for (what, samples) in [
        ("pull expiry lateness", timings.expiry_late),
        ("first push after SUB", timings.first_push),
        ("first push after create", timings.create_to_push),
    ] {
        let (p50, _, _) = spread(samples.clone());
        assert!(p50 < bound, "{what}: median {p50:?} of {samples:?}");
    }
}

#[test]
#[ignore = "a timing measurement; run with --release --ignored --nocapture"]
fn timer_precision_figures() {
    let server = std::env::var("JETLOG_TIMING_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok());
    let local = server.is_none().then(|| TestServer::start(&[]));
    let port = server.unwrap_or_else(|| local.as_ref().map_or(0, |s| s.port));
    let mut raw = raw_client_at(port);
    let tag = std::process::id().to_string();
    let timings = measure(&mut raw, 50, &tag);
    for (what, samples) in [
        ("pull_expiry_late", timings.expiry_late),
        ("first_push_after_sub", timings.first_push),
        ("first_push_after_create", timings.create_to_push),
    ] {
        let (p50, p90, max) = spread(samples);
        println!(
            "timer {what} p50_us={} p90_us={} max_us={}",
            p50.as_micros(),
            p90.as_micros(),
            max.as_micros()
        );
    }
}
