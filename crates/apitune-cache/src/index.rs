//! The sled index: an accelerator, never the source of truth. It holds a copy of each entry's
//! metadata (so listing entries need not parse every metadata file) and the stat cache for input
//! file hashes. Losing or corrupting it costs time, not data: everything in `entries` is
//! recomputed from the artifact directories, and a stale stat-cache record just rehashes.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::entry::EntryRecord;
use super::error::CacheError;
use super::ids::Key;

/// Identity of a file's state as far as cheap `stat` can tell. Any write changes mtime (set to
/// "now") and ctime; a replaced file changes inode; a truncation changes size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub device: u64,
}

impl CachedHash {
    pub fn new(stamp: FileStamp, hash: &blake3::Hash) -> CachedHash {
        CachedHash {
            stamp,
            blake3: hash.to_hex().to_string(),
        }
    }

    /// The hash, if the file still has the stamp it had when hashed.
    pub fn hash_if(&self, stamp: &FileStamp) -> Option<blake3::Hash> {
        (self.stamp == *stamp)
            .then(|| blake3::Hash::from_hex(&self.blake3).ok())
            .flatten()
    }
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileStamp {
                size: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            FileStamp {
                size: meta.len(),
                mtime_ns,
                ctime_ns: 0,
                inode: 0,
                device: 0,
            }
        }
    }

    pub fn of_path(path: &Path) -> Result<FileStamp, CacheError> {
        let meta = fs::metadata(path).map_err(CacheError::io("read metadata of", path))?;
        Ok(FileStamp::of(&meta))
    }
}

/// Nanoseconds since the Unix epoch, on the same scale as [`FileStamp::mtime_ns`].
pub(crate) fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// An indexed entry: its metadata plus the stamp of the metadata file it was read from, so a
/// record that no longer describes the directory (replaced or rewritten since) is detected.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IndexedEntry {
    pub record: EntryRecord,
    pub entry_file: FileStamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedHash {
    stamp: FileStamp,
    blake3: String,
}

pub(crate) struct Index {
    db: sled::Db,
    entries: sled::Tree,
    file_hashes: sled::Tree,
    path: PathBuf,
}

impl Index {
    /// Opens the sled database at `path`. sled has been seen to panic as well as error on
    /// damaged files, so a panic counts as a failure to open too.
    pub fn open(path: &Path) -> Result<Index, CacheError> {
        let open = || -> Result<Index, sled::Error> {
            let db = sled::Config::new()
                .path(path)
                .cache_capacity(64 << 20)
                .open()?;
            let entries = db.open_tree("entries")?;
            let file_hashes = db.open_tree("file_hashes")?;
            Ok(Index {
                db,
                entries,
                file_hashes,
                path: path.to_path_buf(),
            })
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
            Ok(result) => result.map_err(|source| CacheError::Index {
                path: path.to_path_buf(),
                cause: source,
            }),
            Err(_) => Err(CacheError::Index {
                path: path.to_path_buf(),
                cause: sled::Error::Unsupported("sled panicked while opening the database".into()),
            }),
        }
    }

    fn err(&self) -> impl FnOnce(sled::Error) -> CacheError + '_ {
        move |source| CacheError::Index {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// The indexed entry for `key`; an undecodable record reads as absent.
    pub fn entry(&self, key: &Key) -> Result<Option<IndexedEntry>, CacheError> {
        let bytes = self.entries.get(key.as_bytes()).map_err(self.err())?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Stores an entry and flushes, so a published entry stays indexed across a crash.
    pub fn put_entry(&self, indexed: &IndexedEntry) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(indexed).expect("index records serialize");
        self.entries
            .insert(indexed.record.key.as_bytes(), bytes)
            .map_err(self.err())?;
        self.flush()
    }

    pub fn remove_entry(&self, key: &Key) -> Result<bool, CacheError> {
        let existed = self
            .entries
            .remove(key.as_bytes())
            .map_err(self.err())?
            .is_some();
        self.flush()?;
        Ok(existed)
    }

    /// Keys of all indexed entries (undecodable keys are skipped: they can only be garbage).
    pub fn entry_keys(&self) -> Result<Vec<Key>, CacheError> {
        let mut keys = Vec::new();
        for item in self.entries.iter().keys() {
            let raw = item.map_err(self.err())?;
            if let Ok(bytes) = <[u8; 32]>::try_from(raw.as_ref()) {
                keys.push(Key::from_bytes(bytes));
            }
        }
        Ok(keys)
    }

    /// Removes index records whose key bytes are malformed; returns how many.
    pub fn remove_malformed_keys(&self) -> Result<usize, CacheError> {
        let mut removed = 0;
        for item in self.entries.iter().keys() {
            let raw = item.map_err(self.err())?;
            if raw.len() != 32 {
                self.entries.remove(raw).map_err(self.err())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn cached_hash(
        &self,
        abs_path: &Path,
        stamp: &FileStamp,
    ) -> Result<Option<blake3::Hash>, CacheError> {
        let bytes = self
            .file_hashes
            .get(path_key(abs_path))
            .map_err(self.err())?;
        let cached = bytes.and_then(|b| serde_json::from_slice::<CachedHash>(&b).ok());
        Ok(cached
            .filter(|c| c.stamp == *stamp)
            .and_then(|c| blake3::Hash::from_hex(&c.blake3).ok()))
    }

    /// Not flushed here: a lost stat-cache record only costs a rehash.
    pub fn put_cached_hash(
        &self,
        abs_path: &Path,
        stamp: &FileStamp,
        hash: &blake3::Hash,
    ) -> Result<(), CacheError> {
        let record = CachedHash::new(*stamp, hash);
        let bytes = serde_json::to_vec(&record).expect("stat-cache records serialize");
        self.file_hashes
            .insert(path_key(abs_path), bytes)
            .map_err(self.err())?;
        Ok(())
    }

    /// Every stat-cache record, keyed by absolute path, for [`super::store`]'s snapshot that
    /// read-only commands use.
    pub fn file_hash_records(&self) -> Vec<(PathBuf, CachedHash)> {
        self.file_hashes
            .iter()
            .flatten()
            .filter_map(|(k, v)| {
                let path = PathBuf::from(String::from_utf8(k.to_vec()).ok()?);
                Some((path, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    pub fn flush(&self) -> Result<(), CacheError> {
        self.db.flush().map_err(self.err())?;
        Ok(())
    }
}

fn path_key(abs_path: &Path) -> Vec<u8> {
    abs_path.as_os_str().as_encoded_bytes().to_vec()
}
