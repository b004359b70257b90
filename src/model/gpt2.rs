//! GPT-2 (`model_type: gpt2`): learned positions, pre-LayerNorm blocks, GELU (tanh) MLP.
//! Field names mirror HF `GPT2LMHeadModel`'s tensor names; its Conv1D weights are stored
//! `[in, out]`, which is burn `Linear`'s own layout, so they load without a transpose.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm};

use super::lora::Projection;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::{WeightLayout, WeightSource};
use super::config::{
    Activation, MAX_HIDDEN, MAX_INTERMEDIATE, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB,
};
use super::config::{check_epsilon, check_heads, check_range, clamp};
use super::error::Result;
use super::layers::{self, ForwardInput, KvCache};

/// HF `GPT2Config` (the fields that shape the computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    #[serde(default = "default_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; HF's default (null) is 4 * n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_activation")]
    pub activation_function: Activation,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_positions() -> usize {
    1024
}
fn default_activation() -> Activation {
    Activation::GeluTanh
}
fn default_layer_norm_epsilon() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_initializer_range() -> f64 {
    0.02
}

impl Gpt2Config {
    /// A config with HF's defaults for everything but the sizes.
    pub fn new(
        vocab_size: usize,
        n_positions: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
    ) -> Self {
        Self {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: default_activation(),
            layer_norm_epsilon: default_layer_norm_epsilon(),
            tie_word_embeddings: true,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            initializer_range: default_initializer_range(),
        }
    }

    pub fn inner_size(&self) -> usize {
        self.n_inner.unwrap_or(self.n_embd.saturating_mul(4))
    }

    /// Sizes within range (checked before anything multiplies them), heads dividing `n_embd`.
    pub fn validate(&self, path: &Path) -> Result<()> {
        check_range(path, "vocab_size", self.vocab_size, MAX_VOCAB)?;
        check_range(path, "n_positions", self.n_positions, MAX_POSITIONS)?;
        check_range(path, "n_embd", self.n_embd, MAX_HIDDEN)?;
        check_range(path, "n_layer", self.n_layer, MAX_LAYERS)?;
        check_range(path, "n_head", self.n_head, self.n_embd)?;
        check_heads(path, "n_head", self.n_embd, self.n_head)?;
        if let Some(inner) = self.n_inner {
            check_range(path, "n_inner", inner, MAX_INTERMEDIATE)?;
        }
        check_epsilon(path, "layer_norm_epsilon", self.layer_norm_epsilon)?;
        check_epsilon(path, "initializer_range", self.initializer_range)
    }

    /// Parameters of the model this config builds.
    pub fn parameter_count(&self) -> u128 {
        let [v, p, d, l, i] = [
            self.vocab_size,
            self.n_positions,
            self.n_embd,
            self.n_layer,
            self.inner_size(),
        ]
        .map(clamp);
        let norms = 4 * d;
        let attention = (d * 3 * d + 3 * d) + (d * d + d);
        let mlp = (d * i + i) + (i * d + d);
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + p * d + l * (norms + attention + mlp) + 2 * d + head
    }

    /// A randomly initialised model (weights N(0, initializer_range²), norms at 1, biases 0).
    pub fn init(&self, device: &burn::tensor::Device, seed: u64) -> Gpt2ForCausalLM {
        Gpt2ForCausalLM::build(self, &mut WeightSource::random(device, seed))
            .expect("random initialisation reads no file and cannot fail")
    }
}

#[derive(Module, Debug)]
pub struct Gpt2Attention {
    pub c_attn: Projection,
    pub c_proj: Projection,
    #[module(skip)]
    n_head: usize,
    #[module(skip)]
    scale: f64,
}

