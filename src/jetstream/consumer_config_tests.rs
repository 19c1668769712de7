use super::requests::generated_name;
use super::*;
use crate::jetstream::api_types::from_go_json;
use crate::jetstream::stream_config::ConsumerLimits;

const SEC: i64 = 1_000_000_000;

fn stream() -> StreamConfig {
    serde_json::from_str::<StreamConfig>(r#"{"name":"S","subjects":["orders.>","audit"]}"#)
        .unwrap()
        .normalized()
        .unwrap()
}

fn work_queue() -> StreamConfig {
    StreamConfig {
        retention: Retention::WorkQueue,
        ..stream()
    }
}

fn parse(json: &str) -> ConsumerConfig {
    from_go_json(json.as_bytes()).expect("valid JSON")
}

fn normalize(json: &str) -> ConsumerConfig {
    parse(json).normalized(&stream()).expect("accepted")
}

fn error_on(json: &str, stream: &StreamConfig) -> ApiError {
    parse(json)
        .normalized(stream)
        .expect_err("should be refused")
}

fn error_of(json: &str) -> ApiError {
    error_on(json, &stream())
}

#[track_caller]
fn assert_error(err: ApiError, code: u16, err_code: u16, description: &str) {
    assert_eq!(
        (err.code, err.err_code, err.description.as_str()),
        (code, err_code, description)
    );
}

// ---------------------------------------------------------------------------------------------
// Enums and serialisation

#[test]
fn enums_parse_case_insensitively_and_undefined_is_deliver_all() {
    let cfg = parse(
        r#"{"deliver_policy":"By_Start_Sequence","ack_policy":"EXPLICIT","replay_policy":"Original"}"#,
    );
    assert_eq!(cfg.deliver_policy, DeliverPolicy::ByStartSequence);
    assert_eq!(cfg.ack_policy, AckPolicy::Explicit);
    assert_eq!(cfg.replay_policy, ReplayPolicy::Original);
    assert_eq!(
        parse(r#"{"deliver_policy":"undefined"}"#).deliver_policy,
        DeliverPolicy::All
    );
    for (text, policy) in [
        ("all", DeliverPolicy::All),
        ("last", DeliverPolicy::Last),
        ("new", DeliverPolicy::New),
        ("by_start_time", DeliverPolicy::ByStartTime),
        ("last_per_subject", DeliverPolicy::LastPerSubject),
    ] {
        assert_eq!(policy.as_str(), text);
        assert_eq!(
            serde_json::to_string(&policy).unwrap(),
            format!("\"{text}\"")
        );
    }
    assert!(from_go_json::<ConsumerConfig>(br#"{"ack_policy":"sometimes"}"#).is_err());
    assert!(from_go_json::<ConsumerConfig>(br#"{"replay_policy":"slow"}"#).is_err());
}

#[test]
fn missing_enums_take_go_zero_values() {
    let cfg = parse("{}");
    assert_eq!(
        (cfg.deliver_policy, cfg.ack_policy, cfg.replay_policy),
        (DeliverPolicy::All, AckPolicy::None, ReplayPolicy::Instant)
    );
    let nulls = parse(r#"{"filter_subjects":null,"backoff":null,"metadata":null,"ack_wait":null}"#);
    assert!(nulls.filter_subjects.is_empty() && nulls.backoff.is_empty());
}

#[test]
fn serialisation_omits_what_nats_server_omits() {
    let json = serde_json::to_value(ConsumerConfig::default()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "deliver_policy": "all",
            "ack_policy": "none",
            "replay_policy": "instant",
            "num_replicas": 0
        })
    );
    let full = normalize(
        r#"{"durable_name":"D","ack_policy":"explicit","filter_subjects":["orders.a","audit"],
            "backoff":[1000000000,2000000000],"max_deliver":5,"metadata":{"k":"v"},
            "max_batch":10,"max_expires":1000000000,"max_bytes":100}"#,
    );
    let json = serde_json::to_value(&full).unwrap();
    for field in [
        "durable_name",
        "ack_wait",
        "max_deliver",
        "backoff",
        "filter_subjects",
        "max_waiting",
        "max_ack_pending",
        "max_batch",
        "max_expires",
        "max_bytes",
        "num_replicas",
        "metadata",
    ] {
        assert!(json.get(field).is_some(), "{field} is emitted");
    }
    for field in [
        "name",
        "filter_subject",
        "deliver_subject",
        "flow_control",
        "idle_heartbeat",
        "headers_only",
        "rate_limit_bps",
        "inactive_threshold",
        "mem_storage",
        "opt_start_seq",
        "opt_start_time",
    ] {
        assert!(json.get(field).is_none(), "{field} is omitted");
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults

#[test]
fn pull_consumer_defaults() {
    let cfg = normalize(r#"{"durable_name":"D","ack_policy":"explicit"}"#);
    assert_eq!(cfg.ack_wait, DEFAULT_ACK_WAIT_NS);
    assert_eq!(cfg.max_deliver, -1);
    assert_eq!(cfg.max_waiting, DEFAULT_MAX_WAITING);
    assert_eq!(cfg.max_ack_pending, DEFAULT_MAX_ACK_PENDING);
    assert_eq!(cfg.replay_policy, ReplayPolicy::Instant);
    assert_eq!(cfg.num_replicas, 1);
    assert_eq!(
        cfg.inactive_threshold, 0,
        "durables never expire by default"
    );
}

#[test]
fn ack_all_gets_the_same_defaults_as_explicit() {
    let cfg = normalize(r#"{"durable_name":"D","ack_policy":"all"}"#);
    assert_eq!(
        (cfg.ack_wait, cfg.max_ack_pending),
        (DEFAULT_ACK_WAIT_NS, 1000)
    );
}

#[test]
fn ack_none_keeps_ack_wait_and_max_ack_pending_unset() {
    let cfg = normalize(r#"{"durable_name":"D"}"#);
    assert_eq!((cfg.ack_wait, cfg.max_ack_pending), (0, 0));
}

#[test]
fn backoff_sets_ack_wait() {
    let cfg = normalize(
        r#"{"durable_name":"D","ack_policy":"explicit","ack_wait":9000000000,
            "backoff":[2000000000,4000000000],"max_deliver":3}"#,
    );
    assert_eq!(cfg.ack_wait, 2 * SEC);
}

#[test]
fn max_deliver_zero_or_below_minus_one_is_unlimited() {
    for value in [0, -5, -1] {
        let cfg = normalize(&format!(r#"{{"durable_name":"D","max_deliver":{value}}}"#));
        assert_eq!(cfg.max_deliver, -1);
    }
    assert_eq!(
        normalize(r#"{"durable_name":"D","max_deliver":4}"#).max_deliver,
        4
    );
}

#[test]
fn negative_limits_become_unset() {
    let cfg = normalize(
        r#"{"durable_name":"D","max_waiting":-3,"max_ack_pending":-7,"max_batch":-1,
            "max_expires":-1,"max_bytes":-1,"inactive_threshold":-1}"#,
    );
    assert_eq!(cfg.max_waiting, DEFAULT_MAX_WAITING);
    assert_eq!(cfg.max_ack_pending, -1);
    assert_eq!((cfg.max_batch, cfg.max_expires, cfg.max_bytes), (0, 0, 0));
    assert_eq!(cfg.inactive_threshold, 0);
    let push = normalize(r#"{"deliver_subject":"dlv","idle_heartbeat":-1}"#);
    assert_eq!(push.idle_heartbeat, 0);
}

#[test]
fn stream_consumer_limits_fill_defaults() {
    let limited = StreamConfig {
        consumer_limits: ConsumerLimits {
            inactive_threshold: Some(60 * SEC),
            max_ack_pending: Some(50),
        },
        ..stream()
    };
    let cfg = parse(r#"{"durable_name":"D","ack_policy":"explicit"}"#)
        .normalized(&limited)
        .unwrap();
    assert_eq!(
        (cfg.max_ack_pending, cfg.inactive_threshold),
        (50, 60 * SEC)
    );
    let err = parse(r#"{"durable_name":"D","ack_policy":"explicit","max_ack_pending":51}"#)
        .normalized(&limited)
        .unwrap_err();
    assert_error(
        err,
        400,
        10121,
        "consumer max ack pending exceeds system limit of 50",
    );
    let err = parse(r#"{"durable_name":"D","inactive_threshold":61000000000}"#)
        .normalized(&limited)
        .unwrap_err();
    assert_error(
        err,
        400,
        10153,
        "consumer inactive threshold exceeds system limit of 1m0s",
    );
}

#[test]
fn ephemerals_expire_after_five_seconds_by_default() {
    let cfg = normalize(r#"{"name":"E","ack_policy":"explicit"}"#);
    assert_eq!(
        cfg.inactive_threshold,
        DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS
    );
    let cfg = normalize(r#"{"inactive_threshold":30000000000}"#);
    assert_eq!(cfg.inactive_threshold, 30 * SEC);
}

#[test]
fn push_consumer_defaults_leave_max_waiting_unset() {
    let cfg = normalize(r#"{"deliver_subject":"dlv","ack_policy":"explicit"}"#);
    assert_eq!(cfg.max_waiting, 0);
    assert_eq!(cfg.max_ack_pending, 1000);
}

#[test]
fn empty_strings_and_zero_start_sequence_mean_unset() {
    let cfg = normalize(
        r#"{"durable_name":"D","name":"","description":"","filter_subject":"",
            "deliver_subject":"","deliver_group":"","sample_freq":"","opt_start_seq":0,
            "metadata":{}}"#,
    );
    assert!(cfg.name.is_none() && cfg.description.is_none() && cfg.filter_subject.is_none());
    assert!(cfg.is_pull() && cfg.deliver_group.is_none() && cfg.sample_freq.is_none());
    assert!(cfg.opt_start_seq.is_none() && cfg.metadata.is_none());
}

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn invalid_names_are_refused() {
    assert_error(
        error_of(r#"{"name":"a.b"}"#),
        500,
        10052,
        "consumer name can not contain '.', '*', '>', '\\', '/'",
    );
    assert_error(
        error_of(r#"{"durable_name":"a b"}"#),
        500,
        10052,
        "consumer durable name can not contain '.', '*', '>', '\\', '/'",
    );
    for bad in ["*", ">", "a/b", "a\\\\b", "tab\\there"] {
        let err = error_of(&format!(r#"{{"name":"{bad}"}}"#));
        assert_eq!(err.err_code, 10052, "{bad}");
    }
    let long = "n".repeat(256);
    assert_error(
        error_of(&format!(r#"{{"durable_name":"{long}"}}"#)),
        400,
        10102,
        "consumer name is too long, maximum allowed is 255",
    );
}

#[test]
fn durable_and_name_must_match() {
    assert_error(
        error_of(r#"{"durable_name":"A","name":"B"}"#),
        400,
        10132,
        "Consumer Durable and Name have to be equal if both are provided",
    );
    assert!(parse(r#"{"durable_name":"A","name":"A"}"#)
        .normalized(&stream())
        .is_ok());
}

#[test]
fn replicas_rules() {
    assert_error(
        error_of(r#"{"num_replicas":3}"#),
        400,
        10126,
        "consumer config replica count exceeds parent stream",
    );
    assert_error(
        error_of(r#"{"num_replicas":-1}"#),
        400,
        10133,
        "replicas count cannot be negative",
    );
    assert_eq!(normalize(r#"{"num_replicas":1}"#).num_replicas, 1);
}

#[test]
fn negative_ack_wait_and_backoff_are_refused() {
    assert_error(
        error_of(r#"{"ack_policy":"explicit","backoff":[-1]}"#),
        400,
        10184,
        "consumer backoff needs to be positive",
    );
    assert_error(
        error_of(r#"{"ack_policy":"explicit","ack_wait":-1}"#),
        400,
        10183,
        "consumer ack wait needs to be positive",
    );
}

#[test]
fn max_deliver_must_cover_the_backoff() {
    assert_error(
        error_of(r#"{"ack_policy":"explicit","backoff":[1,2,3],"max_deliver":2}"#),
        400,
        10116,
        "max deliver is required to be > length of backoff values",
    );
    // Equal is fine, as is unlimited.
    normalize(r#"{"ack_policy":"explicit","backoff":[1,2,3],"max_deliver":3}"#);
    normalize(r#"{"ack_policy":"explicit","backoff":[1,2,3]}"#);
}

#[test]
fn long_descriptions_are_refused() {
    let long = "d".repeat(4097);
    assert_error(
        error_of(&format!(r#"{{"description":"{long}"}}"#)),
        400,
        10107,
        "consumer description is too long, maximum allowed is 4096",
    );
    normalize(&format!(r#"{{"description":"{}"}}"#, "d".repeat(4096)));
}

#[test]
fn push_consumer_rules() {
    assert_error(
        error_of(r#"{"deliver_subject":"dlv.*"}"#),
        400,
        10079,
        "consumer deliver subject has wildcards",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"dlv..x"}"#),
        400,
        10112,
        "invalid push consumer deliver subject",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"orders.new"}"#),
        400,
        10081,
        "consumer deliver subject forms a cycle",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"dlv","max_waiting":5}"#),
        400,
        10080,
        "consumer in push mode can not set max waiting",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"dlv","max_ack_pending":5}"#),
        400,
        10082,
        "consumer requires ack policy for max ack pending",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"dlv","idle_heartbeat":99000000}"#),
        400,
        10083,
        "consumer idle heartbeat needs to be >= 100ms",
    );
    assert_error(
        error_of(r#"{"deliver_subject":"dlv","flow_control":true}"#),
        400,
        10108,
        "consumer with flow control also needs heartbeats",
    );
    normalize(r#"{"deliver_subject":"dlv","flow_control":true,"idle_heartbeat":100000000}"#);
}

#[test]
fn pull_consumer_rules() {
    assert_error(
        error_of(r#"{"rate_limit_bps":100}"#),
        400,
        10086,
        "consumer in pull mode can not have rate limit set",
    );
    assert_error(
        error_of(r#"{"idle_heartbeat":1000000000}"#),
        400,
        10088,
        "consumer idle heartbeat requires a push based consumer",
    );
    assert_error(
        error_of(r#"{"flow_control":true}"#),
        400,
        10089,
        "consumer flow control requires a push based consumer",
    );
    assert_error(
        error_of(r#"{"max_expires":999999}"#),
        400,
        10115,
        "consumer max request expires needs to be >= 1ms",
    );
    normalize(r#"{"max_expires":1000000}"#);
}

#[test]
fn filter_rules() {
    assert_error(
        error_of(r#"{"filter_subject":"orders.a","filter_subjects":["audit"]}"#),
        400,
        10136,
        "consumer cannot have both FilterSubject and FilterSubjects specified",
    );
    assert_error(
        error_of(r#"{"filter_subject":"orders..a"}"#),
        500,
        10052,
        "invalid subject",
    );
    assert_error(
        error_of(r#"{"filter_subjects":["orders.a",""]}"#),
        400,
        10139,
        "consumer filter in FilterSubjects cannot be empty",
    );
    assert_error(
        error_of(r#"{"filter_subjects":["orders.>","orders.a"]}"#),
        400,
        10138,
        "consumer subject filters cannot overlap",
    );
    assert_error(
        error_of(r#"{"filter_subjects":["audit","audit"]}"#),
        400,
        10138,
        "consumer subject filters cannot overlap",
    );
    assert_error(
        error_of(r#"{"filter_subjects":["orders.a","x.>"]}"#),
        400,
        10093,
        "consumer filter subject is not a valid subset of the interest subjects",
    );
    assert_error(
        error_of(r#"{"filter_subject":"nothing"}"#),
        400,
        10093,
        "consumer filter subject is not a valid subset of the interest subjects",
    );
    // Narrower, wider and partly overlapping filters are all accepted.
    normalize(r#"{"filter_subject":"orders.*.x"}"#);
    normalize(r#"{"filter_subject":">"}"#);
    normalize(r#"{"filter_subjects":["orders.a","audit"]}"#);
}

#[test]
fn a_stream_without_subjects_stores_its_name() {
    let bare = StreamConfig {
        name: "S".into(),
        ..StreamConfig::default()
    };
    parse(r#"{"filter_subject":"S"}"#)
        .normalized(&bare)
        .unwrap();
    assert_eq!(
        parse(r#"{"filter_subject":"T"}"#)
            .normalized(&bare)
            .unwrap_err()
            .err_code,
        10093
    );
}

#[test]
fn start_position_conflicts() {
    let cases = [
        (
            r#"{"opt_start_seq":5}"#,
            "consumer delivery policy is deliver all, but optional start sequence is also set",
        ),
        (
            r#"{"opt_start_time":"2024-01-02T03:04:05Z"}"#,
            "consumer delivery policy is deliver all, but optional start time is also set",
        ),
        (
            r#"{"deliver_policy":"last","opt_start_seq":5}"#,
            "consumer delivery policy is deliver last, but optional start sequence is also set",
        ),
        (
            r#"{"deliver_policy":"last","opt_start_time":"2024-01-02T03:04:05Z"}"#,
            "consumer delivery policy is deliver last, but optional start time is also set",
        ),
        (
            r#"{"deliver_policy":"new","opt_start_seq":5}"#,
            "consumer delivery policy is deliver new, but optional start sequence is also set",
        ),
        (
            r#"{"deliver_policy":"last_per_subject","filter_subject":"audit","opt_start_seq":5}"#,
            "consumer delivery policy is deliver last per subject, but optional start sequence \
             is also set",
        ),
        (
            r#"{"deliver_policy":"last_per_subject"}"#,
            "consumer delivery policy is deliver last per subject, but optional filter subject \
             is not set",
        ),
        (
            r#"{"deliver_policy":"by_start_sequence"}"#,
            "consumer delivery policy is deliver by start sequence, but optional start sequence \
             is not set",
        ),
        (
            r#"{"deliver_policy":"by_start_sequence","opt_start_seq":0}"#,
            "consumer delivery policy is deliver by start sequence, but optional start sequence \
             is not set",
        ),
        (
            r#"{"deliver_policy":"by_start_sequence","opt_start_seq":3,
                "opt_start_time":"2024-01-02T03:04:05Z"}"#,
            "consumer delivery policy is deliver by start sequence, but optional start time is \
             also set",
        ),
        (
            r#"{"deliver_policy":"by_start_time"}"#,
            "consumer delivery policy is deliver by start time, but optional start time is not \
             set",
        ),
        (
            r#"{"deliver_policy":"by_start_time","opt_start_seq":3,
                "opt_start_time":"2024-01-02T03:04:05Z"}"#,
            "consumer delivery policy is deliver by start time, but optional start start \
             sequence is also set",
        ),
    ];
    for (json, text) in cases {
        assert_error(error_of(json), 400, 10094, text);
    }
    normalize(r#"{"deliver_policy":"by_start_sequence","opt_start_seq":3}"#);
    let cfg = normalize(
        r#"{"deliver_policy":"by_start_time","opt_start_time":"2024-01-02T03:04:05.5+01:00"}"#,
    );
    assert_eq!(
        cfg.opt_start_time.as_deref(),
        Some("2024-01-02T03:04:05.5+01:00")
    );
    normalize(r#"{"deliver_policy":"last_per_subject","filter_subjects":["audit"]}"#);
}

#[test]
fn unparsable_start_time_is_invalid_json() {
    let err = error_of(r#"{"deliver_policy":"by_start_time","opt_start_time":"yesterday"}"#);
    assert_eq!((err.code, err.err_code), (400, 10025));
}

#[test]
fn sample_frequency_must_be_a_percentage() {
    normalize(r#"{"sample_freq":"50%"}"#);
    normalize(r#"{"sample_freq":"100"}"#);
    assert_error(
        error_of(r#"{"sample_freq":"lots"}"#),
        400,
        10095,
        "failed to parse consumer sampling configuration: strconv.Atoi: parsing \"lots\": \
         invalid syntax",
    );
    assert_error(
        error_of(r#"{"sample_freq":"-5%"}"#),
        400,
        10095,
        "failed to parse consumer sampling configuration: <nil>",
    );
}

#[test]
fn oversized_metadata_is_refused() {
    let value = "v".repeat(MAX_METADATA_BYTES);
    assert_error(
        error_of(&format!(r#"{{"metadata":{{"k":"{value}"}}}}"#)),
        400,
        10135,
        "consumer metadata exceeds maximum size of 128KB",
    );
}

#[test]
fn work_queue_rules() {
    let wq = work_queue();
    assert_error(
        error_on(r#"{"durable_name":"D"}"#, &wq),
        400,
        10084,
        "consumer in pull mode requires explicit ack policy on workqueue stream",
    );
    assert_error(
        error_on(r#"{"durable_name":"D","ack_policy":"all"}"#, &wq),
        400,
        10098,
        "workqueue stream requires explicit ack",
    );
    assert_error(
        error_on(r#"{"deliver_subject":"dlv"}"#, &wq),
        400,
        10098,
        "workqueue stream requires explicit ack",
    );
    assert_error(
        error_on(
            r#"{"durable_name":"D","ack_policy":"explicit","deliver_policy":"new"}"#,
            &wq,
        ),
        400,
        10101,
        "consumer must be deliver all on workqueue stream",
    );
    assert_error(
        error_on(r#"{"ack_policy":"explicit","num_replicas":2}"#, &wq),
        400,
        10126,
        "consumer config replica count exceeds parent stream",
    );
    parse(r#"{"durable_name":"D","ack_policy":"explicit"}"#)
        .normalized(&wq)
        .unwrap();
}

#[test]
fn accessors() {
    let cfg = parse(r#"{"durable_name":"D","filter_subject":"a"}"#);
    assert_eq!(cfg.effective_name(), Some("D"));
    assert!(cfg.is_durable() && cfg.is_pull());
    assert_eq!(cfg.filters(), ["a"]);
    let cfg = parse(r#"{"name":"N","deliver_subject":"x","filter_subjects":["a","b"]}"#);
    assert_eq!(cfg.effective_name(), Some("N"));
    assert!(!cfg.is_durable() && !cfg.is_pull());
    assert_eq!(cfg.filters(), ["a", "b"]);
    let cfg = parse("{}");
    assert_eq!(cfg.effective_name(), None);
    assert!(cfg.filters().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Updates

fn updated(old: &str, new: &str) -> Result<(), ApiError> {
    normalize(old).check_update(&normalize(new))
}

#[test]
fn identical_and_updatable_changes_are_allowed() {
    let base = r#"{"durable_name":"D","ack_policy":"explicit"}"#;
    updated(base, base).unwrap();
    updated(
        base,
        r#"{"durable_name":"D","ack_policy":"explicit","description":"x","max_ack_pending":5,
            "ack_wait":1000000000,"max_deliver":3,"filter_subject":"audit","sample_freq":"10",
            "headers_only":true,"max_batch":5,"metadata":{"a":"b"},"inactive_threshold":5}"#,
    )
    .unwrap();
    updated(
        r#"{"durable_name":"D","deliver_subject":"a"}"#,
        r#"{"durable_name":"D","deliver_subject":"b"}"#,
    )
    .unwrap();
    updated(
        r#"{"durable_name":"D","deliver_policy":"by_start_time","opt_start_time":"2024-01-02T03:04:05Z"}"#,
        r#"{"durable_name":"D","deliver_policy":"by_start_time","opt_start_time":"2024-01-02T04:04:05+01:00"}"#,
    )
    .unwrap();
}

#[test]
fn fixed_fields_can_not_be_updated() {
    let cases = [
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","deliver_policy":"new"}"#,
            "deliver policy can not be updated",
        ),
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","mem_storage":true}"#,
            "storage type can not be updated",
        ),
        (
            r#"{"durable_name":"D","deliver_policy":"by_start_sequence","opt_start_seq":1}"#,
            r#"{"durable_name":"D","deliver_policy":"by_start_sequence","opt_start_seq":2}"#,
            "start sequence can not be updated",
        ),
        (
            r#"{"durable_name":"D","deliver_policy":"by_start_time","opt_start_time":"2024-01-02T03:04:05Z"}"#,
            r#"{"durable_name":"D","deliver_policy":"by_start_time","opt_start_time":"2024-01-02T03:04:06Z"}"#,
            "start time can not be updated",
        ),
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","ack_policy":"explicit"}"#,
            "ack policy can not be updated",
        ),
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","replay_policy":"original"}"#,
            "replay policy can not be updated",
        ),
        (
            r#"{"durable_name":"D","deliver_subject":"x","idle_heartbeat":1000000000}"#,
            r#"{"durable_name":"D","deliver_subject":"x","idle_heartbeat":2000000000}"#,
            "heart beats can not be updated",
        ),
        (
            r#"{"durable_name":"D","deliver_subject":"x","idle_heartbeat":1000000000}"#,
            r#"{"durable_name":"D","deliver_subject":"x","idle_heartbeat":1000000000,"flow_control":true}"#,
            "flow control can not be updated",
        ),
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","deliver_subject":"x"}"#,
            "can not update pull consumer to push based",
        ),
        (
            r#"{"durable_name":"D","deliver_subject":"x"}"#,
            r#"{"durable_name":"D"}"#,
            "can not update push consumer to pull based",
        ),
        (
            r#"{"durable_name":"D"}"#,
            r#"{"durable_name":"D","max_waiting":10}"#,
            "max waiting can not be updated",
        ),
    ];
    for (old, new, text) in cases {
        assert_error(updated(old, new).unwrap_err(), 500, 10012, text);
    }
}

#[test]
fn update_rechecks_backoff_against_max_deliver() {
    let old = normalize(r#"{"durable_name":"D","ack_policy":"explicit"}"#);
    let mut new = old.clone();
    new.backoff = vec![SEC, SEC];
    new.max_deliver = 1;
    assert_eq!(old.check_update(&new).unwrap_err().err_code, 10116);
}

// ---------------------------------------------------------------------------------------------
// Create subjects

fn request(json: &str) -> CreateConsumerRequest {
    from_go_json(json.as_bytes()).expect("valid request")
}

fn tokens(subject: &str) -> Vec<&str> {
    subject.split('.').collect()
}

fn create(subject: &str, json: &str) -> Result<(String, CreateConsumerRequest), ApiError> {
    let mut req = request(json);
    let name = check_create_subject(&tokens(subject), &mut req, 12_345_678_901)?;
    Ok((name, req))
}

#[test]
fn legacy_ephemeral_gets_a_generated_name() {
    let (name, req) = create("CONSUMER.CREATE.S", r#"{"stream_name":"S","config":{}}"#).unwrap();
    assert_eq!(name.len(), GENERATED_NAME_LEN);
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(req.config.name.as_deref(), Some(name.as_str()));
    let mut other = request(r#"{"stream_name":"S"}"#);
    let second = check_create_subject(&tokens("CONSUMER.CREATE.S"), &mut other, 7).unwrap();
    assert_ne!(name, second, "different randomness, different name");
    assert_eq!(generated_name(0), "00000000");
    assert_eq!(generated_name(61), "z0000000");
}

#[test]
fn legacy_ephemeral_keeps_a_given_name_and_refuses_durables() {
    let (name, _) = create(
        "CONSUMER.CREATE.S",
        r#"{"stream_name":"S","config":{"name":"mine"}}"#,
    )
    .unwrap();
    assert_eq!(name, "mine");
    assert_error(
        create(
            "CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"durable_name":"D"}}"#,
        )
        .unwrap_err(),
        400,
        10020,
        "consumer expected to be ephemeral but a durable name was set in request",
    );
}

#[test]
fn named_create_stamps_the_name_and_checks_the_durable() {
    let (name, req) = create(
        "CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"ack_policy":"explicit"}}"#,
    )
    .unwrap();
    assert_eq!(name, "C");
    assert_eq!(req.config.name.as_deref(), Some("C"));
    let (name, _) = create(
        "CONSUMER.CREATE.S.D",
        r#"{"stream_name":"S","config":{"durable_name":"D"}}"#,
    )
    .unwrap();
    assert_eq!(name, "D");
    assert_error(
        create(
            "CONSUMER.CREATE.S.C",
            r#"{"stream_name":"S","config":{"durable_name":"D"}}"#,
        )
        .unwrap_err(),
        400,
        10017,
        "consumer name in subject does not match durable name in request",
    );
}

#[test]
fn filtered_create_must_match_the_config() {
    let (name, _) = create(
        "CONSUMER.CREATE.S.C.orders.>",
        r#"{"stream_name":"S","config":{"filter_subject":"orders.>"}}"#,
    )
    .unwrap();
    assert_eq!(name, "C");
    assert_error(
        create(
            "CONSUMER.CREATE.S.C.orders.a",
            r#"{"stream_name":"S","config":{"filter_subject":"orders.b"}}"#,
        )
        .unwrap_err(),
        400,
        10131,
        "Consumer create request did not match filtered subject from create subject",
    );
    assert_eq!(
        create("CONSUMER.CREATE.S.C.orders", r#"{"stream_name":"S"}"#)
            .unwrap_err()
            .err_code,
        10131
    );
    assert_error(
        create(
            "CONSUMER.CREATE.S.C.orders",
            r#"{"stream_name":"S","config":{"filter_subjects":["orders","audit"]}}"#,
        )
        .unwrap_err(),
        400,
        10137,
        "consumer with multiple subject filters cannot use subject based API",
    );
    // Without a filter in the subject, filter_subjects are fine.
    create(
        "CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"filter_subjects":["orders","audit"]}}"#,
    )
    .unwrap();
}

#[test]
fn legacy_durable_create() {
    let (name, _) = create(
        "CONSUMER.DURABLE.CREATE.S.D",
        r#"{"stream_name":"S","config":{"durable_name":"D"}}"#,
    )
    .unwrap();
    assert_eq!(name, "D");
    assert_error(
        create("CONSUMER.DURABLE.CREATE.S", r#"{"stream_name":"S"}"#).unwrap_err(),
        400,
        10016,
        "consumer expected to be durable but no durable name set in subject",
    );
    assert_error(
        create("CONSUMER.DURABLE.CREATE.S.D", r#"{"stream_name":"S"}"#).unwrap_err(),
        400,
        10018,
        "consumer expected to be durable but a durable name was not set",
    );
    assert_error(
        create(
            "CONSUMER.DURABLE.CREATE.S.D",
            r#"{"stream_name":"S","config":{"durable_name":"E"}}"#,
        )
        .unwrap_err(),
        400,
        10017,
        "consumer name in subject does not match durable name in request",
    );
    assert_error(
        create(
            "CONSUMER.DURABLE.CREATE.S.D",
            r#"{"stream_name":"S","config":{"durable_name":"D","name":"N"}}"#,
        )
        .unwrap_err(),
        400,
        10132,
        "Consumer Durable and Name have to be equal if both are provided",
    );
}

#[test]
fn stream_name_must_match_the_subject() {
    for subject in [
        "CONSUMER.CREATE.S",
        "CONSUMER.CREATE.S.C",
        "CONSUMER.CREATE.S.C.f",
        "CONSUMER.DURABLE.CREATE.S.D",
    ] {
        let err = create(
            subject,
            r#"{"stream_name":"T","config":{"durable_name":"D"}}"#,
        )
        .unwrap_err();
        assert_error(
            err,
            400,
            10056,
            "stream name in subject does not match request",
        );
    }
}

#[test]
fn invalid_names_in_subjects_are_refused() {
    assert_error(
        create("CONSUMER.CREATE.S.a/b", r#"{"stream_name":"S"}"#).unwrap_err(),
        400,
        10127,
        "Consumer name can not contain path separators",
    );
    for subject in ["CONSUMER.CREATE.S.*", "CONSUMER.CREATE.S.>"] {
        assert_eq!(
            create(subject, r#"{"stream_name":"S"}"#)
                .unwrap_err()
                .err_code,
            10052
        );
    }
    assert_eq!(
        create(
            "CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"name":"a b"}}"#
        )
        .unwrap_err()
        .err_code,
        10052
    );
    let long = "n".repeat(256);
    assert_eq!(
        create(
            &format!("CONSUMER.CREATE.S.{long}"),
            r#"{"stream_name":"S"}"#
        )
        .unwrap_err()
        .err_code,
        10102
    );
}

#[test]
fn unknown_actions_and_subjects_are_refused() {
    let err = create(
        "CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","action":"replace"}"#,
    )
    .unwrap_err();
    assert_error(
        err,
        400,
        10025,
        "invalid JSON: unknown consumer action: \"replace\"",
    );
    for action in ["", "create", "update"] {
        create(
            "CONSUMER.CREATE.S.C",
            &format!(r#"{{"stream_name":"S","action":"{action}"}}"#),
        )
        .unwrap();
    }
    assert_eq!(
        create("CONSUMER.INFO.S.C", r#"{"stream_name":"S"}"#)
            .unwrap_err()
            .err_code,
        10003
    );
    assert_eq!(
        create("CONSUMER.CREATE", r#"{"stream_name":"S"}"#)
            .unwrap_err()
            .err_code,
        10003
    );
}

// ---------------------------------------------------------------------------------------------
// Pull requests

fn pull_config(json: &str) -> ConsumerConfig {
    normalize(json)
}

#[test]
fn pull_request_forms() {
    let cfg = pull_config(r#"{"durable_name":"D","ack_policy":"explicit"}"#);
    let one = PullRequest {
        batch: 1,
        ..PullRequest::default()
    };
    assert_eq!(parse_pull_request(b"", &cfg).unwrap(), one);
    assert_eq!(parse_pull_request(b"  \r\n", &cfg).unwrap(), one);
    assert_eq!(parse_pull_request(b"garbage", &cfg).unwrap(), one);
    assert_eq!(parse_pull_request(b"0", &cfg).unwrap(), one);
    assert_eq!(parse_pull_request(b" 10 ", &cfg).unwrap().batch, 10);
    let req = parse_pull_request(
        br#"{"batch":5,"expires":2000000000,"max_bytes":1024,"no_wait":true,
             "idle_heartbeat":500000000,"group":"g"}"#,
        &cfg,
    )
    .unwrap();
    assert_eq!(
        req,
        PullRequest {
            batch: 5,
            expires_ns: 2 * SEC as u64,
            max_bytes: 1024,
            no_wait: true,
            idle_heartbeat_ns: 500_000_000,
            priority: Default::default(),
        }
    );
    assert_eq!(parse_pull_request(b"{}", &cfg).unwrap(), one);
    assert_eq!(
        parse_pull_request(br#"{"batch":2,"expires":null}"#, &cfg)
            .unwrap()
            .batch,
        2
    );
    assert_eq!(
        parse_pull_request(br#"{"expires":-1}"#, &cfg)
            .unwrap()
            .expires_ns,
        1,
        "an expiry in the past ends the request at once"
    );
}

#[test]
fn pull_request_errors() {
    let cfg = pull_config(
        r#"{"durable_name":"D","ack_policy":"explicit","max_batch":10,
            "max_expires":1000000000,"max_bytes":100}"#,
    );
    let err = |payload: &[u8]| parse_pull_request(payload, &cfg).unwrap_err();
    assert_eq!(
        err(br#"{"batch":1,"idle_heartbeat":1000000000}"#),
        (400, "Bad Request - heartbeat value too large".to_string())
    );
    assert_eq!(
        err(br#"{"batch":1,"expires":1000000000,"idle_heartbeat":600000000}"#),
        (400, "Bad Request - heartbeat value too large".to_string())
    );
    let (code, text) = err(b"{bad");
    assert!(code == 400 && text.starts_with("Bad Request - "), "{text}");
    assert_eq!(
        err(b"11"),
        (409, "Exceeded MaxRequestBatch of 10".to_string())
    );
    assert_eq!(
        err(br#"{"batch":11}"#),
        (409, "Exceeded MaxRequestBatch of 10".to_string())
    );
    assert_eq!(
        err(br#"{"batch":1,"expires":1000000001}"#),
        (409, "Exceeded MaxRequestExpires of 1s".to_string())
    );
    assert_eq!(
        err(br#"{"batch":1,"max_bytes":101}"#),
        (409, "Exceeded MaxRequestMaxBytes of 100".to_string())
    );
    // At the limits is fine.
    parse_pull_request(
        br#"{"batch":10,"expires":1000000000,"max_bytes":100,"idle_heartbeat":500000000}"#,
        &cfg,
    )
    .unwrap();
    let push = pull_config(r#"{"deliver_subject":"dlv"}"#);
    assert_eq!(
        parse_pull_request(b"", &push).unwrap_err(),
        (409, "Consumer is push based".to_string())
    );
}

#[test]
fn go_durations_format_like_go() {
    for (ns, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (100_000_000, "100ms"),
        (1_500_000, "1.5ms"),
        (SEC, "1s"),
        (1_500_000_000, "1.5s"),
        (60 * SEC, "1m0s"),
        (90 * SEC, "1m30s"),
        (3600 * SEC, "1h0m0s"),
        (3661 * SEC + 500_000_000, "1h1m1.5s"),
        (-SEC, "-1s"),
    ] {
        assert_eq!(format_go_duration(ns), text);
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips with what async-nats 0.51 sends and expects

/// async-nats' `create_consumer` body for a `pull::Config` with a durable name and explicit
/// acks (its serde output; Go-style defaults omitted).
const ASYNC_NATS_PULL: &str = r#"{"stream_name":"S","config":{"durable_name":"puller",
    "deliver_policy":"all","ack_policy":"explicit","ack_wait":0,"max_deliver":0,
    "replay_policy":"instant","max_waiting":0,"max_ack_pending":0,"num_replicas":0},
    "action":""}"#;

/// async-nats' push `OrderedConfig` (facts §5.7): ephemeral, ack none, max_deliver 1, flow
/// control with a 5 s heartbeat, 30 s inactivity, memory storage, R1.
const ASYNC_NATS_ORDERED: &str = r#"{"stream_name":"S","config":{
    "deliver_subject":"_INBOX.abc","deliver_policy":"by_start_sequence","opt_start_seq":7,
    "ack_policy":"none","max_deliver":1,"filter_subject":"orders.>","replay_policy":"instant",
    "flow_control":true,"idle_heartbeat":5000000000,"inactive_threshold":30000000000,
    "num_replicas":1,"mem_storage":true},"action":""}"#;

const ASYNC_NATS_MULTI_FILTER: &str = r#"{"stream_name":"S","config":{"durable_name":"multi",
    "name":"multi","deliver_policy":"last_per_subject","ack_policy":"explicit",
    "filter_subjects":["orders.new","audit"],"replay_policy":"instant",
    "metadata":{"team":"a"}},"action":"create"}"#;

fn info_for(config: ConsumerConfig, name: &str) -> ConsumerInfo {
    ConsumerInfo {
        stream_name: "S".into(),
        name: name.into(),
        created: "2024-01-02T03:04:05.123456789Z".into(),
        config,
        delivered: SequenceInfo::default(),
        ack_floor: SequenceInfo {
            consumer_seq: 1,
            stream_seq: 2,
            last_active: Some("2024-01-02T03:04:06Z".into()),
        },
        num_ack_pending: 0,
        num_redelivered: 0,
        num_waiting: 0,
        num_pending: 3,
        cluster: ClusterInfo {
            name: None,
            leader: "jetlog".into(),
            raft_group: None,
            replicas: None,
        },
        push_bound: false,
        paused: false,
        pause_remaining: 0,
        priority_groups: Vec::new(),
        ts: "2024-01-02T03:04:07Z".into(),
    }
}

/// Creates from the subject async-nats would use, normalizes, and has async-nats decode the
/// `ConsumerInfo` we would send back.
fn round_trip(subject: &str, body: &str) -> async_nats::jetstream::consumer::Info {
    let mut req = request(body);
    let name = check_create_subject(&tokens(subject), &mut req, 42).unwrap();
    let config = req.config.normalized(&stream()).unwrap();
    let json = serde_json::to_string(&info_for(config.clone(), &name)).unwrap();
    let info: async_nats::jetstream::consumer::Info =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("async-nats refused {json}: {e}"));
    assert_eq!(info.name, name);
    assert_eq!(info.num_pending, 3);
    assert_eq!(info.ack_floor.stream_sequence, 2);
    assert_eq!(
        info.cluster.clone().and_then(|c| c.leader).as_deref(),
        Some("jetlog")
    );
    // And our own type reads back what it wrote.
    let again: ConsumerConfig =
        serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(again, config);
    info
}

#[test]
fn async_nats_pull_consumer_round_trips() {
    use async_nats::jetstream::consumer::AckPolicy as NatsAck;
    let info = round_trip("CONSUMER.CREATE.S.puller", ASYNC_NATS_PULL);
    let cfg = info.config;
    assert_eq!(cfg.durable_name.as_deref(), Some("puller"));
    assert_eq!(cfg.ack_policy, NatsAck::Explicit);
    assert_eq!(cfg.ack_wait, std::time::Duration::from_secs(30));
    assert_eq!(
        (cfg.max_deliver, cfg.max_waiting, cfg.max_ack_pending),
        (-1, 512, 1000)
    );
    assert_eq!(cfg.num_replicas, 1);
    assert!(cfg.deliver_subject.is_none());
}

#[test]
fn async_nats_ordered_push_consumer_round_trips() {
    use async_nats::jetstream::consumer::DeliverPolicy as NatsDeliver;
    let info = round_trip("CONSUMER.CREATE.S", ASYNC_NATS_ORDERED);
    assert_eq!(info.name.len(), GENERATED_NAME_LEN);
    let cfg = info.config;
    assert_eq!(cfg.deliver_subject.as_deref(), Some("_INBOX.abc"));
    assert_eq!(
        cfg.deliver_policy,
        NatsDeliver::ByStartSequence { start_sequence: 7 }
    );
    assert_eq!(cfg.max_deliver, 1);
    assert_eq!(cfg.max_ack_pending, 0);
    assert!(cfg.flow_control && cfg.memory_storage);
    assert_eq!(cfg.idle_heartbeat, std::time::Duration::from_secs(5));
    assert_eq!(cfg.inactive_threshold, std::time::Duration::from_secs(30));
    assert_eq!(cfg.filter_subject, "orders.>");
}

#[test]
fn async_nats_multi_filter_durable_round_trips() {
    use async_nats::jetstream::consumer::DeliverPolicy as NatsDeliver;
    let info = round_trip("CONSUMER.CREATE.S.multi", ASYNC_NATS_MULTI_FILTER);
    let cfg = info.config;
    assert_eq!(cfg.filter_subjects, ["orders.new", "audit"]);
    assert_eq!(cfg.deliver_policy, NatsDeliver::LastPerSubject);
    assert_eq!(cfg.metadata.get("team").map(String::as_str), Some("a"));
    assert_eq!(cfg.name.as_deref(), Some("multi"));
}

#[test]
fn async_nats_consumer_config_serialisation_is_accepted() {
    // What async-nats itself serialises for a default pull config must parse and normalize.
    let theirs = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("d".into()),
        filter_subject: "orders.x".into(),
        ..Default::default()
    };
    let consumer: async_nats::jetstream::consumer::Config =
        async_nats::jetstream::consumer::IntoConsumerConfig::into_consumer_config(theirs);
    let body = serde_json::to_vec(&consumer).unwrap();
    let cfg: ConsumerConfig = from_go_json(&body).unwrap();
    let cfg = cfg.normalized(&stream()).unwrap();
    assert_eq!(cfg.filters(), ["orders.x"]);
    assert_eq!(cfg.ack_policy, AckPolicy::Explicit);
}
