//! Parameter bookkeeping the loop needs beyond burn's optimizer: stable parameter ids (so optimizer
//! state saved in a checkpoint finds its parameters again after a restart), the trainable values
//! in a fixed order, and global gradient-norm clipping.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::model::CausalLm;

/// Gives every float parameter the id of its position in visit order, and, when `values` is
/// given, replaces the trainable ones (in the same order) with those values.
pub fn renumber(network: CausalLm, values: Option<Vec<TensorData>>) -> anyhow::Result<CausalLm> {
    let mut mapper = Renumber { next: 0, values: values.map(|v| v.into_iter()), missing: false };
    let network = network.map(&mut mapper);
    anyhow::ensure!(!mapper.missing, "checkpoint holds fewer trainable tensors than the model has");
    if let Some(rest) = mapper.values.as_mut()
        && rest.next().is_some()
    {
        anyhow::bail!("checkpoint holds more trainable tensors than the model has");
    }
    Ok(network)
}

struct Renumber {
    next: u64,
    values: Option<std::vec::IntoIter<TensorData>>,
    missing: bool,
}

impl ModuleMapper for Renumber {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, mut tensor, mapper) = param.consume();
        let id = ParamId::from(self.next);
        self.next += 1;
        if tensor.is_require_grad()
            && let Some(values) = self.values.as_mut()
        {
            match values.next() {
                Some(data) if data.shape().to_vec() == tensor.dims().to_vec() => {
                    tensor = Tensor::<D>::from_data(data, &tensor.device()).require_grad();
                }
                _ => self.missing = true,
            }
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Values of the parameters that require gradients, in visit order.
pub fn trainable_values(network: &CausalLm) -> Vec<TensorData> {
    struct Collect(Vec<TensorData>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if value.is_require_grad() {
                self.0.push(value.into_data());
            }
        }
    }
    let mut collect = Collect(Vec::new());
    network.visit(&mut collect);
    collect.0
}

/// Number of scalar parameters that require gradients.
pub fn trainable_count(network: &CausalLm) -> u64 {
    trainable_values(network).iter().map(|d| d.num_elements() as u64).sum()
}

/// L2 norm of all gradients together.
pub fn global_norm(network: &CausalLm, grads: &GradientsParams) -> f64 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: f64,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let values = g.into_data().convert::<f64>().try_into_vec::<f64>().unwrap_or_default();
                self.sum += values.iter().map(|v| v * v).sum::<f64>();
            }
        }
    }
    let mut norm = Norm { grads, sum: 0.0 };
    network.visit(&mut norm);
    norm.sum.sqrt()
}

/// Multiplies every gradient by `factor`.
pub fn scale_grads(network: &CausalLm, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    network.visit(&mut Scale { grads, factor });
}
