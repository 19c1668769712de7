//! Valid inputs for each property, in the property's input layout: the starting points that
//! the proptest suite mutates and that `write_fuzz_seeds` (in `tests/untrusted_input.rs`) writes
//! into the fuzzers' corpus directories, which are not committed, so that both begin past the
//! first checks.

use bytes::Bytes;
use jetlog::meta::pb;
use jetlog::meta::values::encode;
use jetlog::store::index::SegmentIndex;
use jetlog::store::meta::{DeletesFile, SegmentSummary, Snapshot, SubjectEntry};
use jetlog::store::record::{encode_record, encode_record_compressed, encode_segment_header};
use jetlog::store::NewMessage;

/// A stream of every op, with split points and the default limits.
pub fn parser() -> Vec<Vec<u8>> {
    let ops: &[&[u8]] = &[
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nPING\r\nPONG\r\n",
        b"SUB foo.* q 1\r\nSUB bar 2\r\nUNSUB 1 10\r\nunsub 2\r\n",
        b"PUB foo.x 5\r\nhello\r\nPUB foo.y reply.1 0\r\n\r\n",
        b"HPUB h r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB h 22 22\r\nNATS/1.0\r\nA: b\r\n\r\n\r\n",
        b"PUB\tfoo   bar\t 2\r\nok\r\nPING\nPONG\n",
        b"PUB foo 4097\r\n",
    ];
    let mut seeds = Vec::new();
    for (i, stream) in ops.iter().enumerate() {
        // Default limits and two cuts, then small limits and no cuts.
        let mut seed = vec![u8::MAX, u8::MAX, 2, 3, 0, (i * 5) as u8, 0];
        seed.extend_from_slice(stream);
        seeds.push(seed);
        let mut small = vec![24, 8, 0];
        small.extend_from_slice(stream);
        seeds.push(small);
    }
    seeds
}

