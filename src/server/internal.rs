//! The server's own client: how components inside the server (the JetStream API, stream
//! actors) subscribe and publish through the same router as network clients.
//!
//! Internal publishers run on their own threads (storage work blocks on fsync, which must not
//! stall the async runtime), so publishing here is synchronous: routing encodes into client
//! buffers and wakes their writers directly; messages for other internal subscribers are
//! handed over with a blocking send.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::outbound::{InternalDelivery, InternalQueue, InternalSink, Owner, Subscription};
use super::router::{Deliveries, Publisher, Reach, Router};
use crate::broker::MatchCache;
use crate::protocol::Publish;

/// Capacity of an internal subscriber's channel; a full channel makes publishers wait.
pub const INTERNAL_CHANNEL_CAPACITY: usize = 8192;

/// Waiting for room in a full internal channel, on a pool worker that must not block.
type Reserve = Pin<
    Box<
        dyn Future<Output = Result<mpsc::OwnedPermit<InternalDelivery>, mpsc::error::SendError<()>>>
            + Send,
    >,
>;

/// Messages for internal subscribers whose channels were full, kept in order, for a client
/// that must not block (see [`InternalClient::deferred`]).
#[derive(Default)]
struct Outbox {
    waiting: VecDeque<(InternalSink, InternalDelivery)>,
    /// Room being waited for in the channel of the first waiting message.
    reserve: Option<Reserve>,
}

/// A handle for subscribing and publishing from inside the server.
pub struct InternalClient {
    router: Arc<Router>,
    cache: MatchCache<Subscription>,
    out: Deliveries,
    rng: u64,
    /// Set for a client on a pool worker: `flush` never blocks, and what does not fit waits
    /// here until [`InternalClient::poll_outbox`] delivers it.
    outbox: Option<Outbox>,
}

impl InternalClient {
    pub fn new(router: Arc<Router>) -> Self {
        Self {
            router,
            cache: MatchCache::default(),
            out: Deliveries::default(),
            rng: 0x2545_F491_4F6C_DD1D,
            outbox: None,
        }
    }

    /// A client whose `flush` never blocks: messages for full internal channels are kept, in
    /// order, until [`InternalClient::poll_outbox`] finds room. For work on a fixed pool of
    /// threads, where a worker blocked on one stream's channel could hold up the very worker
    /// that stream needs.
    pub fn deferred(router: Arc<Router>) -> Self {
        Self {
            outbox: Some(Outbox::default()),
            ..Self::new(router)
        }
    }

    /// Whether messages are waiting for room in an internal channel.
    pub fn has_outbox(&self) -> bool {
        self.outbox.as_ref().is_some_and(|o| !o.waiting.is_empty())
    }

