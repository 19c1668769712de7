//! Subject rules: what a valid subject, pattern and queue name look like, and whether a
//! pattern matches a subject.
//!
//! The rules follow nats-server (`server/sublist.go`): tokens are separated by `.`, no token is
//! empty, no whitespace appears anywhere, `*` matches exactly one token, `>` matches one or
//! more tokens and may only be the last token. A token is a wildcard only when it is exactly `*`
//! or `>`; `foo*` is a literal. These functions are pure and allocation-free so that both the
//! broker and the store can call them on hot paths.

/// Token separator.
pub const TOKEN_SEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: &[u8] = b"*";
/// Multi-token (tail) wildcard.
pub const FWC: &[u8] = b">";

/// Whether `b` is whitespace that may never appear in a subject (space, tab, CR, LF, FF).
fn is_subject_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

/// A subject or pattern that subscriptions may use: non-empty tokens, no whitespace, and `>`
/// only as the last token.
pub fn is_valid_subject(subject: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    let bytes = subject.as_ref();
    if bytes.is_empty() {
        return false;
    }
    let mut tokens = bytes.split(|b| *b == TOKEN_SEP).peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() || token.iter().any(|b| is_subject_space(*b)) {
            return false;
        }
        if token == FWC && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// A subject that may be published to: valid and without wildcard tokens.
pub fn is_valid_literal_subject(subject: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    is_valid_subject(subject) && is_literal(subject)
}

/// A subject a stream may store: what a publish can carry and still be routed to the stream,
/// that is non-empty tokens without whitespace. Wildcard characters are taken literally here,
/// in any token: nats-server stores `hello.*` and even `a.>.b` when a publisher sends them
/// (KV clients rely on it to test key validation), and a filter matches them token by token.
pub fn is_storable_subject(subject: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    let bytes = subject.as_ref();
    !bytes.is_empty()
        && bytes
            .split(|b| *b == TOKEN_SEP)
            .all(|t| !t.is_empty() && !t.iter().any(|b| is_subject_space(*b)))
}

/// Whether `subject` contains no wildcard token. Does not check validity.
pub fn is_literal(subject: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    !subject
        .as_ref()
        .split(|b| *b == TOKEN_SEP)
        .any(|t| t == PWC || t == FWC)
}

/// A queue group name: non-empty and without whitespace (nats-server checks the same).
pub fn is_valid_queue_name(queue: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    let queue = queue.as_ref();
    !queue.is_empty() && !queue.iter().any(|b| is_subject_space(*b))
}

/// Whether the pattern `pattern` (which may hold wildcards) matches the literal `subject`.
///
/// Both are assumed valid; an invalid input gives an answer but not a meaningful one.
pub fn subject_matches(
    pattern: &(impl AsRef<[u8]> + ?Sized),
    subject: &(impl AsRef<[u8]> + ?Sized),
) -> bool {
    let mut pat = pattern.as_ref().split(|b| *b == TOKEN_SEP);
    let mut sub = subject.as_ref().split(|b| *b == TOKEN_SEP);
    loop {
        match (pat.next(), sub.next()) {
            (None, None) => return true,
            (Some(p), Some(_)) if p == FWC => return true,
            (Some(p), Some(s)) if p == PWC || p == s => continue,
            _ => return false,
        }
    }
}

/// Whether two patterns can both match some subject (used to reject overlapping stream
/// subjects and to filter stream names by subject).
pub fn subjects_overlap(a: &(impl AsRef<[u8]> + ?Sized), b: &(impl AsRef<[u8]> + ?Sized)) -> bool {
    let mut ta = a.as_ref().split(|c| *c == TOKEN_SEP);
    let mut tb = b.as_ref().split(|c| *c == TOKEN_SEP);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == FWC || y == FWC => return true,
            (Some(x), Some(y)) if x == PWC || y == PWC || x == y => continue,
            _ => return false,
        }
    }
}

/// Whether every subject matched by `sub` is also matched by `sup` (a filter being a subset
/// of a stream's subjects).
pub fn is_subset_match(
    sub: &(impl AsRef<[u8]> + ?Sized),
    sup: &(impl AsRef<[u8]> + ?Sized),
) -> bool {
    let mut ts = sub.as_ref().split(|c| *c == TOKEN_SEP);
    let mut tp = sup.as_ref().split(|c| *c == TOKEN_SEP);
    loop {
        match (ts.next(), tp.next()) {
            (None, None) => return true,
            (Some(_), Some(p)) if p == FWC => return true,
            (Some(s), Some(_)) if s == FWC => return false,
            (Some(s), Some(p)) if p == PWC || s == p => continue,
            _ => return false,
        }
    }
}

/// The number of tokens in a subject.
pub fn num_tokens(subject: &(impl AsRef<[u8]> + ?Sized)) -> usize {
    subject.as_ref().split(|b| *b == TOKEN_SEP).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_subjects_follow_token_rules() {
        for ok in [
            "foo",
            "foo.bar",
            "foo.*",
            "foo.>",
            "*",
            ">",
            "foo.*.bar",
            "foo*.bar",
            "$JS.API",
        ] {
            assert!(is_valid_subject(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "foo.",
            ".foo",
            "foo..bar",
            "foo bar",
            "foo\tbar",
            "foo.>.bar",
            ">.x",
        ] {
            assert!(!is_valid_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn storable_subjects_take_wildcards_literally_but_not_empty_tokens() {
        for ok in ["a", "hello.*", "hello.>", "a.>.b", "*", "k.a*"] {
            assert!(is_storable_subject(ok), "{ok}");
        }
        for bad in ["", ".", "a..b", "a.", ".a", "a b", "a.\tb"] {
            assert!(!is_storable_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn literal_subjects_have_no_wildcard_tokens() {
        assert!(is_valid_literal_subject("foo.bar"));
        assert!(is_valid_literal_subject("foo*.b>r"));
        assert!(!is_valid_literal_subject("foo.*"));
        assert!(!is_valid_literal_subject("foo.>"));
    }

    #[test]
    fn wildcards_match_as_nats_defines() {
        assert!(subject_matches("foo.*", "foo.bar"));
        assert!(!subject_matches("foo.*", "foo.bar.baz"));
        assert!(!subject_matches("foo.*", "foo"));
        assert!(subject_matches("foo.>", "foo.bar.baz"));
        assert!(!subject_matches("foo.>", "foo"));
        assert!(subject_matches(">", "a"));
        assert!(subject_matches("*.b.>", "a.b.c"));
        assert!(!subject_matches("foo*", "foo"));
        assert!(subject_matches("foo", "foo"));
    }

    #[test]
    fn overlap_and_subset() {
        assert!(subjects_overlap("foo.*", "*.bar"));
        assert!(subjects_overlap("foo.>", "foo.bar.baz"));
        assert!(!subjects_overlap("foo.*", "foo.bar.baz"));
        assert!(!subjects_overlap("foo", "bar"));
        assert!(is_subset_match("foo.bar", "foo.*"));
        assert!(is_subset_match("foo.*", "foo.>"));
        assert!(!is_subset_match("foo.>", "foo.*"));
        assert!(!is_subset_match("foo.*", "foo.bar"));
        assert!(is_subset_match("foo.>", ">"));
    }
}
