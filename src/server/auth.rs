//! Checking a client's CONNECT credentials against the configured ones.
//!
//! Plain secrets are compared in constant time so that response timing does not reveal how
//! many leading bytes of a guess were right. A stored password or token that is a bcrypt hash
//! (`$2a$…`, as nats-server's `isBcrypt` recognises them) is checked with bcrypt, off the
//! async runtime's worker (it takes tens of milliseconds by design). nkey users prove who
//! they are by signing the nonce their connection's INFO carried with their Ed25519 key.

use std::sync::Arc;

use super::config::{AuthConfig, UserAuth};
use super::permissions::Permissions;
use crate::protocol::connect::ConnectOptions;

/// Raw bytes of a nonce; sent base64url-encoded (15 characters), as nats-server does.
const NONCE_RAW_BYTES: usize = 11;

/// What an authenticated client is given: its permissions (`None`: no restrictions) and its
/// account (`None`: the global account).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub permissions: Option<Arc<Permissions>>,
    pub account: Option<String>,
    /// The user's name (or nkey); `None` for a single user/password or token.
    pub user: Option<String>,
}

impl Grant {
    fn of(user: &UserAuth) -> Self {
        Self {
            permissions: user.permissions.clone(),
            account: user.account.clone(),
            user: Some(user.nkey.clone().unwrap_or_else(|| user.user.clone())),
        }
    }
}

/// Whether the credentials in `opts` satisfy `auth` (for a connection whose INFO carried
/// `nonce`).
pub fn is_authorized(auth: &AuthConfig, opts: &ConnectOptions, nonce: &[u8]) -> bool {
    authorize(auth, opts, nonce).is_some()
}

/// Checks the credentials in `opts`: `None` if they do not satisfy `auth`, else what the
/// user they name is granted. `nonce` is what the
/// connection's INFO carried, which an nkey user must have signed.
pub fn authorize(auth: &AuthConfig, opts: &ConnectOptions, nonce: &[u8]) -> Option<Grant> {
    match auth {
        AuthConfig::Users(users) => match opts.nkey.as_deref() {
            Some(nkey) => {
                let user = users.iter().find(|u| u.nkey.as_deref() == Some(nkey))?;
                signed_nonce(nkey, opts.sig.as_deref()?, nonce).then(|| Grant::of(user))
            }
            None => password_user(users, opts).map(Grant::of),
        },
        _ => check_single(auth, opts).then(Grant::default),
    }
}

/// `verify_and_map`: the user whose name is the first of the client certificate's names that
/// one has (e-mail, DNS name, URI, subject; see `cert_identity`). No password is asked: the
/// verified certificate is the credential.
pub fn authorize_mapped(auth: &AuthConfig, identities: &[String]) -> Option<Grant> {
    let AuthConfig::Users(users) = auth else {
        return None;
    };
    identities.iter().find_map(|name| {
        users
            .iter()
            .find(|u| u.nkey.is_none() && u.user == *name)
            .map(Grant::of)
    })
}

/// `no_auth_user`: the grant of the user (by name or nkey) a client without credentials
/// is taken for; `None` if there is no such user.
pub fn authorize_default(auth: &AuthConfig, name: &str) -> Option<Grant> {
    let AuthConfig::Users(users) = auth else {
        return None;
    };
    users
        .iter()
        .find(|u| u.nkey.as_deref() == Some(name) || (u.nkey.is_none() && u.user == name))
        .map(Grant::of)
}

/// Whether CONNECT carries no credentials at all.
pub fn presents_nothing(opts: &ConnectOptions) -> bool {
    opts.user.is_none() && opts.pass.is_none() && opts.auth_token.is_none() && opts.nkey.is_none()
}

/// The user of the list whose name and password `opts` carry. Every name is compared, so
/// timing says nothing about where in the list a name is; then one password.
fn password_user<'a>(users: &'a [UserAuth], opts: &ConnectOptions) -> Option<&'a UserAuth> {
    let name = opts.user.as_deref()?.as_bytes();
    let mut found = None;
    for u in users.iter().filter(|u| u.nkey.is_none()) {
        if constant_time_eq(name, u.user.as_bytes()) && found.is_none() {
            found = Some(u);
        }
    }
    let user = found?;
    // A user configured without a password connects with its name alone, as with
    // nats-server, which compares the absent password as an empty one.
    let given = opts.pass.as_deref().unwrap_or("");
    secret_matches(&user.password, given).then_some(user)
}

