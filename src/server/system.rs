//! The system account's services: requests on `$SYS.REQ.>` (answered by a handler the
//! caller provides, the monitor's, so the answers are the monitoring endpoints' JSON) and the
//! connect and disconnect events of clients, published in the system account.
//!
//! Requests are answered on a thread of their own: building a report may take stream locks
//! that an actor holds across an fsync, which must not stall the async runtime or a publisher.

use std::sync::Arc;

use bytes::Bytes;

use super::internal::{self, InternalClient};
use super::outbound::InternalSink;
use super::ServerState;

/// Answers one request: its subject and body in, the reply body out (`None`: no reply, as
/// nats-server stays silent where a filter does not match it).
pub type SystemHandler = Arc<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Subscribes `subjects` in the system account and answers each request with `handler` on a
/// thread named `system-requests`.
pub(super) fn serve(
    state: &Arc<ServerState>,
    mut subjects: Vec<String>,
    handler: SystemHandler,
) -> std::io::Result<()> {
    let accounts = &state.accounts;
    let Some(system) = accounts.get(accounts.system_account()) else {
        return Ok(());
    };
    if state.operator.is_some() {
        subjects.extend(super::claims::SUBJECTS.iter().map(|s| s.to_string()));
    }
    let state = state.clone();
    let router = system.router.clone();
    let (tx, mut rx) = internal::channel();
    let client = InternalClient::new(router.clone());
    let subs: Vec<_> = subjects
        .iter()
        .map(|subject| {
            let sink = InternalSink {
                tag: 0,
                tx: tx.clone(),
                exclude: &[],
                inline: None,
                origin: false,
            };
            client.subscribe(subject, None, sink)
        })
        .collect();
    drop(tx);
    std::thread::Builder::new()
        .name("system-requests".into())
        .spawn(move || {
            let _subs = subs;
            let mut client = InternalClient::new(router);
            while let Some(delivery) = rx.blocking_recv() {
                let msg = delivery.msg;
                let Some(reply) = msg.reply else {
                    continue;
                };
                let subject = String::from_utf8_lossy(&msg.subject);
                let answer = match super::claims::is_claims_request(&subject) {
                    true => Some(state.claims_request(&subject, &msg.payload)),
                    false => handler(&subject, &msg.payload),
                };
                if let Some(body) = answer {
                    client.publish(reply, None, Bytes::from(body));
                }
            }
        })?;
    Ok(())
}
