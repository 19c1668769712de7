//! Several real `jetlog` servers in one cluster on 127.0.0.1, every port ephemeral: the first
//! is the seed, the others are given only its route URL and find each other by gossip.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::TestServer;

/// How long a cluster may take to become a full mesh.
pub const MESH_TIMEOUT: Duration = Duration::from_secs(15);
/// The cluster name test clusters use.
pub const CLUSTER_NAME: &str = "tc";

impl TestServer {
    /// The route port the server logged it listens on.
    pub fn route_port(&self) -> u16 {
        let log = self.log.lock().unwrap();
        log.iter()
            .find_map(|line| {
                line.split("Listening for route connections on ")
                    .nth(1)
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no route port in the log: {log:?}"))
    }

    pub fn route_url(&self) -> String {
        format!("nats-route://127.0.0.1:{}", self.route_port())
    }

    /// The server ids this server has registered routes to (each once, however often).
    pub fn registered_routes(&self) -> BTreeSet<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter_map(|line| line.split("Registering remote route \"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect()
    }

    /// How many "Router connection closed" lines the server has logged.
    pub fn closed_routes(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("Router connection closed"))
            .count()
    }
}

/// The flags of a cluster member named `name`, dialling `seed` when given.
pub fn member_args(name: &str, seed: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "-n".to_string(),
        name.to_string(),
        "--cluster".to_string(),
        "nats://127.0.0.1:0".to_string(),
        "--cluster_name".to_string(),
        CLUSTER_NAME.to_string(),
    ];
    if let Some(seed) = seed {
        args.push("--routes".to_string());
        args.push(seed.to_string());
    }
    args
}

/// Starts `n` servers: `S0` (the seed) and the others dialling only it; waits for the mesh.
pub fn start_cluster(n: usize) -> Vec<TestServer> {
    start_cluster_with(n, &[])
}

/// [`start_cluster`] with `extra` flags for every server.
pub fn start_cluster_with(n: usize, extra: &[&str]) -> Vec<TestServer> {
    let seed = start_member("S0", None, extra);
    let seed_url = seed.route_url();
    let mut servers = vec![seed];
    for i in 1..n {
        servers.push(start_member(&format!("S{i}"), Some(&seed_url), extra));
    }
    wait_for_mesh(&servers);
    servers
}

/// Starts one member with `extra` flags.
pub fn start_member(name: &str, seed: Option<&str>, extra: &[&str]) -> TestServer {
    let args = member_args(name, seed);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestServer::start(&all)
}

/// Waits until each server has a route registered to every other one since it started.
pub fn wait_for_mesh(servers: &[TestServer]) {
    let deadline = Instant::now() + MESH_TIMEOUT;
    loop {
        let counts: Vec<usize> = servers
            .iter()
            .map(|s| s.registered_routes().len())
            .collect();
        if counts.iter().all(|&c| c >= servers.len() - 1) {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<_> = servers
                .iter()
                .map(|s| s.log.lock().unwrap().clone())
                .collect();
            panic!("no full mesh within {MESH_TIMEOUT:?}: routes {counts:?}; logs {logs:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server `from` is connected to has heard of every subscription `to`'s
/// connection made so far. A probe subscription is made on `to` after them; routes carry
/// announcements in order, so once `from`'s server can reach the probe, it knows the rest.
pub async fn interest_reached(from: &async_nats::Client, to: &async_nats::Client) {
    let subject = format!("probe.{}", to.new_inbox().replace('.', "_"));
    let mut probe = to
        .subscribe(subject.clone())
        .await
        .expect("probe subscribe");
    let responder = to.clone();
    let answering = tokio::spawn(async move {
        while let Some(msg) = probe.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, "".into()).await;
                let _ = responder.flush().await;
            }
        }
    });
    let deadline = Instant::now() + MESH_TIMEOUT;
    loop {
        let asked = tokio::time::timeout(
            Duration::from_secs(2),
            from.request(subject.clone(), "".into()),
        )
        .await;
        if matches!(asked, Ok(Ok(_))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "interest never reached the other server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answering.abort();
}
