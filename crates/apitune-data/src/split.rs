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
//! In the level files `instruction` is the query to prompt with: the record's `instruction_test`
//! (when it has one), with the training phrasing moved to `instruction_test`.
//!
//! Training order: all randomness comes from blake3 over (seed, purpose, content), so results do
//! not depend on a RNG crate's version. `train.jsonl` holds the pool in a seeded permutation;
//! the first N lines are the N-sample set, so for one seed the 1,000-sample set is a prefix of the
//! 10,000 one ([`take_samples`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::DataError;
use super::ingest::RECORDS_FILE;
use super::normalize::{DEFAULT_TAB_WIDTH, normalize_record};
use super::record::ApiRecord;

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
#[serde(deny_unknown_fields)]
pub struct HeldoutSpec {
    #[serde(default = "default_level_size")]
    pub level1: usize,
    #[serde(default = "default_level_size")]
    pub level2: usize,
    #[serde(default = "default_level_size")]
    pub level3: usize,
    #[serde(default)]
    pub per: HeldoutScope,
}

fn default_level_size() -> usize {
    20
}

impl Default for HeldoutSpec {
    fn default() -> Self {
        Self {
            level1: 20,
            level2: 20,
            level3: 20,
            per: HeldoutScope::Lang,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NormalizeParams {
    #[serde(default)]
    pub heldout: HeldoutSpec,
    /// Keep only the first N records of the seeded training order in `train.jsonl`.
    #[serde(default)]
    pub samples: Option<usize>,
    /// Tab stops for expanding tabs in code.
    #[serde(default = "default_tab_width")]
    pub tab_width: usize,
    /// Drop records whose (lang, instruction, code) repeats an earlier one.
    #[serde(default = "yes")]
    pub dedup: bool,
    /// Level-1 records stay in training (see the module docs).
    #[serde(default = "yes")]
    pub level1_in_train: bool,
}

fn default_tab_width() -> usize {
    DEFAULT_TAB_WIDTH
}

fn yes() -> bool {
    true
}

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

fn content_hash(record: &ApiRecord) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    for part in [&record.lang, &record.instruction, &record.code] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().as_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

/// What pass one keeps of each surviving record: where it is and what it belongs to.
struct Meta {
    offset: u64,
    len: u32,
    lang: u16,
    api: u32,
    endpoint: u32,
    hash: [u8; 16],
    distinct_test: bool,
}

/// Interns strings to dense ids.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }
}

#[derive(Default)]
struct ApiEndpoints {
    hosts: BTreeSet<String>,
    endpoints: BTreeSet<(Option<String>, String)>,
}

const LEVEL_BIT: [u8; 3] = [2, 4, 8];
const TRAIN_BIT: u8 = 1;

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
    let file = File::open(&input_path)
        .map_err(|e| DataError::io(&input_path, "opening ingest output", e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);

    // Pass one: normalise, drop, de-duplicate; keep only positions and group ids.
    let mut langs = Interner::default();
    let mut apis = Interner::default();
    let mut endpoints = Interner::default();
    let mut endpoint_api: Vec<u32> = Vec::new();
    let mut catalogue: BTreeMap<String, ApiEndpoints> = BTreeMap::new();
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut metas: Vec<Meta> = Vec::new();
    let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut input_records: u64 = 0;
    let mut offset: u64 = 0;
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(&input_path, "reading ingest output", e))?;
        if read == 0 {
            break;
        }
        let line_offset = offset;
        offset += read as u64;
        line_number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        input_records += 1;
        let record = normalize_record(
            parse_record_line(&line, &input_path, line_number)?,
            params.tab_width,
        );
        if record.code.is_empty() {
            *dropped.entry("empty_code").or_default() += 1;
            continue;
        }
        if record.instruction.is_empty() {
            *dropped.entry("empty_instruction").or_default() += 1;
            continue;
        }
        let hash = content_hash(&record);
        if params.dedup && !seen.insert(hash) {
            *dropped.entry("duplicate").or_default() += 1;
            continue;
        }
        let lang = langs.id(&record.lang);
        if lang > u16::MAX as u32 {
            return Err(DataError::Split {
                path: input_path,
                message: "more than 65,535 distinct languages".into(),
            });
        }
        let api = apis.id(&record.api_name);
        let (method, path) = record.endpoint();
        let endpoint_key = format!("{}\u{0}{method}\u{0}{path}", record.api_name);
        let endpoint = endpoints.id(&endpoint_key);
        let new_endpoint = endpoint as usize == endpoint_api.len();
        if new_endpoint {
            endpoint_api.push(api);
        }
        if !catalogue.contains_key(&record.api_name) {
            catalogue.insert(record.api_name.clone(), ApiEndpoints::default());
        }
        let entry = catalogue.get_mut(&record.api_name).expect("inserted above");
        if new_endpoint {
            entry
                .endpoints
                .insert((record.method.clone(), record.path.clone()));
        }
        if let Some(host) = &record.host
            && !entry.hosts.contains(host)
        {
            entry.hosts.insert(host.clone());
        }
        let distinct_test =
            !record.instruction_test.is_empty() && record.instruction_test != record.instruction;
        metas.push(Meta {
            offset: line_offset,
            len: u32::try_from(read).map_err(|_| DataError::Split {
                path: input_path.clone(),
                message: format!("line {line_number} is longer than 4 GiB"),
            })?,
            lang: lang as u16,
            api,
            endpoint,
            hash,
            distinct_test,
        });
    }

