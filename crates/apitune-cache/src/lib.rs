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
//!   lock                 single-writer lock (holder's pid)
//!   index.sled/          accelerator index (rebuildable)
//!   file-hashes.json     the last writer's stat cache of input-file hashes, for read-only commands
//!   artifacts/<key>/     published entries: the stage's files + .apitune-entry.json
//!   tmp/                 staging dirs and directories being deleted; emptied by every writer open
//!   work/<key>/          resumable state of long stages; removed when <key> is published
//!   quarantine/          entries that failed verification, kept for inspection until gc
//!   memo/<id>/*.jsonl    checksummed logs of intermediate results shared across keys (see [`memo`])
//! ```
//!
//! None of these subdirectories may be a symbolic link (opening refuses it), and a directory that
//! is neither empty nor marked is refused: apitune never deletes what it did not create.
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
pub use maintenance::{GcReport, VerifyReport};
pub use remote::{Pushed, Remote};
pub use store::{CACHE_FORMAT, CACHE_MARKER, Cache, HashStats, Lookup, Staging};
