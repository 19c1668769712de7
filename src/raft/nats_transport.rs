//! The [`Transport`] over a NATS client connection, and the loop that answers a node's RPCs
//! there. Used where a group's member runs as a client of a jetlog cluster (the tests'
//! members, and the server's own members until they publish through the router directly).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use openraft::Raft;
use tokio::task::JoinHandle;

use super::network::{answer, node_subjects, Transport, TransportError};
use super::types::{JetlogRaft, NodeId};

/// Raft RPCs as requests on a NATS connection.
#[derive(Clone)]
pub struct NatsTransport(pub async_nats::Client);

impl Transport for NatsTransport {
    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(timeout));
        match self.0.send_request(subject.clone(), request).await {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => TransportError::NoResponders(subject),
                async_nats::RequestErrorKind::TimedOut => TransportError::TimedOut(timeout),
                _ => TransportError::Failed(e.to_string()),
            }),
        }
    }
}

/// Answers the RPCs addressed to node `me` of `group` on `client` until the connection or the
/// task ends. Each request is answered on its own task, so a slow snapshot install does not
/// hold up votes and heartbeats.
pub async fn serve(
    client: async_nats::Client,
    group: &str,
    me: NodeId,
    raft: Raft<JetlogRaft>,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut requests = client.subscribe(node_subjects(group, me)).await?;
    Ok(tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let op = message
                .subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let raft = raft.clone();
            let client = client.clone();
            tokio::spawn(async move {
                match answer(&raft, &op, &message.payload, None).await {
                    Ok(body) => {
                        let _ = client.publish(reply, body).await;
                    }
                    Err(e) => tracing::warn!("raft rpc {}: {e}", message.subject),
                }
            });
        }
    }))
}
