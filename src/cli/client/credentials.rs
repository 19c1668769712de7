//! Credentials a server URL carries (`nats://user:pass@host`, `nats://token@host`), as natscli
//! and the Go client read them, and URLs with the secret taken out for anything printed: a
//! password never appears in an error or a log line.

use anyhow::{anyhow, Result};

/// What the userinfo of a URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAuth {
    UserPassword { user: String, password: String },
    Token(String),
}

/// Splits the credentials off one server URL: the URL without them, and what they were.
pub fn split_url(text: &str) -> Result<(String, Option<UrlAuth>)> {
    let Ok(mut url) = url::Url::parse(text) else {
        // Not a URL with a scheme (`127.0.0.1:4222`): nothing to split; the client parses it.
        return Ok((text.to_string(), None));
    };
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| anyhow!("the credentials in {} are not UTF-8", redact(text)))
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode).transpose()?;
    let auth = match (user.is_empty(), password) {
        (true, None) => None,
        (false, None) => Some(UrlAuth::Token(user)),
        (_, Some(password)) => Some(UrlAuth::UserPassword { user, password }),
    };
    if auth.is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    Ok((url.to_string(), auth))
}

/// `text` (one URL or several, comma separated) with every password or token replaced by
/// `xxxxx`, for messages.
pub fn redact(text: &str) -> String {
    text.split(',')
        .map(|one| match url::Url::parse(one.trim()) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("xxxxx"));
                url.to_string()
            }
            Ok(mut url) if !url.username().is_empty() => {
                let _ = url.set_username("xxxxx");
                url.to_string()
            }
            _ => one.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_password_and_token_come_out_of_the_url() {
        let (url, auth) = split_url("nats://alice:s%40cret@127.0.0.1:4222").unwrap();
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert_eq!(
            auth,
            Some(UrlAuth::UserPassword {
                user: "alice".into(),
                password: "s@cret".into()
            })
        );
        let (url, auth) = split_url("tls://t0ken@localhost:4443").unwrap();
        assert_eq!(url, "tls://localhost:4443");
        assert_eq!(auth, Some(UrlAuth::Token("t0ken".into())));
        let (url, auth) = split_url("nats://127.0.0.1:4222").unwrap();
        assert_eq!((url.as_str(), auth), ("nats://127.0.0.1:4222", None));
        assert_eq!(split_url("127.0.0.1:4222").unwrap().0, "127.0.0.1:4222");
    }

    #[test]
    fn secrets_never_survive_redaction() {
        let shown = redact("nats://alice:s3cret@a:4222, nats://t0ken@b:4222,nats://c:4222");
        assert_eq!(
            shown,
            "nats://alice:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222"
        );
        assert!(!shown.contains("s3cret") && !shown.contains("t0ken"));
    }
}
