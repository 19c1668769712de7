//! What the servers of a clustered JetStream ask each other, in the system account: a
//! proposal to the meta leader (`$JLC.PROPOSE`, answered only by the leader), and questions
//! every server answers about its own share of an account (`$JLC.GATHER.<what>`), which the
//! meta leader adds up for `$JS.API.INFO` and `STREAM.LIST`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::Raft;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::super::raft_link::{publish, subscribe, Unsubscribe};
use super::super::router::Router;
use crate::jetstream::assignments::MetaOutcome;
use crate::raft::types::{Command, JetlogRaft};

pub const PROPOSE_SUBJECT: &str = "$JLC.PROPOSE";
pub const GATHER_PREFIX: &str = "$JLC.GATHER.";
/// Replies to a gather arrive under `$JLC.R.<token>`.
const GATHER_INBOX: &str = "$JLC.R";

/// A question about one account's share on each server.
#[derive(Serialize, Deserialize)]
pub struct GatherRequest {
    pub account: String,
    /// For `STREAMS`: only streams with a subject that overlaps this one.
    #[serde(default)]
    pub subject: Option<String>,
}

/// What a server answers with, given the question's kind (`USAGE`, `STREAMS`) and body.
pub type Answerer = Arc<dyn Fn(&str, GatherRequest) -> Option<Bytes> + Send + Sync>;

/// Answers proposals (when this server's member leads the meta group) and gathers, until
/// the task is aborted.
pub fn serve(router: Arc<Router>, raft: Raft<JetlogRaft>, answer: Answerer) -> JoinHandle<()> {
    let (propose_sub, mut proposals) = subscribe(&router, PROPOSE_SUBJECT);
    let (gather_sub, mut gathers) = subscribe(&router, &format!("{GATHER_PREFIX}*"));
    tokio::spawn(async move {
        let _unsubscribe = (
            Unsubscribe(router.clone(), propose_sub),
            Unsubscribe(router.clone(), gather_sub),
        );
        loop {
            tokio::select! {
                Some(delivery) = proposals.recv() => {
                    let Some(reply) = delivery.msg.reply.clone() else { continue };
                    let (raft, router) = (raft.clone(), router.clone());
                    tokio::spawn(async move {
                        let command = Command(delivery.msg.payload.to_vec());
                        // Only the leader can commit; the others stay silent, so the one
                        // answer the proposer gets is the leader's.
                        if let Ok(written) = raft.client_write(command).await {
                            publish(&router, reply, None, Bytes::from(written.data.0)).await;
                        }
                    });
                }
                Some(delivery) = gathers.recv() => {
                    let Some(reply) = delivery.msg.reply.clone() else { continue };
                    let subject = String::from_utf8_lossy(&delivery.msg.subject).into_owned();
                    let what = subject.rsplit('.').next().unwrap_or_default().to_owned();
                    let Ok(request) = serde_json::from_slice::<GatherRequest>(&delivery.msg.payload) else {
                        continue;
                    };
                    let (router, answer) = (router.clone(), answer.clone());
                    tokio::spawn(async move {
                        let body = tokio::task::spawn_blocking(move || answer(&what, request)).await;
                        if let Ok(Some(body)) = body {
                            publish(&router, reply, None, body).await;
                        }
                    });
                }
                else => break,
            }
        }
    })
}

/// Why a proposal did not come back with an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no meta leader answered: {0}")]
    NoLeader(String),
    #[error("the meta leader's answer could not be read")]
    Undecodable,
}

/// Asks every server `GATHER.<what>` and returns the answers that came within `timeout`,
/// at most `expect` of them.
pub async fn gather(
    router: &Arc<Router>,
    what: &str,
    request: &GatherRequest,
    expect: usize,
    timeout: Duration,
) -> Vec<Bytes> {
    let inbox = format!("{GATHER_INBOX}.{}", super::super::new_token());
    let (sub, mut rx) = subscribe(router, &inbox);
    let _unsubscribe = Unsubscribe(router.clone(), sub);
    let body = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
    let subject = Bytes::from(format!("{GATHER_PREFIX}{what}"));
    publish(router, subject, Some(Bytes::from(inbox)), body).await;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut answers = Vec::new();
    while answers.len() < expect {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(delivery)) => answers.push(delivery.msg.payload),
            _ => break,
        }
    }
    answers
}

/// Reads a proposal's outcome as the leader encoded it.
pub fn decode_outcome(body: &[u8]) -> Result<MetaOutcome, ProposeError> {
    serde_json::from_slice(body).map_err(|_| ProposeError::Undecodable)
}
