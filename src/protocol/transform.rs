//! Subject transforms as nats-server writes them (`subject_transform.go`): a source pattern
//! and a destination whose tokens are literals, `$N`, `>` or mapping functions
//! (`{{wildcard}}`, `{{partition}}`, `{{split}}`, `{{splitFromLeft}}`, `{{splitFromRight}}`,
//! `{{sliceFromLeft}}`, `{{sliceFromRight}}`, `{{left}}`, `{{right}}`, `{{random}}`). Streams
//! use them for `subject_transform` and `republish`. Semantics, quirks and error texts were
//! probed on nats-server 2.15.1 (docs/stream-transform-facts.md §1).

use super::subject::subject_matches;

/// Why a transform is refused; `Display` is nats-server's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("invalid subject")]
    InvalidSubject,
    #[error("invalid mapping destination: {kind}{}", in_token(.token, .index))]
    Destination {
        kind: &'static str,
        token: String,
        /// The out-of-range index, shown after the token when the source has wildcards.
        index: Option<i64>,
    },
}

fn in_token(token: &str, index: &Option<i64>) -> String {
    match (token.is_empty(), index) {
        (true, _) => String::new(),
        (false, Some(i)) => format!(" in {token}: [{i}]"),
        (false, None) => format!(" in {token}"),
    }
}

const INVALID_TRANSFORM: &str = "invalid transform";
const UNKNOWN_FUNCTION: &str = "unknown function";
const OUT_OF_RANGE: &str = "wildcard index out of range";
const NOT_ENOUGH_ARGS: &str = "not enough arguments passed to the function";
const BAD_ARG: &str = "function argument is invalid or in the wrong format";
const TOO_MANY_ARGS: &str = "too many arguments passed to the function";

/// One destination token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The source token at this position (wildcard numbers already resolved; 0 for an index
    /// of 0 or less, which nats-server maps to the first token).
    Token(usize),
    /// Everything from the source's `>` on.
    Rest,
    Partition {
        buckets: u32,
        tokens: Vec<usize>,
    },
    Split {
        token: usize,
        delimiter: String,
    },
    SplitFromLeft {
        token: usize,
        at: i64,
    },
    SplitFromRight {
        token: usize,
        at: i64,
    },
    SliceFromLeft {
        token: usize,
        size: i64,
    },
    SliceFromRight {
        token: usize,
        size: i64,
    },
    Left {
        token: usize,
        len: i64,
    },
    Right {
        token: usize,
        len: i64,
    },
    Random {
        buckets: u32,
    },
}

/// A compiled transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTransform {
    source: String,
    /// Source token index of each `*`, in order (wildcard N is `stars[N - 1]`).
    parts: Vec<Part>,
}

/// Whether `source` can be a transform's source: a subject, wildcards allowed, `>` last.
pub fn is_valid_source(source: &str) -> bool {
    let tokens: Vec<&str> = source.split('.').collect();
    !source.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.contains(char::is_whitespace)
                && (*t != ">" || i == tokens.len() - 1)
        })
}

/// `{{name(args)}}` split into the name and its trimmed arguments.
fn function_call(token: &str) -> Option<(&str, Vec<&str>)> {
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let open = inner.find('(')?;
    let name = inner[..open].trim();
    let args = inner[open + 1..].trim_end().strip_suffix(')')?;
    let args = match args.trim().is_empty() {
        true => Vec::new(),
        false => args.split(',').map(str::trim).collect(),
    };
    Some((name, args))
}

/// nats-server matches function names case-insensitively on each word's first letter only
/// (`Wildcard` and `splitfromleft` work, `WILDCARD` does not).
fn is_function(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .chars()
            .zip(canonical.chars())
            .enumerate()
            .all(|(i, (n, c))| {
                n == c || ((i == 0 || c.is_ascii_uppercase()) && n.eq_ignore_ascii_case(&c))
            })
}

