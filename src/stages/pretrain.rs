//! `pretrain`: trains every parameter of a randomly initialised model declared in `[models]`
//! (`arch`, `init = "random"`, `config = {...}`, `tokenizer = { train_bpe = { vocab_size } }`) on
//! the training split. The artifact is an HF model directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`) plus `metrics.jsonl` and `summary.json`, so `Model::load` reads it directly
//! and `lora-train` / `eval` can use it as a base.

use std::path::Path;

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PlanContext, RunContext, StageKind, training};
use crate::data;
use crate::manifest::ModelSpec;
use crate::model::{self, CausalLm, END_OF_TEXT, ModelConfig};
use crate::train::{self, ExampleSet, TrainRun, TrainSettings};
use crate::validate::{MAX_RECORDS, Problems, Validate};

pub struct Pretrain;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PretrainParams {
    /// A model of `[models]` with `init = "random"`.
    pub model: String,
    /// Train on the first N records of the training split (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// What the model learns from each record (default `instruction`).
    #[serde(default, skip_serializing_if = "Objective::is_instruction")]
    pub objective: Objective,
    #[serde(default)]
    pub train: TrainSettings,
}

impl Validate for PretrainParams {
    fn validate(&self, out: &mut Problems) {
        out.opt_int("samples", self.samples, 1, MAX_RECORDS);
        out.nested("train", &self.train);
    }
}

/// The pretraining objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The study's prompt in, the record's code out, loss on the code: the base already follows
    /// the instruction format, like an instruction-tuned model.
    #[default]
    Instruction,
    /// Language modelling of the code snippets alone, no prompt: a code model that has never
    /// seen the instruction format, as GPT-2 or StarCoder are before fine-tuning.
    Code,
}

impl Objective {
    fn is_instruction(&self) -> bool {
        *self == Self::Instruction
    }
}

impl StageKind for Pretrain {
    const KIND: &'static str = "pretrain";
    const VERSION: u32 = 1;
    type Params = PretrainParams;

    fn input_files(
        params: &PretrainParams,
        ctx: &PlanContext,
    ) -> anyhow::Result<Vec<std::path::PathBuf>> {
        let spec = random_spec(ctx.models.get(&params.model), &params.model)?;
        Ok(tokenizer_path(spec)?
            .map(|p| vec![ctx.base_dir.join(p)])
            .unwrap_or_default())
    }

    fn check(params: &PretrainParams, ctx: &PlanContext) -> Result<(), (String, String)> {
        let model = |e: anyhow::Error| ("model".to_string(), e.to_string());
        let spec = random_spec(ctx.models.get(&params.model), &params.model).map_err(model)?;
        // The positions the model will have; a config that does not parse is reported at [models].
        let Ok(config) = hf_config(spec, &params.model, 1, 0) else {
            return Ok(());
        };
        let Ok(config) = ModelConfig::from_json(&config.to_string(), Path::new("config.json"))
        else {
            return Ok(());
        };
        if params.train.max_len > config.max_positions() {
            let message = format!(
                "train.max_len {} exceeds the {} positions of model `{}`; lower max_len or raise the position count in [models.{}].config",
                params.train.max_len,
                config.max_positions(),
                params.model,
                params.model
            );
            return Err(("train.max_len".into(), message));
        }
        Ok(())
    }

    fn runtime_facts(params: &PretrainParams, ctx: &PlanContext) -> Value {
        // The model's declaration is not part of the stage's params but decides its output.
        json!({ "backend": ctx.backend, "seed": ctx.seed, "model_spec": ctx.models.get(&params.model) })
    }

