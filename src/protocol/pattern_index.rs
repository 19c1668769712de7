//! Subject patterns indexed by token, to find those that overlap a given pattern without
//! comparing against each: what a stream create asks ("does another stream capture any of
//! these subjects?"). With 100,000 streams the pairwise check was 100,000 comparisons, and a
//! lock of each stream, per create; here a literal token follows one branch and its `*` and
//! `>` siblings, so the cost follows the pattern's length, not the number of patterns.
//!
//! Two patterns overlap when some subject matches both (see
//! [`super::subject::subjects_overlap`], which the model test holds this to).

use std::collections::HashMap;

use super::subject::TOKEN_SEP;

const PWC: &str = "*";
const FWC: &str = ">";

/// One token position: the patterns ending here, and the tokens that continue.
#[derive(Debug)]
struct Node<V> {
    values: Vec<V>,
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            children: HashMap::new(),
        }
    }
}

/// Patterns, each with a value (the stream that owns it).
#[derive(Debug)]
pub struct PatternIndex<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

fn tokens(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split(TOKEN_SEP as char)
}

impl<V: Clone + PartialEq> PatternIndex<V> {
    /// How many (pattern, value) pairs are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `pattern` for `value`.
    pub fn insert(&mut self, pattern: &str, value: V) {
        let mut node = &mut self.root;
        for token in tokens(pattern) {
            node = node.children.entry(token.into()).or_default();
        }
        node.values.push(value);
        self.len += 1;
    }

    /// Removes `pattern` for `value` (one pair); whether it was there. Branches left empty
    /// are dropped, so a deleted stream leaves nothing behind.
    pub fn remove(&mut self, pattern: &str, value: &V) -> bool {
        let path: Vec<&str> = tokens(pattern).collect();
        let removed = Self::remove_at(&mut self.root, &path, value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node<V>, path: &[&str], value: &V) -> bool {
        let Some((first, rest)) = path.split_first() else {
            let Some(at) = node.values.iter().position(|v| v == value) else {
                return false;
            };
            node.values.swap_remove(at);
            return true;
        };
        let Some(child) = node.children.get_mut(*first) else {
            return false;
        };
        let removed = Self::remove_at(child, rest, value);
        if child.values.is_empty() && child.children.is_empty() {
            node.children.remove(*first);
        }
        removed
    }

    /// Every value with a pattern that overlaps `pattern` (a value appears once per
    /// overlapping pattern of its own).
    pub fn overlapping(&self, pattern: &str) -> Vec<V> {
        let path: Vec<&str> = tokens(pattern).collect();
        let mut found = Vec::new();
        Self::collect_overlaps(&self.root, &path, &mut found);
        found
    }

    fn collect_overlaps(node: &Node<V>, path: &[&str], found: &mut Vec<V>) {
        let Some((first, rest)) = path.split_first() else {
            found.extend(node.values.iter().cloned());
            return;
        };
        if *first == FWC {
            // One or more tokens of anything: every pattern that goes on from here.
            for child in node.children.values() {
                Self::collect_all(child, found);
            }
            return;
        }
        // A pattern ending in `>` here takes whatever follows.
        if let Some(fwc) = node.children.get(FWC) {
            found.extend(fwc.values.iter().cloned());
        }
        if *first == PWC {
            for (token, child) in &node.children {
                if &**token != FWC {
                    Self::collect_overlaps(child, rest, found);
                }
            }
            return;
        }
        for token in [*first, PWC] {
            if let Some(child) = node.children.get(token) {
                Self::collect_overlaps(child, rest, found);
            }
        }
    }

    fn collect_all(node: &Node<V>, found: &mut Vec<V>) {
        found.extend(node.values.iter().cloned());
        for child in node.children.values() {
            Self::collect_all(child, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::subject::subjects_overlap;
    use proptest::prelude::*;

    fn pattern() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            3 => prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned),
            1 => Just(PWC.to_owned()),
        ];
        (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(mut tokens, fwc)| {
            if fwc {
                tokens.push(FWC.to_owned());
            }
            tokens.join(".")
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8),
        Remove(String, u8),
        Query(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (pattern(), 0u8..6).prop_map(|(p, v)| Op::Insert(p, v)),
            1 => (pattern(), 0u8..6).prop_map(|(p, v)| Op::Remove(p, v)),
            3 => pattern().prop_map(Op::Query),
        ]
    }

    proptest! {
        /// The index agrees with comparing against every pattern, through inserts and removes.
        #[test]
        fn agrees_with_the_pairwise_check(ops in prop::collection::vec(op(), 1..60)) {
            let mut index = PatternIndex::default();
            let mut model: Vec<(String, u8)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(p, v) => {
                        index.insert(&p, v);
                        model.push((p, v));
                    }
                    Op::Remove(p, v) => {
                        let at = model.iter().position(|(mp, mv)| *mp == p && *mv == v);
                        prop_assert_eq!(index.remove(&p, &v), at.is_some());
                        if let Some(at) = at {
                            model.swap_remove(at);
                        }
                    }
                    Op::Query(q) => {
                        let mut got = index.overlapping(&q);
                        let mut want: Vec<u8> = model
                            .iter()
                            .filter(|(p, _)| subjects_overlap(p.as_str(), q.as_str()))
                            .map(|(_, v)| *v)
                            .collect();
                        got.sort_unstable();
                        want.sort_unstable();
                        prop_assert_eq!(got, want, "query {}", q);
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
        }
    }

    #[test]
    fn removing_the_last_pattern_leaves_an_empty_tree() {
        let mut index = PatternIndex::default();
        index.insert("orders.*.created", 1);
        index.insert("orders.>", 2);
        assert!(index.remove("orders.*.created", &1));
        assert!(index.remove("orders.>", &2));
        assert!(!index.remove("orders.>", &2));
        assert!(index.is_empty());
        assert!(index.root.children.is_empty());
    }
}
