//! The lines nats-server writes at its default level when a client is refused or breaks the
//! protocol, in its words (`client.go`: `authViolation`, `pubPermissionViolation`, the
//! subscription check, parser errors), so operators' alerts and log searches keep working.
//! Each names the client by address and connection id: `<addr> - cid:<n> - <what>`.
//! Secrets (passwords, tokens) never appear; a user is named by its name or nkey.

use std::net::SocketAddr;

use crate::protocol::connect::ConnectOptions;
use crate::protocol::ProtocolError;

/// nats-server's `getAuthUser`: who the client said it was.
pub fn auth_user(opts: &ConnectOptions) -> String {
    match (&opts.nkey, &opts.user) {
        (Some(nkey), _) => format!("Nkey {nkey:?}"),
        (None, Some(user)) => format!("User {user:?}"),
        (None, None) => "User \"N/A\"".to_string(),
    }
}

/// A client whose credentials did not satisfy the server.
pub fn authentication_failed(peer: SocketAddr, cid: u64, opts: &ConnectOptions) {
    match (&opts.nkey, &opts.user) {
        (None, None) => tracing::error!("{peer} - cid:{cid} - authentication error"),
        _ => tracing::error!(
            "{peer} - cid:{cid} - authentication error - {}",
            auth_user(opts)
        ),
    }
}

/// A publish the user's permissions refused.
pub fn publish_violation(peer: SocketAddr, cid: u64, opts: &ConnectOptions, subject: &[u8]) {
    let subject = String::from_utf8_lossy(subject);
    let user = auth_user(opts);
    tracing::error!("{peer} - cid:{cid} - Publish Violation - {user}, Subject {subject:?}");
}

/// A subscription the user's permissions refused.
pub fn subscription_violation(
    peer: SocketAddr,
    cid: u64,
    opts: &ConnectOptions,
    subject: &[u8],
    queue: Option<&[u8]>,
    sid: &[u8],
) {
    let subject = String::from_utf8_lossy(subject);
    let sid = String::from_utf8_lossy(sid);
    let user = auth_user(opts);
    match queue {
        Some(queue) => {
            let queue = String::from_utf8_lossy(queue);
            tracing::error!(
                "{peer} - cid:{cid} - Subscription Violation - {user}, Subject {subject:?}, Queue: {queue:?}, SID {sid}"
            )
        }
        None => tracing::error!(
            "{peer} - cid:{cid} - Subscription Violation - {user}, Subject {subject:?}, SID {sid}"
        ),
    }
}

/// A protocol error that ends the connection. What the client did wrong is logged as an
/// error; a connection that went quiet or never authenticated is routine and logged for
/// debugging only, as nats-server does.
pub fn connection_failed(peer: SocketAddr, cid: u64, err: &ProtocolError) {
    match err {
        ProtocolError::StaleConnection => {
            tracing::debug!("{peer} - cid:{cid} - Stale Client Connection - Closing")
        }
        ProtocolError::AuthenticationTimeout => {
            tracing::debug!("{peer} - cid:{cid} - Authentication Timeout")
        }
        // Logged where the credentials were checked, with the user named.
        ProtocolError::AuthorizationViolation => {}
        other => tracing::error!("{peer} - cid:{cid} - Client protocol error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_named_as_nats_server_names_them_and_tokens_never() {
        let mut opts = ConnectOptions {
            auth_token: Some("s3cret".into()),
            ..ConnectOptions::default()
        };
        assert_eq!(auth_user(&opts), "User \"N/A\"");
        opts.user = Some("alice".into());
        assert_eq!(auth_user(&opts), "User \"alice\"");
        opts.nkey = Some("UABC".into());
        assert_eq!(auth_user(&opts), "Nkey \"UABC\"");
    }
}
