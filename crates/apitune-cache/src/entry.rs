//! What a cache entry is, and its on-disk metadata file (`.apitune-entry.json`) that makes every
//! artifact directory self-describing: the directory, not the index, is the source of truth.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::hash_file_contents;
use super::digest::{ENTRY_FILE, merkle};
use super::error::CacheError;
use super::ids::{Digest, Key};
use super::index::FileStamp;
use super::key::KeyManifest;

/// Bumped when the metadata file's layout changes; other versions read as invalid entries.
const ENTRY_FORMAT: u32 = 1;

/// What the stage that produced an entry says about it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    /// Arm name, e.g. `lora[samples=1000]`.
    pub stage: String,
    /// Stage kind, e.g. `lora-train`.
    pub kind: String,
    pub key_manifest: KeyManifest,
    pub started_unix_ms: u64,
    pub duration_s: f64,
    /// Stage-defined headline numbers (metrics, record counts, ...).
    pub summary: serde_json::Value,
}

/// One file of an artifact.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryFile {
    /// Relative to the artifact directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// blake3 of the contents, 64 hex digits.
    pub blake3: String,
    /// The file's stat identity when it was published (host-local; not part of the digest). A
    /// file whose stat differs is re-hashed before the entry is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<FileStamp>,
}

/// A published, valid cache entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub key: Key,
    pub digest: Digest,
    /// `root/artifacts/<key>`; read-only for consumers.
    pub dir: PathBuf,
    pub files: Vec<EntryFile>,
    /// Sum of the file sizes.
    pub bytes: u64,
    pub created_unix_ms: u64,
    pub meta: EntryMeta,
}

impl Entry {
    /// Absolute path of one of the entry's files.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// The metadata file's contents (an [`Entry`] without its location).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct EntryRecord {
    pub format: u32,
    pub key: Key,
    pub digest: Digest,
    pub files: Vec<EntryFile>,
    pub bytes: u64,
    pub created_unix_ms: u64,
    pub meta: EntryMeta,
}

impl EntryRecord {
    pub fn new(key: Key, files: Vec<EntryFile>, created_unix_ms: u64, meta: EntryMeta) -> Self {
        let digest =
            digest_of_listing(&files).expect("hashes computed by this process are valid hex");
        let bytes = files.iter().map(|f| f.size).sum();
        EntryRecord {
            format: ENTRY_FORMAT,
            key,
            digest,
            files,
            bytes,
            created_unix_ms,
            meta,
        }
    }

    pub fn into_entry(self, dir: PathBuf) -> Entry {
        Entry {
            key: self.key,
            digest: self.digest,
            dir,
            files: self.files,
            bytes: self.bytes,
            created_unix_ms: self.created_unix_ms,
            meta: self.meta,
        }
    }

    /// Internal consistency, without touching the artifact's files: the entry belongs at
    /// `expected_key`, its file paths stay inside the directory, and its digest and byte total
    /// agree with its file list. `Err` is a reason for the user.
    pub fn check_consistent(&self, expected_key: &Key) -> Result<(), String> {
        if self.format != ENTRY_FORMAT {
            return Err(format!(
                "metadata format {} (this build reads {ENTRY_FORMAT})",
                self.format
            ));
        }
        if self.key != *expected_key {
            return Err(format!(
                "metadata names key {} but the directory is {expected_key}",
                self.key
            ));
        }
        // The stored key manifest is deliberately not re-hashed against the key: serde_json
        // (without its `float_roundtrip` feature) may parse a 17-digit float back 1 ulp off, which
        // would condemn a valid entry. `publish` checks manifest -> key on the exact values.
        for pair in self.files.windows(2) {
            if pair[0].path >= pair[1].path {
                return Err(format!(
                    "file list is not sorted/unique at `{}`",
                    pair[1].path
                ));
            }
        }
        if let Some(bad) = self.files.iter().find(|f| !is_safe_relative_path(&f.path)) {
            return Err(format!(
                "file path `{}` escapes the artifact directory",
                bad.path
            ));
        }
        match digest_of_listing(&self.files) {
            Some(digest) if digest == self.digest => {}
            Some(_) => return Err("digest does not match the file list".to_string()),
            None => return Err("a file hash is not 64 hex digits".to_string()),
        }
        if self.bytes != self.files.iter().map(|f| f.size).sum::<u64>() {
            return Err("byte total does not match the file list".to_string());
        }
        Ok(())
    }
}

/// The artifact digest implied by a file list (`None` if a hash is malformed).
pub(crate) fn digest_of_listing(files: &[EntryFile]) -> Option<Digest> {
    let mut hashed = Vec::with_capacity(files.len());
    for file in files {
        let hash = blake3::Hash::from_hex(&file.blake3).ok()?;
        hashed.push((file.path.as_str(), hash));
    }
    Some(Digest::from(merkle(hashed)))
}

