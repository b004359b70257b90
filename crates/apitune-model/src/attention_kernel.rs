//! Causal self-attention of a right-padded training batch as one op with a hand-written backward,
//! registered as a burn backend extension like [`crate::kernels`].
//!
//! Composed, attention is two batched products over the padded `T × T` square of every row and
//! head, a mask and a softmax; on flex the kernel of [`apitune_cpu_kernels::causal_attention`]
//! computes only each row's causal prefix, in blocks. Other backends run the composition in
//! [`reference`]. Query positions at or past a row's length (padding) get zero output and
//! gradients; no real position attends to them, so a loss over real positions is unchanged.

use apitune_cpu_kernels::{self as cpu, MatRef};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;

#[backend_extension(Flex, Autodiff, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait AttentionKernel: Backend {
    /// `softmax(scale · q·kᵀ + causal and padding mask) · v` for `q [B, H, T, hd]` and `k`, `v`
    /// `[B, KV, T, hd]` (`H` a multiple of `KV`), rows of `lengths[b]` real tokens: the output
    /// `[B, T, H·hd]` (heads merged) and the probabilities the backward needs.
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lengths: Vec<usize>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::causal_attention::<Self>(q, k, v, &lengths, scale)
    }

    /// The gradients of q, k and v for `grad`, the gradient of the output.
    fn causal_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lengths: Vec<usize>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = lengths; // the reference's probabilities carry the mask
        reference::causal_attention_backward::<Self>(q, k, v, probs, grad, scale)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl AttentionKernel for burn::backend::Cube {}

/// The op composed from burn's own: the full padded square, masked. Its probabilities are
/// `[B, H, T, T]`, zero where masked and on padding rows.
pub mod reference {
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Shape, TensorMetadata};
    use burn::tensor::TensorData;

    use crate::kernels::reference::{softmax_last, softmax_last_backward};

    pub fn causal_attention<B: Backend>(
        q: FloatTensor<B>,
        k: FloatTensor<B>,
        v: FloatTensor<B>,
        lengths: &[usize],
        scale: f32,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let [b, h, t, _] = dims::<B>(&q);
        let (k, v) = (repeat_kv::<B>(k, h), repeat_kv::<B>(v, h));
        let blocked: Vec<bool> = lengths
            .iter()
            .flat_map(|&l| (0..t).flat_map(move |i| (0..t).map(move |j| i >= l || j > i)))
            .collect();
        let mask = B::bool_from_data(TensorData::new(blocked, [b, 1, t, t]), &q.device());
        let mask = B::bool_expand(mask, Shape::new([b, h, t, t]));
        let scores = B::float_matmul(q, B::float_swap_dims(k, 2, 3));
        let scores = B::float_mask_fill(scores, mask, f32::NEG_INFINITY.into());
        let probs = softmax_last::<B>(scores, scale);
        let out = B::float_matmul(probs.clone(), v);
        (merge_heads::<B>(out), probs)
    }

    pub fn causal_attention_backward<B: Backend>(
        q: FloatTensor<B>,
        k: FloatTensor<B>,
        v: FloatTensor<B>,
        probs: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f32,
    ) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        let [b, h, t, hd] = dims::<B>(&q);
        let kv = dims::<B>(&k)[1];
        let (k, v) = (repeat_kv::<B>(k, h), repeat_kv::<B>(v, h));
        let d_out = B::float_swap_dims(B::float_reshape(grad, Shape::new([b, t, h, hd])), 1, 2);
        let d_v = B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone());
        let d_probs = B::float_matmul(d_out, B::float_swap_dims(v, 2, 3));
        let d_scores = softmax_last_backward::<B>(probs, d_probs, scale);
        let d_q = B::float_matmul(d_scores.clone(), k);
        let d_k = B::float_matmul(B::float_swap_dims(d_scores, 2, 3), q);
        (d_q, sum_groups::<B>(d_k, kv), sum_groups::<B>(d_v, kv))
    }

    fn dims<B: Backend>(x: &FloatTensor<B>) -> [usize; 4] {
        let shape = x.shape();
        [shape[0], shape[1], shape[2], shape[3]]
    }

    /// `[B, KV, T, hd]` to `[B, H, T, hd]`, each key/value head serving `H / KV` query heads.
    fn repeat_kv<B: Backend>(x: FloatTensor<B>, heads: usize) -> FloatTensor<B> {
        let [b, kv, t, hd] = dims::<B>(&x);
        if kv == heads {
            return x;
        }
        let x = B::float_reshape(x, Shape::new([b, kv, 1, t, hd]));
        let x = B::float_expand(x, Shape::new([b, kv, heads / kv, t, hd]));
        B::float_reshape(x, Shape::new([b, heads, t, hd]))
    }

    /// The gradient of [`repeat_kv`]: `[B, H, T, hd]` summed over each group to `[B, KV, T, hd]`.
    fn sum_groups<B: Backend>(x: FloatTensor<B>, kv: usize) -> FloatTensor<B> {
        let [b, h, t, hd] = dims::<B>(&x);
        if kv == h {
            return x;
        }
        let x = B::float_reshape(x, Shape::new([b, kv, h / kv, t, hd]));
        B::float_reshape(B::float_sum_dim(x, 2), Shape::new([b, kv, t, hd]))
    }

    fn merge_heads<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let [b, h, t, hd] = dims::<B>(&x);
        B::float_reshape(B::float_swap_dims(x, 1, 2), Shape::new([b, t, h * hd]))
    }
}

