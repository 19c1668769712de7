//! CONNECT: credentials (configured users, certificates, the no-auth user, or a JWT in
//! operator mode), the account the connection joins, and the user's permissions.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::auth::{authorize, authorize_default, authorize_mapped, presents_nothing};
use super::super::conn_stats::ClientMeta;
use super::super::outbound::CloseReason;
use super::super::permissions::Permissions;
use super::super::reply_grants::ReplyGrants;
use super::super::security_log;
use super::Connection;
use crate::protocol::connect::ConnectOptions;
use crate::protocol::ProtocolError;

impl Connection {
    pub(super) fn on_connect(&mut self, json: &[u8]) -> Result<(), CloseReason> {
        let opts: ConnectOptions = match serde_json::from_slice(json) {
            Ok(opts) => opts,
            Err(_) => return Err(self.fail(&ProtocolError::UnknownOperation)),
        };
        // The order of these checks is nats-server's (processConnect): credentials first.
        if let Some(operator) = self.state.operator.clone() {
            self.connect_with_jwt(&operator, &opts)?;
        } else if let Some(auth) = &self.state.config.auth {
            let nonce = self.nonce.as_deref().unwrap_or("").as_bytes();
            let default_user = self.state.config.no_auth_user.as_deref();
            let granted = match (self.maps_certificates(), default_user) {
                (true, _) => authorize_mapped(auth, &self.cert_identities),
                (false, Some(name)) if presents_nothing(&opts) => authorize_default(auth, name),
                (false, _) => authorize(auth, &opts, nonce),
            };
            match granted {
                Some(grant) => {
                    if !self.connected {
                        self.join_account(grant.account.as_deref())?;
                        self.user = grant.user.clone();
                    }
                    self.set_permissions(grant.permissions)
                }
                None => {
                    let peer = self.handle.stats.peer;
                    security_log::authentication_failed(peer, self.handle.id, &opts);
                    return Err(self.fail(&ProtocolError::AuthorizationViolation));
                }
            }
        }
        if !(0..=1).contains(&opts.protocol) {
            return Err(self.fail(&ProtocolError::InvalidClientProtocol));
        }
        if opts.no_responders && !opts.headers {
            return Err(self.fail(&ProtocolError::NoRespondersRequiresHeaders));
        }
        self.handle.headers.store(opts.headers, Ordering::Relaxed);
        self.handle
            .async_info
            .store(opts.protocol >= 1, Ordering::Relaxed);
        self.handle.stats.set_meta(ClientMeta {
            name: opts.name.clone(),
            lang: opts.lang.clone(),
            version: opts.version.clone(),
            account: self.account.name.clone(),
            user: self.user.clone(),
        });
        if !self.connected {
            self.state
                .client_event(&self.handle, crate::server::events::Kind::Connect);
        }
        self.opts = opts;
        self.connected = true;
        self.ok();
        Ok(())
    }

    /// Operator mode: the user's JWT and the nonce signed with its key.
    fn connect_with_jwt(
        &mut self,
        operator: &crate::server::operator::Operator,
        opts: &ConnectOptions,
    ) -> Result<(), CloseReason> {
        let nonce = self.nonce.as_deref().unwrap_or("").as_bytes();
        let peer_ip = self.handle.stats.peer.ip();
        let granted = match opts.jwt.as_deref() {
            Some(token) => operator.authorize(token, opts.sig.as_deref(), nonce, peer_ip),
            None => Err("no user JWT".to_string()),
        };
        match granted {
            Ok(grant) => {
                if !self.connected {
                    let slot = self
                        .state
                        .accounts
                        .admit(&grant.account, grant.max_account_connections);
                    let Some(slot) = slot else {
                        return Err(self.fail(&ProtocolError::MaxAccountConnectionsExceeded));
                    };
                    self.account_slot = Some(slot);
                    self.join_account(Some(&grant.account))?;
                    self.user = Some(grant.user.clone());
                    self.expires = grant.expires.map(expiry_instant);
                    self.max_subs = grant.max_subs.and_then(|m| usize::try_from(m).ok());
                    if let Some(max) = grant.max_payload.and_then(|m| usize::try_from(m).ok()) {
                        self.parser.limit_payload(max);
                    }
                }
                self.set_permissions(grant.permissions);
                Ok(())
            }
            Err(why) => {
                let peer = self.handle.stats.peer;
                tracing::debug!(cid = self.handle.id, %peer, "JWT refused: {why}");
                security_log::authentication_failed(peer, self.handle.id, opts);
                Err(self.fail(&ProtocolError::AuthorizationViolation))
            }
        }
    }

    /// Moves the connection into its user's account (before it has subscribed to anything).
    fn join_account(&mut self, name: Option<&str>) -> Result<(), CloseReason> {
        let Some(name) = name else {
            return Ok(());
        };
        match self.state.accounts.get(name) {
            Some(account) => {
                debug_assert!(self.handle.subs.lock().map_or(true, |s| s.is_empty()));
                self.account = account.clone();
                Ok(())
            }
            // Configurations are checked at start; a user of an account that does not exist
            // cannot get in.
            None => Err(self.fail(&ProtocolError::AuthorizationViolation)),
        }
    }

    /// Whether this connection's user is the one its client certificate names.
    fn maps_certificates(&self) -> bool {
        self.state
            .tls
            .as_ref()
            .is_some_and(|tls| tls.config.verify_and_map)
    }

    /// Keeps the user's permissions for the checks on PUB and SUB, and hands subscribe denies
    /// to the connection's handle, where deliveries are filtered.
    fn set_permissions(&mut self, perms: Option<Arc<Permissions>>) {
        let perms = perms.filter(|p| !(p.publish.is_open() && p.subscribe.is_open()));
        if let Some(p) = perms.as_ref().filter(|p| !p.subscribe.deny.is_empty()) {
            // A second CONNECT cannot change the user's permissions: the first one stands.
            let _ = self.handle.deny_deliveries.set(p.clone());
        }
        if let Some(rule) = perms.as_ref().and_then(|p| p.responses) {
            let _ = self.handle.reply_grants.set(ReplyGrants::new(rule));
        }
        if self.perms.is_none() {
            self.perms = perms;
        }
    }
}

/// The moment a JWT's `exp` (seconds since the Unix epoch) comes, on the runtime's clock.
pub(super) fn expiry_instant(exp: i64) -> Instant {
    let now = crate::server::jwt::now_secs();
    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    Instant::now() + Duration::from_secs(left)
}

/// Waits until `expires` (never, when there is none).
pub(super) async fn sleep_until_expiry(expires: Option<Instant>) {
    match expires {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
