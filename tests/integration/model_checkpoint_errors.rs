//! Damaged or unsupported model directories give errors that name the file, the tensor and
//! what was expected, never a panic.

use crate::model_support;

use std::collections::HashMap;
use std::path::Path;

use apitune::model::{Model, ModelConfig, ModelError, lora};
use model_support::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};

fn adapter_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora/gpt2-tiny");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The error of loading gpt2-tiny with the adapter in `adapter`.
fn adapter_err(adapter: &Path) -> ModelError {
    match lora::load_with_adapter(&fixture_dir("gpt2-tiny"), adapter, &device()) {
        Ok(_) => panic!(
            "adapter {} applied although it is broken",
            adapter.display()
        ),
        Err(e) => e,
    }
}

fn load_err(dir: &Path) -> ModelError {
    match Model::load(dir, &device()) {
        Ok(_) => panic!("{} loaded although it is broken", dir.display()),
        Err(e) => e,
    }
}

/// Rewrites `file` with `edit` applied to its (name -> (dtype, shape, bytes)) map.
fn rewrite_safetensors(
    file: &Path,
    edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(file).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut map: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            )
        })
        .collect();
    edit(&mut map);
    let views: Vec<(String, TensorView)> = map
        .iter()
        .map(|(name, (dtype, shape, data))| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, file).unwrap();
}

/// Rewrites `dir/file` (JSON) with `edit` applied to its top-level object.
fn edit_json(dir: &Path, file: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join(file);
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(json.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[test]
fn truncated_weights_file() {
    let dir = copy_fixture("gpt2-tiny");
    let file = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("model.safetensors") && message.contains("truncated"),
        "{message}"
    );
}

#[test]
fn garbage_weights_file() {
    let dir = copy_fixture("gpt2-tiny");
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err:?}");
}

#[test]
fn mis_shaped_tensor() {
    let dir = copy_fixture("qwen2-tiny");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        let (_, shape, data) = map
            .get_mut("model.layers.1.self_attn.k_proj.weight")
            .unwrap();
        assert_eq!(shape, &vec![32, 64]);
        *shape = vec![64, 32];
        let _ = data;
    });
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        message.contains("model.layers.1.self_attn.k_proj.weight"),
        "{message}"
    );
    assert!(
        message.contains("expected shape [32, 64], found [64, 32]"),
        "{message}"
    );
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
    assert!(
        message.contains("transformer.h.1.mlp.c_fc.bias"),
        "{message}"
    );
}

#[test]
fn untied_config_without_lm_head() {
    let dir = copy_fixture("qwen2-tiny-bf16-tied");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": false",
        ),
    )
    .unwrap();
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
    assert!(
        matches!(err, ModelError::UnsupportedDtype { .. }),
        "{err:?}"
    );
    assert!(
        message.contains("transformer.ln_f.bias") && message.contains("I32"),
        "{message}"
    );
}

#[test]
fn unknown_architecture() {
    let dir = copy_fixture("gpt2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"model_type\": \"gpt2\"", "\"model_type\": \"llama\""),
    )
    .unwrap();
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(
        matches!(err, ModelError::UnknownArchitecture { .. }),
        "{err:?}"
    );
    assert!(
        message.contains("config.json")
            && message.contains("\"llama\"")
            && message.contains("qwen2"),
        "{message}"
    );
}

#[test]
fn inconsistent_config() {
    let dir = copy_fixture("gpt2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"n_head\": 4", "\"n_head\": 5")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("n_head") && message.contains("config.json"),
        "{message}"
    );
}

#[test]
fn config_missing_a_required_field() {
    let dir = copy_fixture("qwen2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"hidden_size\": 64,", "")).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("hidden_size") && message.contains("config.json"),
        "{message}"
    );
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
    assert!(
        message.contains("model.safetensors.index.json")
            && message.contains("model-00003-of-00004"),
        "{message}"
    );
}

#[test]
fn index_points_to_the_wrong_shard() {
    let dir = copy_fixture("bigcode-tiny-sharded");
    let index = dir.path().join("model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let map = json["weight_map"].as_object_mut().unwrap();
    let wrong = if map["transformer.wte.weight"] == "model-00001-of-00004.safetensors" {
        "model-00002-of-00004.safetensors"
    } else {
        "model-00001-of-00004.safetensors"
    };
    map.insert("transformer.wte.weight".into(), wrong.into());
    std::fs::write(&index, serde_json::to_string(&json).unwrap()).unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("transformer.wte.weight") && message.contains(wrong),
        "{message}"
    );
}

