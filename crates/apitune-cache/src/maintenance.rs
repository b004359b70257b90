//! `verify` (re-hash everything, quarantine what is damaged, repair the index) and `gc`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::digest::{ENTRY_FILE, Links, hash_file_contents, list_files};
use super::entry::{EntryRecord, read_record_of};
use super::error::CacheError;
use super::ids::Key;
use super::index::{FileStamp, Index, IndexedEntry};
use super::store::{
    ARTIFACTS, BROKEN_INDEX_PREFIX, CLAIMS, Cache, FILE_HASHES_TMP_PREFIX, JOBS, MEMO, QUARANTINE,
    TMP, WORK, fsync_dir, list_children, remove_if_exists, unique_suffix,
};

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Artifact directories examined.
    pub checked: usize,
    pub ok: usize,
    /// Entries moved to `quarantine/`, with why.
    pub quarantined: Vec<(Key, String)>,
    /// Stray items in `artifacts/` whose name is not a key, moved to quarantine.
    pub quarantined_names: Vec<(String, String)>,
    /// Valid entries (re)written to the index because their record was missing or stale.
    pub reindexed: usize,
    /// Index records dropped because no valid directory backs them.
    pub dropped_index: usize,
    /// Memo logs cut back to their intact prefix: (`memo/<id>/<file>`, why).
    pub memos_damaged: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// What was (or, in a dry run, would be) removed, relative to the cache root, with its size.
    pub removed: Vec<(String, u64)>,
    /// Entries kept.
    pub kept: usize,
    /// Total bytes of `removed`.
    pub bytes: u64,
}

impl Cache {
    /// Re-hashes every artifact directory against its metadata. A damaged entry (bad or missing
    /// metadata, missing/extra/changed file, digest mismatch) is moved to `quarantine/` so it is
    /// never reused. With `repair`, the index is also rebuilt from the directories: missing or
    /// stale records are rewritten and records without a valid directory dropped.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, CacheError> {
        let index = self.exclusive_index("verify")?;
        let mut report = VerifyReport::default();
        let mut valid = HashSet::new();
        for (name, path) in list_children(&self.root.join(ARTIFACTS))? {
            report.checked += 1;
            let Ok(key) = name.parse::<Key>() else {
                let reason = "not a cache entry (the name is not a key)".to_string();
                self.quarantine_dir(&path, &name, &reason)?;
                report.quarantined_names.push((name, reason));
                continue;
            };
            match check_artifact(&key, &path)? {
                Ok(record) => {
                    report.ok += 1;
                    valid.insert(key);
                    if repair {
                        let stamp = FileStamp::of_path(&path.join(ENTRY_FILE))?;
                        let current = index.entry(&key)?;
                        let up_to_date =
                            current.is_some_and(|c| c.entry_file == stamp && c.record == record);
                        if !up_to_date {
                            index.put_entry(&IndexedEntry {
                                record,
                                entry_file: stamp,
                            })?;
                            report.reindexed += 1;
                        }
                    }
                }
                Err(reason) => {
                    self.quarantine_dir(&path, &name, &reason)?;
                    report.quarantined.push((key, reason));
                }
            }
        }
        report.memos_damaged = self.verify_memos()?;
        if repair {
            report.dropped_index += index.remove_malformed_keys()?;
            for key in index.entry_keys()? {
                if !valid.contains(&key) && index.remove_entry(&key)? {
                    report.dropped_index += 1;
                }
            }
            index.flush()?;
        }
        Ok(report)
    }

    /// Removes entries whose key is not in `keep`, memo directories not in `keep_memos`, work
    /// directories of unkept or already published keys, leftovers in `tmp/`, everything in
    /// `quarantine/` and damaged indexes that were moved aside. With `dry_run`, only reports
    /// what would go (allowed on a read-only cache).
    pub fn gc(
        &self,
        keep: &HashSet<Key>,
        keep_memos: &HashSet<String>,
        dry_run: bool,
    ) -> Result<GcReport, CacheError> {
        let index = if dry_run {
            None
        } else {
            Some(self.exclusive_index("collect garbage")?)
        };
        let mut report = GcReport::default();
        for (label, path, key) in self.doomed(keep, keep_memos, &mut report)? {
            let bytes = disk_bytes(&path)?;
            if let Some(index) = index {
                self.remove(index, &path, key)?;
            }
            report.bytes += bytes;
            report.removed.push((label, bytes));
        }
        if let Some(index) = index {
            // Nobody holds a claim while we have the cache to ourselves.
            for (_, path) in list_children(&self.root.join(CLAIMS))? {
                remove_if_exists(&path)?;
            }
            for key in index.entry_keys()? {
                if !keep.contains(&key) {
                    index.remove_entry(&key)?;
                }
            }
        }
        Ok(report)
    }

    /// What [`Self::gc`] removes, each with its label and (for artifacts) key; counts the
    /// artifacts kept into `report`.
    fn doomed(
        &self,
        keep: &HashSet<Key>,
        keep_memos: &HashSet<String>,
        report: &mut GcReport,
    ) -> Result<Vec<(String, PathBuf, Option<Key>)>, CacheError> {
        let mut doomed = Vec::new();
        for (name, path) in list_children(&self.root.join(ARTIFACTS))? {
            let key = name.parse::<Key>().ok();
            if key.is_some_and(|k| keep.contains(&k)) {
                report.kept += 1;
                continue;
            }
            let label = match key.map(|k| self.lookup(&k)).transpose()?.flatten() {
                Some(entry) => format!("{ARTIFACTS}/{name} ({})", entry.meta.stage),
                None => format!("{ARTIFACTS}/{name}"),
            };
            doomed.push((label, path, key));
        }
        for (name, path) in list_children(&self.root.join(WORK))? {
            let key = name.parse::<Key>().ok();
            let resumable =
                key.is_some_and(|k| keep.contains(&k) && !self.artifact_dir(&k).exists());
            if !resumable {
                doomed.push((format!("{WORK}/{name}"), path, None));
            }
        }
        let own_session = self.writer.as_ref().map(|w| w.session_name());
        for (name, path) in list_children(&self.root.join(TMP))? {
            // This process's own session; other writers' are leftovers (we hold the cache
            // alone, so no other writer is running).
            if own_session
                .as_ref()
                .is_some_and(|own| name.starts_with(own.as_str()))
            {
                continue;
            }
            doomed.push((format!("{TMP}/{name}"), path, None));
        }
        for (name, path) in list_children(&self.root.join(JOBS))? {
            if !name.parse::<Key>().is_ok_and(|k| keep.contains(&k)) {
                doomed.push((format!("{JOBS}/{name}"), path, None));
            }
        }
        for (name, path) in list_children(&self.root.join(MEMO))? {
            if !keep_memos.contains(&name) {
                doomed.push((format!("{MEMO}/{name}"), path, None));
            }
        }
        for (name, path) in list_children(&self.root.join(QUARANTINE))? {
            doomed.push((format!("{QUARANTINE}/{name}"), path, None));
        }
        for (name, path) in list_children(&self.root)? {
            // A stat-cache snapshot left half-written by a writer that died while closing.
            if name.starts_with(BROKEN_INDEX_PREFIX) || name.starts_with(FILE_HASHES_TMP_PREFIX) {
                doomed.push((name, path, None));
            }
        }
        Ok(doomed)
    }

    /// Deletes `path`; an artifact (`key`) leaves the index and `artifacts/` atomically first, so
    /// a crash mid-delete cannot leave a half-deleted entry visible (`tmp/` is emptied on the
    /// next open).
    fn remove(&self, index: &Index, path: &Path, key: Option<Key>) -> Result<(), CacheError> {
        let Some(key) = key else {
            return remove_if_exists(path);
        };
        index.remove_entry(&key)?;
        let trash = self
            .root
            .join(TMP)
            .join(format!("gc-{key}.{}", unique_suffix()));
        fs::rename(path, &trash).map_err(CacheError::io("move out of the cache", path))?;
        fsync_dir(&self.root.join(ARTIFACTS))?;
        remove_if_exists(&trash)
    }
}

