//! Consumer state under simulated power loss (issue 8, item 5): a stream's log on
//! `PowerLossVfs`, an explicit-ack pull consumer on it, and a client that pulls, acks (plain,
//! AckSync, nak) and holds what it has not acked yet, across crashes.
//!
//! The consumer's persisted state is modelled as the metadata store keeps it: each write is
//! made durable before it returns (`MetaStore::put_consumer_states` flushes and fsyncs), so a
//! crash leaves the last state written, and an AckSync is confirmed only after the write that
//! carries it. Plain acks since the last write are lost, as the server allows (at least once).
//!
//! Under `always` a message is delivered only after the sync that covers it, as the stream
//! actor does; under an interval mode deliveries run ahead of the sync, so a crash can lose
//! messages the consumer delivered and acked, and the log then reuses their sequences for new
//! messages. The client keeps holding (and later acks) what it got before the crash.
//!
//! Checked at every reopen and delivery:
//! - the restored ack floor and delivered sequence never pass the stream's last stored one;
//! - under `always`, every message ever delivered is still in the stream;
//! - an AckSync-confirmed message is never delivered again;
//! - in the end, after the client acks what it holds and drains the consumer, every message in
//!   the stream was acked by a client that received that very message: none was skipped, and
//!   no ack for a lost message acknowledged the new message at its sequence.
//!
//! `JETLOG_CONSUMER_POWER_LOSS_SEEDS` sets how many seeds run (default 500); a failure names its
//! seed, and `JETLOG_CONSUMER_POWER_LOSS_SEED=<seed>` reruns just that one.

#[path = "common/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use jetlog::jetstream::consumer::{AckKind, Action, Consumer, Delivery};
use jetlog::jetstream::consumer_config::{AckPolicy, ConsumerConfig};
use jetlog::meta::pb;
use jetlog::store::power_loss::PowerLossVfs;
use jetlog::store::{Log, LogConfig, NewMessage, StreamStore, SyncPolicy};
use rng::Rng;

const DEFAULT_SEEDS: u64 = 500;
const OPS_PER_SEED: usize = 80;
const MS: u64 = 1_000_000;
const ACK_WAIT_NS: u64 = 100 * MS;
/// Pull-and-ack rounds the final drain may take before the test gives up.
const DRAIN_ROUNDS: usize = 200;
const STREAM: &str = "S";
const NAME: &str = "C";

fn consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        durable_name: Some(NAME.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT_NS as i64,
        max_deliver: -1,
        max_ack_pending: 1000,
        max_waiting: 512,
        ..ConsumerConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

/// A message the client holds: what its ack subject names, and which message it was.
#[derive(Clone, Copy, Debug)]
struct Held {
    seq: u64,
    cseq: u64,
    ts: u64,
    id: u64,
}

/// The parts of an ack subject the consumer reads back:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`.
fn parse_ack_subject(subject: &str) -> (u64, u64, u64) {
    let tokens: Vec<&str> = subject.split('.').collect();
    assert_eq!(tokens.len(), 9, "ack subject {subject}");
    let num = |i: usize| tokens[i].parse::<u64>().expect("numeric ack token");
    (num(5), num(6), num(7))
}

fn id_of(payload: &[u8]) -> u64 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("payload is the message id")
}

