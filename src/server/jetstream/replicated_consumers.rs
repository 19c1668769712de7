//! Replicated consumers on this server: the consumers of a replicated stream whose state is
//! kept in the stream's group (`jetstream::replica_consumers`; `docs/architecture.md`).
//!
//! Every replica keeps each such consumer's config and last committed state in its catalog,
//! written by applying the group's entries; only the replica that leads the stream runs the
//! consumers. When a replica starts to lead it restores them from its catalog, which holds
//! everything committed before its term; when it stops, it drops them and tells their
//! waiting pull requests. The leader's consumers change as they deliver and are acked, and
//! the leader proposes the states they reached (at most every
//! [`actor::CONSUMER_PERSIST_INTERVAL`], and at once for an AckSync, whose reply waits for
//! the commit), where a stream that is not replicated writes them to its own catalog.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::actor;
use super::replicated::Proposal;
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::advisories::{consumer_action, Lifecycle};
use crate::jetstream::consumer::Consumer;
use crate::jetstream::consumer_config::ConsumerConfig;
use crate::jetstream::replica_consumers::ConsumerOp;
use crate::meta::pb;
use crate::server::internal::InternalClient;

impl StreamEntry {
    /// Applies a committed consumer entry (at log `index`) to this replica: the catalog on
    /// every replica, and the running consumers on the leader.
    pub(super) fn apply_consumer_op(&self, index: u64, op: &ConsumerOp) {
        let mut state = self.actor_state();
        let client = &mut state.client;
        let leading = self.replica.leading();
        match op {
            ConsumerOp::Put {
                name,
                created_ns,
                config,
                only_new,
            } => match serde_json::from_slice::<ConsumerConfig>(config) {
                Ok(config)
                    if *only_new && self.catalog.consumer_differs(&self.name, name, &config) =>
                {
                    tracing::debug!(stream = %self.name, consumer = %name, "a create of a consumer another create made first: not applied");
                }
                Ok(config) => self.apply_put(name, *created_ns, config, leading, client),
                Err(e) => tracing::error!(
                    stream = %self.name,
                    consumer = %name,
                    "replicated consumer config not applied: {e}"
                ),
            },
            ConsumerOp::States { states, removed } => {
                self.apply_states(states);
                let mut stream = self.lock();
                if let Err(e) = stream.remove_consumed(index, removed) {
                    tracing::error!(stream = %self.name, "consumed messages not removed: {e}");
                }
                self.account(&stream);
            }
            ConsumerOp::Delete { name } => {
                self.lock().set_consumer_interest(name, None);
                if leading {
                    self.delete_consumer(name, client);
                } else if let Err(e) = self.catalog.delete_consumer(&self.name, name) {
                    tracing::error!(stream = %self.name, consumer = %name, "cannot delete consumer metadata: {e}");
                }
            }
        }
    }

    /// Creates a consumer from the log as it stands at this entry (the same on every
    /// replica), or gives an existing one its new config.
    fn apply_put(
        &self,
        name: &str,
        created_ns: u64,
        config: ConsumerConfig,
        leading: bool,
        client: &mut InternalClient,
    ) {
        let existing = self
            .catalog
            .consumer_created(&self.name, name)
            .unwrap_or_default();
        let mut stream = self.lock();
        stream.set_consumer_interest(name, Some(config.filters()));
        let written = match existing {
            Some(created) => {
                let written = self
                    .catalog
                    .put_consumer(&self.name, name, &config, created);
                if let Some(running) = stream.consumer_mut(name).filter(|_| leading) {
                    running.update_config(config);
                }
                written
            }
            None => {
                let created = created_ns as i64;
                let consumer = Consumer::new(
                    &self.name,
                    name,
                    config.clone(),
                    created,
                    stream.log(),
                    created_ns,
                );
                let state = consumer.state_pb();
                let written = self
                    .catalog
                    .put_consumer(&self.name, name, &config, created)
                    .and_then(|_| {
                        self.catalog
                            .put_consumer_states(&[(&self.name, name, &state)])
                            .map(|_| ())
                    });
                if leading && stream.consumers().get(name).is_none() {
                    stream.insert_consumer(consumer);
                    let created = consumer_action(&self.name, name, Lifecycle::Created, now_ns());
                    actor::perform(created, client);
                }
                written
            }
        };
        if let Err(e) = written {
            tracing::error!(stream = %self.name, consumer = %name, "cannot write replicated consumer: {e}");
        }
        if !leading {
            return;
        }
        drop(stream);
        self.subscribe_consumer(name, client);
        client.flush();
        self.kick();
    }

