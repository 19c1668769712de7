//! `authorization { users: [...], default_permissions: {...} }` of a nats-server config file:
//! users with passwords (plain, bcrypt-hashed or none) or nkeys, each with publish and
//! subscribe permissions.
//!
//! A permission is written as nats-server accepts it: a subject (`publish: "orders.>"`), a
//! list of subjects (the allow list), or a block `{ allow: ..., deny: ... }` whose parts are
//! each a subject or a list. `allow_responses` gives temporary publish rights to the reply
//! subjects of messages the user received.

use std::sync::Arc;

use super::values::{duration, invalid, map, string, unsupported};
use super::ConfigFileError;
use crate::conf::{Entry, Item, Map, Value};
use crate::protocol::subject::is_valid_subject;
use crate::server::permissions::{Permissions, ResponsePermission, SubjectRule};
use crate::server::{AccountLimits, UserAuth};

/// An account's `jetstream { … }` limits, with nats-server's key names (`parseJetStreamForAccount`).
/// A negative number means no limit, as there. Any other key is refused: a limit must never be
/// accepted and ignored.
pub(super) fn account_limits(block: &Map) -> Result<AccountLimits, ConfigFileError> {
    let mut limits = AccountLimits::default();
    let number = |entry: &Entry| match entry.item.value {
        Value::Integer(n) => Ok(u64::try_from(n).ok()),
        _ => Err(invalid(entry, "expected a number (or a size)")),
    };
    for entry in block.effective() {
        match entry.key.as_str() {
            "enabled" | "enable" => {}
            "max_streams" | "streams" => limits.max_streams = number(entry)?,
            "max_consumers" | "consumers" => limits.max_consumers = number(entry)?,
            "max_bytes_required" | "max_stream_bytes" | "max_bytes" => match entry.item.value {
                Value::Bool(required) => limits.max_bytes_required = required,
                _ => return Err(invalid(entry, "expected true or false")),
            },
            "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                limits.memory_max_stream_bytes = number(entry)?
            }
            "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                limits.store_max_stream_bytes = number(entry)?
            }
            "max_memory" | "max_mem" | "mem" | "memory" => limits.max_memory = number(entry)?,
            "max_store" | "max_file" | "max_disk" | "store" | "disk" => {
                limits.max_file = number(entry)?
            }
            "max_ack_pending" | "max_ack" => limits.max_ack_pending = number(entry)?,
            _ => {
                return Err(unsupported(
                    entry,
                    "this account JetStream limit is not enforced yet",
                ))
            }
        }
    }
    Ok(limits)
}

/// Reads the `users` list of `block`; users without permissions of their own get the
/// block's `default_permissions`.
pub fn users(entry: &Entry, block: &Map) -> Result<Vec<UserAuth>, ConfigFileError> {
    let defaults = match block.get("default_permissions") {
        Some(d) => Some(Arc::new(parse_permissions(d)?)),
        None => None,
    };
    let defaults = defaults.as_ref();
    let Value::Array(items) = &entry.item.value else {
        return Err(invalid(entry, "expected a list of users"));
    };
    if items.is_empty() {
        return Err(invalid(
            entry,
            "the list of users is empty: nobody could connect",
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let user_entry = as_entry("users", item);
        let block = map(&user_entry)?;
        let (mut user, mut password, mut nkey, mut permissions) = (None, None, None, None);
        for field in block.effective() {
            match field.key.as_str() {
                "user" | "username" => user = Some(string(field)?),
                // A bcrypt hash (`$2a$…`) is checked with bcrypt, as nats-server does.
                "password" | "pass" => password = Some(string(field)?),
                "nkey" => nkey = Some(user_nkey(field)?),
                "permissions" => permissions = Some(Arc::new(parse_permissions(field)?)),
                "account" | "allowed_connection_types" => {
                    return Err(unsupported(
                        field,
                        "accounts and connection types of users are not implemented",
                    ))
                }
                _ => return Err(invalid(field, "unknown key in a user entry")),
            }
        }
        let entry = match (user, nkey) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &user_entry,
                    "a user has a user name or an nkey, not both",
                ))
            }
            (None, Some(nkey)) if password.is_some() => {
                return Err(invalid(
                    &user_entry,
                    format!("nkey user {nkey} cannot have a password"),
                ))
            }
            (None, Some(nkey)) => {
                if out
                    .iter()
                    .any(|u: &UserAuth| u.nkey.as_deref() == Some(&nkey))
                {
                    return Err(invalid(&user_entry, format!("nkey {nkey} is listed twice")));
                }
                UserAuth {
                    nkey: Some(nkey),
                    ..UserAuth::default()
                }
            }
            // nats-server accepts a user without a password: it then connects with its name
            // alone (its password compares as empty).
            (Some(user), None) => {
                if out
                    .iter()
                    .any(|u: &UserAuth| u.nkey.is_none() && u.user == user)
                {
                    return Err(invalid(&user_entry, format!("user {user} is listed twice")));
                }
                UserAuth {
                    user,
                    password: password.unwrap_or_default(),
                    ..UserAuth::default()
                }
            }
            (None, None) => {
                return Err(invalid(
                    &user_entry,
                    "each user needs a user name or an nkey",
                ))
            }
        };
        out.push(UserAuth {
            permissions: permissions.or_else(|| defaults.cloned()),
            ..entry
        });
    }
    Ok(out)
}

