//! Pass two: re-reads the kept records by position and writes the split files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::heldout::{LEVEL_BIT, Quotas, TRAIN_BIT};
use super::scan::{ApiEndpoints, Scan};
use super::{HeldoutScope, LEVEL_FILES, NormalizeParams, TRAIN_FILE, parse_record_line, rank};
use crate::error::DataError;
use crate::normalize::normalize_record;
use crate::record::ApiRecord;

/// Pass two: re-reads the kept records by position and writes the split files.
pub(super) struct SplitWriter<'a> {
    pub(super) scan: &'a Scan,
    pub(super) source: File,
    pub(super) input_path: &'a Path,
    pub(super) params: &'a NormalizeParams,
    pub(super) seed: u64,
    pub(super) quotas: &'a Quotas,
    pub(super) flags: &'a [u8],
}

impl SplitWriter<'_> {
    /// Writes `train.jsonl` and the level files; returns the per-split counts and the
    /// shortfall of each level that did not reach its quota.
    pub(super) fn write(&self, out_dir: &Path) -> Result<(Value, Value), DataError> {
        let metas = &self.scan.metas;
        let mut train = self.members(TRAIN_BIT);
        let pool = train.len();
        train.sort_by_key(|&i| (rank(self.seed, "train-order", &metas[i].hash), i));
        if let Some(samples) = self.params.samples {
            train.truncate(samples);
        }
        write_records(&out_dir.join(TRAIN_FILE), &train, &|i| self.load(i), false)?;
        let mut splits = serde_json::Map::new();
        splits.insert(
            "train".into(),
            json!({ "total": train.len(), "pool": pool, "per_lang": self.lang_counts(&train) }),
        );
        let mut shortfall = serde_json::Map::new();
        for level in 0..3 {
            let mut members = self.members(LEVEL_BIT[level]);
            let purpose = ["level1-order", "level2-order", "level3-order"][level];
            members.sort_by_key(|&i| (rank(self.seed, purpose, &metas[i].hash), i));
            write_records(
                &out_dir.join(LEVEL_FILES[level]),
                &members,
                &|i| self.load(i),
                true,
            )?;
            let missing = self.missing(level, &members);
            if !missing.is_empty() {
                shortfall.insert(format!("level{}", level + 1), Value::Object(missing));
            }
            let requested = self.quotas.sizes[level];
            let (apis, largest) = self.api_spread(&members);
            splits.insert(
                format!("level{}", level + 1),
                json!({
                    "total": members.len(),
                    "requested": requested,
                    "per_lang": self.lang_counts(&members),
                    "apis": apis,
                    "largest_api": largest,
                }),
            );
        }
        Ok((Value::Object(splits), Value::Object(shortfall)))
    }

    pub(super) fn members(&self, bit: u8) -> Vec<usize> {
        (0..self.flags.len())
            .filter(|&i| self.flags[i] & bit != 0)
            .collect()
    }

    /// Record `i`, read again from its position in the ingest output.
    pub(super) fn load(&self, i: usize) -> Result<ApiRecord, DataError> {
        use std::os::unix::fs::FileExt;
        let meta = &self.scan.metas[i];
        let mut buffer = vec![0u8; meta.len as usize];
        self.source
            .read_exact_at(&mut buffer, meta.offset)
            .map_err(|e| DataError::io(self.input_path, "re-reading ingest output", e))?;
        Ok(normalize_record(
            parse_record_line(&buffer, self.input_path, 0)?,
            self.params.tab_width,
        ))
    }

    pub(super) fn lang_counts(&self, indices: &[usize]) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for &i in indices {
            let lang = &self.scan.langs.names[self.scan.metas[i].lang as usize];
            *counts.entry(lang.clone()).or_default() += 1;
        }
        counts
    }

    /// How many APIs `members` come from, and the one with the most of them (name and share).
    fn api_spread(&self, members: &[usize]) -> (usize, Value) {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for &i in members {
            *counts.entry(self.scan.metas[i].api).or_default() += 1;
        }
        // The most records, ties to the first name, so the summary is deterministic.
        let largest = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        let largest = match largest {
            Some((&api, &n)) => json!({
                "name": self.scan.apis.names[api as usize],
                "records": n,
                "share": n as f64 / members.len() as f64,
            }),
            None => Value::Null,
        };
        (counts.len(), largest)
    }

    /// Per group, how many records `level`'s `members` lack of the quota.
    pub(super) fn missing(
        &self,
        level: usize,
        members: &[usize],
    ) -> serde_json::Map<String, Value> {
        let mut per_group = vec![0u64; self.quotas.groups];
        for &i in members {
            per_group[self.quotas.group(&self.scan.metas[i])] += 1;
        }
        let mut missing = serde_json::Map::new();
        for (group, &count) in per_group.iter().enumerate() {
            let quota = self.quotas.sizes[level];
            if count < quota {
                let name = match self.quotas.per {
                    HeldoutScope::Lang => self.scan.langs.names[group].clone(),
                    HeldoutScope::Overall => "overall".to_string(),
                };
                missing.insert(name, json!(quota - count));
            }
        }
        missing
    }
}

pub(super) fn write_records(
    path: &PathBuf,
    indices: &[usize],
    load: &dyn Fn(usize) -> Result<ApiRecord, DataError>,
    test_phrasing: bool,
) -> Result<(), DataError> {
    let file = File::create(path).map_err(|e| DataError::io(path, "creating split file", e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    for &i in indices {
        let mut record = load(i)?;
        if test_phrasing && !record.instruction_test.is_empty() {
            std::mem::swap(&mut record.instruction, &mut record.instruction_test);
        }
        serde_json::to_writer(&mut writer, &record)
            .map_err(|e| DataError::io(path, "writing split file", std::io::Error::other(e)))?;
        writer
            .write_all(b"\n")
            .map_err(|e| DataError::io(path, "writing split file", e))?;
    }
    writer
        .flush()
        .map_err(|e| DataError::io(path, "writing split file", e))
}

/// One line per API: `{"api_name", "hosts": [...], "endpoints": [{"method", "path"}]}`, over all
/// kept records (held-out ones included: they are real endpoints of the API).
pub(super) fn write_endpoints(
    path: &Path,
    catalogue: &BTreeMap<String, ApiEndpoints>,
) -> Result<(), DataError> {
    let file = File::create(path).map_err(|e| DataError::io(path, "creating endpoints file", e))?;
    let mut writer = BufWriter::new(file);
    for (api_name, entry) in catalogue {
        let endpoints: Vec<Value> = entry
            .endpoints
            .iter()
            .map(|(method, path)| json!({ "method": method, "path": path }))
            .collect();
        let line = json!({ "api_name": api_name, "hosts": entry.hosts, "endpoints": endpoints });
        serde_json::to_writer(&mut writer, &line)
            .map_err(|e| DataError::io(path, "writing endpoints file", std::io::Error::other(e)))?;
        writer
            .write_all(b"\n")
            .map_err(|e| DataError::io(path, "writing endpoints file", e))?;
    }
    writer
        .flush()
        .map_err(|e| DataError::io(path, "writing endpoints file", e))
}