/// Whether `sig` (base64url, or standard base64 as nats-server also takes) is `nkey`'s
/// signature of `nonce`.
pub(super) fn signed_nonce(nkey: &str, sig: &str, nonce: &[u8]) -> bool {
    use base64::Engine;
    let engines = [
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
    ];
    let Some(sig) = engines.iter().find_map(|e| e.decode(sig).ok()) else {
        return false;
    };
    let Ok(public) = nkeys::KeyPair::from_public_key(nkey) else {
        return false;
    };
    !nonce.is_empty() && public.verify(nonce, &sig).is_ok()
}

/// A fresh nonce for one connection's INFO: 11 random bytes, base64url without padding.
pub fn new_nonce() -> String {
    use base64::Engine;
    let mut raw = [0u8; NONCE_RAW_BYTES];
    // The system's generator does not fail on the platforms we run on; should it, the
    // nonce is still unique per connection through the clock, though no longer secret.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        raw.copy_from_slice(&now.to_le_bytes()[..NONCE_RAW_BYTES]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Whether a stored password or token is a bcrypt hash (nats-server: `^\$2[abxy]\$\d{2}\$`).
pub fn is_bcrypt(stored: &str) -> bool {
    let b = stored.as_bytes();
    b.len() > 7
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Compares what the client gave with what is stored: bcrypt for a hash, else in constant
/// time.
pub(crate) fn secret_matches(stored: &str, given: &str) -> bool {
    if !is_bcrypt(stored) {
        return constant_time_eq(given.as_bytes(), stored.as_bytes());
    }
    off_the_runtime(|| bcrypt::verify(given, stored).unwrap_or(false))
}

/// Runs `work` that blocks for a while without stalling the other connections served by
/// this runtime worker (`block_in_place` needs the multi-threaded runtime the server uses).
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn check_single(auth: &AuthConfig, opts: &ConnectOptions) -> bool {
    match auth {
        AuthConfig::Users(_) => false,
        AuthConfig::UserPassword { user, password } => {
            let user_ok = constant_time_eq(
                opts.user.as_deref().unwrap_or("").as_bytes(),
                user.as_bytes(),
            );
            let pass_ok =
                opts.pass.is_some() && secret_matches(password, opts.pass.as_deref().unwrap_or(""));
            opts.user.is_some() & user_ok & pass_ok
        }
        AuthConfig::Token(token) => {
            opts.auth_token.is_some()
                && secret_matches(token, opts.auth_token.as_deref().unwrap_or(""))
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            user: user.map(str::to_string),
            pass: pass.map(str::to_string),
            auth_token: token.map(str::to_string),
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn user_and_password_must_both_match() {
        let auth = AuthConfig::UserPassword {
            user: "u".into(),
            password: "p".into(),
        };
        assert!(is_authorized(&auth, &opts(Some("u"), Some("p"), None), b""));
        assert!(!is_authorized(
            &auth,
            &opts(Some("u"), Some("x"), None),
            b""
        ));
        assert!(!is_authorized(&auth, &opts(Some("u"), None, None), b""));
        assert!(!is_authorized(&auth, &opts(None, None, Some("p")), b""));
    }

    #[test]
    fn a_user_of_the_list_gets_its_own_permissions() {
        use crate::server::config::UserAuth;
        let limited = Arc::new(Permissions::default());
        let auth = AuthConfig::Users(vec![
            UserAuth {
                user: "admin".into(),
                password: "a".into(),
                permissions: None,
                ..UserAuth::default()
            },
            UserAuth {
                user: "app".into(),
                password: "b".into(),
                permissions: Some(limited.clone()),
                ..UserAuth::default()
            },
        ]);
        assert_eq!(
            authorize(&auth, &opts(Some("admin"), Some("a"), None), b"").map(|g| g.permissions),
            Some(None)
        );
        assert_eq!(
            authorize(&auth, &opts(Some("app"), Some("b"), None), b"").map(|g| g.permissions),
            Some(Some(limited))
        );
        assert_eq!(
            authorize(&auth, &opts(Some("app"), Some("a"), None), b""),
            None
        );
        assert_eq!(authorize(&auth, &opts(None, None, Some("b")), b""), None);
    }

    #[test]
    fn a_user_without_a_password_needs_its_name_and_no_other_password() {
        use crate::server::config::UserAuth;
        let auth = AuthConfig::Users(vec![UserAuth {
            user: "nopass".into(),
            password: String::new(),
            permissions: None,
            ..UserAuth::default()
        }]);
        assert!(is_authorized(&auth, &opts(Some("nopass"), None, None), b""));
        assert!(is_authorized(
            &auth,
            &opts(Some("nopass"), Some(""), None),
            b""
        ));
        assert!(!is_authorized(
            &auth,
            &opts(Some("nopass"), Some("x"), None),
            b""
        ));
        assert!(!is_authorized(&auth, &opts(None, None, None), b""));
        assert!(!is_authorized(&auth, &opts(Some("other"), None, None), b""));
    }

    #[test]
    fn an_nkey_user_must_sign_this_connections_nonce() {
        use crate::server::config::UserAuth;
        let key = nkeys::KeyPair::new_user();
        let public = key.public_key();
        let auth = AuthConfig::Users(vec![UserAuth {
            nkey: Some(public.clone()),
            ..UserAuth::default()
        }]);
        let nonce = new_nonce();
        assert_eq!(nonce.len(), 15);
        assert_ne!(nonce, new_nonce());
        let signed = |data: &[u8]| {
            use base64::Engine;
            let sig = key.sign(data).expect("sign");
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        };
        let with = |nkey: &str, sig: Option<String>| ConnectOptions {
            nkey: Some(nkey.to_string()),
            sig,
            ..ConnectOptions::default()
        };
        let good = with(&public, Some(signed(nonce.as_bytes())));
        assert!(is_authorized(&auth, &good, nonce.as_bytes()));
        // A signature of another connection's nonce (a replay) fails, as do no signature,
        // garbage, and another key's signature of the right nonce.
        assert!(!is_authorized(&auth, &good, new_nonce().as_bytes()));
        assert!(!is_authorized(
            &auth,
            &with(&public, None),
            nonce.as_bytes()
        ));
        assert!(!is_authorized(
            &auth,
            &with(&public, Some("!!".into())),
            nonce.as_bytes()
        ));
        let other = nkeys::KeyPair::new_user();
        let forged = with(&public, {
            use base64::Engine;
            let sig = other.sign(nonce.as_bytes()).expect("sign");
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig))
        });
        assert!(!is_authorized(&auth, &forged, nonce.as_bytes()));
        // The nkey user has no name or password to log in with.
        assert!(!is_authorized(
            &auth,
            &opts(Some(""), None, None),
            nonce.as_bytes()
        ));
    }

    #[test]
    fn bcrypt_hashes_are_checked_with_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        assert!(is_bcrypt(&hash) && hash.starts_with("$2b$04$"));
        assert!(!is_bcrypt("$2plain") && !is_bcrypt("plain") && !is_bcrypt("$2a$1x$abc"));
        let auth = AuthConfig::UserPassword {
            user: "u".into(),
            password: hash.clone(),
        };
        assert!(is_authorized(
            &auth,
            &opts(Some("u"), Some("s3cret"), None),
            b""
        ));
        assert!(!is_authorized(
            &auth,
            &opts(Some("u"), Some(&hash), None),
            b""
        ));
        assert!(!is_authorized(&auth, &opts(Some("u"), None, None), b""));
        let token = AuthConfig::Token(hash);
        assert!(is_authorized(
            &token,
            &opts(None, None, Some("s3cret")),
            b""
        ));
        assert!(!is_authorized(
            &token,
            &opts(None, None, Some("wrong")),
            b""
        ));
    }

    #[test]
    fn token_must_match() {
        let auth = AuthConfig::Token("s3cret".into());
        assert!(is_authorized(&auth, &opts(None, None, Some("s3cret")), b""));
        assert!(!is_authorized(&auth, &opts(None, None, Some("s3cre")), b""));
        assert!(!is_authorized(&auth, &opts(None, None, None), b""));
    }

    #[test]
    fn equal_lengths_and_bytes_are_required() {
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"a\0"));
        assert!(!constant_time_eq(b"ab", b"ac"));
    }
}
