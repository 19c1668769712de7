//! A replicated stream's Raft group as the monitoring endpoints show it (issue 20), on three
//! real jetlog servers: `/jsz?raft=true` lists every group a server is a member of, with
//! its leader, term, log and applied index, and on the leader each other member's lag;
//! `/metrics` has the same as gauges.

mod cli_support;
mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use cli_support::jetlog_at;
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

/// The peer flags of `server check stream`, natscli's check of a replicated stream,
/// against three servers and then with one of them killed: each follower's `active` (since
/// it last answered its leader) and `offline` are what it judges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_check_sees_every_peer_and_then_the_one_that_is_gone() {
    let (mut servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let check = [
        "server",
        "check",
        "stream",
        "--stream",
        "ORDERS",
        "--peer-expect",
        "3",
        "--peer-lag-critical",
        "50",
        "--peer-seen-critical",
        "3s",
    ];
    let url = servers[0].url();
    let deadline = Instant::now() + META_READY;
    loop {
        let run = jetlog_at(&url, &check);
        if run.code == Some(0) {
            let out = run.stdout.trim_end();
            assert_eq!(
                out,
                "OK Stream OK:3 peers OK:replicas are current OK:replicas are active OK:0 sources | sources=0",
                "{run:#?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{run:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let five = jetlog_at(&url, &[&check[..6], &["5"], &check[7..]].concat());
    assert_eq!(five.code, Some(2), "{five:#?}");
    assert!(
        five.stdout.contains("Expected 5 replicas got 3"),
        "{five:#?}"
    );

    // `leader_only`: the meta leader answers, the others refuse.
    let answered: Vec<u16> = servers
        .iter()
        .map(|s| get(s.monitor_port().expect("monitor"), "/jsz?leader_only=true").0)
        .collect();
    let mut sorted = answered.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![200, 400, 400], "{answered:?}");

    // A follower goes away: offline at once, inactive once unheard for longer than 3 s.
    let gone = (0..3)
        .find(|i| format!("S{i}") != leader)
        .expect("a follower");
    let url = servers[(gone + 1) % 3].url();
    let _store = servers.remove(gone).kill_and_take_store();
    let deadline = Instant::now() + META_READY;
    loop {
        let run = jetlog_at(&url, &check);
        let out = &run.stdout;
        if run.code == Some(2)
            && out.contains("1 replicas offline")
            && out.contains("1 replicas inactive")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{run:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
