//! Qwen2 (`model_type: qwen2`, also Qwen2.5): RMSNorm, rotary positions (HF `rotate_half`),
//! grouped-query attention with q/k/v biases, SwiGLU MLP. Field names mirror HF
//! `Qwen2ForCausalLM`'s tensor names.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, RmsNorm, RmsNormConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::{WeightLayout, WeightSource, Weights};
use super::config::{
    Activation, MAX_HIDDEN, MAX_INTERMEDIATE, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB,
};
use super::config::{check_epsilon, check_heads, check_range, clamp};
use super::error::{ModelError, Result};
use super::kernels;
use super::layers::{self, ForwardInput, KvCache, LoadModule, ProjectionConfig, Rotary};
use super::lora::{Projection, projection_fields};
use super::norm_kernel::rms_norm;
use super::registry::{Architecture, CausalLm, Network};

/// HF `Qwen2Config` (the fields that shape the computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (no grouping).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// transformers < 5 writes `rope_theta` at the top level…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// …transformers ≥ 5 inside `rope_parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
}

fn default_max_positions() -> usize {
    32768
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_activation() -> Activation {
    Activation::Silu
}
fn default_initializer_range() -> f64 {
    0.02
}

impl Qwen2Config {
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: Some(num_key_value_heads),
            max_position_embeddings: default_max_positions(),
            rms_norm_eps: default_rms_norm_eps(),
            rope_theta: Some(10_000.0),
            rope_parameters: None,
            rope_scaling: None,
            hidden_act: Activation::Silu,
            tie_word_embeddings: false,
            use_sliding_window: false,
            initializer_range: default_initializer_range(),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Sizes within range (checked before anything multiplies them), heads dividing
    /// `hidden_size`, KV heads dividing heads, and only the RoPE and attention variants
    /// implemented here.
    pub fn validate(&self, path: &Path) -> Result<()> {
        check_range(path, "vocab_size", self.vocab_size, MAX_VOCAB)?;
        check_range(
            path,
            "max_position_embeddings",
            self.max_position_embeddings,
            MAX_POSITIONS,
        )?;
        check_range(path, "hidden_size", self.hidden_size, MAX_HIDDEN)?;
        check_range(
            path,
            "intermediate_size",
            self.intermediate_size,
            MAX_INTERMEDIATE,
        )?;
        check_range(
            path,
            "num_hidden_layers",
            self.num_hidden_layers,
            MAX_LAYERS,
        )?;
        check_range(
            path,
            "num_attention_heads",
            self.num_attention_heads,
            self.hidden_size,
        )?;
        check_heads(
            path,
            "num_attention_heads",
            self.hidden_size,
            self.num_attention_heads,
        )?;
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(ModelError::config(
                path,
                "num_key_value_heads",
                format!(
                    "{kv} does not divide num_attention_heads {}",
                    self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(ModelError::config(
                path,
                "hidden_size",
                "rotary embedding needs an even head size",
            ));
        }
        check_epsilon(path, "rms_norm_eps", self.rms_norm_eps)?;
        check_epsilon(path, "initializer_range", self.initializer_range)?;
        self.check_variants(path)
    }

    /// Only plain RoPE and full attention are implemented here.
    fn check_variants(&self, path: &Path) -> Result<()> {
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 0.0) {
            let message = format!("{theta} is out of range; expected more than 0");
            return Err(ModelError::config(path, "rope_theta", message));
        }
        let rope_type = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_type.as_deref());
        if rope_type.is_some_and(|t| t != "default") {
            return Err(ModelError::config(
                path,
                "rope_parameters.rope_type",
                format!(
                    "{:?} is not supported (only \"default\")",
                    rope_type.unwrap_or_default()
                ),
            ));
        }
        let scaling_is_default = match &self.rope_scaling {
            None | Some(serde_json::Value::Null) => true,
            Some(v) => ["type", "rope_type"]
                .iter()
                .any(|k| v.get(k).and_then(|t| t.as_str()) == Some("default")),
        };
        if !scaling_is_default {
            return Err(ModelError::config(
                path,
                "rope_scaling",
                "RoPE scaling is not supported",
            ));
        }
        if self.use_sliding_window {
            return Err(ModelError::config(
                path,
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }
        Ok(())
    }

    /// Parameters of the model this config builds.
    pub fn parameter_count(&self) -> u128 {
        let [v, d, l, i] = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.intermediate_size,
        ]
        .map(clamp);
        let head_dim = self
            .hidden_size
            .checked_div(self.num_attention_heads)
            .unwrap_or(0);
        let kv = clamp(self.kv_heads()) * clamp(head_dim);
        let attention = (d * d + d) + 2 * (d * kv + kv) + d * d;
        let mlp = 3 * d * i;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + l * (2 * d + attention + mlp) + d + head
    }
}

#[derive(Module, Debug)]
pub struct Qwen2Attention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    #[module(skip)]
    n_head: usize,
    #[module(skip)]
    n_kv_head: usize,
}

#[derive(Module, Debug)]
pub struct Qwen2Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct Qwen2DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Qwen2Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Qwen2Mlp,
}

