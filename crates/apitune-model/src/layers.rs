//! Building blocks shared by the architectures: module configs that load from a [`Weights`] scope,
//! the KV cache, attention masks, scaled dot-product attention with grouped KV heads, and HF's
//! rotary position embedding.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, RmsNorm,
    RmsNormConfig,
};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::checkpoint::{Init, WeightLayout, Weights};
use super::error::{ModelError, Result};
use super::lora::Projection;
use super::matmul_kernel::matmul_batched;

/// A projection `y = x W + b`, configured as burn-nn configures its modules: the sizes in
/// `new`, everything else a default with a `with_*` setter.
#[derive(Config, Debug)]
pub struct ProjectionConfig {
    pub d_in: usize,
    pub d_out: usize,
    #[config(default = true)]
    pub bias: bool,
    /// How the checkpoint stores the matrix (GPT-2's Conv1D or `torch.nn.Linear`).
    #[config(default = "WeightLayout::InOut")]
    pub layout: WeightLayout,
    /// The standard deviation of a random weight (HF's `initializer_range`).
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// Builds a module from its config with parameters from a [`Weights`] scope: random init, or the
/// checkpoint's `{scope}.weight` / `{scope}.bias`.
pub trait LoadModule {
    type Module;
    fn load(&self, weights: Weights) -> Result<Self::Module>;
}

impl LoadModule for ProjectionConfig {
    type Module = Projection;

    fn load(&self, mut weights: Weights) -> Result<Projection> {
        let shape = [self.d_in, self.d_out];
        let weight = weights.matrix("weight", shape, self.layout, self.init_std)?;
        let bias = if self.bias {
            let bias = weights.tensor("bias", [self.d_out], Init::Zeros)?;
            Some(Param::from_tensor(bias))
        } else {
            None
        };
        let base = Linear {
            weight: Param::from_tensor(weight),
            bias,
        };
        Ok(base.into())
    }
}

impl LoadModule for LayerNormConfig {
    type Module = LayerNorm;

    fn load(&self, mut weights: Weights) -> Result<LayerNorm> {
        // `epsilon` is private to burn's LayerNorm: only `init` sets it.
        let mut module = self.init(weights.device());
        module.gamma = Param::from_tensor(weights.tensor("weight", [self.d_model], Init::Ones)?);
        module.beta = if self.bias {
            let beta = weights.tensor("bias", [self.d_model], Init::Zeros)?;
            Some(Param::from_tensor(beta))
        } else {
            None
        };
        Ok(module)
    }
}

impl LoadModule for RmsNormConfig {
    type Module = RmsNorm;

    fn load(&self, mut weights: Weights) -> Result<RmsNorm> {
        Ok(RmsNorm {
            gamma: Param::from_tensor(weights.tensor("weight", [self.d_model], Init::Ones)?),
            epsilon: self.epsilon,
        })
    }
}

impl LoadModule for EmbeddingConfig {
    type Module = Embedding;

    fn load(&self, mut weights: Weights) -> Result<Embedding> {
        let init = match self.initializer {
            Initializer::Normal { mean: 0.0, std } => Init::Normal { std },
            Initializer::Zeros => Init::Zeros,
            Initializer::Ones => Init::Ones,
            ref other => {
                return Err(ModelError::InvalidInput(format!(
                    "embedding initializer {other:?} is not supported; use a zero-mean normal"
                )));
            }
        };
        let shape = [self.n_embedding, self.d_model];
        Ok(Embedding {
            weight: Param::from_tensor(weights.tensor("weight", shape, init)?),
        })
    }
}

/// HF's `lm_head` (an `nn.Linear` without bias): the `[vocab, d]` output matrix, under the name
/// the checkpoint gives it.
#[derive(Module, Debug)]
pub struct LmHead {
    pub weight: Param<Tensor<2>>,
}

/// The output projection `lm_head.weight`, or `None` when the config ties it to the token
/// embedding (then the checkpoint has no such tensor).
pub fn lm_head(
    weights: &mut Weights,
    tie_word_embeddings: bool,
    [vocab, d]: [usize; 2],
    std: f64,
) -> Result<Option<LmHead>> {
    if tie_word_embeddings {
        return Ok(None);
    }
    let weight = weights
        .pp("lm_head")
        .tensor("weight", [vocab, d], Init::Normal { std })?;
    Ok(Some(LmHead {
        weight: Param::from_tensor(weight),
    }))
}

/// `hidden [B, T, d]` times the `[vocab, d]` output matrix, transposed: logits `[B, T, vocab]`.
/// The product reads the transposed view in place; burn's 3-D `linear` would first copy the
/// whole matrix (measured 15-30x slower for GPT-2's 50257 x 768).
pub fn project_to_vocab(hidden: Tensor<3>, vocab_matrix: Tensor<2>) -> Tensor<3> {
    super::matmul_kernel::linear(hidden, vocab_matrix.transpose(), None)
}

/// Keys and values of the tokens seen so far, one entry per layer, each `[B, kv_heads, S, hd]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Number of positions cached (the same in every layer).
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends this step's keys and values to layer `layer` and returns all of them.
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((past_k, past_v)) => (
                Tensor::cat(vec![past_k, k], 2),
                Tensor::cat(vec![past_v, v], 2),
            ),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }

    /// Keeps only the batch rows in `rows` (in that order), e.g. after some sequences finished.
    pub fn select_rows(&mut self, rows: &[usize]) {
        for (k, v) in self.layers.iter_mut().flatten() {
            let index = Tensor::<1, Int>::from_data(
                TensorData::new(
                    rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                    [rows.len()],
                ),
                &k.device(),
            );
            *k = k.clone().select(0, index.clone());
            *v = v.clone().select(0, index);
        }
    }
}

