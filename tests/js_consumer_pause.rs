//! Consumer pause and resume (nats-server API level 1), with raw requests: the PAUSE API and
//! its advisories, a consumer created paused, and a pause (with a reset and a pin) across a
//! kill -9 restart. Expected replies follow docs/consumer-2.14-facts.md (nats-server's
//! behaviour).

mod common;

use std::time::{Duration, Instant};

use common::js_consumer::{
    ack, ack_info, advisory, call, call_raw, connect, create_ok, error, header, in_ms, info_ok,
    no_advisory, now_nanos, publish, rfc3339, setup, stream_seq, subscribe, time_of, unix_nanos,
    Puller, MS, SEC, ZERO_TIME,
};
use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn pause_api_pauses_resumes_reports_and_refuses_bad_requests() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    create_ok(
        &client,
        "c",
        json!({"durable_name":"c","ack_policy":"explicit"}),
    )
    .await;
    let mut advisories = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.S.c").await;
    let pause_type = "io.nats.jetstream.api.v1.consumer_pause_response";

    let until = in_ms(30_000);
    let paused = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.c",
        json!({"pause_until": rfc3339(until)}),
    )
    .await;
    assert_eq!(paused["type"], pause_type, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    assert!(paused.get("error").is_none(), "{paused}");
    assert_eq!(time_of(&paused["pause_until"], "reply"), until, "{paused}");
    let remaining = paused["pause_remaining"].as_u64().unwrap_or(0);
    assert!(
        remaining > 25 * SEC && remaining <= 30 * SEC,
        "pause_remaining {remaining}: {paused}"
    );

    let adv = advisory(&mut advisories, "pause advisory").await;
    assert_eq!(
        adv["type"], "io.nats.jetstream.advisory.v1.consumer_pause",
        "{adv}"
    );
    assert_eq!(
        (&adv["stream"], &adv["consumer"]),
        (&json!("S"), &json!("c")),
        "{adv}"
    );
    assert_eq!(adv["paused"], true, "{adv}");
    assert_eq!(time_of(&adv["pause_until"], "advisory"), until, "{adv}");
    assert!(!adv["id"].as_str().unwrap_or_default().is_empty(), "{adv}");
    let stamp = time_of(&adv["timestamp"], "advisory timestamp");
    assert!((stamp - now_nanos()).abs() < 10 * SEC as i64, "{adv}");

    let shown = info_ok(&client, "c").await;
    assert_eq!(shown["paused"], true, "{shown}");
    let remaining = shown["pause_remaining"].as_u64().unwrap_or(0);
    assert!(remaining > 20 * SEC && remaining <= 30 * SEC, "{shown}");
    assert_eq!(
        time_of(&shown["config"]["pause_until"], "info"),
        until,
        "{shown}"
    );

    // An update (same name, no pause_until) keeps the pause and sends no advisory.
    let update = create_ok(
        &client,
        "c",
        json!({"durable_name":"c","ack_policy":"explicit"}),
    )
    .await;
    assert_eq!(update["paused"], true, "{update}");
    assert_eq!(
        time_of(&update["config"]["pause_until"], "update"),
        until,
        "{update}"
    );
    assert_eq!(info_ok(&client, "c").await["paused"], true);
    no_advisory(&mut advisories, Duration::from_millis(200), "update").await;

    // An empty body resumes.
    let resumed = call_raw(&client, "$JS.API.CONSUMER.PAUSE.S.c", "").await;
    assert_eq!(
        resumed,
        json!({"type":pause_type,"paused":false,"pause_until":ZERO_TIME})
    );
    let adv = advisory(&mut advisories, "resume advisory").await;
    assert_eq!(
        (&adv["paused"], &adv["pause_until"]),
        (&json!(false), &json!(ZERO_TIME)),
        "{adv}"
    );
    let shown = info_ok(&client, "c").await;
    for key in ["paused", "pause_remaining"] {
        assert!(shown.get(key).is_none(), "{key} after resume: {shown}");
    }
    assert!(shown["config"].get("pause_until").is_none(), "{shown}");
    // A second resume (`{}`) changes nothing and sends no advisory.
    let again = call(&client, "$JS.API.CONSUMER.PAUSE.S.c", json!({})).await;
    assert_eq!(
        again,
        json!({"type":pause_type,"paused":false,"pause_until":ZERO_TIME})
    );
    no_advisory(&mut advisories, Duration::from_millis(300), "second resume").await;

    // Another time zone is accepted and echoed in UTC; `{}` resumes.
    let until2 = in_ms(40_000);
    // The same instant at +05:00: the UTC text of five hours later, with the offset for `Z`.
    let utc_plus_5 = rfc3339(until2 + 5 * 3600 * SEC as i64);
    let at_plus_5 = format!("{}+05:00", utc_plus_5.strip_suffix('Z').unwrap());
    let paused = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.c",
        json!({"pause_until": at_plus_5}),
    )
    .await;
    assert_eq!(paused["paused"], true, "{paused}");
    let echoed = paused["pause_until"].as_str().unwrap_or_default();
    assert!(echoed.ends_with('Z'), "{paused}");
    assert_eq!(unix_nanos(echoed), until2, "{paused}");
    assert_eq!(advisory(&mut advisories, "pause 2").await["paused"], true);
    let resumed = call(&client, "$JS.API.CONSUMER.PAUSE.S.c", json!({})).await;
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert_eq!(advisory(&mut advisories, "resume 2").await["paused"], false);

    // A time in the past is stored but does not pause.
    let past = "2020-01-01T00:00:00Z";
    let reply = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.c",
        json!({"pause_until": past}),
    )
    .await;
    assert_eq!(reply["paused"], false, "{reply}");
    assert_eq!(
        time_of(&reply["pause_until"], "past"),
        unix_nanos(past),
        "{reply}"
    );
    assert!(reply.get("pause_remaining").is_none(), "{reply}");
    let adv = advisory(&mut advisories, "past pause advisory").await;
    assert_eq!(adv["paused"], false, "{adv}");
    let shown = info_ok(&client, "c").await;
    assert!(shown.get("paused").is_none(), "{shown}");
    assert_eq!(
        time_of(&shown["config"]["pause_until"], "past"),
        unix_nanos(past),
        "{shown}"
    );
    let reply = call(&client, "$JS.API.CONSUMER.PAUSE.S.c", json!({})).await;
    assert_eq!(reply["paused"], false, "{reply}");
    advisory(&mut advisories, "resume after past").await;

    // Errors.
    let reply = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.c",
        json!({"pause_until": rfc3339(in_ms(30_000)), "foo": 1}),
    )
    .await;
    assert_eq!(reply["type"], pause_type, "{reply}");
    assert_eq!(
        (&reply["error"]["code"], &reply["error"]["err_code"]),
        (&json!(400), &json!(10025)),
        "{reply}"
    );
    assert!(
        reply["error"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("\"foo\""),
        "{reply}"
    );
    let reply = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.c",
        json!({"pause_until": "tomorrow"}),
    )
    .await;
    assert_eq!(
        (&reply["error"]["code"], &reply["error"]["err_code"]),
        (&json!(400), &json!(10025)),
        "{reply}"
    );
    assert!(
        reply["error"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("tomorrow"),
        "{reply}"
    );
    let body = json!({"pause_until": rfc3339(in_ms(30_000))});
    let reply = call(&client, "$JS.API.CONSUMER.PAUSE.NOPE.c", body.clone()).await;
    assert_eq!(
        reply["error"],
        error(404, 10059, "stream not found"),
        "{reply}"
    );
    let reply = call(&client, "$JS.API.CONSUMER.PAUSE.S.nope", body).await;
    assert_eq!(
        reply["error"],
        error(404, 10014, "consumer not found"),
        "{reply}"
    );
    assert_eq!(reply["type"], pause_type, "{reply}");
    // nats-server's error replies carry `"paused":false` and the zero time; checked at the
    // end so a difference does not hide the rest.
    let missing_consumer = reply;
    // None of the refused requests paused the consumer.
    let shown = info_ok(&client, "c").await;
    assert!(shown.get("paused").is_none(), "{shown}");
    no_advisory(
        &mut advisories,
        Duration::from_millis(200),
        "refused requests",
    )
    .await;

    // An update carrying a future pause_until does not pause an unpaused consumer.
    let update = create_ok(
        &client,
        "c",
        json!({"durable_name":"c","ack_policy":"explicit","pause_until": rfc3339(in_ms(30_000))}),
    )
    .await;
    assert!(update.get("paused").is_none(), "{update}");
    assert!(info_ok(&client, "c").await.get("paused").is_none());

    assert_eq!(
        (
            &missing_consumer["paused"],
            &missing_consumer["pause_until"]
        ),
        (&json!(false), &json!(ZERO_TIME)),
        "error reply: {missing_consumer}"
    );
}

