//! Checks of `[models.NAME]`: a model is an HF directory (`path`) or a random initialisation
//! (`init = "random"`, `arch`, `config`, `tokenizer`) whose sizes must build a model that fits
//! in this machine's memory.

use serde_json::{Map, Value};

use super::ModelSpec;
use super::limits::{MAX_EMBD, MAX_INNER, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB, machine_memory};
use super::shorten;
use crate::model::ModelConfig;
use crate::model::config::SUPPORTED_ARCHITECTURES;

/// A problem: the key path below `models.NAME`, and the message.
pub type Problem = (Vec<String>, String);

/// Smallest vocabulary `train_bpe` accepts: the 256 byte symbols and the end-of-text token.
const MIN_BPE_VOCAB: u64 = 257;

/// Integer fields of a random-init `config` per architecture: (name, largest value, required).
/// Absent optional fields take the architecture's default; `vocab_size` that of the tokenizer.
const GPT2_SIZES: [(&str, u64, bool); 6] = [
    ("vocab_size", MAX_VOCAB, false),
    ("n_positions", MAX_POSITIONS, false),
    ("n_embd", MAX_EMBD, true),
    ("n_layer", MAX_LAYERS, true),
    ("n_head", MAX_EMBD, true),
    ("n_inner", MAX_INNER, false),
];
const QWEN2_SIZES: [(&str, u64, bool); 7] = [
    ("vocab_size", MAX_VOCAB, false),
    ("max_position_embeddings", MAX_POSITIONS, false),
    ("hidden_size", MAX_EMBD, true),
    ("intermediate_size", MAX_INNER, true),
    ("num_hidden_layers", MAX_LAYERS, true),
    ("num_attention_heads", MAX_EMBD, true),
    ("num_key_value_heads", MAX_EMBD, false),
];
/// Float fields: (name, lower bound, lower bound included, upper bound).
const FLOATS: [(&str, f64, bool, f64); 4] = [
    ("initializer_range", 0.0, true, 1.0),
    ("layer_norm_epsilon", 0.0, false, 1.0),
    ("rms_norm_eps", 0.0, false, 1.0),
    ("rope_theta", 0.0, false, 1e9),
];

/// Every problem of model `name`.
pub fn spec_problems(name: &str, spec: &ModelSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if spec.path.as_deref() == Some("") {
        out.push((vec!["path".into()], "`path` is empty: name an HF model directory".into()));
    }
    match spec.init.as_deref() {
        None if spec.path.is_none() => out.push((
            Vec::new(),
            format!("model `{name}` needs `path` (an HF model directory) or `init = \"random\"` with `arch`, `config` and `tokenizer`"),
        )),
        None => {}
        Some("random") => random_problems(name, spec, &mut out),
        Some(other) => out.push((vec!["init".into()], format!("`init` must be \"random\", got \"{}\"", shorten(other)))),
    }
    out
}

fn random_problems(name: &str, spec: &ModelSpec, out: &mut Vec<Problem>) {
    let arch = match spec.arch.as_deref() {
        Some(arch) if SUPPORTED_ARCHITECTURES.contains(&arch) => arch,
        Some(other) => {
            let message = format!("unknown arch `{}`; use one of {}", shorten(other), SUPPORTED_ARCHITECTURES.join(", "));
            return out.push((vec!["arch".into()], message));
        }
        None => {
            let message = format!("model `{name}` has `init = \"random\"` but no `arch` ({})", SUPPORTED_ARCHITECTURES.join(", "));
            return out.push((Vec::new(), message));
        }
    };
    let vocab = tokenizer_vocab(name, spec, out);
    let Some(config) = &spec.config else {
        let message = format!("model `{name}` needs `config = {{ ... }}` with the sizes of its `{arch}` architecture");
        return out.push((Vec::new(), message));
    };
    let before = out.len();
    let sizes: &[(&str, u64, bool)] = if arch == "qwen2" { &QWEN2_SIZES } else { &GPT2_SIZES };
    check_sizes(config, sizes, out);
    check_floats(config, out);
    if out.len() > before {
        return;
    }
    check_heads(arch, config, out);
    if out.len() > before {
        return;
    }
    let mut json = config.clone();
    json.entry("vocab_size").or_insert(Value::from(vocab.unwrap_or(MIN_BPE_VOCAB)));
    json.insert("model_type".into(), Value::from(arch));
    match ModelConfig::from_json(&Value::Object(json).to_string(), std::path::Path::new("config")) {
        Ok(config) => check_memory(name, &config, out),
        Err(crate::model::ModelError::InvalidConfig { field, message, .. }) => {
            let mut at = vec!["config".to_string()];
            at.extend(field.split('.').map(String::from));
            out.push((at, format!("config.{field}: {message}")));
        }
        Err(crate::model::ModelError::Json { error, .. }) => out.push((vec!["config".into()], format!("config: {error}"))),
        Err(other) => out.push((vec!["config".into()], other.to_string())),
    }
}

