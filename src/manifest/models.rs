//! Checks of `[models.NAME]`: a model is an HF directory (`path`) or a random initialisation
//! (`init = "random"`, `arch`, `config`, `tokenizer`) whose config must pass the same checks as a
//! checkpoint's `config.json` (sizes in range, heads dividing the hidden size, weights fitting in
//! this machine's memory), so `validate` fails where `run` would.

use serde_json::Value;

use super::ModelSpec;
use super::shorten;
use crate::model::ModelConfig;
use crate::model::config::{MAX_VOCAB, SUPPORTED_ARCHITECTURES};

/// A problem: the key path below `models.NAME`, and the message.
pub type Problem = (Vec<String>, String);

/// Smallest vocabulary `train_bpe` accepts: the 256 byte symbols and the end-of-text token.
const MIN_BPE_VOCAB: u64 = 257;

/// Every problem of model `name`.
pub fn spec_problems(name: &str, spec: &ModelSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if spec.path.as_deref() == Some("") {
        out.push((
            vec!["path".into()],
            "`path` is empty: name an HF model directory".into(),
        ));
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
            let message = format!(
                "unknown arch `{}`; use one of {}",
                shorten(other),
                SUPPORTED_ARCHITECTURES.join(", ")
            );
            return out.push((vec!["arch".into()], message));
        }
        None => {
            let message = format!(
                "model `{name}` has `init = \"random\"` but no `arch` ({})",
                SUPPORTED_ARCHITECTURES.join(", ")
            );
            return out.push((Vec::new(), message));
        }
    };
    let vocab = tokenizer_vocab(name, spec, out);
    let Some(config) = &spec.config else {
        let message = format!(
            "model `{name}` needs `config = {{ ... }}` with the sizes of its `{arch}` architecture"
        );
        return out.push((Vec::new(), message));
    };
    let mut json = config.clone();
    json.entry("vocab_size")
        .or_insert(Value::from(vocab.unwrap_or(MIN_BPE_VOCAB)));
    json.insert("model_type".into(), Value::from(arch));
    match ModelConfig::from_json(
        &Value::Object(json).to_string(),
        std::path::Path::new("config"),
    ) {
        Ok(_) => {}
        Err(crate::model::ModelError::InvalidConfig { field, message, .. }) => {
            // A problem of several sizes together (memory) has no one key: point at `config`.
            let mut at = vec!["config".to_string()];
            if !field.contains('/') {
                at.extend(field.split('.').map(String::from));
            }
            out.push((at, format!("model `{name}`: config.{field}: {message}")));
        }
        Err(crate::model::ModelError::Json { error, .. }) => {
            out.push((vec!["config".into()], format!("config: {error}")))
        }
        Err(other) => out.push((vec!["config".into()], other.to_string())),
    }
}

/// The vocabulary size `train_bpe` will reach, when it is the tokenizer.
fn tokenizer_vocab(name: &str, spec: &ModelSpec, out: &mut Vec<Problem>) -> Option<u64> {
    let need = || {
        format!(
            "model `{name}` needs `tokenizer = {{ train_bpe = {{ vocab_size = N }} }}` or `{{ path = \"tokenizer.json\" }}`"
        )
    };
    let Some(tokenizer) = &spec.tokenizer else {
        out.push((Vec::new(), need()));
        return None;
    };
    if let Some(path) = tokenizer.get("path") {
        if path.as_str().is_none_or(str::is_empty) {
            out.push((
                vec!["tokenizer".into(), "path".into()],
                "`tokenizer.path` must be the path of a tokenizer.json".into(),
            ));
        }
        return None;
    }
    let Some(size) = tokenizer.get("train_bpe").and_then(|t| t.get("vocab_size")) else {
        out.push((vec!["tokenizer".into()], need()));
        return None;
    };
    match size
        .as_u64()
        .filter(|n| (MIN_BPE_VOCAB..=MAX_VOCAB as u64).contains(n))
    {
        Some(n) => Some(n),
        None => {
            let at = ["tokenizer", "train_bpe", "vocab_size"]
                .map(String::from)
                .to_vec();
            out.push((at, format!("tokenizer.train_bpe.vocab_size must be an integer between {MIN_BPE_VOCAB} and {MAX_VOCAB}, got {size}")));
            None
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
            tokenizer: serde_json::json!({ "train_bpe": { "vocab_size": 1024 } })
                .as_object()
                .cloned(),
        }
    }

    #[test]
    fn random_init_configs_pass_the_checkpoint_checks() {
        let ok = spec(serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 4 }));
        assert_eq!(spec_problems("m", &ok), Vec::<Problem>::new());
        let bad = spec(serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 3 }));
        let problems = spec_problems("m", &bad);
        assert_eq!(problems[0].0, ["config", "n_head"]);
        assert!(problems[0].1.contains("divid"), "{problems:?}");
        let bad =
            spec(serde_json::json!({ "n_layer": 1_000_000_000u64, "n_embd": 128, "n_head": 4 }));
        let problems = spec_problems("m", &bad);
        assert_eq!(problems[0].0, ["config", "n_layer"]);
        assert!(problems[0].1.contains("expected 1 to 1024"), "{problems:?}");
        let bad =
            spec(serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 0 }));
        assert_eq!(spec_problems("m", &bad)[0].0, ["config", "vocab_size"]);
        let huge = spec(serde_json::json!({ "n_layer": 1024, "n_embd": 65536, "n_head": 64 }));
        let problems = spec_problems("m", &huge);
        assert_eq!(problems[0].0, ["config"]);
        assert!(
            problems[0].1.contains("more than this machine's"),
            "{problems:?}"
        );
        let bad = spec(
            serde_json::json!({ "n_layer": 2, "n_embd": 128, "n_head": 4, "initializer_range": -1.0 }),
        );
        assert_eq!(
            spec_problems("m", &bad)[0].0,
            ["config", "initializer_range"]
        );
    }
}