impl SubjectTransform {
    /// Compiles `source` → `destination`. An empty source means `>`.
    pub fn new(source: &str, destination: &str) -> Result<Self, TransformError> {
        let source = if source.is_empty() { ">" } else { source };
        if !is_valid_source(source) {
            return Err(TransformError::InvalidSubject);
        }
        let src: Vec<&str> = source.split('.').collect();
        let stars: Vec<usize> = (0..src.len()).filter(|i| src[*i] == "*").collect();
        let src_rest = src.last() == Some(&">");
        let dest: Vec<&str> = destination.split('.').collect();
        let bare = |kind| TransformError::Destination {
            kind,
            token: String::new(),
            index: None,
        };
        let is_call = |t: &str| t.starts_with("{{") && t.ends_with("}}") && t.len() > 4;
        if dest
            .iter()
            .any(|t| t.is_empty() || (!is_call(t) && t.contains(char::is_whitespace)))
        {
            return Err(bare(INVALID_TRANSFORM));
        }
        if let Some(gt) = dest.iter().position(|t| *t == ">") {
            if gt != dest.len() - 1 {
                return Err(TransformError::Destination {
                    kind: INVALID_TRANSFORM,
                    token: dest[dest.len() - 1].to_owned(),
                    index: None,
                });
            }
        }
        let dest_rest = dest.last() == Some(&">");
        if dest.contains(&"*") || src_rest != dest_rest {
            return Err(TransformError::InvalidSubject);
        }
        let has_wildcards = !stars.is_empty();
        let mut parts = Vec::with_capacity(dest.len());
        for (i, token) in dest.iter().enumerate() {
            if *token == ">" {
                debug_assert_eq!(i, dest.len() - 1);
                parts.push(Part::Rest);
                continue;
            }
            parts.push(Self::part(token, &stars, has_wildcards)?);
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    fn part(token: &str, stars: &[usize], has_wildcards: bool) -> Result<Part, TransformError> {
        let err = |kind: &'static str, index: Option<i64>| TransformError::Destination {
            kind,
            token: token.to_owned(),
            index: index.filter(|_| has_wildcards),
        };
        // A wildcard number: 1-based over the source's `*`s; 0 or less selects token 0.
        let wildcard = |text: &str| -> Result<usize, TransformError> {
            let n: i64 = text.parse().map_err(|_| err(BAD_ARG, None))?;
            if n <= 0 {
                return Ok(0);
            }
            match stars.get(usize::try_from(n - 1).unwrap_or(usize::MAX)) {
                Some(at) => Ok(*at),
                None => Err(err(OUT_OF_RANGE, Some(n))),
            }
        };
        let number = |text: &str| -> Result<i64, TransformError> {
            text.parse().map_err(|_| err(BAD_ARG, None))
        };
        if let Some(n) = token.strip_prefix('$') {
            return match n.parse::<i64>() {
                Ok(_) => Ok(Part::Token(wildcard(n)?)),
                Err(_) => Ok(Part::Literal(token.to_owned())),
            };
        }
        let is_call = token.starts_with("{{") && token.ends_with("}}") && token.len() > 4;
        if !is_call {
            if token.contains(['{', '}']) {
                return Err(err(INVALID_TRANSFORM, None));
            }
            return Ok(Part::Literal(token.to_owned()));
        }
        let Some((name, args)) = function_call(token) else {
            return Err(err(UNKNOWN_FUNCTION, None));
        };
        let exactly = |n: usize| -> Result<(), TransformError> {
            match args.len() {
                len if len < n => Err(err(NOT_ENOUGH_ARGS, None)),
                len if len > n => Err(err(TOO_MANY_ARGS, None)),
                _ => Ok(()),
            }
        };
        // Without wildcards in the source only partition and random make sense.
        let needs_wildcards = |part: Result<Part, TransformError>| match has_wildcards {
            true => part,
            false => Err(err(OUT_OF_RANGE, None)),
        };
        let two = |f: fn(usize, i64) -> Part| -> Result<Part, TransformError> {
            exactly(2)?;
            Ok(f(wildcard(args[0])?, number(args[1])?))
        };
        if is_function(name, "wildcard") {
            exactly(1)?;
            return needs_wildcards(wildcard(args[0]).map(Part::Token));
        }
        if is_function(name, "partition") {
            let Some(first) = args.first().filter(|a| !a.is_empty()) else {
                return Err(err(BAD_ARG, None));
            };
            let buckets: u32 = first.parse().map_err(|_| err(BAD_ARG, None))?;
            let tokens = match has_wildcards {
                true => args[1..]
                    .iter()
                    .map(|a| wildcard(a))
                    .collect::<Result<_, _>>()?,
                // Indexes mean nothing then: the whole subject is hashed.
                false => Vec::new(),
            };
            return Ok(Part::Partition { buckets, tokens });
        }
        if is_function(name, "splitFromLeft") {
            return needs_wildcards(two(|token, at| Part::SplitFromLeft { token, at }));
        }
        if is_function(name, "splitFromRight") {
            return needs_wildcards(two(|token, at| Part::SplitFromRight { token, at }));
        }
        if is_function(name, "sliceFromLeft") {
            return needs_wildcards(two(|token, size| Part::SliceFromLeft { token, size }));
        }
        if is_function(name, "sliceFromRight") {
            return needs_wildcards(two(|token, size| Part::SliceFromRight { token, size }));
        }
        if is_function(name, "right") {
            return needs_wildcards(two(|token, len| Part::Right { token, len }));
        }
        if is_function(name, "left") {
            return needs_wildcards(two(|token, len| Part::Left { token, len }));
        }
        if is_function(name, "split") {
            exactly(2)?;
            let delimiter = args[1];
            if delimiter.is_empty() || delimiter.contains([' ', '.']) {
                return Err(err(BAD_ARG, None));
            }
            let token = wildcard(args[0])?;
            return needs_wildcards(Ok(Part::Split {
                token,
                delimiter: delimiter.to_owned(),
            }));
        }
        if is_function(name, "random") {
            if args.len() != 1 {
                return match args.is_empty() {
                    true => Err(err(BAD_ARG, None)),
                    false => Err(err(NOT_ENOUGH_ARGS, None)),
                };
            }
            let buckets: u32 = args[0].parse().map_err(|_| err(BAD_ARG, None))?;
            return Ok(Part::Random { buckets });
        }
        Err(err(UNKNOWN_FUNCTION, None))
    }

    /// The transformed subject, or `None` when `subject` does not match the source (nats-
    /// server then keeps the subject as it is).
    pub fn apply(&self, subject: &str) -> Option<String> {
        if !subject_matches(&self.source, subject) {
            return None;
        }
        let tokens: Vec<&str> = subject.split('.').collect();
        let src_len = self.source.split('.').count();
        let token = |i: usize| tokens.get(i).copied().unwrap_or("");
        let mut out: Vec<String> = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            out.push(match part {
                Part::Literal(text) => text.clone(),
                Part::Token(i) => token(*i).to_owned(),
                Part::Rest => tokens[src_len.saturating_sub(1).min(tokens.len())..].join("."),
                Part::Partition {
                    buckets,
                    tokens: picked,
                } => {
                    let key = match picked.is_empty() {
                        true => subject.to_owned(),
                        false => picked.iter().map(|i| token(*i)).collect(),
                    };
                    match *buckets {
                        0 => "0".to_owned(),
                        n => (fnv1a32(key.as_bytes()) % n).to_string(),
                    }
                }
                Part::Split {
                    token: i,
                    delimiter,
                } => token(*i)
                    .split(delimiter.as_str())
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("."),
                Part::SplitFromLeft { token: i, at } => split_at(token(*i), *at, false),
                Part::SplitFromRight { token: i, at } => split_at(token(*i), *at, true),
                Part::SliceFromLeft { token: i, size } => slices(token(*i), *size, false),
                Part::SliceFromRight { token: i, size } => slices(token(*i), *size, true),
                Part::Left { token: i, len } => cut(token(*i), *len, false),
                Part::Right { token: i, len } => cut(token(*i), *len, true),
                Part::Random { buckets } => match *buckets {
                    0 => "0".to_owned(),
                    n => (random_u32() % n).to_string(),
                },
            });
        }
        Some(out.join("."))
    }
}

