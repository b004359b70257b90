//! The matrix products of a model as ops with hand-written backwards, registered as a burn
//! backend extension like the fused kernels in [`crate::kernels`]: the projection `y = x·W + b`
//! and attention's batched products.
//!
//! On flex, burn's linear costs three passes over the output besides the product (flex zero-fills
//! the new buffer, copies it once more to realign it, then adds the bias), and every gradient
//! product pays the first two again. The flex kernel here writes each output once
//! ([`apitune_cpu_kernels::matmul`]); other backends run the composition of burn ops in
//! [`reference`]. Gradients flow to whichever of x, W and b are tracked, so the same op serves a
//! frozen LoRA base, the adapter factors and full training.

use apitune_cpu_kernels::{self as cpu, MatRef};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, DType, Dispatch, Flex, Shape, TensorMetadata, backend_extension,
};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;

#[backend_extension(Flex, Autodiff, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait MatmulKernel: Backend {
    /// `x·W + b` (b added to every row) for `x [N, in]`, `W [in, out]` and `b [out]`: `[N, out]`.
    fn linear_2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::linear_2d::<Self>(x, weight, Some(bias))
    }

    /// `x·W` for `x [N, in]` and `W [in, out]`: `[N, out]`.
    fn matmul_2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::linear_2d::<Self>(x, weight, None)
    }

    /// `lhs · rhs` over the last two dimensions, for every index of the leading ones (the same
    /// in both): attention's `q·kᵀ` and `p·v`.
    fn matmul_batched(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::matmul_batched::<Self>(lhs, rhs)
    }

    /// The gradient for `x`: `grad · Wᵀ`.
    fn linear_2d_x_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::linear_2d_x_backward::<Self>(weight, grad)
    }

    /// The gradient for `W`: `xᵀ · grad`.
    fn linear_2d_weight_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::linear_2d_weight_backward::<Self>(x, grad)
    }

    /// The gradient for `b`: `grad` summed over its rows.
    fn linear_2d_bias_backward(grad: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::linear_2d_bias_backward::<Self>(grad)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl MatmulKernel for burn::backend::Cube {}

/// The op composed from burn's own: every backend but flex runs these.
pub mod reference {
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Shape, TensorMetadata};

    pub fn linear_2d<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
    ) -> FloatTensor<B> {
        let product = B::float_matmul(x, weight);
        match bias {
            Some(bias) => {
                let width = bias.shape()[0];
                B::float_add(product, B::float_reshape(bias, Shape::new([1, width])))
            }
            None => product,
        }
    }

    pub fn matmul_batched<B: Backend>(lhs: FloatTensor<B>, rhs: FloatTensor<B>) -> FloatTensor<B> {
        B::float_matmul(lhs, rhs)
    }

    pub fn linear_2d_x_backward<B: Backend>(
        weight: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        B::float_matmul(grad, B::float_swap_dims(weight, 0, 1))
    }

    pub fn linear_2d_weight_backward<B: Backend>(
        x: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        B::float_matmul(B::float_swap_dims(x, 0, 1), grad)
    }

    pub fn linear_2d_bias_backward<B: Backend>(grad: FloatTensor<B>) -> FloatTensor<B> {
        let width = grad.shape()[1];
        B::float_reshape(B::float_sum_dim(grad, 0), Shape::new([width]))
    }
}

