//! A replica that catches up from a snapshot and a peer's store must end where a replica
//! that applied every entry is, and go on agreeing with it; snapshots and pages read back
//! exactly, and damaged bytes are an error, never a panic.

use bytes::Bytes;

use super::*;
use crate::jetstream::api_types::PubAck as PubAckOf;
use crate::jetstream::replica::tests::{contents, open_replica, rounds};
use crate::jetstream::replica::RoundEntry;
use crate::jetstream::test_publish::msg;

/// Brings `follower` to `leader`'s snapshot at `index` as a server does: the snapshot's
/// removals, then pages of the leader's messages, then the checkpoint. Returns the pages.
fn catch_up(
    follower: &mut Stream,
    leader: &Stream,
    snapshot: &StreamSnapshot,
    index: u64,
) -> usize {
    let mut from = follower.begin_catch_up(snapshot).expect("begin");
    let mut pages = 0;
    loop {
        let page = leader.sync_page(from, snapshot.last_seq).expect("page");
        // Every page crosses the wire.
        let page = SyncPage::decode(&Bytes::from(page.encode())).expect("page reads back");
        follower.store_sync_page(&page).expect("store page");
        pages += 1;
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    follower.finish_catch_up(index, snapshot).expect("finish");
    pages
}

fn state(stream: &Stream) -> crate::store::LogState {
    stream.log().state(true).expect("state")
}

#[test]
fn a_replica_caught_up_from_a_snapshot_agrees_with_one_that_applied_every_entry() {
    for seed in [3, 17, 4242] {
        let entries = rounds(seed, 90);
        for behind in [0usize, 5, 30, 59] {
            let (leader_dir, follower_dir) = (
                tempfile::tempdir().expect("dir"),
                tempfile::tempdir().expect("dir"),
            );
            let (mut leader, _) = open_replica(leader_dir.path());
            let (mut follower, _) = open_replica(follower_dir.path());
            for (i, e) in entries.iter().enumerate().take(60) {
                leader.apply_round(i as u64 + 1, e);
                if i < behind {
                    follower.apply_round(i as u64 + 1, e);
                }
            }
            let snapshot = leader.snapshot().expect("snapshot");
            let snapshot = StreamSnapshot::decode(&snapshot.encode()).expect("reads back");
            catch_up(&mut follower, &leader, &snapshot, 60);
            assert_eq!(
                contents(&follower),
                contents(&leader),
                "seed {seed}, behind {behind}"
            );
            assert_eq!(
                state(&follower),
                state(&leader),
                "seed {seed}, behind {behind}"
            );
            assert_eq!(follower.log().applied().map(|a| a.index), Some(60));
            // From here on both apply the same entries to the same acks and bytes: the
            // duplicate window came with the snapshot.
            for (i, e) in entries.iter().enumerate().skip(60) {
                let index = i as u64 + 1;
                assert_eq!(
                    follower.apply_round(index, e),
                    leader.apply_round(index, e),
                    "seed {seed}, behind {behind}, entry {i}"
                );
            }
            assert_eq!(
                contents(&follower),
                contents(&leader),
                "seed {seed}, behind {behind}"
            );
        }
    }
}

#[test]
fn a_caught_up_replica_refuses_a_duplicate_whose_message_a_limit_removed() {
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (mut leader, _) = open_replica(dirs.0.path());
    let (mut follower, _) = open_replica(dirs.1.path());
    let round = |now_s: u64, publishes| RoundEntry {
        now_ns: now_s * 1_000_000_000,
        publishes,
    };
    leader.apply_round(
        1,
        &round(100, vec![msg("o.a", &[("Nats-Msg-Id", "once")], "1")]),
    );
    // A rollup on the subject removes the message; its id stays in the window.
    leader.apply_round(
        2,
        &round(101, vec![msg("o.a", &[("Nats-Rollup", "sub")], "2")]),
    );
    let snapshot = leader.snapshot().expect("snapshot");
    assert_eq!(
        snapshot.dedup,
        vec![("once".to_owned(), 1, 100_000_000_000)]
    );
    catch_up(&mut follower, &leader, &snapshot, 2);
    let again = round(102, vec![msg("o.b", &[("Nats-Msg-Id", "once")], "3")]);
    let (acks, _) = follower.apply_round(3, &again);
    assert_eq!(acks, leader.apply_round(3, &again).0);
    assert_eq!(acks, vec![PubAckOf::Duplicate { seq: 1 }]);
}

#[test]
fn pages_carry_a_large_store_with_its_gaps_in_bounded_pieces() {
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let plain = serde_json::from_str::<crate::jetstream::StreamConfig>(
        r#"{"name":"P","subjects":["p.>"]}"#,
    )
    .expect("config")
    .normalized()
    .expect("valid");
    let open = |dir: &std::path::Path| {
        let checkpoint = crate::jetstream::replica::rewind_store(dir, &plain).expect("rewind");
        assert_eq!(checkpoint.index, 0);
        Stream::open(dir, plain.clone(), 0, crate::store::SyncPolicy::Always, 0).expect("open")
    };
    let (mut leader, mut follower) = (open(dirs.0.path()), open(dirs.1.path()));
    let publishes = (0..3000)
        .map(|i| msg("p.x", &[], &format!("m{i}")))
        .collect();
    leader.apply_round(
        1,
        &RoundEntry {
            now_ns: 5,
            publishes,
        },
    );
    for seq in [1, 2, 700, 1024, 1025, 2999, 3000] {
        leader.log_mut().delete(seq).expect("delete");
    }
    let snapshot = leader.snapshot().expect("snapshot");
    assert_eq!((snapshot.first_seq, snapshot.last_seq), (3, 3000));
    assert_eq!(
        snapshot.deleted,
        vec![(700, 700), (1024, 1025), (2999, 3000)]
    );
    let pages = catch_up(&mut follower, &leader, &snapshot, 1);
    assert_eq!(pages, 3, "1024 messages a page");
    assert_eq!(contents(&follower), contents(&leader));
    assert_eq!(state(&follower), state(&leader));
    // The next publish gets the same sequence on both.
    let next = RoundEntry {
        now_ns: 6,
        publishes: vec![msg("p.y", &[], "after")],
    };
    assert_eq!(
        follower.apply_round(2, &next).0,
        leader.apply_round(2, &next).0
    );
}

#[test]
fn a_peer_that_removed_messages_since_the_snapshot_leaves_gaps_that_later_entries_agree_with() {
    let entries = rounds(11, 90);
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (mut leader, _) = open_replica(dirs.0.path());
    let (mut follower, _) = open_replica(dirs.1.path());
    for (i, e) in entries.iter().enumerate().take(40) {
        leader.apply_round(i as u64 + 1, e);
    }
    let snapshot = leader.snapshot().expect("snapshot");
    // The leader goes on before the follower asks for its messages.
    for (i, e) in entries.iter().enumerate().skip(40).take(10) {
        leader.apply_round(i as u64 + 1, e);
    }
    catch_up(&mut follower, &leader, &snapshot, 40);
    for (i, e) in entries.iter().enumerate().skip(40) {
        let index = i as u64 + 1;
        let acks = follower.apply_round(index, e);
        if i >= 50 {
            assert_eq!(acks, leader.apply_round(index, e), "entry {i}");
        }
    }
    assert_eq!(contents(&follower), contents(&leader));
}

#[test]
fn damaged_snapshots_and_pages_are_errors() {
    let snapshot = StreamSnapshot {
        store_index: 12,
        first_seq: 4,
        last_seq: 90,
        deleted: vec![(5, 9), (70, 70)],
        dedup: vec![("a".into(), 6, 77)],
        consumers: vec![
            ConsumerOp::Put {
                name: "C".into(),
                created_ns: 3,
                config: Bytes::from_static(b"{}"),
                only_new: false,
            },
            ConsumerOp::States {
                states: vec![("C".into(), Bytes::from_static(b"\x08\x01"))],
                removed: vec![],
            },
        ],
        config: Bytes::from_static(br#"{"name":"S"}"#),
    };
    let bytes = snapshot.encode();
    assert_eq!(StreamSnapshot::decode(&bytes), Ok(snapshot.clone()));
    for cut in 0..bytes.len() {
        assert!(
            StreamSnapshot::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut newer = bytes.clone();
    newer[0] = SNAPSHOT_WITH_CONFIG + 1;
    assert_eq!(StreamSnapshot::decode(&newer), Err(EntryError::Version(3)));
    // A snapshot written before snapshots held the config still reads, without one.
    let mut older = bytes[..bytes.len() - 4 - snapshot.config.len()].to_vec();
    older[0] = SNAPSHOT_VERSION;
    let without = StreamSnapshot {
        config: Bytes::new(),
        ..snapshot.clone()
    };
    assert_eq!(StreamSnapshot::decode(&older), Ok(without));

    let page = SyncPage {
        messages: vec![StoredMessage {
            seq: 8,
            ts_ns: 9,
            subject: "o.a".into(),
            headers: Bytes::from_static(b"NATS/1.0\r\n\r\n"),
            payload: Bytes::from_static(b"x"),
        }],
        next: Some(9),
    };
    let bytes = Bytes::from(page.encode());
    assert_eq!(SyncPage::decode(&bytes), Ok(page));
    for cut in 0..bytes.len() {
        assert!(
            SyncPage::decode(&bytes.slice(..cut)).is_err(),
            "cut at {cut}"
        );
    }
}
