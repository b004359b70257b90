//! The content-addressed stage cache.
//!
//! A stage's output is stored under a [`Key`] computed from everything it depends on (a
//! [`KeyManifest`]: kind, version, resolved params, input digests, runtime facts). Outputs are
//! directories, identified by a Merkle [`Digest`] over their files, published atomically into
//! `artifacts/<key>/` with a self-describing metadata file. A sled index accelerates listing and
//! remembers input-file hashes, but can always be rebuilt from the directories. See
//! [`store`](self::Cache) for the on-disk layout and the crash-safety argument.
//!
//! ```no_run
//! # use apitune::cache::*;
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
mod store;

pub use digest::{ENTRY_FILE, digest_dir, hash_file_contents};
pub use entry::{Entry, EntryFile, EntryMeta};
pub use error::CacheError;
pub use ids::{Digest, Key, ParseIdError};
pub use key::{FieldDiff, KeyManifest, canonical_json};
pub use maintenance::{GcReport, VerifyReport};
pub use store::{Cache, HashStats, Staging};
