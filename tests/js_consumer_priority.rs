//! Consumer priority groups (nats-server API levels 1–4), with raw requests: config checks
//! at create, pinned_client with UNPIN and priority_timeout, overflow thresholds, prioritized
//! levels. Expected replies follow docs/consumer-2.14-facts.md (nats-server's behaviour); the few places where jetlog answers
//! on purpose where nats-server does not are marked.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::js_consumer::{
    ack, advisory, call, create, create_ok, describe, error, header, info, info_ok, no_advisory,
    publish, setup, stream_seq, subscribe, time_of, wait_for_waiting, Puller, GROUP_NAME_ERROR, MS,
    SEC, ZERO_TIME,
};
use common::TestServer;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Config

#[tokio::test]
async fn priority_configs_are_checked_at_create_and_unknown_fields_are_refused() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let group_17 = "abcdefghijklmnopq";
    let cases = [
        (
            json!({"durable_name":"a","priority_policy":"pinned_client"}),
            error(
                400,
                10159,
                "Setting PriorityPolicy requires at least one PriorityGroup to be set",
            ),
        ),
        (
            json!({"durable_name":"b","priority_groups":["g"]}),
            error(
                400,
                10196,
                "consumer can not have priority groups when policy is none",
            ),
        ),
        (
            json!({"durable_name":"b","priority_groups":["g"],"priority_policy":"none"}),
            error(
                400,
                10196,
                "consumer can not have priority groups when policy is none",
            ),
        ),
        (
            json!({"durable_name":"c","priority_timeout":SEC}),
            error(
                400,
                10197,
                "PinnedTTL cannot be set when PriorityPolicy is none",
            ),
        ),
        (
            json!({"durable_name":"d","priority_policy":"overflow","priority_groups":[""]}),
            error(400, 10161, "Group name cannot be an empty string"),
        ),
        (
            json!({"durable_name":"d","priority_policy":"overflow","priority_groups":["a.b"]}),
            error(400, 10162, GROUP_NAME_ERROR),
        ),
        (
            json!({"durable_name":"d","priority_policy":"pinned_client","priority_groups":[group_17]}),
            error(400, 10162, GROUP_NAME_ERROR),
        ),
        (
            json!({"durable_name":"f","deliver_subject":"push.f","priority_policy":"overflow",
                "priority_groups":["g"]}),
            error(
                400,
                10178,
                "priority groups can not be used with push consumers",
            ),
        ),
    ];
    for (config, expected) in cases {
        let name = config["durable_name"].as_str().unwrap().to_string();
        let reply = create(&client, &name, config.clone()).await;
        assert_eq!(reply["error"], expected, "{config}");
        assert_eq!(
            reply["type"], "io.nats.jetstream.api.v1.consumer_create_response",
            "{config}"
        );
    }
    let bogus = create(
        &client,
        "e",
        json!({"durable_name":"e","priority_policy":"bogus","priority_groups":["g"]}),
    )
    .await;
    assert_eq!(
        (&bogus["error"]["code"], &bogus["error"]["err_code"]),
        (&json!(400), &json!(10025)),
        "{bogus}"
    );
    let text = bogus["error"]["description"].as_str().unwrap_or_default();
    assert!(text.contains("bogus"), "{bogus}");
    for name in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(
            info(&client, name).await["error"],
            error(404, 10014, "consumer not found"),
            "refused consumer {name} exists"
        );
    }

    // Valid configs; priority_timeout defaults to 2 min only for pinned_client.
    let pin = create_ok(
        &client,
        "pin",
        json!({"durable_name":"pin","ack_policy":"explicit","priority_policy":"pinned_client",
            "priority_groups":["g"]}),
    )
    .await;
    assert_eq!(pin["config"]["priority_policy"], "pinned_client", "{pin}");
    assert_eq!(pin["config"]["priority_groups"], json!(["g"]), "{pin}");
    assert_eq!(pin["config"]["priority_timeout"], 120 * SEC, "{pin}");
    assert_eq!(
        pin["priority_groups"],
        json!([{"group":"g","pinned_ts":ZERO_TIME}]),
        "{pin}"
    );
    let ovf = create_ok(
        &client,
        "ovf",
        json!({"durable_name":"ovf","ack_policy":"explicit","priority_policy":"overflow",
            "priority_groups":["g"],"priority_timeout":5 * SEC}),
    )
    .await;
    assert_eq!(ovf["config"]["priority_timeout"], 5 * SEC, "{ovf}");
    let ovf2 = create_ok(
        &client,
        "ovf2",
        json!({"durable_name":"ovf2","ack_policy":"explicit","priority_policy":"overflow",
            "priority_groups":["g"]}),
    )
    .await;
    assert!(
        ovf2["config"].get("priority_timeout").is_none(),
        "overflow got a default priority_timeout: {ovf2}"
    );
    // Several groups are accepted; only the first is reported in the state.
    let pri = create_ok(
        &client,
        "pri",
        json!({"durable_name":"pri","ack_policy":"explicit","priority_policy":"prioritized",
            "priority_groups":["g1","g2"]}),
    )
    .await;
    assert_eq!(pri["config"]["priority_policy"], "prioritized", "{pri}");
    assert_eq!(
        pri["config"]["priority_groups"],
        json!(["g1", "g2"]),
        "{pri}"
    );
    assert_eq!(
        pri["priority_groups"],
        json!([{"group":"g1","pinned_ts":ZERO_TIME}]),
        "{pri}"
    );
    // Without a policy, none of the fields are emitted.
    let plain = create_ok(
        &client,
        "plain",
        json!({"durable_name":"plain","ack_policy":"explicit"}),
    )
    .await;
    for key in [
        "priority_policy",
        "priority_groups",
        "priority_timeout",
        "pause_until",
    ] {
        assert!(plain["config"].get(key).is_none(), "{key}: {plain}");
    }
    for key in ["priority_groups", "paused", "pause_remaining"] {
        assert!(plain.get(key).is_none(), "{key}: {plain}");
    }
    // Updates may change the priority fields.
    let updated = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.ovf",
        json!({"stream_name":"S","action":"update","config":{"durable_name":"ovf",
            "ack_policy":"explicit","priority_policy":"pinned_client","priority_groups":["h"],
            "priority_timeout":5 * SEC}}),
    )
    .await;
    assert!(updated.get("error").is_none(), "{updated}");
    assert_eq!(
        updated["config"]["priority_policy"], "pinned_client",
        "{updated}"
    );
    assert_eq!(
        updated["config"]["priority_groups"],
        json!(["h"]),
        "{updated}"
    );

    // Unknown config fields with a value are refused (nats-server's strict mode); fields
    // nats-server knows but jetlog does not implement are refused as unsupported.
    let unsupported = |field: &str| {
        error(
            500,
            10012,
            &format!("consumer config field \"{field}\" is not supported by jetlog"),
        )
    };
    for (name, field, value, expected) in [
        (
            "x1",
            "colour",
            json!("blue"),
            error(400, 10025, "invalid JSON: json: unknown field \"colour\""),
        ),
        ("x2", "direct", json!(true), unsupported("direct")),
        ("x3", "sourcing", json!(true), unsupported("sourcing")),
    ] {
        let mut config = json!({"durable_name":name,"ack_policy":"explicit"});
        config[field] = value;
        let reply = create(&client, name, config.clone()).await;
        assert_eq!(reply["error"], expected, "{config}: {reply}");
        assert_eq!(
            info(&client, name).await["error"],
            error(404, 10014, "consumer not found")
        );
    }
    // ... but their zero values are accepted (jetlog: older clients send zero-valued fields).
    for (name, value) in [("z1", json!("")), ("z2", json!(false)), ("z3", json!(0))] {
        let reply = create_ok(
            &client,
            name,
            json!({"durable_name":name,"ack_policy":"explicit","colour":value}),
        )
        .await;
        assert_eq!(reply["config"]["durable_name"], name, "{reply}");
        assert!(reply["config"].get("colour").is_none(), "{reply}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pinned client, overflow and prioritized

#[tokio::test]
async fn pinned_client_pins_one_puller_and_unpin_moves_the_pin() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    create_ok(
        &client,
        "pin",
        json!({"durable_name":"pin","ack_policy":"explicit","priority_policy":"pinned_client",
            "priority_groups":["g"]}),
    )
    .await;
    let mut pinned_adv = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.pin").await;
    let mut unpinned_adv = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.S.pin").await;
    publish(&client, "s.p", "m1").await;
    publish(&client, "s.p", "m2").await;

    let mut bad = Puller::new(&client, "pin").await;
    let cases: [(&[u8], &str); 6] = [
        (br#"{"batch":1}"#, "Bad Request - Priority Group missing"),
        (
            br#"{"batch":1,"group":"x"}"#,
            "Bad Request - Invalid Priority Group",
        ),
        (
            br#"{"batch":1,"group":"g","min_pending":1}"#,
            "Bad Request - Not a Overflow Priority consumer",
        ),
        (
            br#"{"batch":1,"group":"g","priority":10}"#,
            "Bad Request - Priority must be between 0 and 9",
        ),
        // jetlog: an empty or numeric body is refused (nats-server serves it unpinned).
        (b"", "Bad Request - Priority Group missing"),
        (b"1", "Bad Request - Priority Group missing"),
    ];
    for (body, text) in cases {
        bad.pull_raw(Bytes::copy_from_slice(body)).await;
        bad.status(400, text, &String::from_utf8_lossy(body)).await;
    }

    // The first request is pinned.
    let mut a = Puller::new(&client, "pin").await;
    a.pull(json!({"batch":1,"group":"g","expires":5 * SEC}))
        .await;
    let m1 = a.message("first pinned delivery").await;
    assert_eq!(&m1.payload[..], b"m1");
    let id1 = header(&m1, "Nats-Pin-Id").unwrap_or_default();
    assert!(!id1.is_empty(), "no Nats-Pin-Id: {}", describe(&m1));
    let adv = advisory(&mut pinned_adv, "pinned advisory").await;
    assert_eq!(
        adv["type"], "io.nats.jetstream.advisory.v1.consumer_group_pinned",
        "{adv}"
    );
    assert_eq!(
        (
            &adv["stream"],
            &adv["consumer"],
            &adv["group"],
            &adv["pinned_id"]
        ),
        (&json!("S"), &json!("pin"), &json!("g"), &json!(id1)),
        "{adv}"
    );
    let shown = info_ok(&client, "pin").await;
    let groups = shown["priority_groups"]
        .as_array()
        .expect("priority_groups");
    assert_eq!(groups.len(), 1, "{shown}");
    assert_eq!(
        (&groups[0]["group"], &groups[0]["pinned_client_id"]),
        (&json!("g"), &json!(id1)),
        "{shown}"
    );
    assert!(time_of(&groups[0]["pinned_ts"], "pinned_ts") > 0, "{shown}");

    // Another client without an id waits and times out; m2 is held for the pin.
    let mut b = Puller::new(&client, "pin").await;
    let sent = Instant::now();
    b.pull(json!({"batch":1,"group":"g","expires":SEC})).await;
    b.status(408, "Request Timeout", "unpinned client").await;
    assert!(sent.elapsed() >= Duration::from_millis(800));
    b.pull(json!({"batch":1,"group":"g","no_wait":true})).await;
    b.status(404, "No Messages", "unpinned no_wait").await;
    // A wrong id is refused at once.
    let sent = Instant::now();
    b.pull(json!({"batch":1,"group":"g","id":"wrong","expires":5 * SEC}))
        .await;
    b.status(423, "Nats-Pin-Id mismatch", "wrong id").await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    // The pinned client gets m2 with the same id.
    a.pull(json!({"batch":1,"group":"g","id":id1,"expires":5 * SEC}))
        .await;
    let m2 = a.message("second pinned delivery").await;
    assert_eq!(&m2.payload[..], b"m2");
    assert_eq!(header(&m2, "Nats-Pin-Id").as_deref(), Some(id1.as_str()));
    ack(&client, &m1).await;
    ack(&client, &m2).await;

    // m3 is held while b waits; UNPIN hands the pin to b at once.
    publish(&client, "s.p", "m3").await;
    b.pull(json!({"batch":1,"group":"g","expires":8 * SEC}))
        .await;
    b.silent_for(Duration::from_millis(300), "b while a holds the pin")
        .await;
    let reply = call(
        &client,
        "$JS.API.CONSUMER.UNPIN.S.pin",
        json!({"group":"g"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"io.nats.jetstream.api.v1.consumer_unpin_response"})
    );
    let adv = advisory(&mut unpinned_adv, "unpinned advisory").await;
    assert_eq!(
        adv["type"], "io.nats.jetstream.advisory.v1.consumer_group_unpinned",
        "{adv}"
    );
    assert_eq!(
        (
            &adv["stream"],
            &adv["consumer"],
            &adv["group"],
            &adv["reason"]
        ),
        (&json!("S"), &json!("pin"), &json!("g"), &json!("admin")),
        "{adv}"
    );
    let m3 = b.message("delivery after unpin").await;
    assert_eq!(&m3.payload[..], b"m3");
    let id2 = header(&m3, "Nats-Pin-Id").unwrap_or_default();
    assert!(
        !id2.is_empty() && id2 != id1,
        "new pin {id2:?} after {id1:?}"
    );
    let adv = advisory(&mut pinned_adv, "second pinned advisory").await;
    assert_eq!(adv["pinned_id"], json!(id2), "{adv}");
    let shown = info_ok(&client, "pin").await;
    assert_eq!(
        shown["priority_groups"][0]["pinned_client_id"],
        json!(id2),
        "{shown}"
    );
    // The old holder's id is now a mismatch.
    a.pull(json!({"batch":1,"group":"g","id":id1,"expires":5 * SEC}))
        .await;
    a.status(423, "Nats-Pin-Id mismatch", "old holder").await;

    // UNPIN errors.
    let unpin_type = "io.nats.jetstream.api.v1.consumer_unpin_response";
    let cases = [
        (
            "$JS.API.CONSUMER.UNPIN.S.pin",
            json!({"group":"h"}),
            error(
                400,
                10160,
                "Provided priority group does not exist for this consumer",
            ),
        ),
        (
            "$JS.API.CONSUMER.UNPIN.S.pin",
            json!({"group":"a.b"}),
            error(400, 10162, GROUP_NAME_ERROR),
        ),
        (
            "$JS.API.CONSUMER.UNPIN.S.pin",
            json!({}),
            error(400, 10025, "invalid JSON: consumer group not specified"),
        ),
        (
            "$JS.API.CONSUMER.UNPIN.S.nope",
            json!({"group":"g"}),
            error(404, 10014, "consumer not found"),
        ),
        (
            "$JS.API.CONSUMER.UNPIN.NOPE.pin",
            json!({"group":"g"}),
            error(404, 10059, "stream not found"),
        ),
    ];
    for (subject, body, expected) in cases {
        let reply = call(&client, subject, body.clone()).await;
        assert_eq!(reply["error"], expected, "{subject} {body}");
        assert_eq!(reply["type"], unpin_type, "{subject} {body}");
    }
    // None of them unpinned.
    let shown = info_ok(&client, "pin").await;
    assert_eq!(
        shown["priority_groups"][0]["pinned_client_id"],
        json!(id2),
        "{shown}"
    );
    no_advisory(
        &mut unpinned_adv,
        Duration::from_millis(200),
        "refused unpins",
    )
    .await;
}

#[tokio::test]
async fn priority_timeout_unpins_an_idle_pin_and_requests_with_the_id_keep_it() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let created = create_ok(
        &client,
        "pt",
        json!({"durable_name":"pt","ack_policy":"explicit","priority_policy":"pinned_client",
            "priority_groups":["g"],"priority_timeout":SEC}),
    )
    .await;
    assert_eq!(created["config"]["priority_timeout"], SEC, "{created}");
    let mut pinned_adv = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.pt").await;
    let mut unpinned_adv = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.S.pt").await;
    publish(&client, "s.t", "m1").await;
    publish(&client, "s.t", "m2").await;

    let mut a = Puller::new(&client, "pt").await;
    a.pull(json!({"batch":1,"group":"g","expires":5 * SEC}))
        .await;
    let m1 = a.message("pinned delivery").await;
    let pinned_at = Instant::now();
    let id1 = header(&m1, "Nats-Pin-Id").unwrap_or_default();
    assert!(!id1.is_empty(), "{}", describe(&m1));
    assert_eq!(
        advisory(&mut pinned_adv, "pinned").await["pinned_id"],
        json!(id1)
    );

    let adv = advisory(&mut unpinned_adv, "unpinned by timeout").await;
    let after = pinned_at.elapsed();
    assert_eq!(
        (&adv["group"], &adv["reason"]),
        (&json!("g"), &json!("timeout")),
        "{adv}"
    );
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "unpinned {after:?} after the pin"
    );
    let shown = info_ok(&client, "pt").await;
    assert!(
        shown["priority_groups"][0]
            .get("pinned_client_id")
            .is_none(),
        "{shown}"
    );

    // With no pin held, the stale id gets 423 Nats-Wrong-Pin-Id when a message is ready.
    a.pull(json!({"batch":1,"group":"g","id":id1,"expires":5 * SEC}))
        .await;
    let wrong = a.status(423, "Nats-Wrong-Pin-Id", "stale id").await;
    assert_eq!(
        header(&wrong, "Nats-Pending-Messages").as_deref(),
        Some("1"),
        "{}",
        describe(&wrong)
    );
    // The next request without an id gets m2 and a new pin.
    let mut b = Puller::new(&client, "pt").await;
    b.pull(json!({"batch":1,"group":"g","expires":5 * SEC}))
        .await;
    let m2 = b.message("delivery to the new pin").await;
    assert_eq!(&m2.payload[..], b"m2");
    let id2 = header(&m2, "Nats-Pin-Id").unwrap_or_default();
    assert!(
        !id2.is_empty() && id2 != id1,
        "new pin {id2:?} after {id1:?}"
    );
    assert_eq!(
        advisory(&mut pinned_adv, "new pin").await["pinned_id"],
        json!(id2)
    );

    // Requests carrying the pin restart its timer: 5 × 300 ms outlast the 1 s timeout.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.pull(json!({"batch":1,"group":"g","id":id2,"no_wait":true}))
            .await;
        b.status(404, "No Messages", "renewing the pin").await;
    }
    no_advisory(
        &mut unpinned_adv,
        Duration::from_millis(100),
        "while renewed",
    )
    .await;
    let shown = info_ok(&client, "pt").await;
    assert_eq!(
        shown["priority_groups"][0]["pinned_client_id"],
        json!(id2),
        "{shown}"
    );
    let adv = advisory(&mut unpinned_adv, "timeout after renewals stop").await;
    assert_eq!(adv["reason"], "timeout", "{adv}");
}

