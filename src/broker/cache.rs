//! A per-publisher cache of match results, so a hot subject costs one hash lookup instead of a
//! trie walk under a lock.
//!
//! A subject is admitted on its second miss, not its first: replies go to unique inbox
//! subjects (`_INBOX.<id>.<n>`), and caching each of those would allocate a key per message
//! and fill the cache with entries never read again. A small table of recently missed subject
//! hashes (a "doorkeeper") tells a repeat from a one-off.
//!
//! Replies to unique inbox subjects still avoid the trie: when a match did not depend on the
//! subject's last token (see [`super::Sublist::matches_any_last`]), the result is kept under
//! the subject without that token, and every `_INBOX.<id>.<n>` is answered from it.
//!
//! Each publishing connection keeps its own cache (nats-server does the same with its
//! per-client `results` map), so lookups take no lock and never contend. A cache entry is
//! valid only for the sublist generation it was filled under: any SUB or UNSUB anywhere bumps
//! the generation and the next lookup starts from empty.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::sublist::{MatchResult, Sublist};

/// The most subjects one cache remembers; past this it starts over, which bounds its memory
/// against a publisher that sends to ever-new subjects.
pub const MAX_CACHED_SUBJECTS: usize = 4096;
/// Slots in the doorkeeper of recently missed subjects (a power of two).
const DOORKEEPER_SLOTS: usize = 1024;

/// The hasher for subject-keyed maps: much faster than SipHash on short keys, and seeded per
/// process, so subjects chosen by a client cannot be crafted to collide.
pub type SubjectHasher = foldhash::fast::RandomState;

pub struct MatchCache<T> {
    generation: u64,
    entries: HashMap<Box<[u8]>, Arc<MatchResult<T>>, SubjectHasher>,
    /// Hashes of subjects that missed once; a second miss admits the subject.
    doorkeeper: Box<[u64]>,
    /// Results for every subject one token longer than the key (any last token).
    by_prefix: HashMap<Box<[u8]>, Arc<MatchResult<T>>, SubjectHasher>,
}

/// `subject` without its last token, if that token is not empty (an empty one makes the
/// subject invalid, and it must not borrow its neighbours' result).
fn prefix(subject: &[u8]) -> Option<&[u8]> {
    let dot = subject.iter().rposition(|b| *b == b'.')?;
    (dot + 1 < subject.len()).then(|| &subject[..dot])
}

impl<T> Default for MatchCache<T> {
    fn default() -> Self {
        Self {
            generation: 0,
            entries: HashMap::with_hasher(SubjectHasher::default()),
            // Allocated at the first miss: most connections never publish, and 8 KiB each
            // was a third of an idle connection's memory.
            doorkeeper: Box::default(),
            by_prefix: HashMap::with_hasher(SubjectHasher::default()),
        }
    }
}

impl<T> MatchCache<T> {
    /// The cached result for `subject`, if it was computed under `generation`.
    pub fn get(&mut self, subject: &[u8], generation: u64) -> Option<Arc<MatchResult<T>>> {
        if generation != self.generation {
            self.clear(generation);
            return None;
        }
        if let Some(hit) = self.entries.get(subject) {
            return Some(hit.clone());
        }
        if self.by_prefix.is_empty() {
            return None;
        }
        self.by_prefix.get(prefix(subject)?).cloned()
    }

    /// Matches `subject` in `list` after a miss, and remembers the result as [`Self::insert`]
    /// or [`Self::insert_any_last`] allow.
    pub fn fill(&mut self, list: &Sublist<T>, subject: &[u8]) -> Arc<MatchResult<T>> {
        let (result, any_last) = list.matches_any_last(subject);
        let result = Arc::new(result);
        let generation = list.generation();
        if !(any_last && self.insert_any_last(subject, generation, result.clone())) {
            self.insert(subject, generation, result.clone());
        }
        result
    }

