//! JetStream on three real jetlog servers: a cluster whose meta group has a leader, and the
//! requests the cluster tests make of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::start_cluster_with;
use super::{within, TestServer};

/// How long a new cluster may take to elect its meta leader.
pub const META_READY: Duration = Duration::from_secs(30);

pub async fn connect(server: &TestServer) -> async_nats::Client {
    within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect")
}

/// A raw API request and its JSON answer.
pub async fn api(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let reply = within(
        subject,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("json")
}

/// Three servers whose meta group has a leader: `$JS.API.INFO` is answered.
pub async fn cluster() -> (Vec<TestServer>, Vec<async_nats::Client>) {
    cluster_of(3).await
}

/// [`cluster`] with `n` servers, S0 to S<n-1>.
pub async fn cluster_of(n: usize) -> (Vec<TestServer>, Vec<async_nats::Client>) {
    let servers = start_cluster_with(n, &["-m", "-1"]);
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(connect(server).await);
    }
    let deadline = Instant::now() + META_READY;
    loop {
        let asked = clients[0].request("$JS.API.INFO", "".into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(500), asked).await {
            let info: Value = serde_json::from_slice(&reply.payload).expect("json");
            if info.get("error").is_none() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no meta leader within {META_READY:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (servers, clients)
}

pub fn leader_of(info: &Value) -> String {
    info["cluster"]["leader"]
        .as_str()
        .unwrap_or_else(|| panic!("no leader in {info}"))
        .to_owned()
}

/// Asks `subject` until an answer without an error comes (bounded by `META_READY`).
pub async fn until_answered(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let deadline = Instant::now() + META_READY;
    loop {
        let asked = client.request(subject.to_string(), body.to_string().into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(1000), asked).await {
            let answer: Value = serde_json::from_slice(&reply.payload).expect("json");
            if answer.get("error").is_none() {
                return answer;
            }
        }
        assert!(Instant::now() < deadline, "{subject} not answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Streams A, B and C (on subjects a, b, c), made through `client`: one per server, as the
/// placement spreads them. By the server each runs on.
pub async fn three_streams(client: &async_nats::Client) -> BTreeMap<String, &'static str> {
    let mut host_of = BTreeMap::new();
    for name in ["A", "B", "C"] {
        let created = api(
            client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [name.to_lowercase()]}),
        )
        .await;
        host_of.insert(leader_of(&created), name);
    }
    host_of
}

/// The index of the server that logged itself as the meta leader.
pub fn meta_leader(servers: &[TestServer]) -> usize {
    servers
        .iter()
        .position(|s| s.log_contains("Self is new JetStream cluster metadata leader"))
        .expect("a meta leader logged itself")
}
