//! The JetStream API with raw requests: exact error JSON for bad input, paging, filters, and
//! subjects we do not serve.

mod common;

use bytes::Bytes;
use common::{within, TestServer};
use serde_json::{json, Value};

struct Api {
    client: async_nats::Client,
}

impl Api {
    async fn new(server: &TestServer) -> Self {
        let client = within("connect", async_nats::connect(server.url()))
            .await
            .expect("connect");
        Self { client }
    }

    async fn call(&self, subject: &str, body: &str) -> Value {
        let reply = within(
            subject,
            self.client
                .request(subject.to_string(), Bytes::copy_from_slice(body.as_bytes())),
        )
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
        serde_json::from_slice(&reply.payload).expect("JSON reply")
    }

    async fn create(&self, name: &str, body: Value) -> Value {
        self.call(&format!("$JS.API.STREAM.CREATE.{name}"), &body.to_string())
            .await
    }

    async fn publish(&self, subject: &str) {
        let reply = within(
            "ack",
            self.client
                .request(subject.to_string(), Bytes::from_static(b"x")),
        )
        .await
        .unwrap();
        let ack: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(ack["seq"].as_u64().is_some_and(|s| s > 0), "{ack}");
    }
}

fn error(code: u64, err_code: u64, description: &str) -> Value {
    json!({ "code": code, "err_code": err_code, "description": description })
}

#[tokio::test]
async fn malformed_and_mistyped_requests_get_invalid_json_errors() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    for body in [
        "{not json",
        r#"{"name":"S","max_msgs":"ten"}"#,
        r#"{"name":"S","retention":"sometimes"}"#,
    ] {
        let reply = api.call("$JS.API.STREAM.CREATE.S", body).await;
        assert_eq!(
            reply["type"],
            "io.nats.jetstream.api.v1.stream_create_response"
        );
        assert_eq!(
            (
                reply["error"]["code"].clone(),
                reply["error"]["err_code"].clone()
            ),
            (json!(400), json!(10025)),
            "{body}: {reply}"
        );
        assert!(
            reply["error"]["description"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON: "),
            "{reply}"
        );
    }
    let reply = api.call("$JS.API.STREAM.CREATE.S", "").await;
    assert_eq!(reply["error"]["err_code"], 10003);
}

#[tokio::test]
async fn invalid_names_are_refused_and_never_touch_the_file_system() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    let invalid = error(
        500,
        10052,
        "stream name is required and can not contain '.', '*', '>'",
    );
    for name in ["a*b", "x>y"] {
        let reply = api.create(name, json!({ "name": name })).await;
        assert_eq!(reply["error"], invalid, "{name}");
    }
    // nats-server checks for path separators first, with an error of their own.
    let separators = error(400, 10128, "Stream name can not contain path separators");
    for name in ["a/b", "a\\b"] {
        let reply = api.create(name, json!({ "name": name })).await;
        assert_eq!(reply["error"], separators, "{name}");
    }
    let reply = api.create("OK", json!({ "name": "../escape" })).await;
    assert_eq!(
        reply["error"],
        error(400, 10056, "stream name in subject does not match request")
    );
    let long = "n".repeat(256);
    assert_eq!(api.create(&long, json!({})).await["error"], invalid);
    let entries: Vec<_> = std::fs::read_dir(server.store.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        entries.iter().all(|e| e == "meta" || e == "streams"),
        "{entries:?}"
    );
    let parent: Vec<_> = std::fs::read_dir(server.store.path().parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "escape")
        .collect();
    assert!(parent.is_empty());
}

