//! GPTBigCode (`model_type: gpt_bigcode`, StarCoder): GPT-2's block layout with `nn.Linear`
//! (`[out, in]`) weights and multi-query attention, where all heads share one key/value head.
//! Field names mirror HF `GPTBigCodeForCausalLM`'s tensor names.

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

/// HF `GPTBigCodeConfig` (the fields that shape the computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptBigCodeConfig {
    pub vocab_size: usize,
    #[serde(default = "default_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_activation")]
    pub activation_function: Activation,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_true")]
    pub multi_query: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_positions() -> usize {
    2048
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

impl GptBigCodeConfig {
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
            multi_query: true,
            tie_word_embeddings: true,
            scale_attn_weights: true,
            initializer_range: default_initializer_range(),
        }
    }

    pub fn inner_size(&self) -> usize {
        self.n_inner.unwrap_or(self.n_embd.saturating_mul(4))
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn kv_heads(&self) -> usize {
        if self.multi_query { 1 } else { self.n_head }
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
        let kv = if self.multi_query {
            self.n_embd.checked_div(self.n_head).unwrap_or(0)
        } else {
            self.n_embd
        };
        let qkv = d + 2 * clamp(kv);
        let norms = 4 * d;
        let attention = (d * qkv + qkv) + (d * d + d);
        let mlp = (d * i + i) + (i * d + d);
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + p * d + l * (norms + attention + mlp) + 2 * d + head
    }

    pub fn init(&self, device: &burn::tensor::Device, seed: u64) -> GptBigCodeForCausalLM {
        GptBigCodeForCausalLM::build(self, &mut WeightSource::random(device, seed))
            .expect("random initialisation reads no file and cannot fail")
    }
}

#[derive(Module, Debug)]
pub struct GptBigCodeAttention {
    pub c_attn: Projection,
    pub c_proj: Projection,
    #[module(skip)]
    n_head: usize,
    #[module(skip)]
    multi_query: bool,
    #[module(skip)]
    scale: f64,
}

#[derive(Module, Debug)]
pub struct GptBigCodeMlp {
    pub c_fc: Projection,
    pub c_proj: Projection,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct GptBigCodeBlock {
    pub ln_1: LayerNorm,
    pub attn: GptBigCodeAttention,
    pub ln_2: LayerNorm,
    pub mlp: GptBigCodeMlp,
}

#[derive(Module, Debug)]
pub struct GptBigCodeModel {
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<GptBigCodeBlock>,
    pub ln_f: LayerNorm,
}

/// HF `GPTBigCodeForCausalLM`.
#[derive(Module, Debug)]
pub struct GptBigCodeForCausalLM {
    pub transformer: GptBigCodeModel,
    pub lm_head: Option<Param<Tensor<2>>>,
}

impl GptBigCodeForCausalLM {
    pub fn build(config: &GptBigCodeConfig, source: &mut WeightSource) -> Result<Self> {
        let d = config.n_embd;
        let std = config.initializer_range;
        let eps = config.layer_norm_epsilon;
        let kv_dim = config.kv_heads() * config.head_dim();
        let scale = if config.scale_attn_weights {
            1.0 / (config.head_dim() as f64).sqrt()
        } else {
            1.0
        };
        let linear = WeightLayout::OutIn;
        let mut h = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("h.{i}");
            h.push(GptBigCodeBlock {
                ln_1: layers::layer_norm(source, &format!("{p}.ln_1"), d, eps)?,
                attn: GptBigCodeAttention {
                    c_attn: layers::linear(
                        source,
                        &format!("{p}.attn.c_attn"),
                        d,
                        d + 2 * kv_dim,
                        true,
                        linear,
                        std,
                    )?,
                    c_proj: layers::linear(
                        source,
                        &format!("{p}.attn.c_proj"),
                        d,
                        d,
                        true,
                        linear,
                        std,
                    )?,
                    n_head: config.n_head,
                    multi_query: config.multi_query,
                    scale,
                },
                ln_2: layers::layer_norm(source, &format!("{p}.ln_2"), d, eps)?,
                mlp: GptBigCodeMlp {
                    c_fc: layers::linear(
                        source,
                        &format!("{p}.mlp.c_fc"),
                        d,
                        config.inner_size(),
                        true,
                        linear,
                        std,
                    )?,
                    c_proj: layers::linear(
                        source,
                        &format!("{p}.mlp.c_proj"),
                        config.inner_size(),
                        d,
                        true,
                        linear,
                        std,
                    )?,
                    activation: config.activation_function,
                },
            });
        }
        let transformer = GptBigCodeModel {
            wte: layers::embedding(source, "wte", config.vocab_size, d, std)?,
            wpe: layers::embedding(source, "wpe", config.n_positions, d, std)?,
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

    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let matrix = match &self.lm_head {
            Some(head) => head.val(),
            None => self.transformer.wte.weight.val(),
        };
        layers::project_to_vocab(hidden, matrix)
    }
}

impl GptBigCodeAttention {
    fn forward(
        &self,
        x: Tensor<3>,
        input: &ForwardInput,
        layer: usize,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let head_dim = d / self.n_head;
        let qkv = self.c_attn.forward(x);
        let (q, mut k, mut v) = if self.multi_query {
            // [q: d | k: head_dim | v: head_dim]
            let q = layers::split_heads(qkv.clone().slice([0..b, 0..t, 0..d]), self.n_head);
            let k = qkv
                .clone()
                .slice([0..b, 0..t, d..d + head_dim])
                .unsqueeze_dim::<4>(1);
            let v = qkv
                .slice([0..b, 0..t, d + head_dim..d + 2 * head_dim])
                .unsqueeze_dim::<4>(1);
            (q, k, v)
        } else {
            // per head: [q | k | v], each head_dim wide
            let per_head = qkv
                .reshape([b, t, self.n_head, 3 * head_dim])
                .swap_dims(1, 2);
            let h = self.n_head;
            (
                per_head.clone().slice([0..b, 0..h, 0..t, 0..head_dim]),
                per_head
                    .clone()
                    .slice([0..b, 0..h, 0..t, head_dim..2 * head_dim]),
                per_head.slice([0..b, 0..h, 0..t, 2 * head_dim..3 * head_dim]),
            )
        };
        if let Some(cache) = cache {
            (k, v) = cache.append(layer, k, v);
        }
        let out = layers::attend(q, k, v, input.mask.clone(), self.scale);
        self.c_proj.forward(layers::merge_heads(out))
    }
}

impl GptBigCodeMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.c_proj
            .forward(self.activation.apply(self.c_fc.forward(x)))
    }
}
