//! Claims are believed only when signed by their issuer, of the right kind, and in time.

use serde_json::json;

use super::*;

fn user(account: &nkeys::KeyPair, extra: serde_json::Value) -> String {
    let me = nkeys::KeyPair::new_user();
    let mut claims =
        json!({"sub": me.public_key(), "name": "u", "nats": {"type": "user", "version": 2}});
    if let (Some(map), Some(more)) = (claims.as_object_mut(), extra.as_object()) {
        map.extend(more.clone());
    }
    encode(claims, account)
}

#[test]
fn a_signed_claim_is_read_back() {
    let account = nkeys::KeyPair::new_account();
    let token = user(&account, json!({}));
    let claims: Claims<UserClaims> = decode(&token).expect("valid");
    assert_eq!(claims.iss, account.public_key());
    assert_eq!(claims.nats.subs, -1);
}

#[test]
fn tampering_kind_and_time_are_caught() {
    let account = nkeys::KeyPair::new_account();
    let token = user(&account, json!({}));
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut body: serde_json::Value =
        serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    body["name"] = "someone else".into();
    parts[1] = engine.encode(body.to_string());
    assert_eq!(
        decode::<UserClaims>(&parts.join(".")).unwrap_err(),
        JwtError::Signature
    );
    assert!(matches!(
        decode::<AccountClaims>(&token).unwrap_err(),
        JwtError::Kind { .. }
    ));
    let expired = user(&account, json!({"exp": now_secs() - 10}));
    assert_eq!(
        decode::<UserClaims>(&expired).unwrap_err(),
        JwtError::Expired
    );
    assert_eq!(decode::<UserClaims>("a.b").unwrap_err(), JwtError::Shape);
}