#[tokio::test]
async fn invalid_configs_get_nats_server_errors() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    let cases = [
        (
            json!({"name":"S","max_age":50_000_000}),
            error(500, 10052, "max age needs to be >= 100ms"),
        ),
        (
            json!({"name":"S","num_replicas":3}),
            error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            json!({"name":"S","subjects":["a","a"]}),
            error(500, 10052, "duplicate subjects detected"),
        ),
        (
            json!({"name":"S","subjects":["a.>","a.b"]}),
            error(500, 10052, "subject \"a.>\" overlaps with \"a.b\""),
        ),
        (
            json!({"name":"S","sealed":true}),
            error(
                500,
                10052,
                "stream configuration for create can not be sealed",
            ),
        ),
        (
            json!({"name":"S","deny_purge":true,"allow_rollup_hdrs":true}),
            error(500, 10052, "roll-ups require the purge permission"),
        ),
    ];
    for (body, expected) in cases {
        let reply = api.create("S", body.clone()).await;
        assert_eq!(reply["error"], expected, "{body}");
    }
    assert!(api
        .create("ONE", json!({"subjects":["one.>"]}))
        .await
        .get("error")
        .is_none());
    let reply = api.create("TWO", json!({"subjects":["one.two"]})).await;
    assert_eq!(
        reply["error"],
        error(400, 10065, "subjects overlap with an existing stream")
    );
    let reply = api
        .create("ONE", json!({"subjects":["one.>"], "max_msgs": 5}))
        .await;
    assert_eq!(
        reply["error"],
        error(
            400,
            10058,
            "stream name already in use with a different configuration"
        )
    );
}

#[tokio::test]
async fn updates_may_change_limits_but_not_what_nats_server_forbids() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    api.create("U", json!({"subjects":["u.>"], "deny_delete": true}))
        .await;
    let update = |body: Value| {
        let api = &api;
        async move { api.call("$JS.API.STREAM.UPDATE.U", &body.to_string()).await }
    };
    let ok =
        update(json!({"name":"U","subjects":["u.>","v.>"],"deny_delete":true,"max_msgs":10})).await;
    assert_eq!(ok["config"]["max_msgs"], 10, "{ok}");
    assert_eq!(ok["config"]["subjects"], json!(["u.>", "v.>"]));
    api.publish("v.x").await;
    let reply =
        update(json!({"name":"U","subjects":["u.>"],"storage":"memory","deny_delete":true})).await;
    assert_eq!(
        reply["error"],
        error(
            500,
            10052,
            "stream configuration update can not change storage type"
        )
    );
    let reply = update(json!({"name":"U","subjects":["u.>"]})).await;
    assert_eq!(
        reply["error"],
        error(
            500,
            10052,
            "stream configuration update can not cancel deny message deletes"
        )
    );
    let reply = api
        .call("$JS.API.STREAM.UPDATE.NOPE", r#"{"name":"NOPE"}"#)
        .await;
    assert_eq!(reply["error"], error(404, 10059, "stream not found"));
}

