//! The files stage artifacts hold, in one place: the stages that produce them write through these
//! types, and the stages and the report that consume them read through them. No stage reads
//! another stage's module.
//!
//! - an `eval` artifact holds `results.json`, an [`EvalResults`];
//! - a `lora-train` or `pretrain` artifact holds `metrics.jsonl` (one [`TrainStep`] per line, in
//!   step order) and `summary.json`, a [`TrainSummary`];
//! - a `lora-train` artifact also holds `base.json`, a [`BaseRef`] naming the base its adapter
//!   belongs to.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::metrics::corpus::Scores;

/// An upstream artifact handed to a running stage.
#[derive(Clone, Debug)]
pub struct Input {
    /// Stage name in the manifest (`lora`).
    pub stage: String,
    /// Arm name (`lora[samples=1000]`).
    pub arm: String,
    /// Kind of the producing stage (`lora-train`).
    pub kind: String,
    /// Cache key of the artifact (hex), so outputs can name where each number came from.
    pub key: String,
    /// The producing stage's summary as recorded in the entry's metadata, outside the artifact's
    /// digest: run facts such as wall-clock seconds live here, not in the artifact's files.
    pub run_facts: serde_json::Value,
    pub dir: std::path::PathBuf,
}

/// File name of an `eval` artifact's results.
pub const EVAL_RESULTS_FILE: &str = "results.json";
/// File name of a `lora-train` artifact's per-step log.
pub const TRAIN_METRICS_FILE: &str = "metrics.jsonl";
/// File name of a `lora-train` artifact's summary.
pub const TRAIN_SUMMARY_FILE: &str = "summary.json";
/// File name of a `lora-train` artifact's base reference.
pub const BASE_FILE: &str = "base.json";

/// `results.json` of one `eval` arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// Arm name of the eval stage (`eval[samples=1000]`).
    pub arm: String,
    /// Model name as declared in the manifest.
    pub model: String,
    /// The adapter evaluated; `None` means the base model, zero-shot.
    pub adapter: Option<AdapterInfo>,
    /// Training samples behind the adapter (the ablation axis); `None` for zero-shot, or for an
    /// adapter trained on the whole pool. When both are set, [`AdapterInfo::samples`] wins.
    pub samples: Option<u64>,
    /// Decoding settings used (greedy, max tokens, ...), as the eval stage resolved them.
    pub decoding: serde_json::Value,
    /// Versions of the tools involved (apitune, burn, metric implementations).
    pub versions: serde_json::Value,
    pub overall: Scores,
    /// Keyed by held-out level (`level1`, `level2`, `level3`).
    pub levels: BTreeMap<String, LevelScores>,
    /// Keyed by language key (`curl`, `python`, ...), over all levels.
    pub per_lang: BTreeMap<String, Scores>,
    /// Perplexity of the references under the model; `None` when not measured.
    pub perplexity: Option<f64>,
    /// Retrieved examples per prompt (a needed `retrieve` stage's `k`); 0 for the plain prompt.
    #[serde(default)]
    pub shots: usize,
}

/// Which `lora-train` artifact an eval arm loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// Arm name of the lora-train stage.
    pub arm: String,
    /// Cache key (hex) of the lora-train artifact.
    pub key: String,
    /// Training samples the adapter saw; `None` for the whole pool.
    pub samples: Option<u64>,
}

/// Scores of one held-out level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelScores {
    pub overall: Scores,
    pub per_lang: BTreeMap<String, Scores>,
}

/// One line of a `lora-train` artifact's `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainStep {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// `summary.json` of a `lora-train` artifact: what the run computed, never how long it took
/// (timings are run facts, kept in the cache entry's metadata outside the digest, so identical
/// training gives identical artifacts and keys downstream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Training samples used; `None` for the whole pool.
    pub samples: Option<u64>,
    /// Model name as declared in the manifest.
    pub model: String,
    pub trainable_params: u64,
    pub tokens_seen: u64,
}

impl EvalResults {
    /// Reads `results.json` from an eval artifact directory.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        read_json(&dir.join(EVAL_RESULTS_FILE))
    }

    /// Writes `results.json` into an eval artifact directory.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(EVAL_RESULTS_FILE), self)
    }

    /// Training samples of the evaluated adapter, if known.
    pub fn training_samples(&self) -> Option<u64> {
        self.adapter
            .as_ref()
            .and_then(|a| a.samples)
            .or(self.samples)
    }
}

impl TrainSummary {
    /// Reads `summary.json` from a lora-train artifact directory.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        read_json(&dir.join(TRAIN_SUMMARY_FILE))
    }

    /// Writes `summary.json` into a lora-train artifact directory.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(TRAIN_SUMMARY_FILE), self)
    }
}

/// Reads `metrics.jsonl` from a lora-train artifact directory; blank lines are skipped.
pub fn load_train_steps(dir: &Path) -> anyhow::Result<Vec<TrainStep>> {
    let path = dir.join(TRAIN_METRICS_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not a training step `{{step, loss, lr, grad_norm}}`",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// Writes steps as `metrics.jsonl` into a lora-train artifact directory.
pub fn write_train_steps(dir: &Path, steps: &[TrainStep]) -> anyhow::Result<()> {
    let path = dir.join(TRAIN_METRICS_FILE);
    let mut text = String::new();
    for step in steps {
        text.push_str(&serde_json::to_string(step)?);
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `base.json` of a lora-train artifact: which base its adapter belongs to. For a `[models]` base
/// it names the model; for a pretrain base it holds that artifact's cache key and arm, and an eval
/// stage must have the same pretrain stage among its inputs to load it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaseRef {
    /// Model name as declared in the manifest (for a pretrain base: the pretrained model's name).
    pub model: String,
    /// Set when the base is a `pretrain` artifact: its cache key (hex) and arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_arm: Option<String>,
}

impl BaseRef {
    /// Reads `base.json` from a lora-train artifact directory.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        read_json(&dir.join(BASE_FILE))
    }

    /// Writes `base.json` into a lora-train artifact directory (no final newline, as artifacts
    /// before this module had it, so their digests stay).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(BASE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!("{} at `{at}`: {}", path.display(), e.into_inner())
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