/// Per (batch row, head) `[T, hd]` views of a `[B, heads, T, hd]` f32 tensor of any strides.
fn head_matrices(t: &FlexTensor) -> Option<Vec<MatRef<'_>>> {
    let layout = t.layout();
    if t.dtype() != DType::F32 || layout.num_dims() != 4 {
        return None;
    }
    let (shape, strides) = (layout.shape(), layout.strides());
    let data = t.storage::<f32>();
    (0..shape[0] * shape[1])
        .map(|bh| {
            let offset = layout.start_offset() as isize
                + (bh / shape[1]) as isize * strides[0]
                + (bh % shape[1]) as isize * strides[1];
            Some(MatRef {
                data,
                offset: usize::try_from(offset).ok()?,
                rows: shape[2],
                cols: shape[3],
                row_stride: strides[2],
                col_stride: strides[3],
            })
        })
        .collect()
}

/// The per-head matrices of q, k and v and the head counts `[H, KV]`.
type Operands<'a> = (
    Vec<MatRef<'a>>,
    Vec<MatRef<'a>>,
    Vec<MatRef<'a>>,
    [usize; 2],
);

/// The kernel's operands, when q, k and v are f32 and shaped alike.
fn operands<'a>([q, k, v]: [&'a FlexTensor; 3]) -> Option<Operands<'a>> {
    let (qs, ks) = (q.layout().shape(), k.layout().shape());
    let heads = (qs.num_dims() == 4 && ks.num_dims() == 4).then(|| [qs[1], ks[1]])?;
    let agree = v.layout().shape() == ks
        && qs[0] == ks[0]
        && qs[2..] == ks[2..]
        && heads[1] > 0
        && heads[0].is_multiple_of(heads[1]);
    agree.then_some(())?;
    Some((
        head_matrices(q)?,
        head_matrices(k)?,
        head_matrices(v)?,
        heads,
    ))
}

/// The kernel's description of an attention over `operands`.
fn attention<'a>(
    (q, k, v, heads): &'a Operands<'a>,
    lengths: &'a [usize],
    scale: f32,
) -> cpu::CausalAttention<'a> {
    cpu::CausalAttention {
        q,
        k,
        v,
        lengths,
        q_heads: heads[0],
        kv_heads: heads[1],
        scale,
    }
}

