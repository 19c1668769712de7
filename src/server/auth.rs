//! Checking a client's CONNECT credentials against the configured ones.
//!
//! Secrets are compared in constant time so that response timing does not reveal how many
//! leading bytes of a guess were right.

use std::sync::Arc;

use super::config::AuthConfig;
use super::permissions::Permissions;
use crate::protocol::connect::ConnectOptions;

/// Whether the credentials in `opts` satisfy `auth`.
pub fn is_authorized(auth: &AuthConfig, opts: &ConnectOptions) -> bool {
    authorize(auth, opts).is_some()
}

/// Checks the credentials in `opts`: `None` if they do not satisfy `auth`, else the
/// permissions of the user they name (`Some(None)`: no restrictions).
pub fn authorize(auth: &AuthConfig, opts: &ConnectOptions) -> Option<Option<Arc<Permissions>>> {
    if let AuthConfig::Users(users) = auth {
        let user = opts.user.as_deref().unwrap_or("").as_bytes();
        let pass = opts.pass.as_deref().unwrap_or("").as_bytes();
        // Every entry is compared, whatever matched, so timing tells nothing about the list.
        let mut found = None;
        for u in users {
            let ok = constant_time_eq(user, u.user.as_bytes())
                & constant_time_eq(pass, u.password.as_bytes());
            if ok && found.is_none() {
                found = Some((u.permissions.clone(), u.password.is_empty()));
            }
        }
        // A user configured without a password connects with its name alone, as with
        // nats-server, which compares the absent password as an empty one.
        return found
            .filter(|(_, no_password)| opts.user.is_some() && (opts.pass.is_some() || *no_password))
            .map(|(permissions, _)| permissions);
    }
    check_single(auth, opts).then_some(None)
}

fn check_single(auth: &AuthConfig, opts: &ConnectOptions) -> bool {
    match auth {
        AuthConfig::Users(_) => false,
        AuthConfig::UserPassword { user, password } => {
            let user_ok = constant_time_eq(
                opts.user.as_deref().unwrap_or("").as_bytes(),
                user.as_bytes(),
            );
            let pass_ok = constant_time_eq(
                opts.pass.as_deref().unwrap_or("").as_bytes(),
                password.as_bytes(),
            );
            opts.user.is_some() & opts.pass.is_some() & user_ok & pass_ok
        }
        AuthConfig::Token(token) => {
            let ok = constant_time_eq(
                opts.auth_token.as_deref().unwrap_or("").as_bytes(),
                token.as_bytes(),
            );
            opts.auth_token.is_some() & ok
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
        assert!(is_authorized(&auth, &opts(Some("u"), Some("p"), None)));
        assert!(!is_authorized(&auth, &opts(Some("u"), Some("x"), None)));
        assert!(!is_authorized(&auth, &opts(Some("u"), None, None)));
        assert!(!is_authorized(&auth, &opts(None, None, Some("p"))));
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
            },
            UserAuth {
                user: "app".into(),
                password: "b".into(),
                permissions: Some(limited.clone()),
            },
        ]);
        assert_eq!(
            authorize(&auth, &opts(Some("admin"), Some("a"), None)),
            Some(None)
        );
        assert_eq!(
            authorize(&auth, &opts(Some("app"), Some("b"), None)),
            Some(Some(limited))
        );
        assert_eq!(authorize(&auth, &opts(Some("app"), Some("a"), None)), None);
        assert_eq!(authorize(&auth, &opts(None, None, Some("b"))), None);
    }

    #[test]
    fn a_user_without_a_password_needs_its_name_and_no_other_password() {
        use crate::server::config::UserAuth;
        let auth = AuthConfig::Users(vec![UserAuth {
            user: "nopass".into(),
            password: String::new(),
            permissions: None,
        }]);
        assert!(is_authorized(&auth, &opts(Some("nopass"), None, None)));
        assert!(is_authorized(&auth, &opts(Some("nopass"), Some(""), None)));
        assert!(!is_authorized(
            &auth,
            &opts(Some("nopass"), Some("x"), None)
        ));
        assert!(!is_authorized(&auth, &opts(None, None, None)));
        assert!(!is_authorized(&auth, &opts(Some("other"), None, None)));
    }

    #[test]
    fn token_must_match() {
        let auth = AuthConfig::Token("s3cret".into());
        assert!(is_authorized(&auth, &opts(None, None, Some("s3cret"))));
        assert!(!is_authorized(&auth, &opts(None, None, Some("s3cre"))));
        assert!(!is_authorized(&auth, &opts(None, None, None)));
    }

    #[test]
    fn equal_lengths_and_bytes_are_required() {
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"a\0"));
        assert!(!constant_time_eq(b"ab", b"ac"));
    }
}