#[tokio::test]
async fn info_names_and_list_with_filters_and_paging() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    for (name, subject) in [("A", "a.>"), ("B", "b.>"), ("C", "c.*")] {
        api.create(name, json!({ "subjects": [subject] })).await;
    }
    let names = api.call("$JS.API.STREAM.NAMES", "").await;
    assert_eq!(names["streams"], json!(["A", "B", "C"]));
    assert_eq!(
        (names["total"].clone(), names["limit"].clone()),
        (json!(3), json!(1024))
    );
    let filtered = api
        .call("$JS.API.STREAM.NAMES", r#"{"subject":"c.x"}"#)
        .await;
    assert_eq!(filtered["streams"], json!(["C"]));
    let page = api.call("$JS.API.STREAM.LIST", r#"{"offset":1}"#).await;
    let listed: Vec<_> = page["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["config"]["name"].clone())
        .collect();
    assert_eq!(listed, [json!("B"), json!("C")]);
    assert_eq!(
        page["type"],
        "io.nats.jetstream.api.v1.stream_list_response"
    );

    for subject in ["a.1", "a.2", "a.1", "a.3"] {
        api.publish(subject).await;
    }
    api.call("$JS.API.STREAM.MSG.DELETE.A", r#"{"seq":2}"#)
        .await;
    let info = api
        .call(
            "$JS.API.STREAM.INFO.A",
            r#"{"subjects_filter":"a.*","deleted_details":true}"#,
        )
        .await;
    assert_eq!(info["state"]["subjects"], json!({"a.1": 2, "a.3": 1}));
    assert_eq!(info["state"]["deleted"], json!([2]));
    assert_eq!(info["state"]["num_deleted"], 1);
    assert_eq!(
        info["cluster"]["leader"].as_str().map(str::is_empty),
        Some(false)
    );
    let info = api.call("$JS.API.STREAM.INFO.A", "").await;
    assert!(info["state"].get("subjects").is_none());
    assert_eq!(
        api.call("$JS.API.STREAM.INFO.Z", "").await["error"],
        error(404, 10059, "stream not found")
    );
}

#[tokio::test]
async fn message_get_purge_and_delete_errors() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    api.create("M", json!({ "subjects": ["m.*"], "deny_delete": true }))
        .await;
    for subject in ["m.a", "m.b", "m.a"] {
        api.publish(subject).await;
    }
    let got = api
        .call(
            "$JS.API.STREAM.MSG.GET.M",
            r#"{"next_by_subj":"m.a","seq":2}"#,
        )
        .await;
    assert_eq!(
        (
            got["message"]["seq"].clone(),
            got["message"]["subject"].clone()
        ),
        (json!(3), json!("m.a"))
    );
    assert_eq!(got["message"]["data"], "eA==");
    let missing = api.call("$JS.API.STREAM.MSG.GET.M", r#"{"seq":9}"#).await;
    assert_eq!(missing["error"], error(404, 10037, "no message found"));
    assert_eq!(
        api.call("$JS.API.STREAM.MSG.GET.M", "").await["error"]["err_code"],
        10003
    );
    let denied = api
        .call("$JS.API.STREAM.MSG.DELETE.M", r#"{"seq":1}"#)
        .await;
    assert_eq!(
        denied["error"],
        error(500, 10057, "message delete not permitted")
    );
    let both = api
        .call("$JS.API.STREAM.PURGE.M", r#"{"seq":2,"keep":1}"#)
        .await;
    assert_eq!(both["error"]["err_code"], 10003);
    let purged = api
        .call("$JS.API.STREAM.PURGE.M", r#"{"filter":"m.a"}"#)
        .await;
    assert_eq!(
        (purged["success"].clone(), purged["purged"].clone()),
        (json!(true), json!(2))
    );
}

#[tokio::test]
async fn subjects_we_do_not_serve_get_clear_answers() {
    let server = TestServer::start(&[]);
    let api = Api::new(&server).await;
    let unknown = api.call("$JS.API.NO.SUCH.THING", "").await;
    assert_eq!(unknown["error"], error(400, 10003, "bad request"));
    // Served since API level 1: a pause of a consumer of a missing stream is told so.
    let paused = api.call("$JS.API.CONSUMER.PAUSE.S.c", "{}").await;
    assert_eq!(paused["error"], error(404, 10059, "stream not found"));
    let missing = api.call("$JS.API.CONSUMER.INFO.NOPE.c", "").await;
    assert_eq!(missing["error"], error(404, 10059, "stream not found"));
    // Served since the backups were built: an empty snapshot request is nats-server's bad
    // request, before the stream is even looked up.
    let snapshot = api.call("$JS.API.STREAM.SNAPSHOT.S", "{}").await;
    assert_eq!(snapshot["error"], error(400, 10003, "bad request"));
    // Direct get without allow_direct and pull requests nobody owns: no responders, at once.
    api.create("ND", json!({ "subjects": ["nd"] })).await;
    for subject in ["$JS.API.DIRECT.GET.ND", "$JS.API.CONSUMER.MSG.NEXT.ND.c"] {
        let err = within(
            subject,
            api.client
                .request(subject.to_string(), Bytes::from_static(b"{\"seq\":1}")),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.kind(),
            async_nats::RequestErrorKind::NoResponders,
            "{subject}"
        );
    }
    let account = api.call("$JS.API.INFO", "").await;
    assert_eq!(
        account["type"],
        "io.nats.jetstream.api.v1.account_info_response"
    );
    assert!(account["api"]["errors"].as_u64().unwrap() >= 3);
    assert_eq!(account["reserved_memory"], 0);
}
