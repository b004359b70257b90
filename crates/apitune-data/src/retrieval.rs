//! In-context examples retrieved for each prompt (API Pack's 3-shot setting): for every record of
//! a split, the `k` records most similar to its instruction, by BM25, best one last (closest to
//! the query).
//!
//! Where candidates come from, so that nothing leaks:
//! - training records and level 1 and 2 queries draw from the training pool (`train.jsonl`);
//! - level-3 queries (an API training never saw) draw from that API's documentation examples
//!   (`docs.jsonl`: the records its spec renders, in the training phrasing), never from the
//!   level-3 test file.
//!
//! A candidate is never the query's own record, never has the query's output (its code), is in
//! the query's language, is of the query's API under `scope = "same-api"`, and for level 2 and 3
//! never calls the held-out endpoint itself (method and path). Records with no candidate keep the
//! plain prompt.
//!
//! Artifacts: `shots.jsonl` (one line per query: `target` = `<split>/<unique_id>`, `shots` = ids
//! of `examples.jsonl` in prompt order, `scores`), `examples.jsonl` (each retrieved record once:
//! id `<pool>/<unique_id>`, instruction, code).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use bm25::{Embedder, EmbedderBuilder, Language, Scorer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::DataError;
use super::record::ApiRecord;
use super::split::{DOCS_FILE, LEVEL_FILES, TRAIN_FILE, read_records};

pub const SHOTS_FILE: &str = "shots.jsonl";
pub const EXAMPLES_FILE: &str = "examples.jsonl";

/// Most examples one prompt may ask for.
pub const MAX_SHOTS: usize = 16;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    /// Okapi BM25 over the instructions (k1 = 1.2, b = 0.75; English stemming and stop words).
    #[default]
    Bm25,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RetrievalScope {
    /// Candidates of the query's API only (API Pack's setting).
    #[default]
    SameApi,
    /// Candidates of any API.
    AnyApi,
}

/// The `retrieve` stage's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalParams {
    /// Examples per prompt.
    pub k: usize,
    pub retriever: Retriever,
    pub scope: RetrievalScope,
}

impl Default for RetrievalParams {
    fn default() -> Self {
        Self {
            k: 3,
            retriever: Retriever::Bm25,
            scope: RetrievalScope::SameApi,
        }
    }
}

/// A retrieved record, as a prompt shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotExample {
    /// `<pool>/<unique_id>`: `train/...` or `docs/...`.
    pub id: String,
    pub api_name: String,
    pub method: Option<String>,
    pub path: String,
    pub instruction: String,
    pub code: String,
}

/// One query's retrieved examples, as `shots.jsonl` stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotList {
    /// `<split>/<unique_id>`.
    pub target: String,
    /// Ids into `examples.jsonl`, in prompt order (best last).
    pub shots: Vec<String>,
    /// BM25 scores, in the same order.
    pub scores: Vec<f32>,
}

/// The key of a query record in `shots.jsonl`.
pub fn target_key(split: &str, record: &ApiRecord) -> String {
    format!("{split}/{}", record.unique_id)
}

/// A record of a pool, with what retrieval compares.
struct Candidate {
    id: String,
    record: ApiRecord,
}

struct Pool {
    candidates: Vec<Candidate>,
    /// Candidate positions by (API or "" for any, lang).
    groups: HashMap<(String, String), Vec<usize>>,
}

impl Pool {
    fn read(path: &Path, name: &str, scope: RetrievalScope) -> Result<Self, DataError> {
        let mut candidates = Vec::new();
        let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::new();
        if path.exists() {
            for record in read_records(path) {
                let record = record?;
                groups
                    .entry(group_key(scope, &record))
                    .or_default()
                    .push(candidates.len());
                candidates.push(Candidate {
                    id: format!("{name}/{}", record.unique_id),
                    record,
                });
            }
        }
        Ok(Self { candidates, groups })
    }
}

fn group_key(scope: RetrievalScope, record: &ApiRecord) -> (String, String) {
    let api = match scope {
        RetrievalScope::SameApi => record.api_name.clone(),
        RetrievalScope::AnyApi => String::new(),
    };
    (api, record.lang.clone())
}

/// Whether `candidate` may be shown to `query` of `split` (see the module docs).
pub fn allowed(split: &str, query: &ApiRecord, candidate: &ApiRecord) -> bool {
    let same_endpoint = candidate.api_name == query.api_name
        && candidate.method == query.method
        && candidate.path == query.path;
    candidate.unique_id != query.unique_id
        && candidate.code.trim() != query.code.trim()
        && candidate.lang == query.lang
        && !(matches!(split, "level2" | "level3") && same_endpoint)
}

