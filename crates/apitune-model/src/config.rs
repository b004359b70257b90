//! Reads an HF `config.json` into the typed config of its architecture (`model_type`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};
pub use super::registry::{ModelConfig, SUPPORTED_ARCHITECTURES};

/// Special token ids from `config.json` (and `generation_config.json`, which HF prefers when
/// both exist).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecialTokens {
    #[serde(default, deserialize_with = "one_or_many")]
    pub eos_token_id: Vec<u32>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub bos_token_id: Vec<u32>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub pad_token_id: Vec<u32>,
}

/// HF writes token ids as a number, a list of numbers, or null.
fn one_or_many<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u32),
        Many(Vec<u32>),
    }
    Ok(match Option::<OneOrMany>::deserialize(de)? {
        None => Vec::new(),
        Some(OneOrMany::One(id)) => vec![id],
        Some(OneOrMany::Many(ids)) => ids,
    })
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("config.json"))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses config JSON; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| ModelError::Json {
                path: path.to_path_buf(),
                error,
            })?;
        Self::from_value(value, path)
    }

    /// Turns a config JSON object (what `config.json` holds, or a manifest's `config` table with
    /// `model_type` set) into the typed config of its architecture and validates it: every size
    /// positive and within [`MAX_LAYERS`], [`MAX_HIDDEN`], [`MAX_INTERMEDIATE`], [`MAX_VOCAB`] and
    /// [`MAX_POSITIONS`], heads dividing the hidden size, and the weights fitting in this
    /// machine's memory. Nothing is allocated for the model. `path` names the source in errors;
    /// pass an empty path for a config that has no file.
    pub fn from_value(value: serde_json::Value, path: &Path) -> Result<Self> {
        let model_type = match value.get("model_type") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(ModelError::config(
                    path,
                    "model_type",
                    format!(
                        "missing; expected one of {}",
                        SUPPORTED_ARCHITECTURES.join(", ")
                    ),
                ));
            }
        };
        if !SUPPORTED_ARCHITECTURES.contains(&model_type.as_str()) {
            return Err(ModelError::UnknownArchitecture {
                path: path.to_path_buf(),
                found: model_type,
            });
        }
        let config: Self = serde_json::from_value(value).map_err(|error| ModelError::Json {
            path: path.to_path_buf(),
            error,
        })?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn vocab_size(&self) -> usize {
        self.architecture().vocab_size()
    }

    /// The longest sequence (prompt + generated tokens) the model can position.
    pub fn max_positions(&self) -> usize {
        self.architecture().max_positions()
    }

    pub fn tie_word_embeddings(&self) -> bool {
        self.architecture().tie_word_embeddings()
    }

    /// Checks what serde cannot: sizes within range, divisibility of heads, supported
    /// activations and options, and that the weights fit in memory.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.architecture().validate(path)?;
        self.check_memory(path, total_memory())
    }

    /// The number of parameters the model holds (for a config that did not pass
    /// [`Self::validate`], a lower bound).
    pub fn parameter_count(&self) -> u64 {
        u64::try_from(self.architecture().parameter_count()).unwrap_or(u64::MAX)
    }

    /// Fails when the weights, kept as f32, need more than `memory` bytes (no check without it).
    fn check_memory(&self, path: &Path, memory: Option<u64>) -> Result<()> {
        let Some(memory) = memory else { return Ok(()) };
        let params = self.parameter_count();
        let bytes = params.saturating_mul(BYTES_PER_PARAMETER);
        if bytes <= memory {
            return Ok(());
        }
        let field = self.architecture().size_fields();
        Err(ModelError::config(
            path,
            field,
            format!(
                "these sizes make a model of {params} parameters, {:.1} GiB as f32 weights, more than \
                 this machine's {:.1} GiB of memory; at most {} parameters fit",
                gib(bytes),
                gib(memory),
                memory / BYTES_PER_PARAMETER
            ),
        ))
    }
}

