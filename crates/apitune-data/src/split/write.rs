//! The last pass: re-reads the chosen records by position and writes the split files.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use fixedbitset::FixedBitSet;
use serde_json::{Value, json};

use super::heldout::{Candidate, Quotas, TrainItem};
use super::scan::CatalogueEntry;
use super::spill::Sorted;
use super::{HeldoutScope, LEVEL_FILES, NormalizeParams, TRAIN_FILE, parse_record_line, rank};
use crate::error::DataError;
use crate::normalize::normalize_record;
use crate::record::ApiRecord;

/// Re-reads records by position in the ingest output and writes the split files.
pub(super) struct SplitWriter<'a> {
    pub(super) source: File,
    pub(super) input_path: &'a Path,
    pub(super) params: &'a NormalizeParams,
    pub(super) seed: u64,
    pub(super) quotas: &'a Quotas,
    pub(super) langs: &'a [String],
}

impl SplitWriter<'_> {
    /// Writes `train.jsonl` from the seeded training order, less the records that left training
    /// for level 1, up to `samples`; returns its summary.
    pub(super) fn write_train(
        &self,
        out_dir: &Path,
        train: Sorted<TrainItem>,
        pool: u64,
        left_training: &HashSet<u64>,
    ) -> Result<Value, DataError> {
        let limit = self.params.samples.map_or(u64::MAX, |n| n as u64);
        let path = out_dir.join(TRAIN_FILE);
        let mut writer = RecordWriter::create(&path)?;
        let mut per_lang = vec![0u64; self.langs.len()];
        for item in train {
            if writer.written >= limit {
                break;
            }
            let item = item?;
            if left_training.contains(&item.seq) {
                continue;
            }
            writer.write(self.load(item.offset, item.len)?, false)?;
            per_lang[item.lang as usize] += 1;
        }
        let total = writer.finish()?;
        Ok(json!({ "total": total, "pool": pool, "per_lang": self.lang_counts(&per_lang) }))
    }

    /// Writes `level`'s file in the level's seeded order; returns its summary and, when it fell
    /// short of its quota, the shortfall per group.
    pub(super) fn write_level(
        &self,
        out_dir: &Path,
        level: usize,
        mut members: Vec<Candidate>,
    ) -> Result<(Value, serde_json::Map<String, Value>), DataError> {
        let purpose = ["level1-order", "level2-order", "level3-order"][level];
        members.sort_by_key(|c| (rank(self.seed, purpose, &c.hash), c.seq));
        let mut writer = RecordWriter::create(&out_dir.join(LEVEL_FILES[level]))?;
        let mut per_lang = vec![0u64; self.langs.len()];
        let mut per_group = vec![0u64; self.quotas.groups];
        // Per API: records, first record (for ties) and name.
        let mut apis: HashMap<u128, (u64, u64, String)> = HashMap::new();
        for member in &members {
            let record = self.load(member.offset, member.len)?;
            per_lang[member.lang as usize] += 1;
            per_group[member.group as usize] += 1;
            let api = apis
                .entry(member.api)
                .or_insert_with(|| (0, member.api_first, record.api_name.clone()));
            api.0 += 1;
            writer.write(record, true)?;
        }
        writer.finish()?;
        // The most records, ties to the API met first, so the summary is deterministic.
        let largest = apis
            .values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map_or(Value::Null, |(n, _, name)| {
                json!({ "name": name, "records": n, "share": *n as f64 / members.len() as f64 })
            });
        let summary = json!({
            "total": members.len(),
            "requested": self.quotas.sizes[level],
            "per_lang": self.lang_counts(&per_lang),
            "apis": apis.len(),
            "largest_api": largest,
        });
        Ok((summary, self.missing(level, &per_group)))
    }

    /// The record at `offset`, read again from the ingest output and normalised.
    fn load(&self, offset: u64, len: u32) -> Result<ApiRecord, DataError> {
        use std::os::unix::fs::FileExt;
        let mut buffer = vec![0u8; len as usize];
        self.source
            .read_exact_at(&mut buffer, offset)
            .map_err(|e| DataError::io(self.input_path, "re-reading ingest output", e))?;
        Ok(normalize_record(
            parse_record_line(&buffer, self.input_path, 0)?,
            self.params.tab_width,
        ))
    }

    fn lang_counts(&self, per_lang: &[u64]) -> BTreeMap<String, u64> {
        (self.langs.iter().zip(per_lang))
            .filter(|(_, n)| **n > 0)
            .map(|(lang, &n)| (lang.clone(), n))
            .collect()
    }

    /// Per group, how many records `level` lacks of the quota.
    fn missing(&self, level: usize, per_group: &[u64]) -> serde_json::Map<String, Value> {
        let mut missing = serde_json::Map::new();
        for (group, &count) in per_group.iter().enumerate() {
            let quota = self.quotas.sizes[level];
            if count < quota {
                let name = match self.quotas.per {
                    HeldoutScope::Lang => self.langs[group].clone(),
                    HeldoutScope::Overall => "overall".to_string(),
                };
                missing.insert(name, json!(quota - count));
            }
        }
        missing
    }
}

