//! The cache directory and its entries: open, lookup, hashing inputs, staging and publish.
//! The layout and crash-safety argument are in the parent module's docs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::digest::{ENTRY_FILE, Links, hash_file_contents, list_files, merkle};
use super::entry::{
    Entry, EntryFile, EntryMeta, EntryRecord, check_files_content, check_files_unchanged,
    entry_file_path, read_record_of, write_record,
};
use super::error::CacheError;
use super::ids::Key;
use super::index::{CachedHash, FileStamp, Index, IndexedEntry, now_ns};
use super::lock::{CacheLock, HeldFile, LockMode, read_holder};

/// Files modified this recently are hashed but not stat-cached: a write landing in the same
/// timestamp tick as our `stat` would otherwise go unnoticed (git's "racy clean" problem).
const RACY_WINDOW_NS: i128 = 2_000_000_000;

pub(crate) const ARTIFACTS: &str = "artifacts";
pub(crate) const TMP: &str = "tmp";
pub(crate) const WORK: &str = "work";
pub(crate) const QUARANTINE: &str = "quarantine";
const INDEX: &str = "index.sled";
/// A damaged index is renamed to `index.sled.broken-<unix ms>`, kept for inspection until gc.
pub(crate) const BROKEN_INDEX_PREFIX: &str = "index.sled.broken-";
/// How sled 0.34 reports that another process has its database open.
const SLED_LOCKED: &str = "could not acquire lock";
const LOCK: &str = "lock";
/// Held by the one process that keeps the sled index (sled is single-process); other writers
/// read entries from their metadata files.
const INDEX_LOCK: &str = "index.lock";
/// `claims/<key>`: held by the process computing `<key>`, so no two compute it at once.
pub(crate) const CLAIMS: &str = "claims";
/// `jobs/<key>/`: a scheduler job's script, log and exit status for `<key>`.
pub(crate) const JOBS: &str = "jobs";
/// [`JOBS`], for executors that find their jobs by the script's path.
pub const JOBS_DIR: &str = JOBS;
pub(crate) const MEMO: &str = "memo";
/// Marks a directory as an apitune cache of one format. apitune deletes files only inside a
/// directory that carries it (or that it created empty), so `--cache ~/Documents` cannot cost data.
pub const CACHE_MARKER: &str = "apitune-cache";
/// Bumped when the layout changes incompatibly; a cache of another format is refused, not adopted.
pub const CACHE_FORMAT: u32 = 1;
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// What caches made before the format marker existed wrote into their `CACHEDIR.TAG`.
const LEGACY_TAG_TEXT: &str = "apitune stage cache";
/// Subdirectories apitune creates and deletes inside; none may be a symbolic link.
const OWNED_SUBDIRS: [&str; 8] = [ARTIFACTS, TMP, WORK, QUARANTINE, MEMO, INDEX, CLAIMS, JOBS];
/// A writer's staging directories live in `tmp/<session>/`, with `tmp/<session>.lock` held
/// while it lives: a writer that finds a session lock free removes that dead session's leftovers.
const SESSION_PREFIX: &str = "s-";
const SESSION_LOCK_SUFFIX: &str = ".lock";
/// The writer's stat cache, written out when it closes, so read-only commands (`status`, `plan`,
/// `check`), which cannot open sled, need not re-read unchanged multi-GB inputs.
const FILE_HASHES: &str = "file-hashes.json";
pub(crate) const FILE_HASHES_TMP_PREFIX: &str = "file-hashes.json.tmp-";

