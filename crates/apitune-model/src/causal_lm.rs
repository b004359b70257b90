//! One type over the supported architectures, and loading a model directory into it.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::Tokenizer;

use super::checkpoint::{Checkpoint, WeightSource};
use super::config::{ModelConfig, SpecialTokens};
use super::error::Result;
use super::layers::{ForwardInput, KvCache};
pub use super::registry::CausalLm;
use super::tokenizer::{check_fits_vocab, load_tokenizer};

impl CausalLm {
    /// Builds the architecture `config` names, with weights from `source`.
    pub fn build(config: &ModelConfig, source: &mut WeightSource) -> Result<Self> {
        config.architecture().build(source)
    }

    /// A randomly initialised model; the same seed gives the same weights on every backend.
    pub fn init(config: &ModelConfig, device: &Device, seed: u64) -> Self {
        Self::build(config, &mut WeightSource::random(device, seed))
            .expect("random initialisation reads no file and cannot fail")
    }

    /// The prefix of body tensors in HF checkpoints of this architecture.
    pub fn body_prefix(config: &ModelConfig) -> &'static str {
        config.architecture().body_prefix()
    }

    pub fn num_layers(&self) -> usize {
        self.network().num_layers()
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.num_layers())
    }

    /// Final hidden states `[B, T, d]`; with a cache, the input continues the cached sequence
    /// and its keys/values are appended.
    pub fn forward_hidden(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.network().forward_hidden(input, cache)
    }

    /// Vocabulary logits `[B, T, vocab]` of hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.network().logits(hidden)
    }

    /// The negative log-likelihood of each `targets[i]` predicted at position `positions[i]`
    /// (flat: row · T + column) of `hidden` `[B, T, d]`: `[N]`. Only those positions are
    /// projected to the vocabulary, so prompt and padding positions cost nothing there.
    pub fn target_nll(
        &self,
        hidden: Tensor<3>,
        positions: Vec<i64>,
        targets: Vec<i64>,
    ) -> Tensor<1> {
        let [b, t, d] = hidden.dims();
        let n = positions.len();
        let device = hidden.device();
        let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), &device);
        let logits = self.logits(
            hidden
                .reshape([b * t, d])
                .select(0, positions)
                .reshape([1, n, d]),
        );
        let vocab = logits.dims()[2];
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
        super::kernels::token_nll(logits.reshape([n, vocab]), targets)
    }

    /// Logits `[B, T, vocab]` for every input position.
    pub fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.logits(self.forward_hidden(input, cache))
    }
}

/// A model directory loaded for inference: network, tokenizer and special tokens.
pub struct Model {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub network: CausalLm,
    pub tokenizer: Tokenizer,
    pub special_tokens: SpecialTokens,
    pub device: Device,
    /// Checkpoint tensors the architecture did not use (worth a warning: a config that does
    /// not match its weights usually shows here first).
    pub unused_tensors: Vec<String>,
}

impl Model {
    /// A randomly initialised model with the given tokenizer (e.g. from
    /// [`train_bpe`](super::tokenizer::train_bpe)), whose end-of-text token, if it has one,
    /// becomes the EOS.
    pub fn random(config: ModelConfig, tokenizer: Tokenizer, device: &Device, seed: u64) -> Self {
        let network = CausalLm::init(&config, device, seed);
        let eos = tokenizer.token_to_id(super::tokenizer::END_OF_TEXT);
        Self {
            dir: PathBuf::new(),
            config,
            network,
            tokenizer,
            special_tokens: SpecialTokens {
                eos_token_id: eos.into_iter().collect(),
                ..SpecialTokens::default()
            },
            device: device.clone(),
            unused_tensors: Vec::new(),
        }
    }

    /// Loads `dir`: `config.json`, `model.safetensors` (or the shards its index lists),
    /// `tokenizer.json`, and `generation_config.json` when present. Every token id the tokenizer
    /// can produce and every special token id must index the config's vocabulary.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = ModelConfig::from_dir(dir)?;
        let special_tokens = SpecialTokens::from_dir_for_vocab(dir, config.vocab_size())?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        check_fits_vocab(&tokenizer, config.vocab_size(), &tokenizer_path)?;
        let checkpoint = Checkpoint::open(dir)?;
        let mut source =
            WeightSource::checkpoint(&checkpoint, CausalLm::body_prefix(&config), device);
        let network = CausalLm::build(&config, &mut source)?;
        let unused_tensors = source.unused();
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            network,
            tokenizer,
            special_tokens,
            device: device.clone(),
            unused_tensors,
        })
    }
}
