//! The normalize stage: normalisation, de-duplication, API Pack's three held-out levels and the
//! seeded training order.
//!
//! Levels (API Pack, Guo et al. 2024, arXiv 2402.09615):
//! - **level1**: seen API and endpoint, new phrasing. Records whose `instruction_test` differs
//!   from `instruction`; they stay in training by default (`level1_in_train`), since the point is
//!   a known call asked for in new words. With `level1_in_train = false` they leave training,
//!   and are only picked while their endpoint keeps another training record.
//! - **level2**: seen API, unseen endpoint. Endpoints (api, method, path) are held out whole:
//!   every record of the endpoint, in every language, leaves training; an API always keeps at
//!   least one training endpoint.
//! - **level3**: unseen API. APIs (by `api_name`) are held out whole, in every language; at most
//!   half of the APIs are held out.
//!
//! Sizes are record counts per level, per language (`per = "lang"`, the default, as API Pack
//! does) or over all languages (`per = "overall"`). APIs and endpoints are drawn in a seeded order
//! until every language's quota is met (or the candidates run out: the summary then reports the
//! shortfall); each level's records are then a seeded sample of that size. Held-out APIs and
//! endpoints leave training even where their records are not needed for a test set
//! (`heldout_unused`).
//!
//! Stratified by API: `max_api_percent` caps what one API may give a level (per language), both
//! when APIs and endpoints are drawn and when records are sampled, and with a cap the sample
//! takes the APIs in turns (one record of each before a second of any), so a level spans as many
//! APIs as its quota allows. `level3_apis` holds out at least that many APIs for level 3.
//!
//! In the level files `instruction` is the query to prompt with: the record's `instruction_test`
//! (when it has one), with the training phrasing moved to `instruction_test`.
//!
//! Memory: the stage never holds the records, nor anything per record. What it needs of each
//! record (position, language, content hash, API and endpoint ranks) goes through external sorts
//! with a fixed budget each ([`SPILL_BUDGET_ENV`]), and the held-out choices stream over the
//! sorted results; what stays in memory grows with the quotas and with one endpoint's records,
//! not with the corpus. The output does not depend on the budget.
//!
//! Training order: all randomness comes from blake3 over (seed, purpose, content), so results do
//! not depend on a RNG crate's version. `train.jsonl` holds the pool in a seeded permutation;
//! the first N lines are the N-sample set, so for one seed the 1,000-sample set is a prefix of the
//! 10,000 one ([`take_samples`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod docs;
mod heldout;
mod indexed;
mod scan;
mod spill;
mod write;

pub use docs::DOCS_FILE;
use heldout::{Heldout, assign, hold_out_apis, hold_out_endpoints};
pub use indexed::IndexedRecords;
use scan::Corpus;
pub use spill::SPILL_BUDGET_ENV;
use write::{SplitWriter, write_endpoints};

use crate::error::DataError;
use crate::ingest::RECORDS_FILE;
use crate::normalize::DEFAULT_TAB_WIDTH;
use crate::record::ApiRecord;

pub const TRAIN_FILE: &str = "train.jsonl";
pub const LEVEL_FILES: [&str; 3] = ["level1.jsonl", "level2.jsonl", "level3.jsonl"];
pub const ENDPOINTS_FILE: &str = "endpoints.jsonl";

/// What a held-out size counts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HeldoutScope {
    /// Records per level per language.
    #[default]
    Lang,
    /// Records per level over all languages.
    Overall,
}

/// Held-out test set sizes (records) per level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HeldoutSpec {
    pub level1: usize,
    pub level2: usize,
    pub level3: usize,
    pub per: HeldoutScope,
    /// The most one API may hold of a level's quota (per language with `per = "lang"`), in
    /// percent; 100 means no cap. On a corpus with a few giant APIs, a cap keeps one API from
    /// standing for a whole level.
    pub max_api_percent: usize,
    /// Level 3 holds out at least this many APIs whole (at most half of the corpus's), so that
    /// its score speaks for many APIs rather than the few that fill its quota first.
    pub level3_apis: usize,
}

