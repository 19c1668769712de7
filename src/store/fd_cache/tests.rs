use super::*;
use crate::store::io::{read_full_at, write_all_at};

fn cache(capacity: usize) -> CachingVfs {
    CachingVfs::new(Arc::new(StdVfs), capacity)
}

/// Descriptors this process has open on files under `path` (from /proc).
fn open_under(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("proc")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(path))
        .count()
}

/// Opens twice the cache's capacity of other files in `dir`, which pushes every file opened
/// before them out of the cache.
fn push_out(vfs: &CachingVfs, dir: &Path) -> Vec<Box<dyn VfsFile>> {
    (0..MIN_CAPACITY * 2)
        .map(|i| vfs.open(&dir.join(format!("o{i}")), true).expect("open"))
        .collect()
}

#[test]
fn never_holds_more_than_its_capacity_and_every_file_still_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = cache(MIN_CAPACITY);
    let files: Vec<_> = (0..MIN_CAPACITY * 3)
        .map(|i| {
            let f = vfs
                .open(&dir.path().join(format!("f{i}")), true)
                .expect("open");
            write_all_at(f.as_ref(), format!("file {i}").as_bytes(), 0).expect("write");
            f
        })
        .collect();
    assert!(vfs.open_count() <= MIN_CAPACITY, "{}", vfs.open_count());
    assert!(open_under(dir.path()) <= MIN_CAPACITY);
    for round in 0..2 {
        for (i, f) in files.iter().enumerate() {
            let mut buf = [0u8; 16];
            let n = read_full_at(f.as_ref(), &mut buf, 0).expect("read");
            assert_eq!(&buf[..n], format!("file {i}").as_bytes(), "round {round}");
            assert!(vfs.open_count() <= MIN_CAPACITY);
        }
    }
    drop(files);
    assert_eq!(vfs.open_count(), 0);
    assert_eq!(open_under(dir.path()), 0);
}

#[test]
fn a_file_in_use_stays_open_while_an_idle_one_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = cache(MIN_CAPACITY);
    let busy = vfs.open(&dir.path().join("busy"), true).expect("open");
    let idle: Vec<_> = (0..MIN_CAPACITY - 1)
        .map(|i| {
            vfs.open(&dir.path().join(format!("idle{i}")), true)
                .expect("open")
        })
        .collect();
    // Each new file makes the sweep pass once; the busy one is used in between, so its bit is
    // always set when the hand comes by.
    for i in 0..MIN_CAPACITY * 2 {
        busy.write_at(b"x", i as u64).expect("write");
        let extra = vfs
            .open(&dir.path().join(format!("extra{i}")), true)
            .expect("open");
        drop(extra);
    }
    assert_eq!(busy.file_len().expect("len"), (MIN_CAPACITY * 2) as u64);
    assert!(
        open_under(&dir.path().join("busy")) > 0,
        "the file used between sweeps was closed"
    );
    assert!(vfs.open_count() <= MIN_CAPACITY);
    drop(idle);
}

#[test]
fn unsynced_writes_survive_the_close_and_a_later_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = cache(MIN_CAPACITY);
    let path = dir.path().join("log");
    let f = vfs.open(&path, true).expect("open");
    write_all_at(f.as_ref(), b"unsynced", 0).expect("write");
    // Push it out of the cache, then sync through a reopened descriptor.
    let others = push_out(&vfs, dir.path());
    f.sync_data().expect("sync after reopen");
    assert_eq!(std::fs::read(&path).expect("read"), b"unsynced");
    drop(others);
}

#[test]
fn a_file_removed_while_closed_is_an_error_not_a_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = cache(MIN_CAPACITY);
    let path = dir.path().join("gone");
    let f = vfs.open(&path, true).expect("open");
    let others = push_out(&vfs, dir.path());
    vfs.remove(&path).expect("remove");
    let err = f.file_len().expect_err("reopen of a removed file");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(!path.exists());
    drop(others);
}

#[test]
fn threads_sharing_a_small_cache_all_read_their_own_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = cache(MIN_CAPACITY);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let vfs = &vfs;
            let dir = dir.path();
            scope.spawn(move || {
                let files: Vec<_> = (0..MIN_CAPACITY)
                    .map(|i| {
                        let f = vfs
                            .open(&dir.join(format!("t{t}-{i}")), true)
                            .expect("open");
                        write_all_at(f.as_ref(), &[t as u8, i as u8], 0).expect("write");
                        f
                    })
                    .collect();
                for _ in 0..20 {
                    for (i, f) in files.iter().enumerate() {
                        let mut buf = [0u8; 2];
                        read_full_at(f.as_ref(), &mut buf, 0).expect("read");
                        assert_eq!(buf, [t as u8, i as u8]);
                        // Operations in flight may pass the bound by one per thread.
                        assert!(vfs.open_count() <= MIN_CAPACITY + 4);
                    }
                }
            });
        }
    });
    assert_eq!(vfs.open_count(), 0, "all files were dropped");
}