struct Sim {
    seed: u64,
    always: bool,
    vfs: PowerLossVfs,
    store: StreamStore,
    consumer: Consumer,
    now: u64,
    next_id: u64,
    /// The last consumer state written: what a crash leaves.
    persisted: pb::ConsumerState,
    /// Ids whose ack was confirmed to the client after a durable write.
    confirmed: BTreeSet<u64>,
    /// Ids the client acked (any kind but nak), whether or not the ack survived.
    acked: BTreeSet<u64>,
    /// Ids ever delivered.
    delivered: BTreeSet<u64>,
    /// Delivered, not yet acked by the client.
    held: Vec<Held>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let always = rng.below(2) == 0;
        let vfs = PowerLossVfs::new();
        let store = open_store(&vfs, seed);
        let consumer = Consumer::new(STREAM, NAME, consumer_config(), 0, &store, 1);
        let persisted = consumer.state_pb();
        Sim {
            seed,
            always,
            vfs,
            store,
            consumer,
            now: 1,
            next_id: 1,
            persisted,
            confirmed: BTreeSet::new(),
            acked: BTreeSet::new(),
            delivered: BTreeSet::new(),
            held: Vec::new(),
        }
    }

    fn publish(&mut self, n: u64) {
        // Time moves between publishes, and a restart takes a while (see `crash`): a message
        // published after a crash never shares its timestamp with one lost in it.
        self.now += 1_000;
        let msgs: Vec<NewMessage> = (0..n)
            .map(|i| {
                let id = self.next_id + i;
                NewMessage::new("orders", Bytes::from(id.to_string()), self.now)
            })
            .collect();
        self.next_id += n;
        let results = self.store.append_batch(&msgs).expect("append");
        if self.always {
            // The actor syncs a batch before anything is delivered from it.
            self.store.sync().expect("sync");
        }
        let appended: Vec<(u64, &str)> = results
            .iter()
            .map(|r| (*r.as_ref().expect("appended"), "orders"))
            .collect();
        self.consumer.on_appended(&appended, false);
    }

    fn take_deliveries(&mut self, out: Vec<Action>) {
        for action in out {
            let Action::Deliver {
                msg, ack_subject, ..
            } = action
            else {
                continue;
            };
            let (seq, cseq, ts) = parse_ack_subject(&ack_subject);
            assert_eq!(
                seq, msg.seq,
                "seed {}: ack subject names its message",
                self.seed
            );
            let id = id_of(&msg.payload);
            assert!(
                !self.confirmed.contains(&id),
                "seed {}: message {id} (seq {seq}) delivered again after its AckSync was confirmed",
                self.seed
            );
            self.delivered.insert(id);
            self.held.retain(|h| h.id != id);
            self.held.push(Held { seq, cseq, ts, id });
        }
    }

    fn pull(&mut self, batch: u64) {
        let mut out = Vec::new();
        let body = format!(r#"{{"batch":{batch},"no_wait":true}}"#);
        let reply = Bytes::from_static(b"reply");
        self.consumer
            .on_pull(body.as_bytes(), reply, &self.store, self.now, &mut out);
        self.take_deliveries(out);
    }

    /// What the stream does with `$JS.ACK...`: adopt deliveries a restored state forgot, then
    /// apply the ack.
    /// What the stream does with `$JS.ACK...` (`Stream::consumer_ack`).
    fn ack(&mut self, held: Held, kind: &AckKind) {
        let mut out = Vec::new();
        self.consumer.on_client_ack(
            kind,
            held.seq,
            held.cseq,
            held.ts,
            &self.store,
            self.now,
            &mut out,
        );
    }

    fn persist(&mut self) {
        self.persisted = self.consumer.state_pb();
        self.consumer.dirty = false;
    }

    fn client_acts(&mut self, rng: &mut Rng) {
        if self.held.is_empty() {
            return;
        }
        let held = self.held.remove(rng.below(self.held.len() as u64) as usize);
        match rng.below(10) {
            0..=4 => {
                self.ack(held, &AckKind::Ack);
                self.acked.insert(held.id);
            }
            5..=7 => {
                self.ack(held, &AckKind::Ack);
                self.acked.insert(held.id);
                // AckSync: the reply leaves only after the state carrying the ack is written.
                self.persist();
                self.confirmed.insert(held.id);
            }
            8 => self.ack(held, &AckKind::Nak(None)),
            // Keeps it unacked: it must come back after ack_wait.
            _ => {}
        }
    }

    fn tick(&mut self) {
        let mut out = Vec::new();
        self.consumer
            .tick(&self.store, self.now, Delivery::Pull, &mut out);
        self.take_deliveries(out);
    }

    fn crash(&mut self, rng: &mut Rng) {
        let tear = (rng.below(2) == 0).then(|| rng.next());
        self.vfs.crash(tear);
        self.now += 10 * MS;
        let store = open_store(&self.vfs, self.seed);
        let old = std::mem::replace(&mut self.store, store);
        drop(old);
        self.consumer = Consumer::restore(
            STREAM,
            NAME,
            consumer_config(),
            0,
            &self.persisted,
            &self.store,
            self.now,
        );
        if self.consumer.dirty {
            // The server writes a clamped state before the stream takes traffic.
            self.persist();
        }
        let last = self.store.last_seq();
        let seed = self.seed;
        assert!(
            self.consumer.ack_floor.stream_seq <= last,
            "seed {seed}: restored ack floor {} passes the stream's last sequence {last}",
            self.consumer.ack_floor.stream_seq
        );
        assert!(
            self.consumer.delivered.stream_seq <= last,
            "seed {seed}: restored delivered {} passes the stream's last sequence {last}",
            self.consumer.delivered.stream_seq
        );
        if self.always {
            let present = self.ids_in_stream();
            let lost: Vec<u64> = self.delivered.difference(&present).copied().collect();
            assert!(
                lost.is_empty(),
                "seed {seed}: delivered under `always` but lost by the crash: {lost:?}"
            );
        }
    }

    fn ids_in_stream(&self) -> BTreeSet<u64> {
        self.store
            .scan(1, &[], usize::MAX)
            .expect("scan")
            .iter()
            .map(|m| id_of(&m.payload))
            .collect()
    }

    /// The client acks everything it holds, then pulls and acks until nothing is left.
    fn drain(&mut self) {
        for held in std::mem::take(&mut self.held) {
            self.ack(held, &AckKind::Ack);
            self.acked.insert(held.id);
        }
        for _ in 0..DRAIN_ROUNDS {
            self.now += ACK_WAIT_NS + MS;
            self.tick();
            self.pull(100);
            for held in std::mem::take(&mut self.held) {
                self.ack(held, &AckKind::Ack);
                self.acked.insert(held.id);
            }
            if self.consumer.pending.is_empty()
                && self.consumer.ack_floor.stream_seq >= self.store.last_seq()
            {
                break;
            }
        }
        let seed = self.seed;
        assert!(
            self.consumer.pending.is_empty(),
            "seed {seed}: still pending after the drain: {:?}",
            self.consumer.pending.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            self.consumer.ack_floor.stream_seq,
            self.store.last_seq(),
            "seed {seed}: ack floor after the drain"
        );
        let skipped: Vec<u64> = self
            .ids_in_stream()
            .difference(&self.acked)
            .copied()
            .collect();
        assert!(
            skipped.is_empty(),
            "seed {seed}: messages in the stream that no client received and acked: {skipped:?}"
        );
    }
}

fn open_store(vfs: &PowerLossVfs, seed: u64) -> StreamStore {
    let log = Log::open_with_vfs(Path::new("/store/S"), log_config(), Arc::new(vfs.clone()))
        .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
    StreamStore::from(log)
}

fn run_seed(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    let mut sim = Sim::new(seed);
    for _ in 0..OPS_PER_SEED {
        match rng.below(20) {
            0..=4 => sim.publish(1 + rng.below(6)),
            5..=8 => sim.pull(1 + rng.below(5)),
            9..=13 => sim.client_acts(&mut rng),
            14 => sim.persist(),
            15 => {
                if !sim.always {
                    sim.store.sync().expect("sync");
                }
            }
            16 | 17 => {
                sim.now += rng.below(2 * ACK_WAIT_NS);
                sim.tick();
            }
            _ => sim.crash(&mut rng),
        }
    }
    sim.drain();
}

#[test]
fn consumer_state_survives_simulated_power_loss() {
    if let Some(seed) = std::env::var("JETLOG_CONSUMER_POWER_LOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        run_seed(seed);
        return;
    }
    let seeds = std::env::var("JETLOG_CONSUMER_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    for seed in 1..=seeds {
        run_seed(seed);
    }
}
