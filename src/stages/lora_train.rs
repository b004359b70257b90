//! `lora-train`: trains a LoRA adapter on the first `samples` records of the training split, over
//! a base that is either a model of `[models]` (`model = NAME`, an HF directory) or the artifact
//! of a `pretrain` stage this stage needs.
//!
//! Artifact:
//! - `adapter_config.json`, `adapter_model.safetensors`: the adapter, in PEFT's format;
//! - `metrics.jsonl` (one `TrainStep` per optimizer step) and `summary.json` (`TrainSummary`);
//! - `base.json` ([`BaseRef`](crate::artifacts::BaseRef)): which base the adapter belongs to. For a `[models]` base it names
//!   the model; for a pretrain base it holds that artifact's cache key and arm, and the eval
//!   stage must have the same pretrain stage among its inputs to load it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PlanContext, RunContext, StageKind, training};
use crate::artifacts::{BaseRef, TrainSummary};
use crate::model::lora::{self, LoraSettings};
use crate::model::{END_OF_TEXT, Model};
use crate::train::{self, ExampleSet, TrainRun, TrainSettings};
use crate::validate::{MAX_LORA_RANK, MAX_RECORDS, Problems, Validate};

pub struct LoraTrain;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraTrainParams {
    /// Base model from `[models]` (an HF directory). Omit to use the `pretrain` stage this stage needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Train on the first N records of the training split (nested: 1000 ⊂ 10000); all when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    #[serde(default, deserialize_with = "lora_settings")]
    pub lora: LoraSettings,
    /// Storage of the frozen base's weight matrices: `f32`, or `bf16` to halve their memory
    /// (computed in f32 either way).
    #[serde(default, skip_serializing_if = "BaseDtype::is_f32")]
    pub base_dtype: BaseDtype,
    #[serde(default)]
    pub train: TrainSettings,
}

impl Validate for LoraTrainParams {
    fn validate(&self, out: &mut Problems) {
        out.opt_int("samples", self.samples, 1, MAX_RECORDS);
        out.nested("lora", &self.lora);
        out.nested("train", &self.train);
    }
}

impl Validate for LoraSettings {
    fn validate(&self, out: &mut Problems) {
        out.int("r", self.r, 1, MAX_LORA_RANK);
        out.positive("alpha", self.alpha, 1e6);
        out.float("dropout", self.dropout, (0.0, false), (1.0, true));
        if !self.targets.is_empty() {
            out.names("targets", &self.targets, "module name");
        }
    }
}

/// `lora = { ... }` as written. Like [`LoraSettings`], whose empty `targets` means the
/// architecture's default, but an explicit `targets = []` is an error rather than that default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoraSettingsIn {
    r: Option<usize>,
    alpha: Option<f64>,
    dropout: Option<f64>,
    #[serde(default, deserialize_with = "listed_targets")]
    targets: Option<Vec<String>>,
}

fn lora_settings<'de, D: serde::Deserializer<'de>>(de: D) -> Result<LoraSettings, D::Error> {
    let given = LoraSettingsIn::deserialize(de)?;
    let default = LoraSettings::default();
    Ok(LoraSettings {
        r: given.r.unwrap_or(default.r),
        alpha: given.alpha.unwrap_or(default.alpha),
        dropout: given.dropout.unwrap_or(default.dropout),
        targets: given.targets.unwrap_or(default.targets),
    })
}