#[test]
fn truncated_shard() {
    let dir = copy_fixture("bigcode-tiny-sharded");
    let file = dir.path().join("model-00002-of-00004.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("model-00002-of-00004.safetensors"),
        "{message}"
    );
}

/// Sizes that would make the process abort on an impossible allocation (or build a degenerate
/// model) are rejected while parsing config.json, naming the field and the valid range.
#[test]
fn config_sizes_out_of_range() {
    let cases: [(&str, &str, Value, &str); 14] = [
        (
            "gpt2-tiny",
            "n_layer",
            json!(1_000_000_000u64),
            "1000000000 is out of range; expected 1 to 1024",
        ),
        (
            "gpt2-tiny",
            "n_embd",
            json!(4_000_000_000u64),
            "4000000000 is out of range; expected 1 to 65536",
        ),
        (
            "gpt2-tiny",
            "vocab_size",
            json!(0),
            "0 is out of range; expected 1 to 4194304",
        ),
        (
            "gpt2-tiny",
            "n_positions",
            json!(1u64 << 40),
            "expected 1 to 1048576",
        ),
        ("gpt2-tiny", "n_inner", json!(0), "expected 1 to 262144"),
        ("gpt2-tiny", "n_head", json!(0), "expected 1 to 64"),
        (
            "gpt2-tiny",
            "layer_norm_epsilon",
            json!(-1.0),
            "expected 0 or more",
        ),
        (
            "bigcode-tiny-sharded",
            "n_layer",
            json!(5000),
            "expected 1 to 1024",
        ),
        (
            "qwen2-tiny",
            "num_hidden_layers",
            json!(1_000_000_000u64),
            "expected 1 to 1024",
        ),
        (
            "qwen2-tiny",
            "intermediate_size",
            json!(1_000_000_000u64),
            "expected 1 to 262144",
        ),
        (
            "qwen2-tiny",
            "max_position_embeddings",
            json!(0),
            "expected 1 to 1048576",
        ),
        (
            "qwen2-tiny",
            "num_attention_heads",
            json!(128),
            "expected 1 to 64",
        ),
        (
            "qwen2-tiny",
            "num_key_value_heads",
            json!(3),
            "3 does not divide num_attention_heads 4",
        ),
        (
            "qwen2-tiny",
            "rms_norm_eps",
            json!(-0.5),
            "expected 0 or more",
        ),
    ];
    for (fixture, field, value, expected) in cases {
        let dir = copy_fixture(fixture);
        edit_json(dir.path(), "config.json", |config| {
            config.insert(field.into(), value.clone());
        });
        let err = load_err(dir.path());
        let message = err.to_string();
        assert!(
            matches!(err, ModelError::InvalidConfig { .. }),
            "{fixture} {field}={value}: {err:?}"
        );
        assert!(
            message.contains(&format!("config.json: {field}: ")) && message.contains(expected),
            "{message}"
        );
    }
}

/// Every size within its cap, together ~190 TiB of f32 weights: rejected from the parameter
/// count before anything is allocated (where the system reports its memory).
#[test]
fn config_too_large_for_this_machine() {
    if !Path::new("/proc/meminfo").is_file() {
        return;
    }
    let dir = copy_fixture("gpt2-tiny");
    edit_json(dir.path(), "config.json", |config| {
        for (field, value) in [
            ("n_embd", 65536),
            ("n_head", 64),
            ("n_layer", 1024),
            ("n_inner", 262144),
        ] {
            config.insert(field.into(), json!(value));
        }
    });
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("config.json") && message.contains("n_layer"),
        "{message}"
    );
    assert!(
        message.contains("parameters") && message.contains("GiB of memory"),
        "{message}"
    );
}

/// Random initialisation (pretraining from a manifest) parses its config with the same checks;
/// without a file the message starts at the field.
#[test]
fn random_init_config_is_checked_when_parsed() {
    let config = json!({"model_type": "gpt2", "vocab_size": 64, "n_embd": 4_000_000_000u64, "n_layer": 1, "n_head": 2});
    let err = ModelConfig::from_value(config, Path::new("")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n_embd: 4000000000 is out of range; expected 1 to 65536"
    );
    let text = r#"{"model_type": "qwen2", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1000000000, "num_attention_heads": 2}"#;
    let err = ModelConfig::from_json(text, Path::new("out/config.json")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "out/config.json: num_hidden_layers: 1000000000 is out of range; expected 1 to 1024"
    );
    let ok =
        json!({"model_type": "gpt2", "vocab_size": 64, "n_embd": 8, "n_layer": 1, "n_head": 2});
    let config = ModelConfig::from_value(ok, Path::new("")).unwrap();
    // wte 64*8 + wpe 1024*8 + block (4*8 + 8*24+24 + 8*8+8 + 8*32+32 + 32*8+8) + ln_f 16
    assert_eq!(config.parameter_count(), 512 + 8192 + 872 + 16);
}