/// CONNECT bodies as clients send them.
pub fn connect() -> Vec<Vec<u8>> {
    [
        &br#"{"verbose":false,"pedantic":false,"tls_required":false,"name":"app","lang":"rust",
            "version":"0.51.0","protocol":1,"echo":true,"headers":true,"no_responders":true}"#[..],
        br#"{"user":"alice","pass":"s3cret","verbose":false}"#,
        br#"{"auth_token":"t0ken"}"#,
        br#"{"user":"bob","pass":""}"#,
        br#"  {"user":null,"pass":"x","protocol":2}"#,
        b"{}",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Header blocks a publisher may store.
pub fn headers() -> Vec<Vec<u8>> {
    [
        &b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX:  y \r\nNats-Msg-Id: second\r\n\r\n"[..],
        b"NATS/1.0 503\r\nNats-Subject: svc.x\r\n\r\n",
        b"NATS/1.0\r\nnats-sequence: 999\r\nX: 1\r\nNats-Stream: FAKE\r\n\r\n",
        b"NATS/1.0 404 No Messages\r\n\r\n",
        b"NATS/1.0\r\nNats-Expected-Last-Sequence: 7\r\nNats-Rollup: sub\r\n\r\n",
    ]
    .iter()
    .enumerate()
    .map(|(i, block)| {
        let mut seed = vec![i as u8, 3];
        seed.extend_from_slice(block);
        seed
    })
    .collect()
}

/// Request bodies for each kind the `js_api` property knows.
pub fn js_api() -> Vec<Vec<u8>> {
    let bodies: &[(u8, u8, &str)] = &[
        (
            0,
            0,
            r#"{"name":"ORDERS","subjects":["orders.>"],"retention":"workqueue","max_msgs":5,
                "max_age":60000000000,"discard":"new","storage":"memory","allow_direct":true,
                "allow_rollup_hdrs":true,"deny_delete":true,"metadata":{"team":"a"},
                "max_msgs_per_subject":3,"discard_new_per_subject":true,"description":"d"}"#,
        ),
        (
            0,
            0,
            r#"{"name":"KV_b","subjects":["$KV.b.>"],"max_msgs_per_subject":1,
                "allow_rollup_hdrs":true,"deny_delete":true,"allow_direct":true,
                "duplicate_window":120000000000,"consumer_limits":null,"placement":{"cluster":"c",
                "tags":["t"]},"compression":"none","num_replicas":1}"#,
        ),
        (
            1,
            0,
            r#"{"stream_name":"S","config":{"ack_policy":"explicit",
                "deliver_policy":"by_start_time",
                "opt_start_time":"2024-01-02T03:04:05.123456789+01:00","filter_subject":"s.a"}}"#,
        ),
        (
            1,
            4,
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"all",
                "deliver_policy":"by_start_sequence","opt_start_seq":10,"max_deliver":5,
                "backoff":[1000000000,2000000000],"filter_subjects":["t","s.x"],
                "max_waiting":10}}"#,
        ),
        (
            1,
            8,
            r#"{"stream_name":"S","config":{"name":"C","deliver_subject":"out","deliver_group":"g",
                "flow_control":true,"idle_heartbeat":5000000000,"sample_freq":"50%",
                "headers_only":true,"metadata":{"k":"v"}},"action":"create"}"#,
        ),
        (
            1,
            10,
            r#"{"stream_name":"S","config":{"name":"C","durable_name":"C","filter_subject":"s.a.x",
                "inactive_threshold":1000000000,"max_batch":10,"max_expires":5000000000,
                "max_bytes":1024},"action":"update"}"#,
        ),
        (
            2,
            0,
            r#"{"batch":5,"expires":1000000000,"max_bytes":100,"idle_heartbeat":100000000}"#,
        ),
        (2, 1, r#"{"batch":20,"no_wait":true}"#),
        (2, 0, "+NXT {\"batch\":2}"),
        (2, 0, "-NAK {\"delay\":1000000000}"),
        (2, 0, "7"),
        (3, 0, r#"{"filter":"s.>","seq":10,"keep":3}"#),
        (
            3,
            0,
            r#"{"last_by_subj":"s.a","start_time":"2024-01-02T03:04:05Z",
                "up_to_time":"1970-01-01T01:00:00+01:00","no_hdr":true}"#,
        ),
        (
            3,
            0,
            r#"{"seq":5,"no_erase":true,"deleted_details":true,"subjects_filter":">","offset":2}"#,
        ),
        (3, 0, "2024-01-02T03:04:05.123+01:00"),
    ];
    bodies
        .iter()
        .map(|(kind, variant, body)| {
            let mut seed = vec![*kind, *variant];
            seed.extend_from_slice(body.as_bytes());
            seed
        })
        .collect()
}

/// Segments with a few records, one with a damaged middle and a torn tail, one zero tail.
pub fn record() -> Vec<Vec<u8>> {
    let mut clean = encode_segment_header(1).to_vec();
    let mut starts = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for seq in 1..=3u64 {
        starts.push(clean.len());
        let msg = NewMessage {
            subject: format!("s.{seq}"),
            headers: Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n"),
            payload: Bytes::from(vec![seq as u8; 40 * seq as usize]),
            ts_ns: 1_700_000_000_000_000_000 + seq,
        };
        // The last record is stored compressed.
        match seq {
            3 => {
                encode_record_compressed(&mut clean, seq, &msg, &mut encoder);
            }
            _ => encode_record(&mut clean, seq, &msg),
        }
    }
    let mut damaged = clean.clone();
    damaged[starts[1] + 12] ^= 0x10;
    damaged.extend_from_slice(&[0x40, 0, 0, 0, 9, 9]);
    let mut zero_tail = clean.clone();
    zero_tail.extend_from_slice(&[0; 64]);
    // The record at offset 0 (what `decode_checked` sees first), then whole segments.
    let mut at_zero = clean[starts[0]..starts[1]].to_vec();
    at_zero.extend_from_slice(&clean[starts[1]..]);
    [at_zero, clean, damaged, zero_tail]
        .into_iter()
        .flat_map(|file| {
            // Base sequence 1, with and without checksum fixing; no sequence limit.
            [1, 0x81].map(|base| {
                let mut seed = vec![base, u8::MAX];
                seed.extend_from_slice(&file);
                seed
            })
        })
        .collect()
}