#[tokio::test]
async fn overflow_serves_requests_only_above_their_thresholds() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    create_ok(
        &client,
        "ovf",
        json!({"durable_name":"ovf","ack_policy":"explicit","priority_policy":"overflow",
            "priority_groups":["g"]}),
    )
    .await;
    for i in 1..=20 {
        publish(&client, "s.o", &format!("o{i}")).await;
    }
    let mut p = Puller::new(&client, "ovf").await;
    // Checked per message: pending 20, 19, 18 qualify, 17 does not.
    p.pull(json!({"batch":5,"group":"g","min_pending":18,"expires":SEC}))
        .await;
    for seq in 1..=3 {
        assert_eq!(stream_seq(&p.message("min_pending 18").await), seq);
    }
    let timeout = p.status(408, "Request Timeout", "below min_pending").await;
    assert_eq!(
        header(&timeout, "Nats-Pending-Messages").as_deref(),
        Some("2")
    );
    // min_pending or min_ack_pending: 3 unacked ≥ 3.
    p.pull(json!({"batch":1,"group":"g","min_pending":18,"min_ack_pending":3,"expires":SEC}))
        .await;
    assert_eq!(stream_seq(&p.message("min_ack_pending 3").await), 4);
    p.pull(json!({"batch":1,"group":"g","min_pending":100,"expires":500 * MS}))
        .await;
    p.status(408, "Request Timeout", "min_pending 100").await;
    p.pull(json!({"batch":1,"group":"g","min_ack_pending":100,"expires":500 * MS}))
        .await;
    p.status(408, "Request Timeout", "min_ack_pending 100")
        .await;
    // No thresholds: always served; `priority` is ignored on overflow.
    p.pull(json!({"batch":2,"group":"g","no_wait":true})).await;
    assert_eq!(stream_seq(&p.message("no thresholds").await), 5);
    assert_eq!(stream_seq(&p.message("no thresholds").await), 6);
    p.pull(json!({"batch":1,"group":"g","priority":3,"no_wait":true}))
        .await;
    assert_eq!(stream_seq(&p.message("priority ignored").await), 7);
    // Status replies.
    p.pull(json!({"batch":1,"group":"g","id":"x"})).await;
    p.status(
        400,
        "Bad Request - Not a Pinned Client Priority consumer",
        "id",
    )
    .await;
    p.pull(json!({"batch":1,"group":"g","priority":10})).await;
    p.status(
        400,
        "Bad Request - Priority must be between 0 and 9",
        "priority",
    )
    .await;
    p.pull(json!({"batch":1,"min_pending":1})).await;
    p.status(400, "Bad Request - Priority Group missing", "no group")
        .await;
    p.pull(json!({"batch":1,"group":"h"})).await;
    p.status(400, "Bad Request - Invalid Priority Group", "group h")
        .await;
    // A waiting request is served as soon as publishes lift pending to its threshold.
    assert_eq!(info_ok(&client, "ovf").await["num_pending"], 13);
    p.pull(json!({"batch":1,"group":"g","min_pending":15,"expires":8 * SEC}))
        .await;
    p.silent_for(Duration::from_millis(300), "pending 13 < 15")
        .await;
    publish(&client, "s.o", "o21").await;
    p.silent_for(Duration::from_millis(300), "pending 14 < 15")
        .await;
    publish(&client, "s.o", "o22").await;
    assert_eq!(stream_seq(&p.message("pending reached 15").await), 8);
}

