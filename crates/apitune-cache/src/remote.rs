//! A second cache on object storage, through the `object_store` crate: S3 and S3-compatible
//! servers (`s3://bucket/prefix`), Google Cloud Storage (`gs://`), Azure (`az://`, `abfs://`), or
//! a local or shared directory (`file:///path` or a plain path). Credentials and endpoints come
//! from each store's standard environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`,
//! `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_ACCOUNT_NAME`, ...), never from a manifest.
//!
//! # Layout
//!
//! ```text
//! <remote>/apitune-cache-v1/blobs/<blake3>       a file's contents, named by their blake3
//! <remote>/apitune-cache-v1/entries/<key>.json   an entry's metadata: its key manifest and
//!                                                 the Merkle list of its files (path, size, hash)
//! ```
//!
//! Blobs are written before the entry that lists them, and every object is written with
//! create-if-absent semantics (`PutMode::Create`: S3 `If-None-Match: *`, a no-clobber link on a
//! filesystem): an entry, once there, is never replaced, and two writers of one key cannot mix
//! their files, since a blob's name is its content. Everything downloaded is re-hashed before it
//! enters the local cache; an object whose hash differs from its name or listing is refused and
//! reported, never used.

use std::fs;
use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::Cache;
use super::entry::{Entry, EntryRecord, entry_file_path};
use super::error::CacheError;
use super::ids::Key;

const ROOT: &str = "apitune-cache-v1";
/// Files above this are uploaded in parts, not read into memory whole.
const SINGLE_PUT_BYTES: u64 = 32 << 20;

/// A remote cache (see the module docs).
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    url: String,
    runtime: tokio::runtime::Runtime,
    refused: Mutex<Vec<String>>,
    fetched: Mutex<Vec<(Key, u64)>>,
}

