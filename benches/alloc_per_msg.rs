//! Allocations (and time) per message on the hot paths, counted by divan's allocation
//! profiler: parsing a PUB, matching a subject through the per-connection match cache, and
//! storing a publish through a stream (checks, append, PubAck JSON) under `--sync never`.
//! Each iteration handles one message, so divan's `alloc` rows read directly as per-message
//! counts. Run: `cargo bench --bench alloc_per_msg`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use divan::{AllocProfiler, Bencher};
use jetlog::broker::{MatchCache, Sublist};
use jetlog::jetstream::api_types::json_string;
use jetlog::jetstream::{Stream, StreamConfig};
use jetlog::protocol::{ClientOp, Parser, ParserLimits, Publish};
use jetlog::store::SyncPolicy;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const PAYLOAD: usize = 128;

fn main() {
    divan::main();
}

fn pub_line() -> Vec<u8> {
    let mut line = format!("PUB orders.created _INBOX.abc.1 {PAYLOAD}\r\n").into_bytes();
    line.extend(std::iter::repeat_n(b'x', PAYLOAD));
    line.extend_from_slice(b"\r\n");
    line
}

/// One PUB parsed off a read buffer that holds it whole.
#[divan::bench]
fn parse_pub(bencher: Bencher) {
    let line = pub_line();
    let mut parser = Parser::new(ParserLimits::default());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    bencher.bench_local(|| {
        if buf.capacity() - buf.len() < line.len() {
            buf = BytesMut::with_capacity(64 * 1024);
        }
        buf.extend_from_slice(&line);
        match parser.next_op(&mut buf) {
            Ok(Some(ClientOp::Publish(msg))) => divan::black_box(msg),
            other => panic!("expected a publish, got {other:?}"),
        }
    });
}

/// One subject looked up through a warm match cache (the publisher's usual case).
#[divan::bench]
fn match_cached(bencher: Bencher) {
    let mut sublist: Sublist<u64> = Sublist::new();
    for i in 0..100u64 {
        sublist.insert(format!("orders.{i}").as_bytes(), None, Arc::new(i));
    }
    sublist.insert(b"orders.*", None, Arc::new(1000));
    let mut cache: MatchCache<u64> = MatchCache::default();
    let subject = b"orders.created";
    let generation = sublist.generation();
    let result = Arc::new(sublist.matches(subject));
    cache.insert(subject, generation, result);
    bencher.bench_local(|| divan::black_box(cache.get(subject, generation)));
}

/// Publishes stored through a file stream in batches of `N` (the actor's rounds batch
/// whatever is queued): header checks, append (no fsync), PubAck JSON. Divide the counts by
/// `N` for a per-message figure.
#[divan::bench(consts = [1, 100])]
fn stream_publish<const N: usize>(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StreamConfig {
        name: "BENCH".into(),
        subjects: vec!["orders.>".into()],
        ..StreamConfig::default()
    };
    let mut stream =
        Stream::open(dir.path(), config, 0, SyncPolicy::Never, 1).expect("open stream");
    let msg = Publish {
        subject: Bytes::from_static(b"orders.created"),
        reply: Some(Bytes::from_static(b"_INBOX.abc.1")),
        headers: None,
        payload: Bytes::from(vec![b'x'; PAYLOAD]),
    };
    let stream_json = json_string("BENCH");
    let mut body = Vec::with_capacity(64);
    let mut now = 1u64;
    let batch: Vec<&Publish> = vec![&msg; N];
    bencher.bench_local(|| {
        now += 1;
        let acks = stream.process(&batch, now);
        for ack in &acks {
            body.clear();
            ack.write_json(&mut body, &stream_json);
            divan::black_box(&body);
        }
    });
}
