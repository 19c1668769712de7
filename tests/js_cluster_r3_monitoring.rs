//! A replicated stream's Raft group as the monitoring endpoints show it (issue 20), on three
//! real jetlog servers: `/jsz?raft=true` lists every group a server is a member of, with
//! its leader, term, log and applied index, and on the leader each other member's lag;
//! `/metrics` has the same as gauges.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{cluster, META_READY};
use common::monitor::{get, get_json};
use common::r3::{create_orders, info, publish_range, wait_for_replicas};
use serde_json::Value;

/// A server's report of the ORDERS group, once its machine has applied `applied` entries
/// or more (bounded).
fn orders_group(port: u16, applied: u64) -> Value {
    let deadline = Instant::now() + META_READY;
    loop {
        let jsz = get_json(port, "/jsz?raft=true&streams=true");
        let group = jsz["raft_groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["stream"] == "ORDERS"))
            .cloned();
        if let Some(group) = group.filter(|g| g["applied"].as_u64() >= Some(applied)) {
            return group;
        }
        assert!(Instant::now() < deadline, "no ORDERS group applied: {jsz}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsz_and_metrics_show_every_raft_group_with_its_leader_term_and_lag() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    assert_eq!(publish_range(&js, 0, 5).await, [1, 2, 3, 4, 5]);
    wait_for_replicas(&servers, 5);
    let stream = info(&clients[2]).await;
    let raft_group = stream["cluster"]["raft_group"]
        .as_str()
        .expect("raft_group");
    let leader = stream["cluster"]["leader"].as_str().expect("leader");

    let ports: Vec<u16> = servers
        .iter()
        .map(|s| s.monitor_port().expect("monitor"))
        .collect();
    // Every member has applied the five rounds; they agree on who leads and the term.
    let groups: Vec<Value> = ports.iter().map(|p| orders_group(*p, 5)).collect();
    for group in &groups {
        assert_eq!(group["group"], raft_group, "{group}");
        assert_eq!(group["account"], "$G", "{group}");
        assert_eq!(group["leader"], leader, "{group}");
        assert_eq!(group["term"], groups[0]["term"], "{group}");
        assert!(group["last_index"].as_u64() >= group["applied"].as_u64());
    }
    let leading: Vec<&Value> = groups.iter().filter(|g| g["state"] == "leader").collect();
    assert_eq!(leading.len(), 1, "{groups:?}");
    assert_eq!(
        groups.iter().filter(|g| g["state"] == "follower").count(),
        2
    );
    // The leader knows both others, caught up.
    let peers = leading[0]["peers"].as_array().expect("peers on the leader");
    assert_eq!(peers.len(), 2, "{}", leading[0]);
    assert!(peers.iter().all(|p| p["name"] != leader), "{}", leading[0]);

    // The meta group is listed first; the stream detail names the group, as nats-server's.
    let jsz = get_json(ports[0], "/jsz?raft=true&streams=true");
    assert_eq!(jsz["raft_groups"][0]["group"], "_meta_", "{jsz}");
    let detail = &jsz["account_details"][0]["stream_detail"][0];
    assert_eq!(detail["stream_raft_group"], raft_group, "{jsz}");
    let plain = get_json(ports[0], "/jsz?streams=true");
    assert!(plain.get("raft_groups").is_none(), "{plain}");
    let plain_detail = &plain["account_details"][0]["stream_detail"][0];
    assert!(plain_detail.get("stream_raft_group").is_none(), "{plain}");

    // /metrics: one leader of the group among the three, and the leader's peer lags.
    let mut leaders = 0;
    for (port, group) in ports.iter().zip(&groups) {
        let (_, _, body) = get(*port, "/metrics");
        let labels = format!("group=\"{raft_group}\",account=\"$G\",stream=\"ORDERS\"");
        let line = format!("jetlog_raft_leader{{{labels}}} ");
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("no {line} in {body}"));
        leaders += u32::from(value == "1");
        assert!(body.contains(&format!("jetlog_raft_term{{{labels}}} ")));
        assert!(body.contains("jetlog_raft_applied_index{group=\"_meta_\"} "));
        let lag_lines = body
            .lines()
            .filter(|l| l.starts_with(&format!("jetlog_raft_peer_lag{{group=\"{raft_group}\"")))
            .count();
        assert_eq!(lag_lines, if group["state"] == "leader" { 2 } else { 0 });
    }
    assert_eq!(leaders, 1);
}