impl AttentionKernel for Flex {
    fn causal_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        lengths: Vec<usize>,
        scale: f32,
    ) -> (FlexTensor, FlexTensor) {
        let shape = q.layout().shape().clone();
        let fits = lengths.len() == shape[0] && lengths.iter().all(|&l| l <= shape[2]);
        let computed = operands([&q, &k, &v])
            .filter(|_| fits)
            .map(|operands| cpu::causal_attention(&attention(&operands, &lengths, scale)));
        match computed {
            Some(result) => {
                let [b, h, t, hd] = [shape[0], shape[1], shape[2], shape[3]];
                let probs = result.probs.len();
                (
                    FlexTensor::from_data(TensorData::new(result.out, [b, t, h * hd])),
                    FlexTensor::from_data(TensorData::new(result.probs, [probs])),
                )
            }
            None => reference::causal_attention::<Flex>(q, k, v, &lengths, scale),
        }
    }

    fn causal_attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        probs: FlexTensor,
        grad: FlexTensor,
        lengths: Vec<usize>,
        scale: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        // The kernel's probabilities are flat, the reference's `[B, H, T, T]`.
        let kernel = (probs.layout().num_dims() == 1)
            .then(|| operands([&q, &k, &v]))
            .flatten();
        let Some(operands) = kernel else {
            return reference::causal_attention_backward::<Flex>(q, k, v, probs, grad, scale);
        };
        let grad = if grad.is_contiguous() {
            grad
        } else {
            grad.to_contiguous()
        };
        let grad = grad.as_slice::<f32>().expect("a contiguous f32 gradient");
        let attention = attention(&operands, &lengths, scale);
        let probs_values = probs.as_slice::<f32>().expect("the kernel's own buffer");
        let grads = cpu::causal_attention_backward(&attention, probs_values, grad);
        let (qs, ks) = (q.layout().shape().clone(), k.layout().shape().clone());
        (
            FlexTensor::from_data(TensorData::new(grads.q, qs)),
            FlexTensor::from_data(TensorData::new(grads.k, ks.clone())),
            FlexTensor::from_data(TensorData::new(grads.v, ks)),
        )
    }
}

/// The backward step: the state holds q, k, v, the probabilities and the lengths.
#[derive(Debug)]
struct CausalAttentionStep {
    scale: f32,
}

type AttentionState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    Vec<usize>,
);

impl<B: Backend + AttentionKernel> Backward<B, 3> for CausalAttentionStep {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, probs, lengths) = ops.state;
        let (d_q, d_k, d_v) =
            B::causal_attention_backward(q, k, v, probs, grad, lengths, self.scale);
        for (parent, grad) in ops.parents.into_iter().zip([d_q, d_k, d_v]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend + AttentionKernel, C: CheckpointStrategy> AttentionKernel for Autodiff<B, C> {
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lengths: Vec<usize>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [q.node(), k.node(), v.node()];
        let step = CausalAttentionStep { scale };
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        match step.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, probs) =
                    B::causal_attention(q.clone(), k.clone(), v.clone(), lengths.clone(), scale);
                let state = (q, k, v, probs.clone(), lengths);
                (
                    prep.finish(state, out),
                    <Self as AutodiffBackend>::from_inner(probs),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (out, probs) = B::causal_attention(q, k, v, lengths, scale);
                (
                    prep.finish(out),
                    <Self as AutodiffBackend>::from_inner(probs),
                )
            }
        }
    }
}