fn listed_targets<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Vec<String>>, D::Error> {
    let targets = Vec::<String>::deserialize(de)?;
    if targets.is_empty() {
        return Err(serde::de::Error::custom(
            "lora.targets must list at least one module name (leave it out for the architecture's default)",
        ));
    }
    Ok(Some(targets))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BaseDtype {
    #[default]
    F32,
    Bf16,
}

impl BaseDtype {
    fn is_f32(&self) -> bool {
        *self == Self::F32
    }
}

impl StageKind for LoraTrain {
    const KIND: &'static str = "lora-train";
    // 2: a needed `retrieve` stage's examples go before the prompts (and a prompt too long for
    // `max_len` loses its start rather than its target).
    const VERSION: u32 = 2;
    type Params = LoraTrainParams;

    fn input_files(params: &LoraTrainParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        match &params.model {
            Some(name) => ctx.model_files(name),
            None => Ok(Vec::new()),
        }
    }

    fn check(params: &LoraTrainParams, ctx: &PlanContext) -> Result<(), (String, String)> {
        match &params.model {
            Some(name) => ctx.check_model(name).map_err(|e| ("model".to_string(), e)),
            None => Ok(()),
        }
    }

    fn runtime_facts(_params: &LoraTrainParams, ctx: &PlanContext) -> Value {
        json!({ "backend": ctx.backend, "seed": ctx.seed })
    }

    fn run(params: &LoraTrainParams, ctx: &RunContext) -> anyhow::Result<Value> {
        let split = ctx.input_of_kind("normalize")?;
        let (base_dir, base_ref) = base_of(params, ctx)?;
        let device = training::training_device(ctx)?;
        let mut base = Model::load(&base_dir, &device)
            .with_context(|| format!("loading base model {}", base_dir.display()))?;
        if params.base_dtype == BaseDtype::Bf16 {
            lora::store_base_as(&mut base.network, burn::tensor::DType::BF16);
        }
        let eos = eos_of(&base, &base_dir)?;
        let shots = super::retrieved_examples(ctx)?;
        let encoder = train::Encoder {
            tokenizer: &base.tokenizer,
            objective: train::Objective::Instruction,
            eos,
            max_len: params.train.max_len,
            shots: shots.as_ref(),
        };
        let train_file = split.dir.join(crate::data::TRAIN_FILE);
        let (examples, stats) =
            train::StreamedExamples::scan(&train_file, params.samples, encoder)?;
        let (network, trainable) =
            lora::attach(base.network, &params.lora, &base.config, ctx.seed)?;
        let mut outcome = train::train(
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
        debug_assert_eq!(trainable, outcome.trainable_params);
        lora::save_adapter(
            &mut outcome.network,
            &params.lora,
            &base.config,
            ctx.out_dir,
        )?;
        base_ref.write(ctx.out_dir)?;
        let mut out = training::write_train_outputs(
            ctx.out_dir,
            params.samples,
            &base_ref.model,
            &outcome,
            stats,
            examples.len(),
        )?;
        let last = outcome.steps.last().map_or(f64::NAN, |s| s.loss);
        // Generation cuts a prompt only to fit the model's context, not `max_len`: a model
        // trained on cut prompts is evaluated on longer ones than it learned from.
        let cut = if stats.truncated > 0 {
            format!(
                " · {} cut at max_len {}",
                stats.truncated, params.train.max_len
            )
        } else {
            String::new()
        };
        super::set_headline(
            &mut out,
            format!(
                "{} LoRA params · {} examples · {} steps · final loss {last:.3} · {:.0}s{cut}",
                outcome.trainable_params,
                examples.len(),
                outcome.steps.len(),
                outcome.seconds
            ),
        );
        Ok(out)
    }
}

/// The base model's directory and what the adapter records about it: the `[models]` entry
/// `model` names, or the needed pretrain arm's artifact.
fn base_of(params: &LoraTrainParams, ctx: &RunContext) -> anyhow::Result<(PathBuf, BaseRef)> {
    if let Some(name) = &params.model {
        let base = BaseRef {
            model: name.clone(),
            pretrain_key: None,
            pretrain_arm: None,
        };
        return Ok((ctx.model_dir(name)?, base));
    }
    let pretrain = ctx.input_of_kind("pretrain").map_err(|_| {
        anyhow::anyhow!(
            "stage `{}` has no base: set `model = \"NAME\"` or add a `pretrain` stage to its `needs`",
            ctx.arm
        )
    })?;
    let summary = TrainSummary::load(&pretrain.dir)?;
    let base = BaseRef {
        model: summary.model,
        pretrain_key: Some(pretrain.key.clone()),
        pretrain_arm: Some(pretrain.arm.clone()),
    };
    Ok((pretrain.dir.clone(), base))
}

/// The token that ends each training example: the model's EOS, or its end-of-text token.
fn eos_of(base: &Model, base_dir: &Path) -> anyhow::Result<u32> {
    base.special_tokens
        .eos_token_id
        .first()
        .copied()
        .or_else(|| base.tokenizer.token_to_id(END_OF_TEXT))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "base model {}: no eos_token_id in config.json and no {END_OF_TEXT} token",
                base_dir.display()
            )
        })
}
