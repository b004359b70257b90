//! The supported architectures. Each lives in one file that implements [`Architecture`] for its
//! HF config and [`Network`] for its model; this file lists them: one line per HF `model_type`
//! (its config type) and one per network type (GPT-2 and GPTBigCode share one).

use std::path::Path;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::{WeightLayout, WeightSource};
use super::error::Result;
use super::gpt2::{Gpt2Config, Gpt2LmHeadModel, GptBigCodeConfig};
use super::layers::{ForwardInput, KvCache};
use super::lora::{Projection, Projections};
use super::qwen2::{Qwen2Config, Qwen2ForCausalLM};

/// Generates [`ModelConfig`] (serde-tagged by `model_type`, as `config.json` is),
/// [`SUPPORTED_ARCHITECTURES`] and [`CausalLm`] with their dispatch to the traits above.
macro_rules! architectures {
    (
        configs { $($model_type:literal => $config:ident($config_type:ty)),+ $(,)? }
        networks { $($network:ident($network_type:ty)),+ $(,)? }
    ) => {
        /// The config of one supported architecture, as HF writes it in `config.json`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "model_type")]
        pub enum ModelConfig {
            $(#[serde(rename = $model_type)] $config($config_type),)+
        }

        /// The HF `model_type`s apitune can build.
        pub const SUPPORTED_ARCHITECTURES: &[&str] = &[$($model_type),+];

        impl ModelConfig {
            pub fn architecture(&self) -> &dyn Architecture {
                match self {
                    $(Self::$config(config) => config,)+
                }
            }

            pub fn model_type(&self) -> &'static str {
                match self {
                    $(Self::$config(_) => $model_type,)+
                }
            }
        }

        /// A causal language model of any supported architecture.
        #[derive(Module, Debug)]
        pub enum CausalLm {
            $($network($network_type),)+
        }

        impl CausalLm {
            pub fn network(&self) -> &dyn Network {
                match self {
                    $(Self::$network(network) => network,)+
                }
            }

            pub fn network_mut(&mut self) -> &mut dyn Network {
                match self {
                    $(Self::$network(network) => network,)+
                }
            }
        }

        $(impl From<$network_type> for CausalLm {
            fn from(network: $network_type) -> Self {
                Self::$network(network)
            }
        })+
    };
}
architectures! {
    configs {
        "gpt2" => Gpt2(Gpt2Config),
        "gpt_bigcode" => GptBigCode(GptBigCodeConfig),
        "qwen2" => Qwen2(Qwen2Config),
    }
    networks {
        Gpt2(Gpt2LmHeadModel),
        Qwen2(Qwen2ForCausalLM),
    }
}

/// An architecture's HF config, as the rest of apitune sees it.
pub trait Architecture {
    fn vocab_size(&self) -> usize;
    /// The longest sequence (prompt + generated tokens) the model can position.
    fn max_positions(&self) -> usize;
    fn tie_word_embeddings(&self) -> bool;
    /// Checks what serde cannot: sizes positive and within the `MAX_*` bounds of
    /// [`super::config`], heads dividing the hidden size, options supported.
    fn validate(&self, path: &Path) -> Result<()>;
    /// The number of parameters the model holds (a lower bound for a config that did not
    /// pass [`Self::validate`]).
    fn parameter_count(&self) -> u128;
    /// The config fields that set the model's size, named when it does not fit in memory.
    fn size_fields(&self) -> &'static str;
    /// The prefix of body tensors in HF checkpoints (`transformer.`, `model.`).
    fn body_prefix(&self) -> &'static str;
    /// How HF stores the projection matrices.
    fn weight_layout(&self) -> WeightLayout;
    /// PEFT's default LoRA target modules for this `model_type`.
    fn default_lora_targets(&self) -> &'static [&'static str];
    /// The network with parameters from `source` (random, or a checkpoint).
    fn build(&self, source: &mut WeightSource) -> Result<CausalLm>;
}

/// An architecture's network: a burn module whose field paths mirror the HF tensor names.
pub trait Network: Projections {
    fn num_layers(&self) -> usize;
    /// Final hidden states `[B, T, d]`; with a cache, the input continues the cached sequence
    /// and its keys/values are appended.
    fn forward_hidden(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Tensor<3>;
    /// Vocabulary logits `[B, T, vocab]` of hidden states.
    fn logits(&self, hidden: Tensor<3>) -> Tensor<3>;
}

impl Projections for CausalLm {
    fn visit_projections<'m>(
        &'m mut self,
        path: &str,
        out: &mut Vec<(String, &'m mut Projection)>,
    ) {
        self.network_mut().visit_projections(path, out);
    }
}
