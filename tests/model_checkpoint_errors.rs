//! Damaged or unsupported model directories give errors that name the file, the tensor and
//! what was expected, never a panic.

mod model_support;

use std::collections::HashMap;
use std::path::Path;

use apitune::model::{Model, ModelError};
use model_support::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn load_err(dir: &Path) -> ModelError {
    match Model::load(dir, &device()) {
        Ok(_) => panic!("{} loaded although it is broken", dir.display()),
        Err(e) => e,
    }
}

/// Rewrites `file` with `edit` applied to its (name -> (dtype, shape, bytes)) map.
fn rewrite_safetensors(file: &Path, edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(file).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut map: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect();
    edit(&mut map);
    let views: Vec<(String, TensorView)> = map
        .iter()
        .map(|(name, (dtype, shape, data))| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, file).unwrap();
}

#[test]
fn truncated_weights_file() {
    let dir = copy_fixture("gpt2-tiny");
    let file = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len - 100).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("model.safetensors") && message.contains("truncated"), "{message}");
}

#[test]
fn garbage_weights_file() {
    let dir = copy_fixture("gpt2-tiny");
    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err:?}");
}

#[test]
fn mis_shaped_tensor() {
    let dir = copy_fixture("qwen2-tiny");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        let (_, shape, data) = map.get_mut("model.layers.1.self_attn.k_proj.weight").unwrap();
        assert_eq!(shape, &vec![32, 64]);
        *shape = vec![64, 32];
        let _ = data;
    });
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err:?}");
    assert!(message.contains("model.layers.1.self_attn.k_proj.weight"), "{message}");
    assert!(message.contains("expected shape [32, 64], found [64, 32]"), "{message}");
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn missing_tensor() {
    let dir = copy_fixture("gpt2-tiny");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        map.remove("transformer.h.1.mlp.c_fc.bias").unwrap();
    });
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err:?}");
    assert!(message.contains("transformer.h.1.mlp.c_fc.bias"), "{message}");
}

#[test]
fn untied_config_without_lm_head() {
    let dir = copy_fixture("qwen2-tiny-bf16-tied");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("lm_head.weight"), "{message}");
}

#[test]
fn unsupported_dtype() {
    let dir = copy_fixture("gpt2-tiny");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        let (dtype, _, _) = map.get_mut("transformer.ln_f.bias").unwrap();
        *dtype = Dtype::I32;
    });
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::UnsupportedDtype { .. }), "{err:?}");
    assert!(message.contains("transformer.ln_f.bias") && message.contains("I32"), "{message}");
}

#[test]
fn unknown_architecture() {
    let dir = copy_fixture("gpt2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"model_type\": \"gpt2\"", "\"model_type\": \"llama\"")).unwrap();
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::UnknownArchitecture { .. }), "{err:?}");
    assert!(message.contains("config.json") && message.contains("\"llama\"") && message.contains("qwen2"), "{message}");
}

#[test]
fn inconsistent_config() {
    let dir = copy_fixture("gpt2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"n_head\": 4", "\"n_head\": 5")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("n_head") && message.contains("config.json"), "{message}");
}

#[test]
fn config_missing_a_required_field() {
    let dir = copy_fixture("qwen2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"hidden_size\": 64,", "")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("hidden_size") && message.contains("config.json"), "{message}");
}

#[test]
fn missing_config() {
    let dir = copy_fixture("gpt2-tiny");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("config.json"), "{message}");
}

#[test]
fn no_weights() {
    let dir = copy_fixture("gpt2-tiny");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::NoWeights { .. }), "{err:?}");
}

#[test]
fn missing_tokenizer() {
    let dir = copy_fixture("gpt2-tiny");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("tokenizer.json"), "{message}");
}

#[test]
fn shard_listed_in_index_is_missing() {
    let dir = copy_fixture("bigcode-tiny-sharded");
    std::fs::remove_file(dir.path().join("model-00003-of-00004.safetensors")).unwrap();
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(message.contains("model.safetensors.index.json") && message.contains("model-00003-of-00004"), "{message}");
}

#[test]
fn index_points_to_the_wrong_shard() {
    let dir = copy_fixture("bigcode-tiny-sharded");
    let index = dir.path().join("model.safetensors.index.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let map = json["weight_map"].as_object_mut().unwrap();
    let wrong = if map["transformer.wte.weight"] == "model-00001-of-00004.safetensors" {
        "model-00002-of-00004.safetensors"
    } else {
        "model-00001-of-00004.safetensors"
    };
    map.insert("transformer.wte.weight".into(), wrong.into());
    std::fs::write(&index, serde_json::to_string(&json).unwrap()).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("transformer.wte.weight") && message.contains(wrong), "{message}");
}

#[test]
fn truncated_shard() {
    let dir = copy_fixture("bigcode-tiny-sharded");
    let file = dir.path().join("model-00002-of-00004.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("model-00002-of-00004.safetensors"), "{message}");
}
