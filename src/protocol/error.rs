//! Protocol errors as nats-server words them on the wire, and whether each one ends the
//! connection. The texts are matched byte for byte by client libraries and test harnesses, so
//! they are copied exactly from nats-server's behaviour (`server/client.go`, `server/parser.go`).

/// An error the server reports to a client with `-ERR '<text>'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Any line the parser cannot make sense of. Fatal.
    #[error("Unknown Protocol Operation")]
    UnknownOperation,
    /// A control line longer than the limit. Fatal.
    #[error("maximum control line exceeded")]
    MaxControlLineExceeded,
    /// A PUB/HPUB whose announced size exceeds max_payload. Fatal.
    #[error("Maximum Payload Violation")]
    MaxPayloadExceeded,
    /// Missing or wrong credentials, or an op before CONNECT when auth is required. Fatal.
    #[error("Authorization Violation")]
    AuthorizationViolation,
    /// No CONNECT within the auth timeout. Fatal.
    #[error("Authentication Timeout")]
    AuthenticationTimeout,
    /// CONNECT with a protocol version we do not speak. Fatal.
    #[error("invalid client protocol")]
    InvalidClientProtocol,
    /// CONNECT asking for no-responders statuses without header support. Fatal.
    #[error("no responders requires headers support")]
    NoRespondersRequiresHeaders,
    /// Two server PINGs went unanswered. Fatal.
    #[error("Stale Connection")]
    StaleConnection,
    /// The user's JWT (or its account's) expired while connected. Fatal.
    #[error("User Authentication Expired")]
    UserAuthenticationExpired,
    /// The server is at max_connections. Fatal.
    #[error("maximum connections exceeded")]
    MaxConnectionsExceeded,
    /// A SUB past the user's or account's subscription limit. The connection stays open.
    #[error("maximum subscriptions exceeded")]
    MaxSubscriptionsExceeded,
    /// A connection past its account's `conn` limit. Fatal.
    #[error("maximum account active connections exceeded")]
    MaxAccountConnectionsExceeded,
    /// A SUB with an invalid subject or queue name. The connection stays open.
    #[error("Invalid Subject")]
    InvalidSubject,
    /// A PUB to a subject that is not a valid literal subject. The connection stays open.
    #[error("Invalid Publish Subject")]
    InvalidPublishSubject,
    /// A publish or subscription the user's permissions do not allow; the text names the
    /// subject (`Permissions Violation for Publish to "x"`). The connection stays open.
    #[error("{0}")]
    PermissionsViolation(String),
}

impl ProtocolError {
    /// Whether nats-server closes the connection after sending this error.
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self,
            Self::InvalidSubject
                | Self::InvalidPublishSubject
                | Self::PermissionsViolation(_)
                | Self::MaxSubscriptionsExceeded
        )
    }
}
