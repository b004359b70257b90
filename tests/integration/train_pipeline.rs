//! `pretrain` and `lora-train` through the `apitune` binary on the bundled corpus: artifacts with
//! the documented files, and a run killed with SIGKILL mid-training that resumes from its
//! checkpoint and ends with the same adapter bytes as an uninterrupted run.

use crate::common;

use std::time::{Duration, Instant};

use common::{Project, statuses};

fn manifest(lora_steps: u32) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let specs = format!("{root}/experiments/data/specs");
    format!(
        r#"
[experiment]
name = "train-test"
seed = 3
inputs_outside = ["{root}"]

[models.tiny]
arch = "gpt2"
init = "random"
config = {{ n_layer = 1, n_embd = 32, n_head = 2, n_positions = 256 }}
tokenizer = {{ train_bpe = {{ vocab_size = 400 }} }}

[stages.ingest]
kind = "ingest"
source = {{ openapi = "{specs}" }}

[stages.split]
kind = "normalize"
needs = ["ingest"]
heldout = {{ level1 = 2, level2 = 2, level3 = 2 }}

[stages.pretrain]
kind = "pretrain"
needs = ["split"]
model = "tiny"
samples = 40
train = {{ lr = 3e-3, steps = 4, micro_batch = 4, max_len = 256, weight_decay = 0.01 }}

[stages.lora]
kind = "lora-train"
needs = ["split", "pretrain"]
samples = 16
lora = {{ r = 4, alpha = 8, dropout = 0.1, targets = ["c_attn", "c_fc"] }}
base_dtype = "bf16"
train = {{ lr = 1e-2, steps = {lora_steps}, micro_batch = 2, grad_accum = 2, max_len = 256, warmup = 1, checkpoint_every = 1 }}
"#
    )
}

#[test]
fn pretrain_and_lora_train_write_their_artifacts() {
    let p = Project::new();
    let m = p.write("m.toml", &manifest(3));
    let run = p.run(&["run", m.to_str().unwrap(), "--format", "json"]);
    let json = run.expect_code(0).json();
    let s = statuses(&json);
    assert!(
        s.contains(&("pretrain".into(), "ran".into()))
            && s.contains(&("lora".into(), "ran".into())),
        "{s:?}"
    );

    let pretrained = p.artifact_with("model.safetensors");
    for f in [
        "config.json",
        "tokenizer.json",
        "summary.json",
        "metrics.jsonl",
    ] {
        assert!(pretrained.join(f).is_file(), "pretrain artifact lacks {f}");
    }
    let model = apitune::model::Model::load(&pretrained, &burn::tensor::Device::flex()).unwrap();
    assert!(
        model.unused_tensors.is_empty(),
        "{:?}",
        model.unused_tensors
    );

    let adapter = p.artifact_with("adapter_model.safetensors");
    let steps = apitune::artifacts::load_train_steps(&adapter).unwrap();
    assert_eq!(steps.len(), 3);
    let summary = apitune::artifacts::TrainSummary::load(&adapter).unwrap();
    assert_eq!(summary.samples, Some(16));
    assert_eq!(summary.model, "tiny");
    // r * (in + out): c_attn 32 -> 96, c_fc 32 -> 128.
    assert_eq!(summary.trainable_params, 4 * (32 + 96) + 4 * (32 + 128));
    let base = apitune::artifacts::BaseRef::load(&adapter).unwrap();
    assert_eq!(base.model, "tiny");
    assert!(base.pretrain_key.is_some());
    apitune::model::lora::load_with_adapter(&pretrained, &adapter, &burn::tensor::Device::flex())
        .unwrap();
}

#[test]
fn killed_training_resumes_to_the_same_adapter() {
    let steps = 12;
    let reference = Project::new();
    let m = reference.write("m.toml", &manifest(steps));
    reference.run(&["run", m.to_str().unwrap()]).expect_code(0);
    let expected = std::fs::read(
        reference
            .artifact_with("adapter_model.safetensors")
            .join("adapter_model.safetensors"),
    )
    .unwrap();

    let p = Project::new();
    let m = p.write("m.toml", &manifest(steps));
    let mut child = p
        .command(&["run", m.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the LoRA run has checkpointed a few steps, before it finishes.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let states = common::find_file(&p.path().join("cache"), "state.json");
        // Only a published checkpoint counts: `checkpoint.saving/` may hold a step not yet kept.
        let past_step_3 = states.iter().any(|s| {
            s.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("checkpoint"))
                && std::fs::read_to_string(s)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|n| n >= 3)
        });
        let lora_dir_has_adapter =
            !common::find_file(&p.path().join("cache"), "adapter_model.safetensors").is_empty();
        if past_step_3 || lora_dir_has_adapter || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "training never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_midway = child.try_wait().unwrap().is_none()
        && common::find_file(&p.path().join("cache"), "adapter_model.safetensors").is_empty();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed_midway,
        "the run finished before it could be killed; raise the step count"
    );

    let rerun = p.run(&["run", m.to_str().unwrap(), "--format", "json"]);
    let json = rerun.expect_code(0).json();
    let lora = json["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == "lora")
        .expect("lora arm");
    assert!(
        lora["summary"]["resumed_from_step"].as_u64().unwrap() >= 3,
        "{lora}"
    );
    let resumed = std::fs::read(
        p.artifact_with("adapter_model.safetensors")
            .join("adapter_model.safetensors"),
    )
    .unwrap();
    assert!(
        resumed == expected,
        "resumed adapter differs from the uninterrupted one"
    );
}

#[test]
fn identical_runs_into_two_fresh_caches_share_every_key() {
    // Timings (seconds, tokens/s) are run facts kept outside the artifacts' digests, so the same
    // work gives the same bytes and the same keys all the way down to the report.
    let p = Project::new();
    let tail = r#"
[stages.eval]
kind = "eval"
needs = ["split", "lora", "pretrain"]
limit = 2
decoding = { max_new_tokens = 8 }

[stages.report]
kind = "report"
needs = ["eval", "lora"]
"#;
    let m = p.write("m.toml", &format!("{}{tail}", manifest(2)));
    let keys = |cache: &str| {
        let mut cmd = p.command(&["run", m.to_str().unwrap(), "--format", "json"]);
        cmd.arg("--cache").arg(p.path().join(cache));
        let out = common::Run(cmd.output().unwrap());
        let json = out.expect_code(0).json();
        let arms = json["arms"].as_array().unwrap().clone();
        arms.iter()
            .map(|a| {
                (
                    a["arm"].as_str().unwrap().to_string(),
                    a["key"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (one, two) = (keys("one"), keys("two"));
    assert_eq!(one.len(), 6, "{one:?}");
    assert_eq!(one, two);
}
