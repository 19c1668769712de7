//! A bound on the descriptors the store keeps open: [`CachingVfs`] wraps another [`Vfs`] and
//! hands out files that close themselves when too many are open, and reopen on their next use.
//!
//! Why: a stream keeps its segment files for its whole life, and a server with 100,000 streams
//! would otherwise hold 100,000 descriptors doing nothing, past the open-files limit of many
//! machines (20,000 on ours) and leaving none for client connections. With the cache, every
//! file the logs hold counts against one capacity; the least recently used ones beyond it are
//! closed (CLOCK: a use sets a file's bit, the sweep clears bits and closes the first file found
//! without one), so an idle stream ends up holding no descriptor at all.
//!
//! Closing a file that has unsynced writes loses nothing: the data sits in the page cache of
//! the inode, not the descriptor, and the next `fdatasync` through a reopened descriptor
//! flushes it (Linux reports a writeback error to a later opener that nobody has seen yet).
//! A file in the middle of an operation is never closed under it: operations hold their own
//! reference, so the count can pass the capacity by the operations in flight, which the
//! number of threads bounds.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};

use super::io::{StdVfs, Vfs, VfsFile};

/// The capacity before the server sets one from its open-files limit (tests, tools).
pub const DEFAULT_CAPACITY: usize = 4096;
/// The smallest capacity accepted: below it, a log busy with a few segments would reopen
/// files on every operation.
pub const MIN_CAPACITY: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One file as the cache sees it: its path (to reopen it) and its descriptor while open.
#[derive(Debug)]
struct Slot {
    path: PathBuf,
    file: Mutex<Option<Arc<dyn VfsFile>>>,
    /// Set by every use, cleared by the sweep: a file used since the hand last passed stays.
    referenced: AtomicBool,
}

/// The open files, in the order the clock hand visits them.
#[derive(Debug, Default)]
struct Ring {
    slots: Vec<Weak<Slot>>,
    hand: usize,
}

#[derive(Debug)]
struct Shared {
    capacity: AtomicUsize,
    /// Descriptors open now (a slot counts from its open until its close or drop).
    open: AtomicUsize,
    ring: Mutex<Ring>,
}

/// A [`Vfs`] whose files share one bound on open descriptors. Directory operations pass
/// through to the inner file system.
#[derive(Debug, Clone)]
pub struct CachingVfs {
    inner: Arc<dyn Vfs>,
    shared: Arc<Shared>,
}

impl CachingVfs {
    /// A cache over `inner` keeping at most `capacity` files open (at least [`MIN_CAPACITY`]).
    pub fn new(inner: Arc<dyn Vfs>, capacity: usize) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                capacity: AtomicUsize::new(capacity.max(MIN_CAPACITY)),
                open: AtomicUsize::new(0),
                ring: Mutex::new(Ring::default()),
            }),
        }
    }

    /// Changes the bound; files beyond it close as others open.
    pub fn set_capacity(&self, capacity: usize) {
        self.shared
            .capacity
            .store(capacity.max(MIN_CAPACITY), Ordering::Relaxed);
    }

    /// The bound in force.
    pub fn capacity(&self) -> usize {
        self.shared.capacity.load(Ordering::Relaxed)
    }

    /// Descriptors open now.
    pub fn open_count(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }
}

/// The cache every log on the real file system shares (one bound for the process).
pub fn shared() -> &'static CachingVfs {
    static SHARED: OnceLock<CachingVfs> = OnceLock::new();
    SHARED.get_or_init(|| CachingVfs::new(Arc::new(StdVfs), DEFAULT_CAPACITY))
}

impl Shared {
    /// Makes room for one more open file, closing unreferenced ones while at capacity, and
    /// records `slot` as open. Victims busy in another thread's reopen are passed over (their
    /// lock is only tried), so two opens never wait on each other.
    fn admit(&self, slot: &Arc<Slot>) {
        let mut ring = lock(&self.ring);
        let capacity = self.capacity.load(Ordering::Relaxed);
        // Two passes clear every bit, so a full sweep finds a victim unless all are busy.
        let mut budget = ring.slots.len() * 2 + 1;
        while self.open.load(Ordering::Relaxed) >= capacity && !ring.slots.is_empty() && budget > 0
        {
            budget -= 1;
            if ring.hand >= ring.slots.len() {
                ring.hand = 0;
            }
            let hand = ring.hand;
            let Some(victim) = ring.slots[hand].upgrade() else {
                ring.slots.swap_remove(hand);
                continue;
            };
            if victim.referenced.swap(false, Ordering::Relaxed) {
                ring.hand += 1;
                continue;
            }
            let closed = match victim.file.try_lock() {
                Ok(mut file) => file.take().is_some(),
                Err(TryLockError::WouldBlock) => {
                    ring.hand += 1;
                    continue;
                }
                Err(TryLockError::Poisoned(p)) => p.into_inner().take().is_some(),
            };
            if closed {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
            ring.slots.swap_remove(hand);
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        ring.slots.push(Arc::downgrade(slot));
    }
}

/// A file whose descriptor the cache may close between operations.
#[derive(Debug)]
struct CachedFile {
    slot: Arc<Slot>,
    inner: Arc<dyn Vfs>,
    shared: Arc<Shared>,
}

impl CachedFile {
    /// The open descriptor, reopening the file if the cache closed it.
    fn file(&self) -> io::Result<Arc<dyn VfsFile>> {
        self.slot.referenced.store(true, Ordering::Relaxed);
        let mut file = lock(&self.slot.file);
        if let Some(open) = file.as_ref() {
            return Ok(open.clone());
        }
        let reopened: Arc<dyn VfsFile> = Arc::from(self.inner.open(&self.slot.path, false)?);
        self.shared.admit(&self.slot);
        *file = Some(reopened.clone());
        Ok(reopened)
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        if lock(&self.slot.file).take().is_some() {
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl VfsFile for CachedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file()?.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file()?.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file()?.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file()?.set_len(len)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file()?.allocate(offset, len)
    }
    fn file_len(&self) -> io::Result<u64> {
        self.file()?.file_len()
    }
}

impl Vfs for CachingVfs {
    /// Opens (or creates) the file now, so that errors surface here; later reopens never
    /// create, so a file removed behind the log's back is an error rather than a new one.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        let file: Arc<dyn VfsFile> = Arc::from(self.inner.open(path, create)?);
        let slot = Arc::new(Slot {
            path: path.to_path_buf(),
            file: Mutex::new(None),
            referenced: AtomicBool::new(true),
        });
        {
            // Held while admitting, so that a sweep cannot take the slot before it is filled.
            let mut guard = lock(&slot.file);
            self.shared.admit(&slot);
            *guard = Some(file);
        }
        Ok(Box::new(CachedFile {
            slot,
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
}

#[cfg(test)]
mod tests;
