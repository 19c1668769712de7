//! A consumer's durable state (prost messages for the metadata store) and its `ConsumerInfo`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::api_types::ClusterInfo;
use super::consumer::{Consumer, Pending, PushState, SeqPair, FC_WINDOW_START_BYTES};
use super::consumer_config::{
    ConsumerConfig, ConsumerInfo, PriorityGroupState, PriorityPolicy, SequenceInfo,
};
use super::time::format_rfc3339;
use crate::meta::pb;
use crate::store::StreamStore;

fn to_pb(pair: &SeqPair) -> pb::SequenceInfo {
    pb::SequenceInfo {
        consumer_seq: pair.consumer_seq,
        stream_seq: pair.stream_seq,
        last_active_unix_ns: (pair.last_active_ns > 0).then_some(pair.last_active_ns as i64),
    }
}

fn from_pb(info: Option<&pb::SequenceInfo>) -> SeqPair {
    info.map_or_else(SeqPair::default, |i| SeqPair {
        consumer_seq: i.consumer_seq,
        stream_seq: i.stream_seq,
        last_active_ns: i.last_active_unix_ns.unwrap_or(0).max(0) as u64,
    })
}

fn sequence_info(pair: &SeqPair) -> SequenceInfo {
    SequenceInfo {
        consumer_seq: pair.consumer_seq,
        stream_seq: pair.stream_seq,
        last_active: (pair.last_active_ns > 0)
            .then(|| format_rfc3339(Some(pair.last_active_ns as i64))),
    }
}

impl Consumer {
    /// The state to persist: delivered, ack floor, and every pending ack with its count.
    pub fn state_pb(&self) -> pb::ConsumerState {
        let mut redelivered = BTreeMap::new();
        let pending = self
            .pending
            .iter()
            .map(|(seq, p)| {
                if p.deliveries > 1 {
                    redelivered.insert(*seq, p.deliveries - 1);
                }
                let wait = self.config.ack_wait.max(0);
                pb::PendingAck {
                    stream_seq: *seq,
                    consumer_seq: p.consumer_seq,
                    timestamp_unix_ns: (p.deadline_ns as i64).saturating_sub(wait),
                    msg_ts_unix_ns: p.ts_ns,
                }
            })
            .collect();
        pb::ConsumerState {
            delivered: Some(to_pb(&self.delivered)),
            ack_floor: Some(to_pb(&self.ack_floor)),
            pending,
            redelivered: redelivered.into_iter().collect(),
            skip_list: self.skip_list.iter().copied().collect(),
        }
    }

