//! Replicas of one stream fed the same entries must agree on every PubAck and every stored
//! byte; a replica that crashed between storing and checkpointing must, after
//! `rewind_store`, apply the same entries again to the same result; an entry's bytes are
//! read back exactly, and damaged bytes are an error, never a panic.

use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::jetstream::test_publish::msg;

const SEC: u64 = 1_000_000_000;
const SUBJECTS: [&str; 4] = ["o.a", "o.b", "o.c.x", "o.c.y"];

pub(crate) fn config() -> StreamConfig {
    serde_json::from_str::<StreamConfig>(
        r#"{"name":"O","subjects":["o.>"],"max_msgs":25,"max_msgs_per_subject":6,
            "duplicate_window":5000000000,"allow_rollup_hdrs":true}"#,
    )
    .expect("the test's config parses")
    .normalized()
    .expect("the test's config is valid")
}

pub(crate) fn open(dir: &Path) -> Stream {
    Stream::open(dir, config(), 0, SyncPolicy::Always, 0).expect("the stream opens")
}

/// Opens a replica as a server does: its store brought back to its checkpoint first.
pub(crate) fn open_replica(dir: &Path) -> (Stream, Checkpoint) {
    let checkpoint = rewind_store(dir, &config()).expect("rewind");
    (open(dir), checkpoint)
}

/// xorshift64, so a failing run replays.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rounds of publishes that exercise dedup, expectations (met and missed), per-subject and
/// stream limits and rollups, a second apart so the duplicate window also expires.
pub(crate) fn rounds(seed: u64, n: usize) -> Vec<RoundEntry> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|round| {
            let publishes = (0..1 + rng.below(8))
                .map(|i| {
                    let subject = SUBJECTS[rng.below(4) as usize];
                    let payload = format!("r{round}m{i}");
                    let id = format!("id{}", rng.below(40));
                    let expected = rng.below(60).to_string();
                    match rng.below(6) {
                        0 => msg(subject, &[("Nats-Msg-Id", &id)], &payload),
                        1 => msg(
                            subject,
                            &[("Nats-Expected-Last-Sequence", &expected)],
                            &payload,
                        ),
                        2 => msg(
                            subject,
                            &[("Nats-Expected-Last-Subject-Sequence", &expected)],
                            &payload,
                        ),
                        3 if rng.below(4) == 0 => msg(subject, &[("Nats-Rollup", "sub")], &payload),
                        _ => msg(subject, &[], &payload),
                    }
                })
                .collect();
            RoundEntry {
                now_ns: 1_000 * SEC + round as u64 * SEC,
                publishes,
            }
        })
        .collect()
}

/// Everything a replica holds, for comparing.
pub(crate) fn contents(stream: &Stream) -> Vec<(u64, String, Bytes, Bytes, u64)> {
    stream
        .log()
        .scan(0, &[], usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|m| (m.seq, m.subject, m.headers, m.payload, m.ts_ns))
        .collect()
}

#[test]
fn three_replicas_fed_the_same_entries_agree_on_every_ack_and_every_byte() {
    for seed in [1, 2, 3, 99, 4242] {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let mut replicas: Vec<Stream> = dirs.iter().map(|d| open_replica(d.path()).0).collect();
        let mut kinds = std::collections::HashSet::new();
        for (i, entry) in rounds(seed, 80).iter().enumerate() {
            let outcomes: Vec<_> = replicas
                .iter_mut()
                .map(|r| r.apply_round(i as u64 + 1, entry))
                .collect();
            for ack in &outcomes[0].0 {
                kinds.insert(std::mem::discriminant(ack));
            }
            assert_eq!(outcomes[0], outcomes[1], "seed {seed}, entry {i}");
            assert_eq!(outcomes[0], outcomes[2], "seed {seed}, entry {i}");
        }
        // The rounds really met duplicates and refusals, not only plain stores.
        assert!(kinds.len() >= 3, "seed {seed}: only {kinds:?}");
        let first = contents(&replicas[0]);
        assert!(first.len() > 10, "seed {seed}");
        assert_eq!(first, contents(&replicas[1]), "seed {seed}");
        assert_eq!(first, contents(&replicas[2]), "seed {seed}");
    }
}

