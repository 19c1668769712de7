//! A simulated disk for power-loss tests: an in-memory [`Vfs`] that keeps what was written
//! apart from what was made durable, and can lose the difference.
//!
//! The rules are Linux's, as the store relies on them: a file's bytes (and length) are
//! durable once `sync_data` returns on it; a directory entry (a created, removed or renamed
//! name) is durable once `sync_dir` returns on its directory; nothing else is. `crash` puts
//! every file and directory back to its durable state, optionally keeping a torn prefix of
//! each file's unsynced bytes (whole 512-byte sectors, as a disk may have written some of
//! them). Handles opened before a crash belong to the dead machine: everything on them fails.
//! Directories themselves are taken as durable when created (the store creates them once,
//! before anything in them matters).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{Vfs, VfsFile};

/// The sector size a torn write keeps whole.
pub const SECTOR_BYTES: usize = 512;

#[derive(Debug, Default, Clone)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    current: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
struct Disk {
    inodes: Vec<Inode>,
    dirs: HashMap<PathBuf, Dir>,
    /// Bumped by every crash; handles from an older generation are dead.
    generation: u64,
}

/// The simulated disk. Clones share it.
#[derive(Clone, Default)]
pub struct PowerLossVfs {
    disk: Arc<Mutex<Disk>>,
}

impl fmt::Debug for PowerLossVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PowerLossVfs")
    }
}

fn dead() -> io::Error {
    io::Error::other("the machine lost power")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(|| not_found(path))?;
    let name = path.file_name().ok_or_else(|| not_found(path))?;
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

impl PowerLossVfs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loses power: every file and directory goes back to what was durable. With
    /// `tear = Some(seed)`, each file keeps a seed-chosen number of whole sectors of its
    /// unsynced bytes beyond the durable ones.
    pub fn crash(&self, tear: Option<u64>) {
        let mut disk = self.lock();
        disk.generation += 1;
        let mut rng = tear.unwrap_or(0) | 1;
        for inode in &mut disk.inodes {
            let mut kept = inode.durable.clone();
            if tear.is_some() && inode.current.len() > kept.len() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let extra = inode.current.len() - kept.len();
                let sectors = extra.div_ceil(SECTOR_BYTES);
                let keep = (rng as usize % (sectors + 1)) * SECTOR_BYTES;
                let end = (kept.len() + keep).min(inode.current.len());
                let start = kept.len().min(end);
                kept.extend_from_slice(&inode.current[start..end]);
            }
            // What survived is on the platter now, torn sectors included.
            inode.durable = kept.clone();
            inode.current = kept;
        }
        for dir in disk.dirs.values_mut() {
            dir.current = dir.durable.clone();
        }
    }

    /// Bytes written but not yet durable, over all files (0 right after everything synced).
    pub fn unsynced_bytes(&self) -> usize {
        let disk = self.lock();
        let live: HashSet<usize> = disk
            .dirs
            .values()
            .flat_map(|d| d.current.values().copied())
            .collect();
        live.iter()
            .map(|&i| {
                let inode = &disk.inodes[i];
                usize::from(inode.current != inode.durable) * inode.current.len()
            })
            .sum()
    }
}

struct Handle {
    disk: Arc<Mutex<Disk>>,
    inode: usize,
    generation: u64,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PowerLossFile({})", self.inode)
    }
}

impl Handle {
    fn with<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        if disk.generation != self.generation {
            return Err(dead());
        }
        Ok(f(&mut disk.inodes[self.inode]))
    }
}

impl VfsFile for Handle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|inode| {
            let start = (offset as usize).min(inode.current.len());
            let n = buf.len().min(inode.current.len() - start);
            buf[..n].copy_from_slice(&inode.current[start..start + n]);
            n
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.with(|inode| {
            let end = offset as usize + buf.len();
            if inode.current.len() < end {
                inode.current.resize(end, 0);
            }
            inode.current[offset as usize..end].copy_from_slice(buf);
            buf.len()
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|inode| inode.durable = inode.current.clone())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|inode| inode.current.resize(len as usize, 0))
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.with(|inode| {
            let end = (offset + len) as usize;
            if inode.current.len() < end {
                inode.current.resize(end, 0);
            }
        })
    }

    fn file_len(&self) -> io::Result<u64> {
        self.with(|inode| inode.current.len() as u64)
    }
}

impl Vfs for PowerLossVfs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        let (parent, name) = split(path)?;
        let mut disk = self.lock();
        let next = disk.inodes.len();
        let dir = disk.dirs.get_mut(&parent).ok_or_else(|| not_found(path))?;
        let inode = match dir.current.get(&name) {
            Some(&i) => i,
            None if create => {
                dir.current.insert(name, next);
                disk.inodes.push(Inode::default());
                next
            }
            None => return Err(not_found(path)),
        };
        Ok(Box::new(Handle {
            disk: self.disk.clone(),
            inode,
            generation: disk.generation,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let (parent, name) = split(path)?;
        let mut disk = self.lock();
        let dir = disk.dirs.get_mut(&parent).ok_or_else(|| not_found(path))?;
        dir.current
            .remove(&name)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let mut disk = self.lock();
        let inode = disk
            .dirs
            .get_mut(&from_dir)
            .and_then(|d| d.current.remove(&from_name))
            .ok_or_else(|| not_found(from))?;
        disk.dirs
            .get_mut(&to_dir)
            .ok_or_else(|| not_found(to))?
            .current
            .insert(to_name, inode);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let d = disk.dirs.get_mut(dir).ok_or_else(|| not_found(dir))?;
        d.durable = d.current.clone();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        let d = disk.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.current.keys().cloned().collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        for ancestor in dir.ancestors() {
            disk.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_bytes_and_entries_survive_a_crash() {
        let vfs = PowerLossVfs::new();
        let dir = Path::new("/d");
        vfs.create_dir_all(dir).unwrap();
        let a = vfs.open(&dir.join("a"), true).unwrap();
        a.write_at(b"durable", 0).unwrap();
        a.sync_data().unwrap();
        vfs.sync_dir(dir).unwrap();
        a.write_at(b" and more", 7).unwrap();
        let b = vfs.open(&dir.join("b"), true).unwrap();
        b.write_at(b"synced, but its name is not", 0).unwrap();
        b.sync_data().unwrap();
        vfs.crash(None);
        assert!(a.file_len().is_err(), "old handles are dead");
        assert_eq!(vfs.list(dir).unwrap(), vec!["a".to_string()]);
        let a = vfs.open(&dir.join("a"), false).unwrap();
        let mut buf = vec![0; 64];
        let n = a.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"durable");
    }

    #[test]
    fn a_torn_crash_keeps_whole_sectors_of_the_unsynced_tail() {
        let vfs = PowerLossVfs::new();
        let dir = Path::new("/d");
        vfs.create_dir_all(dir).unwrap();
        let f = vfs.open(&dir.join("f"), true).unwrap();
        vfs.sync_dir(dir).unwrap();
        f.write_at(&[7u8; 3000], 0).unwrap();
        for seed in 1..20 {
            vfs.crash(Some(seed));
            let f = vfs.open(&dir.join("f"), false).unwrap();
            let len = f.file_len().unwrap() as usize;
            assert!(len.is_multiple_of(SECTOR_BYTES) || len == 3000, "{len}");
            f.write_at(&[7u8; 3000], 0).unwrap();
        }
    }
}