/// The vocabulary size `train_bpe` will reach, when it is the tokenizer.
fn tokenizer_vocab(name: &str, spec: &ModelSpec, out: &mut Vec<Problem>) -> Option<u64> {
    let need = || format!("model `{name}` needs `tokenizer = {{ train_bpe = {{ vocab_size = N }} }}` or `{{ path = \"tokenizer.json\" }}`");
    let Some(tokenizer) = &spec.tokenizer else {
        out.push((Vec::new(), need()));
        return None;
    };
    if let Some(path) = tokenizer.get("path") {
        if !path.as_str().is_some_and(|p| !p.is_empty()) {
            out.push((vec!["tokenizer".into(), "path".into()], "`tokenizer.path` must be the path of a tokenizer.json".into()));
        }
        return None;
    }
    let Some(size) = tokenizer.get("train_bpe").and_then(|t| t.get("vocab_size")) else {
        out.push((vec!["tokenizer".into()], need()));
        return None;
    };
    match size.as_u64().filter(|n| (MIN_BPE_VOCAB..=MAX_VOCAB).contains(n)) {
        Some(n) => Some(n),
        None => {
            let at = ["tokenizer", "train_bpe", "vocab_size"].map(String::from).to_vec();
            out.push((at, format!("tokenizer.train_bpe.vocab_size must be an integer between {MIN_BPE_VOCAB} and {MAX_VOCAB}, got {size}")));
            None
        }
    }
}

fn check_sizes(config: &Map<String, Value>, sizes: &[(&str, u64, bool)], out: &mut Vec<Problem>) {
    for &(field, max, required) in sizes {
        match config.get(field) {
            Some(v) if v.as_u64().is_some_and(|n| (1..=max).contains(&n)) => {}
            Some(v) => out.push((at_config(field), format!("config.{field} must be an integer between 1 and {max}, got {v}"))),
            None if required => out.push((vec!["config".into()], format!("config needs `{field}`, an integer between 1 and {max}"))),
            None => {}
        }
    }
}

fn check_floats(config: &Map<String, Value>, out: &mut Vec<Problem>) {
    for (field, min, min_included, max) in FLOATS {
        let Some(v) = config.get(field) else { continue };
        let ok = v.as_f64().is_some_and(|x| x.is_finite() && (x > min || (min_included && x == min)) && x <= max);
        if !ok {
            let range = format!("{}{min}, {max}]", if min_included { "[" } else { "(" });
            out.push((at_config(field), format!("config.{field} must be a finite number in {range}, got {v}")));
        }
    }
}

/// Heads must divide the hidden size (and key-value heads the heads; rotary needs an even head size).
fn check_heads(arch: &str, config: &Map<String, Value>, out: &mut Vec<Problem>) {
    let get = |k: &str| config.get(k).and_then(Value::as_u64);
    let (hidden, heads) = if arch == "qwen2" { ("hidden_size", "num_attention_heads") } else { ("n_embd", "n_head") };
    let (Some(h), Some(n)) = (get(hidden), get(heads)) else { return };
    if !h.is_multiple_of(n) {
        return out.push((at_config(heads), format!("config.{hidden} ({h}) must be divisible by config.{heads} ({n})")));
    }
    if arch == "qwen2" {
        let kv = get("num_key_value_heads").unwrap_or(n);
        if !n.is_multiple_of(kv) {
            let message = format!("config.{heads} ({n}) must be divisible by config.num_key_value_heads ({kv})");
            return out.push((at_config("num_key_value_heads"), message));
        }
        if !(h / n).is_multiple_of(2) {
            out.push((at_config(heads), format!("config.{hidden} / config.{heads} = {} must be even (rotary embeddings)", h / n)));
        }
    }
}

