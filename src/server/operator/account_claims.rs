//! An account JWT read as account settings: its JetStream limits, exports and imports, and
//! what users of it need checked (signing keys, revocations, default permissions). A claim
//! that sets something jetlog does not enforce is refused, naming the field: an account
//! believed to be limited must be limited.

use std::sync::Arc;
use std::time::Duration;

use crate::server::accounts::settings::{
    AccountSettings, Export, ExportKind, Import, ResponseType, DEFAULT_RESPONSE_THRESHOLD,
};
use crate::server::jwt::{AccountClaims, Claims, PermissionClaim, SigningKey};
use crate::server::permissions::{Permissions, SubjectRule};
use crate::server::AccountLimits;

/// What a user's connection is checked against, for one account.
#[derive(Debug, Clone, Default)]
pub struct AccountAuth {
    /// Keys that may issue the account's users besides the account's own.
    pub signing_keys: Vec<String>,
    /// Signing keys with a scope (a template of permissions), which jetlog does not apply:
    /// users they issue are refused.
    pub scoped_keys: Vec<String>,
    /// User key (or `*`) → users issued at or before this time are revoked.
    pub revocations: std::collections::BTreeMap<String, i64>,
    pub default_permissions: Option<Arc<Permissions>>,
    /// When the account's own JWT expires (0: never).
    pub expires: i64,
    /// Connections the account may have open at once (`limits.conn`).
    pub max_connections: Option<u64>,
    /// Subscriptions per connection (`limits.subs`), and the largest payload
    /// (`limits.payload`); a user's own limits may be lower.
    pub max_subs: Option<u64>,
    pub max_payload: Option<u64>,
}

fn limit(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

/// `allow`/`deny` of a claim as a rule.
pub fn rule(claim: &PermissionClaim) -> SubjectRule {
    SubjectRule {
        allow: claim.allow.clone().unwrap_or_default(),
        deny: claim.deny.clone().unwrap_or_default(),
    }
}

/// Refuses a claim field jetlog cannot honour, naming it.
fn refuse_unsupported(claims: &AccountClaims) -> Result<(), String> {
    let l = &claims.limits;
    // `data` is not enforced by nats-server either, and `leaf` bounds leaf node connections,
    // of which jetlog takes none; `imports`/`exports` bound the claim itself.
    let counted = [
        ("imports", l.imports, claims.imports.len()),
        ("exports", l.exports, claims.exports.len()),
    ];
    if let Some((name, max, n)) = counted
        .iter()
        .find(|(_, max, n)| *max >= 0 && *n as i64 > *max)
    {
        return Err(format!(
            "the claim has {n} {name}, more than its limits.{name} of {max}"
        ));
    }
    if claims.mappings.as_ref().is_some_and(|m| !m.is_null()) {
        return Err("mappings are not implemented".into());
    }
    if claims
        .tiered_limits
        .as_ref()
        .is_some_and(|t| t.as_object().is_some_and(|o| !o.is_empty()))
    {
        return Err("tiered_limits are not implemented".into());
    }
    if let Some(e) = claims
        .exports
        .iter()
        .find(|e| e.token_req || e.account_token_position != 0 || e.service_latency.is_some())
    {
        return Err(format!(
            "export {:?} needs activation tokens, account token positions or latency tracking, which are not implemented",
            e.subject
        ));
    }
    if let Some(i) = claims
        .imports
        .iter()
        .find(|i| !i.token.is_empty() || i.share)
    {
        return Err(format!(
            "import {:?} uses an activation token or share, which are not implemented",
            i.subject
        ));
    }
    Ok(())
}

fn response_type(text: &str) -> ResponseType {
    match text.to_ascii_lowercase().as_str() {
        "stream" => ResponseType::Stream,
        "chunked" => ResponseType::Chunked,
        _ => ResponseType::Singleton,
    }
}

/// The settings and the user checks of a verified account claim.
pub fn settings_of(
    claims: &Claims<AccountClaims>,
) -> Result<(AccountSettings, AccountAuth), String> {
    let nats = &claims.nats;
    refuse_unsupported(nats)?;
    let l = &nats.limits;
    let jetstream = (l.mem_storage != 0 || l.disk_storage != 0).then(|| AccountLimits {
        max_streams: limit(l.streams),
        max_consumers: limit(l.consumer),
        max_bytes_required: l.max_bytes_required,
        memory_max_stream_bytes: limit(l.mem_max_stream_bytes).filter(|b| *b > 0),
        store_max_stream_bytes: limit(l.disk_max_stream_bytes).filter(|b| *b > 0),
        max_memory: limit(l.mem_storage),
        max_file: limit(l.disk_storage),
        max_ack_pending: limit(l.max_ack_pending).filter(|m| *m > 0),
    });
    let exports = nats
        .exports
        .iter()
        .map(|e| Export {
            subject: e.subject.clone(),
            kind: match e.kind.as_str() {
                "service" => ExportKind::Service {
                    response: response_type(&e.response_type),
                    threshold: u64::try_from(e.response_threshold)
                        .ok()
                        .filter(|ns| *ns > 0)
                        .map_or(DEFAULT_RESPONSE_THRESHOLD, Duration::from_nanos),
                },
                _ => ExportKind::Stream,
            },
            accounts: None,
        })
        .collect();
    let imports = nats
        .imports
        .iter()
        .map(|i| {
            let service = i.kind == "service";
            // nats-server's reading: with `local_subject` that is the subject here; without
            // it a stream import's `to` is a prefix, a service import's the exporter's subject.
            let (subject, local) = match (service, i.local_subject.is_empty()) {
                (_, false) => (i.subject.clone(), i.local_subject.clone()),
                (false, true) if !i.to.is_empty() => (
                    i.subject.clone(),
                    format!("{}.{}", i.to.trim_end_matches('.'), i.subject),
                ),
                (true, true) if !i.to.is_empty() => (i.to.clone(), i.subject.clone()),
                _ => (i.subject.clone(), i.subject.clone()),
            };
            Import {
                account: i.account.clone(),
                subject,
                local,
                service,
            }
        })
        .collect();
    let (mut signing_keys, mut scoped_keys) = (Vec::new(), Vec::new());
    for key in &nats.signing_keys {
        match key {
            SigningKey::Key(k) => signing_keys.push(k.clone()),
            SigningKey::Scoped { key, .. } => scoped_keys.push(key.clone()),
        }
    }
    let defaults = Permissions {
        publish: rule(&nats.default_permissions.publish),
        subscribe: rule(&nats.default_permissions.subscribe),
        responses: None,
    };
    let open = defaults.publish.is_open() && defaults.subscribe.is_open();
    let auth = AccountAuth {
        signing_keys,
        scoped_keys,
        revocations: nats.revocations.clone(),
        default_permissions: (!open).then(|| Arc::new(defaults)),
        expires: claims.exp,
        max_connections: limit(l.conn),
        max_subs: limit(l.subs),
        max_payload: limit(l.payload),
    };
    let settings = AccountSettings {
        name: claims.sub.clone(),
        jetstream,
        exports,
        imports,
    };
    Ok((settings, auth))
}