#[derive(Module, Debug)]
pub struct Gpt2Mlp {
    pub c_fc: Projection,
    pub c_proj: Projection,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct Gpt2Block {
    pub ln_1: LayerNorm,
    pub attn: Gpt2Attention,
    pub ln_2: LayerNorm,
    pub mlp: Gpt2Mlp,
}

/// HF `GPT2Model`: the body, `transformer.*` in a checkpoint.
#[derive(Module, Debug)]
pub struct Gpt2Model {
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<Gpt2Block>,
    pub ln_f: LayerNorm,
}

/// HF `GPT2LMHeadModel`.
#[derive(Module, Debug)]
pub struct Gpt2ForCausalLM {
    pub transformer: Gpt2Model,
    /// `None` when tied to `transformer.wte`.
    pub lm_head: Option<Param<Tensor<2>>>,
}

impl Gpt2ForCausalLM {
    /// Builds the model from `source`: random init, or a checkpoint (names with or without
    /// the `transformer.` prefix).
    pub fn build(config: &Gpt2Config, source: &mut WeightSource) -> Result<Self> {
        let d = config.n_embd;
        let std = config.initializer_range;
        let eps = config.layer_norm_epsilon;
        let head_dim = d / config.n_head;
        let mut h = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("h.{i}");
            let mut scale = if config.scale_attn_weights {
                1.0 / (head_dim as f64).sqrt()
            } else {
                1.0
            };
            if config.scale_attn_by_inverse_layer_idx {
                scale /= (i + 1) as f64;
            }
            h.push(Gpt2Block {
                ln_1: layers::layer_norm(source, &format!("{p}.ln_1"), d, eps)?,
                attn: Gpt2Attention {
                    c_attn: layers::linear(
                        source,
                        &format!("{p}.attn.c_attn"),
                        d,
                        3 * d,
                        true,
                        WeightLayout::InOut,
                        std,
                    )?,
                    c_proj: layers::linear(
                        source,
                        &format!("{p}.attn.c_proj"),
                        d,
                        d,
                        true,
                        WeightLayout::InOut,
                        std,
                    )?,
                    n_head: config.n_head,
                    scale,
                },
                ln_2: layers::layer_norm(source, &format!("{p}.ln_2"), d, eps)?,
                mlp: Gpt2Mlp {
                    c_fc: layers::linear(
                        source,
                        &format!("{p}.mlp.c_fc"),
                        d,
                        config.inner_size(),
                        true,
                        WeightLayout::InOut,
                        std,
                    )?,
                    c_proj: layers::linear(
                        source,
                        &format!("{p}.mlp.c_proj"),
                        config.inner_size(),
                        d,
                        true,
                        WeightLayout::InOut,
                        std,
                    )?,
                    activation: config.activation_function,
                },
            });
        }
        let transformer = Gpt2Model {
            wte: layers::embedding(source, "wte", config.vocab_size, d, std)?,
            wpe: layers::embedding(source, "wpe", config.n_positions, d, std / 2.0)?,
            h,
            ln_f: layers::layer_norm(source, "ln_f", d, eps)?,
        };
        let lm_head = layers::lm_head(
            source,
            config.tie_word_embeddings,
            config.vocab_size,
            d,
            std,
        )?;
        Ok(Self {
            transformer,
            lm_head,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.transformer.h.len()
    }

    /// Final hidden states `[B, T, d]` (after `ln_f`); appends to `cache` when given.
    pub fn forward_hidden(
        &self,
        input: &ForwardInput,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let t = &self.transformer;
        let mut x = t.wte.forward(input.input_ids.clone()) + t.wpe.forward(input.positions.clone());
        for (i, block) in t.h.iter().enumerate() {
            let attn = block.attn.forward(
                block.ln_1.forward(x.clone()),
                input,
                i,
                cache.as_deref_mut(),
            );
            x = x + attn;
            x = x.clone() + block.mlp.forward(block.ln_2.forward(x));
        }
        t.ln_f.forward(x)
    }

    /// Logits `[B, T, vocab]` for hidden states from [`Self::forward_hidden`].
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let matrix = match &self.lm_head {
            Some(head) => head.val(),
            None => self.transformer.wte.weight.val(),
        };
        layers::project_to_vocab(hidden, matrix)
    }
}

impl Gpt2Attention {
    fn forward(
        &self,
        x: Tensor<3>,
        input: &ForwardInput,
        layer: usize,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let qkv = self.c_attn.forward(x);
        let q = qkv.clone().slice([0..b, 0..t, 0..d]);
        let k = qkv.clone().slice([0..b, 0..t, d..2 * d]);
        let v = qkv.slice([0..b, 0..t, 2 * d..3 * d]);
        let q = layers::split_heads(q, self.n_head);
        let mut k = layers::split_heads(k, self.n_head);
        let mut v = layers::split_heads(v, self.n_head);
        if let Some(cache) = cache {
            (k, v) = cache.append(layer, k, v);
        }
        let out = layers::attend(q, k, v, input.mask.clone(), self.scale);
        self.c_proj.forward(layers::merge_heads(out))
    }
}

impl Gpt2Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.c_proj
            .forward(self.activation.apply(self.c_fc.forward(x)))
    }
}
