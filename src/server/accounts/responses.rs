//! The way back of a service import: each request that crossed gets a reply subject of the
//! exporting account (`_R_.<table>.<id>`), and this table remembers which requester in the
//! importing account it stands for, for as long as the export's response type allows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::imports::Target;
use super::settings::ResponseType;
use crate::protocol::Publish;
use crate::server::outbound::Forward;
use crate::server::router::{Deliveries, Reach};

/// The reply subjects of responses crossing back start with this, as nats-server's do.
pub const RESPONSE_PREFIX: &str = "_R_";
/// A table sweeps out expired requests when it has grown past this many since its last sweep.
const SWEEP_AFTER: usize = 1024;

/// A request waiting for its response(s).
struct Open {
    reply: Bytes,
    deadline: Instant,
}

#[derive(Default)]
struct Waiting {
    open: HashMap<u64, Open>,
    /// Size at which the next sweep runs.
    sweep_at: usize,
}

/// The requests of one service import that may still be answered.
pub struct ResponseTable {
    /// `_R_.<table>.`: what this table's reply subjects start with.
    prefix: String,
    kind: ResponseType,
    threshold: Duration,
    /// The importing account, where responses go.
    back: Target,
    next: AtomicU64,
    waiting: Mutex<Waiting>,
}

impl ResponseTable {
    pub(super) fn new(table: &str, kind: ResponseType, threshold: Duration, back: Target) -> Self {
        Self {
            prefix: format!("{RESPONSE_PREFIX}.{table}."),
            kind,
            threshold,
            back,
            next: AtomicU64::new(1),
            waiting: Mutex::new(Waiting {
                open: HashMap::new(),
                sweep_at: SWEEP_AFTER,
            }),
        }
    }

    /// The pattern the exporting account's subscription for responses covers.
    pub fn pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a request's reply subject; returns the exporter-side reply subject and its id.
    pub(super) fn open(&self, reply: Bytes) -> (Bytes, u64) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut waiting = self.lock();
        if waiting.open.len() >= waiting.sweep_at {
            waiting.open.retain(|_, o| o.deadline > now);
            waiting.sweep_at = (waiting.open.len() * 2).max(SWEEP_AFTER);
        }
        waiting.open.insert(
            id,
            Open {
                reply,
                deadline: now + self.threshold,
            },
        );
        drop(waiting);
        (Bytes::from(format!("{}{id}", self.prefix)), id)
    }

    pub(super) fn close(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    /// The requester's reply subject for a response on `subject`, if it may still be answered.
    /// A streamed response refreshes the wait, and an empty message (no headers, no payload)
    /// ends it, as with nats-server.
    fn claim(&self, subject: &[u8], last: bool) -> Option<Bytes> {
        let id: u64 = std::str::from_utf8(subject.strip_prefix(self.prefix.as_bytes())?)
            .ok()?
            .parse()
            .ok()?;
        let now = Instant::now();
        let mut waiting = self.lock();
        let open = waiting.open.get_mut(&id)?;
        if open.deadline <= now {
            waiting.open.remove(&id);
            return None;
        }
        match self.kind {
            ResponseType::Stream | ResponseType::Chunked if !last => {
                open.deadline = now + self.threshold;
                Some(open.reply.clone())
            }
            _ => waiting.open.remove(&id).map(|o| o.reply),
        }
    }
}

impl Forward for ResponseTable {
    fn forward(&self, subject: &[u8], msg: &Publish, _: Reach<'_>, out: &mut Deliveries) -> bool {
        let last = msg.headers.is_none() && msg.payload.is_empty();
        let Some(reply) = self.claim(subject, last) else {
            return false;
        };
        // A JetStream delivery is routed to the reply but shows its stream subject, and its
        // reply (the ack subject) goes along.
        let shown = if msg.subject.as_ref() == subject {
            reply.clone()
        } else {
            msg.subject.clone()
        };
        let response = Publish {
            subject: shown,
            reply: msg.reply.clone(),
            headers: msg.headers.clone(),
            payload: msg.payload.clone(),
        };
        // The requester is on this server: the table is this server's own.
        self.back.route(&reply, &response, Reach::Local, out) > 0
    }

    fn has_interest(&self, _subject: &[u8]) -> bool {
        true
    }

    /// A responder on another server replies through its routes to the server that holds
    /// the request's entry.
    fn cluster_wide(&self) -> bool {
        true
    }
}
