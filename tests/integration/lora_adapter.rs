//! LoRA on the tiny fixture models: trainable-parameter counts, zero-initialised B, PEFT-format
//! save/load round trips, refusal of a foreign base, training that lowers the loss while the base
//! stays frozen, and merging.

use std::path::{Path, PathBuf};

use apitune::model::lora::{self, LoraSettings};
use apitune::model::{CausalLm, ForwardInput, Model};
use apitune::train::{self, EncodeStats, Example, Overflow, TrainRun, TrainSettings};
use burn::tensor::{Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn logits(network: &CausalLm, tokens: &[u32], device: &Device) -> Vec<f32> {
    let input = ForwardInput::causal(&[tokens.to_vec()], device);
    network
        .forward(&input, None)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn settings(r: usize, targets: &[&str]) -> LoraSettings {
    LoraSettings {
        r,
        alpha: 2.0 * r as f64,
        dropout: 0.0,
        targets: targets.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn trainable_params_are_r_times_in_plus_out_over_targets() {
    let device = Device::flex();
    let gpt2 = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
    // gpt2-tiny: 2 layers, n_embd 64, n_inner 128.
    let (_, n) = lora::attach(
        gpt2.network,
        &settings(4, &["c_attn", "c_proj", "c_fc"]),
        &gpt2.config,
        1,
    )
    .unwrap();
    let per_layer = 4 * ((64 + 192) + (64 + 64) + (64 + 128) + (128 + 64));
    assert_eq!(n, 2 * per_layer as u64);

    let qwen = Model::load(&fixture("qwen2-tiny"), &device.autodiff()).unwrap();
    let (network, n) =
        lora::attach(qwen.network, &LoraSettings::default(), &qwen.config, 1).unwrap();
    // PEFT's default for qwen2 is q_proj, v_proj; the count must agree with the params that train.
    assert_eq!(n, train::params::trainable_count(&network));
    assert!(n > 0);
}

#[test]
fn unknown_targets_are_refused() {
    let device = Device::flex();
    let gpt2 = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
    let err = lora::attach(gpt2.network, &settings(4, &["q_proj"]), &gpt2.config, 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("c_attn"), "{err}");
}

#[test]
fn fresh_adapter_leaves_outputs_unchanged_and_round_trips_through_peft_files() {
    let device = Device::flex();
    let base = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
    let tokens = [5u32, 17, 42, 7, 99];
    let before = logits(&base.network, &tokens, &device);
    let (mut network, _) = lora::attach(
        base.network,
        &settings(4, &["c_attn", "c_fc"]),
        &base.config,
        3,
    )
    .unwrap();
    assert_eq!(
        max_abs_diff(&before, &logits(&network, &tokens, &device)),
        0.0,
        "B starts at zero"
    );

    // Give B values so the adapter changes the outputs, then save and reload.
    for (_, proj) in lora::projections_mut(&mut network) {
        if let Some(path) = proj.lora.as_mut() {
            let dims = path.b.dims();
            path.b =
                burn::module::Param::from_tensor(Tensor::<2>::ones(dims, &device).mul_scalar(0.01));
        }
    }
    let adapted = logits(&network, &tokens, &device);
    assert!(max_abs_diff(&before, &adapted) > 1e-4);
    let dir = tempfile::tempdir().unwrap();
    lora::save_adapter(
        &mut network,
        &settings(4, &["c_attn", "c_fc"]),
        &base.config,
        dir.path(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    let bytes = std::fs::read(dir.path().join("adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let a = file
        .tensor("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")
        .unwrap();
    let b = file
        .tensor("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")
        .unwrap();
    assert_eq!(a.shape(), [4, 64]);
    assert_eq!(b.shape(), [192, 4]);
    assert_eq!(file.names().len(), 2 * 2 * 2);

    let loaded = lora::load_with_adapter(&fixture("gpt2-tiny"), dir.path(), &device).unwrap();
    assert_eq!(
        max_abs_diff(&adapted, &logits(&loaded.network, &tokens, &device)),
        0.0
    );

    // Merged weights give the same outputs without the side path.
    let merged_dir = tempfile::tempdir().unwrap();
    lora::merge(&fixture("gpt2-tiny"), dir.path(), merged_dir.path()).unwrap();
    let merged = Model::load(merged_dir.path(), &device).unwrap();
    assert!(
        merged.unused_tensors.is_empty(),
        "{:?}",
        merged.unused_tensors
    );
    assert!(max_abs_diff(&adapted, &logits(&merged.network, &tokens, &device)) < 1e-4);

    // The adapter does not fit another base.
    let err = lora::load_with_adapter(&fixture("qwen2-tiny"), dir.path(), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("different base model"), "{err}");
}

#[test]
fn training_lowers_the_loss_and_leaves_the_base_frozen() {
    let device = Device::flex().autodiff();
    let base = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
    let eos = base.special_tokens.eos_token_id[0];
    let base_weight = base_weight_values(&base.network);
    let mut stats = EncodeStats::default();
    let examples: Vec<Example> = (0..16)
        .map(|i| {
            let prompt = format!("request {}:", i % 4);
            let target = format!(" curl -X GET https://api.example.com/v{}/items", i % 4);
            train::encode_example(
                &base.tokenizer,
                (&prompt, &target),
                eos,
                (64, Overflow::CutTarget),
                &mut stats,
            )
            .unwrap()
            .unwrap()
        })
        .collect();
    let (network, _) = lora::attach(
        base.network,
        &settings(8, &["c_attn", "c_proj", "c_fc"]),
        &base.config,
        5,
    )
    .unwrap();
    let train_settings = TrainSettings {
        lr: 1e-2,
        steps: Some(30),
        micro_batch: 4,
        grad_accum: 2,
        checkpoint_every: 0,
        ..TrainSettings::default()
    };
    let work = tempfile::tempdir().unwrap();
    let outcome = train::train(
        network,
        &TrainRun {
            examples: &examples,
            settings: &train_settings,
            seed: 1,
            device: &device,
            work_dir: work.path(),
            progress: &|_, _, _| {},
        },
    )
    .unwrap();
    assert_eq!(outcome.steps.len(), 30);
    let first = outcome.steps[0].loss;
    let last = outcome.steps.last().unwrap().loss;
    assert!(last < first * 0.7, "loss {first} -> {last}");
    assert!(outcome.steps.iter().all(|s| s.grad_norm.is_finite()));
    assert_eq!(
        base_weight,
        base_weight_values(&outcome.network),
        "the base must not train"
    );
}

fn base_weight_values(network: &CausalLm) -> Vec<f32> {
    let CausalLm::Gpt2(m) = network else {
        panic!("gpt2 fixture")
    };
    m.transformer.h[0]
        .attn
        .c_attn
        .base
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Dropout acts only while training (autodiff), drops about `p` of the inputs, and its masks are
/// a function of the seed alone, which is what makes resumed runs bit-identical.
#[test]
fn dropout_is_seeded_and_training_only() {
    let device = Device::flex().autodiff();
    let base = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
    let tokens = [5u32, 17, 42, 7, 99, 3, 8, 1];
    let mut with_dropout = settings(4, &["c_attn", "c_fc"]);
    with_dropout.dropout = 0.5;
    let (mut network, _) = lora::attach(base.network, &with_dropout, &base.config, 3).unwrap();
    // A non-zero B, so the side path shows in the output.
    for (_, proj) in lora::projections_mut(&mut network) {
        if let Some(path) = proj.lora.as_mut() {
            path.b = burn::module::Param::from_tensor(
                Tensor::ones(path.b.dims(), &device).mul_scalar(0.05),
            );
        }
    }
    let run = |network: &mut CausalLm, seed: u64| {
        lora::seed_dropout(network, seed);
        logits(network, &tokens, &device)
    };
    let a = run(&mut network, 1);
    assert_eq!(a, run(&mut network, 1), "same seed, same masks");
    let b = run(&mut network, 2);
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "another seed must draw other masks"
    );

    let inference = Device::flex();
    let base = Model::load(&fixture("gpt2-tiny"), &inference).unwrap();
    let (mut network, _) = lora::attach(base.network, &with_dropout, &base.config, 3).unwrap();
    for (_, proj) in lora::projections_mut(&mut network) {
        if let Some(path) = proj.lora.as_mut() {
            path.b = burn::module::Param::from_tensor(
                Tensor::ones(path.b.dims(), &inference).mul_scalar(0.05),
            );
        }
    }
    lora::seed_dropout(&mut network, 1);
    let once = logits(&network, &tokens, &inference);
    lora::seed_dropout(&mut network, 2);
    assert_eq!(
        once,
        logits(&network, &tokens, &inference),
        "no dropout outside training"
    );
}

/// A base stored in bf16 keeps its projections in bf16, computes within bf16 rounding of the f32
/// base, and trains its LoRA factors (the backward pass runs through the bf16-stored base).
#[test]
fn bf16_stored_base_trains_close_to_the_f32_base() {
    let device = Device::flex().autodiff();
    let load = |bf16: bool| {
        let mut base = Model::load(&fixture("gpt2-tiny"), &device).unwrap();
        if bf16 {
            lora::store_base_as(&mut base.network, burn::tensor::DType::BF16);
        }
        let (network, _) = lora::attach(
            base.network,
            &settings(4, &["c_attn", "c_fc"]),
            &base.config,
            3,
        )
        .unwrap();
        (network, base.tokenizer, base.special_tokens.eos_token_id[0])
    };
    let (f32_net, tokenizer, eos) = load(false);
    let (mut bf16_net, _, _) = load(true);
    for (_, proj) in lora::projections_mut(&mut bf16_net) {
        assert_eq!(proj.base.weight.val().dtype(), burn::tensor::DType::BF16);
    }
    let mut stats = EncodeStats::default();
    let examples: Vec<Example> = (0..8)
        .map(|i| {
            train::encode_example(
                &tokenizer,
                (
                    &format!("request {i}:"),
                    " curl https://api.example.com/items",
                ),
                eos,
                (64, Overflow::CutTarget),
                &mut stats,
            )
            .unwrap()
            .unwrap()
        })
        .collect();
    let rows: Vec<&Example> = examples.iter().collect();
    let loss = |n: &CausalLm| {
        train::batch_nll(n, &rows, &device)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap()[0]
    };
    let (a, b) = (loss(&f32_net), loss(&bf16_net));
    assert!((a - b).abs() / a < 1e-2, "f32 base {a} vs bf16 base {b}");
    assert!(a != b, "the bf16 base must actually round");

    let settings = TrainSettings {
        lr: 1e-2,
        steps: Some(10),
        micro_batch: 4,
        checkpoint_every: 0,
        ..TrainSettings::default()
    };
    let work = tempfile::tempdir().unwrap();
    let outcome = train::train(
        bf16_net,
        &TrainRun {
            examples: &examples,
            settings: &settings,
            seed: 1,
            device: &device,
            work_dir: work.path(),
            progress: &|_, _, _| {},
        },
    )
    .unwrap();
    let (first, last) = (outcome.steps[0].loss, outcome.steps.last().unwrap().loss);
    assert!(last < first * 0.8, "loss {first} -> {last}");
}
