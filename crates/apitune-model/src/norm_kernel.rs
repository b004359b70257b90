//! LayerNorm and RMSNorm as single ops with hand-written backwards, registered as a burn backend
//! extension like the fused kernels in [`crate::kernels`].
//!
//! Under autodiff, burn composes both from tensor ops: about six passes over the activations
//! forward and a dozen backward, per norm, two norms a block. On flex each is one pass
//! ([`apitune_cpu_kernels::norm_rows`]); other backends run the composition in [`reference`].
//! Gradients reach x, γ and β, so the op serves LoRA (frozen γ, β) and full training alike.

use apitune_cpu_kernels::{self as cpu, Norm};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::nn::{LayerNorm, RmsNorm};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;

#[backend_extension(Flex, Autodiff, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait NormKernel: Backend {
    /// `(x − mean)/√(var + ε) · γ + β` over the last dimension of `x [N, d]`.
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        reference::norm_rows::<Self>(Norm::Layer, x, gamma, Some(beta), epsilon)
    }

    /// `x/√(mean(x²) + ε) · γ` over the last dimension of `x [N, d]`.
    fn rms_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        reference::norm_rows::<Self>(Norm::Rms, x, gamma, None, epsilon)
    }

    /// The gradients of [`NormKernel::layer_norm_rows`] for x, γ and β.
    fn layer_norm_rows_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference::norm_rows_backward::<Self>(Norm::Layer, x, gamma, grad, epsilon)
    }

    /// The gradients of [`NormKernel::rms_norm_rows`] for x and γ.
    fn rms_norm_rows_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dgamma, _) =
            reference::norm_rows_backward::<Self>(Norm::Rms, x, gamma, grad, epsilon);
        (dx, dgamma)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl NormKernel for burn::backend::Cube {}

/// The ops composed from burn's own: every backend but flex runs these.
pub mod reference {
    use apitune_cpu_kernels::Norm;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Shape, TensorMetadata};

    /// The row-normalised `x [N, d]` before γ and β, with its `1/√(var + ε)` `[N, 1]`.
    fn normalised<B: Backend>(
        norm: Norm,
        x: FloatTensor<B>,
        epsilon: f64,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let centred = match norm {
            Norm::Layer => {
                let mean = B::float_mean_dim(x.clone(), 1);
                B::float_sub(x, mean)
            }
            Norm::Rms => x,
        };
        let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 1);
        let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
        (B::float_mul(centred, rstd.clone()), rstd)
    }

    fn row<B: Backend>(vector: FloatTensor<B>) -> FloatTensor<B> {
        let width = vector.shape()[0];
        B::float_reshape(vector, Shape::new([1, width]))
    }

    fn column_sums<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let width = x.shape()[1];
        B::float_reshape(B::float_sum_dim(x, 0), Shape::new([width]))
    }

    pub fn norm_rows<B: Backend>(
        norm: Norm,
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: Option<FloatTensor<B>>,
        epsilon: f64,
    ) -> FloatTensor<B> {
        let (normalised, _) = normalised::<B>(norm, x, epsilon);
        let scaled = B::float_mul(normalised, row::<B>(gamma));
        match beta {
            Some(beta) => B::float_add(scaled, row::<B>(beta)),
            None => scaled,
        }
    }

    /// `dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))` with `g = dy ⊙ γ` (no `mean(g)` term for
    /// RMSNorm); `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy`.
    pub fn norm_rows_backward<B: Backend>(
        norm: Norm,
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        grad: FloatTensor<B>,
        epsilon: f64,
    ) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        let (normalised, rstd) = normalised::<B>(norm, x, epsilon);
        let g = B::float_mul(grad.clone(), row::<B>(gamma));
        let projection = B::float_mean_dim(B::float_mul(g.clone(), normalised.clone()), 1);
        let mut inner = B::float_sub(g.clone(), B::float_mul(normalised.clone(), projection));
        if norm == Norm::Layer {
            inner = B::float_sub(inner, B::float_mean_dim(g, 1));
        }
        let dx = B::float_mul(inner, rstd);
        let dgamma = column_sums::<B>(B::float_mul(grad.clone(), normalised));
        (dx, dgamma, column_sums::<B>(grad))
    }
}

