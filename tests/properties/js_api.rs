//! JetStream API request bodies, through the functions the API handlers call: any bytes are
//! decoded and checked without a panic; an accepted config is a fixed point (normalising it
//! again, or sending back the JSON the server replied with, gives the same config, and it may
//! replace itself); pull requests stay within the consumer's limits.

use std::sync::OnceLock;

use jetlog::jetstream::api_types::{
    from_go_json, MsgDeleteRequest, MsgGetRequest, PurgeRequestJson, StreamInfoRequest,
    StreamListRequest,
};
use jetlog::jetstream::consumer::AckKind;
use jetlog::jetstream::consumer_config::{
    check_create_subject, parse_pull_request, ConsumerConfig, CreateConsumerRequest,
};
use jetlog::jetstream::stream_config::{is_valid_name, MAX_NAME_BYTES};
use jetlog::jetstream::time::{format_rfc3339, parse_rfc3339};
use jetlog::jetstream::StreamConfig;

/// Input layout: `[request kind][variant][body]`.
pub fn js_api_request(data: &[u8]) {
    let [kind, variant, body @ ..] = data else {
        return;
    };
    match kind % 4 {
        0 => stream_config(body),
        1 => consumer_create(*variant, body),
        2 => pull_request(*variant, body),
        _ => other_requests(body),
    }
}

/// `STREAM.CREATE.ORDERS` / `STREAM.UPDATE.ORDERS` (`requested_config` in the API handler).
fn stream_config(body: &[u8]) {
    let Ok(mut config) = from_go_json::<StreamConfig>(body) else {
        return;
    };
    if config.name.is_empty() {
        config.name = "ORDERS".to_string();
    }
    let Ok(effective) = config.normalized() else {
        return;
    };
    assert!(is_valid_name(&effective.name));
    assert!(!effective.subjects.is_empty());
    assert_eq!(effective.clone().normalized().as_ref(), Ok(&effective));
    assert_eq!(effective.check_update(&effective), Ok(()));
    // nats.go sends back the config it was given to update a stream.
    let json = serde_json::to_vec(&effective).expect("a config serialises");
    let echoed = from_go_json::<StreamConfig>(&json).expect("its own JSON decodes");
    assert_eq!(echoed.normalized().as_ref(), Ok(&effective));
}

/// Streams a consumer can be created on: limits, work queue, interest with consumer limits.
fn streams() -> &'static [StreamConfig; 3] {
    static STREAMS: OnceLock<[StreamConfig; 3]> = OnceLock::new();
    STREAMS.get_or_init(|| {
        [
            r#"{"name":"S","subjects":["s.>"]}"#,
            r#"{"name":"S","subjects":["s.>","t"],"retention":"workqueue"}"#,
            r#"{"name":"S","subjects":["s.*.x","t"],"retention":"interest",
                "consumer_limits":{"max_ack_pending":100,"inactive_threshold":5000000000}}"#,
        ]
        .map(|json| {
            serde_json::from_str::<StreamConfig>(json)
                .expect("stream JSON")
                .normalized()
                .expect("valid stream")
        })
    })
}

/// `CONSUMER.CREATE.S[.<name>[.<filter>]]` and `CONSUMER.DURABLE.CREATE.S.<durable>`.
fn consumer_create(variant: u8, body: &[u8]) {
    let Ok(mut req) = from_go_json::<CreateConsumerRequest>(body) else {
        return;
    };
    let stream = &streams()[usize::from(variant % 3)];
    let stream_name = req.stream_name.clone();
    let durable = req.config.durable_name.clone().unwrap_or_default();
    let name = req.config.name.clone().unwrap_or_default();
    let filter = req.config.filter_subject.clone().unwrap_or_default();
    let mut tokens = vec!["CONSUMER"];
    match (variant / 3) % 4 {
        0 => tokens.extend(["CREATE", stream_name.as_str()]),
        1 => tokens.extend(["DURABLE", "CREATE", stream_name.as_str(), durable.as_str()]),
        2 => tokens.extend(["CREATE", stream_name.as_str(), name.as_str()]),
        _ => {
            tokens.extend(["CREATE", stream_name.as_str(), name.as_str()]);
            tokens.extend(filter.split('.'));
        }
    }
    let Ok(consumer_name) = check_create_subject(&tokens, &mut req, 0x1234_5678) else {
        return;
    };
    assert!(consumer_name.len() <= MAX_NAME_BYTES && is_valid_name(&consumer_name));
    let Ok(effective) = req.config.normalized(stream) else {
        return;
    };
    check_consumer_fixed_point(&effective, stream);
    let _ = parse_pull_request(b"{\"batch\":5,\"expires\":1000000000}", &effective);
}

