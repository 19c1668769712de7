//! The ways across an account boundary, as subscriptions whose owner routes the message on
//! into the other account (`Owner::Forward`), on the publisher's own task:
//!
//! - a **stream import** is a subscription in the exporting account on the imported subject;
//!   a message there is routed into the importer under the mapped subject;
//! - a **service import** is a subscription in the importing account on its local subject; a
//!   request there is routed into the exporter under the exported subject, its reply subject
//!   swapped for one of the exporter's `_R_.` subjects ([`super::responses`]), which carry the
//!   responses back.
//!
//! Nothing else crosses: each account has its own router, so a subscription, a reply subject
//! or a JetStream API request only ever meets the subscriptions of its own account.

use std::cell::Cell;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::responses::ResponseTable;
use super::subject_map::SubjectMap;
use crate::broker::MatchCache;
use crate::protocol::Publish;
use crate::server::outbound::{Forward, Subscription};
use crate::server::router::{Deliveries, Publisher, Reach, Router};

/// How many account boundaries one message may cross in a row (an import of an import…).
/// Cycles of service imports are refused at start; this bounds whatever else could loop.
const MAX_CROSSINGS: u8 = 8;

thread_local! {
    static CROSSINGS: Cell<u8> = const { Cell::new(0) };
}

/// The other account's router, with a match cache for the forwarder's subjects. Held weakly:
/// routers hold the forwarders' subscriptions, and two accounts importing from each other
/// must not keep each other alive.
pub(super) struct Target {
    router: Weak<Router>,
    /// Taken with `try_lock`: a forwarder used by two publishers at once (or re-entered) routes
    /// the second time with a fresh cache instead of waiting.
    cache: Mutex<(MatchCache<Subscription>, u64)>,
}

impl Target {
    pub(super) fn new(router: &Arc<Router>) -> Self {
        Self {
            router: Arc::downgrade(router),
            cache: Mutex::new((MatchCache::default(), 0x5851_F42D_4C95_7F2D)),
        }
    }

    /// Routes `msg` in the other account under `subject`, as far as `reach`; how many took
    /// it.
    pub(super) fn route(
        &self,
        subject: &[u8],
        msg: &Publish,
        reach: Reach<'_>,
        out: &mut Deliveries,
    ) -> usize {
        let depth = CROSSINGS.with(Cell::get);
        if depth >= MAX_CROSSINGS {
            tracing::warn!(
                subject = %String::from_utf8_lossy(subject),
                "message dropped: it crossed too many account boundaries"
            );
            return 0;
        }
        let Some(router) = self.router.upgrade() else {
            return 0;
        };
        CROSSINGS.with(|c| c.set(depth + 1));
        let from = Publisher {
            client: None,
            echo: true,
            reach,
        };
        let delivered = match self.cache.try_lock() {
            Ok(mut guard) => {
                let (cache, rng) = &mut *guard;
                router.route_as(&from, subject, msg, cache, out, rng)
            }
            Err(_) => {
                let mut cache = MatchCache::default();
                let mut rng = 0x2545_F491_4F6C_DD1D;
                router.route_as(&from, subject, msg, &mut cache, out, &mut rng)
            }
        };
        CROSSINGS.with(|c| c.set(depth));
        delivered
    }

    pub(super) fn has_interest(&self, subject: &[u8]) -> bool {
        self.router
            .upgrade()
            .is_some_and(|router| router.has_interest(subject))
    }
}

/// A stream import: messages on the exported subject, into the importer.
pub(super) struct StreamImport {
    pub(super) target: Target,
    /// Exporter's subject → importer's subject.
    pub(super) map: SubjectMap,
}

impl Forward for StreamImport {
    /// Every server of a cluster runs the import for its own importers: the message reached
    /// each of them that has interest, so it goes no further than this server's.
    fn forward(&self, subject: &[u8], msg: &Publish, _: Reach<'_>, out: &mut Deliveries) -> bool {
        let route_subject = Bytes::copy_from_slice(subject);
        let Some(mapped) = self.map.apply(&route_subject) else {
            return false;
        };
        let mut moved = msg.clone();
        if msg.subject == route_subject {
            moved.subject = mapped.clone();
        }
        self.target.route(&mapped, &moved, Reach::Local, out) > 0
    }

    fn cluster_wide(&self) -> bool {
        true
    }

    fn has_interest(&self, subject: &[u8]) -> bool {
        let subject = Bytes::copy_from_slice(subject);
        self.map
            .apply(&subject)
            .is_some_and(|mapped| self.target.has_interest(&mapped))
    }
}

/// A service import: requests on the importer's subject, into the exporter.
pub(super) struct ServiceImport {
    pub(super) target: Target,
    /// Importer's subject → exporter's subject.
    pub(super) map: SubjectMap,
    /// Where the exporter's responses find their way back.
    pub(super) responses: Arc<ResponseTable>,
}

impl Forward for ServiceImport {
    /// The server a request is published on crosses the boundary, and reaches the exporter's
    /// responders on every server from there.
    fn forward(
        &self,
        subject: &[u8],
        msg: &Publish,
        reach: Reach<'_>,
        out: &mut Deliveries,
    ) -> bool {
        let Some(mapped) = self.map.apply(&Bytes::copy_from_slice(subject)) else {
            return false;
        };
        let reply = msg.reply.as_ref().map(|r| self.responses.open(r.clone()));
        let request = Publish {
            subject: mapped.clone(),
            reply: reply.as_ref().map(|(subject, _)| subject.clone()),
            headers: msg.headers.clone(),
            payload: msg.payload.clone(),
        };
        let taken = self.target.route(&mapped, &request, reach, out) > 0;
        if let (false, Some((_, id))) = (taken, reply) {
            // Nobody serves it there: the requester is told so, and nothing waits for a reply.
            self.responses.close(id);
        }
        taken
    }

    fn has_interest(&self, subject: &[u8]) -> bool {
        self.map
            .apply(&Bytes::copy_from_slice(subject))
            .is_some_and(|mapped| self.target.has_interest(&mapped))
    }

    fn cluster_wide(&self) -> bool {
        false
    }
}
