//! The key-value examples run against a real server: their own code, included as modules, so
//! what is tested is what a reader of `examples/` copies.
//!
//! Leader election: two candidates, one leader; a leader that stops cleanly hands over at
//! once, one that dies is replaced once its lease (the bucket TTL) has run out, and never
//! before. Shared config: services that follow a bucket converge on the same settings.

mod common;

#[allow(dead_code)]
#[path = "../examples/leader_election.rs"]
mod leader_election;

#[allow(dead_code)]
#[path = "../examples/shared_config.rs"]
mod shared_config;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use common::{within, TestServer};
use leader_election::{Candidate, Role, LEADER_KEY};
use shared_config::Snapshot;
use tokio::sync::watch;
use tokio::time::Instant;

/// A short lease keeps the tests quick; still five upkeep ticks long.
const TTL: Duration = Duration::from_secs(1);
/// Slack on top of the TTL for a takeover after a crash: the follower's timer starts when it
/// sees the last renewal, and it retries every tenth of the TTL until the server's 50 ms
/// upkeep tick has expired the key.
const TAKEOVER_SLACK: Duration = Duration::from_millis(600);
/// Expiry happens on a 50 ms tick, so a key may go a little early relative to a timestamp
/// taken right after its store; never by more than this.
const EXPIRY_EARLY_MAX: Duration = Duration::from_millis(100);

async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

/// A running candidate: its role, its stop switch and its task.
struct Running {
    roles: watch::Receiver<Role>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), leader_election::ElectionError>>,
}

fn start(store: &async_nats::jetstream::kv::Store, id: &str) -> Running {
    let (roles_tx, roles) = watch::channel(Role::Starting);
    let (stop, stop_rx) = watch::channel(false);
    let candidate = Candidate::new(store.clone(), id, TTL);
    let task = tokio::spawn(candidate.run(roles_tx, stop_rx));
    Running { roles, stop, task }
}

/// Waits (bounded) until a candidate's role satisfies `wanted`.
async fn role_becomes(running: &mut Running, what: &str, wanted: impl Fn(&Role) -> bool) {
    let limit = TTL * 4;
    let reached = tokio::time::timeout(limit, running.roles.wait_for(|r| wanted(r)))
        .await
        .map(|result| result.map(|_| ()));
    match reached {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("{what}: the candidate stopped"),
        Err(_) => panic!("{what} within {limit:?}; role {:?}", running.roles.borrow()),
    }
}

fn is_leader(role: &Role) -> bool {
    matches!(role, Role::Leader { .. })
}

/// The key's holder and the server's store time of its latest revision.
async fn holder(store: &async_nats::jetstream::kv::Store) -> Option<(String, u64, i128)> {
    let entry = store.entry(LEADER_KEY).await.expect("entry")?;
    let value = String::from_utf8(entry.value.to_vec()).expect("utf8");
    Some((value, entry.revision, entry.created.unix_timestamp_nanos()))
}

#[tokio::test]
async fn two_candidates_one_leader_and_takeover_after_a_crash() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = leader_election::open_bucket(&js, "ELECT", TTL)
        .await
        .expect("bucket");
    let mut alpha = start(&store, "alpha");
    role_becomes(&mut alpha, "alpha leads", is_leader).await;
    let mut beta = start(&store, "beta");
    role_becomes(&mut beta, "beta follows alpha", |r| {
        *r == Role::Follower {
            leader: Some("alpha".into()),
        }
    })
    .await;

    // For two leases, alpha keeps renewing and beta never leads.
    let first = holder(&store).await.expect("held");
    let deadline = Instant::now() + TTL * 2;
    while Instant::now() < deadline {
        assert!(!is_leader(&beta.roles.borrow()), "two leaders at once");
        assert!(is_leader(&alpha.roles.borrow()), "alpha lost a live lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let renewed = holder(&store).await.expect("held");
    assert_eq!(renewed.0, "alpha");
    assert!(renewed.1 >= first.1 + 4, "renewed every third of the TTL");

    // Alpha dies: no resignation, its key has to expire.
    alpha.task.abort();
    let crashed_at = Instant::now();
    let last = holder(&store)
        .await
        .expect("still held right after the crash");
    role_becomes(&mut beta, "beta takes over", is_leader).await;
    let took = crashed_at.elapsed();
    assert!(took <= TTL + TAKEOVER_SLACK, "takeover took {took:?}");
    let (who, _, created) = holder(&store).await.expect("held by beta");
    assert_eq!(who, "beta");
    // Safety, on the server's clock: beta's lease began only after alpha's last one ended.
    let gap = Duration::from_nanos(u64::try_from(created - last.2).expect("later"));
    assert!(
        gap + EXPIRY_EARLY_MAX >= TTL,
        "beta took a live lease ({gap:?})"
    );

    beta.stop.send(true).expect("stop");
    within("beta stops", beta.task)
        .await
        .expect("task")
        .expect("resigned");
}

#[tokio::test]
async fn a_clean_stop_hands_over_at_once() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = leader_election::open_bucket(&js, "HANDOVER", TTL)
        .await
        .expect("bucket");
    let mut alpha = start(&store, "alpha");
    role_becomes(&mut alpha, "alpha leads", is_leader).await;
    let mut beta = start(&store, "beta");
    role_becomes(&mut beta, "beta follows", |r| {
        !is_leader(r) && *r != Role::Starting
    })
    .await;

    alpha.stop.send(true).expect("stop");
    let stopped_at = Instant::now();
    within("alpha resigns", alpha.task)
        .await
        .expect("task")
        .expect("resigned");
    role_becomes(&mut beta, "beta takes over", is_leader).await;
    let took = stopped_at.elapsed();
    assert!(
        took < TTL / 2,
        "a resignation is seen at once, took {took:?}"
    );

    beta.stop.send(true).expect("stop");
    within("beta stops", beta.task)
        .await
        .expect("task")
        .expect("resigned");
    // The last leader's resignation leaves the key free.
    assert!(store.get(LEADER_KEY).await.expect("get").is_none());
}

