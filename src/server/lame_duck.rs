//! Lame duck mode (SIGUSR2, `--signal ldm=<pid>`): a server about to be taken down moves its
//! clients elsewhere first, as nats-server does. It stops accepting clients, tells its routes
//! (whose servers then stop advertising it to their clients) and its own clients (an INFO with
//! `ldm` and the other servers' URLs), waits a grace period for clients to leave on their own,
//! then closes the rest spread over the lame duck duration, and shuts down.

use std::time::Duration;

use super::outbound::CloseReason;
use super::{lock, ServerState};

/// How long the whole of lame duck mode takes by default (nats-server's
/// `DEFAULT_LAME_DUCK_DURATION`).
pub const LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
/// How long clients are left to leave on their own before the server starts closing them
/// (nats-server's `DEFAULT_LAME_DUCK_GRACE_PERIOD`).
pub const LAME_DUCK_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Runs lame duck mode to its end; the caller has stopped accepting clients and shuts the
/// server down when this returns.
pub(super) async fn run(state: &ServerState) {
    let duration = state.config.lame_duck_duration;
    let grace = state.config.lame_duck_grace_period.min(duration);
    tracing::info!("Entering lame duck mode, stop accepting new clients");
    if let Some(cluster) = &state.cluster {
        cluster.enter_lame_duck(state.config.max_payload_bytes);
    }
    tell_clients(state);
    if lock(&state.clients).is_empty() {
        return;
    }
    tracing::info!("Lame duck mode: waiting {grace:?} for clients to leave");
    tokio::time::sleep(grace).await;
    let clients: Vec<_> = lock(&state.clients).values().cloned().collect();
    if clients.is_empty() {
        return;
    }
    let spread = duration.saturating_sub(grace);
    let gap = spread / u32::try_from(clients.len()).unwrap_or(u32::MAX).max(1);
    tracing::info!(
        "Closing existing clients, {} over {spread:?}",
        clients.len()
    );
    for client in clients {
        client.close(CloseReason::ServerShutdown);
        tokio::time::sleep(gap).await;
    }
}

/// An INFO with `ldm` to every client that takes INFO updates, naming only the other servers.
fn tell_clients(state: &ServerState) {
    let mut info = state.info.clone();
    info.ldm = true;
    if let Some(cluster) = &state.cluster {
        info.cluster = Some(cluster.name().name);
        info.connect_urls = cluster.peer_connect_urls();
    }
    if let Ok(json) = serde_json::to_vec(&info) {
        state.send_async_info(&json);
    }
}
