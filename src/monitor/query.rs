//! The query string of a monitoring request: `name=value` pairs, percent-decoded.

use std::collections::HashMap;

use super::MonitorError;

/// Longest query string read; a longer one is refused rather than parsed.
const MAX_QUERY_BYTES: usize = 4096;

/// A request's parameters; the last of a repeated name wins, as Go's `FormValue` takes the first
/// but no endpoint here is sensitive to the difference.
#[derive(Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, MonitorError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return Err(MonitorError::BadRequest("query string too long".into()));
        }
        let params = raw
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        Ok(Self { params })
    }

    /// Parameters given otherwise than in a URL (the JSON options of a system request).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            params: pairs.into_iter().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A boolean flag: `true`/`1` or `false`/`0`; absent or empty is false.
    pub fn flag(&self, name: &str) -> Result<bool, MonitorError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(MonitorError::BadRequest(format!(
                "invalid value {other:?} for {name}: use true or false"
            ))),
        }
    }

    /// A non-negative number, or `default` when absent.
    pub fn number(&self, name: &str, default: usize) -> Result<usize, MonitorError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                MonitorError::BadRequest(format!("invalid value {text:?} for {name}"))
            }),
        }
    }
}

/// Percent-decoding with `+` as a space, as HTML forms encode queries.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_and_flags_parsed() {
        let q = Query::parse(Some("subs=true&sort=msgs_to&x=a%20b+c&limit=")).unwrap();
        assert!(q.flag("subs").unwrap());
        assert!(!q.flag("missing").unwrap());
        assert_eq!(q.get("sort"), Some("msgs_to"));
        assert_eq!(q.get("x"), Some("a b c"));
        assert_eq!(q.number("limit", 7).unwrap(), 7);
    }

    #[test]
    fn bad_values_are_refused() {
        let q = Query::parse(Some("subs=maybe&offset=-1&p=%zz%4")).unwrap();
        assert!(q.flag("subs").is_err());
        assert!(q.number("offset", 0).is_err());
        assert_eq!(q.get("p"), Some("%zz%4"));
    }
}