    fn run(params: &PretrainParams, ctx: &RunContext) -> anyhow::Result<Value> {
        let spec = random_spec(ctx.models.get(&params.model), &params.model)?;
        let split = ctx.input_of_kind("normalize")?;
        let train_file = split.dir.join(data::TRAIN_FILE);
        let tokenizer = build_tokenizer(
            spec,
            ctx.base_dir,
            &train_file,
            params.samples,
            &params.model,
        )?;
        let eos = tokenizer.token_to_id(END_OF_TEXT).ok_or_else(|| {
            anyhow::anyhow!(
                "model `{}`: its tokenizer has no {END_OF_TEXT} token to end targets with",
                params.model
            )
        })?;
        let config_path = ctx.out_dir.join("config.json");
        let config_json = hf_config(spec, &params.model, tokenizer.get_vocab_size(true), eos)?;
        std::fs::write(&config_path, serde_json::to_string_pretty(&config_json)?)?;
        let config = ModelConfig::from_dir(ctx.out_dir)
            .with_context(|| format!("model `{}`: its `config`", params.model))?;
        anyhow::ensure!(
            params.train.max_len <= config.max_positions(),
            "train.max_len {} exceeds the model's {} positions; lower max_len or raise the position count in [models.{}].config",
            params.train.max_len,
            config.max_positions(),
            params.model
        );
        tokenizer
            .save(ctx.out_dir.join("tokenizer.json"), false)
            .map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;

        let device = training::training_device(ctx)?;
        let network = CausalLm::init(&config, &device, ctx.seed);
        let encoder = train::Encoder {
            tokenizer: &tokenizer,
            objective: match params.objective {
                Objective::Instruction => train::Objective::Instruction,
                Objective::Code => train::Objective::Code,
            },
            eos,
            max_len: params.train.max_len,
            shots: None,
        };
        let (examples, stats) =
            train::StreamedExamples::scan(&train_file, params.samples, encoder)?;
        let outcome = train::train(
            network,
            &TrainRun {
                examples: &examples,
                settings: &params.train,
                seed: ctx.seed,
                device: &device,
                work_dir: ctx.work_dir,
                progress: ctx.progress,
            },
        )?;
        model::export::save_weights(
            &outcome.network,
            &config,
            &ctx.out_dir.join(model::checkpoint::SINGLE_FILE),
        )?;
        let mut out = training::write_train_outputs(
            ctx.out_dir,
            params.samples,
            &params.model,
            &outcome,
            stats,
            examples.len(),
        )?;
        let first = outcome.steps.first().map_or(f64::NAN, |s| s.loss);
        let last = outcome.steps.last().map_or(f64::NAN, |s| s.loss);
        super::set_headline(
            &mut out,
            format!(
                "{} params · {} steps · loss {first:.3} -> {last:.3} · {:.0}s",
                outcome.trainable_params,
                outcome.steps.len(),
                outcome.seconds
            ),
        );
        Ok(out)
    }
}

fn random_spec<'a>(spec: Option<&'a ModelSpec>, name: &str) -> anyhow::Result<&'a ModelSpec> {
    let spec = spec.ok_or_else(|| {
        let name = crate::manifest::shorten(name);
        anyhow::anyhow!("pretrain: unknown model `{name}`; declare it under [models.{name}]")
    })?;
    anyhow::ensure!(
        spec.init.as_deref() == Some("random"),
        "pretrain: model `{name}` must set `init = \"random\"` (pretrain trains a model from scratch; fine-tune an existing one with lora-train)"
    );
    anyhow::ensure!(
        spec.arch.is_some(),
        "pretrain: model `{name}` needs `arch` (one of {:?})",
        model::config::SUPPORTED_ARCHITECTURES
    );
    Ok(spec)
}

fn tokenizer_path(spec: &ModelSpec) -> anyhow::Result<Option<String>> {
    let Some(tok) = &spec.tokenizer else {
        return Ok(None);
    };
    Ok(tok.get("path").and_then(Value::as_str).map(str::to_string))
}

/// The model's tokenizer: the one its spec names, or a byte-level BPE trained on the prompts and
/// code of the first `samples` records of `train_file` (read as a stream).
fn build_tokenizer(
    spec: &ModelSpec,
    base_dir: &Path,
    train_file: &Path,
    samples: Option<usize>,
    name: &str,
) -> anyhow::Result<tokenizers::Tokenizer> {
    let tok = spec
        .tokenizer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("model `{name}`: set `tokenizer = {{ train_bpe = {{ vocab_size = N }} }}` or `{{ path = \"tokenizer.json\" }}`"))?;
    if let Some(path) = tokenizer_path(spec)? {
        return Ok(model::load_tokenizer(&base_dir.join(path))?);
    }
    let vocab_size = tok
        .get("train_bpe")
        .and_then(|t| t.get("vocab_size"))
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "model `{name}`: `tokenizer` needs `train_bpe = {{ vocab_size = N }}` or `path`"
            )
        })?;
    let mut failure = None;
    let texts = data::read_records(train_file)
        .take(samples.unwrap_or(usize::MAX))
        .map_while(|r| r.map_err(|e| failure = Some(e)).ok())
        .flat_map(|r| [data::prompt(&r, &r.lang), r.code]);
    let tokenizer = model::train_bpe(texts, vocab_size as usize);
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(tokenizer?)
}

/// HF `config.json` from the manifest's `config` fields, with the architecture, the tokenizer's
/// vocabulary size and its end-of-text token filled in.
fn hf_config(spec: &ModelSpec, name: &str, vocab_size: usize, eos: u32) -> anyhow::Result<Value> {
    let mut config = spec.config.clone().unwrap_or_default();
    if let Some(declared) = config.get("vocab_size").and_then(Value::as_u64) {
        anyhow::ensure!(
            declared as usize >= vocab_size,
            "model `{name}`: config.vocab_size {declared} is smaller than its tokenizer's {vocab_size} tokens"
        );
    } else {
        config.insert("vocab_size".into(), json!(vocab_size));
    }
    config.insert(
        "model_type".into(),
        json!(spec.arch.as_deref().unwrap_or_default()),
    );
    config.entry("eos_token_id").or_insert(json!(eos));
    config.entry("bos_token_id").or_insert(json!(eos));
    Ok(Value::Object(config))
}
