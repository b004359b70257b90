//! Fused kernels for the elementwise hot spots of a training step: GPT-2's tanh GELU, Qwen2's
//! SwiGLU gate, the attention softmax and the token cross-entropy.
//!
//! Composed from burn's ops, each is 3–10 tensor passes forward and as many backward, and on flex
//! every pass is a single-threaded scalar loop (`exp` is a libm call per element), so together
//! they cost more of a LoRA step than the matmuls. Here each is one op with a hand-written
//! backward, registered as a burn backend extension: flex gets the multi-threaded f32 kernels of
//! `apitune-cpu-kernels`; every other backend (and every other dtype) the composition of burn ops
//! in [`reference`], which is also what the tests compare the kernels against.

use apitune_cpu_kernels::{self as cpu, GELU_CUBIC, TWO_SQRT_2_OVER_PI};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Int, Tensor, TensorData};
use burn_flex::FlexTensor;

#[backend_extension(Flex, Autodiff, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait Kernels: Backend {
    /// HF's `gelu_new`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::gelu_tanh::<Self>(x)
    }

    /// `grad · gelu_tanh'(x)`.
    fn gelu_tanh_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::gelu_tanh_backward::<Self>(x, grad)
    }

    /// SwiGLU's gate: `silu(gate) · up`.
    fn silu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::silu_mul::<Self>(gate, up)
    }

    /// The gradients of [`Kernels::silu_mul`] for `gate` and for `up`.
    fn silu_mul_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::silu_mul_backward::<Self>(gate, up, grad)
    }

    /// Softmax of `scale · x` over the last dimension (`scale > 0`); a row that is all `-inf`
    /// (fully masked) gives zeros.
    fn softmax_last(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        reference::softmax_last::<Self>(x, scale)
    }

    /// `scale · y ⊙ (dy − Σ dy ⊙ y)` over the last dimension, for `y = softmax_last(x, scale)`.
    fn softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        reference::softmax_last_backward::<Self>(y, grad, scale)
    }

    /// `-log_softmax(logits)[row, targets[row]]` for logits `[N, V]` and targets `[N]`: `[N]`.
    fn token_nll(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        reference::token_nll::<Self>(logits, targets)
    }

    /// The gradient of [`Kernels::token_nll`] with respect to the logits, `grad [N]` being the
    /// gradient of its output: `grad[row] · (softmax(logits[row]) − onehot(targets[row]))`.
    fn token_nll_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        nll: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::token_nll_backward::<Self>(logits, targets, nll, grad)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Kernels for burn::backend::Cube {}

/// The ops composed from burn's own: every backend but flex runs these.
pub mod reference {
    use burn::backend::tensor::{FloatTensor, IntTensor};
    use burn::backend::{Backend, Shape, TensorMetadata};
    use burn::tensor::IndexingUpdateOp;

    use super::{GELU_CUBIC, TWO_SQRT_2_OVER_PI};