impl NormKernel for Flex {
    fn layer_norm_rows(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        match (rows_of(&x, &gamma), vector(&gamma), vector(&beta)) {
            (Some(values), Some(g), Some(b)) if b.len() == g.len() => {
                let mut out = vec![0.0f32; values.len()];
                cpu::norm_rows(Norm::Layer, values, g, Some(b), epsilon as f32, &mut out);
                FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
            }
            _ => reference::norm_rows::<Flex>(Norm::Layer, x, gamma, Some(beta), epsilon),
        }
    }

    fn rms_norm_rows(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
        match (rows_of(&x, &gamma), vector(&gamma)) {
            (Some(values), Some(g)) => {
                let mut out = vec![0.0f32; values.len()];
                cpu::norm_rows(Norm::Rms, values, g, None, epsilon as f32, &mut out);
                FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
            }
            _ => reference::norm_rows::<Flex>(Norm::Rms, x, gamma, None, epsilon),
        }
    }

    fn layer_norm_rows_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        flex_backward(Norm::Layer, x, gamma, grad, epsilon)
    }

    fn rms_norm_rows_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor) {
        let (dx, dgamma, _) = flex_backward(Norm::Rms, x, gamma, grad, epsilon);
        (dx, dgamma)
    }
}

fn flex_backward(
    norm: Norm,
    x: FlexTensor,
    gamma: FlexTensor,
    grad: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let same_shape = x.layout().shape() == grad.layout().shape();
    match (rows_of(&x, &gamma), vector(&gamma), rows_of(&grad, &gamma)) {
        (Some(values), Some(g), Some(dy)) if same_shape => {
            let mut dx = vec![0.0f32; values.len()];
            let (dgamma, dbeta) =
                cpu::norm_rows_backward(norm, values, g, dy, epsilon as f32, &mut dx);
            let width = g.len();
            let tensor =
                |values: Vec<f32>, shape| FlexTensor::from_data(TensorData::new(values, shape));
            (
                tensor(dx, x.layout().shape().to_vec()),
                tensor(dgamma, vec![width]),
                tensor(dbeta, vec![width]),
            )
        }
        _ => reference::norm_rows_backward::<Flex>(norm, x, gamma, grad, epsilon),
    }
}

/// The contiguous f32 values of `x [N, d]` when `d` is γ's length.
fn rows_of<'t>(x: &'t FlexTensor, gamma: &FlexTensor) -> Option<&'t [f32]> {
    let shape = x.layout().shape();
    let width_matches =
        shape.num_dims() == 2 && shape[1] == gamma.layout().shape()[0] && shape[1] > 0;
    (x.dtype() == DType::F32 && width_matches)
        .then(|| x.as_slice::<f32>())
        .flatten()
}

fn vector(t: &FlexTensor) -> Option<&[f32]> {
    (t.dtype() == DType::F32 && t.layout().num_dims() == 1)
        .then(|| t.as_slice::<f32>())
        .flatten()
}

/// The backward step of both norms: parents `[x, γ]` (RMSNorm) or `[x, γ, β]` (LayerNorm); the
/// state is which norm, x, γ and ε.
#[derive(Debug)]
struct NormRows;

type Saved<B> = (Norm, FloatTensor<B>, FloatTensor<B>, f64);

impl<B: Backend + NormKernel, const N: usize> Backward<B, N> for NormRows {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (norm, x, gamma, epsilon) = ops.state;
        let [x_node, gamma_node, beta_node] =
            [0, 1, 2].map(|i| ops.parents.get(i).cloned().flatten());
        let (dx, dgamma, dbeta) = match norm {
            Norm::Layer => {
                let (dx, dgamma, dbeta) = B::layer_norm_rows_backward(x, gamma, grad, epsilon);
                (dx, dgamma, Some(dbeta))
            }
            Norm::Rms => {
                let (dx, dgamma) = B::rms_norm_rows_backward(x, gamma, grad, epsilon);
                (dx, dgamma, None)
            }
        };
        if let Some(node) = x_node {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = gamma_node {
            grads.register::<B>(node.id, dgamma);
        }
        if let (Some(node), Some(dbeta)) = (beta_node, dbeta) {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

impl<B: Backend + NormKernel, C: CheckpointStrategy> NormKernel for Autodiff<B, C> {
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let beta = beta.into_primitive();
        record_norm::<B, C, 3>(Norm::Layer, nodes, x, gamma, epsilon, |x, gamma| {
            B::layer_norm_rows(x, gamma, beta, epsilon)
        })
    }

    fn rms_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node()];
        record_norm::<B, C, 2>(Norm::Rms, nodes, x, gamma, epsilon, |x, gamma| {
            B::rms_norm_rows(x, gamma, epsilon)
        })
    }
}

