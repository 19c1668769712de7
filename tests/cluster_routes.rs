//! Routes: real jetlog servers in one cluster on 127.0.0.1, with async-nats clients on
//! different servers. What they show: a full mesh from one seed, each message delivered once
//! per subscription whichever server it was published on, queue groups served once
//! cluster-wide, request/reply and no-responders across servers, interest that follows
//! unsubscribes and lost servers, and refusals with nats-server's words.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::{
    interest_reached, start_cluster, start_cluster_with, start_member, wait_for_mesh,
};
use common::{assert_no_responders, within, TestServer};
use futures::StreamExt;

async fn connect(server: &TestServer) -> async_nats::Client {
    within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect")
}

/// Takes exactly `n` messages, each within the bound.
async fn take(sub: &mut async_nats::Subscriber, n: usize) -> Vec<async_nats::Message> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(
            within("a message", sub.next())
                .await
                .expect("subscription open"),
        );
    }
    got
}

/// Nothing more arrives within a short wait (for "no duplicates" checks after the expected
/// count arrived).
async fn assert_quiet(sub: &mut async_nats::Subscriber, what: &str) {
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("{what}: unexpected extra message on {}", msg.subject);
    }
}

#[test]
fn three_servers_given_one_seed_form_a_full_mesh_and_tell_clients_every_url() {
    let servers = start_cluster(3);
    for server in &servers {
        assert_eq!(server.registered_routes().len(), 2, "{:?}", server.log);
    }
    // A new client of the seed hears of all three servers.
    let mut raw = servers[0].raw();
    let info = raw.read_info();
    assert_eq!(info["cluster"], common::cluster::CLUSTER_NAME);
    let urls: Vec<String> = info["connect_urls"]
        .as_array()
        .expect("connect_urls")
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    for server in &servers {
        let url = format!("127.0.0.1:{}", server.port);
        assert!(urls.contains(&url), "{url} missing from {urls:?}");
    }
    assert_eq!(
        urls[0],
        format!("127.0.0.1:{}", servers[0].port),
        "own URL first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscription_gets_each_message_once_whichever_server_publishes() {
    let servers = start_cluster(3);
    let a = connect(&servers[0]).await;
    let b = connect(&servers[1]).await;
    let c = connect(&servers[2]).await;
    // Three overlapping subscriptions on A: A must still get one RMSG per message.
    let mut literal = a.subscribe("orders.new").await.unwrap();
    let mut star = a.subscribe("orders.*").await.unwrap();
    let mut full = a.subscribe("orders.>").await.unwrap();
    let mut on_c = c.subscribe("orders.>").await.unwrap();
    interest_reached(&b, &a).await;
    interest_reached(&b, &c).await;
    const N: usize = 200;
    for i in 0..N {
        b.publish("orders.new", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    b.flush().await.unwrap();
    for (sub, what) in [
        (&mut literal, "literal"),
        (&mut star, "star"),
        (&mut full, "full"),
        (&mut on_c, "on C"),
    ] {
        let got = take(sub, N).await;
        let bodies: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(bodies, expected, "{what}: every message once, in order");
        assert_quiet(sub, what).await;
    }
    // Headers cross routes too.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Trace", "t-1");
    c.publish_with_headers("orders.h", headers, "h".into())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let got = take(&mut full, 1).await;
    assert_eq!(
        got[0]
            .headers
            .as_ref()
            .and_then(|h| h.get("Trace"))
            .map(|v| v.as_str()),
        Some("t-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_responders_on_other_servers_and_nobody_means_no_responders() {
    let servers = start_cluster(3);
    let a = connect(&servers[0]).await;
    let c = connect(&servers[2]).await;
    let mut service = c.subscribe("svc.echo").await.unwrap();
    let responder = c.clone();
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            if let Some(reply) = msg.reply {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&msg.payload);
                let _ = responder.publish(reply, body.into()).await;
            }
        }
    });
    interest_reached(&a, &c).await;
    for i in 0..20 {
        let reply = within("reply", a.request("svc.echo", i.to_string().into()))
            .await
            .expect("a reply from the other server");
        assert_eq!(reply.payload, Bytes::from(format!("echo:{i}")));
    }
    assert_no_responders(&a, "svc.nobody").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_get_each_message_once_across_the_cluster() {
    let servers = start_cluster(3);
    let clients = [
        connect(&servers[0]).await,
        connect(&servers[1]).await,
        connect(&servers[2]).await,
    ];
    let mut members = Vec::new();
    for client in &clients {
        members.push(
            client
                .queue_subscribe("work", "workers".into())
                .await
                .unwrap(),
        );
    }
    // A group with its only member on C, published to from A.
    let mut lonely = clients[2]
        .queue_subscribe("solo", "only-c".into())
        .await
        .unwrap();
    for client in &clients {
        interest_reached(&clients[0], client).await;
    }
    const N: usize = 300;
    for i in 0..N {
        clients[0]
            .publish("work", Bytes::from(i.to_string()))
            .await
            .unwrap();
        clients[0].publish("solo", "x".into()).await.unwrap();
    }
    clients[0].flush().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = vec![0usize; members.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < N && tokio::time::Instant::now() < deadline {
        for (i, member) in members.iter_mut().enumerate() {
            if let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(5), member.next()).await
            {
                *seen
                    .entry(String::from_utf8_lossy(&msg.payload).into_owned())
                    .or_default() += 1;
                per_member[i] += 1;
            }
        }
    }
    assert_eq!(seen.len(), N, "every message reached the group");
    assert!(seen.values().all(|&n| n == 1), "no message twice");
    for member in members.iter_mut() {
        assert_quiet(member, "queue member").await;
    }
    // Spread over every server's member (each expects about 100 of 300).
    assert!(per_member.iter().all(|&n| n > 30), "{per_member:?}");
    take(&mut lonely, N).await;
    assert_quiet(&mut lonely, "the lone member").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_follows_unsubscribes_and_unsub_max_across_servers() {
    let servers = start_cluster(2);
    let a = connect(&servers[0]).await;
    let b = connect(&servers[1]).await;
    let mut limited = b.subscribe("limited").await.unwrap();
    limited.unsubscribe_after(3).await.unwrap();
    interest_reached(&a, &b).await;
    for _ in 0..10 {
        a.publish("limited", "x".into()).await.unwrap();
    }
    a.flush().await.unwrap();
    take(&mut limited, 3).await;
    assert!(
        within("end of subscription", limited.next())
            .await
            .is_none(),
        "the subscription ends after its max"
    );
    // The withdrawal reached A: a request there now finds nobody.
    let responder = b.subscribe("gone.soon").await.unwrap();
    interest_reached(&a, &b).await;
    drop(responder);
    b.flush().await.unwrap();
    interest_reached(&a, &b).await;
    assert_no_responders(&a, "gone.soon").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_takes_its_interest_along_and_a_restarted_one_rejoins() {
    let mut servers = start_cluster(3);
    let a = connect(&servers[0]).await;
    let b = connect(&servers[1]).await;
    let mut on_b = b.subscribe("events").await.unwrap();
    interest_reached(&a, &b).await;
    // C dies without a word; A and B carry on.
    let c = servers.pop().expect("three servers");
    drop(c.kill_and_take_store());
    a.publish("events", "before".into()).await.unwrap();
    a.flush().await.unwrap();
    let got = take(&mut on_b, 1).await;
    assert_eq!(got[0].payload, "before");
    // A new C, given only the seed, rejoins; its subscribers hear A's publishes.
    let seed = servers[0].route_url();
    let c = start_member("S2", Some(&seed), &[]);
    servers.push(c);
    wait_for_mesh(&servers);
    let c_client = connect(&servers[2]).await;
    let mut on_c = c_client.subscribe("events").await.unwrap();
    interest_reached(&a, &c_client).await;
    a.publish("events", "after".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(take(&mut on_c, 1).await[0].payload, "after");
    assert_eq!(take(&mut on_b, 1).await[0].payload, "after");
    assert_quiet(&mut on_b, "B").await;
}

#[test]
fn a_server_of_another_cluster_is_refused_with_nats_server_words() {
    let seed = start_member("S0", None, &[]);
    let other = TestServer::start(&[
        "-n",
        "X",
        "--cluster",
        "nats://127.0.0.1:0",
        "--cluster_name",
        "other",
        "--routes",
        &seed.route_url(),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expected = "Rejecting connection, cluster name \"other\" does not match \"tc\"";
    while !seed.log_contains(expected) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seed.log_contains(expected), "{:?}", seed.log);
    assert!(seed.registered_routes().is_empty());
    assert!(other.registered_routes().is_empty());
}

#[test]
fn a_route_to_itself_is_dropped_and_not_redialled() {
    let server = start_member("S0", None, &[]);
    drop(server);
    // Started again with its own route port as its route: it has to learn the port first,
    // so give it a fixed one taken from a just-closed listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats-route://127.0.0.1:{port}");
    let listen = format!("nats://127.0.0.1:{port}");
    let server = TestServer::start(&["-n", "S", "--cluster", &listen, "--routes", &url]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.closed_routes() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // One connection, two ends, both closed; no redial after the retry delay.
    assert_eq!(server.closed_routes(), 2, "{:?}", server.log);
    assert!(server.logs_within("Route to Self", Duration::from_secs(5)));
    assert!(server.registered_routes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_shows_the_routes_their_interest_and_traffic() {
    let servers = start_cluster_with(2, &["-m", "-1"]);
    let a = connect(&servers[0]).await;
    let b = connect(&servers[1]).await;
    let mut sub = b.subscribe("watched.>").await.unwrap();
    interest_reached(&a, &b).await;
    for _ in 0..5 {
        a.publish("watched.x", "12345".into()).await.unwrap();
    }
    a.flush().await.unwrap();
    take(&mut sub, 5).await;
    let port = servers[0].monitor_port().expect("monitor port");
    let routez = common::monitor::get_json(port, "/routez?subs=1");
    assert_eq!(routez["num_routes"], 1, "{routez}");
    let route = &routez["routes"][0];
    assert_eq!(route["remote_name"], "S1");
    assert_eq!(route["did_solicit"], false, "S1 dialled the seed");
    assert!(route["out_msgs"].as_u64().unwrap() >= 5, "{route}");
    let list: Vec<&str> = route["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(list.contains(&"watched.>"), "{list:?}");
    let varz = common::monitor::get_json(port, "/varz");
    assert_eq!(varz["cluster"]["name"], common::cluster::CLUSTER_NAME);
    assert_eq!(varz["cluster"]["cluster_port"], servers[0].route_port());
    assert_eq!(
        (varz["routes"].as_u64(), varz["remotes"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        varz["connect_urls"].as_array().map(Vec::len),
        Some(2),
        "{varz}"
    );
    let (_, _, metrics) = common::monitor::get(port, "/metrics");
    assert!(metrics.contains("jetlog_routes 1"), "{metrics}");
    assert!(
        metrics.contains("jetlog_route_out_msgs_total{remote_name=\"S1\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_must_authenticate_when_the_cluster_says_so() {
    let listen = "nats://ruser:rpass@127.0.0.1:0";
    let seed = TestServer::start(&["-n", "S0", "--cluster", listen, "--cluster_name", "tc"]);
    let port = seed.route_port();
    // S1 names the credentials in its route URL; S2 presents the cluster's own, also to the
    // route it learns by gossip.
    let with_creds = format!("nats-route://ruser:rpass@127.0.0.1:{port}");
    let s1 = start_member("S1", Some(&with_creds), &["--cluster", listen]);
    let s2 = start_member("S2", Some(&seed.route_url()), &["--cluster", listen]);
    let servers = vec![seed, s1, s2];
    wait_for_mesh(&servers);
    let a = connect(&servers[1]).await;
    let c = connect(&servers[2]).await;
    let mut sub = c.subscribe("secured").await.unwrap();
    interest_reached(&a, &c).await;
    a.publish("secured", "ok".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(take(&mut sub, 1).await[0].payload, "ok");

    // The wrong password is refused with nats-server's words and never registered.
    let wrong = format!("nats-route://ruser:nope@127.0.0.1:{port}");
    let intruder = start_member("X", Some(&wrong), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = || {
        servers[0].log_contains("authentication error")
            && intruder.log_contains("Route Error 'Authorization Violation'")
    };
    while !refused() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        servers[0].log_contains("authentication error"),
        "{:?}",
        servers[0].log
    );
    assert!(
        intruder.log_contains("Route Error 'Authorization Violation'"),
        "{:?}",
        intruder.log
    );
    // (The intruder itself takes the seed's INFO before the refusal: only the seed's side
    // counts, and it never registered the intruder.)
    assert_eq!(servers[0].registered_routes().len(), 2, "only S1 and S2");

    // A client on the route port is told so; silence past the timeout is cut off.
    let mut raw = common::RawClient::from_stream(route_socket(port));
    let info = raw.read_info();
    assert_eq!(info["auth_required"], true, "{info}");
    raw.send(b"CONNECT {\"lang\":\"go\",\"verbose\":false}\r\n");
    let reply = raw.read_until_contains(b"\r\n", Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR 'attempted to connect to route port'\r\n"
    );
    let mut silent = common::RawClient::from_stream(route_socket(port));
    silent.read_info();
    let (bytes, closed) = silent.read_for(Duration::from_secs(4));
    assert!(closed, "closed after the authentication timeout");
    // (A PING may come first: routes are pinged from the start, as nats-server's are.)
    let said = String::from_utf8_lossy(&bytes);
    assert!(
        said.ends_with("-ERR 'Authentication Timeout'\r\n"),
        "{said:?}"
    );
}

/// A raw TCP connection to a route port, with a read timeout so no read hangs.
fn route_socket(port: u16) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream
}

/// A raw "server" on the route port: reads INFO, sends CONNECT and INFO under a made-up id,
/// announces interest in `subject`, and from then on never reads.
fn silent_route(port: u16, subject: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut raw = common::RawClient::from_stream(route_socket(port));
    raw.read_info();
    raw.send(
        format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"NSILENT\",\"cluster\":\"tc\",\"headers\":true}}\r\n\
             INFO {{\"server_id\":\"NSILENT\",\"server_name\":\"silent\",\"proto\":2,\"headers\":true,\"cluster\":\"tc\",\"port\":1}}\r\n\
             RS+ $G {subject}\r\n"
        )
        .as_bytes(),
    );
    raw.stream.flush().unwrap();
    raw.stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_never_reads_does_not_stall_local_delivery() {
    let server = start_member("S0", None, &[]);
    let _silent = silent_route(server.route_port(), "flood.>");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.registered_routes().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.registered_routes().len(), 1, "{:?}", server.log);
    let client = connect(&server).await;
    let mut local = client.subscribe("flood.x").await.unwrap();
    let publisher = connect(&server).await;
    // 32 MiB: far past any socket buffer, so the silent route falls behind for good.
    const N: usize = 32 * 1024;
    let payload = Bytes::from(vec![b'f'; 1024]);
    let started = std::time::Instant::now();
    let receiving = tokio::spawn(async move {
        for _ in 0..N {
            within("local delivery", local.next()).await.unwrap();
        }
    });
    for _ in 0..N {
        publisher.publish("flood.x", payload.clone()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    within("every local delivery", receiving).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "local delivery took {:?}",
        started.elapsed()
    );
}

#[test]
fn garbage_on_the_route_port_is_refused_and_the_cluster_keeps_serving() {
    let servers = start_cluster(2);
    let port = servers[0].route_port();
    let mut raw = common::RawClient::from_stream(route_socket(port));
    raw.read_info();
    raw.send(b"HELLO there\r\n");
    let (bytes, closed) = raw.read_for(Duration::from_secs(3));
    assert!(closed, "the connection is closed");
    let said = String::from_utf8_lossy(&bytes);
    assert!(
        said.contains("-ERR 'Unknown Protocol Operation'"),
        "{said:?}"
    );
    assert!(
        servers[0].logs_within("Unknown Protocol Operation", Duration::from_secs(5)),
        "{:?}",
        servers[0].log
    );
    // The real route is untouched.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = connect(&servers[0]).await;
        let b = connect(&servers[1]).await;
        let mut sub = b.subscribe("after.garbage").await.unwrap();
        interest_reached(&a, &b).await;
        a.publish("after.garbage", "ok".into()).await.unwrap();
        a.flush().await.unwrap();
        assert_eq!(take(&mut sub, 1).await[0].payload, "ok");
    });
}
