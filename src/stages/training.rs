//! What the training stages (`pretrain`, `lora-train`) share: their device and the outputs every
//! training artifact holds.

use std::path::Path;

use serde_json::{Value, json};

use crate::artifacts::{TrainSummary, write_train_steps};
use crate::train::{EncodeStats, TrainOutcome};

/// The arm's device with autodiff.
pub(super) fn training_device(ctx: &super::RunContext) -> anyhow::Result<burn::tensor::Device> {
    Ok(ctx.device()?.autodiff())
}

/// Writes `summary.json` and `metrics.jsonl` of a finished training run into `dir` and returns
/// the stage summary (without its headline).
pub(super) fn write_train_outputs(
    dir: &Path,
    samples: Option<usize>,
    model: &str,
    outcome: &TrainOutcome,
    stats: EncodeStats,
    examples: usize,
) -> anyhow::Result<Value> {
    let summary = TrainSummary {
        samples: samples.map(|n| n as u64),
        model: model.to_string(),
        trainable_params: outcome.trainable_params,
        tokens_seen: outcome.tokens_seen,
    };
    summary.write(dir)?;
    write_train_steps(dir, &outcome.steps)?;
    Ok(summary_json(&summary, outcome, stats, examples))
}

fn summary_json(
    summary: &TrainSummary,
    outcome: &TrainOutcome,
    stats: EncodeStats,
    examples: usize,
) -> Value {
    json!({
        "examples": examples,
        "truncated": stats.truncated,
        "dropped": stats.dropped,
        "steps": outcome.steps.len(),
        "resumed_from_step": outcome.resumed_from,
        "first_loss": outcome.steps.first().map(|s| s.loss),
        "final_loss": outcome.steps.last().map(|s| s.loss),
        "trainable_params": summary.trainable_params,
        "tokens_seen": summary.tokens_seen,
        "seconds": outcome.seconds,
        "tokens_per_s": summary.tokens_seen as f64 / outcome.seconds.max(1e-9),
    })
}