/// HF `Qwen2Model`: the body, `model.*` in a checkpoint.
#[derive(Module, Debug)]
pub struct Qwen2Model {
    pub embed_tokens: Embedding,
    pub layers: Vec<Qwen2DecoderLayer>,
    pub norm: RmsNorm,
    #[module(skip)]
    rotary: Rotary,
}

/// HF `Qwen2ForCausalLM`.
#[derive(Module, Debug)]
pub struct Qwen2ForCausalLM {
    pub model: Qwen2Model,
    pub lm_head: Option<layers::LmHead>,
}

impl Qwen2Config {
    fn projection(&self, d_in: usize, d_out: usize, bias: bool) -> ProjectionConfig {
        ProjectionConfig::new(d_in, d_out)
            .with_bias(bias)
            .with_layout(WeightLayout::OutIn)
            .with_init_std(self.initializer_range)
    }

    fn rms_norm(&self) -> RmsNormConfig {
        RmsNormConfig::new(self.hidden_size).with_epsilon(self.rms_norm_eps)
    }

    /// Builds the network from `source`: random init, or a checkpoint (names with or without
    /// the `model.` prefix).
    fn build_network(&self, source: &mut WeightSource) -> Result<Qwen2ForCausalLM> {
        let mut weights = source.root();
        let layers = (0..self.num_hidden_layers)
            .map(|i| self.decoder_layer(weights.pp("layers").pp(i)))
            .collect::<Result<_>>()?;
        let embedding = EmbeddingConfig::new(self.vocab_size, self.hidden_size).with_initializer(
            Initializer::Normal {
                mean: 0.0,
                std: self.initializer_range,
            },
        );
        let model = Qwen2Model {
            embed_tokens: embedding.load(weights.pp("embed_tokens"))?,
            layers,
            norm: self.rms_norm().load(weights.pp("norm"))?,
            rotary: Rotary::new(self.head_dim(), self.rope_theta()),
        };
        let lm_head = layers::lm_head(
            &mut weights,
            self.tie_word_embeddings,
            [self.vocab_size, self.hidden_size],
            self.initializer_range,
        )?;
        Ok(Qwen2ForCausalLM { model, lm_head })
    }

    fn decoder_layer(&self, mut weights: Weights) -> Result<Qwen2DecoderLayer> {
        let (d, inner) = (self.hidden_size, self.intermediate_size);
        let kv_dim = self.kv_heads() * self.head_dim();
        let input_layernorm = self.rms_norm().load(weights.pp("input_layernorm"))?;
        let mut attn = weights.pp("self_attn");
        let self_attn = Qwen2Attention {
            q_proj: self.projection(d, d, true).load(attn.pp("q_proj"))?,
            k_proj: self.projection(d, kv_dim, true).load(attn.pp("k_proj"))?,
            v_proj: self.projection(d, kv_dim, true).load(attn.pp("v_proj"))?,
            o_proj: self.projection(d, d, false).load(attn.pp("o_proj"))?,
            n_head: self.num_attention_heads,
            n_kv_head: self.kv_heads(),
        };
        let post_attention_layernorm = self
            .rms_norm()
            .load(weights.pp("post_attention_layernorm"))?;
        let mut mlp = weights.pp("mlp");
        let mlp = Qwen2Mlp {
            gate_proj: self.projection(d, inner, false).load(mlp.pp("gate_proj"))?,
            up_proj: self.projection(d, inner, false).load(mlp.pp("up_proj"))?,
            down_proj: self.projection(inner, d, false).load(mlp.pp("down_proj"))?,
            activation: self.hidden_act,
        };
        Ok(Qwen2DecoderLayer {
            input_layernorm,
            self_attn,
            post_attention_layernorm,
            mlp,
        })
    }
}

