//! The subscription trie: one level per subject token, with separate branches for `*` and `>`.
//!
//! Matching a literal subject walks at most three branches per token (the literal token, `*`
//! and `>`), so its cost depends on the subject's depth, not on the number of subscriptions.
//! Queue subscriptions with the same group name are merged across trie nodes into one group,
//! because nats-server delivers one message per group name however the members subscribed.
//! Every change bumps a generation number so that match caches know when to forget.

use std::collections::HashMap;
use std::sync::Arc;

use super::cache::SubjectHasher;
use crate::protocol::subject::{FWC, PWC, TOKEN_SEP};

/// The subscriptions a subject matched: every plain one, and each queue group's members.
#[derive(Debug)]
pub struct MatchResult<T> {
    pub plain: Vec<Arc<T>>,
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> MatchResult<T> {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

/// All members of one queue group that match a subject.
#[derive(Debug)]
pub struct QueueGroup<T> {
    pub name: Box<[u8]>,
    pub members: Vec<Arc<T>>,
}

struct Node<T> {
    next: Option<Box<Level<T>>>,
    plain: Vec<Arc<T>>,
    queues: Vec<QueueGroup<T>>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Self {
            next: None,
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty()
            && self.queues.is_empty()
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

struct Level<T> {
    literals: HashMap<Box<[u8]>, Node<T>, SubjectHasher>,
    pwc: Option<Box<Node<T>>>,
    fwc: Option<Box<Node<T>>>,
}

impl<T> Level<T> {
    fn new() -> Self {
        Self {
            literals: HashMap::with_hasher(SubjectHasher::default()),
            pwc: None,
            fwc: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }

    fn node_mut(&mut self, token: &[u8]) -> &mut Node<T> {
        if token == PWC {
            self.pwc.get_or_insert_with(|| Box::new(Node::new()))
        } else if token == FWC {
            self.fwc.get_or_insert_with(|| Box::new(Node::new()))
        } else {
            self.literals.entry(token.into()).or_insert_with(Node::new)
        }
    }
}

/// The subscription index. Not synchronised itself: the server keeps it behind a lock and
/// publishes the generation through an atomic so readers can check their caches lock-free.
pub struct Sublist<T> {
    root: Level<T>,
    count: usize,
    generation: u64,
    /// Inserts and successful removes since creation (nats-server's subsz `num_inserts` and
    /// `num_removes`); kept beside `count`, under the same lock.
    inserts: u64,
    removes: u64,
}

impl<T> Default for Sublist<T> {
    fn default() -> Self {
        Self {
            root: Level::new(),
            count: 0,
            generation: 0,
            inserts: 0,
            removes: 0,
        }
    }
}

impl<T> Sublist<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of subscriptions held.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bumped by every insert and remove.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// (inserts, removes) since the list was created.
    pub fn churn(&self) -> (u64, u64) {
        (self.inserts, self.removes)
    }

    /// Adds a subscription. The subject must be valid (the caller checks it, because an
    /// invalid one is the client's error to report).
    pub fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>, sub: Arc<T>) {
        let mut level = &mut self.root;
        let mut tokens = subject.split(|b| *b == TOKEN_SEP).peekable();
        let node = loop {
            let token = tokens.next().unwrap_or_default();
            let node = level.node_mut(token);
            if tokens.peek().is_none() {
                break node;
            }
            level = node.next.get_or_insert_with(|| Box::new(Level::new()));
        };
        match queue {
            None => node.plain.push(sub),
            Some(name) => match node.queues.iter_mut().find(|g| &*g.name == name) {
                Some(group) => group.members.push(sub),
                None => node.queues.push(QueueGroup {
                    name: name.into(),
                    members: vec![sub],
                }),
            },
        }
        self.inserts += 1;
        self.count += 1;
        self.generation += 1;
    }

    /// Removes one subscription (compared by identity). Returns whether it was there.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, sub: &Arc<T>) -> bool {
        let tokens: Vec<&[u8]> = subject.split(|b| *b == TOKEN_SEP).collect();
        let removed = remove_in(&mut self.root, &tokens, queue, sub);
        if removed {
            self.removes += 1;
            self.count -= 1;
            self.generation += 1;
        }
        removed
    }

    /// Every subscription whose pattern matches the literal `subject`.
    pub fn matches(&self, subject: &[u8]) -> MatchResult<T> {
        self.matches_any_last(subject).0
    }

    /// [`Sublist::matches`], and whether the result holds for every subject that differs from
    /// `subject` only in its last token: true when no level the last token was looked up in
    /// has literal branches, so only `*` and `>` decided. Replies go to unique inbox subjects
    /// (`_INBOX.<id>.<n>`) under one `_INBOX.<id>.*` subscription; this lets a match cache
    /// answer all of them from one entry.
    pub fn matches_any_last(&self, subject: &[u8]) -> (MatchResult<T>, bool) {
        let mut result = MatchResult::default();
        let tokens: Vec<&[u8]> = subject.split(|b| *b == TOKEN_SEP).collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return (result, false);
        }
        let mut any_last = true;
        match_level(&self.root, &tokens, &mut result, &mut any_last);
        (result, any_last)
    }
}

fn remove_in<T>(
    level: &mut Level<T>,
    tokens: &[&[u8]],
    queue: Option<&[u8]>,
    sub: &Arc<T>,
) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return false;
    };
    let node = if *token == PWC {
        level.pwc.as_deref_mut()
    } else if *token == FWC {
        level.fwc.as_deref_mut()
    } else {
        level.literals.get_mut(*token)
    };
    let Some(node) = node else {
        return false;
    };
    let removed = if rest.is_empty() {
        remove_from_node(node, queue, sub)
    } else {
        node.next
            .as_deref_mut()
            .is_some_and(|next| remove_in(next, rest, queue, sub))
    };
    if removed && node.next.as_ref().is_some_and(|l| l.is_empty()) {
        node.next = None;
    }
    if removed && node.is_empty() {
        if *token == PWC {
            level.pwc = None;
        } else if *token == FWC {
            level.fwc = None;
        } else {
            level.literals.remove(*token);
        }
    }
    removed
}

