//! `accounts { <name>: { users, jetstream, exports, imports } }` and `system_account`: each
//! account's users (who then belong to it), its JetStream limits, and what it shares.
//!
//! An export is `{ stream: <subject> }` or `{ service: <subject>, response_type,
//! response_threshold }`, optionally restricted with `accounts: [<names>]`. An import is
//! `{ stream: { account, subject }, prefix | to }` or `{ service: { account, subject }, to }`.
//! Whether imports and exports fit together is checked once every account is read.

use std::time::Duration;

use super::users::{account_limits, users};
use super::values::{duration, invalid, map, string, unsupported};
use super::ConfigFileError;
use crate::conf::{Entry, Map, Value};
use crate::server::accounts::settings::{
    AccountSettings, Export, ExportKind, Import, ResponseType, DEFAULT_RESPONSE_THRESHOLD,
};
use crate::server::UserAuth;

/// Every account of the block, and their users (each naming its account).
pub fn accounts(entry: &Entry) -> Result<(Vec<AccountSettings>, Vec<UserAuth>), ConfigFileError> {
    let block = map(entry)?;
    let mut accounts: Vec<AccountSettings> = Vec::new();
    let mut all_users: Vec<UserAuth> = Vec::new();
    for account in block.effective() {
        let name = account.key.clone();
        if accounts.iter().any(|a| a.name == name) {
            return Err(invalid(
                account,
                format!("account {name:?} is defined twice"),
            ));
        }
        let mut settings = AccountSettings {
            name: name.clone(),
            ..AccountSettings::default()
        };
        // `A: {}` and `A: { … }` are accounts; nats-server also takes a bare name list.
        let fields = match &account.item.value {
            Value::Map(fields) => fields,
            _ => return Err(invalid(account, "expected a block describing the account")),
        };
        for field in fields.effective() {
            match field.key.as_str() {
                "users" => {
                    for mut user in users(field, fields)? {
                        if all_users.iter().any(|u| same_user(u, &user)) {
                            return Err(duplicate_user(field, &user));
                        }
                        user.account = Some(name.clone());
                        all_users.push(user);
                    }
                }
                "default_permissions" => {}
                "jetstream" => settings.jetstream = jetstream(field)?,
                "exports" => settings.exports = list(field, export)?,
                "imports" => settings.imports = list(field, import)?,
                "nkey" | "mappings" | "limits" => {
                    return Err(unsupported(
                        field,
                        "this account feature is not implemented",
                    ))
                }
                _ => return Err(invalid(field, "unknown key in an account")),
            }
        }
        accounts.push(settings);
    }
    crate::server::accounts::settings::check(&accounts)
        .map_err(|e| invalid(entry, e.to_string()))?;
    Ok((accounts, all_users))
}

/// nats-server's words for a user listed in two places.
pub(super) fn duplicate_user(entry: &Entry, user: &UserAuth) -> ConfigFileError {
    match &user.nkey {
        Some(nkey) => invalid(entry, format!("Duplicate nkey {nkey:?} detected")),
        None => invalid(entry, format!("Duplicate user {:?} detected", user.user)),
    }
}

pub(super) fn same_user(a: &UserAuth, b: &UserAuth) -> bool {
    match (&a.nkey, &b.nkey) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.user == b.user,
        _ => false,
    }
}

/// `jetstream: enabled | disabled | true | false | { limits }`.
fn jetstream(entry: &Entry) -> Result<Option<crate::server::AccountLimits>, ConfigFileError> {
    match &entry.item.value {
        Value::Bool(on) => Ok(on.then(Default::default)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "enable" => Ok(Some(Default::default())),
            "disabled" | "disable" => Ok(None),
            _ => Err(invalid(
                entry,
                "expected enabled, disabled or a block of limits",
            )),
        },
        Value::Map(block) => account_limits(block).map(Some),
        _ => Err(invalid(
            entry,
            "expected enabled, disabled or a block of limits",
        )),
    }
}

fn list<T>(
    entry: &Entry,
    each: fn(&Entry, &Map) -> Result<T, ConfigFileError>,
) -> Result<Vec<T>, ConfigFileError> {
    let Value::Array(items) = &entry.item.value else {
        return Err(invalid(entry, "expected a list"));
    };
    items
        .iter()
        .map(|item| {
            let element = Entry {
                key: entry.key.clone(),
                key_position: item.position.clone(),
                item: item.clone(),
            };
            let block = map(&element)?;
            each(&element, block)
        })
        .collect()
}

