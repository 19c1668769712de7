//! Behaviour of `MetaStore` on real files: round trips, cascades, ordering, reopen, limits,
//! and the cost of a durable write. Corruption surgery is in `meta_corruption.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jetlog::meta::pb;
use jetlog::meta::{MetaError, MetaStore};
use tempfile::TempDir;

/// Number of writes timed per kind in `durable_put_latency`.
const LATENCY_SAMPLES: usize = 200;

/// A stream config with every field set to a non-default value, so a round trip that drops
/// any field is caught.
fn full_stream(name: &str) -> pb::StreamConfig {
    let source = pb::StreamSource {
        name: "origin".into(),
        opt_start_seq: 7,
        opt_start_time_unix_ns: Some(0),
        filter_subject: "a.>".into(),
        subject_transforms: vec![pb::SubjectTransform {
            src: "a.*".into(),
            dest: "b.{{wildcard(1)}}".into(),
        }],
        external: Some(pb::ExternalStream {
            api: "$JS.hub.API".into(),
            deliver: "deliver.hub".into(),
        }),
        consumer: Some(pb::SourceConsumer {
            name: "src".into(),
            deliver_subject: "src.deliver".into(),
        }),
    };
    pb::StreamConfig {
        name: name.into(),
        description: "orders placed by customers".into(),
        subjects: vec!["orders.*".into(), "returns.>".into()],
        retention: pb::RetentionPolicy::Workqueue as i32,
        max_consumers: 10,
        max_msgs: -1,
        max_bytes: 1 << 30,
        max_age_ns: 3_600_000_000_000,
        max_msgs_per_subject: 5,
        max_msg_size: 1 << 20,
        discard: pb::DiscardPolicy::New as i32,
        discard_new_per_subject: true,
        storage: pb::StorageType::Memory as i32,
        num_replicas: 1,
        duplicate_window_ns: 120_000_000_000,
        no_ack: true,
        allow_rollup_hdrs: true,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        mirror_direct: true,
        sealed: true,
        allow_msg_ttl: true,
        metadata: BTreeMap::from([("_nats.req.level".into(), "1".into())]),
        compression: pb::Compression::S2 as i32,
        first_seq: 42,
        created_unix_ns: 1_700_000_000_123_456_789,
        placement: Some(pb::Placement {
            cluster: "c1".into(),
            tags: vec!["ssd".into()],
        }),
        mirror: Some(source.clone()),
        sources: vec![source.clone(), source],
        subject_transform: Some(pb::SubjectTransform {
            src: "x".into(),
            dest: "y".into(),
        }),
        republish: Some(pb::Republish {
            src: ">".into(),
            dest: "repub.>".into(),
            headers_only: true,
        }),
        consumer_limits: Some(pb::ConsumerLimits {
            inactive_threshold_ns: 5_000_000_000,
            max_ack_pending: 100,
        }),
        subject_delete_marker_ttl_ns: 1_000_000_000,
        allow_msg_counter: true,
        allow_atomic: true,
        allow_msg_schedules: true,
        persist_mode: pb::PersistMode::Async as i32,
        allow_batched: true,
    }
}

/// A consumer config with every field set to a non-default value.
fn full_consumer(name: &str) -> pb::ConsumerConfig {
    pb::ConsumerConfig {
        durable_name: name.into(),
        name: name.into(),
        description: "billing".into(),
        deliver_policy: pb::DeliverPolicy::ByStartTime as i32,
        opt_start_seq: 3,
        // The epoch itself: "set to zero" must stay distinguishable from "unset".
        opt_start_time_unix_ns: Some(0),
        ack_policy: pb::AckPolicy::Explicit as i32,
        ack_wait_ns: 30_000_000_000,
        max_deliver: 5,
        backoff_ns: vec![1_000_000_000, 5_000_000_000],
        filter_subject: "orders.eu".into(),
        filter_subjects: vec!["orders.us".into(), "orders.ap".into()],
        replay_policy: pb::ReplayPolicy::Original as i32,
        rate_limit_bps: 1_000_000,
        sample_freq: "50%".into(),
        max_waiting: 512,
        max_ack_pending: 1000,
        deliver_subject: "deliver.billing".into(),
        deliver_group: "workers".into(),
        flow_control: true,
        idle_heartbeat_ns: 5_000_000_000,
        headers_only: true,
        max_batch: 100,
        max_expires_ns: 60_000_000_000,
        max_bytes: 1 << 20,
        inactive_threshold_ns: 10_000_000_000,
        num_replicas: 1,
        mem_storage: true,
        metadata: BTreeMap::from([("team".into(), "billing".into())]),
        created_unix_ns: 1_700_000_000_000_000_001,
        direct: true,
        sourcing: true,
        pause_until_unix_ns: Some(1_800_000_000_000_000_000),
        priority_groups: vec!["jobs".into()],
        priority_policy: pb::PriorityPolicy::PinnedClient as i32,
        priority_timeout_ns: 120_000_000_000,
    }
}