/// A crash leaves the appends of the entries applied since the store's last sync in the
/// segment files, and their checkpoint and removals unwritten (`apply_round` syncs at most
/// every `REPLICA_SYNC_EVERY`; the test syncs halfway, as that timer would, and `process`
/// without an apply is an entry the crash cut short). Reopened, the store is back at the
/// synced checkpoint, and the entries after it apply again to the same acks and bytes.
#[test]
fn a_replica_that_crashed_applies_the_entries_after_its_durable_checkpoint_again_to_the_same_state()
{
    let entries = rounds(7, 60);
    let straight_dir = tempfile::tempdir().expect("dir");
    let (mut straight, _) = open_replica(straight_dir.path());
    let straight_acks: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| straight.apply_round(i as u64 + 1, e))
        .collect();

    for crash_at in [0usize, 1, 7, 20, 33, 45, 59] {
        let dir = tempfile::tempdir().expect("dir");
        let (mut replica, _) = open_replica(dir.path());
        let synced_at = crash_at / 2;
        for (i, e) in entries.iter().enumerate().take(crash_at) {
            replica.apply_round(i as u64 + 1, e);
            if i + 1 == synced_at {
                replica.log_mut().sync().expect("sync");
            }
        }
        let interrupted = &entries[crash_at];
        replica.process(&interrupted.publishes, interrupted.now_ns);
        drop(replica);
        let (mut replica, checkpoint) = open_replica(dir.path());
        assert_eq!(checkpoint.index, synced_at as u64, "crash at {crash_at}");
        assert_eq!(replica.log().last_seq(), checkpoint.last_seq);
        for (i, e) in entries.iter().enumerate().skip(synced_at) {
            let again = replica.apply_round(i as u64 + 1, e);
            assert_eq!(again, straight_acks[i], "crash at {crash_at}, entry {i}");
        }
        assert_eq!(
            contents(&replica),
            contents(&straight),
            "crash at {crash_at}"
        );
    }
}

#[test]
fn a_store_with_messages_no_entry_accounts_for_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut stream = open(dir.path());
    stream.process(&rounds(3, 1)[0].publishes, 1_000 * SEC);
    stream.log_mut().sync().expect("sync");
    drop(stream);
    let err = rewind_store(dir.path(), &config()).expect_err("unaccounted");
    assert_eq!(err.err_code, 10077);
    assert!(
        err.description
            .contains("that no replicated entry accounts for"),
        "{}",
        err.description
    );
    let fresh = tempfile::tempdir().expect("dir");
    assert_eq!(
        rewind_store(fresh.path(), &config()).expect("empty"),
        Checkpoint::default()
    );
}

#[test]
fn a_store_that_begins_a_group_keeps_its_messages_as_the_groups_from_entry_0() {
    let dir = tempfile::tempdir().expect("dir");
    // A stream of its own, and one that was a replica at entry 40 before it was one.
    for earlier in [None, Some(40)] {
        let mut stream = open(dir.path());
        stream.process(&rounds(3, 1)[0].publishes, 1_000 * SEC);
        if let Some(index) = earlier {
            stream.log_mut().set_applied(index);
        }
        let last_seq = stream.log().last_seq();
        stream.log_mut().begin_group();
        stream.log_mut().sync().expect("sync");
        let before = contents(&stream);
        drop(stream);
        let checkpoint = rewind_store(dir.path(), &config()).expect("accounted for");
        assert_eq!(checkpoint, Checkpoint { index: 0, last_seq });
        assert_eq!(contents(&open(dir.path())), before);
    }
}

#[test]
fn an_entry_reads_back_exactly_and_every_cut_of_it_is_refused() {
    let mut entry = rounds(11, 1).remove(0);
    entry.publishes.push(Publish {
        subject: Bytes::from_static(b"o.r"),
        reply: Some(Bytes::from_static(b"_INBOX.x.1")),
        headers: None,
        payload: Bytes::new(),
    });
    let bytes = Bytes::from(entry.encode());
    assert_eq!(RoundEntry::decode(&bytes), Ok(entry.clone()));
    for cut in 0..bytes.len() {
        assert!(
            RoundEntry::decode(&bytes.slice(..cut)).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        RoundEntry::decode(&Bytes::from(longer)),
        Err(EntryError::Trailing(1))
    );
    let mut other = bytes.to_vec();
    other[0] = 9;
    let err = RoundEntry::decode(&Bytes::from(other)).expect_err("version");
    assert_eq!(
        err.to_string(),
        "replicated stream entry has format 9, this server reads format 1"
    );
    // A count the bytes cannot hold allocates nothing and is refused.
    let mut huge = bytes[..13].to_vec();
    huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        RoundEntry::decode(&Bytes::from(huge)),
        Err(EntryError::Short)
    );
}