    let group_of = |meta: &Meta| -> usize {
        match params.heldout.per {
            HeldoutScope::Lang => meta.lang as usize,
            HeldoutScope::Overall => 0,
        }
    };
    let group_count = match params.heldout.per {
        HeldoutScope::Lang => langs.names.len(),
        HeldoutScope::Overall => 1,
    };
    let quotas = [
        params.heldout.level1,
        params.heldout.level2,
        params.heldout.level3,
    ];
    let mut flags: Vec<u8> = vec![0; metas.len()];

    // Level 3: whole APIs.
    let mut api_group_counts: Vec<Vec<u64>> = vec![vec![0; group_count]; apis.names.len()];
    for meta in &metas {
        api_group_counts[meta.api as usize][group_of(meta)] += 1;
    }
    let mut api_order: Vec<u32> = (0..apis.names.len() as u32).collect();
    api_order.sort_by_key(|&api| {
        (
            rank(seed, "level3-api", apis.names[api as usize].as_bytes()),
            api,
        )
    });
    let max_heldout_apis = apis.names.len() / 2;
    let mut heldout_apis: HashSet<u32> = HashSet::new();
    let mut covered = vec![0u64; group_count];
    for &api in &api_order {
        let unmet = |covered: &[u64]| covered.iter().any(|&c| c < quotas[2] as u64);
        if !unmet(&covered) || heldout_apis.len() >= max_heldout_apis {
            break;
        }
        let counts = &api_group_counts[api as usize];
        let helps = counts
            .iter()
            .zip(&covered)
            .any(|(&n, &c)| n > 0 && c < quotas[2] as u64);
        if !helps {
            continue;
        }
        heldout_apis.insert(api);
        for (c, n) in covered.iter_mut().zip(counts) {
            *c += n;
        }
    }

    // Level 2: whole endpoints of the remaining APIs.
    let mut endpoint_group_counts: Vec<Vec<u64>> =
        vec![vec![0; group_count]; endpoints.names.len()];
    for meta in &metas {
        endpoint_group_counts[meta.endpoint as usize][group_of(meta)] += 1;
    }
    let mut api_live_endpoints: Vec<u64> = vec![0; apis.names.len()];
    for &api in &endpoint_api {
        api_live_endpoints[api as usize] += 1;
    }
    let mut endpoint_order: Vec<u32> = (0..endpoints.names.len() as u32)
        .filter(|e| !heldout_apis.contains(&endpoint_api[*e as usize]))
        .collect();
    endpoint_order.sort_by_key(|&e| {
        (
            rank(
                seed,
                "level2-endpoint",
                endpoints.names[e as usize].as_bytes(),
            ),
            e,
        )
    });
    let mut heldout_endpoints: HashSet<u32> = HashSet::new();
    let mut covered = vec![0u64; group_count];
    for &endpoint in &endpoint_order {
        if covered.iter().all(|&c| c >= quotas[1] as u64) {
            break;
        }
        let api = endpoint_api[endpoint as usize] as usize;
        if api_live_endpoints[api] <= 1 {
            continue;
        }
        let counts = &endpoint_group_counts[endpoint as usize];
        if !counts
            .iter()
            .zip(&covered)
            .any(|(&n, &c)| n > 0 && c < quotas[1] as u64)
        {
            continue;
        }
        heldout_endpoints.insert(endpoint);
        api_live_endpoints[api] -= 1;
        for (c, n) in covered.iter_mut().zip(counts) {
            *c += n;
        }
    }

    // Sample each level's records per group in seeded order.
    let sample_level = |level: usize, candidates: Vec<usize>, flags: &mut Vec<u8>| -> Vec<u64> {
        let mut ordered = candidates;
        ordered.sort_by_key(|&i| {
            (
                rank(seed, ["level1", "level2", "level3"][level], &metas[i].hash),
                i,
            )
        });
        let mut taken = vec![0u64; group_count];
        for i in ordered {
            let group = group_of(&metas[i]);
            if taken[group] < quotas[level] as u64 {
                taken[group] += 1;
                flags[i] |= LEVEL_BIT[level];
            }
        }
        taken
    };
    let in_l3 = |meta: &Meta| heldout_apis.contains(&meta.api);
    let in_l2 = |meta: &Meta| !in_l3(meta) && heldout_endpoints.contains(&meta.endpoint);
    let l3_candidates: Vec<usize> = (0..metas.len()).filter(|&i| in_l3(&metas[i])).collect();
    let l2_candidates: Vec<usize> = (0..metas.len()).filter(|&i| in_l2(&metas[i])).collect();
    sample_level(2, l3_candidates, &mut flags);
    sample_level(1, l2_candidates, &mut flags);