/// Upper bounds of config sizes: beyond any released checkpoint of these architectures, low
/// enough that products of them cannot overflow.
pub const MAX_LAYERS: usize = 1024;
pub const MAX_HIDDEN: usize = 65_536;
pub const MAX_INTERMEDIATE: usize = 4 * MAX_HIDDEN;
pub const MAX_VOCAB: usize = 1 << 22;
pub const MAX_POSITIONS: usize = 1 << 20;
/// Weights are converted to f32 on load, whatever the checkpoint stores.
const BYTES_PER_PARAMETER: u64 = 4;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// `MemTotal` of `/proc/meminfo` in bytes, where the system has one.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// A size as a factor of a parameter count: at most 2^32, so products of three factors cannot
/// overflow a `u128` even for configs that were not validated (such counts are lower bounds).
pub(crate) fn clamp(size: usize) -> u128 {
    size.min(u32::MAX as usize) as u128
}

/// Fails unless `value` is a usable norm epsilon (finite, not negative).
pub(crate) fn check_epsilon(path: &Path, field: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(ModelError::config(
            path,
            field,
            format!("{value} is out of range; expected 0 or more"),
        ));
    }
    Ok(())
}

/// Fails unless `1 <= value <= max`.
pub(crate) fn check_range(
    path: &Path,
    field: &'static str,
    value: usize,
    max: usize,
) -> Result<()> {
    if value == 0 || value > max {
        return Err(ModelError::config(
            path,
            field,
            format!("{value} is out of range; expected 1 to {max}"),
        ));
    }
    Ok(())
}

impl SpecialTokens {
    /// Reads token ids from `config.json`, overridden field by field by `generation_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::read_dir(dir, None)
    }

    /// [`Self::from_dir`], checking that every id in either file is below `vocab_size`: generation
    /// pads with the EOS id and feeds it back, so a larger one would index past the embedding.
    pub fn from_dir_for_vocab(dir: &Path, vocab_size: usize) -> Result<Self> {
        Self::read_dir(dir, Some(vocab_size))
    }

    fn read_dir(dir: &Path, vocab_size: Option<usize>) -> Result<Self> {
        let read = |path: &Path| -> Result<Self> {
            let tokens = Self::from_file(path)?;
            if let Some(vocab_size) = vocab_size {
                tokens.check_ids(path, vocab_size)?;
            }
            Ok(tokens)
        };
        let mut tokens = read(&dir.join("config.json"))?;
        let generation = dir.join("generation_config.json");
        if generation.is_file() {
            let overrides = read(&generation)?;
            if !overrides.eos_token_id.is_empty() {
                tokens.eos_token_id = overrides.eos_token_id;
            }
            if !overrides.bos_token_id.is_empty() {
                tokens.bos_token_id = overrides.bos_token_id;
            }
            if !overrides.pad_token_id.is_empty() {
                tokens.pad_token_id = overrides.pad_token_id;
            }
        }
        Ok(tokens)
    }

    /// Fails unless every id is below `vocab_size`; `path` names their file in the error.
    pub fn check_ids(&self, path: &Path, vocab_size: usize) -> Result<()> {
        let fields = [
            ("eos_token_id", &self.eos_token_id),
            ("bos_token_id", &self.bos_token_id),
            ("pad_token_id", &self.pad_token_id),
        ];
        for (field, ids) in fields {
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
                let message = format!(
                    "token id {id} is outside the model's vocabulary (vocab_size {vocab_size}: ids 0 to {})",
                    vocab_size.saturating_sub(1)
                );
                return Err(ModelError::config(path, field, message));
            }
        }
        Ok(())
    }

    fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        serde_json::from_str(&text).map_err(|error| ModelError::Json {
            path: path.to_path_buf(),
            error,
        })
    }
}

/// Activation functions named in HF configs (`activation_function` / `hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// tanh approximation of GELU (HF `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// erf GELU (HF `gelu`).
    #[serde(rename = "gelu")]
    Gelu,
    #[serde(rename = "relu")]
    Relu,
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

impl Activation {
    pub fn apply<const D: usize>(self, x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
        use burn::tensor::activation;
        match self {
            Self::GeluTanh => super::kernels::gelu_tanh(x),
            Self::Gelu => activation::gelu(x),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
        }
    }
}

pub(crate) fn check_heads(
    path: &Path,
    field: &'static str,
    hidden: usize,
    heads: usize,
) -> Result<()> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(ModelError::config(
            path,
            field,
            format!("{heads} attention heads do not divide the hidden size {hidden}"),
        ));
    }
    Ok(())
}
