//! The GPT-2 family: GPT-2 (`model_type: gpt2`) and GPTBigCode (`gpt_bigcode`, StarCoder).
//! Learned positions, pre-LayerNorm blocks, a GELU MLP. The two differ only in configuration:
//! GPT-2 stores Conv1D weights `[in, out]` (burn `Linear`'s own layout, loaded without a
//! transpose), GPTBigCode `nn.Linear` weights `[out, in]`, and GPTBigCode may use multi-query
//! attention, where all heads share one key/value head. Field names mirror HF
//! `GPT2LMHeadModel` / `GPTBigCodeForCausalLM` tensor names.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::{WeightLayout, WeightSource, Weights};
use super::config::{
    Activation, MAX_HIDDEN, MAX_INTERMEDIATE, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB, check_epsilon,
    check_heads, check_range, clamp,
};
use super::error::Result;
use super::layers::{self, ForwardInput, KvCache, LoadModule, ProjectionConfig};
use super::lora::{Projection, projection_fields};
use super::norm_kernel::layer_norm;
use super::registry::{Architecture, CausalLm, Network};

/// HF `GPT2Config` (the fields that shape the computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    #[serde(default = "defaults::gpt2_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; HF's default (null) is 4 * n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "defaults::activation")]
    pub activation_function: Activation,
    #[serde(default = "defaults::layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "defaults::yes")]
    pub tie_word_embeddings: bool,
    #[serde(default = "defaults::yes")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
}

/// HF `GPTBigCodeConfig` (the fields that shape the computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptBigCodeConfig {
    pub vocab_size: usize,
    #[serde(default = "defaults::bigcode_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "defaults::activation")]
    pub activation_function: Activation,
    #[serde(default = "defaults::layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "defaults::yes")]
    pub multi_query: bool,
    #[serde(default = "defaults::yes")]
    pub tie_word_embeddings: bool,
    #[serde(default = "defaults::yes")]
    pub scale_attn_weights: bool,
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
}

/// HF's defaults for the fields a `config.json` may leave out.
mod defaults {
    use super::Activation;

    pub fn gpt2_positions() -> usize {
        1024
    }
    pub fn bigcode_positions() -> usize {
        2048
    }
    pub fn activation() -> Activation {
        Activation::GeluTanh
    }
    pub fn layer_norm_epsilon() -> f64 {
        1e-5
    }
    pub fn yes() -> bool {
        true
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
}

/// The [`Gpt2Family`] of a config: the fields both HF configs name alike, and its `member`.
macro_rules! family_of {
    ($config:expr, $member:expr) => {
        Gpt2Family {
            vocab_size: $config.vocab_size,
            n_positions: $config.n_positions,
            n_embd: $config.n_embd,
            n_layer: $config.n_layer,
            n_head: $config.n_head,
            n_inner: $config.n_inner,
            activation: $config.activation_function,
            layer_norm_epsilon: $config.layer_norm_epsilon,
            tie_word_embeddings: $config.tie_word_embeddings,
            scale_attn_weights: $config.scale_attn_weights,
            initializer_range: $config.initializer_range,
            member: $member,
        }
    };
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
            activation_function: defaults::activation(),
            layer_norm_epsilon: defaults::layer_norm_epsilon(),
            tie_word_embeddings: true,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            initializer_range: defaults::initializer_range(),
        }
    }

    fn family(&self) -> Gpt2Family {
        family_of!(
            self,
            Member {
                scale_attn_by_inverse_layer_idx: self.scale_attn_by_inverse_layer_idx,
                qkv: QkvLayout::Blocks,
                layout: WeightLayout::InOut,
                // GPT-2's position table starts at half the spread of the token table.
                position_init_std: self.initializer_range / 2.0,
            }
        )
    }
}

impl GptBigCodeConfig {
    /// A config with HF's defaults (multi-query attention) for everything but the sizes.
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
            activation_function: defaults::activation(),
            layer_norm_epsilon: defaults::layer_norm_epsilon(),
            multi_query: true,
            tie_word_embeddings: true,
            scale_attn_weights: true,
            initializer_range: defaults::initializer_range(),
        }
    }

    fn family(&self) -> Gpt2Family {
        let qkv = if self.multi_query {
            QkvLayout::MultiQuery
        } else {
            QkvLayout::PerHead
        };
        family_of!(
            self,
            Member {
                scale_attn_by_inverse_layer_idx: false,
                qkv,
                layout: WeightLayout::OutIn,
                position_init_std: self.initializer_range,
            }
        )
    }
}

/// How `c_attn`'s output holds queries, keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QkvLayout {
    /// `[q | k | v]`, each `n_embd` wide (GPT-2).
    Blocks,
    /// `[q: n_embd | k: head_dim | v: head_dim]`: one key/value head for all (GPTBigCode).
    MultiQuery,
    /// Per head `[q | k | v]`, each `head_dim` wide (GPTBigCode without multi-query).
    PerHead,
}

/// One member of the family, whichever HF config it came from.
#[derive(Debug, Clone)]
struct Gpt2Family {
    vocab_size: usize,
    n_positions: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    activation: Activation,
    layer_norm_epsilon: f64,
    tie_word_embeddings: bool,
    scale_attn_weights: bool,
    initializer_range: f64,
    member: Member,
}