/// A content-addressed store of stage outputs. [`Cache::open`] gives a writer (any number of
/// processes, on any number of nodes, write one cache at once); [`Cache::open_exclusive`] gives
/// the one writer that maintenance needs; [`Cache::open_read_only`] gives readers that never write.
pub struct Cache {
    pub(crate) root: PathBuf,
    pub(crate) writer: Option<Writer>,
    hashes: HashCounters,
    /// Caches without the index: the index holder's stat cache, loaded on first use.
    snapshot: std::sync::OnceLock<std::collections::HashMap<PathBuf, CachedHash>>,
    /// Entries whose every file this process has hashed (at publication or a full check): later
    /// uses re-hash only files whose stat changed, so an input shared by many arms is read once
    /// per run, not once per arm.
    content_checked: std::sync::Mutex<std::collections::HashSet<Key>>,
    /// Read through: an entry this cache lacks and the remote has is downloaded (writers only).
    remote: Option<super::remote::Remote>,
    /// Writers without the index: the hashes this process computed.
    own_hashes: std::sync::Mutex<std::collections::HashMap<PathBuf, CachedHash>>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        // While the lock is still held. A snapshot that is lost or stale only costs rehashing.
        if let Some(index) = self.index() {
            let records = index.file_hash_records();
            let tmp = self
                .root
                .join(format!("{FILE_HASHES_TMP_PREFIX}{}", std::process::id()));
            if serde_json::to_vec(&records)
                .ok()
                .is_some_and(|bytes| fs::write(&tmp, bytes).is_ok())
            {
                let _ = fs::rename(&tmp, self.root.join(FILE_HASHES));
            }
        }
    }
}

pub(crate) struct Writer {
    /// The sled index, when this process holds it (always, for an exclusive writer).
    pub index: Option<Index>,
    pub exclusive: bool,
    /// `tmp/<session>/`, where this writer stages.
    session: PathBuf,
    _session_lock: HeldFile,
    _index_lock: Option<HeldFile>,
    _lock: CacheLock,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Still holding the session lock: nobody else removes it meanwhile. What is left (a
        // crash) goes when the next writer finds the lock free.
        let _ = fs::remove_dir_all(&self.session);
        let mut lock = self.session.clone().into_os_string();
        lock.push(SESSION_LOCK_SUFFIX);
        let _ = fs::remove_file(lock);
    }
}

impl Writer {
    /// `tmp/` names this writer owns start with it (its session directory and lock).
    pub(crate) fn session_name(&self) -> String {
        self.session
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct HashCounters {
    stat_cache_hits: AtomicU64,
    files_hashed: AtomicU64,
}

/// How [`Cache::hash_file`] calls were answered since the cache was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HashStats {
    /// Answered from the stat cache without reading the file.
    pub stat_cache_hits: u64,
    /// Read and hashed.
    pub files_hashed: u64,
}

/// What [`Cache::find`] found under a key.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<Entry>),
    Absent,
    /// An entry is there but unusable; the reason is for the user.
    Damaged(String),
}

