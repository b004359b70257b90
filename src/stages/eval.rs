//! `eval` (and the study's `baseline`, which is `eval` of a base model without adapter): batched
//! generation over each held-out level with the configured decoding, then scoring.
//!
//! Generation and scoring are separate steps. Generations are stored under a memo key made only of
//! what determines them (model files, adapter, decoding, prompts), so re-scoring after a metric
//! change never re-generates, and an interrupted generation resumes from the last finished batch.
//! Artifacts: `results.json` (config, versions, every metric per level and language) and
//! `samples.jsonl` (one line per example: ids, prompt hash, prediction, reference, its metrics).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PlanContext, RunContext, StageKind};
use crate::artifacts::{AdapterInfo, BaseRef, EvalResults, Input, LevelScores, TrainSummary};
use crate::data::retrieval::Shots;
use crate::data::{self, ApiRecord};
use crate::manifest::shorten;
use crate::metrics::api_match::EndpointSet;
use crate::metrics::bootstrap::Bootstrap;
use crate::metrics::corpus::{
    CorpusScores, Example, ExampleScores, Grounding, Scores, score_corpus,
};
use crate::metrics::grounded::ContractIndex;
use crate::metrics::perplexity::TokenNll;
use crate::model::{self, GenerationConfig, Model, Sampling};
use crate::validate::{MAX_BATCH, MAX_POSITIONS, MAX_RECORDS, MAX_VOCAB, Problems, Validate};

pub struct Eval;

pub const LEVELS: [&str; 3] = ["level1", "level2", "level3"];

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EvalParams {
    /// Model from `[models]` (an HF directory). Omit when the stage needs a `lora-train` or
    /// `pretrain` stage: their artifacts name the model they trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Held-out levels to evaluate: level1 (new phrasing), level2 (new endpoint), level3 (new API).
    pub levels: Vec<String>,
    /// At most this many examples per level, in split order (the split is already shuffled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only these languages (lower-case API Pack labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub langs: Option<Vec<String>>,
    pub decoding: Decoding,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Also score the reference code under the model (target-only, token-weighted perplexity).
    pub perplexity: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Decoding {
    pub max_new_tokens: usize,
    /// 0 = greedy (the study's decoding).
    pub temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Generation stops at any of these strings (cut before it).
    pub stop: Vec<String>,
}

/// Every field's default, for serde too (`#[serde(default)]`): the study's greedy decoding.
impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            stop: Vec::new(),
        }
    }
}

/// Every field's default, for serde too (`#[serde(default)]`).
impl Default for EvalParams {
    fn default() -> Self {
        Self {
            model: None,
            levels: LEVELS.iter().map(|s| s.to_string()).collect(),
            limit: None,
            langs: None,
            decoding: Decoding::default(),
            batch_size: 8,
            perplexity: true,
        }
    }
}

impl Validate for EvalParams {
    fn validate(&self, out: &mut Problems) {
        out.require(!self.levels.is_empty(), "levels", |p| {
            format!("{p} must list at least one of level1, level2, level3")
        });
        for (i, level) in self.levels.iter().enumerate() {
            let known = LEVELS.contains(&level.as_str());
            out.require(known, &format!("levels.{i}"), |_| {
                format!(
                    "unknown level `{}`: use level1, level2 or level3",
                    shorten(level)
                )
            });
            let repeated = self.levels[..i].contains(level);
            out.require(!repeated || !known, &format!("levels.{i}"), |_| {
                format!("level `{level}` is listed twice")
            });
        }
        out.opt_int("limit", self.limit, 1, MAX_RECORDS);
        if let Some(langs) = &self.langs {
            out.names("langs", langs, "language");
        }
        out.int("batch_size", self.batch_size, 1, MAX_BATCH);
        out.nested("decoding", &self.decoding);
    }
}

