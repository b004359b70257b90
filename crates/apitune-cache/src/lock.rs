//! The single-writer lock: `root/lock`, held with an OS file lock (`flock` on Unix) for as long as
//! the writer lives, and containing the holder's pid so a refused run can say who holds it.
//!
//! The OS lock, not the pid, decides ownership: the kernel drops it when its holder dies (even
//! by `kill -9`), so a lock file naming a dead process is simply taken over, and a recycled pid
//! can never wedge the cache. The file itself is never deleted, because deleting a lock file
//! that another process has open lets two processes each lock a different inode.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::error::CacheError;

#[derive(Debug)]
pub(crate) struct CacheLock {
    file: File,
}

impl CacheLock {
    pub fn acquire(path: &Path) -> Result<CacheLock, CacheError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(CacheError::io("open the lock file", path))?;
        match file.try_lock() {
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
        let mut lock = CacheLock { file };
        // The pid only names the holder in messages: on a full disk the lock still holds, and
        // `gc`, which frees space, must be able to take it.
        let _ = lock.write_pid();
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
        let _ = self.file.set_len(0);
    }
}

/// The holder writes its pid right after locking, so a moment's retry covers that gap.
fn read_holder_pid(path: &Path) -> Option<u32> {
    for _ in 0..20 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
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
    fn second_holder_in_the_same_process_is_refused_with_our_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = CacheLock::acquire(&path).unwrap();
        match CacheLock::acquire(&path) {
            Err(CacheError::Locked { pid, path: p }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(p, path);
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        CacheLock::acquire(&path).unwrap();
    }
}
