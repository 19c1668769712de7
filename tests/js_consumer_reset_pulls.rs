//! Consumer reset (nats-server API level 4), pull-request edge cases (timeouts, refusals,
//! max_waiting, Requests Pending, inactive durables) and ephemeral and last_per_subject
//! consumers across a kill -9 restart, with raw requests. Expected replies follow
//! docs/consumer-2.14-facts.md (nats-server's behaviour); the few places where jetlog answers
//! on purpose where nats-server does not are marked.

mod common;

use std::time::{Duration, Instant};

use common::js_consumer::{
    ack, ack_info, call, call_raw, connect, create_ok, describe, error, info, info_ok, publish,
    setup, stream_seq, wait_for_waiting, wait_until_deleted, Puller, MS, SEC,
};
use common::{within, TestServer};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Reset

#[tokio::test]
async fn reset_restarts_delivery_at_the_ack_floor_or_a_given_sequence() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    for i in 1..=10 {
        publish(&client, "s.r", &format!("r{i}")).await;
    }
    create_ok(
        &client,
        "r",
        json!({"durable_name":"r","ack_policy":"explicit"}),
    )
    .await;
    let mut p = Puller::new(&client, "r").await;
    p.pull(json!({"batch":4,"no_wait":true})).await;
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(p.message("first four").await);
    }
    for i in [0, 1, 3] {
        ack(&client, &first[i]).await;
    }
    let reset_type = "io.nats.jetstream.api.v1.consumer_reset_response";

    // Empty body: back to ack floor + 1; acks above the floor are forgotten.
    let reply = call_raw(&client, "$JS.API.CONSUMER.RESET.S.r", "").await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["type"], reset_type, "{reply}");
    assert_eq!(reply["reset_seq"], 3, "{reply}");
    assert_eq!(
        (&reply["name"], &reply["stream_name"]),
        (&json!("r"), &json!("S")),
        "{reply}"
    );
    assert_eq!(reply["config"]["durable_name"], "r", "{reply}");
    for key in ["delivered", "ack_floor"] {
        assert_eq!(
            (&reply[key]["consumer_seq"], &reply[key]["stream_seq"]),
            (&json!(0), &json!(2)),
            "{key}: {reply}"
        );
    }
    assert_eq!(
        (
            &reply["num_ack_pending"],
            &reply["num_redelivered"],
            &reply["num_pending"]
        ),
        (&json!(0), &json!(0), &json!(8)),
        "{reply}"
    );
    p.pull(json!({"batch":2,"no_wait":true})).await;
    assert_eq!(ack_info(&p.message("after reset").await), (1, 3, 1));
    assert_eq!(ack_info(&p.message("after reset").await), (1, 4, 2));

    // `{"seq":N}` restarts at N.
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.r", json!({"seq":8})).await;
    assert_eq!(reply["reset_seq"], 8, "{reply}");
    assert_eq!(reply["delivered"]["stream_seq"], 7, "{reply}");
    assert_eq!(reply["num_pending"], 3, "{reply}");
    assert_eq!(reply["num_ack_pending"], 0, "{reply}");
    p.pull(json!({"batch":1,"no_wait":true})).await;
    assert_eq!(ack_info(&p.message("after reset to 8").await), (1, 8, 1));

    // The async-nats client's reset.
    let js = async_nats::jetstream::new(client.clone());
    let stream = within("get stream", js.get_stream("S")).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        within("get consumer", stream.get_consumer("r"))
            .await
            .unwrap();
    let reset = within("client reset", consumer.reset(Some(2)))
        .await
        .unwrap();
    assert_eq!(reset.reset_seq, 2);
    assert_eq!(reset.info.delivered.stream_sequence, 1);
    assert_eq!(reset.info.delivered.consumer_sequence, 0);
    assert_eq!(reset.info.num_pending, 9);

    // Past the end: accepted, and later publishes stay unseen.
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.r", json!({"seq":100})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["reset_seq"], 100, "{reply}");
    assert_eq!(reply["num_pending"], 0, "{reply}");
    publish(&client, "s.r", "r11").await;
    publish(&client, "s.r", "r12").await;
    assert_eq!(info_ok(&client, "r").await["num_pending"], 0);
    p.pull(json!({"batch":1,"no_wait":true})).await;
    p.status(404, "No Messages", "reset past the end").await;

    // Errors. nats-server's error replies carry `"reset_seq":0`; checked at the end so a
    // missing one does not hide the rest.
    let mut error_replies = Vec::new();
    let reply = call_raw(&client, "$JS.API.CONSUMER.RESET.S.r", r#"{"seq":-1}"#).await;
    assert_eq!(
        (&reply["error"]["code"], &reply["error"]["err_code"]),
        (&json!(400), &json!(10025)),
        "{reply}"
    );
    assert_eq!(reply["type"], reset_type, "{reply}");
    error_replies.push(reply);
    // jetlog answers a missing consumer (nats-server leaves the request unanswered).
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.nope", json!({})).await;
    assert_eq!(
        reply["error"],
        error(404, 10014, "consumer not found"),
        "{reply}"
    );

    create_ok(
        &client,
        "bs",
        json!({"durable_name":"bs","ack_policy":"explicit","deliver_policy":"by_start_sequence",
            "opt_start_seq":5}),
    )
    .await;
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.bs", json!({"seq":3})).await;
    assert_eq!(
        reply["error"],
        error(400, 10204, "invalid reset: below start seq"),
        "{reply}"
    );
    assert_eq!(reply["type"], reset_type, "{reply}");
    error_replies.push(reply);
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.bs", json!({"seq":6})).await;
    assert_eq!(reply["reset_seq"], 6, "{reply}");
    let reply = call_raw(&client, "$JS.API.CONSUMER.RESET.S.bs", "").await;
    assert!(reply.get("error").is_none(), "{reply}");
    for (name, policy) in [("nw", "new"), ("lt", "last"), ("lps", "last_per_subject")] {
        create_ok(
            &client,
            name,
            json!({"durable_name":name,"ack_policy":"explicit","deliver_policy":policy,
                "filter_subject":"s.>"}),
        )
        .await;
        let subject = format!("$JS.API.CONSUMER.RESET.S.{name}");
        let reply = call(&client, &subject, json!({"seq":1})).await;
        assert_eq!(
            reply["error"],
            error(400, 10204, "invalid reset: not allowed"),
            "{policy}: {reply}"
        );
        error_replies.push(reply);
        let reply = call(&client, &subject, json!({"seq":0})).await;
        assert!(reply.get("error").is_none(), "{policy} seq 0: {reply}");
    }
    for reply in error_replies {
        assert_eq!(
            reply["reset_seq"], 0,
            "error reply without reset_seq 0: {reply}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pull requests

#[tokio::test]
async fn pull_requests_time_out_refuse_and_report_as_nats_server_does() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    create_ok(
        &client,
        "e",
        json!({"durable_name":"e","ack_policy":"explicit","filter_subject":"s.e"}),
    )
    .await;
    let mut p = Puller::new(&client, "e").await;
    // no_wait with expires and nothing pending waits, then 408 (not 404).
    let sent = Instant::now();
    p.pull(json!({"batch":1,"no_wait":true,"expires":SEC}))
        .await;
    p.status(408, "Request Timeout", "no_wait + expires").await;
    assert!(
        sent.elapsed() >= Duration::from_millis(800),
        "{:?}",
        sent.elapsed()
    );
    p.pull(json!({"batch":1,"no_wait":true})).await;
    p.status(404, "No Messages", "no_wait").await;
    // Priority fields on a consumer without a policy.
    p.pull(json!({"batch":1,"min_pending":1})).await;
    p.status(
        400,
        "Bad Request - Not a Overflow Priority consumer",
        "min_pending",
    )
    .await;
    p.pull(json!({"batch":1,"min_ack_pending":1})).await;
    p.status(
        400,
        "Bad Request - Not a Overflow Priority consumer",
        "min_ack_pending",
    )
    .await;
    p.pull(json!({"batch":1,"id":"x"})).await;
    p.status(
        400,
        "Bad Request - Not a Pinned Client Priority consumer",
        "id",
    )
    .await;
    p.pull(json!({"batch":1,"priority":10})).await;
    p.status(
        400,
        "Bad Request - Priority must be between 0 and 9",
        "priority",
    )
    .await;
    p.pull(json!({"batch":1,"group":"zz","priority":3,"no_wait":true}))
        .await;
    p.status(404, "No Messages", "group and priority ignored")
        .await;

    // A full queue: 409, except that a request with idle_heartbeat is dropped silently.
    create_ok(
        &client,
        "mw",
        json!({"durable_name":"mw","ack_policy":"explicit","filter_subject":"s.mw","max_waiting":1}),
    )
    .await;
    let mut w1 = Puller::new(&client, "mw").await;
    let mut w2 = Puller::new(&client, "mw").await;
    let mut w3 = Puller::new(&client, "mw").await;
    w1.pull(json!({"batch":1,"expires":5 * SEC})).await;
    wait_for_waiting(&client, "mw", 1).await;
    w2.pull(json!({"batch":1,"expires":5 * SEC})).await;
    w2.status(409, "Exceeded MaxWaiting", "second request")
        .await;
    w3.pull(json!({"batch":1,"expires":5 * SEC,"idle_heartbeat":500 * MS}))
        .await;
    w3.silent_for(
        Duration::from_millis(1500),
        "heartbeat request on a full queue",
    )
    .await;
    w1.silent_for(Duration::from_millis(10), "w1 still waiting")
        .await;

    // 408 Requests Pending: waiting requests already claim every available message.
    create_ok(
        &client,
        "rp",
        json!({"durable_name":"rp","ack_policy":"explicit","filter_subject":"s.rp",
            "max_ack_pending":1}),
    )
    .await;
    publish(&client, "s.rp", "1").await;
    publish(&client, "s.rp", "2").await;
    let mut r1 = Puller::new(&client, "rp").await;
    r1.pull(json!({"batch":1,"no_wait":true})).await;
    assert_eq!(stream_seq(&r1.message("first").await), 1);
    let mut r2 = Puller::new(&client, "rp").await;
    r2.pull(json!({"batch":5,"expires":5 * SEC})).await;
    wait_for_waiting(&client, "rp", 1).await;
    let mut r3 = Puller::new(&client, "rp").await;
    let sent = Instant::now();
    r3.pull(json!({"batch":1,"no_wait":true})).await;
    let m = r3.next("no_wait behind a blocked request").await;
    assert_eq!(
        (m.status.map(|s| s.as_u16()), m.description.as_deref()),
        (Some(408), Some("Requests Pending")),
        "{}",
        describe(&m)
    );
    assert!(sent.elapsed() < Duration::from_secs(2));
    r2.silent_for(Duration::from_millis(10), "blocked by max_ack_pending")
        .await;

    // A durable with inactive_threshold goes away when unused.
    create_ok(
        &client,
        "dur",
        json!({"durable_name":"dur","ack_policy":"explicit","inactive_threshold":SEC}),
    )
    .await;
    let took = wait_until_deleted(&client, "dur", Duration::from_secs(6)).await;
    assert!(took >= Duration::from_millis(700), "deleted after {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Restarts

#[tokio::test]
async fn ephemeral_and_last_per_subject_consumers_across_a_kill_restart() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    for (subject, n) in [("s.a", 3), ("s.b", 2), ("s.c", 1)] {
        for i in 0..n {
            publish(&client, subject, &format!("{subject}{i}")).await;
        }
    }
    let eph = create_ok(
        &client,
        "eph",
        json!({"name":"eph","ack_policy":"explicit","inactive_threshold":2 * SEC}),
    )
    .await;
    assert!(eph["config"].get("durable_name").is_none(), "{eph}");
    let mut p = Puller::new(&client, "eph").await;
    p.pull(json!({"batch":2,"no_wait":true})).await;
    for seq in 1..=2 {
        let m = p.message("ephemeral").await;
        assert_eq!(stream_seq(&m), seq);
        ack(&client, &m).await;
    }
    create_ok(
        &client,
        "meph",
        json!({"name":"meph","ack_policy":"explicit","mem_storage":true,
            "inactive_threshold":60 * SEC}),
    )
    .await;
    let lps = create_ok(
        &client,
        "lps",
        json!({"durable_name":"lps","ack_policy":"explicit","deliver_policy":"last_per_subject",
            "filter_subject":"s.*"}),
    )
    .await;
    assert_eq!(lps["num_pending"], 3, "{lps}");
    let mut p = Puller::new(&client, "lps").await;
    p.pull(json!({"batch":1,"no_wait":true})).await;
    let m = p.message("last per subject").await;
    assert_eq!(stream_seq(&m), 3);
    ack(&client, &m).await;

    drop(client);
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let back = Instant::now();
    let client = connect(&server).await;

    // The file-stored ephemeral is back, still ephemeral, with its state.
    let shown = info_ok(&client, "eph").await;
    assert!(shown["config"].get("durable_name").is_none(), "{shown}");
    assert_eq!(shown["config"]["inactive_threshold"], 2 * SEC, "{shown}");
    assert_eq!(shown["delivered"]["stream_seq"], 2, "{shown}");
    assert_eq!(shown["ack_floor"]["stream_seq"], 2, "{shown}");
    // The memory-stored one is gone.
    assert_eq!(
        info(&client, "meph").await["error"],
        error(404, 10014, "consumer not found")
    );
    // last_per_subject continues with the remaining last messages only (jetlog keeps the
    // start list; nats-server loses it and would deliver 4 as well).
    let shown = info_ok(&client, "lps").await;
    assert_eq!(shown["num_pending"], 2, "{shown}");
    let mut p = Puller::new(&client, "lps").await;
    p.pull(json!({"batch":3,"no_wait":true})).await;
    assert_eq!(ack_info(&p.message("after restart").await), (1, 5, 2));
    assert_eq!(ack_info(&p.message("after restart").await), (1, 6, 3));
    p.status(404, "No Messages", "end of the start list").await;

    // The ephemeral is deleted after its inactive_threshold, counted from the restart.
    wait_until_deleted(&client, "eph", Duration::from_secs(8)).await;
    let since_back = back.elapsed();
    assert!(
        since_back >= Duration::from_millis(1500),
        "ephemeral deleted {since_back:?} after the restart"
    );
}
