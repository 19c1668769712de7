use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::broker::MatchCache;
use crate::protocol::subject::{is_valid_subject, subject_matches};

/// A test subscription: an id, so results can be compared as sets.
#[derive(Debug)]
struct Sub(u32);

/// Queue group name and member ids.
type GroupIds = (Vec<u8>, BTreeSet<u32>);

fn ids(result: &MatchResult<Sub>) -> (BTreeSet<u32>, Vec<GroupIds>) {
    let plain = result.plain.iter().map(|s| s.0).collect();
    let mut queues: Vec<_> = result
        .queues
        .iter()
        .map(|g| (g.name.to_vec(), g.members.iter().map(|s| s.0).collect()))
        .collect();
    queues.sort();
    (plain, queues)
}

#[test]
fn literal_and_wildcard_subscriptions_match() {
    let mut list = Sublist::new();
    for (i, subject) in [
        "foo.bar",
        "foo.*",
        "foo.>",
        ">",
        "*.bar",
        "foo",
        "foo.bar.baz",
    ]
    .iter()
    .enumerate()
    {
        list.insert(subject.as_bytes(), None, Arc::new(Sub(i as u32)));
    }
    let (plain, _) = ids(&list.matches(b"foo.bar"));
    assert_eq!(plain, BTreeSet::from([0, 1, 2, 3, 4]));
    let (plain, _) = ids(&list.matches(b"foo"));
    assert_eq!(plain, BTreeSet::from([3, 5]));
    let (plain, _) = ids(&list.matches(b"foo.bar.baz"));
    assert_eq!(plain, BTreeSet::from([2, 3, 6]));
    assert!(list.matches(b"foo..bar").is_empty());
}

#[test]
fn queue_groups_merge_by_name_across_nodes() {
    let mut list = Sublist::new();
    list.insert(b"a.b", Some(b"q"), Arc::new(Sub(1)));
    list.insert(b"a.*", Some(b"q"), Arc::new(Sub(2)));
    list.insert(b"a.>", Some(b"other"), Arc::new(Sub(3)));
    let (plain, queues) = ids(&list.matches(b"a.b"));
    assert!(plain.is_empty());
    assert_eq!(
        queues,
        vec![
            (b"other".to_vec(), BTreeSet::from([3])),
            (b"q".to_vec(), BTreeSet::from([1, 2]))
        ]
    );
}

#[test]
fn remove_is_by_identity_and_prunes_the_trie() {
    let mut list = Sublist::new();
    let a = Arc::new(Sub(1));
    let b = Arc::new(Sub(2));
    list.insert(b"x.y.z", None, a.clone());
    list.insert(b"x.y.z", None, b.clone());
    let gen = list.generation();
    assert!(list.remove(b"x.y.z", None, &a));
    assert!(!list.remove(b"x.y.z", None, &a));
    assert!(list.generation() > gen);
    assert_eq!(ids(&list.matches(b"x.y.z")).0, BTreeSet::from([2]));
    assert!(list.remove(b"x.y.z", None, &b));
    assert!(list.is_empty());
    assert!(list.root.is_empty(), "empty levels are pruned");
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("c".to_string())
    ]
}

fn literal_subject() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    let tok = prop_oneof![4 => token(), 2 => Just("*".to_string())];
    (proptest::collection::vec(tok, 1..5), any::<bool>()).prop_map(|(mut t, fwc)| {
        if fwc {
            *t.last_mut().unwrap_or(&mut String::new()) = ">".to_string();
        }
        t.join(".")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn trie_agrees_with_the_naive_matcher(
        patterns in proptest::collection::vec((pattern(), proptest::option::of(0u8..2)), 0..24),
        removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        subjects in proptest::collection::vec(literal_subject(), 1..16),
    ) {
        let mut list = Sublist::new();
        let mut live: Vec<(String, Option<Vec<u8>>, Arc<Sub>)> = Vec::new();
        for (i, (p, q)) in patterns.iter().enumerate() {
            prop_assert!(is_valid_subject(p.as_str()));
            let queue = q.map(|q| vec![b'q', b'0' + q]);
            let sub = Arc::new(Sub(i as u32));
            list.insert(p.as_bytes(), queue.as_deref(), sub.clone());
            live.push((p.clone(), queue, sub));
        }
        for r in removals {
            if live.is_empty() { break; }
            let (p, q, sub) = live.swap_remove(r.index(live.len()));
            prop_assert!(list.remove(p.as_bytes(), q.as_deref(), &sub));
        }
        prop_assert_eq!(list.len(), live.len());
        for subject in &subjects {
            let (plain, queues) = ids(&list.matches(subject.as_bytes()));
            let mut want_plain = BTreeSet::new();
            let mut want_queues: std::collections::BTreeMap<Vec<u8>, BTreeSet<u32>> = Default::default();
            for (p, q, sub) in &live {
                if subject_matches(p.as_str(), subject.as_str()) {
                    match q {
                        None => { want_plain.insert(sub.0); }
                        Some(q) => { want_queues.entry(q.clone()).or_default().insert(sub.0); }
                    }
                }
            }
            prop_assert_eq!(plain, want_plain);
            prop_assert_eq!(queues, want_queues.into_iter().collect::<Vec<_>>());
            // A result said to hold for any last token must hold for each of them.
            let (result, any_last) = list.matches_any_last(subject.as_bytes());
            if let (true, Some((prefix, _))) = (any_last, subject.rsplit_once('.')) {
                for last in ["a", "b", "c", "d"] {
                    let sibling = format!("{prefix}.{last}");
                    prop_assert_eq!(ids(&list.matches(sibling.as_bytes())), ids(&result), "{} for {}", sibling, subject);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum CacheOp {
    Subscribe(String, bool),
    Unsubscribe(prop::sample::Index),
    Lookup(String),
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        2 => (pattern(), any::<bool>()).prop_map(|(p, q)| CacheOp::Subscribe(p, q)),
        1 => any::<prop::sample::Index>().prop_map(CacheOp::Unsubscribe),
        6 => literal_subject().prop_map(CacheOp::Lookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Model: a lookup through a match cache (as `Router::lookup` does it) always answers
    /// what matching in the trie answers, while subscriptions come and go between lookups.
    #[test]
    fn lookups_through_the_cache_agree_with_the_trie(
        ops in proptest::collection::vec(cache_op(), 1..80),
    ) {
        let mut list = Sublist::new();
        let mut cache: MatchCache<Sub> = MatchCache::default();
        let mut live: Vec<(String, bool, Arc<Sub>)> = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                CacheOp::Subscribe(p, queue) => {
                    let sub = Arc::new(Sub(i as u32));
                    let q: Option<&[u8]> = queue.then_some(b"q");
                    list.insert(p.as_bytes(), q, sub.clone());
                    live.push((p, queue, sub));
                }
                CacheOp::Unsubscribe(index) => {
                    if live.is_empty() {
                        continue;
                    }
                    let (p, queue, sub) = live.swap_remove(index.index(live.len()));
                    let q: Option<&[u8]> = queue.then_some(b"q");
                    prop_assert!(list.remove(p.as_bytes(), q, &sub));
                }
                CacheOp::Lookup(s) => {
                    let got = match cache.get(s.as_bytes(), list.generation()) {
                        Some(hit) => hit,
                        None => cache.fill(&list, s.as_bytes()),
                    };
                    prop_assert_eq!(ids(&got), ids(&list.matches(s.as_bytes())), "{}", s);
                }
            }
        }
    }
}
