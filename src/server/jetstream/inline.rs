//! Publishes stored on the publisher's own task, skipping the hand-over to the stream's
//! actor. A lone synchronous publish otherwise pays two context switches (waking the actor,
//! and the actor going back to sleep), which under `--sync never` is most of its latency.
//!
//! Only under `--sync never`, where a round never waits for a disk, and only when it keeps
//! the order: the publish must be the only one routed to the stream and not yet applied
//! (so nothing sent earlier, by this connection or any other, is still queued), and the
//! actor must not be in a round. Anything else takes the ordinary way through the channel,
//! so a burst of publishes still gets the actor's batching.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use super::actor::{self, TAG_PUBLISH};
use super::StreamEntry;
use crate::server::outbound::{InlineTaker, InternalDelivery, InternalQueue};

/// The inline side of a stream's publish subscriptions.
pub struct InlinePublish {
    /// Weak: the entry holds the subscriptions that hold this. Unset while the stream is
    /// still opening at start (its subscriptions exist before it does); publishes then take
    /// the channel.
    entry: OnceLock<Weak<StreamEntry>>,
    /// The entry's count of routed, unapplied publishes (shared, so routing needs no upgrade).
    queued: Arc<AtomicU64>,
}

impl InlinePublish {
    pub fn taker(entry: &Arc<StreamEntry>) -> Arc<dyn InlineTaker> {
        let taker = Self::unbound(entry.queued.clone());
        taker.bind(entry);
        taker
    }

    /// A taker for a stream not yet open, counting into `queued`, which the stream's entry
    /// must share.
    pub fn unbound(queued: Arc<AtomicU64>) -> Arc<InlinePublish> {
        Arc::new(InlinePublish {
            entry: OnceLock::new(),
            queued,
        })
    }

    /// Ties the taker to its opened stream.
    pub fn bind(&self, entry: &Arc<StreamEntry>) {
        debug_assert!(Arc::ptr_eq(&self.queued, &entry.queued));
        let _ = self.entry.set(Arc::downgrade(entry));
    }
}

impl InlineTaker for InlinePublish {
    fn routed(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    fn try_take(
        &self,
        delivery: InternalDelivery,
        spill: &mut InternalQueue,
    ) -> Option<InternalDelivery> {
        if delivery.tag != TAG_PUBLISH {
            return Some(delivery);
        }
        let Some(entry) = self.entry.get().and_then(Weak::upgrade) else {
            return Some(delivery);
        };
        // Never wait here: a busy actor or stream means the channel is the better way anyway.
        let Ok(mut state) = entry.actor.try_lock() else {
            return Some(delivery);
        };
        let alone = self.queued.load(Ordering::Acquire) == 1;
        // Messages the actor could not hand over yet go first: an inline round would pass them.
        let behind = state.client.has_outbox();
        if !alone
            || behind
            || entry.stopping.load(Ordering::Acquire)
            || entry.stream.try_lock().is_err()
        {
            return Some(delivery);
        }
        let mut batch = vec![delivery];
        actor::round(&entry, &mut batch, &mut state, Some(spill));
        None
    }
}
