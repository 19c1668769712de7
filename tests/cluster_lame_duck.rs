//! Clients follow the cluster. In lame duck mode a server stops taking clients, tells them
//! and its routes, and its clients move to the other servers before it exits; when a server is
//! killed, its clients reconnect to a survivor they learned of from INFO.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{interest_reached, member_args, start_member, wait_for_mesh};
use common::{within, TestServer};
use futures::StreamExt;

/// Reads lines from a raw client until an INFO whose JSON satisfies `wanted` arrives.
fn wait_for_info(
    raw: &mut common::RawClient,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let bytes = raw.read_until_contains(b"\r\n", Duration::from_millis(200));
        seen.extend_from_slice(&bytes);
        let text = String::from_utf8_lossy(&seen).into_owned();
        for line in text.split("\r\n") {
            if let Some(json) = line.strip_prefix("INFO ") {
                if let Ok(info) = serde_json::from_str::<serde_json::Value>(json.trim()) {
                    if wanted(&info) {
                        return info;
                    }
                }
            }
        }
    }
    panic!("no such INFO; got {:?}", String::from_utf8_lossy(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_lame_duck_mode_moves_its_clients_to_the_others_and_exits() {
    let seed = start_member("S0", None, &[]);
    let conf = "lame_duck_duration: \"3s\"\nlame_duck_grace_period: \"1s\"\n";
    let args = member_args("S1", Some(&seed.route_url()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (leaving, _conf_dir) = TestServer::start_with_config(conf, &args);
    let servers = [seed, leaving];
    wait_for_mesh(&servers);
    let seed_url = format!("127.0.0.1:{}", servers[0].port);
    let leaving_url = format!("127.0.0.1:{}", servers[1].port);

    // Raw clients that take INFO updates, one on each server.
    let mut on_seed = servers[0].raw();
    on_seed.read_info();
    on_seed.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
    on_seed.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    let mut on_leaving = servers[1].raw();
    on_leaving.read_info();
    on_leaving.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
    on_leaving.read_until_contains(b"PONG\r\n", Duration::from_secs(5));

    // An async-nats client that knows only the leaving server, subscribed there.
    let client = within(
        "connect",
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(servers[1].url()),
    )
    .await
    .expect("connect");
    let mut sub = client.subscribe("moved").await.unwrap();
    client.flush().await.unwrap();

    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["server", "--signal", &format!("ldm={}", servers[1].pid())])
        .status()
        .expect("jetlog server --signal");
    assert!(status.success());

    // The leaving server's clients hear it, with only the other server's URL.
    let info = wait_for_info(&mut on_leaving, |i| i["ldm"] == true);
    assert_eq!(
        info["connect_urls"],
        serde_json::json!([seed_url]),
        "{info}"
    );
    // The seed's clients stop hearing of the leaving server.
    let info = wait_for_info(&mut on_seed, |i| {
        i["connect_urls"]
            .as_array()
            .is_some_and(|u| !u.iter().any(|x| x == leaving_url.as_str()))
    });
    assert_eq!(
        info["connect_urls"],
        serde_json::json!([seed_url]),
        "{info}"
    );
    // No new clients.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", servers[1].port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting clients");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The async-nats client is closed, reconnects to the seed (learned from INFO), and its
    // subscription works there.
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.server_info().port != servers[0].port {
        assert!(
            Instant::now() < deadline,
            "the client never moved to the seed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publisher = within("connect", async_nats::connect(servers[0].url()))
        .await
        .expect("connect");
    interest_reached(&publisher, &client).await;
    publisher.publish("moved", "here".into()).await.unwrap();
    publisher.flush().await.unwrap();
    let msg = within("the message on the seed", sub.next()).await.unwrap();
    assert_eq!(msg.payload, "here");

    // The server exits once the lame duck duration has passed.
    let [seed, leaving] = servers;
    let mut exited = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if leaving.log_contains("Server Exiting") {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited, "{:?}", leaving.log);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the grace period was kept"
    );
    assert!(leaving.logs_within("Entering lame duck mode", Duration::from_secs(5)));
    drop(seed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_server_reconnects_to_a_survivor_it_learned_of() {
    let mut servers = common::cluster::start_cluster(2);
    // The client is given only S1's URL; S0's it learns from INFO.
    let client = within(
        "connect",
        async_nats::ConnectOptions::new().connect(servers[1].url()),
    )
    .await
    .expect("connect");
    let mut sub = client.subscribe("survives").await.unwrap();
    client.flush().await.unwrap();
    let survivor = servers.remove(0);
    drop(servers.pop().expect("S1").kill_and_take_store());
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.server_info().port != survivor.port {
        assert!(Instant::now() < deadline, "the client never moved to S0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publisher = within("connect", async_nats::connect(survivor.url()))
        .await
        .expect("connect");
    interest_reached(&publisher, &client).await;
    publisher.publish("survives", "yes".into()).await.unwrap();
    publisher.flush().await.unwrap();
    let msg = within("the message on the survivor", sub.next())
        .await
        .unwrap();
    assert_eq!(msg.payload, "yes");
}