/// Records `forward(x, γ)` on the autodiff graph with [`NormRows`] as its backward.
fn record_norm<B: Backend + NormKernel, C: CheckpointStrategy, const N: usize>(
    norm: Norm,
    nodes: [NodeGuard; N],
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match NormRows.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
            let state = (norm, x.clone(), gamma.clone(), epsilon);
            prep.finish(state, forward(x, gamma))
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(x.into_primitive(), gamma.into_primitive()))
        }
    }
}

/// `module` applied over the last dimension of `x` (whose ε burn keeps private, hence the
/// argument). A bias-free or non-f32 LayerNorm runs burn's own.
pub fn layer_norm<const D: usize>(module: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    let gamma = module.gamma.val();
    match &module.beta {
        Some(beta)
            if x.dtype() == burn::tensor::DType::F32
                && gamma.dtype() == burn::tensor::DType::F32 =>
        {
            on_rows(x, |rows| {
                <Dispatch as NormKernel>::layer_norm_rows(
                    rows,
                    gamma.into_dispatch(),
                    beta.val().into_dispatch(),
                    epsilon,
                )
            })
        }
        _ => module.forward(x),
    }
}

/// `module` applied over the last dimension of `x`; a non-f32 input runs burn's own.
pub fn rms_norm<const D: usize>(module: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    let gamma = module.gamma.val();
    if x.dtype() != burn::tensor::DType::F32 || gamma.dtype() != burn::tensor::DType::F32 {
        return module.forward(x);
    }
    on_rows(x, |rows| {
        <Dispatch as NormKernel>::rms_norm_rows(rows, gamma.into_dispatch(), module.epsilon)
    })
}

