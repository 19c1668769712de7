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
}

fn refuse_unsupported(claims: &UserClaims) -> Result<(), String> {
    let limits = [
        ("subs", claims.subs),
        ("data", claims.data),
        ("payload", claims.payload),
    ];
    if let Some((name, _)) = limits.iter().find(|(_, v)| *v != -1) {
        return Err(format!(
            "the user's {name} limit is not enforced by jetlog yet"
        ));
    }
    if claims.src.as_ref().is_some_and(|s| !s.is_null() && s != "") {
        return Err("source network restrictions (src) are not enforced by jetlog yet".into());
    }
    if claims.times.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err("connect time windows (times) are not enforced by jetlog yet".into());
    }
    if claims
        .allowed_connection_types
        .as_ref()
        .is_some_and(|t| !t.is_empty())
    {
        return Err("allowed_connection_types is not enforced by jetlog yet".into());
    }
    Ok(())
}

impl Operator {
    /// Checks a CONNECT's `jwt` and `sig` against the nonce the connection was sent.
    pub fn authorize(
        &self,
        token: &str,
        sig: Option<&str>,
        nonce: &[u8],
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
        refuse_unsupported(user)?;
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
        Ok(UserGrant {
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
