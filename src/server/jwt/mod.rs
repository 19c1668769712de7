//! NATS JWTs (operator, account and user claims, as `nsc` and `nats auth` issue them): decoding
//! and the checks every claim must pass before anything in it is believed: the header says
//! `ed25519-nkey` (or v1's `ed25519`), the signature verifies with the issuer's public nkey,
//! the subject and issuer are keys of the right kinds, and the claim is not expired.

mod claims;

pub use claims::{
    AccountClaims, AccountLimitsClaim, ExportClaim, ImportClaim, OperatorClaims, PermissionClaim,
    ResponsePermissionClaim, SigningKey, UserClaims,
};

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Why a JWT is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT (three base64url parts)")]
    Shape,
    #[error("unsupported JWT header (expected alg ed25519-nkey)")]
    Header,
    #[error("claims are not valid JSON: {0}")]
    Claims(String),
    #[error("bad signature")]
    Signature,
    #[error("{0} is not a valid {1} public key")]
    Key(String, &'static str),
    #[error("expected a {expected} JWT, found {found:?}")]
    Kind {
        expected: &'static str,
        found: String,
    },
    #[error("JWT expired")]
    Expired,
    #[error("JWT is not yet valid")]
    NotYetValid,
    #[error("issuer {0} is not trusted")]
    Untrusted(String),
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: String,
}

/// The fields every claim has.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims<T> {
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub iat: i64,
    #[serde(default)]
    pub exp: i64,
    #[serde(default)]
    pub nbf: i64,
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub name: String,
    pub nats: T,
}

fn decode_part(part: &str) -> Result<Vec<u8>, JwtError> {
    let engines = [
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(part).ok())
        .ok_or(JwtError::Shape)
}

/// The seconds since the Unix epoch now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `key` is a public nkey whose first letter is `prefix` (O operator, A account,
/// U user).
pub fn is_key(key: &str, prefix: char) -> bool {
    key.starts_with(prefix) && nkeys::KeyPair::from_public_key(key).is_ok()
}

/// Decodes `token`, verifies its signature with its own `iss`, and checks its type and time.
/// Who may issue it is the caller's question.
pub fn decode<T: DeserializeOwned + ClaimKind>(token: &str) -> Result<Claims<T>, JwtError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let head: Header =
        serde_json::from_slice(&decode_part(header)?).map_err(|_| JwtError::Header)?;
    if !head.alg.eq_ignore_ascii_case("ed25519-nkey") && !head.alg.eq_ignore_ascii_case("ed25519") {
        return Err(JwtError::Header);
    }
    let raw = decode_part(body)?;
    let kind: KindProbe =
        serde_json::from_slice(&raw).map_err(|e| JwtError::Claims(e.to_string()))?;
    if kind.nats.kind != T::KIND {
        return Err(JwtError::Kind {
            expected: T::KIND,
            found: kind.nats.kind,
        });
    }
    let claims: Claims<T> =
        serde_json::from_slice(&raw).map_err(|e| JwtError::Claims(e.to_string()))?;
    let signature = decode_part(signature)?;
    let issuer = nkeys::KeyPair::from_public_key(&claims.iss)
        .map_err(|_| JwtError::Key(claims.iss.clone(), "issuer"))?;
    let signed = &token[..header.len() + 1 + body.len()];
    issuer
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwtError::Signature)?;
    if !is_key(&claims.sub, T::SUBJECT_PREFIX) {
        return Err(JwtError::Key(claims.sub.clone(), T::KIND));
    }
    let now = now_secs();
    if claims.exp > 0 && claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.nbf > 0 && claims.nbf > now {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

#[derive(Deserialize)]
struct KindProbe {
    nats: KindField,
}

#[derive(Deserialize)]
struct KindField {
    #[serde(rename = "type", default)]
    kind: String,
}

/// What a claim type is called in `nats.type`, and the first letter of its subject's key.
pub trait ClaimKind {
    const KIND: &'static str;
    const SUBJECT_PREFIX: char;
}

impl ClaimKind for OperatorClaims {
    const KIND: &'static str = "operator";
    const SUBJECT_PREFIX: char = 'O';
}

impl ClaimKind for AccountClaims {
    const KIND: &'static str = "account";
    const SUBJECT_PREFIX: char = 'A';
}

impl ClaimKind for UserClaims {
    const KIND: &'static str = "user";
    const SUBJECT_PREFIX: char = 'U';
}

/// Encodes and signs a claim (`claims` is the JSON object, `iss` is set from `signer`): what
/// the tests use to issue operators, accounts and users, as `nsc` would.
pub fn encode(mut claims: serde_json::Value, signer: &nkeys::KeyPair) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if let Some(map) = claims.as_object_mut() {
        map.insert("iss".into(), signer.public_key().into());
        map.entry("iat").or_insert(now_secs().into());
        map.entry("jti")
            .or_insert(crate::server::random_chars(16).into());
    }
    let header = engine.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = engine.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let signature = signer.sign(signed.as_bytes()).unwrap_or_default();
    format!("{signed}.{}", engine.encode(signature))
}

#[cfg(test)]
mod tests;