/// A JSONL file of records being written.
struct RecordWriter {
    writer: BufWriter<File>,
    path: PathBuf,
    written: u64,
}

impl RecordWriter {
    fn create(path: &Path) -> Result<Self, DataError> {
        let file = File::create(path).map_err(|e| DataError::io(path, "creating split file", e))?;
        Ok(Self {
            writer: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            written: 0,
        })
    }

    /// Writes `record`; with `test_phrasing`, its `instruction_test` (when it has one) is the
    /// instruction, and the training phrasing moves to `instruction_test`.
    fn write(&mut self, mut record: ApiRecord, test_phrasing: bool) -> Result<(), DataError> {
        let io = |e| DataError::io(&self.path, "writing split file", e);
        if test_phrasing && !record.instruction_test.is_empty() {
            std::mem::swap(&mut record.instruction, &mut record.instruction_test);
        }
        serde_json::to_writer(&mut self.writer, &record)
            .map_err(|e| io(std::io::Error::other(e)))?;
        self.writer.write_all(b"\n").map_err(io)?;
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, DataError> {
        self.writer
            .flush()
            .map_err(|e| DataError::io(&self.path, "writing split file", e))?;
        Ok(self.written)
    }
}

/// One line per API: `{"api_name", "hosts": [...], "endpoints": [{"method", "path"}]}`, over all
/// kept records (held-out ones included: they are real endpoints of the API). `catalogue` comes
/// sorted by API, method and path; entries of `duplicates` are skipped.
pub(super) fn write_endpoints(
    path: &Path,
    catalogue: Sorted<CatalogueEntry>,
    duplicates: &FixedBitSet,
) -> Result<(), DataError> {
    let file = File::create(path).map_err(|e| DataError::io(path, "creating endpoints file", e))?;
    let mut writer = BufWriter::new(file);
    let io = |e| DataError::io(path, "writing endpoints file", e);
    let mut api: Option<(String, BTreeSet<String>, Vec<Value>)> = None;
    let mut last_endpoint: Option<(Option<String>, String)> = None;
    let mut flush = |api: (String, BTreeSet<String>, Vec<Value>)| -> Result<(), DataError> {
        let (api_name, hosts, endpoints) = api;
        let line = json!({ "api_name": api_name, "hosts": hosts, "endpoints": endpoints });
        serde_json::to_writer(&mut writer, &line).map_err(|e| io(std::io::Error::other(e)))?;
        writer.write_all(b"\n").map_err(io)
    };
    for entry in catalogue {
        let entry = entry?;
        if duplicates.contains(entry.seq as usize) {
            continue;
        }
        if api
            .as_ref()
            .is_none_or(|(name, _, _)| *name != entry.api_name)
        {
            if let Some(done) = api.take() {
                flush(done)?;
            }
            api = Some((entry.api_name.clone(), BTreeSet::new(), Vec::new()));
            last_endpoint = None;
        }
        let (_, hosts, endpoints) = api.as_mut().expect("set above");
        if let Some(host) = entry.host {
            hosts.insert(host);
        }
        let endpoint = (entry.method, entry.path);
        if last_endpoint.as_ref() != Some(&endpoint) {
            endpoints.push(json!({ "method": endpoint.0, "path": endpoint.1 }));
            last_endpoint = Some(endpoint);
        }
    }
    if let Some(done) = api.take() {
        flush(done)?;
    }
    writer.flush().map_err(io)
}