fn is_safe_relative_path(rel: &str) -> bool {
    !rel.is_empty()
        && rel != ENTRY_FILE
        && !rel.contains('\\')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

pub(crate) fn entry_file_path(dir: &Path) -> PathBuf {
    dir.join(ENTRY_FILE)
}

/// Outcome of reading an artifact directory's metadata file.
enum ReadRecord {
    Found(Box<EntryRecord>),
    /// No metadata file (or no directory).
    Missing,
    /// Present but unusable; the reason is for the user.
    Invalid(String),
}

fn read_record(dir: &Path) -> Result<ReadRecord, CacheError> {
    let path = entry_file_path(dir);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReadRecord::Missing),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(ReadRecord::Missing),
        Err(source) => {
            return Err(CacheError::Io {
                action: "read",
                path,
                cause: source,
            });
        }
    };
    Ok(match serde_json::from_slice(&text) {
        Ok(record) => ReadRecord::Found(Box::new(record)),
        Err(e) => ReadRecord::Invalid(format!("unreadable {ENTRY_FILE}: {e}")),
    })
}

/// The metadata record of the artifact directory `dir` published under `key`; `Ok(Err(reason))`
/// when it is missing, unreadable or belongs to another key.
pub(crate) fn read_record_of(
    dir: &Path,
    key: &Key,
) -> Result<Result<EntryRecord, String>, CacheError> {
    let record = match read_record(dir)? {
        ReadRecord::Found(record) => *record,
        ReadRecord::Missing => return Ok(Err(format!("no {ENTRY_FILE}"))),
        ReadRecord::Invalid(reason) => return Ok(Err(reason)),
    };
    Ok(record.check_consistent(key).map(|()| record))
}

/// Writes and fsyncs the metadata file into a staging directory (it must not exist yet).
pub(crate) fn write_record(dir: &Path, record: &EntryRecord) -> Result<(), CacheError> {
    let path = entry_file_path(dir);
    let text = serde_json::to_vec_pretty(record).map_err(|source| CacheError::Metadata {
        path: path.clone(),
        source,
    })?;
    let mut file = fs::File::create_new(&path).map_err(CacheError::io("create", &path))?;
    file.write_all(&text)
        .map_err(CacheError::io("write", &path))?;
    file.sync_all().map_err(CacheError::io("fsync", &path))?;
    Ok(())
}

/// Checks that the files an entry lists are present and unchanged since publication: sizes
/// always; a file whose stat no longer matches its published stamp (or that has none) is
/// re-hashed. `Err` is a reason for the user; I/O failures other than "not found" are errors.
pub(crate) fn check_files_unchanged(
    dir: &Path,
    files: &[EntryFile],
) -> Result<Result<(), String>, CacheError> {
    for file in files {
        let path = dir.join(&file.path);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Err(format!("`{}` is missing", file.path)));
            }
            Err(cause) => {
                return Err(CacheError::Io {
                    action: "read metadata of",
                    path,
                    cause,
                });
            }
        };
        if !meta.is_file() {
            return Ok(Err(format!("`{}` is not a regular file", file.path)));
        }
        if meta.len() != file.size {
            let (now, was) = (meta.len(), file.size);
            return Ok(Err(format!(
                "`{}` has {now} bytes, {was} expected",
                file.path
            )));
        }
        if file.stamp == Some(FileStamp::of(&meta)) {
            continue;
        }
        if hash_file_contents(&path)?.to_hex().as_str() != file.blake3 {
            return Ok(Err(format!(
                "`{}` changed since it was published (its content no longer matches its blake3)",
                file.path
            )));
        }
    }
    Ok(Ok(()))
}

/// Full check of the listed files' contents against their recorded blake3, whatever their stat
/// says: for artifacts about to be consumed, where silent corruption (a flipped bit on disk)
/// must not reach a result.
pub(crate) fn check_files_content(
    dir: &Path,
    files: &[EntryFile],
) -> Result<Result<(), String>, CacheError> {
    for file in files {
        let path = dir.join(&file.path);
        let hash = match hash_file_contents(&path) {
            Ok(hash) => hash,
            Err(CacheError::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
                return Ok(Err(format!("`{}` is missing", file.path)));
            }
            Err(e) => return Err(e),
        };
        if hash.to_hex().as_str() != file.blake3 {
            return Ok(Err(format!(
                "`{}` changed since it was published (its content no longer matches its blake3)",
                file.path
            )));
        }
    }
    Ok(Ok(()))
}