/// A fresh directory a stage writes its output into, then hands to [`Cache::publish`]. Dropping
/// it unpublished (a failed stage) deletes the directory.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    pub key: Key,
    published: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Cache {
    /// Opens (creating if needed) the cache at `root` for writing, shared with any other writers:
    /// removes what dead writers left in `tmp/`, and keeps the index if no other writer does
    /// (moving a damaged one aside and rebuilding it from the artifact directories).
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        Cache::open_as(root, LockMode::Shared)
    }

    /// Opens the cache as its only writer (for `verify` and `gc`): refused while any other
    /// process has it open for writing. Empties `tmp/`.
    pub fn open_exclusive(root: &Path) -> Result<Cache, CacheError> {
        Cache::open_as(root, LockMode::Exclusive)
    }

    fn open_as(root: &Path, mode: LockMode) -> Result<Cache, CacheError> {
        // Marked before the lock file exists, so a second run starting at the same moment sees
        // a marked cache (held by the first), never an unmarked non-empty directory.
        if !claim_root(root)? {
            write_markers(root)?;
        }
        let lock = CacheLock::acquire(&root.join(LOCK), mode)?;
        refuse_linked_subdirectories(root)?;
        for sub in [ARTIFACTS, TMP, WORK, QUARANTINE, MEMO, CLAIMS, JOBS] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(CacheError::io("create", &dir))?;
        }
        let exclusive = mode == LockMode::Exclusive;
        if exclusive {
            empty_dir(&root.join(TMP))?;
        } else {
            remove_dead_sessions(&root.join(TMP))?;
        }
        let (session, session_lock) = new_session(&root.join(TMP))?;
        let index_lock = HeldFile::try_take(&root.join(INDEX_LOCK), true)?;
        let (index, rebuild) = match &index_lock {
            Some(_) => {
                let (index, rebuild) = open_index(root)?;
                (Some(index), rebuild)
            }
            None => (None, false),
        };
        let cache = Cache {
            root: root.to_path_buf(),
            writer: Some(Writer {
                index,
                exclusive,
                session,
                _session_lock: session_lock,
                _index_lock: index_lock,
                _lock: lock,
            }),
            hashes: HashCounters::default(),
            snapshot: Default::default(),
            content_checked: Default::default(),
            remote: None,
            own_hashes: Default::default(),
        };
        if rebuild {
            cache.entries()?;
        }
        Ok(cache)
    }

    /// Opens the cache at `root` for reading only: no lock, no writes, no index (sled has no
    /// read-only mode: opening it takes its own lock and may write), so entries are read from
    /// the artifact directories' metadata files. A missing cache directory is an empty cache.
    pub fn open_read_only(root: &Path) -> Result<Cache, CacheError> {
        if root.exists() {
            claim_root(root)?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            writer: None,
            hashes: HashCounters::default(),
            snapshot: Default::default(),
            content_checked: Default::default(),
            remote: None,
            own_hashes: Default::default(),
        })
    }

    /// Reads through to `remote`: from now on a missing entry that the remote holds is
    /// downloaded, verified and published here (by a writer; a read-only cache only reads).
    pub fn set_remote(&mut self, remote: super::remote::Remote) {
        self.remote = Some(remote);
    }

    pub fn remote(&self) -> Option<&super::remote::Remote> {
        self.remote.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    pub(crate) fn writer(&self, operation: &'static str) -> Result<&Writer, CacheError> {
        self.writer
            .as_ref()
            .ok_or(CacheError::ReadOnly { operation })
    }

    /// The index, for the process that holds it.
    pub(crate) fn index(&self) -> Option<&Index> {
        self.writer.as_ref().and_then(|w| w.index.as_ref())
    }

    /// The index of an exclusive writer (maintenance needs every other writer gone).
    pub(crate) fn exclusive_index(&self, operation: &'static str) -> Result<&Index, CacheError> {
        match self.writer(operation)? {
            Writer {
                index: Some(index),
                exclusive: true,
                ..
            } => Ok(index),
            _ => Err(CacheError::NotExclusive { operation }),
        }
    }

    /// Whether this process holds the sled index (one writer at a time does).
    pub fn holds_index(&self) -> bool {
        self.index().is_some()
    }

    /// Takes the right to compute `key`, which one process at a time holds, waiting (after
    /// telling `waiting` who holds it) while another process computes it. Whoever waited should
    /// look `key` up again: the holder has usually published it.
    pub fn claim(&self, key: &Key, waiting: &dyn Fn(&str)) -> Result<Claim, CacheError> {
        self.writer("claim a key")?;
        let path = self.root.join(CLAIMS).join(key.to_string());
        if let Some(held) = HeldFile::try_take(&path, true)? {
            return Ok(Claim { _held: held });
        }
        waiting(&read_holder(&path).unwrap_or_else(|| "another process".into()));
        Ok(Claim {
            _held: HeldFile::take(&path)?,
        })
    }

    /// `jobs/<key>/`, created if needed: a scheduler job's script, log and exit status.
    pub fn jobs_dir(&self, key: &Key) -> Result<PathBuf, CacheError> {
        let dir = self.root.join(JOBS).join(key.to_string());
        fs::create_dir_all(&dir).map_err(CacheError::io("create the job directory", &dir))?;
        Ok(dir)
    }

    pub(crate) fn artifact_dir(&self, key: &Key) -> PathBuf {
        self.root.join(ARTIFACTS).join(key.to_string())
    }

    /// The published entry for `key`, if its directory holds a consistent metadata file and
    /// every listed file unchanged since publication (see [`Cache::find`]).
    pub fn lookup(&self, key: &Key) -> Result<Option<Entry>, CacheError> {
        Ok(match self.find(key)? {
            Lookup::Found(entry) => Some(*entry),
            Lookup::Absent | Lookup::Damaged(_) => None,
        })
    }

    /// What is stored under `key`. Files are checked by size and stat stamp, and re-hashed when
    /// the stamp differs, so a file edited after publication is never used. A writer moves a
    /// damaged entry to quarantine (it is then recomputed) and indexes a valid one it finds
    /// unindexed.
    pub fn find(&self, key: &Key) -> Result<Lookup, CacheError> {
        self.find_as(key, true)
    }

    /// [`Cache::find`]; with `condemn` false a damaged entry is only reported, not quarantined.
    fn find_as(&self, key: &Key, condemn: bool) -> Result<Lookup, CacheError> {
        let dir = self.artifact_dir(key);
        let damage = match self.indexed_or_read(key, &dir)? {
            Ok(record) => match check_files_unchanged(&dir, &record.files)? {
                Ok(()) => return Ok(Lookup::Found(Box::new(record.into_entry(dir)))),
                Err(reason) => reason,
            },
            Err(_) if fs::symlink_metadata(&dir).is_err() => {
                return Ok(match self.read_through(key)? {
                    Some(entry) => Lookup::Found(Box::new(entry)),
                    None => Lookup::Absent,
                });
            }
            Err(reason) => reason,
        };
        if !condemn {
            return Ok(Lookup::Damaged(damage));
        }
        Ok(Lookup::Damaged(self.condemn(key, &dir, damage)?))
    }

    /// The remote's entry under `key`, downloaded into this cache, when there is a remote, this
    /// cache is a writer, and the remote has a sound entry.
    fn read_through(&self, key: &Key) -> Result<Option<Entry>, CacheError> {
        match (&self.remote, &self.writer) {
            (Some(remote), Some(_)) => {
                let entry = remote.fetch(self, key)?;
                if let Some(entry) = &entry {
                    // Its files were hashed on the way in.
                    self.content_checked_set().insert(entry.key);
                }
                Ok(entry)
            }
            _ => Ok(None),
        }
    }

    /// Re-hashes every file of `entry` before a stage consumes it or `check` reads it, the first
    /// time this process uses it (afterwards, files whose stat changed). A damaged entry is
    /// quarantined by a writer; `Err` says what changed.
    pub fn verify_for_use(&self, entry: &Entry) -> Result<Result<(), String>, CacheError> {
        let known = self.content_checked_set().contains(&entry.key);
        let result = if known {
            check_files_unchanged(&entry.dir, &entry.files)?
        } else {
            check_files_content(&entry.dir, &entry.files)?
        };
        match result {
            Ok(()) => {
                self.content_checked_set().insert(entry.key);
                Ok(Ok(()))
            }
            Err(reason) => {
                self.content_checked_set().remove(&entry.key);
                Ok(Err(self.condemn(&entry.key, &entry.dir, reason)?))
            }
        }
    }

    fn content_checked_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Key>> {
        self.content_checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A writer quarantines a damaged entry; the returned reason says what happened to it.
    fn condemn(&self, key: &Key, dir: &Path, reason: String) -> Result<String, CacheError> {
        if self.writer.is_none() {
            return Ok(format!(
                "the cached entry is damaged: {reason} (`apitune run` or `apitune verify` moves it to quarantine)"
            ));
        }
        self.quarantine_dir(dir, &key.to_string(), &reason)?;
        Ok(format!(
            "the cached entry was damaged ({reason}) and moved to quarantine"
        ))
    }

    /// The entry record for `dir`: from the index when its record was read from the metadata
    /// file as it is now, else from the file (and then re-indexed). `Err(reason)` when the
    /// directory is missing or its metadata is unusable.
    pub(crate) fn indexed_or_read(
        &self,
        key: &Key,
        dir: &Path,
    ) -> Result<Result<EntryRecord, String>, CacheError> {
        let stamp = match fs::metadata(entry_file_path(dir)) {
            Ok(meta) => FileStamp::of(&meta),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Err(format!("no {ENTRY_FILE}")));
            }
            Err(source) => {
                return Err(CacheError::Io {
                    action: "read metadata of",
                    path: entry_file_path(dir),
                    cause: source,
                });
            }
        };
        if let Some(index) = self.index()
            && let Some(indexed) = index.entry(key)?
            && indexed.entry_file == stamp
            && indexed.record.key == *key
        {
            return Ok(Ok(indexed.record));
        }
        let record = match read_record_of(dir, key)? {
            Ok(record) => record,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Some(index) = self.index() {
            index.put_entry(&IndexedEntry {
                record: record.clone(),
                entry_file: stamp,
            })?;
        }
        Ok(Ok(record))
    }

    /// All live entries (valid metadata, files present with their sizes), oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut entries = Vec::new();
        for (name, _) in list_children(&self.root.join(ARTIFACTS))? {
            let Ok(key) = name.parse::<Key>() else {
                continue;
            };
            // Damaged entries are left for `find` (or verify) to report and quarantine.
            if let Lookup::Found(entry) = self.find_as(&key, false)? {
                entries.push(*entry);
            }
        }
        entries.sort_by_key(|e| (e.created_unix_ms, e.key));
        Ok(entries)
    }

    /// The most recently created live entry of a stage arm (e.g. `lora[samples=1000]`): what
    /// `explain` diffs a missing key's manifest against.
    pub fn latest_entry_for_stage(&self, stage: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.entries()?.into_iter().rfind(|e| e.meta.stage == stage))
    }

    fn snapshot(&self) -> &std::collections::HashMap<PathBuf, CachedHash> {
        self.snapshot.get_or_init(|| {
            fs::read(self.root.join(FILE_HASHES))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Vec<(PathBuf, CachedHash)>>(&bytes).ok())
                .map(|records| records.into_iter().collect())
                .unwrap_or_default()
        })
    }

    /// blake3 of an input file's contents. A writer remembers it against the file's stat
    /// (size, mtime, ctime, inode, device), so an unchanged multi-GB weights file is read once;
    /// a read-only cache uses the records the last writer left in `file-hashes.json`.
    pub fn hash_file(&self, path: &Path) -> Result<blake3::Hash, CacheError> {
        let meta = fs::metadata(path).map_err(CacheError::io("read metadata of", path))?;
        if !meta.is_file() {
            return Err(CacheError::Io {
                action: "hash",
                path: path.to_path_buf(),
                cause: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        let stamp = FileStamp::of(&meta);
        let abs = std::path::absolute(path).map_err(CacheError::io("resolve", path))?;
        let cached = match self.index() {
            Some(index) => index.cached_hash(&abs, &stamp)?,
            None => self
                .own_hashes()
                .get(&abs)
                .or_else(|| self.snapshot().get(&abs))
                .and_then(|c| c.hash_if(&stamp)),
        };
        if let Some(hash) = cached {
            self.hashes.stat_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hash);
        }
        let started_ns = now_ns();
        let hash = hash_file_contents(path)?;
        self.hashes.files_hashed.fetch_add(1, Ordering::Relaxed);
        let unchanged = FileStamp::of_path(path)? == stamp;
        if unchanged && stamp.mtime_ns < started_ns - RACY_WINDOW_NS {
            match self.index() {
                Some(index) => index.put_cached_hash(&abs, &stamp, &hash)?,
                None if self.writer.is_some() => {
                    self.own_hashes().insert(abs, CachedHash::new(stamp, &hash));
                }
                None => {}
            }
        }
        Ok(hash)
    }

    fn own_hashes(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, CachedHash>> {
        self.own_hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Content hash of an input path: a file's blake3 ([`Cache::hash_file`]), or for a directory
    /// the Merkle hash over all its files (same encoding as [`digest_dir`](super::digest_dir),
    /// but nothing is left out and symbolic links are followed).
    pub fn hash_path(&self, path: &Path) -> Result<blake3::Hash, CacheError> {
        let meta = fs::metadata(path).map_err(CacheError::io("read metadata of", path))?;
        if !meta.is_dir() {
            return self.hash_file(path);
        }
        let files = list_files(path, Links::Follow, None)?;
        let mut hashed = Vec::with_capacity(files.len());
        for file in &files {
            hashed.push((file.rel.as_str(), self.hash_file(&file.abs)?));
        }
        Ok(merkle(hashed))
    }

    pub fn hash_stats(&self) -> HashStats {
        HashStats {
            stat_cache_hits: self.hashes.stat_cache_hits.load(Ordering::Relaxed),
            files_hashed: self.hashes.files_hashed.load(Ordering::Relaxed),
        }
    }

    /// A fresh, empty staging directory `tmp/<session>/<key>.<nonce>` for a stage's output.
    pub fn staging(&self, key: &Key) -> Result<Staging, CacheError> {
        let writer = self.writer("create a staging directory")?;
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
        let dir = writer.session.join(format!("{key}.{nonce}"));
        fs::create_dir(&dir).map_err(CacheError::io("create the staging directory", &dir))?;
        Ok(Staging {
            dir,
            key: *key,
            published: false,
        })
    }

    /// `work/<key>/`, created if needed: where a long stage keeps checkpoints so an interrupted
    /// run resumes. Not atomic, unlike staging; the stage must cope with partial contents.
    /// Removed when `<key>` is published.
    pub fn work_dir(&self, key: &Key) -> Result<PathBuf, CacheError> {
        self.writer("create a work directory")?;
        let dir = self.root.join(WORK).join(key.to_string());
        fs::create_dir_all(&dir).map_err(CacheError::io("create the work directory", &dir))?;
        Ok(dir)
    }

    /// Publishes a staging directory as the entry for its key: hashes and fsyncs every file,
    /// writes the metadata file, fsyncs, renames the directory to `artifacts/<key>` and indexes
    /// it. If a valid entry for the key exists already (the same stage finished twice), that
    /// one is kept and returned and the staging directory is discarded.
    pub fn publish(&self, mut staging: Staging, meta: EntryMeta) -> Result<Entry, CacheError> {
        let writer = self.writer("publish")?;
        let from_manifest = meta.key_manifest.key();
        if from_manifest != staging.key {
            return Err(CacheError::KeyMismatch {
                staged: staging.key,
                from_manifest,
            });
        }
        let key = staging.key;
        let reserved = staging.dir.join(ENTRY_FILE);
        if fs::symlink_metadata(&reserved).is_ok() {
            return Err(CacheError::InvalidArtifact {
                path: reserved,
                reason: format!("`{ENTRY_FILE}` is reserved for the cache's own metadata"),
            });
        }

        let found = list_files(&staging.dir, Links::Reject, None)?;
        let mut files = Vec::with_capacity(found.len());
        for file in &found {
            let hash = hash_file_contents(&file.abs)?;
            make_read_only(&file.abs)?;
            fsync_file(&file.abs)?;
            files.push(EntryFile {
                path: file.rel.clone(),
                size: file.size,
                blake3: hash.to_hex().to_string(),
                stamp: Some(FileStamp::of_path(&file.abs)?),
            });
        }
        let record = EntryRecord::new(key, files, unix_ms(), meta);
        write_record(&staging.dir, &record)?;
        fsync_dirs_under(&staging.dir)?;

        let target = self.artifact_dir(&key);
        if let Err(source) = fs::rename(&staging.dir, &target) {
            if !target.exists() {
                return Err(CacheError::Io {
                    action: "publish into",
                    path: target,
                    cause: source,
                });
            }
            if let Some(existing) = self.lookup(&key)? {
                remove_if_exists(&self.root.join(WORK).join(key.to_string()))?;
                return Ok(existing); // `staging` drops and deletes itself
            }
            self.quarantine_dir(
                &target,
                &key.to_string(),
                "replaced by a new publish: it was invalid",
            )?;
            fs::rename(&staging.dir, &target).map_err(CacheError::io("publish into", &target))?;
        }
        staging.published = true;
        fsync_dir(&self.root.join(ARTIFACTS))?;

        if let Some(index) = &writer.index {
            let stamp = FileStamp::of_path(&entry_file_path(&target))?;
            index.put_entry(&IndexedEntry {
                record: record.clone(),
                entry_file: stamp,
            })?;
        }
        remove_if_exists(&self.root.join(WORK).join(key.to_string()))?;
        self.content_checked_set().insert(key);
        Ok(record.into_entry(target))
    }

    /// Moves `path` (an artifact directory or stray file) into `quarantine/`, with a sibling
    /// `.reason` file saying why, after dropping its index record.
    pub(crate) fn quarantine_dir(
        &self,
        path: &Path,
        name: &str,
        reason: &str,
    ) -> Result<(), CacheError> {
        let writer = self.writer("quarantine an entry")?;
        if let (Ok(key), Some(index)) = (name.parse::<Key>(), &writer.index) {
            index.remove_entry(&key)?;
        }
        let quarantine = self.root.join(QUARANTINE);
        let stem = format!("{name}.{}", unique_suffix());
        let target = quarantine.join(&stem);
        fs::rename(path, &target).map_err(CacheError::io("move into quarantine", path))?;
        fsync_dir(&self.root.join(ARTIFACTS))?;
        let _ = fs::write(
            quarantine.join(format!("{stem}.reason")),
            format!("{reason}\n"),
        );
        Ok(())
    }
}

/// The right to compute one key, held until dropped (see [`Cache::claim`]).
#[derive(Debug)]
pub struct Claim {
    _held: HeldFile,
}

/// Distinguishes names created in this process (staging dirs, quarantine and trash names).
static NONCE: AtomicU64 = AtomicU64::new(0);

/// `<unix ms>-<nonce>`: unique within this process, and readable as a time.
pub(crate) fn unique_suffix() -> String {
    format!("{}-{}", unix_ms(), NONCE.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Children of `dir` as (name, path); a missing directory has none. Non-UTF-8 names are
/// returned lossily (they never match a key, so they are only ever cleaned up).
pub(crate) fn list_children(dir: &Path) -> Result<Vec<(String, PathBuf)>, CacheError> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CacheError::Io {
                action: "list directory",
                path: dir.to_path_buf(),
                cause: source,
            });
        }
    };
    let mut children = Vec::new();
    for item in reader {
        let item = item.map_err(CacheError::io("list directory", dir))?;
        children.push((item.file_name().to_string_lossy().into_owned(), item.path()));
    }
    children.sort();
    Ok(children)
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), CacheError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(CacheError::io("remove", path))
}

