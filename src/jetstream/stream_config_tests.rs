use super::*;

fn parse(json: &str) -> StreamConfig {
    serde_json::from_str(json).expect("valid JSON")
}

fn error_of(json: &str) -> ApiError {
    parse(json).normalized().expect_err("should be refused")
}

#[test]
fn defaults_are_filled_in_as_nats_server_does() {
    let cfg = parse(r#"{"name":"ORDERS"}"#).normalized().unwrap();
    assert_eq!(cfg.subjects, ["ORDERS"]);
    assert_eq!(
        (cfg.max_msgs, cfg.max_bytes, cfg.max_consumers),
        (-1, -1, -1)
    );
    assert_eq!((cfg.max_msgs_per_subject, cfg.max_msg_size), (-1, -1));
    assert_eq!(cfg.duplicate_window, DEFAULT_DUPLICATE_WINDOW_NS);
    assert_eq!(cfg.num_replicas, 1);
    assert_eq!(cfg.compression, "none");
    let json = serde_json::to_value(&cfg).unwrap();
    for field in [
        "name",
        "retention",
        "discard",
        "storage",
        "num_replicas",
        "consumer_limits",
        "allow_direct",
    ] {
        assert!(json.get(field).is_some(), "{field} is always echoed");
    }
    assert_eq!(json["retention"], "limits");
    assert_eq!(json["consumer_limits"], serde_json::json!({}));
    assert!(json.get("description").is_none());
}

#[test]
fn a_short_max_age_shortens_the_duplicate_window() {
    let cfg = parse(r#"{"name":"S","max_age":60000000000}"#)
        .normalized()
        .unwrap();
    assert_eq!(cfg.duplicate_window, 60_000_000_000);
}

#[test]
fn enums_are_read_case_insensitively_and_bad_values_refused() {
    let cfg = parse(r#"{"name":"S","discard":"NEW","retention":"WorkQueue","storage":"Memory"}"#);
    assert_eq!(
        (cfg.discard, cfg.retention, cfg.storage),
        (Discard::New, Retention::WorkQueue, Storage::Memory)
    );
    assert!(serde_json::from_str::<StreamConfig>(r#"{"name":"S","discard":"sideways"}"#).is_err());
    assert!(serde_json::from_str::<StreamConfig>(r#"{"name":"S","max_msgs":"ten"}"#).is_err());
}

#[test]
fn invalid_names_are_refused() {
    for name in ["", "a.b", "a*", "a>", "a b", "a/b", "a\\\\b", "a\\tb"] {
        let err = error_of(&format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(err.err_code, 10052, "{name:?}");
    }
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(error_of(&format!(r#"{{"name":"{long}"}}"#)).err_code, 10052);
    assert!(is_valid_name(&"x".repeat(MAX_NAME_BYTES)));
}

#[test]
fn invalid_configs_get_nats_server_texts() {
    let cases = [
        (
            r#"{"name":"S","max_age":50000000}"#,
            "max age needs to be >= 100ms",
        ),
        (
            r#"{"name":"S","max_age":-1}"#,
            "max age can not be negative",
        ),
        (
            r#"{"name":"S","duplicate_window":-5}"#,
            "duplicates window can not be negative",
        ),
        (
            r#"{"name":"S","max_age":60000000000,"duplicate_window":120000000000}"#,
            "duplicates window can not be larger then max age",
        ),
        (
            r#"{"name":"S","deny_purge":true,"allow_rollup_hdrs":true}"#,
            "roll-ups require the purge permission",
        ),
        (
            r#"{"name":"S","discard_new_per_subject":true,"max_msgs_per_subject":5}"#,
            "discard new per subject requires discard new policy to be set",
        ),
        (
            r#"{"name":"S","discard":"new","discard_new_per_subject":true}"#,
            "discard new per subject requires max msgs per subject > 0",
        ),
        (
            r#"{"name":"S","subjects":["a","a"]}"#,
            "duplicate subjects detected",
        ),
        (
            r#"{"name":"S","subjects":["a.>","a.b"]}"#,
            "subject \"a.>\" overlaps with \"a.b\"",
        ),
        (
            r#"{"name":"S","subjects":["a..b"]}"#,
            "invalid subject \"a..b\"",
        ),
        (
            r#"{"name":"S","subjects":[">"]}"#,
            "subjects that overlap with jetstream api require no-ack to be true",
        ),
        (r#"{"name":"S","num_replicas":6}"#, "maximum replicas is 5"),
        (r#"{"name":"S","sources":[{"name":"S"}]}"#, "detected cycle"),
    ];
    for (json, text) in cases {
        let err = error_of(json);
        assert_eq!(
            (err.code, err.err_code, err.description.as_str()),
            (500, 10052, text),
            "{json}"
        );
    }
    assert_eq!(error_of(r#"{"name":"S","num_replicas":3}"#).err_code, 10074);
    assert!(parse(r#"{"name":"S","subjects":[">"],"no_ack":true}"#)
        .normalized()
        .is_ok());
    assert!(parse(r#"{"name":"S","subjects":["$JS.EVENT.x"]}"#)
        .normalized()
        .is_ok());
}

#[test]
fn updates_follow_nats_server_rules() {
    let base = parse(r#"{"name":"S","deny_delete":true}"#)
        .normalized()
        .unwrap();
    let mut new = base.clone();
    new.max_msgs = 10;
    assert!(base.check_update(&new).is_ok());
    new.storage = Storage::Memory;
    assert!(base.check_update(&new).is_err());
    let mut new = base.clone();
    new.deny_delete = false;
    assert!(base.check_update(&new).is_err());
    let mut new = base.clone();
    new.retention = Retention::WorkQueue;
    assert!(base.check_update(&new).is_err());
    let mut new = base.clone();
    new.retention = Retention::Interest;
    assert!(base.check_update(&new).is_ok());
}

/// Found by the `js_api_request` fuzz target: placement was kept as raw JSON, and a number in
/// it (here an integer too large for u64, which serde_json reads as a float) came back one
/// unit in the last place off when a client sent the echoed config back, so the config the
/// server echoed was not the config it then took.
#[test]
fn placement_keeps_nats_fields_and_echoes_exactly() {
    let config = parse(
        r#"{"name":"S","placement":{"cluster":"c","tags":["t"],
            "x":120777777777777777777777777777777777777777777777777777777777777777777777}}"#,
    )
    .normalized()
    .expect("valid");
    let placement = Placement {
        cluster: "c".to_string(),
        tags: vec!["t".to_string()],
    };
    assert_eq!(config.placement.as_ref(), Some(&placement));
    let echoed = serde_json::to_string(&config).expect("serialises");
    assert!(
        echoed.contains(r#""placement":{"cluster":"c","tags":["t"]}"#),
        "{echoed}"
    );
    assert_eq!(parse(&echoed).normalized(), Ok(config));
    let empty = parse(r#"{"name":"S","placement":{}}"#)
        .normalized()
        .expect("valid");
    let echoed = serde_json::to_string(&empty).expect("serialises");
    assert!(echoed.contains(r#""placement":{}"#), "{echoed}");
}

/// `persist_mode` reads as Go reads it and is checked as nats-server 2.15.1 checks it.
#[test]
fn persist_mode_is_read_exactly_and_checked() {
    let config = parse(r#"{"name":"S","persist_mode":"async"}"#)
        .normalized()
        .expect("valid");
    assert_eq!(config.persist_mode, PersistMode::Async);
    let echoed = serde_json::to_string(&config).expect("serialises");
    assert!(echoed.contains(r#""persist_mode":"async""#), "{echoed}");
    for default in [r#""""#, r#""default""#] {
        let json = format!(r#"{{"name":"S","persist_mode":{default}}}"#);
        let config = parse(&json).normalized().expect("valid");
        let echoed = serde_json::to_string(&config).expect("serialises");
        assert!(!echoed.contains("persist_mode"), "{echoed}");
    }
    assert!(
        serde_json::from_str::<StreamConfig>(r#"{"name":"S","persist_mode":"Async"}"#).is_err()
    );
    for (extra, text) in [
        (
            r#""storage":"memory""#,
            "async persist mode is only supported on file storage",
        ),
        (
            r#""allow_atomic":true"#,
            "async persist mode is not supported with atomic batch publish",
        ),
    ] {
        let json = format!(r#"{{"name":"S","persist_mode":"async",{extra}}}"#);
        assert_eq!(parse(&json).normalized().unwrap_err().description, text);
    }
    let mut other = config.clone();
    other.persist_mode = PersistMode::Default;
    assert_eq!(
        config.check_update(&other).unwrap_err().description,
        "stream configuration update can not change persist mode"
    );
}