fn seq(consumer_seq: u64, stream_seq: u64, last_active: Option<i64>) -> Option<pb::SequenceInfo> {
    Some(pb::SequenceInfo {
        consumer_seq,
        stream_seq,
        last_active_unix_ns: last_active,
    })
}

fn full_state() -> pb::ConsumerState {
    pb::ConsumerState {
        delivered: seq(12, 40, Some(1_700_000_000_000_000_000)),
        ack_floor: seq(8, 30, None),
        pending: vec![
            pb::PendingAck {
                stream_seq: 33,
                consumer_seq: 11,
                timestamp_unix_ns: 1_700_000_000_000_000_000,
                msg_ts_unix_ns: 0,
            },
            pb::PendingAck {
                stream_seq: 40,
                consumer_seq: 12,
                timestamp_unix_ns: 1_700_000_000_000_000_500,
                msg_ts_unix_ns: 0,
            },
        ],
        redelivered: BTreeMap::from([(33, 2)]),
        skip_list: vec![41, 45],
    }
}

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
        durable_name: name.into(),
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn every_message_round_trips_across_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        store.put_stream(&full_stream("ORDERS")).unwrap();
        store
            .put_consumer("ORDERS", &full_consumer("billing"))
            .unwrap();
        store
            .put_consumer_state("ORDERS", "billing", &full_state())
            .unwrap();
        assert_eq!(
            store.get_stream("ORDERS").unwrap(),
            Some(full_stream("ORDERS"))
        );
    }
    let store = open(&dir);
    assert_eq!(
        store.get_stream("ORDERS").unwrap(),
        Some(full_stream("ORDERS"))
    );
    assert_eq!(
        store.get_consumer("ORDERS", "billing").unwrap(),
        Some(full_consumer("billing"))
    );
    assert_eq!(
        store.get_consumer_state("ORDERS", "billing").unwrap(),
        Some(full_state())
    );
    assert_eq!(
        store.list_consumers("ORDERS").unwrap(),
        vec![full_consumer("billing")]
    );
}

#[test]
fn unset_optional_differs_from_zero() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    let mut config = consumer("c");
    config.opt_start_time_unix_ns = None;
    store.put_consumer("S", &config).unwrap();
    let back = store.get_consumer("S", "c").unwrap().unwrap();
    assert_eq!(back.opt_start_time_unix_ns, None);
    assert_eq!(full_consumer("c").opt_start_time_unix_ns, Some(0));
}

#[test]
fn absent_records_are_none() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert_eq!(store.get_stream("nope").unwrap(), None);
    assert_eq!(store.get_consumer("nope", "c").unwrap(), None);
    assert_eq!(store.get_consumer_state("nope", "c").unwrap(), None);
    assert!(!store.delete_stream("nope").unwrap());
    assert!(!store.delete_consumer("nope", "c").unwrap());
    store.put_stream(&stream("S")).unwrap();
    store.put_consumer("S", &consumer("c")).unwrap();
    assert_eq!(store.get_consumer_state("S", "c").unwrap(), None);
}

#[test]
fn streams_and_consumers_are_listed_by_name() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for name in ["b", "a", "c", "B", "aa"] {
        store.put_stream(&stream(name)).unwrap();
    }
    // "a" and "aa" also check that consumers of "a" never leak into the listing of "aa".
    for name in ["z", "m", "a"] {
        store.put_consumer("a", &consumer(name)).unwrap();
    }
    store.put_consumer("aa", &consumer("other")).unwrap();
    let names: Vec<_> = store
        .list_streams()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["B", "a", "aa", "b", "c"]);
    let names: Vec<_> = store
        .list_consumers("a")
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a", "m", "z"]);
    assert!(store.list_consumers("c").unwrap().is_empty());
}

