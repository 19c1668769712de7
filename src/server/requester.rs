//! Who sent a request to an internal subscriber that asks to know (the JetStream API, for its
//! audit advisory): a snapshot of the publishing client taken as the request is routed, and
//! nats-server's `ClientInfo` shape for it (docs/api-audit-facts.md §2).

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use super::conn_stats::ClientMeta;
use super::outbound::ClientHandle;
use crate::jetstream::time::format_rfc3339;

/// The publishing client of one request.
#[derive(Debug, Clone)]
pub struct Requester {
    start: SystemTime,
    host: IpAddr,
    id: u64,
    meta: ClientMeta,
    rtt_ns: u64,
}

/// nats-server's `ClientInfo` as an advisory shows it: every field left out when empty.
#[derive(Serialize)]
pub struct ClientInfo<'a> {
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
    rtt: u64,
    server: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    kind: &'static str,
    client_type: &'static str,
}

impl Requester {
    pub fn of(client: &ClientHandle) -> Self {
        Self {
            start: client.stats.started,
            host: client.stats.peer.ip(),
            id: client.id,
            meta: client.stats.meta(),
            rtt_ns: client.stats.rtt_ns(),
        }
    }

    /// The client as connected to `server` (of `cluster`, when it has one).
    pub fn info<'a>(&'a self, server: &'a str, cluster: Option<&'a str>) -> ClientInfo<'a> {
        let ns = self
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let text = |v: &'a Option<String>| v.as_deref().filter(|s| !s.is_empty());
        ClientInfo {
            start: format_rfc3339(Some(ns)),
            host: self.host.to_string(),
            id: self.id,
            acc: &self.meta.account,
            user: text(&self.meta.user),
            name: text(&self.meta.name),
            lang: text(&self.meta.lang),
            ver: text(&self.meta.version),
            rtt: self.rtt_ns,
            server,
            cluster,
            kind: "Client",
            client_type: "nats",
        }
    }
}