    /// Remembers a result that holds for any last token of `subject` (see
    /// [`super::Sublist::matches_any_last`]), computed under `generation`. Admitted at once:
    /// one entry serves every reply to the same inbox. False if `subject` has no prefix to
    /// key it by.
    pub fn insert_any_last(
        &mut self,
        subject: &[u8],
        generation: u64,
        result: Arc<MatchResult<T>>,
    ) -> bool {
        let Some(prefix) = prefix(subject) else {
            return false;
        };
        if generation != self.generation {
            self.clear(generation);
        }
        if self.by_prefix.len() >= MAX_CACHED_SUBJECTS {
            self.by_prefix.clear();
        }
        self.by_prefix.insert(prefix.into(), result);
        true
    }

    fn clear(&mut self, generation: u64) {
        self.entries.clear();
        self.by_prefix.clear();
        self.generation = generation;
    }

    /// Remembers a result computed under `generation` if the subject missed before; a stale
    /// one is not kept.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<MatchResult<T>>) {
        if generation != self.generation {
            self.clear(generation);
        }
        let hash = self.entries.hasher().hash_one(subject) | 1;
        if self.doorkeeper.is_empty() {
            self.doorkeeper = vec![0; DOORKEEPER_SLOTS].into_boxed_slice();
        }
        let slot = &mut self.doorkeeper[hash as usize & (DOORKEEPER_SLOTS - 1)];
        if *slot != hash {
            *slot = hash;
            return;
        }
        if self.entries.len() >= MAX_CACHED_SUBJECTS {
            self.entries.clear();
        }
        self.entries.insert(subject.into(), result);
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.by_prefix.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_admitted_on_their_second_miss() {
        let mut cache: MatchCache<()> = MatchCache::default();
        cache.insert(b"_INBOX.x.1", 0, Arc::new(MatchResult::default()));
        assert!(
            cache.get(b"_INBOX.x.1", 0).is_none(),
            "a one-off is not cached"
        );
        cache.insert(b"_INBOX.x.1", 0, Arc::new(MatchResult::default()));
        assert!(cache.get(b"_INBOX.x.1", 0).is_some());
    }

    #[test]
    fn a_new_generation_empties_the_cache() {
        let mut cache: MatchCache<()> = MatchCache::default();
        cache.insert(b"a", 0, Arc::new(MatchResult::default()));
        cache.insert(b"a", 0, Arc::new(MatchResult::default()));
        assert!(cache.get(b"a", 0).is_some());
        assert!(cache.get(b"a", 1).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_result_for_any_last_token_answers_every_sibling_but_not_an_empty_token() {
        let mut cache: MatchCache<()> = MatchCache::default();
        assert!(cache.insert_any_last(b"_INBOX.x.1", 0, Arc::new(MatchResult::default())));
        assert!(cache.get(b"_INBOX.x.2", 0).is_some());
        assert!(cache.get(b"_INBOX.x.", 0).is_none());
        assert!(cache.get(b"_INBOX.x", 0).is_none());
        assert!(cache.get(b"_INBOX.y.2", 0).is_none());
        assert!(!cache.insert_any_last(b"single", 0, Arc::new(MatchResult::default())));
        assert!(
            cache.get(b"_INBOX.x.2", 1).is_none(),
            "a new generation forgets it"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache: MatchCache<()> = MatchCache::default();
        for i in 0..MAX_CACHED_SUBJECTS + 10 {
            cache.insert(
                i.to_string().as_bytes(),
                0,
                Arc::new(MatchResult::default()),
            );
        }
        assert!(cache.len() <= MAX_CACHED_SUBJECTS);
        for i in 0..MAX_CACHED_SUBJECTS + 10 {
            cache.insert_any_last(
                format!("p{i}.x").as_bytes(),
                0,
                Arc::new(MatchResult::default()),
            );
        }
        assert!(cache.len() <= 2 * MAX_CACHED_SUBJECTS);
    }
}
