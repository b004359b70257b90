//! The content-addressed stage cache.
//!
//! A stage's output is stored under a [`Key`] computed from everything it depends on (a
//! [`KeyManifest`]: kind, version, resolved params, input digests, runtime facts). Outputs are
//! directories, identified by a Merkle [`Digest`] over their files, published atomically into
//! `artifacts/<key>/` with a self-describing metadata file. A sled index accelerates listing and
//! remembers input-file hashes, but can always be rebuilt from the directories.
//!
//! # Layout
//!
//! ```text
//! root/
//!   CACHEDIR.TAG         tells backup tools to skip the directory
//!   apitune-cache        "apitune cache format N": apitune only deletes inside marked directories
//!   lock                 held shared by every writer, exclusive by maintenance (its pid)
//!   index.lock           held by the one writer that keeps the index
//!   index.sled/          accelerator index (rebuildable)
//!   file-hashes.json     the index holder's stat cache of input-file hashes, for the others
//!   artifacts/<key>/     published entries: the stage's files + .apitune-entry.json
//!   tmp/<session>/       a writer's staging dirs, with tmp/<session>.lock held while it lives;
//!                        dead sessions are removed by the next writer
//!   work/<key>/          resumable state of long stages; removed when <key> is published
//!   claims/<key>         held by the process computing <key> (so it is computed once)
//!   jobs/<key>/          a scheduler job's script, log and exit status
//!   quarantine/          entries that failed verification, kept for inspection until gc
//!   memo/<id>/*.jsonl    checksummed logs of intermediate results shared across keys (see [`memo`])
//! ```
//!
//! None of these subdirectories may be a symbolic link (opening refuses it), and a directory that
//! is neither empty nor marked is refused: apitune never deletes what it did not create.
//!
//! Any number of processes, on any number of nodes sharing the directory, write the cache at
//! once: publishing is a rename, which the file system makes atomic, and a key is computed only
//! under its claim. The sled index is single-process, so one writer at a time keeps it; the
//! others read entries from their metadata files, which hold everything the index does.
//! All locks are `flock`s, which the kernel drops when their holder dies.
//!
//! Crash safety rests on one atomic step: an entry becomes visible only when its complete,
//! fsynced staging directory (metadata file included) is renamed to `artifacts/<key>`; entries
//! leave `artifacts/` by a rename too (into `tmp/` or `quarantine/`). A process killed at any
//! instant therefore leaves `artifacts/` holding only complete entries, plus leftovers in `tmp/`
//! that the next writer removes. The index is updated after each rename; a missing or stale
//! index record is detected (by the metadata file's stat stamp) and rebuilt from the directory.
//!
//! The key encoding is specified on [`KeyManifest`], the directory digest on [`digest_dir`].
//!
//! # Example
//!
//! ```no_run
//! # use apitune_cache::*;
//! # fn main() -> Result<(), CacheError> {
//! let cache = Cache::open(std::path::Path::new("cache"))?;
//! let manifest = KeyManifest::new().with("kind", "normalize").with("version", 1);
//! let key = manifest.key();
//! if cache.lookup(&key)?.is_none() {
//!     let staging = cache.staging(&key)?;
//!     std::fs::write(staging.dir.join("train.jsonl"), "{}\n").unwrap();
//!     let meta = EntryMeta {
//!         stage: "split".into(), kind: "normalize".into(), key_manifest: manifest,
//!         started_unix_ms: 0, duration_s: 0.1, summary: serde_json::json!({"records": 1}),
//!     };
//!     cache.publish(staging, meta)?;
//! }
//! # Ok(()) }
//! ```

mod digest;
mod entry;
mod error;
mod ids;
mod index;
mod key;
mod lock;
mod maintenance;
pub mod memo;
mod remote;
mod store;

pub use digest::{ENTRY_FILE, digest_dir, hash_file_contents};
pub use entry::{Entry, EntryFile, EntryMeta};
pub use error::CacheError;
pub use error::is_environment_error;
pub use ids::{Digest, Key, ParseIdError};
pub use index::FileStamp;
pub use key::{FieldDiff, KeyManifest, canonical_json};
pub use lock::holder_description;
pub use maintenance::{GcReport, VerifyReport};
pub use remote::{Pushed, Remote};
pub use store::{CACHE_FORMAT, CACHE_MARKER, Cache, Claim, HashStats, JOBS_DIR, Lookup, Staging};
