//! A fault-injecting [`Vfs`] for tests: EIO on the Nth write or fsync, ENOSPC, short writes,
//! failed or unsupported preallocation.
//!
//! It wraps the real file system, so the files it leaves behind can be reopened with
//! [`super::io::StdVfs`] to check what a restart would see. Faults are armed on a shared handle
//! (clones of one `FaultyVfs` share it) and fire once, except `fail_all_writes`, which stays on
//! until cleared (a full disk). A one-shot fsync failure mirrors Linux's behaviour that makes
//! "retry the fsync" dangerous: the next fsync succeeds although the data may be gone.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{StdVfs, Vfs, VfsFile};

/// How an injected write failure looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// The write fails with EIO and writes nothing.
    Eio,
    /// The write fails with ENOSPC and writes nothing.
    NoSpace,
    /// Half of the buffer is written and reported, then the next write fails with ENOSPC.
    Short,
}

/// How an injected preallocation failure looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocateFault {
    /// ENOSPC: the disk cannot reserve the space.
    NoSpace,
    /// EOPNOTSUPP: the file system cannot preallocate (as some tmpfs and FUSE mounts).
    Unsupported,
    /// EIO.
    Eio,
}

#[derive(Debug, Default)]
struct Plan {
    writes: u64,
    allocates: u64,
    syncs: u64,
    dir_syncs: u64,
    /// (write number at which to fail, how).
    write_at: Option<(u64, WriteFault)>,
    /// Fail every write with this until cleared.
    all_writes: Option<WriteFault>,
    /// A short write happened; the next write fails.
    after_short: bool,
    sync_at: Option<u64>,
    dir_sync_at: Option<u64>,
    /// (allocate number at which to fail, how).
    allocate_at: Option<(u64, AllocateFault)>,
    /// Fail every allocate with this until cleared.
    all_allocates: Option<AllocateFault>,
}

/// The fault-injecting file system. Clones share one plan.
#[derive(Clone, Default)]
pub struct FaultyVfs {
    inner: StdVfs,
    plan: Arc<Mutex<Plan>>,
}

impl fmt::Debug for FaultyVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyVfs")
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO on {what}"))
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl FaultyVfs {
    /// A file system with no faults armed.
    pub fn new() -> Self {
        Self::default()
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // A panic while holding this lock can only come from a test; keep going with its data.
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `n`th file write from now (1 = the next one) fails as `how`.
    pub fn fail_nth_write(&self, n: u64, how: WriteFault) {
        let mut p = self.plan();
        p.write_at = Some((p.writes + n, how));
    }

    /// Every write fails as `how` until [`FaultyVfs::clear`].
    pub fn fail_all_writes(&self, how: WriteFault) {
        self.plan().all_writes = Some(how);
    }

    /// The `n`th file fdatasync from now fails with EIO (later ones succeed).
    pub fn fail_nth_sync(&self, n: u64) {
        let mut p = self.plan();
        p.sync_at = Some(p.syncs + n);
    }

    /// The `n`th directory fsync from now fails with EIO.
    pub fn fail_nth_dir_sync(&self, n: u64) {
        let mut p = self.plan();
        p.dir_sync_at = Some(p.dir_syncs + n);
    }

    /// The `n`th preallocation from now (1 = the next one) fails as `how`.
    pub fn fail_nth_allocate(&self, n: u64, how: AllocateFault) {
        let mut p = self.plan();
        p.allocate_at = Some((p.allocates + n, how));
    }

    /// Every preallocation fails as `how` until [`FaultyVfs::clear`].
    pub fn fail_all_allocates(&self, how: AllocateFault) {
        self.plan().all_allocates = Some(how);
    }

    /// Preallocation calls seen so far (failed ones included).
    pub fn allocate_count(&self) -> u64 {
        self.plan().allocates
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        let mut p = self.plan();
        p.write_at = None;
        p.all_writes = None;
        p.after_short = false;
        p.sync_at = None;
        p.dir_sync_at = None;
        p.allocate_at = None;
        p.all_allocates = None;
    }

    /// (writes, file syncs, directory syncs) seen so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let p = self.plan();
        (p.writes, p.syncs, p.dir_syncs)
    }
}

struct FaultyFile {
    inner: Box<dyn VfsFile>,
    plan: Arc<Mutex<Plan>>,
}

impl fmt::Debug for FaultyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyFile")
    }
}

impl FaultyFile {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl VfsFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let fault = {
            let mut p = self.plan();
            p.writes += 1;
            if p.after_short {
                p.after_short = false;
                return Err(enospc());
            }
            let nth = match p.write_at {
                Some((n, how)) if n == p.writes => {
                    p.write_at = None;
                    Some(how)
                }
                _ => None,
            };
            let fault = nth.or(p.all_writes);
            if fault == Some(WriteFault::Short) {
                p.after_short = true;
            }
            fault
        };
        match fault {
            None => self.inner.write_at(buf, offset),
            Some(WriteFault::Eio) => Err(eio("write")),
            Some(WriteFault::NoSpace) => Err(enospc()),
            Some(WriteFault::Short) => {
                let half = (buf.len() / 2).max(1).min(buf.len());
                self.inner.write_at(&buf[..half], offset)
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let fail = {
            let mut p = self.plan();
            p.syncs += 1;
            p.sync_at == Some(p.syncs)
        };
        if fail {
            return Err(eio("fdatasync"));
        }
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let fault = {
            let mut p = self.plan();
            p.allocates += 1;
            let nth = match p.allocate_at {
                Some((n, how)) if n == p.allocates => {
                    p.allocate_at = None;
                    Some(how)
                }
                _ => None,
            };
            nth.or(p.all_allocates)
        };
        match fault {
            None => self.inner.allocate(offset, len),
            Some(AllocateFault::NoSpace) => Err(enospc()),
            Some(AllocateFault::Unsupported) => Err(io::Error::from_raw_os_error(95)),
            Some(AllocateFault::Eio) => Err(eio("fallocate")),
        }
    }
}

impl Vfs for FaultyVfs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open(path, create)?,
            plan: self.plan.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let fail = {
            let mut p = self.plan();
            p.dir_syncs += 1;
            p.dir_sync_at == Some(p.dir_syncs)
        };
        if fail {
            return Err(eio("directory fsync"));
        }
        self.inner.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
}