impl MatmulKernel for Flex {
    fn linear_2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        flex_linear(x, weight, Some(bias))
    }

    fn matmul_2d(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        flex_linear(x, weight, None)
    }

    fn matmul_batched(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        let shapes = (lhs.layout().shape(), rhs.layout().shape());
        let rank = shapes.0.num_dims();
        let batch_dims_agree = rank >= 3
            && shapes.1.num_dims() == rank
            && shapes.0[..rank - 2] == shapes.1[..rank - 2];
        let views = batch_dims_agree
            .then(|| batch_of_matrices(&lhs).zip(batch_of_matrices(&rhs)))
            .flatten();
        match views {
            Some((l, r)) if l[0].cols == r[0].rows => {
                let mut dims = shapes.0.to_vec();
                dims[rank - 1] = r[0].cols;
                let values = cpu::matmul_batched(&l, &r);
                FlexTensor::from_data(TensorData::new(values, dims))
            }
            _ => reference::matmul_batched::<Flex>(lhs, rhs),
        }
    }

    fn linear_2d_x_backward(weight: FlexTensor, grad: FlexTensor) -> FlexTensor {
        match (matrix(&grad), matrix(&weight)) {
            (Some(lhs), Some(rhs)) if lhs.cols == rhs.cols => product(lhs, rhs.t(), None),
            _ => reference::linear_2d_x_backward::<Flex>(weight, grad),
        }
    }

    fn linear_2d_weight_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        match (matrix(&x), matrix(&grad)) {
            (Some(lhs), Some(rhs)) if lhs.rows == rhs.rows => product(lhs.t(), rhs, None),
            _ => reference::linear_2d_weight_backward::<Flex>(x, grad),
        }
    }

    fn linear_2d_bias_backward(grad: FlexTensor) -> FlexTensor {
        let width = grad.layout().shape()[1];
        match grad.as_slice::<f32>() {
            Some(values) if grad.dtype() == DType::F32 => {
                let sums = cpu::column_sums(values, width);
                FlexTensor::from_data(TensorData::new(sums, [width]))
            }
            _ => reference::linear_2d_bias_backward::<Flex>(grad),
        }
    }
}

fn flex_linear(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let fused = match (
        matrix(&x),
        matrix(&weight),
        bias.as_ref().map(contiguous_vector),
    ) {
        (Some(lhs), Some(rhs), None) if lhs.cols == rhs.rows => Some(product(lhs, rhs, None)),
        (Some(lhs), Some(rhs), Some(Some(b))) if lhs.cols == rhs.rows && b.len() == rhs.cols => {
            Some(product(lhs, rhs, Some(b)))
        }
        _ => None,
    };
    fused.unwrap_or_else(|| reference::linear_2d::<Flex>(x, weight, bias))
}

/// An f32 matrix as a strided view of its storage; `None` (use the composed ops) for any other
/// dtype or rank.
fn matrix(t: &FlexTensor) -> Option<MatRef<'_>> {
    let layout = t.layout();
    if t.dtype() != DType::F32 || layout.num_dims() != 2 {
        return None;
    }
    let strides = layout.strides();
    Some(MatRef {
        data: t.storage::<f32>(),
        offset: layout.start_offset(),
        rows: layout.shape()[0],
        cols: layout.shape()[1],
        row_stride: strides[0],
        col_stride: strides[1],
    })
}

/// Every matrix (the last two dimensions) of a tensor of rank 3 or more, in row-major order of
/// the leading indices; `None` for another dtype, a lower rank or an empty batch.
fn batch_of_matrices(t: &FlexTensor) -> Option<Vec<MatRef<'_>>> {
    let layout = t.layout();
    let rank = layout.num_dims();
    if t.dtype() != DType::F32 || rank < 3 {
        return None;
    }
    let (shape, strides) = (layout.shape(), layout.strides());
    let count: usize = shape[..rank - 2].iter().product();
    let data = t.storage::<f32>();
    let views = (0..count).map(|mut index| {
        let mut offset = layout.start_offset() as isize;
        for d in (0..rank - 2).rev() {
            offset += (index % shape[d]) as isize * strides[d];
            index /= shape[d];
        }
        MatRef {
            data,
            offset: usize::try_from(offset).ok()?,
            rows: shape[rank - 2],
            cols: shape[rank - 1],
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        }
        .into()
    });
    views.collect::<Option<Vec<_>>>().filter(|v| !v.is_empty())
}

fn contiguous_vector(t: &FlexTensor) -> Option<&[f32]> {
    (t.dtype() == DType::F32 && t.layout().num_dims() == 1)
        .then(|| t.as_slice::<f32>())
        .flatten()
}

fn product(lhs: MatRef, rhs: MatRef, bias: Option<&[f32]>) -> FlexTensor {
    let shape = Shape::new([lhs.rows, rhs.cols]);
    FlexTensor::from_data(TensorData::new(cpu::matmul(lhs, rhs, bias), shape))
}

