//! Shared helpers of the model tests: fixture paths and the reference outputs that
//! scripts/model_fixtures.py recorded with HF transformers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use apitune::model::Model;
use burn::tensor::Device;
use serde::Deserialize;

pub const FIXTURES: [&str; 5] = [
    "gpt2-tiny",
    "gpt2-tiny-f16",
    "bigcode-tiny-sharded",
    "qwen2-tiny",
    "qwen2-tiny-bf16-tied",
];

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub model_type: String,
    pub eos_token_id: u32,
    pub max_new_tokens: usize,
    pub prompts: Vec<ReferencePrompt>,
}

#[derive(Debug, Deserialize)]
pub struct ReferencePrompt {
    pub prompt: String,
    pub input_ids: Vec<u32>,
    pub loss: f64,
    pub greedy_new_tokens: Vec<u32>,
}

pub fn reference(name: &str) -> Reference {
    let path = fixture_dir(name).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// HF's logits for prompt `index`: `[prompt_len, vocab]` flattened row-major, and the vocab size.
pub fn reference_logits(name: &str, index: usize) -> (Vec<f32>, usize) {
    let bytes = std::fs::read(fixture_dir(name).join("reference.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor(&format!("logits_{index}")).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, view.shape()[1])
}

/// The device the model tests run on: flex, or the backend `APITUNE_TEST_BACKEND` names
/// (`wgpu`, `cuda`), so the same numerics tests check a GPU build:
///
///     APITUNE_TEST_BACKEND=wgpu cargo test --release --features wgpu --test model_reference
pub fn device() -> Device {
    let Ok(name) = std::env::var("APITUNE_TEST_BACKEND") else {
        return Device::flex();
    };
    let backend = name
        .parse::<apitune::model::Backend>()
        .unwrap_or_else(|e| panic!("APITUNE_TEST_BACKEND={name}: {e}"));
    backend
        .device()
        .unwrap_or_else(|e| panic!("APITUNE_TEST_BACKEND={name}: {e}"))
}

pub fn load(name: &str) -> Model {
    Model::load(&fixture_dir(name), &device()).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Copies a fixture into a fresh temporary directory the test may damage.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}
