//! A per-publisher cache of match results, so a hot subject costs one hash lookup instead of a
//! trie walk under a lock.
//!
//! Each publishing connection keeps its own cache (nats-server does the same with its
//! per-client `results` map), so lookups take no lock and never contend. A cache entry is
//! valid only for the sublist generation it was filled under: any SUB or UNSUB anywhere bumps
//! the generation and the next lookup starts from empty.

use std::collections::HashMap;
use std::sync::Arc;

use super::sublist::MatchResult;

/// The most subjects one cache remembers; past this it starts over, which bounds its memory
/// against a publisher that sends to ever-new subjects.
pub const MAX_CACHED_SUBJECTS: usize = 4096;

pub struct MatchCache<T> {
    generation: u64,
    entries: HashMap<Box<[u8]>, Arc<MatchResult<T>>>,
}

impl<T> Default for MatchCache<T> {
    fn default() -> Self {
        Self {
            generation: 0,
            entries: HashMap::new(),
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

    /// Remembers a result computed under `generation`; a stale one is not kept.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<MatchResult<T>>) {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
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
    fn a_new_generation_empties_the_cache() {
        let mut cache: MatchCache<()> = MatchCache::default();
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
