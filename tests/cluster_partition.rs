//! Routes as the network fails: three jetlog servers A, B and C, each in its own Linux
//! network namespace (see `common::netns`), B and C given only A as their seed. A partition
//! cuts C's route link while every client stays connected, then heals it.
//!
//! Core NATS has no acknowledgements, so a message sent while the network is broken may be
//! lost. What the checker insists on instead: no subscriber sees a message twice or out of
//! order, ever; and no message is lost while the network is whole, before the cut and once
//! the mesh has re-formed after the heal.
//!
//! The last test is the one the partitions first failed on: a route learned by gossip whose
//! dial fails must still come up once the network is whole.
//!
//! The tests need root (namespaces, veths, bridges); without them they say why and pass.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::interest_reached;
use common::netns::{Net, NsServer, ROUTE_PORT};
use common::within;
use futures::StreamExt;
use tokio::time::Instant;

/// Routes are pinged every second and dropped after two unanswered pings, so a route over a
/// cut link (TCP half-open: nothing tells either end) is found dead in seconds, not minutes.
const PING_FLAGS: [&str; 4] = ["--ping_interval", "1s", "--ping_max", "2"];
const CLUSTER_NAME: &str = "tp";
/// How long the mesh may take to form, to find cut routes dead, and to re-form after a heal.
const MESH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long messages already published may take to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The partitioned server: C, which joined through the seed A.
const C: usize = 2;
/// How long a partition lasts after the cut routes are found dead: more than the 2 s of a
/// gossiped route's reconnect round (1 s pause, 1 s dial timeout).
const HOLD: Duration = Duration::from_secs(3);

/// Three servers in their namespaces. Field order matters: the servers are killed before
/// their namespaces are removed.
struct Cluster {
    servers: Vec<NsServer>,
    net: Net,
}

impl Cluster {
    /// Starts A (the seed), B and C (dialling only A). `None`, after saying why, when this
    /// machine cannot make network namespaces.
    fn start() -> Option<Cluster> {
        let net = match Net::create(3) {
            Ok(net) => net,
            Err(why) => {
                eprintln!("skipping: network namespaces unavailable: {why}");
                return None;
            }
        };
        let seed = net.route_url(0);
        let servers = ["A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(i, &name)| {
                let mut args = vec!["-n", name, "--cluster_name", CLUSTER_NAME];
                args.extend(PING_FLAGS);
                if i > 0 {
                    args.extend(["--routes", seed.as_str()]);
                }
                net.spawn(i, &args)
            })
            .collect();
        Some(Cluster { servers, net })
    }

    /// Connects one client to each server (from the root namespace) and waits for the full
    /// mesh; returns the clients and the servers' ids.
    async fn connect_all(&self) -> (Vec<async_nats::Client>, Vec<String>) {
        let mut clients = Vec::new();
        for server in &self.servers {
            let client = within("connect", async_nats::connect(server.url.as_str())).await;
            clients.push(client.expect("connect through the client bridge"));
        }
        let ids: Vec<String> = clients.iter().map(|c| c.server_info().server_id).collect();
        let deadline = Instant::now() + MESH_TIMEOUT;
        self.wait_until("the full mesh", deadline, |cl| {
            cl.meshed(&[0; 3], &ids, &[0, 1, 2])
        })
        .await;
        (clients, ids)
    }

    /// Where each server's log is now, to look only at what happens next.
    fn marks(&self) -> Vec<usize> {
        self.servers.iter().map(NsServer::log_len).collect()
    }

    /// Whether, since `marks`, every route touching a server in `who` has been registered at
    /// both ends.
    fn meshed(&self, marks: &[usize], ids: &[String], who: &[usize]) -> bool {
        (0..self.servers.len()).all(|i| {
            let registered = self.servers[i].registered_since(marks[i]);
            (0..self.servers.len())
                .filter(|&j| j != i && (who.contains(&i) || who.contains(&j)))
                .all(|j| registered.contains(&ids[j]))
        })
    }

    /// Whether, since `marks`, server `cut` closed its routes to both others and each of them
    /// closed its route to `cut`.
    fn routes_lost(&self, marks: &[usize], cut: usize) -> bool {
        (0..self.servers.len()).all(|i| {
            let wanted = if i == cut { self.servers.len() - 1 } else { 1 };
            self.servers[i].closed_since(marks[i]) >= wanted
        })
    }

    /// Polls `done` until it holds, or panics with the servers' recent logs at `deadline`.
    async fn wait_until(&self, what: &str, deadline: Instant, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .servers
                    .iter()
                    .zip(["A", "B", "C"])
                    .map(|(s, name)| format!("--- {name}:\n{}", s.tail(40).join("\n")))
                    .collect();
                panic!("timed out waiting for {what}; logs:\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cuts C's route link until its routes are found dead at both ends, then holds the cut
    /// `HOLD` longer, so redials run against the cut link before the heal. Returns how long
    /// finding the routes dead took.
    async fn partition_c(&self) -> Duration {
        let marks = self.marks();
        let cut = Instant::now();
        self.net.cut(C);
        self.wait_until(
            "the cut routes to be found dead",
            cut + MESH_TIMEOUT,
            |cl| cl.routes_lost(&marks, C),
        )
        .await;
        let dead = cut.elapsed();
        tokio::time::sleep(HOLD).await;
        dead
    }

    /// Heals C's route link and waits for C's routes to be registered again at both ends.
    /// Returns when the heal happened and how long the mesh took.
    async fn heal_c(&self, ids: &[String]) -> (Instant, Duration) {
        let marks = self.marks();
        let healed = Instant::now();
        self.net.heal(C);
        self.wait_until("the mesh to re-form", healed + MESH_TIMEOUT, |cl| {
            cl.meshed(&marks, ids, &[C])
        })
        .await;
        (healed, healed.elapsed())
    }
}

/// Publishes numbered messages (1, 2, ...) on one subject, about one a millisecond, until
/// stopped: a stream dense enough that any loss, duplicate or reordering shows.
struct Publisher {
    client: async_nats::Client,
    last: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn start(client: &async_nats::Client, subject: &'static str) -> Self {
        let last = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, l, s) = (client.clone(), last.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let seq = l.load(Ordering::SeqCst) + 1;
                if c.publish(subject, seq.to_string().into()).await.is_err() {
                    break;
                }
                l.store(seq, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        Publisher {
            client: client.clone(),
            last,
            stop,
            task,
        }
    }

    /// The last number published, once the server has it: everything up to it left the
    /// publisher in the network state of this moment.
    async fn mark(&self) -> u64 {
        let seq = self.last.load(Ordering::SeqCst);
        within("flush", self.client.flush())
            .await
            .expect("flush the publisher");
        seq
    }

    /// Stops publishing; returns the last number published.
    async fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        within("the publisher to stop", &mut self.task)
            .await
            .expect("publisher task");
        self.mark().await
    }
}

/// What a subscriber received, in order of arrival.
type Received = Arc<Mutex<Vec<u64>>>;

/// Records the numbers a subscription receives, on a task of its own.
fn collect(mut sub: async_nats::Subscriber) -> Received {
    let got = Received::default();
    let sink = got.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let seq = std::str::from_utf8(&msg.payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not a number: {:?}", msg.payload));
            sink.lock().unwrap().push(seq);
        }
    });
    got
}