/// What one forward pass sees of the batch: token ids, their positions, and which earlier
/// positions each may attend to.
#[derive(Debug, Clone)]
pub struct ForwardInput {
    /// `[B, T]`
    pub input_ids: Tensor<2, Int>,
    /// `[B, T]`: position of each token within its own sequence (left padding excluded).
    pub positions: Tensor<2, Int>,
    /// `[B, 1, T, past + T]`, `true` where attention is blocked; `None` when nothing is blocked
    /// (a single new token per row and no padding).
    pub mask: Option<Tensor<4, Bool>>,
    /// Real tokens per row when the rows are right-padded and nothing is cached: the mask is
    /// then plain causal attention within each row's first `lengths[b]` tokens.
    pub lengths: Option<Vec<usize>>,
}

impl ForwardInput {
    /// Inputs for rows of `tokens` (equal lengths), each preceded by `past` cached positions.
    /// `key_valid[b][j]` tells whether key position `j` (over `past + T`) of row `b` is a real
    /// token rather than padding; positions count only real tokens.
    pub fn new(tokens: &[Vec<u32>], key_valid: &[Vec<bool>], past: usize, device: &Device) -> Self {
        let batch = tokens.len();
        let new = tokens.first().map_or(0, Vec::len);
        let total = past + new;
        let mut ids = Vec::with_capacity(batch * new);
        let mut positions = Vec::with_capacity(batch * new);
        let mut mask = Vec::with_capacity(batch * new * total);
        let mut any_masked = false;
        for (row, valid) in tokens.iter().zip(key_valid) {
            debug_assert_eq!(row.len(), new);
            debug_assert_eq!(valid.len(), total);
            ids.extend(row.iter().map(|&t| t as i64));
            let real_before = valid[..past].iter().filter(|&&v| v).count() as i64;
            let mut position = real_before;
            for i in 0..new {
                // A pad token gets a dummy position; nothing attends to it.
                positions.push(if valid[past + i] { position } else { 0 });
                if valid[past + i] {
                    position += 1;
                }
                for (j, &key_ok) in valid.iter().enumerate() {
                    let blocked = !key_ok || j > past + i;
                    any_masked |= blocked;
                    mask.push(blocked);
                }
            }
        }
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, [batch, new]), device),
            positions: Tensor::from_data(TensorData::new(positions, [batch, new]), device),
            mask: any_masked
                .then(|| Tensor::from_data(TensorData::new(mask, [batch, 1, new, total]), device)),
            lengths: right_padded_lengths(key_valid, past),
        }
    }

    /// Inputs for unpadded rows with no cache: plain causal attention.
    pub fn causal(tokens: &[Vec<u32>], device: &Device) -> Self {
        let valid: Vec<Vec<bool>> = tokens.iter().map(|row| vec![true; row.len()]).collect();
        Self::new(tokens, &valid, 0, device)
    }
}

/// Each row's count of real tokens when every row is real tokens followed by padding and nothing
/// is cached; `None` otherwise (left padding, a cache).
fn right_padded_lengths(key_valid: &[Vec<bool>], past: usize) -> Option<Vec<usize>> {
    if past > 0 {
        return None;
    }
    key_valid
        .iter()
        .map(|valid| {
            let real = valid.iter().take_while(|&&v| v).count();
            valid[real..].iter().all(|&v| !v).then_some(real)
        })
        .collect()
}