fn export(entry: &Entry, block: &Map) -> Result<Export, ConfigFileError> {
    let (mut subject, mut service, mut accounts) = (None, false, None);
    let (mut response, mut threshold) = (None, None);
    for field in block.effective() {
        match field.key.as_str() {
            "stream" => subject = Some(string(field)?),
            "service" => {
                subject = Some(string(field)?);
                service = true;
            }
            "accounts" => accounts = Some(names(field)?),
            "response" | "response_type" => {
                let text = string(field)?;
                response = Some(ResponseType::parse(&text).ok_or_else(|| {
                    invalid(
                        field,
                        format!("Unknown response type: {text:?} (singleton, stream or chunked)"),
                    )
                })?);
            }
            "threshold" | "response_threshold" | "response_times" => {
                threshold = Some(positive(field)?)
            }
            "latency" | "account_token_position" | "allow_trace" => {
                return Err(unsupported(field, "this export option is not implemented"))
            }
            _ => {
                return Err(invalid(
                    field,
                    "expected stream or service, accounts, response_type or response_threshold",
                ))
            }
        }
    }
    let subject =
        subject.ok_or_else(|| invalid(entry, "an export needs a stream or a service subject"))?;
    if !service && (response.is_some() || threshold.is_some()) {
        return Err(invalid(
            entry,
            "response_type and response_threshold are for service exports",
        ));
    }
    let kind = match service {
        true => ExportKind::Service {
            response: response.unwrap_or_default(),
            threshold: threshold.unwrap_or(DEFAULT_RESPONSE_THRESHOLD),
        },
        false => ExportKind::Stream,
    };
    Ok(Export {
        subject,
        kind,
        accounts,
    })
}

fn positive(entry: &Entry) -> Result<Duration, ConfigFileError> {
    match duration(entry)? {
        d if d.is_zero() => Err(invalid(entry, "the response threshold must be above 0")),
        d => Ok(d),
    }
}

fn names(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    let Value::Array(items) = &entry.item.value else {
        return Err(invalid(entry, "expected a list of account names"));
    };
    items
        .iter()
        .map(|item| match &item.value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(invalid(entry, "each account is named by a string")),
        })
        .collect()
}

fn import(entry: &Entry, block: &Map) -> Result<Import, ConfigFileError> {
    let (mut source, mut prefix, mut to) = (None, None, None);
    for field in block.effective() {
        match field.key.as_str() {
            "stream" => source = Some((field, false)),
            "service" => source = Some((field, true)),
            "prefix" => prefix = Some(string(field)?),
            "to" => to = Some(string(field)?),
            "share" | "allow_trace" => {
                return Err(unsupported(field, "this import option is not implemented"))
            }
            _ => return Err(invalid(field, "expected stream or service, prefix or to")),
        }
    }
    let (field, service) =
        source.ok_or_else(|| invalid(entry, "an import needs a stream or a service"))?;
    let from = map(field)?;
    let (mut account, mut subject) = (None, None);
    for part in from.effective() {
        match part.key.as_str() {
            "account" => account = Some(string(part)?),
            "subject" => subject = Some(string(part)?),
            _ => return Err(invalid(part, "expected account and subject")),
        }
    }
    let account = account.ok_or_else(|| invalid(field, "the import names no account"))?;
    let subject = subject.ok_or_else(|| invalid(field, "the import names no subject"))?;
    let local = match (service, prefix, to) {
        (false, Some(_), Some(_)) => {
            return Err(invalid(
                entry,
                "Stream import can not have a 'prefix' and a 'to' property",
            ))
        }
        (true, Some(_), _) => return Err(invalid(entry, "service imports take to, not prefix")),
        (false, Some(prefix), None) => {
            if prefix.split('.').any(|t| t == "*" || t == ">") {
                return Err(invalid(
                    entry,
                    "stream import prefix can not contain wildcard tokens",
                ));
            }
            format!("{}.{subject}", prefix.trim_end_matches('.'))
        }
        (_, None, Some(to)) => to,
        (_, None, None) => subject.clone(),
    };
    crate::server::accounts::check_mapping(&subject, &local, service)
        .map_err(|e| invalid(entry, e))?;
    Ok(Import {
        account,
        subject,
        local,
        service,
    })
}
