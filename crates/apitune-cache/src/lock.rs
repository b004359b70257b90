//! The cache lock: `root/lock`, held with an OS file lock (`flock` on Unix) for as long as the
//! cache is open. Runs hold it shared, so any number of them (on any number of nodes, over a
//! file system with working `flock`, such as NFSv4 or Lustre) write the cache together;
//! maintenance (`verify`, `gc`) holds it exclusive, alone, and writes its pid into the file so a
//! refused run can say who holds it.
//!
//! The OS lock, not the pid, decides ownership: the kernel drops it when its holder dies (even
//! by `kill -9`), so a lock file naming a dead process is simply taken over, and a recycled pid
//! can never wedge the cache. Lock files are never deleted while the cache can be open, because
//! deleting a lock file that another process has open lets two processes each lock a different
//! inode.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::error::CacheError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Many holders at once: runs.
    Shared,
    /// One holder, no shared ones: maintenance.
    Exclusive,
}

#[derive(Debug)]
pub(crate) struct CacheLock {
    file: File,
    mode: LockMode,
}

impl CacheLock {
    pub fn acquire(path: &Path, mode: LockMode) -> Result<CacheLock, CacheError> {
        let file = open_lock_file(path)?;
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(CacheError::Locked {
                    pid: read_holder_pid(path),
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(CacheError::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    cause: source,
                });
            }
        }
        let mut lock = CacheLock { file, mode };
        // The pid only names the holder in messages: on a full disk the lock still holds, and
        // `gc`, which frees space, must be able to take it.
        if mode == LockMode::Exclusive {
            let _ = lock.write_pid();
        }
        Ok(lock)
    }

    fn write_pid(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_all()
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // An empty lock file reads as "nobody"; the OS lock goes with the descriptor.
        if self.mode == LockMode::Exclusive {
            let _ = self.file.set_len(0);
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, CacheError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(CacheError::io("open the lock file", path))
}

/// An exclusive hold on one lock file that says who holds it (`host pid N`, and the Slurm job).
/// Taken without waiting ([`HeldFile::try_take`]) or waiting for the holder ([`HeldFile::take`]).
#[derive(Debug)]
pub(crate) struct HeldFile {
    file: File,
}

impl HeldFile {
    /// `Ok(None)` when another open file holds it. With `describe`, the file says who holds it.
    pub fn try_take(path: &Path, describe: bool) -> Result<Option<HeldFile>, CacheError> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) if !describe => Ok(Some(HeldFile { file })),
            Ok(()) => Ok(Some(HeldFile::holding(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(cause)) => Err(CacheError::Io {
                action: "lock",
                path: path.to_path_buf(),
                cause,
            }),
        }
    }

    /// Waits until the holder releases it (or dies).
    pub fn take(path: &Path) -> Result<HeldFile, CacheError> {
        let file = open_lock_file(path)?;
        file.lock().map_err(CacheError::io("lock", path))?;
        Ok(HeldFile::holding(file))
    }

    fn holding(mut file: File) -> HeldFile {
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", holder_description()));
        HeldFile { file }
    }
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// Who this process is, for messages about held locks: `host pid N[ slurm job J]`.
pub fn holder_description() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into());
    let job = std::env::var("SLURM_JOB_ID")
        .map(|j| format!(" slurm job {j}"))
        .unwrap_or_default();
    format!("{host} pid {}{job}", std::process::id())
}

/// What a held lock file says of its holder; empty while it is being written or when free.
pub(crate) fn read_holder(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The holder writes its pid right after locking, so a moment's retry covers that gap.
fn read_holder_pid(path: &Path) -> Option<u32> {
    for _ in 0..20 {
        if let Some(pid) = read_holder(path).and_then(|s| s.parse().ok()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_everyone_and_shared_holders_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = CacheLock::acquire(&path, LockMode::Exclusive).unwrap();
        for mode in [LockMode::Shared, LockMode::Exclusive] {
            match CacheLock::acquire(&path, mode) {
                Err(CacheError::Locked { pid, path: p }) => {
                    assert_eq!(pid, Some(std::process::id()));
                    assert_eq!(p, path);
                }
                other => panic!("expected Locked, got {other:?}"),
            }
        }
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let a = CacheLock::acquire(&path, LockMode::Shared).unwrap();
        let b = CacheLock::acquire(&path, LockMode::Shared).unwrap();
        assert!(matches!(
            CacheLock::acquire(&path, LockMode::Exclusive),
            Err(CacheError::Locked { pid: None, .. })
        ));
        drop((a, b));
        CacheLock::acquire(&path, LockMode::Exclusive).unwrap();
    }

    #[test]
    fn a_held_file_names_its_holder_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim");
        let held = HeldFile::try_take(&path, true).unwrap().unwrap();
        assert!(HeldFile::try_take(&path, true).unwrap().is_none());
        let holder = read_holder(&path).unwrap();
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(held);
        assert!(read_holder(&path).is_none());
        HeldFile::try_take(&path, true).unwrap().unwrap();
    }
}