    /// Delivers what waits in the outbox, in order; `Pending` (with `cx` woken when room
    /// appears) while a channel is still full.
    pub fn poll_outbox(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(outbox) = self.outbox.as_mut() else {
            return Poll::Ready(());
        };
        loop {
            if let Some(reserve) = outbox.reserve.as_mut() {
                let permit = match reserve.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(permit) => permit,
                };
                outbox.reserve = None;
                let front = outbox.waiting.pop_front();
                if let (Ok(permit), Some((_, delivery))) = (permit, front) {
                    permit.send(delivery);
                }
                continue;
            }
            let Some((sink, delivery)) = outbox.waiting.pop_front() else {
                return Poll::Ready(());
            };
            match sink.tx.try_send(delivery) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    outbox.reserve = Some(Box::pin(sink.tx.clone().reserve_owned()));
                    outbox.waiting.push_front((sink, delivery));
                }
            }
        }
    }

    /// Subscribes `sink` to `subject` (optionally in a queue group).
    pub fn subscribe(
        &self,
        subject: &str,
        queue: Option<&str>,
        sink: InternalSink,
    ) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            owner: Owner::Internal(sink),
            subject: Bytes::copy_from_slice(subject.as_bytes()),
            queue: queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
            sid: Bytes::new(),
            max_msgs: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        self.router.subscribe(sub.clone());
        sub
    }

    pub fn unsubscribe(&self, sub: &Arc<Subscription>) {
        self.router.unsubscribe(sub);
    }

    /// Calls `wake` whenever a subscription matching `subject` is made.
    pub fn watch_interest(
        &self,
        subject: &str,
        wake: super::interest_watch::Wake,
    ) -> super::interest_watch::WatchId {
        self.router.interest.watch(subject, wake)
    }

    pub fn unwatch_interest(&self, watch: super::interest_watch::WatchId) {
        self.router.interest.unwatch(watch);
    }

    /// Whether a subject has any subscriber.
    pub fn has_interest(&self, subject: &(impl AsRef<[u8]> + ?Sized)) -> bool {
        self.router.has_interest(subject.as_ref())
    }

    /// Queues a message for delivery; `flush` completes it. Returns how many took it.
    pub fn queue_publish(
        &mut self,
        subject: Bytes,
        headers: Option<Bytes>,
        payload: Bytes,
    ) -> usize {
        self.queue_publish_with_reply(subject, None, headers, payload)
    }

    /// Queues a message with a reply subject (a flow-control request carries one).
    pub fn queue_publish_with_reply(
        &mut self,
        subject: Bytes,
        reply: Option<Bytes>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) -> usize {
        let msg = Publish {
            subject,
            reply,
            headers,
            payload,
        };
        let from = Publisher {
            client: None,
            echo: true,
            reach: Reach::Cluster,
        };
        self.router
            .route(&from, &msg, &mut self.cache, &mut self.out, &mut self.rng)
    }

    /// Queues a JetStream delivery: routed to `to`, shown with the stream subject `subject`.
    pub fn queue_delivery(
        &mut self,
        to: &[u8],
        subject: Bytes,
        reply: Bytes,
        headers: Option<Bytes>,
        payload: Bytes,
    ) -> usize {
        let msg = Publish {
            subject,
            reply: Some(reply),
            headers,
            payload,
        };
        let from = Publisher {
            client: None,
            echo: true,
            reach: Reach::Cluster,
        };
        self.router.route_as(
            &from,
            to,
            &msg,
            &mut self.cache,
            &mut self.out,
            &mut self.rng,
        )
    }

    /// Wakes the writers of everything queued and hands internal messages over, blocking
    /// while an internal subscriber's channel is full. Must not run on the async runtime.
    pub fn flush(&mut self) {
        self.out.wake_all();
        let Some(outbox) = self.outbox.as_mut() else {
            for (sink, delivery) in self.out.internal.drain(..) {
                let _ = sink.tx.blocking_send(delivery);
            }
            return;
        };
        for (sink, delivery) in self.out.internal.drain(..) {
            if !outbox.waiting.is_empty() {
                outbox.waiting.push_back((sink, delivery));
                continue;
            }
            match sink.tx.try_send(delivery) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    outbox.waiting.push_back((sink, delivery));
                }
            }
        }
    }

    /// Wakes the writers of everything queued and moves internal messages to `spill` for the
    /// caller to hand over: the flush for work running on the async runtime, where blocking
    /// on a full channel is not allowed.
    pub fn flush_into(&mut self, spill: &mut InternalQueue) {
        self.out.wake_all();
        spill.append(&mut self.out.internal);
    }

    /// Publishes one message right away.
    pub fn publish(&mut self, subject: Bytes, headers: Option<Bytes>, payload: Bytes) -> usize {
        let n = self.queue_publish(subject, headers, payload);
        self.flush();
        n
    }
}

/// A new channel for internal deliveries.
pub fn channel() -> (
    mpsc::Sender<InternalDelivery>,
    mpsc::Receiver<InternalDelivery>,
) {
    mpsc::channel(INTERNAL_CHANNEL_CAPACITY)
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use super::*;

    fn sink(tx: &mpsc::Sender<InternalDelivery>) -> InternalSink {
        InternalSink {
            tag: 0,
            tx: tx.clone(),
            exclude: &[],
            inline: None,
            origin: false,
        }
    }

    fn delivery(n: u64) -> InternalDelivery {
        InternalDelivery {
            tag: n,
            msg: Publish::default(),
            origin: None,
        }
    }

    /// A deferred client never blocks on a full channel: what does not fit waits, in order,
    /// and goes out once the receiver has made room.
    #[test]
    fn a_deferred_flush_keeps_what_does_not_fit_in_order() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut client = InternalClient::deferred(Arc::new(Router::default()));
        for n in 0..3 {
            client.out.internal.push((sink(&tx), delivery(n)));
        }
        client.flush();
        assert!(client.has_outbox());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(client.poll_outbox(&mut cx), Poll::Pending);
        let mut got = vec![rx.try_recv().expect("the first fitted").tag];
        while client.has_outbox() {
            let _ = client.poll_outbox(&mut cx);
            if let Ok(d) = rx.try_recv() {
                got.push(d.tag);
            }
        }
        while let Ok(d) = rx.try_recv() {
            got.push(d.tag);
        }
        assert_eq!(got, vec![0, 1, 2]);
    }
}