/// What [`Remote::push`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Uploaded: the blobs the remote lacked, and their bytes.
    Uploaded { blobs: usize, bytes: u64 },
    /// The remote has the entry already (it is never replaced).
    Present,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// The remote at `url`; see the module docs for the schemes.
    pub fn open(url: &str) -> Result<Remote, CacheError> {
        let fail = |message: String| CacheError::Remote {
            url: url.to_string(),
            action: "open",
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let store = match url.split_once("://") {
            Some((scheme, rest)) if scheme != "file" => cloud_store(scheme, url, rest),
            Some((_, path)) => local_store(path),
            None => local_store(url),
        }
        .map_err(fail)?;
        Ok(Remote {
            store,
            url: url.to_string(),
            runtime,
            refused: Mutex::new(Vec::new()),
            fetched: Mutex::new(Vec::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn entry_path(key: &Key) -> ObjectPath {
        ObjectPath::from(format!("{ROOT}/entries/{key}.json"))
    }

    fn blob_path(blake3_hex: &str) -> ObjectPath {
        ObjectPath::from(format!("{ROOT}/blobs/{blake3_hex}"))
    }

    fn error(&self, action: &'static str, e: impl std::fmt::Display) -> CacheError {
        CacheError::Remote {
            url: self.url.clone(),
            action,
            message: e.to_string(),
        }
    }

    fn exists(&self, path: &ObjectPath) -> Result<bool, CacheError> {
        match self.runtime.block_on(self.store.head(path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("look up", e)),
        }
    }

    /// Whether the remote holds an entry under `key`.
    pub fn has(&self, key: &Key) -> Result<bool, CacheError> {
        self.exists(&Self::entry_path(key))
    }

    /// Uploads `entry` (a valid local entry): the blobs the remote lacks, then its metadata,
    /// unless the remote has an entry under the key already.
    pub fn push(&self, entry: &Entry) -> Result<Pushed, CacheError> {
        if self.has(&entry.key)? {
            return Ok(Pushed::Present);
        }
        let (mut blobs, mut bytes) = (0, 0);
        for file in &entry.files {
            let target = Self::blob_path(&file.blake3);
            if self.exists(&target)? {
                continue;
            }
            self.upload(&entry.dir.join(&file.path), file.size, &target)?;
            blobs += 1;
            bytes += file.size;
        }
        let metadata = entry_file_path(&entry.dir);
        let record = fs::read(&metadata).map_err(CacheError::io("read", &metadata))?;
        let created = self
            .put_new(&Self::entry_path(&entry.key), record)
            .map_err(|e| self.error("upload the entry metadata to", e))?;
        // When not created, another writer published this key first: theirs stays.
        Ok(match created {
            true => Pushed::Uploaded { blobs, bytes },
            false => Pushed::Present,
        })
    }

    /// Writes `bytes` at `target` unless something is there already; whether it wrote.
    fn put_new(&self, target: &ObjectPath, bytes: Vec<u8>) -> object_store::Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let put = self
            .store
            .put_opts(target, PutPayload::from(bytes), options);
        match self.runtime.block_on(put) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads the file at `source` as the blob `target`.
    fn upload(
        &self,
        source: &std::path::Path,
        size: u64,
        target: &ObjectPath,
    ) -> Result<(), CacheError> {
        if size <= SINGLE_PUT_BYTES {
            let bytes = fs::read(source).map_err(CacheError::io("read", source))?;
            return self
                .put_new(target, bytes)
                .map(|_| ())
                .map_err(|e| self.error("upload a file to", e));
        }
        // In parts; a blob's bytes are its name's, so a concurrent writer writes the same.
        let upload = async {
            use tokio::io::AsyncWriteExt;
            let mut file = tokio::fs::File::open(source).await?;
            let mut writer =
                object_store::buffered::BufWriter::new(Arc::clone(&self.store), target.clone());
            tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await
        };
        self.runtime
            .block_on(upload)
            .map_err(|e| self.error("upload a file to", e))
    }

    /// Downloads the entry under `key` into `cache` (a writer) and returns it; `None` when the
    /// remote has no such entry, or when what it has was refused (see [`Remote::refusals`]).
    pub fn fetch(&self, cache: &Cache, key: &Key) -> Result<Option<Entry>, CacheError> {
        let record_bytes = match self
            .runtime
            .block_on(async { self.store.get(&Self::entry_path(key)).await?.bytes().await })
        {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("download the entry metadata from", e)),
        };
        let record: EntryRecord = match serde_json::from_slice(&record_bytes) {
            Ok(record) => record,
            Err(e) => return self.refuse(key, format!("its metadata is not valid JSON ({e})")),
        };
        if let Err(reason) = record.check_consistent(key) {
            return self.refuse(key, reason);
        }
        let staging = cache.staging(key)?;
        for file in &record.files {
            let target = staging.dir.join(&file.path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(CacheError::io("create", parent))?;
            }
            match self.download(&Self::blob_path(&file.blake3), &target)? {
                Some((hash, size))
                    if hash.to_hex().as_str() == file.blake3 && size == file.size => {}
                Some((hash, size)) => {
                    return self.refuse(
                        key,
                        format!(
                            "`{}` downloaded as {size} bytes with blake3 {}, but the entry lists {} bytes with blake3 {}",
                            file.path,
                            &hash.to_hex()[..16],
                            file.size,
                            &file.blake3[..file.blake3.len().min(16)]
                        ),
                    );
                }
                None => {
                    return self.refuse(key, format!("the blob of `{}` is missing", file.path));
                }
            }
        }
        let digest = record.digest;
        let entry = match cache.publish(staging, record.meta) {
            Ok(entry) => entry,
            Err(CacheError::KeyMismatch { from_manifest, .. }) => {
                return self.refuse(
                    key,
                    format!("its key manifest hashes to {from_manifest}, not to its key"),
                );
            }
            Err(e) => return Err(e),
        };
        if entry.digest != digest {
            return self.refuse(key, "its files do not hash to its digest".to_string());
        }
        lock(&self.fetched).push((entry.key, entry.bytes));
        Ok(Some(entry))
    }

    /// Streams the blob at `source` into a new file at `target`, hashing as it goes: its blake3
    /// and size, or `None` when the remote lacks it.
    fn download(
        &self,
        source: &ObjectPath,
        target: &std::path::Path,
    ) -> Result<Option<(blake3::Hash, u64)>, CacheError> {
        let mut file = fs::File::create(target).map_err(CacheError::io("create", target))?;
        self.runtime.block_on(async {
            let result = match self.store.get(source).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.error("download a file from", e)),
            };
            let (mut hasher, mut size) = (blake3::Hasher::new(), 0u64);
            let mut chunks = result.into_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| self.error("download a file from", e))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .map_err(CacheError::io("write", target))?;
            }
            Ok(Some((hasher.finalize(), size)))
        })
    }

    /// Records and reports that the remote's entry under `key` was not used.
    fn refuse(&self, key: &Key, reason: String) -> Result<Option<Entry>, CacheError> {
        let message = format!(
            "refused the remote entry {key} from {}: {reason}; it was not used (re-push it from a good cache, or delete {ROOT}/entries/{key}.json on the remote)",
            self.url
        );
        eprintln!("warning: {message}");
        lock(&self.refused).push(message);
        Ok(None)
    }

    /// Every refusal so far (tampered or inconsistent remote entries).
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.refused).clone()
    }

    /// Every entry downloaded so far, with its bytes.
    pub fn fetched(&self) -> Vec<(Key, u64)> {
        lock(&self.fetched).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The store of a cloud URL (`scheme://bucket/prefix…`, `rest` after the `://`). The builders
/// take the bucket (or container) from the URL; the path under it is ours, as a prefix.
fn cloud_store(scheme: &str, url: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::{aws, azure, gcp};
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
        "s3" | "s3a" => aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" => gcp::GoogleCloudStorageBuilder::from_env()
            .with_url(url)
            .build()
            .map(|s| Arc::new(s) as _),
        "az" | "azure" | "abfs" | "abfss" => azure::MicrosoftAzureBuilder::from_env()
            .with_url(url)
            .build()
            .map(|s| Arc::new(s) as _),
        _ => {
            return Err(format!(
                "unknown scheme `{scheme}://`; use s3://, gs://, az://, file:// or a path"
            ));
        }
    };
    let store = built.map_err(|e| e.to_string())?;
    Ok(
        match rest.split_once('/').map(|(_, path)| path.trim_matches('/')) {
            Some(prefix) if !prefix.is_empty() => {
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            }
            _ => store,
        },
    )
}

/// A directory as an object store, created if needed.
fn local_store(path: &str) -> Result<Arc<dyn ObjectStore>, String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    fs::create_dir_all(path).map_err(|e| format!("cannot create `{path}`: {e}"))?;
    let store =
        object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}
