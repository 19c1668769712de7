//! A clustered JetStream's work on this server's own share of an account: running the
//! streams the meta group placed here, and answering the meta leader's questions about
//! what this server holds.

use std::sync::Arc;

use bytes::Bytes;

use super::api::{self, Usage};
use super::JetStream;
use crate::jetstream::api_types::{from_go_json, StreamInfoRequest};
use crate::jetstream::{ApiError, StreamConfig};
use crate::server::cluster_js::ClusterJs;

/// What hosting a stream came to.
pub struct HostDone {
    /// The encoded answer for the client that asked.
    pub body: Vec<u8>,
    /// `Ok` when the stream runs with the config asked for; else the config it still runs
    /// with, if it exists.
    pub running: Result<(), Option<String>>,
}

impl JetStream {
    /// Hands this account's API to the clustered JetStream: from now on requests are
    /// answered as `cluster_api` routes them.
    pub fn join_cluster(&self, cluster: Arc<ClusterJs>) {
        let _ = self.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&Arc<ClusterJs>> {
        self.cluster.get()
    }

    pub(super) fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Runs the stream with `config` (JSON, as the meta leader validated it): creates it, or
    /// brings the one running here to that config.
    pub fn host_stream(&self, config: &str, update: bool) -> HostDone {
        let kind = match update {
            true => "stream_update_response",
            false => "stream_create_response",
        };
        let config: StreamConfig = match from_go_json(config.as_bytes()) {
            Ok(config) => config,
            Err(e) => {
                let (body, _) = api::encode(kind, Err(ApiError::invalid_json(e)));
                return HostDone {
                    body,
                    running: Err(None),
                };
            }
        };
        let name = config.name.clone();
        let result = match self.stream(&name) {
            // A replicated stream's config changes through its group, never here.
            Some(entry) if entry.replica.is_replicated() => Ok(entry),
            Some(_) => self.update_stream(config),
            None => self.create_stream(config),
        };
        match result {
            Ok(entry) => HostDone {
                body: api::encode(kind, api::changed_stream_info(self, &entry)).0,
                running: Ok(()),
            },
            Err(e) => {
                let running = self
                    .stream(&name)
                    .and_then(|entry| serde_json::to_string(entry.lock().config()).ok());
                HostDone {
                    body: api::encode(kind, Err(e)).0,
                    running: Err(running),
                }
            }
        }
    }

    /// Deletes stream `name` here, if it runs here.
    pub fn unhost_stream(&self, name: &str) -> Result<(), ApiError> {
        match self.stream(name) {
            Some(_) => self.delete_stream(name),
            None => Ok(()),
        }
    }

    /// The names of the streams that run here.
    pub fn local_stream_names(&self) -> Vec<String> {
        self.streams().iter().map(|e| e.name.clone()).collect()
    }

    /// This server's answer to the meta leader's `GATHER.<what>`.
    pub fn gather_answer(&self, what: &str, subject: Option<&str>) -> Option<Bytes> {
        let body = match what {
            "USAGE" => serde_json::to_vec(&api::local_usage(self)),
            "STREAMS" => {
                let infos: Vec<serde_json::Value> = api::filtered_streams(self, subject)
                    .iter()
                    .filter_map(|entry| {
                        let info = api::stream_info_of(self, entry, &StreamInfoRequest::default());
                        info.ok().and_then(|i| api::to_value(&i).ok())
                    })
                    .collect();
                serde_json::to_vec(&infos)
            }
            _ => return None,
        };
        body.ok().map(Bytes::from)
    }
}

/// Adds up the servers' `USAGE` answers.
pub(super) fn total_usage(answers: &[Bytes]) -> Usage {
    let mut total = Usage::default();
    for answer in answers {
        if let Ok(usage) = serde_json::from_slice::<Usage>(answer) {
            total += usage;
        }
    }
    total
}