impl Validate for Decoding {
    fn validate(&self, out: &mut Problems) {
        out.int("max_new_tokens", self.max_new_tokens, 1, MAX_POSITIONS);
        out.float(
            "temperature",
            self.temperature.into(),
            (0.0, false),
            (100.0, false),
        );
        out.opt_int("top_k", self.top_k, 1, MAX_VOCAB);
        if let Some(top_p) = self.top_p {
            out.float("top_p", top_p.into(), (0.0, true), (1.0, false));
        }
        if let Some(i) = self.stop.iter().position(String::is_empty) {
            out.require(false, &format!("stop.{i}"), |p| {
                format!("{p}: a stop string must not be empty")
            });
        }
    }
}

/// One generated continuation, as kept in the memo.
#[derive(Serialize, Deserialize)]
struct Generated {
    index: usize,
    prompt_hash: String,
    prediction: String,
    finish_reason: model::FinishReason,
    new_tokens: usize,
}

impl StageKind for Eval {
    const KIND: &'static str = "eval";
    // 2: 95% intervals of the headline metrics, resampled by API. 3: spec-grounded call checks,
    // a needed `retrieve` stage's examples before the prompts.
    const VERSION: u32 = 3;
    type Params = EvalParams;

    fn input_files(params: &EvalParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        match &params.model {
            Some(name) => ctx.model_files(name),
            None => Ok(Vec::new()),
        }
    }

    fn check(params: &EvalParams, ctx: &PlanContext) -> Result<(), (String, String)> {
        if let Some(name) = &params.model {
            ctx.check_model(name)
                .map_err(|e| ("model".to_string(), e))?;
        }
        Ok(())
    }

    fn runtime_facts(_params: &EvalParams, ctx: &PlanContext) -> Value {
        json!({ "backend": ctx.backend, "seed": ctx.seed })
    }

    fn run(params: &EvalParams, ctx: &RunContext) -> anyhow::Result<Value> {
        let split = ctx.input_of_kind("normalize")?;
        let source = ModelSource::resolve(params, ctx)?;
        let device = ctx.device()?;
        let model = source.load(&device)?;
        let shots = super::retrieved_examples(ctx)?;
        let endpoints = known_endpoints(&split.dir.join(data::ENDPOINTS_FILE))?;
        // Records generated from OpenAPI specs are checked against their spec's contract.
        let contracts =
            ContractIndex::new(data::read_contracts(&split.dir)?.into_values().collect());
        let references = (&endpoints, &contracts);
        let mut levels = BTreeMap::new();
        let mut memos = Vec::new();
        let mut samples = Vec::new();
        let mut all: Vec<Scored> = Vec::new();
        for level in &params.levels {
            let evaluation = (&model, &source, params, references, shots.as_ref());
            let (mut scores, examples, memo) = evaluate_level(ctx, evaluation, &split.dir, level)?;
            add_intervals(&mut scores, &examples, ctx.seed);
            memos.push(memo);
            for ((r, g, _), s) in examples.iter().zip(&scores.examples) {
                samples.push(json!({
                    "level": level, "id": r.unique_id, "api": r.api_name, "lang": r.lang,
                    "prompt_hash": g.prompt_hash, "prediction": g.prediction, "reference": r.code,
                    "finish_reason": g.finish_reason, "new_tokens": g.new_tokens, "metrics": s,
                }));
            }
            let level_scores = LevelScores {
                overall: scores.overall,
                per_lang: scores.per_lang,
            };
            levels.insert(level.clone(), level_scores);
            all.extend(examples);
        }
        let mut overall = score_corpus(&examples_of(&all, references));
        add_intervals(&mut overall, &all, ctx.seed);
        let results = EvalResults {
            arm: ctx.arm.to_string(),
            model: source.name.clone(),
            samples: source.adapter.as_ref().and_then(|(_, a)| a.samples),
            adapter: source.adapter.as_ref().map(|(_, a)| a.clone()),
            decoding: serde_json::to_value(&params.decoding)?,
            versions: json!({ "apitune": env!("CARGO_PKG_VERSION"), "eval": Self::VERSION, "backend": ctx.backend }),
            overall: overall.overall.clone(),
            levels,
            per_lang: overall.per_lang.clone(),
            perplexity: overall.overall.perplexity,
            shots: shots.as_ref().map_or(0, Shots::per_prompt),
        };
        results.write(ctx.out_dir)?;
        write_samples(&ctx.out_dir.join("samples.jsonl"), &samples)?;
        Ok(summary_of(&overall.overall, memos))
    }
}