    pub fn gelu_tanh<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let sigmoid = B::sigmoid(two_z::<B>(x.clone()));
        B::float_mul(x, sigmoid)
    }

    /// `d/dx x·s(2z) = s + x·2s(1−s)·dz/dx` with `dz/dx = √(2/π)·(1 + 3·0.044715·x²)`.
    pub fn gelu_tanh_backward<B: Backend>(
        x: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let s = B::sigmoid(two_z::<B>(x.clone()));
        let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
        let square = B::float_mul(x.clone(), x.clone());
        let dtwo_z = B::float_mul_scalar(
            B::float_add_scalar(
                B::float_mul_scalar(square, (3.0 * GELU_CUBIC).into()),
                1.0.into(),
            ),
            TWO_SQRT_2_OVER_PI.into(),
        );
        let slope = B::float_mul(
            B::float_mul(x, B::float_mul(s.clone(), one_minus_s)),
            dtwo_z,
        );
        B::float_mul(B::float_add(s, slope), grad)
    }

    pub fn silu_mul<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
        let sigmoid = B::sigmoid(gate.clone());
        B::float_mul(B::float_mul(gate, sigmoid), up)
    }

    /// `grad·up·s·(1 + g·(1−s))` for the gate and `grad·g·s` for `up`, with `s = sigmoid(g)`.
    pub fn silu_mul_backward<B: Backend>(
        gate: FloatTensor<B>,
        up: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let s = B::sigmoid(gate.clone());
        let silu = B::float_mul(gate.clone(), s.clone());
        let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
        let slope = B::float_mul(
            s,
            B::float_add_scalar(B::float_mul(gate, one_minus_s), 1.0.into()),
        );
        let grad_gate = B::float_mul(B::float_mul(grad.clone(), up), slope);
        (grad_gate, B::float_mul(grad, silu))
    }

    fn two_z<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let cube = B::float_mul(B::float_mul(x.clone(), x.clone()), x.clone());
        let inner = B::float_add(x, B::float_mul_scalar(cube, GELU_CUBIC.into()));
        B::float_mul_scalar(inner, TWO_SQRT_2_OVER_PI.into())
    }

    /// burn's NaN-safe attention softmax: the max clamped to the dtype's lowest finite value and
    /// the sum to its smallest positive one, so a fully masked row comes out as zeros.
    pub fn softmax_last<B: Backend>(x: FloatTensor<B>, scale: f32) -> FloatTensor<B> {
        let x = scaled::<B>(x, scale);
        let last = x.shape().num_dims() - 1;
        let finfo = x.dtype().finfo().expect("softmax of a float tensor");
        let max = B::float_clamp_min(B::float_max_dim(x.clone(), last), finfo.min.into());
        let exp = B::float_exp(B::float_sub(x, max));
        let sum = B::float_clamp_min(
            B::float_sum_dim(exp.clone(), last),
            finfo.min_positive.into(),
        );
        B::float_div(exp, sum)
    }

    pub fn softmax_last_backward<B: Backend>(
        y: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f32,
    ) -> FloatTensor<B> {
        let last = y.shape().num_dims() - 1;
        let dot = B::float_sum_dim(B::float_mul(y.clone(), grad.clone()), last);
        scaled::<B>(B::float_mul(y, B::float_sub(grad, dot)), scale)
    }

    fn scaled<B: Backend>(x: FloatTensor<B>, scale: f32) -> FloatTensor<B> {
        if scale == 1.0 {
            x
        } else {
            B::float_mul_scalar(x, scale.into())
        }
    }

    pub fn token_nll<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> FloatTensor<B> {
        let rows = logits.shape()[0];
        let log_probs = B::log_softmax(logits, 1);
        let index = B::int_reshape(targets, Shape::new([rows, 1]));
        B::float_neg(B::float_reshape(
            B::float_gather(1, log_probs, index),
            Shape::new([rows]),
        ))
    }

    pub fn token_nll_backward<B: Backend>(
        logits: FloatTensor<B>,
        targets: IntTensor<B>,
        _nll: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let rows = logits.shape()[0];
        let grad = B::float_reshape(grad, Shape::new([rows, 1]));
        let probs = B::softmax(logits, 1);
        let scaled = B::float_mul(probs, grad.clone());
        let index = B::int_reshape(targets, Shape::new([rows, 1]));
        B::float_scatter(1, scaled, index, B::float_neg(grad), IndexingUpdateOp::Add)
    }
}