/// Causal attention of right-padded rows with `lengths[b]` real tokens each (see
/// [`AttentionKernel::causal_attention`]): `[B, T, H·hd]`.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    lengths: Vec<usize>,
    scale: f32,
) -> Tensor<3> {
    let (out, _) = <Dispatch as AttentionKernel>::causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        lengths,
        scale,
    );
    Tensor::from_dispatch(out)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;
    use crate::layers::{ForwardInput, attend, merge_heads};

    fn flex<const D: usize>(dims: [usize; D], seed: u64) -> FlexTensor {
        let n: usize = dims.iter().product();
        let values = (0..n as u64)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect::<Vec<_>>();
        FlexTensor::from_data(TensorData::new(values, dims))
    }

    fn values(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(actual: Vec<f32>, expected: Vec<f32>, what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}");
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{what}[{i}]: {a} vs {e}"
            );
        }
    }

    /// The flex kernel and the composition other backends run agree, forward and backward,
    /// padding rows and grouped heads included.
    #[test]
    fn flex_kernel_matches_the_composed_reference() {
        let lengths = vec![9, 5, 0];
        let (q, k, v) = (
            flex([3, 4, 9, 8], 1),
            flex([3, 2, 9, 8], 2),
            flex([3, 2, 9, 8], 3),
        );
        let grad = flex([3, 9, 32], 4);
        let scale = 0.35;
        let (out, probs) =
            Flex::causal_attention(q.clone(), k.clone(), v.clone(), lengths.clone(), scale);
        let (ref_out, ref_probs) =
            reference::causal_attention::<Flex>(q.clone(), k.clone(), v.clone(), &lengths, scale);
        assert_close(values(out), values(ref_out), "out");
        let kernel = Flex::causal_attention_backward(
            q.clone(),
            k.clone(),
            v.clone(),
            probs,
            grad.clone(),
            lengths.clone(),
            scale,
        );
        let composed = Flex::causal_attention_backward(q, k, v, ref_probs, grad, lengths, scale);
        assert_close(values(kernel.0), values(composed.0), "dq");
        assert_close(values(kernel.1), values(composed.1), "dk");
        assert_close(values(kernel.2), values(composed.2), "dv");
    }

    /// Through autodiff, on the positions a loss reads, the kernel gives what the masked
    /// attention the models ran before gives: outputs and the gradients of q, k and v.
    #[test]
    fn through_autodiff_it_matches_masked_attention_on_real_positions() {
        let device = Device::flex().autodiff();
        let tokens = vec![vec![1u32; 7], vec![1; 7]];
        let valid = vec![vec![true; 7], [vec![true; 4], vec![false; 3]].concat()];
        let input = ForwardInput::new(&tokens, &valid, 0, &device);
        assert_eq!(input.lengths, Some(vec![7, 4]));
        let random =
            |dims: [usize; 4]| Tensor::<4>::random(dims, Distribution::Uniform(-1.0, 1.0), &device);
        let (q, k, v) = (
            random([2, 4, 7, 8]),
            random([2, 2, 7, 8]),
            random([2, 2, 7, 8]),
        );
        // Upstream gradient zero on padding: no loss reads those positions.
        let real = Tensor::<3>::from_data(
            TensorData::new(
                valid
                    .iter()
                    .flatten()
                    .map(|&v| v as u8 as f32)
                    .collect::<Vec<_>>(),
                [2, 7, 1],
            ),
            &device,
        );
        let upstream = Tensor::<3>::random([2, 7, 32], Distribution::Uniform(-1.0, 1.0), &device)
            * real.clone();
        let run = |fused: bool| {
            let (q, k, v) = (
                q.clone().require_grad(),
                k.clone().require_grad(),
                v.clone().require_grad(),
            );
            let out = if fused {
                causal_attention(q.clone(), k.clone(), v.clone(), vec![7, 4], 0.3)
            } else {
                merge_heads(attend(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    input.mask.clone(),
                    0.3,
                ))
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            let plain = |t: Tensor<4>| t.grad(&grads).unwrap().into_data();
            [
                (out * real.clone()).into_data(),
                plain(q),
                plain(k),
                plain(v),
            ]
        };
        for (fused, composed) in run(true).into_iter().zip(run(false)) {
            fused.assert_approx_eq::<f32>(&composed, Tolerance::absolute(1e-5));
        }
    }
}