    /// Writes the states the leader's consumers reached; a state for a consumer deleted
    /// since is dropped.
    fn apply_states(&self, states: &[(String, Bytes)]) {
        let decoded: Vec<(&str, pb::ConsumerState)> = states
            .iter()
            .filter(|(name, _)| {
                matches!(self.catalog.consumer_created(&self.name, name), Ok(Some(_)))
            })
            .filter_map(|(name, bytes)| match pb::ConsumerState::decode(bytes.as_ref()) {
                Ok(state) => Some((name.as_str(), state)),
                Err(e) => {
                    tracing::error!(stream = %self.name, consumer = %name, "replicated consumer state not applied: {e}");
                    None
                }
            })
            .collect();
        let refs: Vec<(&str, &str, &pb::ConsumerState)> = decoded
            .iter()
            .map(|(name, state)| (self.name.as_str(), *name, state))
            .collect();
        if refs.is_empty() {
            return;
        }
        if let Err(e) = self.catalog.put_consumer_states(&refs) {
            tracing::error!(stream = %self.name, "cannot write replicated consumer states: {e}");
        }
    }

    /// The leader's end of a round: the states its replicated consumers reached since the
    /// last proposal, and the messages they consumed under work-queue or interest
    /// retention, proposed with the round's AckSync `replies` (answered once committed).
    /// Without such a change the replies are left to the caller to answer now.
    pub(super) fn propose_consumer_states(&self, replies: &mut Vec<Bytes>) {
        if !self.replica.leading() {
            return;
        }
        let (states, removed) = {
            let mut stream = self.lock();
            let states: Vec<(String, Bytes)> = stream
                .take_changed_states(ConsumerConfig::is_replicated)
                .into_iter()
                .map(|(name, state)| (name, Bytes::from(state.encode_to_vec())))
                .collect();
            (states, stream.take_consumed())
        };
        if states.is_empty() && removed.is_empty() {
            return;
        }
        let proposal = Proposal::Consumers {
            op: ConsumerOp::States { states, removed },
            replies: std::mem::take(replies),
            done: None,
        };
        if !self.replica.propose(proposal) {
            tracing::debug!(stream = %self.name, "consumer states not proposed: no longer leading");
        }
    }

    /// Ends a consumer whose inactivity threshold passed: a replicated one by its group.
    pub(super) fn expire_consumer(&self, name: &str, client: &mut InternalClient) {
        let replicated = self
            .lock()
            .consumers()
            .get(name)
            .is_some_and(|c| c.config.is_replicated());
        if !replicated {
            self.delete_consumer(name, client);
            return;
        }
        let proposal = Proposal::Consumers {
            op: ConsumerOp::Delete {
                name: name.to_string(),
            },
            replies: Vec::new(),
            done: None,
        };
        self.replica.propose(proposal);
    }
}

impl JetStream {
    /// This replica began to lead its stream: its replicated consumers run here from the
    /// states its catalog holds (everything committed before this term).
    pub(super) fn activate_consumers(&self, entry: &Arc<StreamEntry>) {
        let saved = match self.catalog.list_consumers(&entry.name) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(stream = %entry.name, "cannot read replicated consumers: {e}");
                return;
            }
        };
        let state = entry.actor_state();
        let now = now_ns();
        for (name, config, created_ns, saved_state) in saved {
            if !config.is_replicated() {
                continue;
            }
            let mut stream = entry.lock();
            if stream.consumers().contains_key(&name) {
                continue;
            }
            tracing::debug!(
                stream = %entry.name,
                consumer = %name,
                state = ?saved_state,
                "replicated consumer runs here from its committed state"
            );
            let consumer = match &saved_state {
                Some(s) => {
                    Consumer::restore(&entry.name, &name, config, created_ns, s, stream.log(), now)
                }
                None => Consumer::new(&entry.name, &name, config, created_ns, stream.log(), now),
            };
            stream.insert_consumer(consumer);
            drop(stream);
            entry.subscribe_consumer(&name, &state.client);
        }
        drop(state);
        entry.kick();
    }

    /// This replica stopped leading its stream: its replicated consumers stop here, and
    /// their waiting pull requests are told to ask again.
    pub(super) fn deactivate_consumers(&self, entry: &Arc<StreamEntry>) {
        let mut state = entry.actor_state();
        let mut actions = Vec::new();
        let taken: Vec<String> = {
            let mut stream = entry.lock();
            // What its consumers consumed and it did not propose goes too: their acks were
            // not committed, and removals held until a later term could take messages a
            // consumer has since been given again.
            stream.take_consumed();
            let names: Vec<String> = stream
                .consumers()
                .iter()
                .filter(|(_, c)| c.config.is_replicated())
                .map(|(n, _)| n.clone())
                .collect();
            for name in &names {
                if let Some(mut consumer) = stream.take_consumer(name) {
                    consumer.on_leadership_lost(&mut actions);
                }
            }
            names
        };
        for name in &taken {
            entry.unsubscribe_consumer(name, &state.client);
        }
        for action in actions {
            actor::perform(action, &mut state.client);
        }
        state.client.flush();
    }
}
