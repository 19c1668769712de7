//! What ties streams and consumers to the router: the internal subscriptions that feed a
//! stream's channel (publishes, direct gets, consumers' pulls, acks and flow control) and the
//! watch on a push consumer's deliver subject. Made when a stream opens, or before it opens
//! at start (see `opening`), and released when it stops.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{actor, direct};
use crate::jetstream::StreamConfig;
use crate::protocol::Publish;
use crate::server::interest_watch::WatchId;
use crate::server::internal::InternalClient;
use crate::server::outbound::{InlineTaker, InternalDelivery, InternalSink, Subscription};

/// What ties a consumer to the router: its subscriptions (pull requests, acks,
/// flow-control replies) and, for a push consumer, the watch that wakes the stream when its
/// deliver subject gains a subscriber.
pub(super) struct ConsumerHooks {
    pub subs: Vec<Arc<Subscription>>,
    pub watch: Option<WatchId>,
}

impl ConsumerHooks {
    pub fn release(self, client: &InternalClient) {
        for sub in &self.subs {
            client.unsubscribe(sub);
        }
        if let Some(watch) = self.watch {
            client.unwatch_interest(watch);
        }
    }
}

/// Subscribes a consumer's pull, ack and flow-control subjects to its stream's channel `tx`,
/// and watches its deliver subject (if any) for subscribers.
pub(super) fn consumer_hooks(
    client: &InternalClient,
    stream: &str,
    name: &str,
    deliver_subject: Option<String>,
    tx: &mpsc::Sender<InternalDelivery>,
) -> ConsumerHooks {
    let subjects = [
        (
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
            actor::TAG_PULL,
        ),
        (format!("$JS.ACK.{stream}.{name}.>"), actor::TAG_ACK),
        (format!("$JS.FC.{stream}.{name}.>"), actor::TAG_FLOW_CONTROL),
    ];
    let subs = subjects
        .iter()
        .map(|(subject, tag)| {
            client.subscribe(
                subject,
                None,
                InternalSink {
                    tag: *tag,
                    tx: tx.clone(),
                    exclude: &[],
                    inline: None,
                    origin: false,
                },
            )
        })
        .collect();
    let watch = deliver_subject.map(|subject| {
        let tx = tx.clone();
        client.watch_interest(
            &subject,
            Arc::new(move || {
                let _ = tx.try_send(InternalDelivery {
                    tag: actor::TAG_TICK,
                    msg: Publish::default(),
                    origin: None,
                });
            }),
        )
    });
    ConsumerHooks { subs, watch }
}

/// Subscribes a stream's subjects (its publishes) and, with `allow_direct`, its DIRECT.GET
/// subjects to its channel `tx`. A replica of a replicated stream that does not lead its
/// group takes no publishes (`capture` false): they reach the leader, which proposes them.
pub(super) fn stream_subscriptions(
    client: &InternalClient,
    config: &StreamConfig,
    tx: &mpsc::Sender<InternalDelivery>,
    inline: Option<Arc<dyn InlineTaker>>,
    capture: bool,
) -> Vec<Arc<Subscription>> {
    let mut subs = Vec::new();
    for subject in config.subjects.iter().filter(|_| capture) {
        let sink = InternalSink {
            tag: actor::TAG_PUBLISH,
            tx: tx.clone(),
            exclude: &[],
            inline: inline.clone(),
            origin: false,
        };
        subs.push(client.subscribe(subject, None, sink));
    }
    if config.allow_direct {
        subs.extend(direct_get_subscriptions(client, &config.name, tx));
    }
    subs
}

/// Subscribes the DIRECT.GET subjects of stream `name` (this stream's own, or, for a mirror
/// with `mirror_direct`, its origin's) to the channel `tx`, in the queue group every stream
/// answering for `name` shares.
pub(super) fn direct_get_subscriptions(
    client: &InternalClient,
    name: &str,
    tx: &mpsc::Sender<InternalDelivery>,
) -> Vec<Arc<Subscription>> {
    let subjects = [
        format!("{}{}", direct::DIRECT_GET_PREFIX, name),
        format!("{}{}.>", direct::DIRECT_GET_PREFIX, name),
    ];
    let subscribe = |subject: &String| {
        let sink = InternalSink {
            tag: actor::TAG_DIRECT_GET,
            tx: tx.clone(),
            exclude: &[],
            inline: None,
            origin: false,
        };
        client.subscribe(subject, Some("_sys_"), sink)
    };
    subjects.iter().map(subscribe).collect()
}