    /// Rebuilds a consumer from its persisted state. After a crash the stream may hold fewer
    /// messages than the state remembers delivering (unsynced tail), so every sequence is
    /// clamped to the stream's last stored one: the ack floor never passes it.
    ///
    /// A clamped consumer comes back `dirty`, and the caller must write it before the stream
    /// takes new messages: the log gives the lost sequences to new messages, and if a second
    /// crash came before the next write, the old state would be restored again and would
    /// call those new messages delivered and acked (found by `tests/consumer_power_loss.rs`).
    pub fn restore(
        stream: &str,
        name: &str,
        config: ConsumerConfig,
        created_ns: i64,
        state: &pb::ConsumerState,
        store: &StreamStore,
        now_ns: u64,
    ) -> Self {
        let last = store.last_seq();
        let mut delivered = from_pb(state.delivered.as_ref());
        let mut ack_floor = from_pb(state.ack_floor.as_ref());
        // The state names messages past the stream's end: the crash that ended the last
        // process lost the log's unsynced tail after the state was written.
        let clamped = delivered.stream_seq > last;
        delivered.stream_seq = delivered.stream_seq.min(last);
        ack_floor.stream_seq = ack_floor.stream_seq.min(delivered.stream_seq);
        ack_floor.consumer_seq = ack_floor.consumer_seq.min(delivered.consumer_seq);
        // A state made by a server whose clock ran ahead of this one's (a leader taken over
        // from, or this server before its clock was stepped back) stamped its deliveries in
        // this server's future: its newest delivery or ack says by how much at least. Every
        // deadline moves that much earlier, so an unacknowledged message waits its ack wait
        // (or backoff, or nak delay) and not also the clocks' difference.
        let newest = delivered.last_active_ns.max(ack_floor.last_active_ns);
        let behind = newest.saturating_sub(now_ns);
        let mut pending = BTreeMap::new();
        for p in &state.pending {
            if p.stream_seq > last || p.stream_seq <= ack_floor.stream_seq {
                continue;
            }
            let deliveries = 1 + state.redelivered.get(&p.stream_seq).copied().unwrap_or(0);
            let deadline_ns = (p.timestamp_unix_ns.max(0) as u64)
                .saturating_add(config.ack_wait.max(0) as u64)
                .saturating_sub(behind);
            pending.insert(
                p.stream_seq,
                Pending {
                    consumer_seq: p.consumer_seq,
                    deliveries,
                    deadline_ns,
                    ts_ns: p.msg_ts_unix_ns,
                },
            );
        }
        let filters = config.filters();
        let paused_until_ns = config.pause_until_ns().filter(|t| *t > now_ns);
        // The `last_per_subject` start list still to deliver: every message after its last
        // entry is past the list (the newest matching message of a subject is on it).
        let skip_list: VecDeque<u64> = state
            .skip_list
            .iter()
            .copied()
            .filter(|s| *s > delivered.stream_seq && *s <= last)
            .collect();
        let next_seq = skip_list
            .back()
            .map_or(delivered.stream_seq + 1, |s| s + 1)
            .max(delivered.stream_seq + 1);
        Self {
            stream: stream.to_string(),
            name: name.to_string(),
            config,
            created_ns,
            filters,
            delivered,
            ack_floor,
            next_seq,
            pending,
            redeliver: BTreeSet::new(),
            skip_list,
            waiting: VecDeque::new(),
            num_pending: None,
            last_activity_ns: now_ns,
            push: PushState {
                window: FC_WINDOW_START_BYTES,
                ..PushState::default()
            },
            dirty: clamped,
            read_ahead: Default::default(),
            pacing: Default::default(),
            wake_at_ns: None,
            paused_until_ns,
            pin: None,
        }
    }

    /// The first configured priority group with its pin, as nats-server reports it.
    fn priority_group_states(&self) -> Vec<PriorityGroupState> {
        let Some(group) = self.config.priority_groups.first() else {
            return Vec::new();
        };
        let pin = self
            .pin
            .as_ref()
            .filter(|_| self.config.priority_policy == PriorityPolicy::PinnedClient);
        vec![PriorityGroupState {
            group: group.clone(),
            pinned_client_id: pin.map(|p| String::from_utf8_lossy(&p.id).into_owned()),
            pinned_ts: format_rfc3339(pin.map(|p| p.since_ns as i64)),
        }]
    }

    /// `CONSUMER.INFO` for this consumer.
    pub fn info(
        &mut self,
        store: &StreamStore,
        server_name: &str,
        now_ns: u64,
        push_bound: bool,
    ) -> ConsumerInfo {
        let num_redelivered = self.pending.values().filter(|p| p.deliveries > 1).count() as u64;
        ConsumerInfo {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: format_rfc3339(Some(self.created_ns)),
            config: {
                let mut config = self.config.clone();
                let level = crate::jetstream::versioning::consumer_level(&config);
                config.metadata = crate::jetstream::versioning::shown(&config.metadata, level);
                config
            },
            delivered: sequence_info(&self.delivered),
            ack_floor: sequence_info(&self.ack_floor),
            num_ack_pending: self.pending.len() as u64,
            num_redelivered: if self.config.max_deliver == 1 {
                0
            } else {
                num_redelivered
            },
            num_waiting: self.waiting.len() as u64,
            num_pending: self.num_pending(store),
            cluster: ClusterInfo {
                name: None,
                leader: server_name.to_string(),
                raft_group: None,
                replicas: None,
            },
            push_bound,
            paused: self.is_paused(now_ns),
            pause_remaining: self.pause_remaining_ns(now_ns),
            priority_groups: self.priority_group_states(),
            ts: format_rfc3339(Some(now_ns as i64)),
        }
    }
}