impl Architecture for Qwen2Config {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn max_positions(&self) -> usize {
        self.max_position_embeddings
    }
    fn tie_word_embeddings(&self) -> bool {
        self.tie_word_embeddings
    }
    fn validate(&self, path: &Path) -> Result<()> {
        Qwen2Config::validate(self, path)
    }
    fn parameter_count(&self) -> u128 {
        Qwen2Config::parameter_count(self)
    }
    fn size_fields(&self) -> &'static str {
        "vocab_size/hidden_size/num_hidden_layers/intermediate_size"
    }
    fn body_prefix(&self) -> &'static str {
        "model."
    }
    fn weight_layout(&self) -> WeightLayout {
        WeightLayout::OutIn
    }
    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["q_proj", "v_proj"]
    }
    fn build(&self, source: &mut WeightSource) -> Result<CausalLm> {
        Ok(self.build_network(source)?.into())
    }
}

projection_fields!(Qwen2ForCausalLM { model });
projection_fields!(Qwen2Model { layers });
projection_fields!(Qwen2DecoderLayer { self_attn, mlp });
projection_fields!(Qwen2Attention {
    q_proj,
    k_proj,
    v_proj,
    o_proj
});
projection_fields!(Qwen2Mlp {
    gate_proj,
    up_proj,
    down_proj
});

impl Network for Qwen2ForCausalLM {
    fn num_layers(&self) -> usize {
        self.model.layers.len()
    }

    fn forward_hidden(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let m = &self.model;
        let (cos, sin) = m.rotary.tables(input.positions.clone());
        let mut x = m.embed_tokens.forward(input.input_ids.clone());
        for (i, layer) in m.layers.iter().enumerate() {
            let attn = layer.self_attn.forward(
                rms_norm(&layer.input_layernorm, x.clone()),
                input,
                (&cos, &sin),
                i,
                cache.as_deref_mut(),
            );
            x = x + attn;
            x = x.clone()
                + layer
                    .mlp
                    .forward(rms_norm(&layer.post_attention_layernorm, x));
        }
        rms_norm(&m.norm, x)
    }

    fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let matrix = match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.model.embed_tokens.weight.val(),
        };
        layers::project_to_vocab(hidden, matrix)
    }
}

impl Qwen2Attention {
    fn forward(
        &self,
        x: Tensor<3>,
        input: &ForwardInput,
        (cos, sin): (&Tensor<4>, &Tensor<4>),
        layer: usize,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let head_dim = x.dims()[2] / self.n_head;
        let q = layers::split_heads(self.q_proj.forward(x.clone()), self.n_head);
        let k = layers::split_heads(self.k_proj.forward(x.clone()), self.n_kv_head);
        let mut v = layers::split_heads(self.v_proj.forward(x), self.n_kv_head);
        let q = Rotary::apply(q, cos, sin);
        let mut k = Rotary::apply(k, cos, sin);
        if let Some(cache) = cache {
            (k, v) = cache.append(layer, k, v);
        }
        let scale = 1.0 / (head_dim as f64).sqrt();
        self.o_proj
            .forward(layers::self_attention(q, k, v, input, scale))
    }
}

impl Qwen2Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        let hidden = match self.activation {
            Activation::Silu => kernels::silu_mul(gate, up),
            other => other.apply(gate) * up,
        };
        self.down_proj.forward(hidden)
    }
}
