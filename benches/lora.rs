//! LoRA training throughput: apitune (burn, flex CPU backend) on a GPT-2-shaped model, and, when
//! `APITUNE_BENCH_PYTHON` names a Python with torch + peft (scripts/requirements-fixtures.txt),
//! PyTorch + PEFT on the same config, batch, sequence length and thread count, side by side.
//!
//!     RAYON_NUM_THREADS=2 APITUNE_BENCH_PYTHON=../venv/bin/python cargo bench --bench lora

use std::time::Instant;

use apitune::model::lora::{self, LoraSettings};
use apitune::model::{CausalLm, ModelConfig};
use apitune::train::{self, Example, Schedule, TrainRun, TrainSettings};
use burn::tensor::Device;
use rand::{Rng, SeedableRng};

const LAYERS: usize = 4;
const EMBD: usize = 256;
const HEADS: usize = 4;
const VOCAB: usize = 4096;
const BATCH: usize = 8;
const SEQ: usize = 256;
const STEPS: u64 = 10;
const WARMUP: u64 = 2;
const R: usize = 16;

fn main() {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| std::thread::available_parallelism().map_or(1, |n| n.get()).to_string());
    let config_json = serde_json::json!({
        "model_type": "gpt2", "vocab_size": VOCAB, "n_positions": 512, "n_embd": EMBD, "n_layer": LAYERS, "n_head": HEADS,
    });
    let config = ModelConfig::from_json(&config_json.to_string(), std::path::Path::new("bench config")).unwrap();
    let device = Device::default().autodiff();
    let settings = LoraSettings { r: R, alpha: 2.0 * R as f64, dropout: 0.0, targets: vec!["c_attn".into(), "c_proj".into(), "c_fc".into()] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let examples: Vec<Example> = (0..BATCH)
        .map(|_| Example { tokens: (0..SEQ).map(|_| rng.random_range(0..VOCAB as u32)).collect(), target_start: SEQ / 4 })
        .collect();
    let run = |steps: u64| {
        let (network, _) = lora::attach(CausalLm::init(&config, &device, 0), &settings, &config, 0).unwrap();
        let train_settings = TrainSettings {
            lr: 1e-4, steps: Some(steps), micro_batch: BATCH, grad_accum: 1, max_len: SEQ, warmup: 0.0,
            schedule: Schedule::Constant, clip: 1.0, checkpoint_every: 0, ..TrainSettings::default()
        };
        let work = tempfile::tempdir().unwrap();
        let start = Instant::now();
        train::train(network, &TrainRun { examples: &examples, settings: &train_settings, seed: 0, device: &device, work_dir: work.path(), progress: &|_, _, _| {} }).unwrap();
        start.elapsed().as_secs_f64()
    };
    // Whole runs with and without the measured steps, so setup and warmup cancel out.
    let base = run(WARMUP);
    let total = run(WARMUP + STEPS);
    let seconds = (total - base).max(1e-9);
    println!(
        "{}",
        serde_json::json!({ "impl": "apitune (burn flex)", "threads": threads, "tokens_per_s": (BATCH * SEQ) as f64 * STEPS as f64 / seconds, "seconds_per_step": seconds / STEPS as f64 })
    );
    if let Some(python) = std::env::var_os("APITUNE_BENCH_PYTHON") {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lora_peft.py");
        let args = [
            ("--threads", threads.clone()), ("--layers", LAYERS.to_string()), ("--embd", EMBD.to_string()), ("--heads", HEADS.to_string()),
            ("--vocab", VOCAB.to_string()), ("--batch", BATCH.to_string()), ("--seq", SEQ.to_string()), ("--steps", STEPS.to_string()),
            ("--warmup", WARMUP.to_string()), ("--r", R.to_string()),
        ];
        let mut cmd = std::process::Command::new(python);
        cmd.arg(script);
        for (k, v) in args {
            cmd.arg(k).arg(v);
        }
        let out = cmd.output().expect("running the PEFT benchmark");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