/// An evaluated example: the record, what the model generated, and the reference's NLL.
type Scored = (ApiRecord, Generated, Option<TokenNll>);

/// Generates for (memoised) and scores the records of one held-out level. Returns the scores,
/// the examples, and the memo directory used.
fn evaluate_level(
    ctx: &RunContext,
    (model, source, params, references, shots): (
        &Model,
        &ModelSource,
        &EvalParams,
        References,
        Option<&Shots>,
    ),
    split_dir: &Path,
    level: &str,
) -> anyhow::Result<(CorpusScores, Vec<Scored>, String)> {
    let records = level_records(split_dir, level, params)?;
    let prompts: Vec<String> = records
        .iter()
        .map(|r| match shots {
            Some(shots) => data::prompt_with_examples(r, &r.lang, &shots.of(level, r)),
            None => data::prompt(r, &r.lang),
        })
        .collect();
    let (generated, memo) = generate_memoized(ctx, model, source, params, level, &prompts)?;
    let nlls: Vec<Option<TokenNll>> = if params.perplexity {
        reference_nll(model, &records, &prompts, params.batch_size)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; records.len()]
    };
    let examples: Vec<Scored> = records
        .into_iter()
        .zip(generated)
        .zip(nlls)
        .map(|((r, g), n)| (r, g, n))
        .collect();
    let scores = score_corpus(&examples_of(&examples, references));
    Ok((scores, examples, memo))
}

/// Adds 95% bootstrap intervals to the overall and per-language scores of `scores`, resampling
/// whole APIs (`examples` are the scored examples in the same order).
fn add_intervals(scores: &mut CorpusScores, examples: &[Scored], seed: u64) {
    let bootstrap = Bootstrap::new(seed);
    let apis: Vec<&str> = examples
        .iter()
        .map(|(r, _, _)| r.api_name.as_str())
        .collect();
    let all: Vec<&ExampleScores> = scores.examples.iter().collect();
    scores.overall.intervals = bootstrap.intervals(&all, &apis);
    for (lang, lang_scores) in &mut scores.per_lang {
        let (members, clusters): (Vec<&ExampleScores>, Vec<&str>) = all
            .iter()
            .zip(&apis)
            .filter(|(e, _)| &e.lang == lang)
            .map(|(e, a)| (*e, *a))
            .unzip();
        lang_scores.intervals = bootstrap.intervals(&members, &clusters);
    }
}

