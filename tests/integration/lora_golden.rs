//! apitune's LoRA against HF PEFT (fixtures from scripts/lora_fixtures.py): an adapter PEFT saved
//! loads here and gives PEFT's loss, gradient norms of every LoRA tensor, and loss after one AdamW
//! step, within 1e-4 relative.

use crate::model_support;

use std::path::{Path, PathBuf};

use apitune::model::lora;
use apitune::train::{self, Example, Schedule, TrainRun, TrainSettings};
use burn::tensor::Device;
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    tokens: Vec<u32>,
    target_start: usize,
}

#[derive(Deserialize)]
struct Reference {
    rows: Vec<Row>,
    lr: f64,
    trainable_params: u64,
    loss_before: f64,
    grad_norms: std::collections::BTreeMap<String, f64>,
    loss_after: f64,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64) {
    let rel = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        rel < 1e-4,
        "{what}: apitune {got} vs PEFT {want} (relative {rel:e})"
    );
}

fn mean_loss(
    network: &apitune::model::CausalLm,
    examples: &[Example],
    device: &Device,
) -> burn::tensor::Tensor<1> {
    let rows: Vec<&Example> = examples.iter().collect();
    let targets: usize = examples.iter().map(Example::target_tokens).sum();
    train::batch_nll(network, &rows, device).div_scalar(targets as f64)
}

fn scalar(t: burn::tensor::Tensor<1>) -> f64 {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()[0]
}

fn check(model_name: &str) {
    let dir = root().join("lora").join(model_name);
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let device = model_support::device().autodiff();
    let mut model =
        lora::load_with_adapter(&root().join("models").join(model_name), &dir, &device).unwrap();
    let examples: Vec<Example> = reference
        .rows
        .iter()
        .map(|r| Example {
            tokens: r.tokens.clone(),
            target_start: r.target_start,
        })
        .collect();
    assert_eq!(
        train::params::trainable_count(&model.network),
        reference.trainable_params
    );

    let loss = mean_loss(&model.network, &examples, &device);
    assert_close(
        "loss with adapter",
        scalar(loss.clone()),
        reference.loss_before,
    );
    let grads = loss.backward();
    let mut checked = 0;
    for (name, proj) in lora::projections_mut(&mut model.network) {
        let Some(path) = &proj.lora else { continue };
        for (suffix, param) in [("lora_A", &path.a), ("lora_B", &path.b)] {
            let key = format!("base_model.model.{name}.{suffix}.weight");
            let grad = param
                .val()
                .grad(&grads)
                .unwrap_or_else(|| panic!("no gradient for {key}"));
            let norm = grad
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .unwrap()
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt();
            assert_close(
                &format!("grad norm {key}"),
                norm,
                reference.grad_norms[&key],
            );
            checked += 1;
        }
    }
    assert_eq!(checked, reference.grad_norms.len());

    let settings = TrainSettings {
        lr: reference.lr,
        steps: Some(1),
        micro_batch: examples.len(),
        grad_accum: 1,
        warmup: 0.0,
        schedule: Schedule::Constant,
        weight_decay: 0.0,
        clip: 0.0,
        checkpoint_every: 0,
        ..TrainSettings::default()
    };
    let work = tempfile::tempdir().unwrap();
    let outcome = train::train(
        model.network,
        &TrainRun {
            examples: &examples,
            settings: &settings,
            seed: 0,
            device: &device,
            work_dir: work.path(),
            progress: &|_, _, _| {},
        },
    )
    .unwrap();
    assert_close(
        "loss in the step's log",
        outcome.steps[0].loss,
        reference.loss_before,
    );
    assert_close(
        "loss after one AdamW step",
        scalar(mean_loss(&outcome.network, &examples, &device)),
        reference.loss_after,
    );
}

#[test]
fn gpt2_lora_matches_peft() {
    check("gpt2-tiny");
}

#[test]
fn bigcode_lora_matches_peft() {
    check("bigcode-tiny-sharded");
}

#[test]
fn qwen2_lora_matches_peft() {
    check("qwen2-tiny");
}

/// An adapter written by apitune, committed with the logits apitune computes with it, so
/// `python scripts/lora_fixtures.py --check` can load it in PEFT and compare. This test keeps the
/// committed files current; `APITUNE_WRITE_FIXTURES=1` rewrites them.
#[test]
fn apitune_adapter_fixture_is_current() {
    use burn::tensor::{Tensor, TensorData};
    let device = Device::flex();
    let base_dir = root().join("models/gpt2-tiny");
    let base = apitune::model::Model::load(&base_dir, &device).unwrap();
    let settings = lora::LoraSettings {
        r: 4,
        alpha: 16.0,
        dropout: 0.0,
        targets: vec!["c_attn".into(), "c_proj".into(), "c_fc".into()],
    };
    let (mut network, _) = lora::attach(base.network, &settings, &base.config, 9).unwrap();
    for (_, proj) in lora::projections_mut(&mut network) {
        if let Some(path) = proj.lora.as_mut() {
            let [r, out] = path.b.dims();
            let values: Vec<f32> = (0..r * out)
                .map(|k| ((k * 7 % 11) as f32 - 5.0) * 0.01)
                .collect();
            path.b = burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [r, out]),
                &device,
            ));
        }
    }
    let tokens = vec![5u32, 17, 42, 7, 99, 3];
    let input = apitune::model::ForwardInput::causal(std::slice::from_ref(&tokens), &device);
    let logits: Vec<f32> = network
        .forward(&input, None)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    lora::save_adapter(&mut network, &settings, &base.config, fresh.path()).unwrap();
    let committed = root().join("lora/apitune-gpt2-tiny");
    let reference = serde_json::json!({ "base": "tests/fixtures/models/gpt2-tiny", "tokens": tokens, "logits": logits });
    if std::env::var_os("APITUNE_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(&committed).unwrap();
        for f in [lora::ADAPTER_CONFIG_FILE, lora::ADAPTER_WEIGHTS_FILE] {
            std::fs::copy(fresh.path().join(f), committed.join(f)).unwrap();
        }
        std::fs::write(
            committed.join("logits.json"),
            serde_json::to_string(&reference).unwrap(),
        )
        .unwrap();
    }
    let read = |dir: &Path| std::fs::read(dir.join(lora::ADAPTER_WEIGHTS_FILE)).unwrap();
    assert!(
        read(fresh.path()) == read(&committed),
        "committed apitune adapter is stale: rerun with APITUNE_WRITE_FIXTURES=1"
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed.join("logits.json")).unwrap())
            .unwrap();
    assert_eq!(stored["base"], reference["base"]);
    assert_eq!(stored["tokens"], reference["tokens"]);
    // The product kernels follow the CPU's vector extensions (AVX-512 or AVX2 here), so logits
    // agree across hosts to the last bits only: 1.07e-6 apart between two such hosts, while the
    // adapter bytes above are identical. A stale fixture is a larger difference.
    let logits = |v: &serde_json::Value| -> Vec<f64> {
        v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (stored, fresh) = (logits(&stored), logits(&reference));
    assert_eq!(stored.len(), fresh.len());
    let worst = stored
        .iter()
        .zip(&fresh)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 1e-5,
        "logits.json is stale ({worst:e} off): rerun with APITUNE_WRITE_FIXTURES=1"
    );
}