/// An index, a deletes file and a snapshot as the store writes them.
pub fn store_files() -> Vec<Vec<u8>> {
    let mut index = SegmentIndex::new(10);
    index.push(10, 20, 100);
    index.push(11, 60, 110);
    index.push(13, 140, 130);
    let deletes = DeletesFile {
        floor: 3,
        last_seq: 40,
        last_ts_ns: 1_700_000_000_000_000_000,
        ranges: vec![(5, 6), (9, 9), (20, 30)],
        applied: None,
    };
    let snapshot = Snapshot {
        deletes_crc: 0xdead_beef,
        segments: vec![SegmentSummary {
            base_seq: 1,
            first_rec: 1,
            last_rec: 40,
            file_len: 4096,
            msgs: 30,
            bytes: 3000,
            min_ts_ns: 1,
            max_ts_ns: 2,
        }],
        subjects: vec![SubjectEntry {
            subject: "orders.1".to_string(),
            first: 1,
            last: 40,
            count: 30,
        }],
    };
    let mut seeds = Vec::new();
    for (which, bytes) in [
        (0u8, index.encode(200)),
        (1, deletes.encode()),
        (2, snapshot.encode()),
    ] {
        for fix_checksum in [0, 0x80] {
            let mut seed = vec![which | fix_checksum];
            seed.extend_from_slice(&bytes);
            seeds.push(seed);
        }
    }
    seeds
}

/// A stream config, a consumer config and a consumer state as the catalog writes them.
pub fn meta_values() -> Vec<Vec<u8>> {
    let stream = pb::StreamConfig {
        name: "ORDERS".to_string(),
        subjects: vec!["orders.>".to_string()],
        max_msgs: -1,
        duplicate_window_ns: 120_000_000_000,
        metadata: [("a".to_string(), "b".to_string())].into_iter().collect(),
        consumer_limits: Some(pb::ConsumerLimits::default()),
        ..Default::default()
    };
    let consumer = pb::ConsumerConfig {
        durable_name: "D".to_string(),
        filter_subjects: vec!["orders.a".to_string()],
        backoff_ns: vec![1, 2],
        opt_start_time_unix_ns: Some(5),
        ..Default::default()
    };
    let seq = |consumer_seq, stream_seq| {
        Some(pb::SequenceInfo {
            consumer_seq,
            stream_seq,
            last_active_unix_ns: Some(9),
        })
    };
    let state = pb::ConsumerState {
        delivered: seq(10, 20),
        ack_floor: seq(5, 12),
        pending: vec![
            pb::PendingAck {
                stream_seq: 14,
                consumer_seq: 7,
                timestamp_unix_ns: 1,
                msg_ts_unix_ns: 3,
            },
            pb::PendingAck {
                stream_seq: 20,
                consumer_seq: 10,
                timestamp_unix_ns: 2,
                msg_ts_unix_ns: 4,
            },
        ],
        redelivered: [(14, 2)].into_iter().collect(),
        skip_list: vec![21, 23],
    };
    let framed = [
        (0u8, "ORDERS", encode("streams", &stream).expect("encodes")),
        (1, "D", encode("consumers", &consumer).expect("encodes")),
        (2, "D", encode("consumer_states", &state).expect("encodes")),
    ];
    framed
        .into_iter()
        .map(|(tree, name, value)| {
            let mut seed = vec![tree, name.len() as u8];
            seed.extend_from_slice(name.as_bytes());
            seed.extend_from_slice(&value);
            seed
        })
        .collect()
}