fn remove_from_node<T>(node: &mut Node<T>, queue: Option<&[u8]>, sub: &Arc<T>) -> bool {
    let list = match queue {
        None => &mut node.plain,
        Some(name) => match node.queues.iter_mut().find(|g| &*g.name == name) {
            Some(group) => &mut group.members,
            None => return false,
        },
    };
    let Some(pos) = list.iter().position(|s| Arc::ptr_eq(s, sub)) else {
        return false;
    };
    list.swap_remove(pos);
    node.queues.retain(|g| !g.members.is_empty());
    true
}

/// `any_last` is cleared when the last token is looked up in a level with literal branches.
fn match_level<T>(
    level: &Level<T>,
    tokens: &[&[u8]],
    result: &mut MatchResult<T>,
    any_last: &mut bool,
) {
    let Some((token, rest)) = tokens.split_first() else {
        return;
    };
    if let Some(fwc) = &level.fwc {
        collect(fwc, result);
    }
    if rest.is_empty() && !level.literals.is_empty() {
        *any_last = false;
    }
    for node in [level.pwc.as_deref(), level.literals.get(*token)]
        .into_iter()
        .flatten()
    {
        if rest.is_empty() {
            collect(node, result);
        } else if let Some(next) = &node.next {
            match_level(next, rest, result, any_last);
        }
    }
}

fn collect<T>(node: &Node<T>, result: &mut MatchResult<T>) {
    result.plain.extend(node.plain.iter().cloned());
    for group in &node.queues {
        match result.queues.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => existing.members.extend(group.members.iter().cloned()),
            None => result.queues.push(QueueGroup {
                name: group.name.clone(),
                members: group.members.clone(),
            }),
        }
    }
}

#[cfg(test)]
#[path = "sublist_tests.rs"]
mod tests;
