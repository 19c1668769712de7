//! A per-publisher cache of match results, so a hot subject costs one hash lookup instead of a
//! trie walk under a lock.
//!
//! A subject is admitted on its second miss, not its first: replies go to unique inbox
//! subjects (`_INBOX.<id>.<n>`), and caching each of those would allocate a key per message
//! and fill the cache with entries never read again. A small table of recently missed subject
//! hashes (a "doorkeeper") tells a repeat from a one-off.
//!
//! Each publishing connection keeps its own cache (nats-server does the same with its
//! per-client `results` map), so lookups take no lock and never contend. A cache entry is
//! valid only for the sublist generation it was filled under: any SUB or UNSUB anywhere bumps
//! the generation and the next lookup starts from empty.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::sublist::MatchResult;

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
}

impl<T> Default for MatchCache<T> {
    fn default() -> Self {
        Self {
            generation: 0,
            entries: HashMap::with_hasher(SubjectHasher::default()),
            // Allocated at the first miss: most connections never publish, and 8 KiB each
            // was a third of an idle connection's memory.
            doorkeeper: Box::default(),
        }
    }
}

impl<T> MatchCache<T> {
    /// The cached result for `subject`, if it was computed under `generation`.
    pub fn get(&mut self, subject: &[u8], generation: u64) -> Option<Arc<MatchResult<T>>> {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
            return None;
        }
        self.entries.get(subject).cloned()
    }

    /// Remembers a result computed under `generation` if the subject missed before; a stale
    /// one is not kept.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<MatchResult<T>>) {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
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
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
    }
}
