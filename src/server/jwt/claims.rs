//! The `nats` part of operator, account and user claims: the fields jetlog reads, with the
//! names and shapes of the nats-io/jwt v2 library. Fields jetlog does not act on are read
//! where a claim that sets them must be refused rather than half-honoured (see `operator`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// An operator's claim: who signs accounts, and which account is the system's.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OperatorClaims {
    #[serde(default)]
    pub signing_keys: Vec<String>,
    #[serde(default)]
    pub system_account: String,
}

/// An account signing key: a bare key, or a scoped one with a user template.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SigningKey {
    Key(String),
    Scoped {
        key: String,
        #[serde(default)]
        kind: String,
        #[serde(default)]
        template: Option<serde_json::Value>,
    },
}

impl SigningKey {
    pub fn key(&self) -> &str {
        match self {
            Self::Key(key) | Self::Scoped { key, .. } => key,
        }
    }
}

/// `pub` or `sub` of a permission claim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PermissionClaim {
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    #[serde(default)]
    pub deny: Option<Vec<String>>,
}

/// `resp`: the user may answer what it received (`ttl` in nanoseconds).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsePermissionClaim {
    #[serde(default)]
    pub max: i64,
    #[serde(default)]
    pub ttl: i64,
}

/// A user's claim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserClaims {
    #[serde(rename = "pub", default)]
    pub publish: PermissionClaim,
    #[serde(rename = "sub", default)]
    pub subscribe: PermissionClaim,
    #[serde(default)]
    pub resp: Option<ResponsePermissionClaim>,
    /// Set when an account signing key issued the user: the account's own key.
    #[serde(default)]
    pub issuer_account: String,
    #[serde(default)]
    pub bearer_token: bool,
    /// Per-connection limits (-1 is none): `subs` and `payload` are enforced; `data` is
    /// not, as nats-server does not enforce it either.
    #[serde(default = "unlimited")]
    pub subs: i64,
    #[serde(default = "unlimited")]
    pub data: i64,
    #[serde(default = "unlimited")]
    pub payload: i64,
    #[serde(default)]
    pub src: Option<serde_json::Value>,
    #[serde(default)]
    pub times: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub allowed_connection_types: Option<Vec<String>>,
}

fn unlimited() -> i64 {
    -1
}

/// An account's limits; -1 is none, and JetStream is on where either storage limit is not 0.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountLimitsClaim {
    #[serde(default = "unlimited")]
    pub subs: i64,
    #[serde(default = "unlimited")]
    pub data: i64,
    #[serde(default = "unlimited")]
    pub payload: i64,
    #[serde(default = "unlimited")]
    pub imports: i64,
    #[serde(default = "unlimited")]
    pub exports: i64,
    #[serde(default = "unlimited")]
    pub conn: i64,
    #[serde(default = "unlimited")]
    pub leaf: i64,
    #[serde(default)]
    pub mem_storage: i64,
    #[serde(default)]
    pub disk_storage: i64,
    #[serde(default = "unlimited")]
    pub streams: i64,
    #[serde(default = "unlimited")]
    pub consumer: i64,
    #[serde(default = "unlimited")]
    pub max_ack_pending: i64,
    #[serde(default = "unlimited")]
    pub mem_max_stream_bytes: i64,
    #[serde(default = "unlimited")]
    pub disk_max_stream_bytes: i64,
    #[serde(default)]
    pub max_bytes_required: bool,
}

impl Default for AccountLimitsClaim {
    fn default() -> Self {
        Self {
            subs: -1,
            data: -1,
            payload: -1,
            imports: -1,
            exports: -1,
            conn: -1,
            leaf: -1,
            mem_storage: 0,
            disk_storage: 0,
            streams: -1,
            consumer: -1,
            max_ack_pending: -1,
            mem_max_stream_bytes: -1,
            disk_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// An export in an account claim.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportClaim {
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub token_req: bool,
    #[serde(default)]
    pub response_type: String,
    /// Nanoseconds.
    #[serde(default)]
    pub response_threshold: i64,
    #[serde(default)]
    pub account_token_position: u32,
    #[serde(default)]
    pub service_latency: Option<serde_json::Value>,
}

/// An import in an account claim. Without `local_subject`, a stream import's `to` is a prefix
/// and a service import's `to` the subject in the exporter, as nats-server reads them.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportClaim {
    pub subject: String,
    pub account: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub local_subject: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub share: bool,
}

/// An account's claim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccountClaims {
    #[serde(default)]
    pub imports: Vec<ImportClaim>,
    #[serde(default)]
    pub exports: Vec<ExportClaim>,
    #[serde(default)]
    pub limits: AccountLimitsClaim,
    #[serde(default)]
    pub signing_keys: Vec<SigningKey>,
    /// User keys (or `*` for all) and the time before which their JWTs are revoked.
    #[serde(default)]
    pub revocations: BTreeMap<String, i64>,
    #[serde(default)]
    pub default_permissions: DefaultPermissions,
    #[serde(default)]
    pub mappings: Option<serde_json::Value>,
    #[serde(default)]
    pub tiered_limits: Option<serde_json::Value>,
}

/// An account's permissions for users whose claim sets none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DefaultPermissions {
    #[serde(rename = "pub", default)]
    pub publish: PermissionClaim,
    #[serde(rename = "sub", default)]
    pub subscribe: PermissionClaim,
}
