//! Writing a model's weights as an HF `model.safetensors` (for pretrained and merged models), with
//! HF tensor names and layouts, so [`super::Model::load`], transformers and PEFT read it back.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use super::causal_lm::CausalLm;
use super::checkpoint::WeightLayout;
use super::config::ModelConfig;
use super::error::{ModelError, Result};

/// A tensor by HF name: (name, shape, f32 values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Every float parameter of `network` by its HF name with its f32 values and HF shape. LoRA
/// factors are left out (they belong in an adapter, see [`super::lora::save_adapter`]).
pub fn hf_tensors(network: &CausalLm, config: &ModelConfig) -> Result<Vec<NamedTensor>> {
    let mut visitor = PathVisitor {
        stack: Vec::new(),
        out: Vec::new(),
        error: None,
    };
    network.visit(&mut visitor);
    if let Some(e) = visitor.error {
        return Err(e);
    }
    // burn's Linear keeps [in, out]; torch.nn.Linear (GPTBigCode, Qwen2) keeps [out, in].
    let transpose_projections = config.architecture().weight_layout() == WeightLayout::OutIn;
    let mut out = Vec::new();
    for (path, shape, values) in visitor.out {
        if path.iter().any(|p| p == "lora") {
            continue;
        }
        let is_projection_weight =
            path.iter().any(|p| p == "base") && path.last().map(String::as_str) == Some("weight");
        let name = hf_name(&path);
        if is_projection_weight && transpose_projections && shape.len() == 2 {
            let (rows, cols) = (shape[0], shape[1]);
            let mut t = vec![0f32; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
            out.push((name, vec![cols, rows], t));
        } else {
            out.push((name, shape, values));
        }
    }
    Ok(out)
}

/// Maps a burn module path (`Gpt2`, `transformer`, `h`, `0`, `attn`, `c_attn`, `base`, `weight`)
/// to the HF tensor name (`transformer.h.0.attn.c_attn.weight`).
fn hf_name(path: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::with_capacity(path.len());
    for (i, p) in path.iter().enumerate() {
        let is_variant = i == 0 && p.chars().next().is_some_and(char::is_uppercase);
        if is_variant || p == "base" {
            continue;
        }
        parts.push(match (i + 1 == path.len(), p.as_str()) {
            (true, "gamma") => "weight",
            (true, "beta") => "bias",
            _ => p,
        });
    }
    parts.join(".")
}

struct PathVisitor {
    stack: Vec<String>,
    out: Vec<(Vec<String>, Vec<usize>, Vec<f32>)>,
    error: Option<ModelError>,
}

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        let shape = data.shape().to_vec();
        match data.convert::<f32>().try_into_vec::<f32>() {
            Ok(values) => self.out.push((self.stack.clone(), shape, values)),
            Err(e) => {
                self.error.get_or_insert(ModelError::InvalidInput(format!(
                    "{}: {e:?}",
                    self.stack.join(".")
                )));
            }
        }
    }
    fn visit_float_with_path<const D: usize>(
        &mut self,
        _path: &[String],
        _id: ParamId,
        _tensor: &Tensor<D>,
    ) {
    }
}

/// Writes `network` as an f32 `model.safetensors` at `path`. Tied output matrices are not
/// written twice: HF re-ties `lm_head` to the embedding from `tie_word_embeddings`.
pub fn save_weights(network: &CausalLm, config: &ModelConfig, path: &Path) -> Result<()> {
    let tensors = hf_tensors(network, config)?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| {
            (
                name,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, b)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).expect("shape matches the bytes"),
            )
        })
        .collect();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| ModelError::InvalidInput(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burn::tensor::Device;

    use super::*;
    use crate::checkpoint::{Checkpoint, SINGLE_FILE, WeightSource};

    /// Qwen2 unties its output matrix by default (Qwen2.5-7B does): a pretrained model must be
    /// written as HF names it, `lm_head.weight`, and read back whole.
    #[test]
    fn untied_output_matrix_round_trips_under_its_hf_name() {
        let config = ModelConfig::from_value(
            serde_json::json!({
                "model_type": "qwen2", "vocab_size": 64, "hidden_size": 16,
                "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 2, "max_position_embeddings": 32,
                "tie_word_embeddings": false
            }),
            Path::new("config.json"),
        )
        .unwrap();
        let device = Device::flex();
        let network = CausalLm::init(&config, &device, 3);
        let dir = tempfile::tempdir().unwrap();
        save_weights(&network, &config, &dir.path().join(SINGLE_FILE)).unwrap();

        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        assert!(checkpoint.contains("lm_head.weight"));
        let mut source =
            WeightSource::checkpoint(&checkpoint, CausalLm::body_prefix(&config), &device);
        let loaded = CausalLm::build(&config, &mut source).unwrap();
        assert_eq!(source.unused(), Vec::<String>::new());
        let written = hf_tensors(&network, &config).unwrap();
        let read = hf_tensors(&loaded, &config).unwrap();
        assert_eq!(written, read);
    }
}