/// 32-bit FNV-1a, as Go's `hash/fnv` computes it.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn in_range(len: usize, n: i64) -> Option<usize> {
    usize::try_from(n).ok().filter(|n| *n > 0 && *n < len)
}

/// Splits `token` in two at byte `at` from the left or right, when that is inside it.
fn split_at(token: &str, at: i64, from_right: bool) -> String {
    let Some(n) = in_range(token.len(), at) else {
        return token.to_owned();
    };
    let cut = if from_right { token.len() - n } else { n };
    match (token.get(..cut), token.get(cut..)) {
        (Some(a), Some(b)) => format!("{a}.{b}"),
        _ => token.to_owned(),
    }
}

/// `token` in chunks of `size` bytes, the short one last (from the left) or first.
fn slices(token: &str, size: i64, from_right: bool) -> String {
    let Some(size) = in_range(token.len(), size) else {
        return token.to_owned();
    };
    let bytes = token.as_bytes();
    let first = if from_right { bytes.len() % size } else { 0 };
    let mut pieces: Vec<&[u8]> = Vec::new();
    if first > 0 {
        pieces.push(&bytes[..first]);
    }
    pieces.extend(bytes[first..].chunks(size));
    pieces
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// The first (or last) `len` bytes of `token`, or all of it when `len` is not inside it.
fn cut(token: &str, len: i64, from_right: bool) -> String {
    let Some(n) = in_range(token.len(), len) else {
        return token.to_owned();
    };
    let bytes = token.as_bytes();
    let part = if from_right {
        &bytes[bytes.len() - n..]
    } else {
        &bytes[..n]
    };
    String::from_utf8_lossy(part).into_owned()
}

/// A random number for `{{random(n)}}`: nothing here needs it to be more than spread out.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