#[tokio::test]
async fn a_leader_that_lost_its_lease_cannot_renew_or_resign_its_successor() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = leader_election::open_bucket(&js, "STALE", TTL)
        .await
        .expect("bucket");
    let mut alpha = Candidate::new(store.clone(), "alpha", TTL);
    let mut beta = Candidate::new(store.clone(), "beta", TTL);
    assert!(alpha.try_acquire().await.expect("acquire"));
    assert!(!beta.try_acquire().await.expect("acquire"));

    // Alpha pauses past its lease (a long GC, a stopped VM); beta takes the free key.
    let deadline = Instant::now() + TTL * 3;
    while !beta.try_acquire().await.expect("acquire") {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alpha.renew().await.expect("renew answered"), "stale renew");
    alpha.resign().await.expect("resign is a no-op");
    let (who, _, _) = holder(&store).await.expect("held");
    assert_eq!(who, "beta");
    assert!(
        leader_election::open_bucket(&js, "SHORT", Duration::from_millis(100))
            .await
            .is_err()
    );
}

/// Waits (bounded) until a follower's copy satisfies `wanted`, and returns it.
async fn copy_becomes(
    copy: &mut watch::Receiver<Arc<Snapshot>>,
    what: &str,
    wanted: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let snapshot = within(what, copy.wait_for(|s| wanted(s)))
        .await
        .expect("follower running");
    snapshot.clone()
}

#[tokio::test]
async fn services_follow_shared_config_through_a_watch() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = shared_config::open_bucket(&js, "CONFIG")
        .await
        .expect("bucket");

    // A service on an empty bucket is ready at once, with no settings.
    let (mut early, early_task) = shared_config::spawn_follower(store.clone());
    let ready = copy_becomes(&mut early, "empty copy ready", |s| s.ready).await;
    assert!(ready.settings.is_empty());

    for (key, value) in [
        ("greeting", "hello"),
        ("pool.size", "8"),
        ("greeting", "hi"),
    ] {
        store.put(key, Bytes::from(value)).await.expect("put");
    }
    let seen = copy_becomes(&mut early, "three changes", |s| s.revision == 3).await;
    assert_eq!(seen.text("greeting"), Some("hi"));
    assert_eq!(seen.text("pool.size"), Some("8"));

    // A service started later is configured before it is ready: never half a config.
    let (mut late, late_task) = shared_config::spawn_follower(store.clone());
    let caught_up = copy_becomes(&mut late, "late copy ready", |s| s.ready).await;
    assert_eq!(caught_up.settings, seen.settings);

    store.delete("greeting").await.expect("delete");
    store.put("mode", "fast".into()).await.expect("put");
    let a = copy_becomes(&mut early, "early sees 5", |s| s.revision == 5).await;
    let b = copy_becomes(&mut late, "late sees 5", |s| s.revision == 5).await;
    assert_eq!(a, b, "every service holds the same config");
    assert_eq!(a.text("greeting"), None);
    assert_eq!(a.text("mode"), Some("fast"));

    // A service that goes away ends its follower.
    drop(early);
    store.put("mode", "slow".into()).await.expect("put");
    within("early follower ends", early_task)
        .await
        .expect("task")
        .expect("clean end");
    late_task.abort();
}