/// What sets one member of the family apart from the others.
#[derive(Debug, Clone)]
struct Member {
    scale_attn_by_inverse_layer_idx: bool,
    qkv: QkvLayout,
    layout: WeightLayout,
    position_init_std: f64,
}

impl Gpt2Family {
    fn inner_size(&self) -> usize {
        self.n_inner.unwrap_or(self.n_embd.saturating_mul(4))
    }

    fn head_dim(&self) -> usize {
        self.n_embd.checked_div(self.n_head).unwrap_or(0)
    }

    /// The width of the keys (and of the values) `c_attn` produces.
    fn kv_dim(&self) -> usize {
        match self.member.qkv {
            QkvLayout::MultiQuery => self.head_dim(),
            QkvLayout::Blocks | QkvLayout::PerHead => self.n_embd,
        }
    }

    /// Sizes within range (checked before anything multiplies them), heads dividing `n_embd`.
    fn validate(&self, path: &Path) -> Result<()> {
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

    fn parameter_count(&self) -> u128 {
        let [v, p, d, l, i, kv] = [
            self.vocab_size,
            self.n_positions,
            self.n_embd,
            self.n_layer,
            self.inner_size(),
            self.kv_dim(),
        ]
        .map(clamp);
        let norms = 4 * d;
        let qkv = d + 2 * kv;
        let attention = (d * qkv + qkv) + (d * d + d);
        let mlp = (d * i + i) + (i * d + d);
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + p * d + l * (norms + attention + mlp) + 2 * d + head
    }

    /// Attention's score scale in layer `layer`.
    fn attention_scale(&self, layer: usize) -> f64 {
        let mut scale = if self.scale_attn_weights {
            1.0 / (self.head_dim() as f64).sqrt()
        } else {
            1.0
        };
        if self.member.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        scale
    }

    fn projection(&self, d_in: usize, d_out: usize) -> ProjectionConfig {
        ProjectionConfig::new(d_in, d_out)
            .with_layout(self.member.layout)
            .with_init_std(self.initializer_range)
    }

    fn layer_norm(&self) -> LayerNormConfig {
        LayerNormConfig::new(self.n_embd).with_epsilon(self.layer_norm_epsilon)
    }

    fn embedding(&self, n: usize, std: f64) -> EmbeddingConfig {
        EmbeddingConfig::new(n, self.n_embd)
            .with_initializer(Initializer::Normal { mean: 0.0, std })
    }

    /// Builds the network from `source`: random init, or a checkpoint (names with or without
    /// the `transformer.` prefix).
    fn build(&self, source: &mut WeightSource) -> Result<Gpt2LmHeadModel> {
        let mut weights = source.root();
        let h = (0..self.n_layer)
            .map(|i| self.block(i, weights.pp("h").pp(i)))
            .collect::<Result<_>>()?;
        let transformer = Gpt2Model {
            wte: self
                .embedding(self.vocab_size, self.initializer_range)
                .load(weights.pp("wte"))?,
            wpe: self
                .embedding(self.n_positions, self.member.position_init_std)
                .load(weights.pp("wpe"))?,
            h,
            ln_f: self.layer_norm().load(weights.pp("ln_f"))?,
            layer_norm_epsilon: self.layer_norm_epsilon,
        };
        let lm_head = layers::lm_head(
            &mut weights,
            self.tie_word_embeddings,
            [self.vocab_size, self.n_embd],
            self.initializer_range,
        )?;
        Ok(Gpt2LmHeadModel {
            transformer,
            lm_head,
        })
    }

    fn block(&self, layer: usize, mut weights: Weights) -> Result<Gpt2Block> {
        let (d, inner) = (self.n_embd, self.inner_size());
        let ln_1 = self.layer_norm().load(weights.pp("ln_1"))?;
        let mut attn = weights.pp("attn");
        let attn = Gpt2Attention {
            c_attn: self
                .projection(d, d + 2 * self.kv_dim())
                .load(attn.pp("c_attn"))?,
            c_proj: self.projection(d, d).load(attn.pp("c_proj"))?,
            n_head: self.n_head,
            scale: self.attention_scale(layer),
            qkv: self.member.qkv,
        };
        let ln_2 = self.layer_norm().load(weights.pp("ln_2"))?;
        let mut mlp = weights.pp("mlp");
        let mlp = Gpt2Mlp {
            c_fc: self.projection(d, inner).load(mlp.pp("c_fc"))?,
            c_proj: self.projection(inner, d).load(mlp.pp("c_proj"))?,
            activation: self.activation,
        };
        Ok(Gpt2Block {
            ln_1,
            attn,
            ln_2,
            mlp,
        })
    }
}

/// The [`Architecture`] of both configs: each maps itself onto [`Gpt2Family`].
macro_rules! gpt2_family_architecture {
    ($config:ty) => {
        impl Architecture for $config {
            fn vocab_size(&self) -> usize {
                self.vocab_size
            }
            fn max_positions(&self) -> usize {
                self.n_positions
            }
            fn tie_word_embeddings(&self) -> bool {
                self.tie_word_embeddings
            }
            fn validate(&self, path: &Path) -> Result<()> {
                self.family().validate(path)
            }
            fn parameter_count(&self) -> u128 {
                self.family().parameter_count()
            }
            fn size_fields(&self) -> &'static str {
                "vocab_size/n_embd/n_layer/n_inner"
            }
            fn body_prefix(&self) -> &'static str {
                "transformer."
            }
            fn weight_layout(&self) -> WeightLayout {
                self.family().member.layout
            }
            fn default_lora_targets(&self) -> &'static [&'static str] {
                &["c_attn"]
            }
            fn build(&self, source: &mut WeightSource) -> Result<CausalLm> {
                Ok(self.family().build(source)?.into())
            }
        }
    };
}
gpt2_family_architecture!(Gpt2Config);
gpt2_family_architecture!(GptBigCodeConfig);

