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
#[serde(default, deny_unknown_fields)]
pub struct HeldoutSpec {
    pub level1: usize,
    pub level2: usize,
    pub level3: usize,
    pub per: HeldoutScope,
}

/// Every field's default, for serde too (`#[serde(default)]`).
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

/// Pass one over the ingest output: every surviving record's position and group ids, the
/// catalogue of endpoints, and what was dropped. Records themselves are not kept.
#[derive(Default)]
struct Scan {
    metas: Vec<Meta>,
    langs: Interner,
    apis: Interner,
    /// Keys `api \0 method \0 path`.
    endpoints: Interner,
    /// The API of each endpoint id.
    endpoint_api: Vec<u32>,
    catalogue: BTreeMap<String, ApiEndpoints>,
    dropped: BTreeMap<&'static str, u64>,
    input_records: u64,
    seen: HashSet<[u8; 16]>,
}

impl Scan {
    /// Normalises each record of `input_path`, drops empty ones and (with `dedup`) repeats.
    fn read(params: &NormalizeParams, input_path: &Path) -> Result<Self, DataError> {
        let file = File::open(input_path)
            .map_err(|e| DataError::io(input_path, "opening ingest output", e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut scan = Self::default();
        let (mut offset, mut line_number, mut line) = (0u64, 0u64, Vec::new());
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| DataError::io(input_path, "reading ingest output", e))?;
            if read == 0 {
                return Ok(scan);
            }
            let at = (offset, read, line_number + 1);
            offset += read as u64;
            line_number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            scan.input_records += 1;
            let record = normalize_record(
                parse_record_line(&line, input_path, line_number)?,
                params.tab_width,
            );
            scan.add(record, params.dedup, at, input_path)?;
        }
    }

    /// Keeps `record`, read at `(offset, length, line)`, unless it is empty or a repeat.
    fn add(
        &mut self,
        record: ApiRecord,
        dedup: bool,
        (offset, read, line_number): (u64, usize, u64),
        input_path: &Path,
    ) -> Result<(), DataError> {
        let hash = content_hash(&record);
        let dropped = if record.code.is_empty() {
            Some("empty_code")
        } else if record.instruction.is_empty() {
            Some("empty_instruction")
        } else if dedup && !self.seen.insert(hash) {
            Some("duplicate")
        } else {
            None
        };
        if let Some(reason) = dropped {
            *self.dropped.entry(reason).or_default() += 1;
            return Ok(());
        }
        let lang = self.langs.id(&record.lang);
        let lang = u16::try_from(lang).map_err(|_| DataError::Split {
            path: input_path.to_path_buf(),
            message: "more than 65,535 distinct languages".into(),
        })?;
        let (api, endpoint) = self.catalogue_endpoint(&record);
        let distinct_test =
            !record.instruction_test.is_empty() && record.instruction_test != record.instruction;
        self.metas.push(Meta {
            offset,
            len: u32::try_from(read).map_err(|_| DataError::Split {
                path: input_path.to_path_buf(),
                message: format!("line {line_number} is longer than 4 GiB"),
            })?,
            lang,
            api,
            endpoint,
            hash,
            distinct_test,
        });
        Ok(())
    }

    /// The (api, endpoint) ids of `record`, entered in the catalogue when new.
    fn catalogue_endpoint(&mut self, record: &ApiRecord) -> (u32, u32) {
        let api = self.apis.id(&record.api_name);
        let (method, path) = record.endpoint();
        let endpoint = self
            .endpoints
            .id(&format!("{}\u{0}{method}\u{0}{path}", record.api_name));
        let new_endpoint = endpoint as usize == self.endpoint_api.len();
        if new_endpoint {
            self.endpoint_api.push(api);
        }
        let entry = self.catalogue.entry(record.api_name.clone()).or_default();
        if new_endpoint {
            entry
                .endpoints
                .insert((record.method.clone(), record.path.clone()));
        }
        if let Some(host) = &record.host {
            entry.hosts.insert(host.clone());
        }
        (api, endpoint)
    }
}

/// The held-out quotas and what they count (records per language, or overall).
struct Quotas {
    per: HeldoutScope,
    /// Records per group, for level1, level2, level3.
    sizes: [u64; 3],
    groups: usize,
}

impl Quotas {
    fn new(spec: &HeldoutSpec, languages: usize) -> Self {
        Self {
            per: spec.per,
            sizes: [spec.level1, spec.level2, spec.level3].map(|n| n as u64),
            groups: match spec.per {
                HeldoutScope::Lang => languages,
                HeldoutScope::Overall => 1,
            },
        }
    }