/// A user's public nkey: a valid `U…` key, so a typo is an error at start rather than a user
/// who can never log in.
fn user_nkey(entry: &Entry) -> Result<String, ConfigFileError> {
    let key = string(entry)?;
    let valid = key.starts_with('U') && nkeys::KeyPair::from_public_key(&key).is_ok();
    if !valid {
        return Err(invalid(
            entry,
            format!("{key:?} is not a user's public nkey (U…)"),
        ));
    }
    Ok(key)
}

/// Reads a `permissions` (or `default_permissions`) block.
fn parse_permissions(entry: &Entry) -> Result<Permissions, ConfigFileError> {
    let block = map(entry)?;
    let mut perms = Permissions::default();
    for field in block.effective() {
        match field.key.as_str() {
            "publish" | "pub" => perms.publish = rule(field)?,
            "subscribe" | "sub" => perms.subscribe = rule(field)?,
            "allow_responses" | "publish_allow_responses" => perms.responses = responses(field)?,
            _ => return Err(invalid(field, "expected publish or subscribe")),
        }
    }
    // As nats-server: a responder without a publish allow list may publish nothing but
    // responses.
    if perms.responses.is_some() && perms.publish.allow.is_empty() {
        perms.publish.deny = vec![">".to_string()];
    }
    Ok(perms)
}

/// `allow_responses: true | false | { max, expires }`: how many responses each received
/// request may get, and for how long (nats-server's defaults: one, within two minutes).
fn responses(entry: &Entry) -> Result<Option<ResponsePermission>, ConfigFileError> {
    match &entry.item.value {
        Value::Bool(on) => Ok(on.then(ResponsePermission::default)),
        Value::Map(block) => {
            let mut rule = ResponsePermission::default();
            for field in block.effective() {
                match field.key.as_str() {
                    // 0 keeps the default, a negative number has no limit (as nats-server).
                    "max" | "max_msgs" | "max_messages" | "max_responses" => {
                        rule.max = match field.item.value {
                            Value::Integer(n) if n > 0 => n as u64,
                            Value::Integer(0) => ResponsePermission::default().max,
                            Value::Integer(_) => u64::MAX,
                            _ => return Err(invalid(field, "expected a number of responses")),
                        }
                    }
                    "expires" | "expiration" | "ttl" => {
                        let d = duration(field)?;
                        rule.expires = (!d.is_zero()).then_some(d).or(rule.expires);
                    }
                    _ => return Err(invalid(field, "expected max or expires")),
                }
            }
            Ok(Some(rule))
        }
        _ => Err(invalid(entry, "expected true, false or { max, expires }")),
    }
}

/// A subject, a list of subjects (allowed), or `{ allow, deny }`.
fn rule(entry: &Entry) -> Result<SubjectRule, ConfigFileError> {
    match &entry.item.value {
        Value::Map(block) => {
            let mut rule = SubjectRule::default();
            for field in block.effective() {
                match field.key.as_str() {
                    "allow" => rule.allow = subjects(field)?,
                    "deny" => rule.deny = subjects(field)?,
                    _ => return Err(invalid(field, "expected allow or deny")),
                }
            }
            Ok(rule)
        }
        _ => Ok(SubjectRule {
            allow: subjects(entry)?,
            deny: Vec::new(),
        }),
    }
}

/// One subject or a list of them, each a valid subject (wildcards allowed).
fn subjects(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    let texts = match &entry.item.value {
        Value::Array(items) => items
            .iter()
            .map(|item| string(&as_entry(&entry.key, item)))
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![string(entry)?],
    };
    if let Some(bad) = texts.iter().find(|s| !is_valid_subject(s.as_str())) {
        return Err(invalid(entry, format!("{bad:?} is not a valid subject")));
    }
    Ok(texts)
}

/// An array element seen as an entry, so that errors about it point at it.
fn as_entry(key: &str, item: &Item) -> Entry {
    Entry {
        key: key.to_string(),
        key_position: item.position.clone(),
        item: item.clone(),
    }
}