/// The backward step: parents are `[x, W]` or `[x, W, b]`; the state holds x when W is tracked
/// and W when x is tracked (each gradient needs only the other operand).
#[derive(Debug)]
struct Linear2d;

type Operands<B> = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

impl<B: Backend + MatmulKernel, const N: usize> Backward<B, N> for Linear2d {
    type State = Operands<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        let [x_node, weight_node, bias_node] =
            [0, 1, 2].map(|i| ops.parents.get(i).cloned().flatten());
        if let (Some(node), Some(x)) = (weight_node, x) {
            grads.register::<B>(node.id, B::linear_2d_weight_backward(x, grad.clone()));
        }
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::linear_2d_bias_backward(grad.clone()));
        }
        if let (Some(node), Some(weight)) = (x_node, weight) {
            grads.register::<B>(node.id, B::linear_2d_x_backward(weight, grad));
        }
    }
}

impl<B: Backend + MatmulKernel, C: CheckpointStrategy> MatmulKernel for Autodiff<B, C> {
    fn linear_2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let bias = bias.into_primitive();
        record_product::<B, C, _, 3>(Linear2d, nodes, x, weight, |x, weight| {
            B::linear_2d(x, weight, bias)
        })
    }

    fn matmul_2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node()];
        record_product::<B, C, _, 2>(Linear2d, nodes, x, weight, B::matmul_2d)
    }

    fn matmul_batched(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [lhs.node(), rhs.node()];
        record_product::<B, C, _, 2>(MatmulBatched, nodes, lhs, rhs, B::matmul_batched)
    }
}

/// Records `forward(lhs, rhs)` on the autodiff graph with `step` as its backward. The state
/// keeps each operand whose counterpart is tracked: a product's gradient for one operand needs
/// only the other.
fn record_product<B, C, S, const N: usize>(
    step: S,
    nodes: [NodeGuard; N],
    lhs: FloatTensor<Autodiff<B, C>>,
    rhs: FloatTensor<Autodiff<B, C>>,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    S: Backward<B, N, State = Operands<B>>,
{
    let (keep_lhs, keep_rhs) = (rhs.is_tracked(), lhs.is_tracked());
    match step.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (lhs, rhs) = (lhs.into_primitive(), rhs.into_primitive());
            let state = (keep_lhs.then(|| lhs.clone()), keep_rhs.then(|| rhs.clone()));
            prep.finish(state, forward(lhs, rhs))
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(lhs.into_primitive(), rhs.into_primitive()))
        }
    }
}

/// The backward step of [`MatmulKernel::matmul_batched`]; the state as [`Linear2d`]'s.
#[derive(Debug)]
struct MatmulBatched;

impl<B: Backend + MatmulKernel> Backward<B, 2> for MatmulBatched {
    type State = Operands<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (lhs, rhs) = ops.state;
        let [lhs_node, rhs_node] = ops.parents;
        let transposed = |t: FloatTensor<B>| {
            let rank = t.shape().num_dims();
            B::float_swap_dims(t, rank - 2, rank - 1)
        };
        if let (Some(node), Some(lhs)) = (rhs_node, lhs) {
            let grad = B::matmul_batched(transposed(lhs), grad.clone());
            grads.register::<B>(node.id, grad);
        }
        if let (Some(node), Some(rhs)) = (lhs_node, rhs) {
            grads.register::<B>(node.id, B::matmul_batched(grad, transposed(rhs)));
        }
    }
}

/// `x·W + b` over the last dimension of `x [..., in]` with `W [in, out]`: `[..., out]`, the
/// leading dimensions folded into the rows of one product.
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let mut dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let d_out = weight.dims()[1];
    let (x, weight) = (
        x.reshape([rows, d_in]).into_dispatch(),
        weight.into_dispatch(),
    );
    let y = match bias {
        Some(bias) => <Dispatch as MatmulKernel>::linear_2d(x, weight, bias.into_dispatch()),
        None => <Dispatch as MatmulKernel>::matmul_2d(x, weight),
    };
    dims[D - 1] = d_out;
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