fn last(got: &Received) -> u64 {
    got.lock().unwrap().last().copied().unwrap_or(0)
}

fn snapshot(got: &Received) -> Vec<u64> {
    got.lock().unwrap().clone()
}

/// The numbers in `from..=to` none of `got` received.
fn missing(got: &[&Received], from: u64, to: u64) -> Vec<u64> {
    let seen: BTreeSet<u64> = got.iter().flat_map(|g| snapshot(g)).collect();
    (from..=to).filter(|s| !seen.contains(s)).collect()
}

/// Each number arrives at most once and after every smaller one it gets.
fn assert_strictly_increasing(got: &[u64], who: &str) {
    if let Some(w) = got.windows(2).find(|w| w[0] >= w[1]) {
        let what = if w[0] == w[1] {
            "a duplicate"
        } else {
            "out of order"
        };
        panic!("{who}: {} after {}: {what}", w[1], w[0]);
    }
}

/// Nothing in `from..=to` (published while the network was whole) was lost.
fn assert_none_lost(got: &[&Received], from: u64, to: u64, when: &str) {
    let lost = missing(got, from, to);
    assert!(
        lost.is_empty(),
        "{} of the messages {from}..={to} published {when} were lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// Subscribers on B and C, a publisher on A; C is partitioned away and healed. C's routes are
/// found dead at both ends, the mesh re-forms by itself (C redials its seed, which gossips B
/// again), and C's subscriber hears A again, having never seen a number twice or out of order.
/// B's link to A stays whole throughout, so B's subscriber loses nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_server_rejoins_the_mesh_and_its_subscriber_hears_again() {
    let Some(cl) = Cluster::start() else { return };
    let (clients, ids) = cl.connect_all().await;
    let (a, b, c) = (&clients[0], &clients[1], &clients[C]);
    let got = collect(c.subscribe("part.seq").await.unwrap());
    let on_b = collect(b.subscribe("part.seq").await.unwrap());
    interest_reached(a, b).await;
    interest_reached(a, c).await;
    let mut publisher = Publisher::start(a, "part.seq");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let whole = publisher.mark().await;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    cl.wait_until("the messages published before the cut", deadline, |_| {
        last(&got) >= whole
    })
    .await;

    let dead_after = cl.partition_c().await;
    let before_heal = publisher.mark().await;
    let (healed, mesh_after) = cl.heal_c(&ids).await;
    // C's interest is back at A once a message published after the heal arrives.
    cl.wait_until(
        "a message published after the heal",
        healed + MESH_TIMEOUT,
        |_| last(&got) > before_heal,
    )
    .await;
    let flowing_after = healed.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = publisher.stop().await;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    cl.wait_until("the last message", deadline, |_| {
        last(&got) >= end && last(&on_b) >= end
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let received = snapshot(&got);
    assert_strictly_increasing(&received, "C's subscriber");
    assert_none_lost(&[&got], 1, whole, "before the cut");
    let back = *received.iter().find(|&&s| s > before_heal).unwrap();
    assert_none_lost(&[&got], back, end, "once C's interest was back");
    assert_strictly_increasing(&snapshot(&on_b), "B's subscriber");
    assert_none_lost(&[&on_b], 1, end, "to B, whose link to A never broke,");
    println!(
        "published {end}; lost {} while partitioned (after {whole}, before {back}); routes dead \
         after {dead_after:?}; mesh re-formed {mesh_after:?} and messages flowing \
         {flowing_after:?} after the heal",
        end as usize - received.len()
    );
}

/// A queue group with a member on B and one on C, a publisher on A; C is partitioned away
/// and healed. No number is ever delivered to both members or twice to one, nothing is lost
/// while the network is whole, and after the heal both members get messages again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_split_by_a_partition_never_gets_a_message_twice() {
    let Some(cl) = Cluster::start() else { return };
    let (clients, ids) = cl.connect_all().await;
    let (a, b, c) = (&clients[0], &clients[1], &clients[C]);
    let on_b = collect(
        b.queue_subscribe("part.work", "workers".into())
            .await
            .unwrap(),
    );
    let on_c = collect(
        c.queue_subscribe("part.work", "workers".into())
            .await
            .unwrap(),
    );
    interest_reached(a, b).await;
    interest_reached(a, c).await;
    let mut publisher = Publisher::start(a, "part.work");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let whole = publisher.mark().await;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    cl.wait_until("the messages published before the cut", deadline, |_| {
        missing(&[&on_b, &on_c], 1, whole).is_empty()
    })
    .await;
    let (before_b, before_c) = (snapshot(&on_b).len(), snapshot(&on_c).len());
    assert!(before_b > 0 && before_c > 0, "{before_b} and {before_c}");

    let dead_after = cl.partition_c().await;
    let (healed, mesh_after) = cl.heal_c(&ids).await;
    // A knows C's member again; from here on the network is whole.
    interest_reached(a, c).await;
    let reformed = publisher.mark().await;
    cl.wait_until(
        "both members to be reached again",
        healed + MESH_TIMEOUT,
        |_| last(&on_b) > reformed && last(&on_c) > reformed,
    )
    .await;
    let flowing_after = healed.elapsed();
    let end = publisher.stop().await;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    cl.wait_until("the last messages", deadline, |_| {
        missing(&[&on_b, &on_c], reformed, end).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (got_b, got_c) = (snapshot(&on_b), snapshot(&on_c));
    assert_strictly_increasing(&got_b, "B's member");
    assert_strictly_increasing(&got_c, "C's member");
    let in_b: BTreeSet<u64> = got_b.iter().copied().collect();
    let both: Vec<u64> = got_c.iter().copied().filter(|s| in_b.contains(s)).collect();
    assert!(
        both.is_empty(),
        "{} messages went to both members, first {:?}",
        both.len(),
        &both[..both.len().min(10)]
    );
    assert_none_lost(&[&on_b, &on_c], 1, whole, "before the cut");
    assert_none_lost(&[&on_b, &on_c], reformed, end, "after the mesh re-formed");
    println!(
        "published {end}: {} to B, {} to C, {} lost while partitioned; routes dead after \
         {dead_after:?}; mesh re-formed {mesh_after:?} and both members reached \
         {flowing_after:?} after the heal",
        got_b.len(),
        got_c.len(),
        end as usize - got_b.len() - got_c.len()
    );
}

/// Once, a route learned by gossip was dialled once and never again if that dial failed, and
/// only the existing members heard of a newcomer: the mesh could stay partial on a whole
/// network. Here C's link comes back while B and C still cannot reach each other (their bridge
/// ports isolated), so B's first dial to C fails; once the isolation is lifted, B and C must
/// route to each other (a gossiped route is retried `connect_retries` times, 3 by default, and
/// the seed tells the newcomer of the others too, so both sides dial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_route_whose_only_dial_failed_is_dialled_again() {
    let Some(cl) = Cluster::start() else { return };
    let (clients, ids) = cl.connect_all().await;
    cl.partition_c().await;
    cl.net.isolate(1, true);
    cl.net.isolate(C, true);
    let marks = cl.marks();
    cl.net.heal(C);
    let dial_to_c = format!("dial tcp {}:{ROUTE_PORT}", cl.net.route_ip(C));
    let deadline = Instant::now() + MESH_TIMEOUT;
    cl.wait_until("C back with A, and B's dial to C failed", deadline, |cl| {
        cl.servers[C].registered_since(marks[C]).contains(&ids[0])
            && cl.servers[1].logged_since(marks[1], &dial_to_c)
    })
    .await;
    cl.net.isolate(1, false);
    cl.net.isolate(C, false);
    // The network is whole again: B and C must find each other.
    let deadline = Instant::now() + MESH_TIMEOUT;
    cl.wait_until("B and C to route to each other again", deadline, |cl| {
        cl.meshed(&marks, &ids, &[C])
    })
    .await;
    interest_reached(&clients[1], &clients[C]).await;
}
