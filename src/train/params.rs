//! Parameter bookkeeping the loop needs beyond burn's optimizer: stable parameter ids (so optimizer
//! state saved in a checkpoint finds its parameters again after a restart), the trainable values
//! in a fixed order, and global gradient-norm clipping.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use super::TrainSettings;
use crate::model::CausalLm;
use crate::validate::{MAX_BATCH, MAX_EPOCHS, MAX_POSITIONS, MAX_STEPS, Problems, Validate};

/// Largest peak learning rate: with `weight_decay` at most 1, AdamW's decay factor `1 - lr·wd`
/// stays in [0, 1].
pub const MAX_LR: f64 = 1.0;
/// Largest gradient-norm clip.
pub const MAX_CLIP: f64 = 1e6;

/// The ranges of `train = { ... }`, checked when the manifest is read.
impl Validate for TrainSettings {
    fn validate(&self, out: &mut Problems) {
        out.positive("lr", self.lr, MAX_LR);
        match self.steps {
            Some(steps) => {
                out.int("steps", steps, 1, MAX_STEPS);
                out.float("epochs", self.epochs, (0.0, false), (MAX_EPOCHS, false));
            }
            None => out.positive("epochs", self.epochs, MAX_EPOCHS),
        }
        out.int("micro_batch", self.micro_batch, 1, MAX_BATCH);
        out.int("grad_accum", self.grad_accum, 1, MAX_BATCH);
        out.int("max_len", self.max_len, 2, MAX_POSITIONS);
        out.float(
            "warmup",
            self.warmup,
            (0.0, false),
            (MAX_STEPS as f64, false),
        );
        out.float(
            "weight_decay",
            self.weight_decay,
            (0.0, false),
            (1.0, false),
        );
        out.float("clip", self.clip, (0.0, false), (MAX_CLIP, false));
        out.int("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS);
    }
}

/// Gives every float parameter the id of its position in visit order, and, when `values` is
/// given, replaces the trainable ones (in the same order) with those values.
pub fn renumber(network: CausalLm, values: Option<Vec<TensorData>>) -> anyhow::Result<CausalLm> {
    let mut mapper = Renumber {
        next: 0,
        values: values.map(|v| v.into_iter()),
        missing: false,
    };
    let network = network.map(&mut mapper);
    anyhow::ensure!(
        !mapper.missing,
        "checkpoint holds fewer trainable tensors than the model has"
    );
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
    trainable_values(network)
        .iter()
        .map(|d| d.num_elements() as u64)
        .sum()
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
                let values = g
                    .into_data()
                    .convert::<f64>()
                    .try_into_vec::<f64>()
                    .unwrap_or_default();
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
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    network.visit(&mut Scale { grads, factor });
}

/// Decoupled weight decay as HF's Trainer applies it: every trainable matrix (weights,
/// embeddings, LoRA factors) is multiplied by `factor = 1 - lr·wd`; biases and norm weights, the
/// rank-1 parameters, are left alone.
pub fn decay_matrices(network: CausalLm, factor: f64) -> CausalLm {
    struct Decay(f64);
    impl ModuleMapper for Decay {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let tensor = if D >= 2 && tensor.is_require_grad() {
                tensor.detach().mul_scalar(self.0).detach().require_grad()
            } else {
                tensor
            };
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    network.map(&mut Decay(factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn values(network: &CausalLm) -> Vec<(Vec<usize>, Vec<f32>)> {
        struct Collect(Vec<(Vec<usize>, Vec<f32>)>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let v = param.val();
                self.0.push((
                    v.dims().to_vec(),
                    v.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
                ));
            }
        }
        let mut c = Collect(Vec::new());
        network.visit(&mut c);
        c.0
    }

    #[test]
    fn decay_scales_matrices_and_spares_biases_and_norms() {
        let config = ModelConfig::from_json(
            r#"{"model_type": "gpt2", "vocab_size": 64, "n_positions": 16, "n_embd": 8, "n_layer": 1, "n_head": 2}"#,
            std::path::Path::new("test"),
        )
        .unwrap();
        let device = burn::tensor::Device::flex().autodiff();
        let network = CausalLm::init(&config, &device, 0);
        let before = values(&network);
        let after = values(&decay_matrices(network, 0.5));
        let (mut matrices, mut vectors) = (0, 0);
        for ((dims, b), (_, a)) in before.iter().zip(&after) {
            if dims.len() >= 2 {
                matrices += 1;
                assert!(
                    b.iter().zip(a).all(|(b, a)| *a == b * 0.5),
                    "{dims:?} not decayed"
                );
            } else {
                vectors += 1;
                assert_eq!(a, b, "{dims:?} must not decay");
            }
        }
        assert!(
            matrices >= 6 && vectors >= 6,
            "{matrices} matrices, {vectors} vectors"
        );
    }
}