fn check_consumer_fixed_point(effective: &ConsumerConfig, stream: &StreamConfig) {
    assert_eq!(
        effective.clone().normalized(stream).as_ref(),
        Ok(effective),
        "normalising twice changed the config"
    );
    assert_eq!(effective.check_update(effective), Ok(()));
    // A client updates a consumer by sending back the config from ConsumerInfo.
    let json = serde_json::to_vec(effective).expect("a config serialises");
    let echoed = from_go_json::<ConsumerConfig>(&json).expect("its own JSON decodes");
    assert_eq!(echoed.normalized(stream).as_ref(), Ok(effective));
}

/// Consumers a pull request can be sent to: with and without request limits, and push.
fn consumers() -> &'static [ConsumerConfig; 3] {
    static CONSUMERS: OnceLock<[ConsumerConfig; 3]> = OnceLock::new();
    CONSUMERS.get_or_init(|| {
        [
            r#"{"durable_name":"D","ack_policy":"explicit"}"#,
            r#"{"durable_name":"D","ack_policy":"explicit","max_batch":10,
                "max_expires":2000000000,"max_bytes":1000}"#,
            r#"{"durable_name":"D","deliver_subject":"push.d","ack_policy":"none"}"#,
        ]
        .map(|json| {
            serde_json::from_str::<ConsumerConfig>(json)
                .expect("consumer JSON")
                .normalized(&streams()[0])
                .expect("valid consumer")
        })
    })
}

/// `CONSUMER.MSG.NEXT.S.D` bodies, and ack payloads (whose `+NXT` carries one).
fn pull_request(variant: u8, body: &[u8]) {
    let config = &consumers()[usize::from(variant % 3)];
    check_pull(body, config);
    match AckKind::parse(body) {
        AckKind::Nak(Some(delay)) => assert!(delay > 0),
        AckKind::Next(request) => check_pull(&request, config),
        _ => {}
    }
}

fn check_pull(body: &[u8], config: &ConsumerConfig) {
    let Ok(req) = parse_pull_request(body, config) else {
        return;
    };
    assert!(config.is_pull());
    assert!(req.batch >= 1);
    if config.max_batch > 0 {
        assert!(req.batch <= config.max_batch as u64, "{req:?}");
    }
    if config.max_expires > 0 && req.expires_ns > 0 {
        assert!(req.expires_ns <= config.max_expires as u64, "{req:?}");
    }
    if config.max_bytes > 0 {
        assert!(req.max_bytes <= config.max_bytes as u64, "{req:?}");
    }
    if req.idle_heartbeat_ns > 0 {
        assert!(
            req.idle_heartbeat_ns.saturating_mul(2) <= req.expires_ns,
            "{req:?}"
        );
    }
}

/// Purge, message get and delete, info and list bodies, and the RFC 3339 times they carry.
fn other_requests(body: &[u8]) {
    let _ = from_go_json::<PurgeRequestJson>(body);
    let _ = from_go_json::<MsgDeleteRequest>(body);
    let _ = from_go_json::<StreamInfoRequest>(body);
    let _ = from_go_json::<StreamListRequest>(body);
    if let Ok(get) = from_go_json::<MsgGetRequest>(body) {
        for time in [&get.start_time, &get.up_to_time].into_iter().flatten() {
            check_time(time);
        }
    }
    // Lossy, so that any byte over 0x7f becomes a three-byte character: multi-byte text is
    // then as easy for a fuzzer to reach as ASCII.
    check_time(&String::from_utf8_lossy(body));
}

/// Times parse or are refused; a parsed time formats to a text that parses to the same time.
fn check_time(text: &str) {
    if let Ok(Some(ns)) = parse_rfc3339(text) {
        let formatted = format_rfc3339(Some(ns));
        assert_eq!(
            parse_rfc3339(&formatted),
            Ok(Some(ns)),
            "{text:?} → {formatted:?}"
        );
    }
}