#[test]
fn put_replaces_existing_records() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    let mut updated = stream("S");
    updated.max_msgs = 100;
    store.put_stream(&updated).unwrap();
    assert_eq!(store.get_stream("S").unwrap(), Some(updated));
    assert_eq!(store.list_streams().unwrap().len(), 1);
}

#[test]
fn deleting_a_stream_deletes_its_consumers_and_states() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        for name in ["S", "S2"] {
            store.put_stream(&stream(name)).unwrap();
            store.put_consumer(name, &consumer("c1")).unwrap();
            store.put_consumer(name, &consumer("c2")).unwrap();
            store.put_consumer_state(name, "c1", &full_state()).unwrap();
        }
        assert!(store.delete_stream("S").unwrap());
    }
    let store = open(&dir);
    assert_eq!(store.get_stream("S").unwrap(), None);
    assert!(store.list_consumers("S").unwrap().is_empty());
    assert_eq!(store.get_consumer_state("S", "c1").unwrap(), None);
    // Recreating the stream must not resurrect anything.
    store.put_stream(&stream("S")).unwrap();
    assert!(store.list_consumers("S").unwrap().is_empty());
    // The other stream is untouched.
    assert_eq!(store.list_consumers("S2").unwrap().len(), 2);
    assert_eq!(
        store.get_consumer_state("S2", "c1").unwrap(),
        Some(full_state())
    );
}

#[test]
fn deleting_a_consumer_deletes_its_state() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    store.put_consumer("S", &consumer("c")).unwrap();
    store.put_consumer_state("S", "c", &full_state()).unwrap();
    assert!(store.delete_consumer("S", "c").unwrap());
    assert_eq!(store.get_consumer("S", "c").unwrap(), None);
    assert_eq!(store.get_consumer_state("S", "c").unwrap(), None);
    // Re-creating it starts with no state.
    store.put_consumer("S", &consumer("c")).unwrap();
    assert_eq!(store.get_consumer_state("S", "c").unwrap(), None);
}

#[test]
fn children_need_their_parent() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let err = store.put_consumer("S", &consumer("c")).unwrap_err();
    assert!(matches!(err, MetaError::StreamNotFound { .. }), "{err}");
    store.put_stream(&stream("S")).unwrap();
    let err = store
        .put_consumer_state("S", "c", &full_state())
        .unwrap_err();
    assert!(matches!(err, MetaError::ConsumerNotFound { .. }), "{err}");
}

#[test]
fn invalid_names_are_rejected() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for bad in ["", "a\0b"] {
        let err = store.put_stream(&stream(bad)).unwrap_err();
        assert!(matches!(err, MetaError::InvalidName { .. }), "{err}");
    }
    store.put_stream(&stream("S")).unwrap();
    let err = store.put_consumer("S", &consumer("c\0")).unwrap_err();
    assert!(matches!(err, MetaError::InvalidName { .. }), "{err}");
    let mut mismatched = consumer("c");
    mismatched.durable_name = "d".into();
    let err = store.put_consumer("S", &mismatched).unwrap_err();
    assert!(matches!(err, MetaError::InvalidName { .. }), "{err}");
    // A legacy durable with only durable_name is stored under it.
    let mut legacy = consumer("");
    legacy.durable_name = "old".into();
    store.put_consumer("S", &legacy).unwrap();
    assert_eq!(store.get_consumer("S", "old").unwrap(), Some(legacy));
}

#[test]
fn state_breaking_invariants_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    store.put_consumer("S", &consumer("c")).unwrap();
    let mut state = full_state();
    state.ack_floor = seq(8, 41, None);
    let err = store.put_consumer_state("S", "c", &state).unwrap_err();
    assert!(matches!(err, MetaError::InvalidState { .. }), "{err}");
    assert_eq!(store.get_consumer_state("S", "c").unwrap(), None);
}