    // Level 1 and training.
    let mut endpoint_train_records: Vec<u64> = vec![0; endpoints.names.len()];
    for (i, meta) in metas.iter().enumerate() {
        if !in_l3(meta) && !in_l2(meta) {
            flags[i] |= TRAIN_BIT;
            endpoint_train_records[meta.endpoint as usize] += 1;
        }
    }
    let mut l1_order: Vec<usize> = (0..metas.len())
        .filter(|&i| flags[i] & TRAIN_BIT != 0 && metas[i].distinct_test)
        .collect();
    l1_order.sort_by_key(|&i| (rank(seed, "level1", &metas[i].hash), i));
    let mut taken = vec![0u64; group_count];
    for i in l1_order {
        let group = group_of(&metas[i]);
        if taken[group] >= quotas[0] as u64 {
            continue;
        }
        if !params.level1_in_train {
            let endpoint = metas[i].endpoint as usize;
            if endpoint_train_records[endpoint] <= 1 {
                continue;
            }
            endpoint_train_records[endpoint] -= 1;
            flags[i] &= !TRAIN_BIT;
        }
        taken[group] += 1;
        flags[i] |= LEVEL_BIT[0];
    }

    // Write the files.
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    let source = File::open(&input_path)
        .map_err(|e| DataError::io(&input_path, "opening ingest output", e))?;
    let load = |i: usize| -> Result<ApiRecord, DataError> {
        use std::os::unix::fs::FileExt;
        let meta = &metas[i];
        let mut buffer = vec![0u8; meta.len as usize];
        source
            .read_exact_at(&mut buffer, meta.offset)
            .map_err(|e| DataError::io(&input_path, "re-reading ingest output", e))?;
        Ok(normalize_record(
            parse_record_line(&buffer, &input_path, 0)?,
            params.tab_width,
        ))
    };

    let mut train: Vec<usize> = (0..metas.len())
        .filter(|&i| flags[i] & TRAIN_BIT != 0)
        .collect();
    let train_pool = train.len();
    train.sort_by_key(|&i| (rank(seed, "train-order", &metas[i].hash), i));
    if let Some(samples) = params.samples {
        train.truncate(samples);
    }
    let mut splits = serde_json::Map::new();
    let lang_counts = |indices: &[usize]| -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for &i in indices {
            *counts
                .entry(langs.names[metas[i].lang as usize].clone())
                .or_default() += 1;
        }
        counts
    };
    write_records(&out_dir.join(TRAIN_FILE), &train, &load, false)?;
    splits.insert(
        "train".into(),
        json!({ "total": train.len(), "pool": train_pool, "per_lang": lang_counts(&train) }),
    );

    let mut shortfall = serde_json::Map::new();
    for level in 0..3 {
        let mut members: Vec<usize> = (0..metas.len())
            .filter(|&i| flags[i] & LEVEL_BIT[level] != 0)
            .collect();
        let purpose = ["level1-order", "level2-order", "level3-order"][level];
        members.sort_by_key(|&i| (rank(seed, purpose, &metas[i].hash), i));
        write_records(&out_dir.join(LEVEL_FILES[level]), &members, &load, true)?;
        let per_group = {
            let mut counts = vec![0u64; group_count];
            for &i in &members {
                counts[group_of(&metas[i])] += 1;
            }
            counts
        };
        let mut missing = serde_json::Map::new();
        for (group, &count) in per_group.iter().enumerate() {
            if count < quotas[level] as u64 {
                let name = match params.heldout.per {
                    HeldoutScope::Lang => langs.names[group].clone(),
                    HeldoutScope::Overall => "overall".to_string(),
                };
                missing.insert(name, json!(quotas[level] as u64 - count));
            }
        }
        if !missing.is_empty() {
            shortfall.insert(format!("level{}", level + 1), Value::Object(missing));
        }
        splits.insert(
            format!("level{}", level + 1),
            json!({ "total": members.len(), "requested": quotas[level], "per_lang": lang_counts(&members) }),
        );
    }
    let heldout_unused = flags.iter().filter(|&&f| f == 0).count();

    write_endpoints(&out_dir.join(ENDPOINTS_FILE), &catalogue)?;

    Ok(json!({
        "seed": seed,
        "input_records": input_records,
        "kept": metas.len(),
        "dropped": dropped,
        "languages": langs.names.iter().cloned().collect::<BTreeSet<_>>(),
        "apis": apis.names.len(),
        "endpoints": endpoints.names.len(),
        "heldout_apis": heldout_apis.len(),
        "heldout_endpoints": heldout_endpoints.len(),
        "heldout_unused": heldout_unused,
        "heldout_per": params.heldout.per,
        "level1_in_train": params.level1_in_train,
        "splits": splits,
        "shortfall": shortfall,
    }))
}

fn write_records(
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
fn write_endpoints(
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