fn write_samples(path: &Path, samples: &[Value]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in samples {
        serde_json::to_writer(&mut out, s)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The stage summary: headline metrics, and the memo directories this result was generated into
/// (`gc` keeps them while it is live).
fn summary_of(o: &Scores, memos: Vec<String>) -> Value {
    let mut summary = json!({
        "examples": o.n,
        "exact_match": o.exact_match,
        "sacrebleu_corpus": o.sacrebleu_corpus,
        "sacrebleu_sentence_mean": o.sacrebleu_sentence_mean,
        "rouge_l": o.rouge_l,
        "syntax": o.syntax.rate,
        "perplexity": o.perplexity,
        "memo": memos,
    });
    let headline = format!(
        "{} examples · SacreBLEU {:.2} · syntax {} · EM {:.3}",
        o.n,
        o.sacrebleu_corpus,
        o.syntax.rate.map_or("–".to_string(), |r| format!("{r:.3}")),
        o.exact_match
    );
    super::set_headline(&mut summary, headline);
    summary
}

/// Where the evaluated model comes from: a `[models]` directory, the artifact of a `pretrain` stage
/// this stage needs, or either of those with the adapter of a `lora-train` stage it needs.
struct ModelSource {
    /// Name shown in results: the `[models]` name, or the pretrain arm.
    name: String,
    dir: PathBuf,
    adapter: Option<(PathBuf, AdapterInfo)>,
    /// What identifies the weights by content, for the generation memo.
    identity: Value,
}

impl ModelSource {
    fn resolve(params: &EvalParams, ctx: &RunContext) -> anyhow::Result<ModelSource> {
        let of_kind = |kind: &str| {
            ctx.inputs
                .iter()
                .filter(|i| i.kind == kind)
                .collect::<Vec<_>>()
        };
        let (pretrained, adapters) = (of_kind("pretrain"), of_kind("lora-train"));
        match adapters.as_slice() {
            [] => Self::base(params, ctx, &pretrained),
            [lora] => Self::adapter(params, ctx, lora, &pretrained),
            [first, second, ..] => anyhow::bail!(
                "stage `{}` needs several `lora-train` arms ({}, {}); an eval arm evaluates one adapter",
                ctx.arm,
                first.arm,
                second.arm
            ),
        }
    }

    /// The adapter of `lora` on the base it was trained on: a needed pretrain arm, or the
    /// `[models]` directory it names.
    fn adapter(
        params: &EvalParams,
        ctx: &RunContext,
        lora: &Input,
        pretrained: &[&Input],
    ) -> anyhow::Result<ModelSource> {
        let base = BaseRef::load(&lora.dir)?;
        let (dir, base_identity) = match &base.pretrain_key {
            Some(key) => {
                let input = pretrained.iter().find(|i| &i.key == key).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the adapter of `{}` was trained on the pretrained `{}`: add that stage to the `needs` of `{}`",
                        lora.arm,
                        base.pretrain_arm.as_deref().unwrap_or("pretrain"),
                        ctx.arm
                    )
                })?;
                (input.dir.clone(), json!({ "artifact": input.key }))
            }
            None => {
                if let Some(name) = params.model.as_ref().filter(|n| **n != base.model) {
                    anyhow::bail!(
                        "stage `{}` names model `{name}`, but the adapter of `{}` was trained on `{}`",
                        ctx.arm,
                        lora.arm,
                        base.model
                    );
                }
                let identity = json!({ "files": ctx.file_hashes, "model": base.model });
                (ctx.model_dir(&base.model)?, identity)
            }
        };
        let samples = TrainSummary::load(&lora.dir).ok().and_then(|s| s.samples);
        let info = AdapterInfo {
            arm: lora.arm.clone(),
            key: lora.key.clone(),
            samples,
        };
        Ok(ModelSource {
            name: base.model.clone(),
            dir,
            adapter: Some((lora.dir.clone(), info)),
            identity: json!({ "base": base_identity, "adapter": lora.key }),
        })
    }

    /// A model without adapter: the `[models]` entry `model` names, or the one pretrain arm.
    fn base(
        params: &EvalParams,
        ctx: &RunContext,
        pretrained: &[&Input],
    ) -> anyhow::Result<ModelSource> {
        match (&params.model, pretrained) {
            (Some(name), []) => Ok(ModelSource {
                name: name.clone(),
                dir: ctx.model_dir(name)?,
                adapter: None,
                identity: json!({ "files": ctx.file_hashes }),
            }),
            (None, [input]) => Ok(ModelSource {
                // The model the pretrain stage trained, so its rows line up with its adapters'.
                name: TrainSummary::load(&input.dir)
                    .map(|s| s.model)
                    .unwrap_or_else(|_| input.arm.clone()),
                dir: input.dir.clone(),
                adapter: None,
                identity: json!({ "artifact": input.key }),
            }),
            (Some(name), [input, ..]) => anyhow::bail!(
                "stage `{}` names model `{name}` and also needs the pretrained `{}`: keep one of the two",
                ctx.arm,
                input.arm
            ),
            (None, []) => anyhow::bail!(
                "stage `{}` has no model: set `model = \"NAME\"` (a model of [models] with a `path`) or need a `pretrain` or `lora-train` stage",
                ctx.arm
            ),
            (None, _) => anyhow::bail!(
                "stage `{}` needs several `pretrain` arms; it evaluates one model",
                ctx.arm
            ),
        }
    }

    fn load(&self, device: &burn::tensor::Device) -> anyhow::Result<Model> {
        let loaded = match &self.adapter {
            Some((adapter_dir, _)) => {
                model::lora::load_with_adapter(&self.dir, adapter_dir, device)
            }
            None => Model::load(&self.dir, device),
        };
        loaded.with_context(|| format!("loading model `{}` from {}", self.name, self.dir.display()))
    }
}

