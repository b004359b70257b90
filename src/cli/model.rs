//! `apitune generate` and `apitune score`: try a model by hand.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::BackendArg;
use crate::model::causal_lm::Model;
use crate::model::device::Backend;
use crate::model::generate::{GenerationConfig, generate as generate_text};
use crate::model::sampling::Sampling;
use crate::model::score::score as score_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// The generated text only.
    #[default]
    Text,
    /// A JSON object with text, token ids and why generation stopped.
    Json,
}

/// Generate a continuation of one or more prompts.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// HF model directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// LoRA adapter directory (PEFT format) to apply on top of the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Prompt text; several prompts are generated as one batch.
    #[arg(required = true)]
    pub prompt: Vec<String>,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 (the default) decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities add up to P.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Seed of the sampler (prompt i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Fold a LoRA adapter into its base model and write an HF checkpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Base model directory (HF layout).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Adapter directory (PEFT format: adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// Output directory for the merged checkpoint.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn merge(args: &MergeArgs) -> anyhow::Result<()> {
    let path =
        crate::model::lora::merge(&args.model, &args.adapter, &args.out).with_context(|| {
            format!(
                "merging {} into {}",
                args.adapter.display(),
                args.model.display()
            )
        })?;
    println!("{}", path.display());
    Ok(())
}

/// Score how likely a target text is after a prompt.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// HF model directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// LoRA adapter directory (PEFT format) to apply on top of the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    #[arg(long)]
    pub prompt: String,
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

fn load(
    model: &std::path::Path,
    adapter: Option<&std::path::Path>,
    backend: Backend,
) -> anyhow::Result<Model> {
    let device = backend.device()?;
    let model = match adapter {
        Some(adapter) => crate::model::lora::load_with_adapter(model, adapter, &device)
            .with_context(|| {
                format!(
                    "loading model {} with adapter {}",
                    model.display(),
                    adapter.display()
                )
            })?,
        None => Model::load(model, &device)
            .with_context(|| format!("loading model {}", model.display()))?,
    };
    if !model.unused_tensors.is_empty() {
        eprintln!(
            "warning: {} tensors in {} were not used by the {} architecture: {}",
            model.unused_tensors.len(),
            model.dir.display(),
            model.config.model_type(),
            model.unused_tensors.join(", ")
        );
    }
    Ok(model)
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let sampling =
        Sampling::from_options(Some(args.temperature), args.top_k, args.top_p, args.seed)?;
    let model = load(&args.model, args.adapter.as_deref(), args.backend.into())?;
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling,
        eos_token_ids: Vec::new(),
        stop_strings: args.stop.clone(),
    };
    let prompts: Vec<&str> = args.prompt.iter().map(String::as_str).collect();
    let generations = generate_text(&model, &prompts, &config)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Text => {
            for g in &generations {
                writeln!(out, "{}", g.text)?;
            }
        }
        OutputFormat::Json => {
            let items: Vec<_> = prompts
                .iter()
                .zip(&generations)
                .map(|(prompt, g)| {
                    json!({
                        "prompt": prompt,
                        "text": g.text,
                        "prompt_token_ids": g.prompt_token_ids,
                        "token_ids": g.token_ids,
                        "finish_reason": g.finish_reason,
                    })
                })
                .collect();
            let report = json!({
                "model": args.model,
                "model_type": model.config.model_type(),
                "backend": Backend::from(args.backend).resolve()?,
                "sampling": config.sampling,
                "generations": items,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        }
    }
    Ok(())
}

pub fn score(args: &ScoreArgs) -> anyhow::Result<()> {
    let model = load(&args.model, args.adapter.as_deref(), args.backend.into())?;
    let scores = score_text(&model, &[(args.prompt.as_str(), args.target.as_str())])?;
    let score = &scores[0];
    let tokens: Vec<_> = score
        .token_ids
        .iter()
        .zip(&score.logprobs)
        .map(|(&id, &logprob)| {
            json!({
                "id": id,
                "token": model.tokenizer.id_to_token(id),
                "text": crate::model::tokenizer::decode(&model.tokenizer, &[id]).unwrap_or_default(),
                "logprob": logprob,
                "nll": -logprob,
            })
        })
        .collect();
    let report = json!({
        "model": args.model,
        "adapter": args.adapter,
        "model_type": model.config.model_type(),
        "prompt_tokens": crate::model::tokenizer::encode(&model.tokenizer, &args.prompt)?.len(),
        "target_tokens": tokens,
        "total_nll": score.total_nll(),
        "mean_nll": score.mean_nll(),
        "perplexity": score.mean_nll().exp(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
