//! The shapes of config values: strings, blocks, booleans, counts and sizes, ports, hosts,
//! durations, each refused with the file, line and column where it is not what the key takes.

use std::net::IpAddr;
use std::time::Duration;

use super::ConfigFileError;
use crate::conf::{self, Entry, Item, Map, Value};
use crate::server::SyncMode;

pub(crate) fn invalid(entry: &Entry, message: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Invalid {
        at: entry.item.position.clone(),
        key: entry.key.clone(),
        message: message.into(),
    }
}

pub(crate) fn unsupported(entry: &Entry, why: &'static str) -> ConfigFileError {
    ConfigFileError::Unsupported {
        at: entry.key_position.clone(),
        key: entry.key.clone(),
        why,
    }
}

pub(crate) fn found(item: &Item) -> String {
    format!("found {}", item.value.kind())
}

pub(crate) fn string(entry: &Entry) -> Result<String, ConfigFileError> {
    match &entry.item.value {
        Value::String(s) => Ok(s.clone()),
        _ => match &entry.item.literal {
            // An unquoted word that looked like a number (`server_name: 42`) is still text.
            Some(literal) => Ok(literal.clone()),
            None => Err(invalid(
                entry,
                format!("expected a string, {}", found(&entry.item)),
            )),
        },
    }
}

pub(crate) fn map(entry: &Entry) -> Result<&Map, ConfigFileError> {
    match &entry.item.value {
        Value::Map(m) => Ok(m),
        _ => Err(invalid(
            entry,
            format!("expected a block, {}", found(&entry.item)),
        )),
    }
}

pub(crate) fn boolean(entry: &Entry) -> Result<bool, ConfigFileError> {
    match entry.item.value {
        Value::Bool(b) => Ok(b),
        _ => Err(invalid(
            entry,
            format!("expected true or false, {}", found(&entry.item)),
        )),
    }
}

/// A non-negative integer that fits the target (sizes such as `8MB` included).
pub(crate) fn count<T: TryFrom<i64>>(entry: &Entry) -> Result<T, ConfigFileError> {
    match entry.item.value {
        Value::Integer(n) if n >= 0 => {
            T::try_from(n).map_err(|_| invalid(entry, format!("{n} is out of range")))
        }
        _ => Err(invalid(
            entry,
            format!(
                "expected a non-negative integer or size, {}",
                found(&entry.item)
            ),
        )),
    }
}

/// A port: 0-65535, or -1 (a free port) where `allow_random`.
pub(crate) fn port(entry: &Entry, allow_random: bool) -> Result<i32, ConfigFileError> {
    match entry.item.value {
        Value::Integer(-1) if allow_random => Ok(-1),
        Value::Integer(n) if (0..=65535).contains(&n) => Ok(n as i32),
        _ => Err(invalid(entry, "expected a port number from 0 to 65535")),
    }
}

pub(crate) fn ip(entry: &Entry) -> Result<IpAddr, ConfigFileError> {
    let text = string(entry)?;
    parse_host(&text).ok_or_else(|| invalid(entry, format!("{text:?} is not an IP address")))
}

pub(crate) fn parse_host(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    match text {
        "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
        "" => Some(IpAddr::from([0, 0, 0, 0])),
        _ => text.parse().ok(),
    }
}

/// `listen`/`http`: `host:port`, `:port` or a bare port number.
pub(crate) fn listen(entry: &Entry) -> Result<(Option<IpAddr>, i32), ConfigFileError> {
    if let Value::Integer(_) = entry.item.value {
        return Ok((None, port(entry, true)?));
    }
    let text = string(entry)?;
    let bad = || invalid(entry, format!("expected host:port, found {text:?}"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: i32 = port.parse().map_err(|_| bad())?;
    if !(-1..=65535).contains(&port) {
        return Err(bad());
    }
    let host = parse_host(host).ok_or_else(bad)?;
    Ok((Some(host), port))
}

/// A duration: a Go duration string (`"2m"`, `1h30m`), or an integer of seconds as nats-server
/// still accepts. An unquoted `2m` is read as two minutes: nats-server would read the `m` as a
/// size suffix and make it 2,000,000 seconds, which no one means.
pub(crate) fn duration(entry: &Entry) -> Result<Duration, ConfigFileError> {
    let item = &entry.item;
    if let Some(text) = item
        .literal
        .as_deref()
        .filter(|t| t.ends_with(|c: char| c.is_ascii_alphabetic()))
    {
        return conf::parse_duration(text).map_err(|e| invalid(entry, e));
    }
    match &item.value {
        Value::String(text) => conf::parse_duration(text).map_err(|e| invalid(entry, e)),
        Value::Integer(n) if *n >= 0 => Ok(Duration::from_secs(n.unsigned_abs())),
        _ => Err(invalid(
            entry,
            format!("expected a duration such as \"2m\", {}", found(item)),
        )),
    }
}

/// `authorization.timeout`: seconds, possibly fractional (nats-server reads a float).
pub(crate) fn seconds(entry: &Entry) -> Result<Duration, ConfigFileError> {
    match entry.item.value {
        Value::Float(f) => Duration::try_from_secs_f64(f)
            .map_err(|_| invalid(entry, "expected a non-negative number of seconds")),
        _ => duration(entry),
    }
}

pub(crate) fn sync_mode(entry: &Entry) -> Result<SyncMode, ConfigFileError> {
    if let Value::String(text) = &entry.item.value {
        match text.as_str() {
            "always" => return Ok(SyncMode::Always),
            "never" => return Ok(SyncMode::Never),
            _ => {}
        }
    }
    match duration(entry)? {
        d if d.is_zero() => Err(invalid(entry, "the sync interval must be above 0")),
        d => Ok(SyncMode::Interval(d)),
    }
}