#[derive(Module, Debug)]
pub struct Gpt2Attention {
    pub c_attn: Projection,
    pub c_proj: Projection,
    #[module(skip)]
    n_head: usize,
    #[module(skip)]
    scale: f64,
    #[module(skip)]
    qkv: QkvLayout,
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

/// HF `GPT2Model` / `GPTBigCodeModel`: the body, `transformer.*` in a checkpoint.
#[derive(Module, Debug)]
pub struct Gpt2Model {
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<Gpt2Block>,
    pub ln_f: LayerNorm,
    /// Every LayerNorm's ε (burn keeps it private to the module).
    #[module(skip)]
    layer_norm_epsilon: f64,
}

/// HF `GPT2LMHeadModel` / `GPTBigCodeForCausalLM`.
#[derive(Module, Debug)]
pub struct Gpt2LmHeadModel {
    pub transformer: Gpt2Model,
    /// `None` when tied to `transformer.wte`.
    pub lm_head: Option<layers::LmHead>,
}

projection_fields!(Gpt2LmHeadModel { transformer });
projection_fields!(Gpt2Model { h });
projection_fields!(Gpt2Block { attn, mlp });
projection_fields!(Gpt2Attention { c_attn, c_proj });
projection_fields!(Gpt2Mlp { c_fc, c_proj });

impl Network for Gpt2LmHeadModel {
    fn num_layers(&self) -> usize {
        self.transformer.h.len()
    }

    fn forward_hidden(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let t = &self.transformer;
        let norm = |module: &LayerNorm, x| layer_norm(module, x, t.layer_norm_epsilon);
        let mut x = t.wte.forward(input.input_ids.clone()) + t.wpe.forward(input.positions.clone());
        for (i, block) in t.h.iter().enumerate() {
            let attn =
                block
                    .attn
                    .forward(norm(&block.ln_1, x.clone()), input, i, cache.as_deref_mut());
            x = x + attn;
            x = x.clone() + block.mlp.forward(norm(&block.ln_2, x));
        }
        norm(&t.ln_f, x)
    }

    fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let matrix = match &self.lm_head {
            Some(head) => head.weight.val(),
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
        let (q, mut k, mut v) = self.split_qkv(self.c_attn.forward(x));
        if let Some(cache) = cache {
            (k, v) = cache.append(layer, k, v);
        }
        let out = layers::self_attention(q, k, v, input, self.scale);
        self.c_proj.forward(out)
    }

    /// Queries `[B, heads, T, hd]` and keys and values `[B, kv_heads, T, hd]` from `c_attn`'s
    /// output `[B, T, d + 2 · kv_dim]`.
    fn split_qkv(&self, qkv: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [b, t, width] = qkv.dims();
        let h = self.n_head;
        match self.qkv {
            QkvLayout::Blocks => {
                let d = width / 3;
                let q = qkv.clone().slice([0..b, 0..t, 0..d]);
                let k = qkv.clone().slice([0..b, 0..t, d..2 * d]);
                let v = qkv.slice([0..b, 0..t, 2 * d..3 * d]);
                let split = |x| layers::split_heads(x, h);
                (split(q), split(k), split(v))
            }
            QkvLayout::MultiQuery => {
                let hd = width / (h + 2);
                let d = h * hd;
                let q = layers::split_heads(qkv.clone().slice([0..b, 0..t, 0..d]), h);
                let k = qkv.clone().slice([0..b, 0..t, d..d + hd]);
                let v = qkv.slice([0..b, 0..t, d + hd..d + 2 * hd]);
                (q, k.unsqueeze_dim::<4>(1), v.unsqueeze_dim::<4>(1))
            }
            QkvLayout::PerHead => {
                let hd = width / (3 * h);
                let per_head = qkv.reshape([b, t, h, 3 * hd]).swap_dims(1, 2);
                (
                    per_head.clone().slice([0..b, 0..h, 0..t, 0..hd]),
                    per_head.clone().slice([0..b, 0..h, 0..t, hd..2 * hd]),
                    per_head.slice([0..b, 0..h, 0..t, 2 * hd..3 * hd]),
                )
            }
        }
    }
}

impl Gpt2Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.c_proj
            .forward(self.activation.apply(self.c_fc.forward(x)))
    }
}