/// What predictions are compared with besides their reference: each API's known endpoints, and
/// the API contracts of specs the records came from.
type References<'a> = (&'a HashMap<String, EndpointSet>, &'a ContractIndex);

fn examples_of<'a>(
    items: &'a [(ApiRecord, Generated, Option<TokenNll>)],
    (endpoints, contracts): References<'a>,
) -> Vec<Example<'a>> {
    items
        .iter()
        .map(|(r, g, nll)| Example {
            prediction: &g.prediction,
            reference: &r.code,
            lang: &r.lang,
            known_endpoints: endpoints.get(&r.api_name),
            nll: *nll,
            grounding: grounding(r, contracts),
        })
        .collect()
}

/// The contract `record`'s call is checked against: its spec's, with the operation it was
/// generated from as the reference.
fn grounding<'a>(record: &ApiRecord, contracts: &'a ContractIndex) -> Option<Grounding<'a>> {
    let api = contracts.api_of_spec(record.spec_id.as_deref()?)?;
    let (method, path) = record.endpoint();
    Some(Grounding {
        contracts,
        api: Some(api),
        reference: contracts.find_operation(api, method, path),
    })
}

/// Prompt tokens that leave room for generation within the model's context: a prompt too long is
/// cut from the left, keeping its end (`### OUTPUT:`), which is what the model continues from.
fn fit_prompt(model: &Model, prompt: &str, max_new_tokens: usize) -> anyhow::Result<Vec<u32>> {
    let ids = model::tokenizer::encode(&model.tokenizer, prompt)?;
    let context = model.config.max_positions();
    let budget = context
        .saturating_sub(max_new_tokens.min(context / 4))
        .max(1);
    Ok(if ids.len() > budget {
        ids[ids.len() - budget..].to_vec()
    } else {
        ids
    })
}

/// NLL of each reference given its prompt: target-only perplexity (the study scored the model's
/// own output, prompt included). Pairs longer than the context keep the whole target when they
/// can, cutting the prompt from the left; a target longer than the context is cut at its end.
fn reference_nll(
    model: &Model,
    records: &[ApiRecord],
    prompts: &[String],
    batch: usize,
) -> anyhow::Result<Vec<TokenNll>> {
    let context = model.config.max_positions();
    let mut out = Vec::with_capacity(records.len());
    for (recs, prompts) in records.chunks(batch).zip(prompts.chunks(batch)) {
        let mut pairs = Vec::with_capacity(recs.len());
        for (r, p) in recs.iter().zip(prompts) {
            let prompt = model::tokenizer::encode(&model.tokenizer, p)?;
            let mut target = model::tokenizer::encode(&model.tokenizer, &r.code)?;
            target.truncate(context.saturating_sub(1));
            let keep = (context - target.len()).min(prompt.len());
            pairs.push((prompt[prompt.len() - keep..].to_vec(), target));
        }
        for s in model::score_tokens(&model.network, &pairs, context, &model.device)? {
            out.push(TokenNll {
                sum_nll: s.total_nll(),
                n_tokens: s.logprobs.len() as u64,
            });
        }
    }
    Ok(out)
}