#[tokio::test]
async fn prioritized_serves_lower_priorities_first_and_round_robins_within_a_level() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    create_ok(
        &client,
        "pri",
        json!({"durable_name":"pri","ack_policy":"explicit","priority_policy":"prioritized",
            "priority_groups":["g"]}),
    )
    .await;
    let mut p5 = Puller::new(&client, "pri").await;
    let mut p1 = Puller::new(&client, "pri").await;
    let mut p1b = Puller::new(&client, "pri").await;
    let mut p0 = Puller::new(&client, "pri").await;
    p5.pull(json!({"batch":1,"group":"g","priority":5,"expires":8 * SEC}))
        .await;
    p1.pull(json!({"batch":2,"group":"g","priority":1,"expires":8 * SEC}))
        .await;
    p1b.pull(json!({"batch":2,"group":"g","priority":1,"expires":8 * SEC}))
        .await;
    // A missing priority means 0.
    p0.pull(json!({"batch":1,"group":"g","expires":8 * SEC}))
        .await;
    wait_for_waiting(&client, "pri", 4).await;
    for i in 0..6 {
        publish(&client, "s.q", &format!("q{i}")).await;
    }
    let mut got = Vec::new();
    for (name, puller, n) in [
        ("p0", &mut p0, 1),
        ("p1", &mut p1, 2),
        ("p1'", &mut p1b, 2),
        ("p5", &mut p5, 1),
    ] {
        let mut payloads = Vec::new();
        for _ in 0..n {
            let m = puller.message(name).await;
            payloads.push(String::from_utf8_lossy(&m.payload).to_string());
        }
        got.push((name, payloads));
    }
    let expected = [
        ("p0", vec!["q0"]),
        ("p1", vec!["q1", "q3"]),
        ("p1'", vec!["q2", "q4"]),
        ("p5", vec!["q5"]),
    ];
    let expected: Vec<(&str, Vec<String>)> = expected
        .into_iter()
        .map(|(n, v)| (n, v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(got, expected);
    p0.pull(json!({"batch":1,"group":"g","priority":10})).await;
    p0.status(
        400,
        "Bad Request - Priority must be between 0 and 9",
        "priority 10",
    )
    .await;
    p0.pull(json!({"batch":1,"group":"g","priority":-1})).await;
    p0.status(
        400,
        "Bad Request - Priority must be between 0 and 9",
        "priority -1",
    )
    .await;
}