/// Opens the sled index, moving a damaged one aside; `true` when it must be rebuilt.
fn open_index(root: &Path) -> Result<(Index, bool), CacheError> {
    let index_path = root.join(INDEX);
    match Index::open(&index_path) {
        Ok(index) => Ok((index, false)),
        // Held by some other process that ignored our lock: not damage, so leave it be.
        Err(e @ CacheError::Index { .. }) if e.to_string().contains(SLED_LOCKED) => Err(e),
        Err(_) => {
            let aside = root.join(format!("{BROKEN_INDEX_PREFIX}{}", unix_ms()));
            fs::rename(&index_path, &aside)
                .map_err(CacheError::io("move the damaged index aside", &index_path))?;
            Ok((Index::open(&index_path)?, true))
        }
    }
}

/// Starts this writer's session: its lock (held), then its directory.
fn new_session(tmp: &Path) -> Result<(PathBuf, HeldFile), CacheError> {
    let host = blake3::hash(super::lock::holder_description().as_bytes()).to_hex();
    let name = format!("{SESSION_PREFIX}{}-{}", &host[..12], unique_suffix());
    let lock_path = tmp.join(format!("{name}{SESSION_LOCK_SUFFIX}"));
    let lock = HeldFile::try_take(&lock_path, false)?.ok_or_else(|| CacheError::Io {
        action: "lock",
        path: lock_path.clone(),
        cause: io::Error::new(io::ErrorKind::AlreadyExists, "session name in use"),
    })?;
    let dir = tmp.join(name);
    fs::create_dir(&dir).map_err(CacheError::io("create the staging session", &dir))?;
    Ok((dir, lock))
}