/// Builds `shots.jsonl` and `examples.jsonl` in `out_dir` for every record of the split in
/// `split_dir`. Returns the summary.
pub fn build_shots(
    split_dir: &Path,
    params: &RetrievalParams,
    out_dir: &Path,
) -> Result<Value, DataError> {
    if params.k == 0 || params.k > MAX_SHOTS {
        return Err(DataError::Params(format!(
            "k = {}: ask for 1 to {MAX_SHOTS} examples per prompt",
            params.k
        )));
    }
    let train = Pool::read(&split_dir.join(TRAIN_FILE), "train", params.scope)?;
    let docs = Pool::read(&split_dir.join(DOCS_FILE), "docs", params.scope)?;
    // One BM25 model over both pools: document frequencies from everything retrievable.
    let corpus: Vec<&str> = train
        .candidates
        .iter()
        .chain(&docs.candidates)
        .map(|c| c.record.instruction.as_str())
        .collect();
    let embedder: Embedder =
        EmbedderBuilder::with_fit_to_corpus(Language::English, &corpus).build();
    let mut scorer = Scorer::<usize>::new();
    for (i, text) in corpus.iter().enumerate() {
        scorer.upsert(&i, embedder.embed(text));
    }
    drop(corpus);

    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    let shots_path = out_dir.join(SHOTS_FILE);
    let mut shots_out = BufWriter::new(
        File::create(&shots_path).map_err(|e| DataError::io(&shots_path, "creating shots", e))?,
    );
    let write_error = |e: std::io::Error| DataError::io(&shots_path, "writing shots", e);
    let mut used: BTreeMap<usize, ()> = BTreeMap::new();
    let mut summary = serde_json::Map::new();
    let splits = std::iter::once(("train", TRAIN_FILE))
        .chain(["level1", "level2", "level3"].into_iter().zip(LEVEL_FILES));
    for (split, file) in splits {
        let path = split_dir.join(file);
        if !path.exists() {
            continue;
        }
        let (pool, offset) = if split == "level3" {
            (&docs, train.candidates.len())
        } else {
            (&train, 0)
        };
        let (mut queries, mut with_shots, mut total_shots) = (0u64, 0u64, 0u64);
        for query in read_records(&path) {
            let query = query?;
            let chosen = retrieve(&embedder, &scorer, pool, offset, split, &query, params);
            queries += 1;
            with_shots += u64::from(!chosen.is_empty());
            total_shots += chosen.len() as u64;
            for &(position, _) in &chosen {
                used.insert(offset + position, ());
            }
            let list = ShotList {
                target: target_key(split, &query),
                shots: chosen
                    .iter()
                    .map(|&(p, _)| pool.candidates[p].id.clone())
                    .collect(),
                scores: chosen.iter().map(|&(_, s)| s).collect(),
            };
            serde_json::to_writer(&mut shots_out, &list).map_err(|e| write_error(e.into()))?;
            shots_out.write_all(b"\n").map_err(write_error)?;
        }
        summary.insert(
            split.to_string(),
            json!({ "queries": queries, "with_shots": with_shots, "shots": total_shots }),
        );
    }
    shots_out.flush().map_err(write_error)?;

    let examples_path = out_dir.join(EXAMPLES_FILE);
    let mut examples_out = BufWriter::new(
        File::create(&examples_path)
            .map_err(|e| DataError::io(&examples_path, "creating examples", e))?,
    );
    let examples_error = |e: std::io::Error| DataError::io(&examples_path, "writing examples", e);
    for &position in used.keys() {
        let candidate = match position.checked_sub(train.candidates.len()) {
            None => &train.candidates[position],
            Some(doc) => &docs.candidates[doc],
        };
        let r = &candidate.record;
        let example = ShotExample {
            id: candidate.id.clone(),
            api_name: r.api_name.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            instruction: r.instruction.clone(),
            code: r.code.clone(),
        };
        serde_json::to_writer(&mut examples_out, &example).map_err(|e| examples_error(e.into()))?;
        examples_out.write_all(b"\n").map_err(examples_error)?;
    }
    examples_out.flush().map_err(examples_error)?;
    Ok(json!({
        "k": params.k,
        "train_pool": train.candidates.len(),
        "docs_pool": docs.candidates.len(),
        "examples": used.len(),
        "splits": Value::Object(summary),
    }))
}

/// The `k` best allowed candidates of `pool` for `query` as (position, score), best last.
fn retrieve(
    embedder: &Embedder,
    scorer: &Scorer<usize>,
    pool: &Pool,
    offset: usize,
    split: &str,
    query: &ApiRecord,
    params: &RetrievalParams,
) -> Vec<(usize, f32)> {
    let Some(group) = pool.groups.get(&group_key(params.scope, query)) else {
        return Vec::new();
    };
    let embedding = embedder.embed(&query.instruction);
    let mut scored: Vec<(usize, f32)> = group
        .iter()
        .filter(|&&p| allowed(split, query, &pool.candidates[p].record))
        .map(|&p| (p, scorer.score(&(offset + p), &embedding).unwrap_or(0.0)))
        .collect();
    // Highest score first; ties in pool order, so the choice is deterministic.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(params.k);
    scored.reverse();
    scored
}

/// A `retrieve` artifact, loaded: every query's examples.
#[derive(Debug, Default)]
pub struct Shots {
    examples: HashMap<String, ShotExample>,
    by_target: HashMap<String, Vec<String>>,
}

impl Shots {
    /// Reads `shots.jsonl` and `examples.jsonl` from a `retrieve` artifact directory.
    pub fn read(dir: &Path) -> Result<Self, DataError> {
        let mut shots = Shots::default();
        for line in json_lines::<ShotExample>(&dir.join(EXAMPLES_FILE))? {
            shots.examples.insert(line.id.clone(), line);
        }
        for list in json_lines::<ShotList>(&dir.join(SHOTS_FILE))? {
            shots.by_target.insert(list.target, list.shots);
        }
        Ok(shots)
    }

    /// The examples retrieved for `record` of `split`, in prompt order; empty when it has none.
    pub fn of(&self, split: &str, record: &ApiRecord) -> Vec<&ShotExample> {
        self.by_target
            .get(&target_key(split, record))
            .map(|ids| ids.iter().filter_map(|id| self.examples.get(id)).collect())
            .unwrap_or_default()
    }

    /// The most examples any prompt gets (the `retrieve` stage's `k`, unless no query found
    /// that many).
    pub fn per_prompt(&self) -> usize {
        self.by_target.values().map(Vec::len).max().unwrap_or(0)
    }

    /// Queries with a shot list (with or without examples).
    pub fn len(&self) -> usize {
        self.by_target.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }
}

fn json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "reading", e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                DataError::io(
                    path,
                    "reading",
                    std::io::Error::other(format!("line {}: {e}", i + 1)),
                )
            })
        })
        .collect()
}