    fn group(&self, meta: &Meta) -> usize {
        match self.per {
            HeldoutScope::Lang => meta.lang as usize,
            HeldoutScope::Overall => 0,
        }
    }

    /// Records per group of each API (`key = |m| m.api`) or endpoint.
    fn counts(&self, scan: &Scan, ids: usize, key: impl Fn(&Meta) -> u32) -> Vec<Vec<u64>> {
        let mut counts = vec![vec![0u64; self.groups]; ids];
        for meta in &scan.metas {
            counts[key(meta) as usize][self.group(meta)] += 1;
        }
        counts
    }

    /// Whether holding out records with `counts` per group brings a group of `level` that is
    /// still short (`covered`) closer to its quota.
    fn helps(&self, level: usize, counts: &[u64], covered: &[u64]) -> bool {
        counts
            .iter()
            .zip(covered)
            .any(|(&n, &c)| n > 0 && c < self.sizes[level])
    }
}

/// Level 3: whole APIs in seeded order until every group's quota is covered (at most half).
fn hold_out_apis(scan: &Scan, seed: u64, quotas: &Quotas) -> HashSet<u32> {
    let names = &scan.apis.names;
    let counts = quotas.counts(scan, names.len(), |m| m.api);
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_by_key(|&api| {
        (
            rank(seed, "level3-api", names[api as usize].as_bytes()),
            api,
        )
    });
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    for api in order {
        let unmet = covered.iter().any(|&c| c < quotas.sizes[2]);
        if !unmet || heldout.len() >= names.len() / 2 {
            break;
        }
        let counts = &counts[api as usize];
        if quotas.helps(2, counts, &covered) {
            heldout.insert(api);
            covered.iter_mut().zip(counts).for_each(|(c, n)| *c += n);
        }
    }
    heldout
}

/// Level 2: whole endpoints of the remaining APIs in seeded order until every group's quota is
/// covered; an API always keeps one endpoint.
fn hold_out_endpoints(
    scan: &Scan,
    seed: u64,
    quotas: &Quotas,
    heldout_apis: &HashSet<u32>,
) -> HashSet<u32> {
    let names = &scan.endpoints.names;
    let counts = quotas.counts(scan, names.len(), |m| m.endpoint);
    let mut live_endpoints = vec![0u64; scan.apis.names.len()];
    for &api in &scan.endpoint_api {
        live_endpoints[api as usize] += 1;
    }
    let mut order: Vec<u32> = (0..names.len() as u32)
        .filter(|e| !heldout_apis.contains(&scan.endpoint_api[*e as usize]))
        .collect();
    order.sort_by_key(|&e| {
        (
            rank(seed, "level2-endpoint", names[e as usize].as_bytes()),
            e,
        )
    });
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    for endpoint in order {
        if covered.iter().all(|&c| c >= quotas.sizes[1]) {
            break;
        }
        let api = scan.endpoint_api[endpoint as usize] as usize;
        let counts = &counts[endpoint as usize];
        if live_endpoints[api] > 1 && quotas.helps(1, counts, &covered) {
            heldout.insert(endpoint);
            live_endpoints[api] -= 1;
            covered.iter_mut().zip(counts).for_each(|(c, n)| *c += n);
        }
    }
    heldout
}

/// The APIs and endpoints held out whole.
struct Heldout {
    apis: HashSet<u32>,
    endpoints: HashSet<u32>,
}

impl Heldout {
    fn in_level3(&self, meta: &Meta) -> bool {
        self.apis.contains(&meta.api)
    }

    fn in_level2(&self, meta: &Meta) -> bool {
        !self.in_level3(meta) && self.endpoints.contains(&meta.endpoint)
    }
}

/// Marks a seeded sample of `candidates`, up to the quota per group, as `level`'s records.
fn sample_level(
    metas: &[Meta],
    (seed, quotas): (u64, &Quotas),
    level: usize,
    candidates: Vec<usize>,
    flags: &mut [u8],
) {
    let mut ordered = candidates;
    let purpose = ["level1", "level2", "level3"][level];
    ordered.sort_by_key(|&i| (rank(seed, purpose, &metas[i].hash), i));
    let mut taken = vec![0u64; quotas.groups];
    for i in ordered {
        let group = quotas.group(&metas[i]);
        if taken[group] < quotas.sizes[level] {
            taken[group] += 1;
            flags[i] |= LEVEL_BIT[level];
        }
    }
}

