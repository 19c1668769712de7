//! jetlog servers in one cluster with a nats-server (Debian's 2.9.10 when installed): the
//! migration path of moving a cluster to jetlog one server at a time. The nats-server is the
//! seed; two jetlog servers are given only its route URL, learn of each other from its gossip,
//! and core traffic flows every way. Skipped, with a message, where nats-server is not
//! installed.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{interest_reached, start_member, CLUSTER_NAME, MESH_TIMEOUT};
use common::within;
use futures::StreamExt;

/// Where Debian installs nats-server.
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A nats-server process on ephemeral client and route ports.
struct NatsServer {
    child: Child,
    client_port: u16,
    route_port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    fn start() -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            eprintln!("skipping: {NATS_SERVER} is not installed (apt-get install nats-server)");
            return None;
        }
        let mut child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", "-1", "-n", "NATS"])
            .args([
                "--cluster",
                "nats://127.0.0.1:-1",
                "--cluster_name",
                CLUSTER_NAME,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let port_after = |line: &str, what: &str| {
                line.split(what)
                    .nth(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.trim().parse::<u16>().ok())
            };
            // 2.9.10 says it is ready before it opens the route port: wait for all three.
            let (mut client, mut route, mut ready) = (None, None, false);
            let mut told = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                client = client.or(port_after(&line, "Listening for client connections on "));
                route = route.or(port_after(&line, "Listening for route connections on "));
                ready |= line.contains("Server is ready");
                writer.lock().unwrap().push(line);
                if let (false, true, Some(c), Some(r)) = (told, ready, client, route) {
                    told = true;
                    let _ = tx.send((c, r));
                }
            }
        });
        let Ok((client_port, route_port)) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("nats-server did not start: {:?}", log.lock().unwrap());
        };
        Some(Self {
            child,
            client_port,
            route_port,
            log,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    fn route_url(&self) -> String {
        format!("nats-route://127.0.0.1:{}", self.route_port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(url: String) -> async_nats::Client {
    within("connect", async_nats::connect(url))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetlog_servers_join_a_nats_server_cluster_and_core_traffic_flows_every_way() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let j1 = start_member("J1", Some(&nats.route_url()), &[]);
    let j2 = start_member("J2", Some(&nats.route_url()), &[]);
    // Each jetlog server routes to the nats-server and, through its gossip, to the other.
    let deadline = Instant::now() + MESH_TIMEOUT;
    while (j1.registered_routes().len() < 2 || j2.registered_routes().len() < 2)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(j1.registered_routes().len(), 2, "{:?}", j1.log);
    assert_eq!(j2.registered_routes().len(), 2, "{:?}", j2.log);

    let on_nats = connect(nats.url()).await;
    let on_j1 = connect(j1.url()).await;
    let on_j2 = connect(j2.url()).await;

    // Plain subscribers on every server, one publisher per server.
    let mut subs = Vec::new();
    for client in [&on_nats, &on_j1, &on_j2] {
        subs.push(client.subscribe("mix.>").await.unwrap());
    }
    for from in [&on_nats, &on_j1, &on_j2] {
        for to in [&on_nats, &on_j1, &on_j2] {
            interest_reached(from, to).await;
        }
    }
    for (i, client) in [&on_nats, &on_j1, &on_j2].into_iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("From", i.to_string().as_str());
        client
            .publish_with_headers(format!("mix.{i}"), headers, Bytes::from(i.to_string()))
            .await
            .unwrap();
        client.flush().await.unwrap();
    }
    for sub in subs.iter_mut() {
        let mut got = HashSet::new();
        for _ in 0..3 {
            let msg = within("a routed message", sub.next()).await.unwrap();
            let from = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("From"))
                .map(|v| v.to_string());
            assert_eq!(from.as_deref(), std::str::from_utf8(&msg.payload).ok());
            assert!(
                got.insert(msg.payload.clone()),
                "duplicate {:?}",
                msg.payload
            );
        }
        if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
        {
            panic!("duplicate delivery of {:?}", extra.payload);
        }
    }

    // A queue group with members on nats-server and on J2, fed from J1: each message once.
    let mut q_nats = on_nats.queue_subscribe("jobs", "w".into()).await.unwrap();
    let mut q_j2 = on_j2.queue_subscribe("jobs", "w".into()).await.unwrap();
    interest_reached(&on_j1, &on_nats).await;
    interest_reached(&on_j1, &on_j2).await;
    const N: usize = 200;
    for i in 0..N {
        on_j1
            .publish("jobs", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    on_j1.flush().await.unwrap();
    let mut seen = HashSet::new();
    let (mut from_nats, mut from_j2) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < N && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(m) = q_nats.next() => { from_nats += 1; assert!(seen.insert(m.payload), "twice"); }
            Some(m) = q_j2.next() => { from_j2 += 1; assert!(seen.insert(m.payload), "twice"); }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    assert_eq!(seen.len(), N, "nats {from_nats}, j2 {from_j2}");
    assert!(
        from_nats > 0 && from_j2 > 0,
        "nats {from_nats}, j2 {from_j2}"
    );

    // Request/reply both ways, and no-responders through a route.
    let mut service = on_nats.subscribe("svc").await.unwrap();
    let responder = on_nats.clone();
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, "from-nats".into()).await;
            }
        }
    });
    interest_reached(&on_j2, &on_nats).await;
    let reply = within("reply", on_j2.request("svc", "q".into()))
        .await
        .unwrap();
    assert_eq!(reply.payload, "from-nats");
    common::assert_no_responders(&on_j1, "nobody.home").await;
    assert!(
        !nats.log.lock().unwrap().iter().any(|l| l.contains("[ERR]")),
        "{:?}",
        nats.log
    );
}