#[tokio::test]
async fn a_consumer_created_paused_queues_pulls_and_serves_them_at_the_deadline() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    for i in 1..=3 {
        publish(&client, "s.x", &format!("m{i}")).await;
    }
    let mut advisories = subscribe(&client, "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.S.p").await;
    let deadline_at = Instant::now() + Duration::from_millis(2500);
    let deadline = in_ms(2500);
    let created = create_ok(
        &client,
        "p",
        json!({"durable_name":"p","ack_policy":"explicit","pause_until": rfc3339(deadline)}),
    )
    .await;
    assert_eq!(created["paused"], true, "{created}");
    assert!(
        created["pause_remaining"].as_u64().unwrap_or(0) > 0,
        "{created}"
    );
    assert_eq!(
        time_of(&created["config"]["pause_until"], "create"),
        deadline
    );
    let adv = advisory(&mut advisories, "pause advisory on create").await;
    assert_eq!(adv["paused"], true, "{adv}");
    assert_eq!(time_of(&adv["pause_until"], "advisory"), deadline, "{adv}");

    let mut puller = Puller::new(&client, "p").await;
    // no_wait gets 404 at once, even with messages pending.
    let sent = Instant::now();
    puller.pull(json!({"batch":1,"no_wait":true})).await;
    puller
        .status(404, "No Messages", "no_wait while paused")
        .await;
    assert!(sent.elapsed() < Duration::from_millis(900));
    // A request that expires before the deadline gets nothing but its 408.
    let sent = Instant::now();
    puller.pull(json!({"batch":1,"expires":500 * MS})).await;
    puller
        .status(408, "Request Timeout", "expiring while paused")
        .await;
    assert!(sent.elapsed() >= Duration::from_millis(400));
    // A request still waiting at the deadline is served then.
    puller.pull(json!({"batch":2,"expires":10 * SEC})).await;
    let first = puller.message("delivery at the deadline").await;
    let early = deadline_at.checked_duration_since(Instant::now());
    assert!(
        early.is_none_or(|d| d < Duration::from_millis(150)),
        "delivered {early:?} before the deadline"
    );
    assert_eq!(stream_seq(&first), 1);
    assert_eq!(stream_seq(&puller.message("second").await), 2);

    let adv = advisory(&mut advisories, "advisory at the deadline").await;
    assert_eq!(adv["paused"], false, "{adv}");
    assert_eq!(
        time_of(&adv["pause_until"], "deadline advisory"),
        deadline,
        "{adv}"
    );
    let shown = info_ok(&client, "p").await;
    assert!(shown.get("paused").is_none(), "{shown}");
    assert!(shown.get("pause_remaining").is_none(), "{shown}");
    assert_eq!(
        time_of(&shown["config"]["pause_until"], "kept"),
        deadline,
        "{shown}"
    );
    assert_eq!(shown["delivered"]["stream_seq"], 2, "{shown}");
}