#[test]
fn batched_states_skip_deleted_consumers() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    store.put_consumer("S", &consumer("a")).unwrap();
    store.put_consumer("S", &consumer("b")).unwrap();
    let state = full_state();
    let empty = pb::ConsumerState::default();
    let batch = [
        ("S", "a", &state),
        ("S", "gone", &state),
        ("S", "b", &empty),
    ];
    assert_eq!(store.put_consumer_states(&batch).unwrap(), 2);
    assert_eq!(
        store.get_consumer_state("S", "a").unwrap(),
        Some(state.clone())
    );
    assert_eq!(store.get_consumer_state("S", "b").unwrap(), Some(empty));
    assert_eq!(store.get_consumer_state("S", "gone").unwrap(), None);

    // One invalid entry fails the batch before anything is written.
    let mut bad = full_state();
    bad.pending.reverse();
    let batch = [("S", "b", &state), ("S", "a", &bad)];
    let err = store.put_consumer_states(&batch).unwrap_err();
    assert!(matches!(err, MetaError::InvalidState { .. }), "{err}");
    assert_eq!(
        store.get_consumer_state("S", "b").unwrap(),
        Some(pb::ConsumerState::default())
    );
}

/// A state with `pending` unacknowledged messages, each delivered twice.
fn state_with_pending(pending: u64) -> pb::ConsumerState {
    let ts = 1_700_000_000_000_000_000;
    pb::ConsumerState {
        delivered: seq(2 * pending, pending, Some(ts)),
        ack_floor: seq(0, 0, None),
        pending: (1..=pending)
            .map(|s| pb::PendingAck {
                stream_seq: s,
                consumer_seq: pending + s,
                timestamp_unix_ns: ts + s as i64,
                msg_ts_unix_ns: 0,
            })
            .collect(),
        redelivered: (1..=pending).map(|s| (s, 1)).collect(),
        skip_list: Vec::new(),
    }
}

#[test]
fn large_state_survives_reopen() {
    let dir = TempDir::new().unwrap();
    // About 400 KiB encoded: beyond sled's inline limit, so sled stores it as a blob file,
    // which is the path `MetaStore::flush` must sync itself.
    let state = state_with_pending(10_000);
    {
        let store = open(&dir);
        store.put_stream(&stream("S")).unwrap();
        store.put_consumer("S", &consumer("c")).unwrap();
        store.put_consumer_state("S", "c", &state).unwrap();
    }
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map_or(0, |d| d.count());
    assert!(
        blobs > 0,
        "expected sled to store the large state as a blob"
    );
    let store = open(&dir);
    assert_eq!(store.get_consumer_state("S", "c").unwrap(), Some(state));
}

#[test]
fn oversized_value_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.put_stream(&stream("S")).unwrap();
    store.put_consumer("S", &consumer("c")).unwrap();
    let err = store
        .put_consumer_state("S", "c", &state_with_pending(200_000))
        .unwrap_err();
    assert!(matches!(err, MetaError::ValueTooLarge { .. }), "{err}");
}

#[test]
fn second_open_of_the_same_directory_fails() {
    let dir = TempDir::new().unwrap();
    let _store = open(&dir);
    let err = MetaStore::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, MetaError::Storage { .. }), "{err}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Measures what one durable write costs. Run with `--nocapture` to see the figures.
#[test]
fn durable_put_latency() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut config = full_stream("LAT");
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        config.max_msgs = i as i64;
        let start = Instant::now();
        store.put_stream(&config).unwrap();
        samples.push(start.elapsed());
    }
    let stream_median = median(samples);

    store.put_consumer("LAT", &full_consumer("c")).unwrap();
    let mut state = full_state();
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES as u64 {
        state.delivered = seq(100 + i, 100 + i, Some(1));
        let start = Instant::now();
        store.put_consumer_state("LAT", "c", &state).unwrap();
        samples.push(start.elapsed());
    }
    let state_median = median(samples);

    // 50 consumers committed as one group, timed the same way.
    let names: Vec<String> = (0..50).map(|i| format!("g{i:02}")).collect();
    for name in &names {
        store.put_consumer("LAT", &consumer(name)).unwrap();
    }
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let batch: Vec<_> = names.iter().map(|n| ("LAT", n.as_str(), &state)).collect();
        let start = Instant::now();
        assert_eq!(store.put_consumer_states(&batch).unwrap(), names.len());
        samples.push(start.elapsed());
    }
    let batch_median = median(samples);

    eprintln!(
        "meta_put_latency samples={LATENCY_SAMPLES} put_stream_median_us={} \
         put_consumer_state_median_us={} put_consumer_states_50_median_us={}",
        stream_median.as_micros(),
        state_median.as_micros(),
        batch_median.as_micros()
    );
    // Only a sanity bound: a durable write that takes a second means something is wrong.
    assert!(stream_median < Duration::from_secs(1));
}