/// Adds token `content` with id `id` to `dir/tokenizer.json`, in the model's vocabulary and as
/// an added token (tokenizers gives an added token its vocabulary id).
fn add_token(dir: &Path, content: &str, id: u32) {
    edit_json(dir, "tokenizer.json", |tokenizer| {
        tokenizer["model"]["vocab"]
            .as_object_mut()
            .unwrap()
            .insert(content.into(), json!(id));
        let added = tokenizer["added_tokens"].as_array_mut().unwrap();
        added.push(
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}),
        );
    });
}

/// An added token past the model's vocabulary would make the embedding lookup index out of
/// bounds (a panic in the backend) once a prompt contains it; loading names it instead.
#[test]
fn tokenizer_added_token_beyond_the_vocabulary() {
    let dir = copy_fixture("qwen2-tiny");
    add_token(dir.path(), "<|extra|>", 400);
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::Tokenizer { .. }), "{err:?}");
    assert!(
        message.contains("tokenizer.json") && message.contains("\"<|extra|>\" has id 400"),
        "{message}"
    );
    assert!(message.contains("vocab_size is 320"), "{message}");
}

/// A tokenizer from a bigger model than config.json describes.
#[test]
fn tokenizer_vocabulary_larger_than_the_config() {
    let dir = copy_fixture("gpt2-tiny");
    edit_json(dir.path(), "config.json", |config| {
        config.insert("vocab_size".into(), json!(300));
    });
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("tokenizer.json") && message.contains("has id 319"),
        "{message}"
    );
    assert!(
        message.contains("vocab_size is 300 (ids 0 to 299)"),
        "{message}"
    );
}

/// Special token ids feed the embedding too (generation pads with EOS): each is checked against
/// the vocabulary, naming the file it came from.
#[test]
fn special_token_ids_beyond_the_vocabulary() {
    let cases = [
        ("generation_config.json", "eos_token_id", json!(500)),
        ("generation_config.json", "bos_token_id", json!([0, 320])),
        ("config.json", "pad_token_id", json!(320)),
        ("config.json", "eos_token_id", json!(4000)),
    ];
    for (file, field, value) in cases {
        let dir = copy_fixture("gpt2-tiny");
        edit_json(dir.path(), file, |json| {
            json.insert(field.into(), value.clone());
        });
        let err = load_err(dir.path());
        let message = err.to_string();
        assert!(
            matches!(err, ModelError::InvalidConfig { .. }),
            "{file} {field}: {err:?}"
        );
        assert!(
            message.contains(file) && message.contains(field),
            "{message}"
        );
        assert!(
            message.contains("outside the model's vocabulary (vocab_size 320: ids 0 to 319)"),
            "{message}"
        );
    }
}

/// Replaces the 8-byte header length of a safetensors file.
fn set_header_len(file: &Path, len: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[..8].copy_from_slice(&len.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

/// Headers that lie (about their own length, about where a tensor's bytes are) and empty files
/// are corrupt files, not out-of-bounds reads.
#[test]
fn lying_safetensors_headers() {
    let dir = copy_fixture("gpt2-tiny");
    let file = dir.path().join("model.safetensors");
    set_header_len(&file, u64::MAX);
    assert!(matches!(
        load_err(dir.path()),
        ModelError::CorruptWeights { .. }
    ));

    let dir = copy_fixture("gpt2-tiny");
    let file = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (name, info) = header
        .as_object_mut()
        .unwrap()
        .iter_mut()
        .find(|(k, _)| *k != "__metadata__")
        .unwrap();
    let end = info["data_offsets"][1].as_u64().unwrap();
    info["data_offsets"][1] = json!(end + (1 << 30));
    let name = name.clone();
    let header = serde_json::to_vec(&header).unwrap();
    let mut lying = (header.len() as u64).to_le_bytes().to_vec();
    lying.extend_from_slice(&header);
    lying.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&file, lying).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(err, ModelError::CorruptWeights { .. }),
        "{name}: {err:?}"
    );

    let dir = copy_fixture("gpt2-tiny");
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    assert!(matches!(
        load_err(dir.path()),
        ModelError::CorruptWeights { .. }
    ));
}