impl Kernels for Flex {
    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        match contiguous_f32(&x) {
            Some(input) => fill(x.layout().shape().clone(), |out| cpu::gelu_tanh(input, out)),
            None => reference::gelu_tanh::<Flex>(x),
        }
    }

    fn gelu_tanh_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        match (contiguous_f32(&x), contiguous_f32(&grad)) {
            (Some(input), Some(g)) => fill(x.layout().shape().clone(), |out| {
                cpu::gelu_tanh_backward(input, g, out)
            }),
            _ => reference::gelu_tanh_backward::<Flex>(x, grad),
        }
    }

    fn silu_mul(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        match (
            contiguous_f32(&gate),
            contiguous_f32(&up),
            gate.layout().shape() == up.layout().shape(),
        ) {
            (Some(g), Some(u), true) => fill(gate.layout().shape().clone(), |out| {
                cpu::silu_mul(g, u, out)
            }),
            _ => reference::silu_mul::<Flex>(gate, up),
        }
    }

    fn silu_mul_backward(
        gate: FlexTensor,
        up: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let same_shape = gate.layout().shape() == up.layout().shape()
            && gate.layout().shape() == grad.layout().shape();
        match (
            contiguous_f32(&gate),
            contiguous_f32(&up),
            contiguous_f32(&grad),
            same_shape,
        ) {
            (Some(g), Some(u), Some(d), true) => {
                let shape = gate.layout().shape().clone();
                let mut grad_up = vec![0.0f32; shape.num_elements()];
                let grad_gate = fill(shape.clone(), |out| {
                    cpu::silu_mul_backward(g, u, d, out, &mut grad_up)
                });
                (
                    grad_gate,
                    FlexTensor::from_data(TensorData::new(grad_up, shape)),
                )
            }
            _ => reference::silu_mul_backward::<Flex>(gate, up, grad),
        }
    }

    fn softmax_last(x: FlexTensor, scale: f32) -> FlexTensor {
        let shape = x.layout().shape().clone();
        match (contiguous_f32(&x), last_dim(&shape)) {
            (Some(input), Some(width)) => {
                fill(shape, |out| cpu::softmax_rows(input, scale, width, out))
            }
            _ => reference::softmax_last::<Flex>(x, scale),
        }
    }

    fn softmax_last_backward(y: FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
        let shape = y.layout().shape().clone();
        match (contiguous_f32(&y), contiguous_f32(&grad), last_dim(&shape)) {
            (Some(probs), Some(g), Some(width)) => fill(shape, |out| {
                cpu::softmax_rows_backward(probs, g, scale, width, out)
            }),
            _ => reference::softmax_last_backward::<Flex>(y, grad, scale),
        }
    }

    fn token_nll(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        let shape = logits.layout().shape().clone();
        match (contiguous_f32(&logits), last_dim(&shape)) {
            (Some(input), Some(width)) => {
                let ids = target_ids(targets);
                fill(burn::backend::Shape::new([shape[0]]), |out| {
                    cpu::token_nll(input, width, &ids, out)
                })
            }
            _ => reference::token_nll::<Flex>(logits, targets),
        }
    }

    fn token_nll_backward(
        logits: FlexTensor,
        targets: FlexTensor,
        nll: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let shape = logits.layout().shape().clone();
        match (
            contiguous_f32(&logits),
            contiguous_f32(&nll),
            contiguous_f32(&grad),
            last_dim(&shape),
        ) {
            (Some(input), Some(nll_values), Some(g), Some(width)) => {
                let ids = target_ids(targets);
                fill(shape, |out| {
                    cpu::token_nll_backward(input, width, &ids, nll_values, g, out)
                })
            }
            _ => reference::token_nll_backward::<Flex>(logits, targets, nll, grad),
        }
    }
}

impl<B: Backend + Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        fused_unary::<B, C>(x, B::gelu_tanh, B::gelu_tanh_backward)
    }

    fn softmax_last(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxLast {
            scale: f32,
        }

        impl<B: Backend + Kernels> Backward<B, 1> for SoftmaxLast {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let y = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::softmax_last_backward(y, grad, self.scale)
                });
            }
        }

        match (SoftmaxLast { scale })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_last(x.into_primitive(), scale);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x.into_primitive(), scale)),
        }
    }

    fn silu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SiluMul;

        impl<B: Backend + Kernels> Backward<B, 2> for SiluMul {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (gate, up) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (grad_gate, grad_up) = B::silu_mul_backward(gate, up, grad);
                let [gate_node, up_node] = ops.parents;
                if let Some(node) = gate_node {
                    grads.register::<B>(node.id, grad_gate);
                }
                if let Some(node) = up_node {
                    grads.register::<B>(node.id, grad_up);
                }
            }
        }

        match SiluMul
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (gate, up) = (gate.into_primitive(), up.into_primitive());
                prep.finish((gate.clone(), up.clone()), B::silu_mul(gate, up))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::silu_mul(gate.into_primitive(), up.into_primitive()))
            }
        }
    }

    fn token_nll(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct TokenNll;

        impl<B: Backend + Kernels> Backward<B, 1> for TokenNll {
            type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (logits, targets, nll) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::token_nll_backward(logits, targets, nll, grad)
                });
            }
        }

        match TokenNll
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let nll = B::token_nll(logits.clone(), targets.clone());
                prep.finish((logits, targets, nll.clone()), nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::token_nll(logits.into_primitive(), targets)),
        }
    }
}

/// The backward step of a fused unary op: `backward(input, grad)` is the input's gradient.
#[derive(Debug)]
struct FusedUnary<B: Backend> {
    backward: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
}

impl<B: Backend> Backward<B, 1> for FusedUnary<B> {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let input = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            (self.backward)(input, grad)
        });
    }
}

/// Records `forward(x)` on the autodiff graph with `backward` as its gradient.
fn fused_unary<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match (FusedUnary { backward })
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let input = x.into_primitive();
            prep.finish(input.clone(), forward(input))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

/// [`Kernels::gelu_tanh`] on any backend.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::gelu_tanh(x.into_dispatch()))
}

/// [`Kernels::silu_mul`] on any backend; `gate` and `up` have the same shape.
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::silu_mul(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}

