//! The file operations the store needs, behind a small trait.
//!
//! Everything the log does to the disk goes through [`Vfs`] and [`VfsFile`], so a test can put
//! a fault-injecting layer ([`super::fault::FaultyVfs`]) or, later, a simulated power-loss file
//! system underneath without touching the log. The real implementation, [`StdVfs`], is a thin
//! wrapper over `std::fs` with positional I/O (`pread`/`pwrite`), so reads never move a shared
//! cursor and `&self` is enough for them.
//!
//! Durability contract of the helpers here: [`write_atomically`] writes a temp file, fsyncs it,
//! renames it over the target and fsyncs the directory. Rename is atomic, so a crash leaves
//! either the old file or the new one, never a torn mix.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Result, StoreError};

/// One open file. Offsets are absolute; there is no cursor.
pub trait VfsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `offset`; returns how many were written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file length (truncate or extend with zeros). Extending leaves a sparse hole:
    /// no disk space is reserved.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk space for `[offset, offset + len)` and grows the file to cover it, reading
    /// as zeros (`fallocate(2)` mode 0; never shrinks the file). Unlike [`VfsFile::set_len`],
    /// the blocks are allocated, so later writes into the range do not change the file size
    /// and an fdatasync after them need not commit a size change. Fails with an error for
    /// which [`is_unsupported`] holds where the file system cannot do this.
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Current file length.
    fn file_len(&self) -> io::Result<u64>;
}

/// The directory-level operations.
pub trait Vfs: Send + Sync + Debug {
    /// Opens a file for reading and writing, creating it if `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names of the regular files in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdVfs;

#[derive(Debug)]
struct StdFile(File);

impl VfsFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        // Mode 0 (no flags): allocate and extend the size. `posix_fallocate` would instead
        // emulate an unsupported file system by writing zeros, which costs more than it saves.
        rustix::fs::fallocate(&self.0, rustix::fs::FallocateFlags::empty(), offset, len)
            .map_err(io::Error::from)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn allocate(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Linux's EOPNOTSUPP, which `fallocate(2)` returns on a file system without it.
const EOPNOTSUPP: i32 = 95;

/// Whether an error from [`VfsFile::allocate`] only says that the file system cannot
/// preallocate (EOPNOTSUPP, ENOSYS, or EINVAL as some file systems answer), rather than that
/// something is wrong with the disk.
pub fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Unsupported | io::ErrorKind::InvalidInput
    ) || e.raw_os_error() == Some(EOPNOTSUPP)
}

impl Vfs for StdVfs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(StdFile(file)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
}

/// Writes all of `buf` at `offset`, looping over short writes. A zero-length write is an error
/// (the device refuses to take more), never a silent success.
pub fn write_all_at(file: &dyn VfsFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads as many bytes as are available at `offset`, up to `buf.len()`; returns the count
/// (less than `buf.len()` only at end of file).
pub fn read_full_at(file: &dyn VfsFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub fn read_file(vfs: &dyn Vfs, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match vfs.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let len = file.file_len().map_err(|e| StoreError::io(path, e))?;
    let len = usize::try_from(len).map_err(|_| StoreError::corrupt(path, 0, "file too large"))?;
    let mut buf = vec![0u8; len];
    let n = read_full_at(file.as_ref(), &mut buf, 0).map_err(|e| StoreError::io(path, e))?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Replaces `path` with `contents` atomically and durably: write `path.tmp`, fsync it, rename
/// it over `path`, fsync the directory.
pub fn write_atomically(vfs: &dyn Vfs, dir: &Path, path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let file = vfs.open(&tmp, true).map_err(|e| StoreError::io(&tmp, e))?;
    file.set_len(0).map_err(|e| StoreError::io(&tmp, e))?;
    write_all_at(file.as_ref(), contents, 0).map_err(|e| StoreError::io(&tmp, e))?;
    file.sync_data().map_err(|e| StoreError::io(&tmp, e))?;
    drop(file);
    vfs.rename(&tmp, path)
        .map_err(|e| StoreError::io(path, e))?;
    vfs.sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}

/// The temp name used by [`write_atomically`]; leftovers are removed on open.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_grows_the_file_with_zeros_and_never_shrinks_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StdVfs.open(&dir.path().join("f"), true).expect("open");
        write_all_at(file.as_ref(), b"data", 0).expect("write");
        match file.allocate(4, 8192) {
            Err(e) if is_unsupported(&e) => return,
            other => other.expect("allocate"),
        }
        assert_eq!(file.file_len().expect("len"), 8196);
        let mut buf = vec![1u8; 8196];
        assert_eq!(
            read_full_at(file.as_ref(), &mut buf, 0).expect("read"),
            8196
        );
        assert_eq!(&buf[..4], b"data");
        assert!(buf[4..].iter().all(|&b| b == 0));
        file.allocate(0, 100).expect("inside the file");
        assert_eq!(file.file_len().expect("len"), 8196, "never shrinks");
    }

    #[test]
    fn unsupported_allocation_errors_are_recognised() {
        assert!(is_unsupported(&io::Error::from_raw_os_error(EOPNOTSUPP)));
        assert!(is_unsupported(&io::Error::from_raw_os_error(22)));
        assert!(is_unsupported(&io::ErrorKind::Unsupported.into()));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(28)));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(5)));
    }
}
