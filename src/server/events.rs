//! Client connect and disconnect events, published in the system account on
//! `$SYS.ACCOUNT.<account>.CONNECT` and `.DISCONNECT` in nats-server's shape
//! (`io.nats.server.advisory.v1.client_connect` / `client_disconnect`), so tools watching the
//! system account see clients come and go. Nothing is built when nobody listens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use super::conn_stats::Traffic;
use super::outbound::{ClientHandle, CloseReason};
use super::router::{Deliveries, Publisher, Reach};
use super::ServerState;
use crate::broker::MatchCache;
use crate::jetstream::time::format_rfc3339;
use crate::protocol::Publish;

/// Which event.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Connect,
    Disconnect(CloseReason),
}

/// The server block every system message carries (nats-server's `ServerInfo`).
#[derive(Serialize)]
pub struct ServerBlock<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub id: &'a str,
    pub ver: &'a str,
    pub jetstream: bool,
    pub seq: u64,
    pub time: String,
}

#[derive(Serialize)]
struct ClientBlock<'a> {
    start: String,
    host: String,
    id: u64,
    acc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ver: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    kind: &'static str,
    client_type: &'static str,
}

#[derive(Serialize)]
struct Counts {
    msgs: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: ServerBlock<'a>,
    client: ClientBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Numbers system messages, as nats-server's `seq`.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn now() -> String {
    time_of(SystemTime::now())
}

fn time_of(at: SystemTime) -> String {
    let ns = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    format_rfc3339(Some(ns))
}

/// nats-server's words for why a client went away.
fn reason(close: CloseReason) -> &'static str {
    match close {
        CloseReason::ClientClosed => "Client Closed",
        CloseReason::ProtocolError => "Protocol Violation",
        CloseReason::SlowConsumer => "Slow Consumer (Write Deadline)",
        CloseReason::ServerShutdown => "Server Shutdown",
    }
}

impl ServerState {
    /// The server block of a system message, with the next sequence number.
    pub(super) fn server_block(&self) -> ServerBlock<'_> {
        ServerBlock {
            name: &self.info.server_name,
            host: &self.info.host,
            id: &self.info.server_id,
            ver: &self.info.version,
            jetstream: self.config.jetstream,
            seq: SEQ.fetch_add(1, Ordering::Relaxed) + 1,
            time: now(),
        }
    }

    /// Publishes a client's connect or disconnect event in the system account, if anything
    /// there subscribes to it. Runs on the client's task: deliveries to clients are encoded at
    /// once, and one to an internal subscriber is handed over on a task of its own.
    pub(super) fn client_event(&self, handle: &ClientHandle, kind: Kind) {
        let meta = handle.stats.meta();
        if meta.account.is_empty() {
            return;
        }
        let Some(system) = self.accounts.get(self.accounts.system_account()) else {
            return;
        };
        let (suffix, kind_name) = match kind {
            Kind::Connect => ("CONNECT", "io.nats.server.advisory.v1.client_connect"),
            Kind::Disconnect(_) => ("DISCONNECT", "io.nats.server.advisory.v1.client_disconnect"),
        };
        let subject = format!("$SYS.ACCOUNT.{}.{suffix}", meta.account);
        if !system.router.has_interest(subject.as_bytes()) {
            return;
        }
        let traffic: Option<Traffic> =
            matches!(kind, Kind::Disconnect(_)).then(|| super::view::traffic_of(handle));
        let event = Event {
            kind: kind_name,
            id: super::new_token(),
            timestamp: now(),
            server: self.server_block(),
            client: ClientBlock {
                start: time_of(handle.stats.started),
                host: handle.stats.peer.ip().to_string(),
                id: handle.id,
                acc: &meta.account,
                user: meta.user.as_deref(),
                name: meta.name.as_deref().filter(|n| !n.is_empty()),
                lang: meta.lang.as_deref(),
                ver: meta.version.as_deref(),
                stop: matches!(kind, Kind::Disconnect(_)).then(now),
                kind: "Client",
                client_type: "nats",
            },
            // From the server's side, as nats-server counts them: what it sent the client.
            sent: traffic.map(|t| Counts {
                msgs: t.out_msgs,
                bytes: t.out_bytes,
            }),
            received: traffic.map(|t| Counts {
                msgs: t.in_msgs,
                bytes: t.in_bytes,
            }),
            reason: match kind {
                Kind::Disconnect(close) => Some(reason(close)),
                Kind::Connect => None,
            },
        };
        let Ok(body) = serde_json::to_vec(&event) else {
            return;
        };
        let msg = Publish {
            subject: Bytes::from(subject),
            reply: None,
            headers: None,
            payload: Bytes::from(body),
        };
        let mut out = Deliveries::default();
        let mut cache = MatchCache::default();
        let mut rng = 0x1234_5678_9ABC_DEF1;
        let from = Publisher {
            client: None,
            echo: true,
            reach: Reach::Cluster,
        };
        system
            .router
            .route(&from, &msg, &mut cache, &mut out, &mut rng);
        out.wake_all();
        if !out.internal.is_empty() {
            tokio::spawn(async move { out.flush_internal().await });
        }
    }
}