/// Full check of one artifact directory. `Ok(Err(reason))` when it is damaged.
fn check_artifact(key: &Key, dir: &Path) -> Result<Result<EntryRecord, String>, CacheError> {
    if !fs::symlink_metadata(dir)
        .map_err(CacheError::io("read metadata of", dir))?
        .is_dir()
    {
        return Ok(Err("not a directory".to_string()));
    }
    let record = match read_record_of(dir, key)? {
        Ok(record) => record,
        Err(reason) => return Ok(Err(reason)),
    };
    let found = match list_files(dir, Links::Reject, Some(ENTRY_FILE)) {
        Ok(found) => found,
        Err(CacheError::InvalidArtifact { path, reason }) => {
            return Ok(Err(format!("`{}`: {reason}", path.display())));
        }
        Err(e) => return Err(e),
    };
    let listed: BTreeMap<&str, _> = record.files.iter().map(|f| (f.path.as_str(), f)).collect();
    if let Some(extra) = found.iter().find(|f| !listed.contains_key(f.rel.as_str())) {
        return Ok(Err(format!("unexpected file `{}`", extra.rel)));
    }
    let present: HashSet<&str> = found.iter().map(|f| f.rel.as_str()).collect();
    if let Some(missing) = record
        .files
        .iter()
        .find(|f| !present.contains(f.path.as_str()))
    {
        return Ok(Err(format!("`{}` is missing", missing.path)));
    }
    for file in &found {
        let expected = listed[file.rel.as_str()];
        if file.size != expected.size {
            return Ok(Err(format!(
                "`{}` has {} bytes, {} expected",
                file.rel, file.size, expected.size
            )));
        }
        let actual = hash_file_contents(&file.abs)?;
        if actual.to_hex().as_str() != expected.blake3 {
            return Ok(Err(format!(
                "`{}` content does not match its recorded blake3",
                file.rel
            )));
        }
    }
    // check_consistent tied the digest to the listing and the listing now matches the files.
    Ok(Ok(record))
}

/// Bytes used by a file or directory tree (apparent sizes; links are not followed).
fn disk_bytes(path: &Path) -> Result<u64, CacheError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CacheError::Io {
                action: "read metadata of",
                path: path.to_path_buf(),
                cause: source,
            });
        }
    };
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for (_, child) in list_children(path)? {
        total += disk_bytes(&child)?;
    }
    Ok(total)
}