/// Runs a row op on `x` folded to `[rows, d]` and unfolds the result.
fn on_rows<const D: usize>(
    x: Tensor<D>,
    op: impl FnOnce(burn::backend::DispatchTensor) -> burn::backend::DispatchTensor,
) -> Tensor<D> {
    let dims = x.dims();
    let width = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = op(x.reshape([rows, width]).into_dispatch());
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

#[cfg(test)]
mod tests {
    use burn::nn::{LayerNormConfig, RmsNormConfig};
    use burn::tensor::{Device, Tolerance};

    use super::*;

    /// Output and the gradients of x, γ (and β) through autodiff on flex, fused or burn's own.
    fn run(layer: bool, fused: bool) -> Vec<Vec<f32>> {
        let device = Device::flex().autodiff();
        let plain = Device::flex();
        let values = |n: usize, seed: u32, low: f32, high: f32| -> Vec<f32> {
            (0..n as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) % 1000)
                .map(|v| low + (high - low) * v as f32 / 1000.0)
                .collect()
        };
        let x =
            Tensor::<3>::from_data(TensorData::new(values(48, 1, -2.0, 2.0), [2, 3, 8]), &plain);
        let upstream =
            Tensor::<3>::from_data(TensorData::new(values(48, 2, -1.0, 1.0), [2, 3, 8]), &plain);
        let gamma = Tensor::<1>::from_data(TensorData::new(values(8, 3, 0.5, 1.5), [8]), &plain);
        let beta = Tensor::<1>::from_data(TensorData::new(values(8, 4, -0.5, 0.5), [8]), &plain);
        let track = |t: Tensor<1>| {
            burn::module::Param::from_tensor(Tensor::from_data(t.into_data(), &device))
        };
        let x = Tensor::<3>::from_data(x.into_data(), &device).require_grad();
        let upstream = Tensor::<3>::from_data(upstream.into_data(), &device);
        let flat = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        if layer {
            let mut module = LayerNormConfig::new(8).with_epsilon(1e-5).init(&device);
            module.gamma = track(gamma);
            module.beta = Some(track(beta));
            let y = if fused {
                layer_norm(&module, x.clone(), 1e-5)
            } else {
                module.forward(x.clone())
            };
            let grads = (y.clone() * upstream).sum().backward();
            let beta = module.beta.as_ref().unwrap().val();
            vec![
                flat(y.flatten(0, 2)),
                flat(x.grad(&grads).unwrap().flatten(0, 2)),
                flat(module.gamma.val().grad(&grads).unwrap()),
                flat(beta.grad(&grads).unwrap()),
            ]
        } else {
            let mut module = RmsNormConfig::new(8).with_epsilon(1e-6).init(&device);
            module.gamma = track(gamma);
            let y = if fused {
                rms_norm(&module, x.clone())
            } else {
                module.forward(x.clone())
            };
            let grads = (y.clone() * upstream).sum().backward();
            vec![
                flat(y.flatten(0, 2)),
                flat(x.grad(&grads).unwrap().flatten(0, 2)),
                flat(module.gamma.val().grad(&grads).unwrap()),
            ]
        }
    }

    #[test]
    fn fused_norms_and_their_gradients_match_burns_modules() {
        for layer in [true, false] {
            let (fused, composed) = (run(layer, true), run(layer, false));
            for (f, c) in fused.iter().zip(&composed) {
                let data = |v: &Vec<f32>| TensorData::new(v.clone(), [v.len()]);
                data(f).assert_approx_eq::<f32>(&data(c), Tolerance::absolute(1e-4));
            }
        }
    }

    /// The composed ops other backends run give what the flex kernels give.
    #[test]
    fn reference_ops_match_the_flex_kernels() {
        let values = |n: usize, seed: u32| -> Vec<f32> {
            (0..n as u32)
                .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 400.0 - 1.2)
                .collect()
        };
        let flex =
            |v: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(v, shape));
        let list = |t: FlexTensor| t.into_data().try_to_vec::<f32>().unwrap();
        let close = |a: Vec<f32>, b: Vec<f32>| {
            let (a, b) = (
                TensorData::new(a.clone(), [a.len()]),
                TensorData::new(b.clone(), [b.len()]),
            );
            a.assert_approx_eq::<f32>(&b, Tolerance::absolute(1e-4));
        };
        let (x, gamma, beta, grad) = (values(40, 1), values(8, 2), values(8, 3), values(40, 4));
        let x_of = || flex(x.clone(), vec![5, 8]);
        let g_of = || flex(gamma.clone(), vec![8]);
        let dy_of = || flex(grad.clone(), vec![5, 8]);
        close(
            list(Flex::layer_norm_rows(
                x_of(),
                g_of(),
                flex(beta.clone(), vec![8]),
                1e-5,
            )),
            list(reference::norm_rows::<Flex>(
                Norm::Layer,
                x_of(),
                g_of(),
                Some(flex(beta.clone(), vec![8])),
                1e-5,
            )),
        );
        close(
            list(Flex::rms_norm_rows(x_of(), g_of(), 1e-6)),
            list(reference::norm_rows::<Flex>(
                Norm::Rms,
                x_of(),
                g_of(),
                None,
                1e-6,
            )),
        );
        let (dx, dgamma, dbeta) = Flex::layer_norm_rows_backward(x_of(), g_of(), dy_of(), 1e-5);
        let (rdx, rdgamma, rdbeta) =
            reference::norm_rows_backward::<Flex>(Norm::Layer, x_of(), g_of(), dy_of(), 1e-5);
        close(list(dx), list(rdx));
        close(list(dgamma), list(rdgamma));
        close(list(dbeta), list(rdbeta));
        let (dx, dgamma) = Flex::rms_norm_rows_backward(x_of(), g_of(), dy_of(), 1e-6);
        let (rdx, rdgamma, _) =
            reference::norm_rows_backward::<Flex>(Norm::Rms, x_of(), g_of(), dy_of(), 1e-6);
        close(list(dx), list(rdx));
        close(list(dgamma), list(rdgamma));
    }
}