/// Removes the sessions in `tmp/` whose writer is gone (its session lock is free), and
/// anything else there that no live session owns: leftovers of interrupted runs.
fn remove_dead_sessions(tmp: &Path) -> Result<(), CacheError> {
    for (name, path) in list_children(tmp)? {
        if let Some(session) = name.strip_suffix(SESSION_LOCK_SUFFIX) {
            if let Some(_dead) = HeldFile::try_take(&path, false)? {
                remove_if_exists(&tmp.join(session))?;
                remove_if_exists(&path)?;
            }
            continue;
        }
        // A live writer locks its session before creating its directory, so a directory
        // without its lock is dead; so is anything not a session (trash of an interrupted gc,
        // which ran alone, or staging dirs of older versions).
        let owned = name.starts_with(SESSION_PREFIX)
            && tmp.join(format!("{name}{SESSION_LOCK_SUFFIX}")).exists();
        if !owned {
            remove_if_exists(&path)?;
        }
    }
    Ok(())
}

fn empty_dir(dir: &Path) -> Result<(), CacheError> {
    for (_, path) in list_children(dir)? {
        remove_if_exists(&path)?;
    }
    Ok(())
}

/// Published files are read-only for everyone (0444 on Unix), whatever mode the stage gave them:
/// an artifact is never edited in place, and a world-writable one could be.
fn make_read_only(path: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o444))
            .map_err(CacheError::io("set read-only permissions on", path))?;
    }
    #[cfg(not(unix))]
    {
        let mut perms = fs::metadata(path)
            .map_err(CacheError::io("read metadata of", path))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(path, perms)
            .map_err(CacheError::io("set read-only permissions on", path))?;
    }
    Ok(())
}