/// `lhs · rhs` over the last two dimensions, the leading ones equal in both (no broadcasting).
pub fn matmul_batched<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as MatmulKernel>::matmul_batched(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor, Tolerance};

    use super::*;

    fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(dims, Distribution::Uniform(-1.0, 1.0), device)
    }

    fn assert_close<const D: usize>(actual: Tensor<D>, expected: Tensor<D>) {
        let expected = expected.into_data();
        actual
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4));
    }

    /// Output and the gradients of x, W and b through autodiff on flex: `linear` or burn's own.
    fn outputs(fused: bool, inputs: &[Tensor<2>; 3], bias: &Tensor<1>) -> [Tensor<2>; 5] {
        let device = Device::flex().autodiff();
        let track = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &device).require_grad();
        let (x, w, upstream) = (track(&inputs[0]), track(&inputs[1]), track(&inputs[2]));
        let b = Tensor::<1>::from_data(bias.to_data(), &device).require_grad();
        let y = if fused {
            linear(x.clone(), w.clone(), Some(b.clone()))
        } else {
            burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone()))
        };
        let grads = (y.clone() * upstream).sum().backward();
        let plain = |data| Tensor::<2>::from_data(data, &Device::flex());
        let b_grad = Tensor::<1>::from_data(b.grad(&grads).unwrap().into_data(), &Device::flex());
        [
            plain(y.into_data()),
            plain(x.grad(&grads).unwrap().into_data()),
            plain(w.grad(&grads).unwrap().into_data()),
            b_grad.unsqueeze::<2>(),
            plain(inputs[0].to_data()),
        ]
    }

    #[test]
    fn forward_and_gradients_match_burns_linear() {
        let device = Device::flex();
        let inputs = [
            random([6, 5], &device),
            random([5, 7], &device),
            random([6, 7], &device),
        ];
        let bias = random([7], &device);
        let fused = outputs(true, &inputs, &bias);
        let composed = outputs(false, &inputs, &bias);
        for (fused, composed) in fused.into_iter().zip(composed) {
            assert_close(fused, composed);
        }
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_x_still_does() {
        let device = Device::flex().autodiff();
        let x = random([4, 3], &device).require_grad();
        let w = random([3, 2], &device);
        let grads = linear(x.clone(), w.clone(), None).sum().backward();
        assert!(w.grad(&grads).is_none());
        let expected = w.sum_dim(1).reshape([1, 3]).repeat_dim(0, 4);
        let got = Tensor::<2>::from_data(x.grad(&grads).unwrap().into_data(), &Device::flex());
        assert_close(
            got,
            Tensor::from_data(expected.into_data(), &Device::flex()),
        );
    }

    #[test]
    fn batched_products_and_their_gradients_match_burns_matmul() {
        let device = Device::flex().autodiff();
        let q: Tensor<4> = random([2, 3, 5, 4], &device);
        let k: Tensor<4> = random([2, 3, 6, 4], &device);
        let upstream: Tensor<4> = random([2, 3, 5, 6], &device);
        let run = |fused: bool| {
            let (q, k) = (q.clone().require_grad(), k.clone().require_grad());
            let kt = k.clone().swap_dims(2, 3);
            let scores = if fused {
                matmul_batched(q.clone(), kt)
            } else {
                q.clone().matmul(kt)
            };
            let grads = (scores.clone() * upstream.clone()).sum().backward();
            let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let grad = |t: &Tensor<4>| {
                t.grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            };
            [flat(scores), grad(&q), grad(&k)]
        };
        for (fused, composed) in run(true).into_iter().zip(run(false)) {
            let (fused, composed) = (
                Tensor::<1>::from_floats(fused.as_slice(), &Device::flex()),
                Tensor::<1>::from_floats(composed.as_slice(), &Device::flex()),
            );
            assert_close(fused.unsqueeze::<2>(), composed.unsqueeze::<2>());
        }
    }

    #[test]
    fn a_transposed_weight_view_and_three_dimensional_input_work() {
        let device = Device::flex();
        let x: Tensor<3> = random([2, 3, 4], &device);
        let table = random([5, 4], &device);
        let fused = linear(x.clone(), table.clone().transpose(), None);
        let expected = x.matmul(table.transpose().unsqueeze::<3>());
        assert_close(fused, expected);
    }
}