fn level_records(
    split_dir: &Path,
    level: &str,
    params: &EvalParams,
) -> anyhow::Result<Vec<ApiRecord>> {
    let path = split_dir.join(format!("{level}.jsonl"));
    let mut out = Vec::new();
    for record in data::read_records(&path) {
        // The level files already carry the test phrasing as `instruction`.
        let record = record?;
        if params
            .langs
            .as_ref()
            .is_some_and(|l| !l.contains(&record.lang))
        {
            continue;
        }
        out.push(record);
        if params.limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    Ok(out)
}

fn known_endpoints(path: &Path) -> anyhow::Result<HashMap<String, EndpointSet>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    Ok(data::read_endpoints(path)?
        .into_iter()
        .map(|api| {
            let set = EndpointSet::new(
                api.endpoints
                    .into_iter()
                    .map(|e| (e.method.unwrap_or_default(), e.path)),
            );
            (api.api_name, set)
        })
        .collect())
}

/// The manifest's `decoding` as the model's generation settings.
fn generation_config(
    params: &EvalParams,
    model: &Model,
    seed: u64,
) -> anyhow::Result<GenerationConfig> {
    let decoding = &params.decoding;
    let sampling = Sampling::from_options(
        (decoding.temperature > 0.0).then_some(decoding.temperature),
        decoding.top_k,
        decoding.top_p,
        seed,
    )?;
    Ok(GenerationConfig {
        max_new_tokens: decoding.max_new_tokens,
        sampling,
        eos_token_ids: model.special_tokens.eos_token_id.clone(),
        stop_strings: decoding.stop.clone(),
    })
}

/// Generates a continuation for every prompt, reusing and extending the memo of earlier runs.
fn generate_memoized(
    ctx: &RunContext,
    model: &Model,
    source: &ModelSource,
    params: &EvalParams,
    level: &str,
    prompts: &[String],
) -> anyhow::Result<(Vec<Generated>, String)> {
    let prompt_hashes: Vec<String> = prompts
        .iter()
        .map(|p| blake3::hash(p.as_bytes()).to_hex().to_string())
        .collect();
    let material = json!({
        "what": "eval generations",
        "model": source.identity,
        "decoding": params.decoding,
        "batch_size": params.batch_size,
        "seed": ctx.seed,
        "backend": ctx.backend,
        "prompts": blake3::hash(prompt_hashes.join("\n").as_bytes()).to_hex().to_string(),
    });
    let memo_dir = ctx.memo_dir(&material)?;
    let memo_id = memo_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let memo = memo_dir.join(format!("{level}.jsonl"));
    let read = crate::cache::memo::read_memo::<Generated>(&memo)?;
    if let Some(damage) = &read.damaged {
        eprintln!("warning: damaged generation memo {damage}; regenerating from there");
    }
    let mut done: Vec<Generated> = read
        .items
        .into_iter()
        .enumerate()
        .take_while(|(i, g)| g.index == *i && prompt_hashes.get(*i) == Some(&g.prompt_hash))
        .map(|(_, g)| g)
        .collect();
    done.truncate(prompts.len());
    // Rewrite the usable prefix so appends continue from a clean line boundary.
    let mut file = crate::cache::memo::MemoWriter::rewrite(&memo, &done)?;
    let config = generation_config(params, model, ctx.seed)?;
    let total = prompts.len() as u64;
    while done.len() < prompts.len() {
        let start = done.len();
        let end = (start + params.batch_size).min(prompts.len());
        let batch = prompts[start..end]
            .iter()
            .map(|p| fit_prompt(model, p, params.decoding.max_new_tokens))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let generations = model::generate_from_ids(model, batch, &config)?;
        for (offset, g) in generations.into_iter().enumerate() {
            let entry = Generated {
                index: start + offset,
                prompt_hash: prompt_hashes[start + offset].clone(),
                prediction: g.text,
                finish_reason: g.finish_reason,
                new_tokens: g.token_ids.len(),
            };
            file.append(&entry)?;
            done.push(entry);
        }
        (ctx.progress)(
            done.len() as u64,
            Some(total),
            &format!("{level} generations"),
        );
    }
    file.sync()?;
    Ok((done, memo_id))
}