fn at_config(field: &str) -> Vec<String> {
    vec!["config".into(), field.into()]
}

/// The model's weights as f32 must fit in this machine's memory.
fn check_memory(name: &str, config: &ModelConfig, out: &mut Vec<Problem>) {
    let params = parameter_count(config);
    let bytes = params * 4.0;
    let memory = machine_memory() as f64;
    if bytes > memory {
        const GIB: f64 = (1u64 << 30) as f64;
        let message = format!(
            "model `{name}` has about {params:.3e} parameters, {:.1} GiB as f32: more than this machine's {:.1} GiB of memory; shrink its layers, hidden size or vocabulary",
            bytes / GIB,
            memory / GIB
        );
        out.push((vec!["config".into()], message));
    }
}

/// Parameters of a model built from `config` (weights and biases, as f64 so nothing overflows).
pub fn parameter_count(config: &ModelConfig) -> f64 {
    let f = |n: usize| n as f64;
    match config {
        ModelConfig::Gpt2(c) => {
            let (e, i) = (f(c.n_embd), f(c.inner_size()));
            let layer = 4.0 * e + (e * 3.0 * e + 3.0 * e) + (e * e + e) + (e * i + i) + (i * e + e);
            let head = if c.tie_word_embeddings { 0.0 } else { f(c.vocab_size) * e };
            (f(c.vocab_size) + f(c.n_positions)) * e + f(c.n_layer) * layer + 2.0 * e + head
        }
        ModelConfig::GptBigCode(c) => {
            let (e, i) = (f(c.n_embd), f(c.inner_size()));
            let kv = 2.0 * f(c.kv_heads()) * f(c.head_dim());
            let layer = 4.0 * e + (e * (e + kv) + e + kv) + (e * e + e) + (e * i + i) + (i * e + e);
            let head = if c.tie_word_embeddings { 0.0 } else { f(c.vocab_size) * e };
            (f(c.vocab_size) + f(c.n_positions)) * e + f(c.n_layer) * layer + 2.0 * e + head
        }
        ModelConfig::Qwen2(c) => {
            let (e, i) = (f(c.hidden_size), f(c.intermediate_size));
            let kv = f(c.kv_heads()) * f(c.head_dim());
            let layer = 2.0 * e + (e * e + e) + 2.0 * (e * kv + kv) + e * e + 3.0 * e * i;
            let head = if c.tie_word_embeddings { 0.0 } else { f(c.vocab_size) * e };
            f(c.vocab_size) * e + f(c.num_hidden_layers) * layer + e + head
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(config: Value) -> ModelSpec {
        ModelSpec {
            path: None,
            arch: Some("gpt2".into()),
            init: Some("random".into()),
            config: config.as_object().cloned(),
            tokenizer: serde_json::json!({ "train_bpe": { "vocab_size": 1024 } }).as_object().cloned(),
        }
    }

    #[test]
    fn random_init_sizes_have_ranges() {
        let ok = spec(serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 4 }));
        assert!(spec_problems("m", &ok).is_empty(), "{:?}", spec_problems("m", &ok));
        let bad = spec(serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 3 }));
        assert_eq!(spec_problems("m", &bad)[0].1, "config.n_embd (128) must be divisible by config.n_head (3)");
        let bad = spec(serde_json::json!({ "n_layer": 1_000_000_000u64, "n_embd": 128, "n_head": 4, "vocab_size": 0 }));
        let p = spec_problems("m", &bad);
        assert_eq!(p[0].0, ["config", "vocab_size"]);
        assert!(p[1].1.contains("config.n_layer must be an integer between 1 and 1024"), "{p:?}");
        let huge = spec(serde_json::json!({ "n_layer": 1024, "n_embd": 65536, "n_head": 64 }));
        assert!(spec_problems("m", &huge)[0].1.contains("more than this machine's"), "{:?}", spec_problems("m", &huge));
    }
}
