//! A user's JWT at CONNECT: issued by its account (or one of the account's signing keys),
//! not expired or revoked, and, unless it is a bearer token, presented with the connection's
//! nonce signed by the user's key. Its permissions come from the claim, else the account's
//! defaults. Claim fields jetlog does not enforce make the user refused, with the field named
//! in the log.

use std::sync::Arc;
use std::time::Duration;

use super::account_claims::rule;
use super::Operator;
use crate::server::jwt::{self, UserClaims};
use crate::server::permissions::{Permissions, ResponsePermission};

/// An authenticated JWT user.
#[derive(Debug, Clone)]
pub struct UserGrant {
    pub account: String,
    pub user: String,
    pub permissions: Option<Arc<Permissions>>,
    /// When the user's (or its account's) JWT expires: the connection is closed then.
    pub expires: Option<i64>,
    /// The lower of the user's and the account's limits, where either has one.
    pub max_subs: Option<u64>,
    pub max_payload: Option<u64>,
    /// The account's limit on open connections.
    pub max_account_connections: Option<u64>,
}

/// Refuses what jetlog does not enforce, and a connection the claim does not allow from
/// `peer` or of this type (jetlog's clients are all `STANDARD` NATS connections).
fn refuse_unsupported(claims: &UserClaims, peer: std::net::IpAddr) -> Result<(), String> {
    if claims.times.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err("connect time windows (times) are not enforced by jetlog yet".into());
    }
    let types = claims.allowed_connection_types.as_deref().unwrap_or(&[]);
    if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("STANDARD")) {
        return Err(format!("connection type STANDARD is not among {types:?}"));
    }
    let cidrs = claims.src.as_ref().map(sources).unwrap_or_default();
    if !cidrs.is_empty() && !allowed_source(&cidrs, peer) {
        return Err(format!(
            "{peer} is not in the user's allowed sources {cidrs:?}"
        ));
    }
    Ok(())
}

/// The lower of two optional limits.
fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Whether `ip` is inside one of `cidrs` (`a.b.c.d/n`, an IPv6 prefix, or a bare address).
fn allowed_source(cidrs: &[String], ip: std::net::IpAddr) -> bool {
    cidrs.iter().any(|cidr| {
        let (net, bits) = cidr.split_once('/').unwrap_or((cidr.as_str(), ""));
        let Ok(net) = net.trim().parse::<std::net::IpAddr>() else {
            return false;
        };
        let (a, b, width): (u128, u128, u32) = match (net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
                (u32::from(n).into(), u32::from(i).into(), 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => (n.into(), i.into(), 128),
            _ => return false,
        };
        let bits: u32 = bits.trim().parse().unwrap_or(width).min(width);
        let host_bits = width - bits;
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        a & mask == b & mask
    })
}

/// The CIDRs of a claim's `src`: a list, or one comma-separated string (older claims).
fn sources(src: &serde_json::Value) -> Vec<String> {
    match src {
        serde_json::Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

impl Operator {
    /// Checks a CONNECT's `jwt` and `sig` against the nonce the connection was sent.
    pub fn authorize(
        &self,
        token: &str,
        sig: Option<&str>,
        nonce: &[u8],
        peer: std::net::IpAddr,
    ) -> Result<UserGrant, String> {
        let claims = jwt::decode::<UserClaims>(token).map_err(|e| format!("user JWT: {e}"))?;
        let user = &claims.nats;
        let account = if user.issuer_account.is_empty() {
            claims.iss.clone()
        } else {
            user.issuer_account.clone()
        };
        let auth = self
            .account_auth(&account)
            .ok_or_else(|| format!("account {account} is not known"))?;
        if auth.scoped_keys.contains(&claims.iss) {
            return Err("users of scoped signing keys are not implemented".into());
        }
        let issued_by_account = claims.iss == account && user.issuer_account.is_empty();
        if !issued_by_account && !auth.signing_keys.contains(&claims.iss) {
            return Err(format!(
                "issuer {} is not account {account} or one of its signing keys",
                claims.iss
            ));
        }
        let revoked_at = [claims.sub.as_str(), "*"]
            .iter()
            .filter_map(|k| auth.revocations.get(*k))
            .max()
            .copied();
        if revoked_at.is_some_and(|t| t >= claims.iat) {
            return Err(format!("user {} is revoked", claims.sub));
        }
        if auth.expires > 0 && auth.expires <= jwt::now_secs() {
            return Err(format!("account {account}'s JWT has expired"));
        }
        refuse_unsupported(user, peer)?;
        if !user.bearer_token {
            let signed =
                sig.is_some_and(|s| super::super::auth::signed_nonce(&claims.sub, s, nonce));
            if !signed {
                return Err("the nonce is not signed by the user's key".into());
            }
        }
        let mut permissions = Permissions {
            publish: rule(&user.publish),
            subscribe: rule(&user.subscribe),
            responses: user.resp.as_ref().map(|r| ResponsePermission {
                max: u64::try_from(r.max)
                    .ok()
                    .filter(|m| *m > 0)
                    .unwrap_or(u64::MAX),
                expires: u64::try_from(r.ttl)
                    .ok()
                    .filter(|t| *t > 0)
                    .map(Duration::from_nanos),
            }),
        };
        let given = !(permissions.publish.is_open() && permissions.subscribe.is_open());
        if permissions.responses.is_some() && permissions.publish.allow.is_empty() {
            permissions.publish.deny = vec![">".into()];
        }
        let permissions = match (
            given || permissions.responses.is_some(),
            &auth.default_permissions,
        ) {
            (true, _) => Some(Arc::new(permissions)),
            (false, defaults) => defaults.clone(),
        };
        let expires = [claims.exp, auth.expires]
            .into_iter()
            .filter(|t| *t > 0)
            .min();
        let user_limit = |v: i64| u64::try_from(v).ok();
        Ok(UserGrant {
            max_subs: lower(user_limit(user.subs), auth.max_subs),
            max_payload: lower(user_limit(user.payload), auth.max_payload),
            max_account_connections: auth.max_connections,
            account,
            user: if claims.name.is_empty() {
                claims.sub.clone()
            } else {
                claims.name.clone()
            },
            permissions,
            expires,
        })
    }
}