/// Every field's default, for serde too (`#[serde(default)]`).
impl Default for HeldoutSpec {
    fn default() -> Self {
        Self {
            level1: 20,
            level2: 20,
            level3: 20,
            per: HeldoutScope::Lang,
            max_api_percent: 100,
            level3_apis: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeParams {
    pub heldout: HeldoutSpec,
    /// Keep only the first N records of the seeded training order in `train.jsonl`.
    pub samples: Option<usize>,
    /// Tab stops for expanding tabs in code.
    pub tab_width: usize,
    /// Drop records whose (lang, instruction, code) repeats an earlier one.
    pub dedup: bool,
    /// Level-1 records stay in training (see the module docs).
    pub level1_in_train: bool,
}

/// Every field's default, for serde too (`#[serde(default)]`).
impl Default for NormalizeParams {
    fn default() -> Self {
        Self {
            heldout: HeldoutSpec::default(),
            samples: None,
            tab_width: DEFAULT_TAB_WIDTH,
            dedup: true,
            level1_in_train: true,
        }
    }
}

/// JSONL reader for `ApiRecord` files (the stages' artifacts). Blank lines are skipped; errors
/// name the file and line.
pub fn read_records(path: &Path) -> impl Iterator<Item = Result<ApiRecord, DataError>> {
    let path = path.to_path_buf();
    let opened = File::open(&path).map_err(|e| DataError::io(&path, "opening records file", e));
    let mut state = match opened {
        Ok(file) => Ok(BufReader::with_capacity(1 << 20, file)),
        Err(error) => Err(Some(error)),
    };
    let mut line_number: u64 = 0;
    let mut line = Vec::new();
    std::iter::from_fn(move || {
        let reader = match &mut state {
            Ok(reader) => reader,
            Err(error) => return error.take().map(Err),
        };
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Err(e) => {
                    state = Err(None);
                    return Some(Err(DataError::io(&path, "reading records file", e)));
                }
                Ok(0) => return None,
                Ok(_) => {}
            }
            line_number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(parse_record_line(&line, &path, line_number));
        }
    })
}

fn parse_record_line(line: &[u8], path: &Path, line_number: u64) -> Result<ApiRecord, DataError> {
    serde_json::from_slice::<ApiRecord>(line).map_err(|e| DataError::BadRecord {
        path: path.to_path_buf(),
        location: super::error::RecordLocation::Line { line: line_number },
        reason: match e.classify() {
            serde_json::error::Category::Data => super::error::BadReason::WrongShape,
            _ => super::error::BadReason::InvalidJson,
        },
        message: e.to_string(),
    })
}

/// The first `n` records of a `train.jsonl`: the `n`-sample training set. Nested by
/// construction: `take_samples(p, 1000)` is a prefix of `take_samples(p, 10000)`. Errors when the
/// file holds fewer than `n` records.
pub fn take_samples(train_path: &Path, n: usize) -> Result<Vec<ApiRecord>, DataError> {
    let records: Vec<ApiRecord> = read_records(train_path).take(n).collect::<Result<_, _>>()?;
    if records.len() < n {
        return Err(DataError::Split {
            path: train_path.to_path_buf(),
            message: format!(
                "{n} training samples requested but the training pool holds only {}; lower `samples` or ingest more data",
                records.len()
            ),
        });
    }
    Ok(records)
}

/// Seeded rank: blake3 over (seed, purpose, content). Sorting by it is a seeded permutation.
fn rank(seed: u64, purpose: &str, content: &[u8]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(purpose.as_bytes());
    hasher.update(&[0]);
    hasher.update(content);
    let bytes = hasher.finalize();
    u128::from_le_bytes(bytes.as_bytes()[..16].try_into().expect("16 bytes"))
}

/// Normalises, de-duplicates and splits `input_dir/records.jsonl` into `out_dir`'s `train.jsonl`,
/// `level1.jsonl`, `level2.jsonl`, `level3.jsonl` and `endpoints.jsonl`. Returns the summary
/// (counts per split per language, drops per reason, shortfalls).
pub fn run_normalize(
    params: &NormalizeParams,
    seed: u64,
    input_dir: &Path,
    out_dir: &Path,
) -> Result<Value, DataError> {
    let input_path = input_dir.join(RECORDS_FILE);
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    // Temporary files live beside the output (not in a possibly memory-backed /tmp) and go when
    // this returns, however it returns.
    let work = tempfile::Builder::new()
        .prefix(".normalize-")
        .tempdir_in(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating a temporary directory", e))?;
    let corpus = Corpus::read(params, seed, &input_path, work.path())?;
    let quotas = &corpus.quotas;
    let apis = hold_out_apis(&corpus.apis, corpus.api_count, quotas)?;
    let endpoints = hold_out_endpoints(corpus.endpoints, quotas, &apis)?;
    let heldout = Heldout { apis, endpoints };
    let assignment = assign(
        (&corpus.rows, &corpus.apis),
        (seed, quotas),
        &heldout,
        params.level1_in_train,
        work.path(),
    )?;

    let writer = SplitWriter {
        source: File::open(&input_path)
            .map_err(|e| DataError::io(&input_path, "opening ingest output", e))?,
        input_path: &input_path,
        params,
        seed,
        quotas,
        langs: &corpus.langs,
    };
    let pool = assignment.train_records - assignment.left_training.len() as u64;
    let mut splits = serde_json::Map::new();
    let train = writer.write_train(out_dir, assignment.train, pool, &assignment.left_training)?;
    splits.insert("train".into(), train);
    let mut shortfall = serde_json::Map::new();
    for (level, members) in assignment.levels.into_iter().enumerate() {
        let (summary, missing) = writer.write_level(out_dir, level, members)?;
        let name = format!("level{}", level + 1);
        if !missing.is_empty() {
            shortfall.insert(name.clone(), Value::Object(missing));
        }
        splits.insert(name, summary);
    }
    write_endpoints(
        &out_dir.join(ENDPOINTS_FILE),
        corpus.catalogue,
        &corpus.duplicates,
    )?;
    let docs = docs::write_docs(
        &input_path,
        &out_dir.join(LEVEL_FILES[2]),
        params.tab_width,
        out_dir,
    )?;
    drop(work);
    Ok(json!({
        "seed": seed,
        "input_records": corpus.input_records,
        "kept": corpus.kept,
        "dropped": corpus.dropped,
        "languages": corpus.langs.iter().cloned().collect::<BTreeSet<_>>(),
        "apis": corpus.api_count,
        "endpoints": corpus.endpoint_count,
        "heldout_apis": heldout.apis.len(),
        "heldout_endpoints": heldout.endpoints.len(),
        "heldout_unused": assignment.heldout_unused,
        "heldout_per": params.heldout.per,
        "level1_in_train": params.level1_in_train,
        "splits": Value::Object(splits),
        "docs": docs,
        "shortfall": Value::Object(shortfall),
    }))
}

/// One API's known endpoints, as written to `endpoints.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownEndpoints {
    pub api_name: String,
    pub hosts: Vec<String>,
    pub endpoints: Vec<KnownEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownEndpoint {
    pub method: Option<String>,
    pub path: String,
}

/// Reads an `endpoints.jsonl` (for the metrics' hallucinated-endpoint rate).
pub fn read_endpoints(path: &Path) -> Result<Vec<KnownEndpoints>, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::io(path, "reading endpoints file", e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| DataError::Split {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", index + 1),
            })
        })
        .collect()
}