#[tokio::test]
async fn pause_reset_and_pins_across_a_kill_restart() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    for i in 1..=5 {
        publish(&client, "s.k", &format!("k{i}")).await;
    }
    create_ok(
        &client,
        "kp",
        json!({"durable_name":"kp","ack_policy":"explicit"}),
    )
    .await;
    let until = in_ms(3_600_000);
    let paused = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.kp",
        json!({"pause_until": rfc3339(until)}),
    )
    .await;
    assert_eq!(paused["paused"], true, "{paused}");
    // Paused until a deadline that passes while the server is down.
    create_ok(
        &client,
        "kq",
        json!({"durable_name":"kq","ack_policy":"explicit"}),
    )
    .await;
    let short = in_ms(1000);
    let paused = call(
        &client,
        "$JS.API.CONSUMER.PAUSE.S.kq",
        json!({"pause_until": rfc3339(short)}),
    )
    .await;
    assert_eq!(paused["paused"], true, "{paused}");

    create_ok(
        &client,
        "kr",
        json!({"durable_name":"kr","ack_policy":"explicit"}),
    )
    .await;
    let mut p = Puller::new(&client, "kr").await;
    p.pull(json!({"batch":2,"no_wait":true})).await;
    for _ in 0..2 {
        let m = p.message("before reset").await;
        ack(&client, &m).await;
    }
    let reply = call(&client, "$JS.API.CONSUMER.RESET.S.kr", json!({"seq":4})).await;
    assert_eq!(reply["reset_seq"], 4, "{reply}");

    create_ok(
        &client,
        "kpin",
        json!({"durable_name":"kpin","ack_policy":"explicit","priority_policy":"pinned_client",
            "priority_groups":["g"]}),
    )
    .await;
    let mut pin = Puller::new(&client, "kpin").await;
    pin.pull(json!({"batch":1,"group":"g","expires":5 * SEC}))
        .await;
    let m = pin.message("pinned").await;
    assert!(header(&m, "Nats-Pin-Id").is_some_and(|id| !id.is_empty()));

    drop(client);
    let store = server.kill_and_take_store();
    // Let kq's deadline pass while the server is down.
    let wait = (short - now_nanos()).max(0) as u64 + 200 * MS;
    tokio::time::sleep(Duration::from_nanos(wait)).await;
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;

    let shown = info_ok(&client, "kp").await;
    assert_eq!(shown["paused"], true, "{shown}");
    assert!(
        shown["pause_remaining"].as_u64().unwrap_or(0) > 3000 * SEC,
        "{shown}"
    );
    assert_eq!(
        time_of(&shown["config"]["pause_until"], "kp"),
        until,
        "{shown}"
    );
    let mut p = Puller::new(&client, "kp").await;
    p.pull(json!({"batch":1,"no_wait":true})).await;
    p.status(404, "No Messages", "paused after restart").await;

    let shown = info_ok(&client, "kq").await;
    assert!(shown.get("paused").is_none(), "{shown}");
    assert_eq!(
        time_of(&shown["config"]["pause_until"], "kq"),
        short,
        "{shown}"
    );

    let shown = info_ok(&client, "kr").await;
    for key in ["delivered", "ack_floor"] {
        assert_eq!(
            (&shown[key]["consumer_seq"], &shown[key]["stream_seq"]),
            (&json!(0), &json!(3)),
            "{key}: {shown}"
        );
    }
    assert_eq!(shown["num_pending"], 2, "{shown}");
    let mut p = Puller::new(&client, "kr").await;
    p.pull(json!({"batch":1,"no_wait":true})).await;
    assert_eq!(ack_info(&p.message("after restart").await), (1, 4, 1));

    // The pin does not survive.
    let shown = info_ok(&client, "kpin").await;
    assert_eq!(shown["priority_groups"][0]["group"], "g", "{shown}");
    assert!(
        shown["priority_groups"][0]
            .get("pinned_client_id")
            .is_none(),
        "{shown}"
    );
}