/// NaN or infinite weights are reported at load (they would only give NaN logits).
#[test]
fn non_finite_weights() {
    let dir = copy_fixture("gpt2-tiny");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        let (_, _, data) = map.get_mut("transformer.h.1.mlp.c_fc.weight").unwrap();
        data[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(
        matches!(err, ModelError::NonFiniteWeights { index: 3, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("model.safetensors")
            && message.contains("transformer.h.1.mlp.c_fc.weight"),
        "{message}"
    );
    assert!(message.contains("NaN at element 3"), "{message}");

    let dir = copy_fixture("gpt2-tiny-f16");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |map| {
        let (_, _, data) = map.get_mut("wte.weight").unwrap();
        data[0..2].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
    });
    let message = load_err(dir.path()).to_string();
    assert!(
        message.contains("\"wte.weight\" holds inf at element 0"),
        "{message}"
    );
}

/// adapter_config.json values that would divide by zero, allocate without bound or drop every
/// activation are rejected with the file, the field and the range.
#[test]
fn adapter_config_out_of_range() {
    let cases = [
        ("r", json!(0), "r: 0 is out of range; expected 1 to 65536"),
        (
            "r",
            json!(1_000_000_000_000u64),
            "r: 1000000000000 is out of range",
        ),
        (
            "lora_dropout",
            json!(1.5),
            "lora_dropout: 1.5 is out of range; expected 0 to below 1",
        ),
    ];
    for (field, value, expected) in cases {
        let adapter = adapter_fixture();
        edit_json(adapter.path(), "adapter_config.json", |config| {
            config.insert(field.into(), value.clone());
        });
        let err = adapter_err(adapter.path());
        let message = err.to_string();
        assert!(
            matches!(err, ModelError::InvalidConfig { .. }),
            "{field}: {err:?}"
        );
        assert!(
            message.contains("adapter_config.json") && message.contains(expected),
            "{message}"
        );
    }
}

#[test]
fn adapter_target_module_the_model_lacks() {
    let adapter = adapter_fixture();
    edit_json(adapter.path(), "adapter_config.json", |config| {
        config.insert("target_modules".into(), json!(["c_attn", "q_proj"]));
    });
    let message = adapter_err(adapter.path()).to_string();
    assert!(
        message.contains("adapter_config.json") && message.contains("target_modules"),
        "{message}"
    );
    assert!(
        message.contains("\"q_proj\" names no projection"),
        "{message}"
    );
    assert!(
        message.contains("(its projections: c_attn, c_fc, c_proj)"),
        "{message}"
    );
}

/// LoRA tensors of the wrong shape, or one factor without the other, name the tensors.
#[test]
fn adapter_tensors_mis_shaped_or_unpaired() {
    let a = "base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight";
    let b = "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight";
    let adapter = adapter_fixture();
    rewrite_safetensors(&adapter.path().join("adapter_model.safetensors"), |map| {
        let (_, shape, data) = map.get_mut(a).unwrap();
        assert_eq!(shape, &vec![4, 64]);
        *shape = vec![4, 32];
        data.truncate(4 * 32 * 4);
    });
    let err = adapter_err(adapter.path());
    let message = err.to_string();
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err:?}");
    assert!(
        message.contains(&format!("{a} is [4, 32]")) && message.contains("maps 64 -> 128 (r = 4)"),
        "{message}"
    );

    let adapter = adapter_fixture();
    rewrite_safetensors(&adapter.path().join("adapter_model.safetensors"), |map| {
        map.remove(b).unwrap();
    });
    let message = adapter_err(adapter.path()).to_string();
    assert!(message.contains(&format!("{a} has no {b}")), "{message}");
}

#[test]
fn adapter_with_non_finite_values() {
    let adapter = adapter_fixture();
    rewrite_safetensors(&adapter.path().join("adapter_model.safetensors"), |map| {
        let (_, _, data) = map
            .get_mut("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")
            .unwrap();
        data[4..8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    });
    let err = adapter_err(adapter.path());
    assert!(
        matches!(err, ModelError::NonFiniteWeights { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("adapter_model.safetensors"),
        "{err}"
    );
}

/// `merge --out` pointing at the base model would overwrite it and empty its config and tokenizer
/// (a file copied onto itself is truncated first).
#[test]
fn merge_into_the_base_model_directory_is_refused() {
    let base = copy_fixture("gpt2-tiny");
    let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora/gpt2-tiny");
    let before = std::fs::read(base.path().join("config.json")).unwrap();
    let err = lora::merge(base.path(), &adapter, &base.path().join(".")).unwrap_err();
    assert!(err.to_string().contains("choose another --out"), "{err}");
    assert_eq!(
        std::fs::read(base.path().join("config.json")).unwrap(),
        before
    );
    Model::load(base.path(), &device()).unwrap();
}
