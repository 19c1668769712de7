//! Subject mapping across an account boundary: an import's subjects in one account become
//! subjects in the other, token by token. The destination names what the source's wildcards
//! matched either by position (`svc.>` onto `local.>`: each wildcard in the destination takes
//! the source's wildcard in the same order) or by number, as nats-server's transforms do
//! (`$1` or `{{wildcard(1)}}` for the first `*`).

use bytes::{BufMut, Bytes, BytesMut};

/// One token of the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    /// What the source's wildcard number `n` (0-based, in order) matched.
    Wildcard(usize),
}

/// A source pattern and the destination its subjects become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectMap {
    from: Vec<Vec<u8>>,
    to: Vec<Part>,
    /// `from` and `to` are the same: subjects pass unchanged, with no copy.
    identity: bool,
}

/// Why two patterns cannot be mapped onto each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{to:?} cannot stand for {from:?}: its wildcards must be those of {from:?} in order, $N references to them, or none")]
pub struct MapError {
    pub from: String,
    pub to: String,
}

fn tokens(pattern: &str) -> Vec<Vec<u8>> {
    pattern.split('.').map(|t| t.as_bytes().to_vec()).collect()
}

fn wildcards(tokens: &[Vec<u8>]) -> Vec<&[u8]> {
    tokens
        .iter()
        .map(Vec::as_slice)
        .filter(|t| *t == b"*" || *t == b">")
        .collect()
}

/// `$N` or `{{wildcard(N)}}` (1-based): a reference to the source's `N`th `*`.
fn reference(token: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(token).ok()?;
    let number = match text.strip_prefix('$') {
        Some(n) => n,
        None => text
            .strip_prefix("{{")?
            .strip_suffix("}}")?
            .trim()
            .strip_prefix("wildcard(")?
            .strip_suffix(')')?
            .trim(),
    };
    number.parse::<usize>().ok().filter(|n| *n >= 1)
}

impl SubjectMap {
    /// Maps subjects matching `from` onto `to`: `to`'s wildcards are `from`'s in the same
    /// order, or `to` refers to `from`'s `*` wildcards by number, or `to` is a literal.
    pub fn new(from: &str, to: &str) -> Result<Self, MapError> {
        let refuse = || MapError {
            from: from.to_string(),
            to: to.to_string(),
        };
        let (f, t) = (tokens(from), tokens(to));
        let (wf, wt) = (wildcards(&f), wildcards(&t));
        let stars: Vec<usize> = (0..wf.len()).filter(|i| wf[*i] == b"*").collect();
        let references: Vec<Option<usize>> = t.iter().map(|tok| reference(tok)).collect();
        let numbered = references.iter().any(Option::is_some);
        if (!wt.is_empty() && (wf != wt || numbered))
            || (f.last().is_some_and(|l| l == b">") && numbered)
        {
            return Err(refuse());
        }
        let mut position = 0;
        let mut parts = Vec::with_capacity(t.len());
        for (token, reference) in t.iter().zip(&references) {
            parts.push(match (token.as_slice(), reference) {
                (_, Some(n)) => Part::Wildcard(*stars.get(n - 1).ok_or_else(refuse)?),
                (b"*" | b">", None) => {
                    position += 1;
                    Part::Wildcard(position - 1)
                }
                (literal, None) => Part::Literal(literal.to_vec()),
            });
        }
        Ok(Self {
            identity: f == t,
            from: f,
            to: parts,
        })
    }

    /// The subject `subject` (which matches `from`) becomes; `None` if it does not match.
    pub fn apply(&self, subject: &Bytes) -> Option<Bytes> {
        if self.identity {
            return Some(subject.clone());
        }
        let given: Vec<&[u8]> = subject.split(|b| *b == b'.').collect();
        let mut filled: Vec<&[u8]> = Vec::new();
        for (i, pattern) in self.from.iter().enumerate() {
            match pattern.as_slice() {
                b">" => {
                    let rest = given.get(i..).filter(|r| !r.is_empty())?;
                    let start = rest[0].as_ptr() as usize - subject.as_ptr() as usize;
                    filled.push(&subject[start..]);
                    break;
                }
                b"*" => filled.push(given.get(i)?),
                literal => {
                    if given.get(i) != Some(&literal) {
                        return None;
                    }
                }
            }
            if i + 1 == self.from.len() && given.len() != self.from.len() {
                return None;
            }
        }
        let mut out = BytesMut::with_capacity(subject.len() + 16);
        for (i, part) in self.to.iter().enumerate() {
            if i > 0 {
                out.put_u8(b'.');
            }
            match part {
                Part::Wildcard(n) => out.put_slice(filled.get(*n)?),
                Part::Literal(literal) => out.put_slice(literal),
            }
        }
        Some(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(from: &str, to: &str, subject: &'static str) -> Option<String> {
        let m = SubjectMap::new(from, to).expect("valid map");
        m.apply(&Bytes::from_static(subject.as_bytes()))
            .map(|b| String::from_utf8(b.to_vec()).expect("utf-8"))
    }

    #[test]
    fn wildcards_carry_their_tokens_over() {
        assert_eq!(map("a.>", "x.a.>", "a.b.c").as_deref(), Some("x.a.b.c"));
        assert_eq!(map("a.*.c", "y.*", "a.b.c").as_deref(), Some("y.b"));
        assert_eq!(map("a.*.*", "z.*.*", "a.1.2").as_deref(), Some("z.1.2"));
        assert_eq!(map("a.>", "fixed", "a.b").as_deref(), Some("fixed"));
        assert_eq!(map("a.b", "a.b", "a.b").as_deref(), Some("a.b"));
        assert_eq!(map("foo.*", "bar.$1", "foo.q").as_deref(), Some("bar.q"));
        assert_eq!(
            map("a.*.*", "b.{{wildcard(2)}}.{{ wildcard(1) }}", "a.x.y").as_deref(),
            Some("b.y.x")
        );
    }

    #[test]
    fn subjects_that_do_not_match_are_not_mapped() {
        assert_eq!(map("a.*", "x.*", "a.b.c"), None);
        assert_eq!(map("a.*", "x.*", "b.c"), None);
        assert_eq!(map("a.>", "x.>", "a"), None);
        assert_eq!(map("a.b", "x", "a.b.c"), None);
    }

    #[test]
    fn destinations_with_other_wildcards_are_refused() {
        assert!(SubjectMap::new("a.*", "x.>").is_err());
        assert!(SubjectMap::new("a.*.*", "x.*").is_err());
        assert!(SubjectMap::new("a.b", "x.*").is_err());
        assert!(SubjectMap::new("a.*", "x.$2").is_err());
        assert!(SubjectMap::new("a.*", "x.*.$1").is_err());
    }
}