/// Splits `[B, T, heads * hd]` into `[B, heads, T, hd]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, d] = x.dims();
    x.reshape([b, t, heads, d / heads]).swap_dims(1, 2)
}

/// Merges `[B, heads, T, hd]` back into `[B, T, heads * hd]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, hd] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * hd])
}

/// Attention of `q [B, H, T, hd]` over `k`, `v` `[B, KV, S, hd]` (S counts cached positions
/// too) as `input` masks it, the heads merged: `[B, T, H·hd]`. On flex, a right-padded batch
/// with nothing cached (training, scoring) runs as one causal kernel over each row's real tokens
/// ([`crate::attention_kernel`]).
pub fn self_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    input: &ForwardInput,
    scale: f64,
) -> Tensor<3> {
    let fresh = k.dims()[2] == q.dims()[2];
    match &input.lengths {
        Some(lengths) if fresh && on_flex(&q.device()) => {
            super::attention_kernel::causal_attention(q, k, v, lengths.clone(), scale as f32)
        }
        _ => merge_heads(attend(q, k, v, input.mask.clone(), scale)),
    }
}

/// softmax(q kᵀ · scale + mask) v, where k and v may have fewer heads than q (each shared by
/// `q_heads / kv_heads` consecutive query heads, as in HF's `repeat_kv`).
pub fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    scale: f64,
) -> Tensor<4> {
    let q_heads = q.dims()[1];
    let kv_heads = k.dims()[1];
    let (k, v) = if kv_heads == q_heads || kernel_broadcasts_heads(&q.device()) {
        (k, v)
    } else {
        (
            repeat_kv(k, q_heads / kv_heads),
            repeat_kv(v, q_heads / kv_heads),
        )
    };
    let mask = mask.map(|m| {
        let [b, _, t, s] = m.dims();
        // flex broadcasts a mask over heads itself; the generic kernels want one per head.
        if kernel_broadcasts_heads(&q.device()) {
            m
        } else {
            m.expand([b, q_heads, t, s])
        }
    });
    if q.device().is_autodiff() {
        // Under autodiff, burn's attention is its op-by-op fallback; the fused softmax (one pass
        // forward, one backward, the scale folded in) is the part that costs.
        let scores = matmul_batched(q, k.swap_dims(2, 3));
        let scores = match mask {
            Some(mask) => scores.mask_fill(mask, f32::NEG_INFINITY),
            None => scores,
        };
        return matmul_batched(super::kernels::softmax_last(scores, scale as f32), v);
    }
    burn::tensor::module::attention(
        q,
        k,
        v,
        mask,
        None,
        AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        },
    )
}

/// Whether tensors of `device` live on flex, with or without autodiff.
fn on_flex(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        burn_dispatch::DispatchDevice::Flex(_)
    )
}

/// flex's attention kernel maps each query head to its shared K/V head and broadcasts the mask
/// itself; the generic fallback of the other backends (and autodiff) needs equal head counts.
fn kernel_broadcasts_heads(device: &Device) -> bool {
    matches!(device.as_dispatch(), burn_dispatch::DispatchDevice::Flex(_))
}

fn repeat_kv(x: Tensor<4>, times: usize) -> Tensor<4> {
    if times == 1 {
        return x;
    }
    let [b, kv, s, hd] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, times, s, hd])
        .reshape([b, kv * times, s, hd])
}

/// HF's rotary embedding (`rotate_half` form: the first and second half of each head are the
/// real and imaginary parts), applied to `[B, heads, T, hd]`.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
}

impl Rotary {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        // Computed as HF does: in f32, from an integer arange.
        let inv_freq = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / (theta as f32).powf(i as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// cos and sin tables `[B, 1, T, hd]` for `positions [B, T]`.
    pub fn tables(&self, positions: Tensor<2, Int>) -> (Tensor<4>, Tensor<4>) {
        let device = positions.device();
        let [b, t] = positions.dims();
        let half = self.inv_freq.len();
        let inv_freq =
            Tensor::<1>::from_data(TensorData::new(self.inv_freq.clone(), [half]), &device)
                .reshape([1, 1, half]);
        let freqs = positions.float().reshape([b, t, 1]) * inv_freq;
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        (emb.clone().cos(), emb.sin())
    }

    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let [b, h, t, hd] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..hd / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..t, hd / 2..hd]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
