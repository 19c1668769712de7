//! Corruption surgery: values damaged on disk (written around `MetaStore`, with sled
//! directly) must come back as typed errors naming the tree and key, never as panics or as
//! wrong data.

use std::path::Path;

use jetlog::meta::pb;
use jetlog::meta::{MetaError, MetaStore, CONSUMER_STATES_TREE, FORMAT_VERSION, STREAMS_TREE};
use tempfile::TempDir;

fn open(dir: &TempDir) -> MetaStore {
    MetaStore::open(dir.path()).expect("open meta store")
}

fn stream(name: &str) -> pb::StreamConfig {
    pb::StreamConfig {
        name: name.into(),
        ..Default::default()
    }
}

fn consumer(name: &str) -> pb::ConsumerConfig {
    pb::ConsumerConfig {
        name: name.into(),
        ..Default::default()
    }
}

fn seq(consumer_seq: u64, stream_seq: u64) -> Option<pb::SequenceInfo> {
    Some(pb::SequenceInfo {
        consumer_seq,
        stream_seq,
        last_active_unix_ns: None,
    })
}

/// Writes `value` under `key` in `tree` with sled directly, as a disk fault would.
fn overwrite_raw(dir: &Path, tree: &str, key: &[u8], value: &[u8]) {
    // sled releases its lock a moment after the last handle drops; wait for it, boundedly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("sled open: {e}"),
        }
    };
    db.open_tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

#[test]
fn undecodable_value_is_reported_as_corrupt() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        store.put_stream(&stream("good")).unwrap();
        store.put_stream(&stream("bad")).unwrap();
    }
    // Field 1 (name) announcing 100 bytes of which only 2 follow.
    overwrite_raw(
        dir.path(),
        STREAMS_TREE,
        b"bad",
        &[FORMAT_VERSION, 0x0a, 100, b'b', b'a'],
    );
    let store = open(&dir);
    let err = store.get_stream("bad").unwrap_err();
    match &err {
        MetaError::Corrupt { tree, key, .. } => {
            assert_eq!(*tree, STREAMS_TREE);
            assert_eq!(key, b"bad");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(matches!(
        store.list_streams(),
        Err(MetaError::Corrupt { .. })
    ));
    assert_eq!(store.get_stream("good").unwrap(), Some(stream("good")));
    // The way out: delete never decodes.
    assert!(store.delete_stream("bad").unwrap());
    assert_eq!(store.list_streams().unwrap(), vec![stream("good")]);
}

#[test]
fn value_stored_under_another_name_is_corrupt() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        store.put_stream(&stream("a")).unwrap();
    }
    let mut value = vec![FORMAT_VERSION];
    prost::Message::encode(&stream("b"), &mut value).unwrap();
    overwrite_raw(dir.path(), STREAMS_TREE, b"a", &value);
    let store = open(&dir);
    assert!(matches!(
        store.get_stream("a"),
        Err(MetaError::Corrupt { .. })
    ));
}

#[test]
fn stored_state_breaking_invariants_is_corrupt() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        store.put_stream(&stream("S")).unwrap();
        store.put_consumer("S", &consumer("c")).unwrap();
    }
    // An ack floor past the delivered position.
    let bad = pb::ConsumerState {
        delivered: seq(10, 10),
        ack_floor: seq(100, 100),
        ..Default::default()
    };
    let mut value = vec![FORMAT_VERSION];
    prost::Message::encode(&bad, &mut value).unwrap();
    overwrite_raw(dir.path(), CONSUMER_STATES_TREE, b"S\0c", &value);
    let store = open(&dir);
    let err = store.get_consumer_state("S", "c").unwrap_err();
    assert!(matches!(err, MetaError::Corrupt { .. }), "{err}");
}

#[test]
fn newer_format_version_is_unsupported() {
    let dir = TempDir::new().unwrap();
    overwrite_raw(
        dir.path(),
        STREAMS_TREE,
        b"S",
        &[FORMAT_VERSION + 1, 0x0a, 1, b'S'],
    );
    let store = open(&dir);
    let err = store.get_stream("S").unwrap_err();
    assert!(matches!(err, MetaError::UnsupportedVersion { .. }), "{err}");
}