/// [`Kernels::softmax_last`] on any backend: softmax of `scale · x` over the last dimension.
pub fn softmax_last<const D: usize>(x: Tensor<D>, scale: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::softmax_last(
        x.into_dispatch(),
        scale,
    ))
}

/// [`Kernels::token_nll`] on any backend: logits `[N, V]`, targets `[N]`.
pub fn token_nll(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as Kernels>::token_nll(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

fn contiguous_f32(t: &FlexTensor) -> Option<&[f32]> {
    t.as_slice::<f32>()
}

/// The row width for the row kernels; `None` (use the composed ops) for a scalar or empty row.
fn last_dim(shape: &burn::backend::Shape) -> Option<usize> {
    shape
        .num_dims()
        .checked_sub(1)
        .map(|d| shape[d])
        .filter(|&w| w > 0)
}

/// A new f32 tensor of `shape` whose values `kernel` writes.
fn fill(shape: burn::backend::Shape, kernel: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut values = vec![0.0f32; shape.num_elements()];
    kernel(&mut values);
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Target ids as indices; a negative id maps past any row, so it reads as out of range.
fn target_ids(targets: FlexTensor) -> Vec<usize> {
    let data = targets.into_data().convert::<i64>();
    data.as_slice::<i64>()
        .map(|ids| {
            ids.iter()
                .map(|&t| usize::try_from(t).unwrap_or(usize::MAX))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::{log_softmax, sigmoid};
    use burn::tensor::{Device, Int, Tensor, TensorData};

    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // Spread over [-6, 6): both tails of the sigmoid, and exact zeros for k ≡ 0.
        (0..n)
            .map(|k| {
                ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1200) as f32 / 100.0
                    - 6.0
            })
            .collect()
    }

    fn flex(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    fn to_vec(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= tolerance * (1.0 + e.abs()),
                "element {i}: {a} vs {e}"
            );
        }
    }

    /// More elements than one parallel chunk, so the split is exercised.
    const SHAPE: [usize; 2] = [37, 1031];

    /// Inputs `x` and upstream gradients `g` of [`SHAPE`].
    fn inputs() -> (Vec<f32>, Vec<f32>) {
        let n = SHAPE[0] * SHAPE[1];
        (values(n, 1), values(n, 2))
    }

    #[test]
    fn flex_gelu_matches_the_composed_ops() {
        let (shape, (x, g)) = (SHAPE, inputs());
        assert_close(
            &to_vec(Flex::gelu_tanh(flex(x.clone(), shape))),
            &to_vec(reference::gelu_tanh::<Flex>(flex(x.clone(), shape))),
            1e-6,
        );
        assert_close(
            &to_vec(Flex::gelu_tanh_backward(
                flex(x.clone(), shape),
                flex(g.clone(), shape),
            )),
            &to_vec(reference::gelu_tanh_backward::<Flex>(
                flex(x, shape),
                flex(g, shape),
            )),
            1e-5,
        );
    }

    #[test]
    fn flex_silu_mul_matches_the_composed_ops() {
        let (shape, (x, g)) = (SHAPE, inputs());
        assert_close(
            &to_vec(Flex::silu_mul(
                flex(x.clone(), shape),
                flex(g.clone(), shape),
            )),
            &to_vec(reference::silu_mul::<Flex>(
                flex(x.clone(), shape),
                flex(g.clone(), shape),
            )),
            1e-6,
        );
        let (fused_gate, fused_up) = Flex::silu_mul_backward(
            flex(x.clone(), shape),
            flex(g.clone(), shape),
            flex(x.clone(), shape),
        );
        let (composed_gate, composed_up) = reference::silu_mul_backward::<Flex>(
            flex(x.clone(), shape),
            flex(g, shape),
            flex(x, shape),
        );
        assert_close(&to_vec(fused_gate), &to_vec(composed_gate), 1e-5);
        assert_close(&to_vec(fused_up), &to_vec(composed_up), 1e-5);
    }

    #[test]
    fn flex_softmax_matches_the_composed_ops() {
        let (shape, (x, g)) = (SHAPE, inputs());
        let y = to_vec(Flex::softmax_last(flex(x.clone(), shape), 0.3));
        assert_close(
            &y,
            &to_vec(reference::softmax_last::<Flex>(flex(x, shape), 0.3)),
            1e-6,
        );
        assert_close(
            &to_vec(Flex::softmax_last_backward(
                flex(y.clone(), shape),
                flex(g.clone(), shape),
                0.3,
            )),
            &to_vec(reference::softmax_last_backward::<Flex>(
                flex(y, shape),
                flex(g, shape),
                0.3,
            )),
            1e-5,
        );
    }

    #[test]
    fn flex_token_nll_matches_the_composed_ops() {
        let (shape, (x, _)) = (SHAPE, inputs());
        let targets: Vec<i64> = (0..shape[0] as i64)
            .map(|r| r * 29 % shape[1] as i64)
            .collect();
        let ids = || FlexTensor::from_data(TensorData::new(targets.clone(), [shape[0]]));
        let nll = to_vec(Flex::token_nll(flex(x.clone(), shape), ids()));
        assert_close(
            &nll,
            &to_vec(reference::token_nll::<Flex>(flex(x.clone(), shape), ids())),
            1e-6,
        );
        let row_grad = values(shape[0], 3);
        let grad = || FlexTensor::from_data(TensorData::new(row_grad.clone(), [shape[0]]));
        let nll_tensor = || FlexTensor::from_data(TensorData::new(nll.clone(), [shape[0]]));
        assert_close(
            &to_vec(Flex::token_nll_backward(
                flex(x.clone(), shape),
                ids(),
                nll_tensor(),
                grad(),
            )),
            &to_vec(reference::token_nll_backward::<Flex>(
                flex(x, shape),
                ids(),
                nll_tensor(),
                grad(),
            )),
            1e-5,
        );
    }

    #[test]
    fn a_fully_masked_softmax_row_is_zeros_and_an_unknown_target_is_nan() {
        let x = vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, 1.0];
        assert_eq!(
            to_vec(Flex::softmax_last(flex(x.clone(), [2, 2]), 1.0)),
            to_vec(reference::softmax_last::<Flex>(flex(x, [2, 2]), 1.0))
        );
        let nll = to_vec(Flex::token_nll(
            flex(vec![0.0, 1.0, 2.0, 3.0], [2, 2]),
            FlexTensor::from_data(TensorData::new(vec![1i64, 5], [2])),
        ));
        assert!(
            (nll[0] - (1.0f32.exp() + 1.0).ln() + 1.0).abs() < 1e-6 && nll[1].is_nan(),
            "{nll:?}"
        );
    }

    /// Through autodiff on flex, each fused op's gradient equals the one burn derives for the
    /// composition of its own ops.
    #[test]
    fn fused_gradients_match_autodiff_of_the_composition() {
        let device = Device::flex().autodiff();
        let shape = [6, 50];
        let n = shape[0] * shape[1];
        let input =
            || Tensor::<2>::from_data(TensorData::new(values(n, 4), shape), &device).require_grad();
        let weights = Tensor::<2>::from_data(TensorData::new(values(n, 5), shape), &device);
        let grad_of = |f: &dyn Fn(Tensor<2>) -> Tensor<2>| {
            let x = input();
            let grads = (f(x.clone()) * weights.clone()).sum().backward();
            x.grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let composed_gelu = |x: Tensor<2>| {
            let two_z =
                (x.clone() + x.clone() * x.clone() * x.clone() * GELU_CUBIC) * TWO_SQRT_2_OVER_PI;
            x * sigmoid(two_z)
        };
        assert_close(&grad_of(&|x| gelu_tanh(x)), &grad_of(&composed_gelu), 1e-5);
        let up =
            || Tensor::<2>::from_data(TensorData::new(values(n, 6), shape), &device).require_grad();
        let silu_grads = |fused: bool| {
            let (gate, up) = (input(), up());
            let out = if fused {
                silu_mul(gate.clone(), up.clone())
            } else {
                burn::tensor::activation::silu(gate.clone()) * up.clone()
            };
            let grads = (out * weights.clone()).sum().backward();
            let grad = |t: &Tensor<2>| {
                t.grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            };
            [grad(&gate), grad(&up)].concat()
        };
        assert_close(&silu_grads(true), &silu_grads(false), 1e-5);
        assert_close(
            &grad_of(&|x| softmax_last(x, 0.3)),
            &grad_of(&|x| burn::tensor::activation::softmax(x * 0.3, 1)),
            1e-5,
        );

        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 7, 49, 3, 3, 12], [6]), &device);
        let x = input();
        let fused_loss = token_nll(x.clone(), targets.clone()).sum();
        let fused = x
            .grad(&fused_loss.clone().backward())
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let x = input();
        let picked = log_softmax(x.clone(), 1).gather(1, targets.reshape([6, 1]));
        let composed_loss = picked.sum().neg();
        let composed = x
            .grad(&composed_loss.clone().backward())
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_close(&fused, &composed, 1e-5);
        let loss = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0];
        assert_close(&[loss(fused_loss)], &[loss(composed_loss)], 1e-6);
    }
}