fn fsync_file(path: &Path) -> Result<(), CacheError> {
    let file = fs::File::open(path).map_err(CacheError::io("open for fsync", path))?;
    file.sync_all().map_err(CacheError::io("fsync", path))
}

/// fsync of a directory makes its entries (new names, renames) durable. Unix only: elsewhere
/// directories cannot be opened as files.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), CacheError> {
    if cfg!(unix) {
        fsync_file(dir)?;
    }
    Ok(())
}

/// fsyncs every directory under `dir` (and `dir`), normalising their modes to 0755 on Unix so
/// no published directory is writable by others.
fn fsync_dirs_under(dir: &Path) -> Result<(), CacheError> {
    for (_, path) in list_children(dir)? {
        if fs::symlink_metadata(&path)
            .map_err(CacheError::io("read metadata of", &path))?
            .is_dir()
        {
            fsync_dirs_under(&path)?;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(CacheError::io("set permissions on", dir))?;
    }
    fsync_dir(dir)
}

/// Files that keep an otherwise empty directory in version control; a directory holding only
/// these is empty for [`claim_root`] (and they are left alone).
const PLACEHOLDERS: [&str; 2] = [".gitkeep", ".keep"];

/// Decides whether `root` may be used as a cache, creating it if missing. `Ok(true)`: it carries
/// our format marker. `Ok(false)`: it is new, empty, or a cache from before the marker existed,
/// and the caller (a writer) marks it. A foreign non-empty directory or another format is refused.
fn claim_root(root: &Path) -> Result<bool, CacheError> {
    if !root.exists() {
        fs::create_dir_all(root).map_err(CacheError::io("create the cache directory", root))?;
        return Ok(false);
    }
    let meta = fs::metadata(root).map_err(CacheError::io("read metadata of", root))?;
    if !meta.is_dir() {
        return Err(CacheError::Foreign {
            path: root.to_path_buf(),
        });
    }
    match fs::read_to_string(root.join(CACHE_MARKER)) {
        Ok(text) => {
            let found = text
                .trim()
                .strip_prefix("apitune cache format ")
                .unwrap_or(text.trim());
            if found == CACHE_FORMAT.to_string() {
                return Ok(true);
            }
            return Err(CacheError::Format {
                path: root.to_path_buf(),
                found: found.to_string(),
                expected: CACHE_FORMAT,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(cause) => {
            return Err(CacheError::Io {
                action: "read",
                path: root.join(CACHE_MARKER),
                cause,
            });
        }
    }
    let legacy =
        fs::read_to_string(root.join(CACHEDIR_TAG)).is_ok_and(|tag| tag.contains(LEGACY_TAG_TEXT));
    let only_placeholders = list_children(root)?
        .iter()
        .all(|(name, _)| PLACEHOLDERS.contains(&name.as_str()));
    if legacy || only_placeholders {
        return Ok(false);
    }
    Err(CacheError::Foreign {
        path: root.to_path_buf(),
    })
}

/// `CACHEDIR.TAG` tells backup tools to skip the directory (https://bford.info/cachedir/);
/// `apitune-cache` tells apitune the directory is its own, and in which format.
fn write_markers(root: &Path) -> Result<(), CacheError> {
    let tag = root.join(CACHEDIR_TAG);
    if !tag.exists() {
        let text = format!(
            "Signature: 8a477f597d28d172789f06886806bc55\n# {LEGACY_TAG_TEXT}: safe to delete; see `apitune gc`.\n"
        );
        fs::write(&tag, text).map_err(CacheError::io("write", &tag))?;
    }
    let marker = root.join(CACHE_MARKER);
    fs::write(&marker, format!("apitune cache format {CACHE_FORMAT}\n"))
        .map_err(CacheError::io("write", &marker))
}

fn refuse_linked_subdirectories(root: &Path) -> Result<(), CacheError> {
    for sub in OWNED_SUBDIRS {
        let path = root.join(sub);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(CacheError::LinkedSubdirectory { path });
        }
    }
    Ok(())
}