/// Each record's flags: `TRAIN_BIT` and the `LEVEL_BIT`s of the test sets it is in.
fn assign(
    scan: &Scan,
    (seed, quotas): (u64, &Quotas),
    heldout: &Heldout,
    level1_in_train: bool,
) -> Vec<u8> {
    let metas = &scan.metas;
    let mut flags = vec![0u8; metas.len()];
    let members =
        |pick: &dyn Fn(&Meta) -> bool| (0..metas.len()).filter(|&i| pick(&metas[i])).collect();
    sample_level(
        metas,
        (seed, quotas),
        2,
        members(&|m| heldout.in_level3(m)),
        &mut flags,
    );
    sample_level(
        metas,
        (seed, quotas),
        1,
        members(&|m| heldout.in_level2(m)),
        &mut flags,
    );
    let mut endpoint_train_records = vec![0u64; scan.endpoints.names.len()];
    for (i, meta) in metas.iter().enumerate() {
        if !heldout.in_level3(meta) && !heldout.in_level2(meta) {
            flags[i] |= TRAIN_BIT;
            endpoint_train_records[meta.endpoint as usize] += 1;
        }
    }
    // Level 1: new phrasings of training records.
    let mut order: Vec<usize> = (0..metas.len())
        .filter(|&i| flags[i] & TRAIN_BIT != 0 && metas[i].distinct_test)
        .collect();
    order.sort_by_key(|&i| (rank(seed, "level1", &metas[i].hash), i));
    let mut taken = vec![0u64; quotas.groups];
    for i in order {
        let group = quotas.group(&metas[i]);
        if taken[group] >= quotas.sizes[0] {
            continue;
        }
        if !level1_in_train {
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
    flags
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
    let scan = Scan::read(params, &input_path)?;
    let quotas = Quotas::new(&params.heldout, scan.langs.names.len());
    let apis = hold_out_apis(&scan, seed, &quotas);
    let endpoints = hold_out_endpoints(&scan, seed, &quotas, &apis);
    let heldout = Heldout { apis, endpoints };
    let flags = assign(&scan, (seed, &quotas), &heldout, params.level1_in_train);

    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    let writer = SplitWriter {
        scan: &scan,
        source: File::open(&input_path)
            .map_err(|e| DataError::io(&input_path, "opening ingest output", e))?,
        input_path: &input_path,
        params,
        seed,
        quotas: &quotas,
        flags: &flags,
    };
    let (splits, shortfall) = writer.write(out_dir)?;
    write_endpoints(&out_dir.join(ENDPOINTS_FILE), &scan.catalogue)?;
    Ok(json!({
        "seed": seed,
        "input_records": scan.input_records,
        "kept": scan.metas.len(),
        "dropped": scan.dropped,
        "languages": scan.langs.names.iter().cloned().collect::<BTreeSet<_>>(),
        "apis": scan.apis.names.len(),
        "endpoints": scan.endpoints.names.len(),
        "heldout_apis": heldout.apis.len(),
        "heldout_endpoints": heldout.endpoints.len(),
        "heldout_unused": flags.iter().filter(|&&f| f == 0).count(),
        "heldout_per": params.heldout.per,
        "level1_in_train": params.level1_in_train,
        "splits": splits,
        "shortfall": shortfall,
    }))
}

/// Pass two: re-reads the kept records by position and writes the split files.
struct SplitWriter<'a> {
    scan: &'a Scan,
    source: File,
    input_path: &'a Path,
    params: &'a NormalizeParams,
    seed: u64,
    quotas: &'a Quotas,
    flags: &'a [u8],
}

impl SplitWriter<'_> {
    /// Writes `train.jsonl` and the level files; returns the per-split counts and the
    /// shortfall of each level that did not reach its quota.
    fn write(&self, out_dir: &Path) -> Result<(Value, Value), DataError> {
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
            splits.insert(
                format!("level{}", level + 1),
                json!({ "total": members.len(), "requested": requested, "per_lang": self.lang_counts(&members) }),
            );
        }
        Ok((Value::Object(splits), Value::Object(shortfall)))
    }

    fn members(&self, bit: u8) -> Vec<usize> {
        (0..self.flags.len())
            .filter(|&i| self.flags[i] & bit != 0)
            .collect()
    }

    /// Record `i`, read again from its position in the ingest output.
    fn load(&self, i: usize) -> Result<ApiRecord, DataError> {
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

    fn lang_counts(&self, indices: &[usize]) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for &i in indices {
            let lang = &self.scan.langs.names[self.scan.metas[i].lang as usize];
            *counts.entry(lang.clone()).or_default() += 1;
        }
        counts
    }

    /// Per group, how many records `level`'s `members` lack of the quota.
    fn missing(&self, level: usize, members: &[usize]) -> serde_json::Map<String, Value> {
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
