//! LoRA training throughput: apitune (burn) and, when `APITUNE_BENCH_PYTHON` names a Python with
//! torch + peft (scripts/requirements-fixtures.txt), PyTorch + PEFT on the same model shape, batch,
//! sequence length and thread count, side by side in one run.
//!
//!     RAYON_NUM_THREADS=2 APITUNE_BENCH_PYTHON=../venv/bin/python cargo bench --bench lora
//!     APITUNE_BENCH_SHAPE=qwen2.5-1.5b APITUNE_BENCH_BACKEND=wgpu cargo bench --features wgpu --bench lora
//!
//! `APITUNE_BENCH_SHAPE`: `gpt2-4x256` (default; a CPU-sized GPT-2), `qwen2-4x256` (the same size
//! with Qwen2's blocks) or `qwen2.5-1.5b` (Qwen2.5-1.5B's
//! config with random weights, a GPU-sized run). `APITUNE_BENCH_BACKEND`: cpu | wgpu | cuda; on a
//! GPU backend the PEFT side runs on CUDA, once with an f32 base and once with a bf16 base.
//! `APITUNE_BENCH_STEPS` (default 10) timed steps follow 2 untimed ones; each side reports the
//! median step; `APITUNE_BENCH_RUNS` (default 1) alternates the two sides that many times and ends
//! with a `summary:` line of medians and their ratio. `APITUNE_BENCH_BASE_DTYPE=bf16` stores
//! apitune's frozen base in bf16 (not on wgpu: WGSL has no bf16).

use apitune::model::lora::{self, LoraSettings};
use apitune::model::{Backend, CausalLm, ModelConfig};
use apitune::train::{self, Example, Schedule, TrainRun, TrainSettings};
use rand::{Rng, SeedableRng};

#[path = "support/host.rs"]
mod host;

const BATCH: usize = 8;
const SEQ: usize = 256;
const WARMUP: u64 = 2;
const R: usize = 16;

struct Shape {
    name: &'static str,
    config: serde_json::Value,
    targets: &'static [&'static str],
}

fn shape(name: &str) -> Shape {
    match name {
        "gpt2-4x256" => Shape {
            name: "gpt2-4x256",
            config: serde_json::json!({
                "model_type": "gpt2", "vocab_size": 4096, "n_positions": 512, "n_embd": 256, "n_layer": 4, "n_head": 4,
            }),
            targets: &["c_attn", "c_proj", "c_fc"],
        },
        // The same size with Qwen2's blocks: RMSNorm, RoPE, grouped-query attention, SwiGLU.
        "qwen2-4x256" => Shape {
            name: "qwen2-4x256",
            config: serde_json::json!({
                "model_type": "qwen2", "vocab_size": 4096, "hidden_size": 256, "intermediate_size": 1024,
                "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                "tie_word_embeddings": true, "hidden_act": "silu",
            }),
            targets: &["q_proj", "k_proj", "v_proj", "o_proj"],
        },
        // Qwen2.5-1.5B's config.json (the study's Qwen), random weights.
        "qwen2.5-1.5b" => Shape {
            name: "qwen2.5-1.5b",
            config: serde_json::json!({
                "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "tie_word_embeddings": true, "hidden_act": "silu",
            }),
            targets: &["q_proj", "k_proj", "v_proj", "o_proj"],
        },
        other => {
            panic!("APITUNE_BENCH_SHAPE={other}: expected gpt2-4x256, qwen2-4x256 or qwen2.5-1.5b")
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What one run of either side measures.
struct Settings {
    shape: Shape,
    threads: String,
    backend: Backend,
    steps: u64,
    base_dtype: String,
}

fn main() {
    apitune::tune_allocator();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string()
    });
    println!("{}", host::stamp());
    let python = std::env::var_os("APITUNE_BENCH_PYTHON");
    println!("{}", host::calibration(python.as_deref(), &threads));
    let backend_name = std::env::var("APITUNE_BENCH_BACKEND").unwrap_or_else(|_| "cpu".into());
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let settings = Settings {
        shape: shape(&std::env::var("APITUNE_BENCH_SHAPE").unwrap_or_else(|_| "gpt2-4x256".into())),
        threads,
        backend: backend_name
            .parse::<Backend>()
            .expect("APITUNE_BENCH_BACKEND: cpu, wgpu or cuda"),
        steps: env_u64("APITUNE_BENCH_STEPS", 10),
        base_dtype: std::env::var("APITUNE_BENCH_BASE_DTYPE").unwrap_or_else(|_| "f32".into()),
    };
    // The two sides alternate, so slow drifts of the machine reach both alike.
    let runs = env_u64("APITUNE_BENCH_RUNS", 1).max(1);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(run_apitune(&settings));
        if let Some(python) = &python {
            theirs.push(run_peft(&settings, python));
        }
    }
    if runs > 1 || !theirs.is_empty() {
        print_summary(&settings, &ours, &theirs);
    }
}

/// apitune's LoRA training on random tokens: the median step's tokens/s.
fn run_apitune(settings: &Settings) -> f64 {
    let Settings { shape, backend, .. } = settings;
    let config = ModelConfig::from_json(
        &shape.config.to_string(),
        std::path::Path::new("bench config"),
    )
    .unwrap();
    let vocab = shape
        .config
        .get("vocab_size")
        .and_then(|v| v.as_u64())
        .unwrap() as u32;
    let device = backend.device().expect("apitune backend").autodiff();
    let lora_settings = LoraSettings {
        r: R,
        alpha: 2.0 * R as f64,
        dropout: 0.0,
        targets: shape.targets.iter().map(|t| t.to_string()).collect(),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let examples: Vec<Example> = (0..BATCH)
        .map(|_| Example {
            tokens: (0..SEQ).map(|_| rng.random_range(0..vocab)).collect(),
            target_start: SEQ / 4,
        })
        .collect();
    let mut base = CausalLm::init(&config, &device, 0);
    match settings.base_dtype.as_str() {
        "f32" => {}
        "bf16" => lora::store_base_as(&mut base, burn::tensor::DType::BF16),
        other => panic!("APITUNE_BENCH_BASE_DTYPE={other}: expected f32 or bf16"),
    }
    let (network, _) = lora::attach(base, &lora_settings, &config, 0).unwrap();
    let train_settings = TrainSettings {
        lr: 1e-4,
        steps: Some(WARMUP + settings.steps),
        micro_batch: BATCH,
        grad_accum: 1,
        max_len: SEQ,
        warmup: 0.0,
        schedule: Schedule::Constant,
        clip: 1.0,
        checkpoint_every: 0,
        ..TrainSettings::default()
    };
    let work = tempfile::tempdir().unwrap();
    let outcome = train::train(
        network,
        &TrainRun {
            examples: &examples,
            settings: &train_settings,
            seed: 0,
            device: &device,
            work_dir: work.path(),
            progress: &|_, _, _| {},
        },
    )
    .unwrap();
    // Every step ends by reading its loss back, so per-step times include the device's work.
    let seconds = median(outcome.step_seconds[WARMUP as usize..].to_vec());
    let tokens_per_s = (BATCH * SEQ) as f64 / seconds;
    println!(
        "{}",
        serde_json::json!({
            "impl": format!("apitune (burn {backend})"), "shape": shape.name, "threads": settings.threads, "base_dtype": settings.base_dtype,
            "trainable_params": outcome.trainable_params, "tokens_per_s": tokens_per_s, "seconds_per_step": seconds,
        })
    );
    tokens_per_s
}

/// PyTorch + PEFT on the same shape (`benches/lora_peft.py`): tokens/s per dtype it ran (f32 on
/// the CPU; f32 and bf16 on CUDA). The first is what the summary compares against.
fn run_peft(settings: &Settings, python: &std::ffi::OsStr) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lora_peft.py");
    let (device, dtypes) = if settings.backend == Backend::Cpu {
        ("cpu", &["float32"][..])
    } else {
        ("cuda", &["float32", "bfloat16"][..])
    };
    let mut first = f64::NAN;
    for dtype in dtypes {
        let out = std::process::Command::new(python)
            .arg(script)
            .args([
                "--config",
                &settings.shape.config.to_string(),
                "--targets",
                &settings.shape.targets.join(","),
            ])
            .args([
                "--threads",
                &settings.threads,
                "--batch",
                &BATCH.to_string(),
                "--seq",
                &SEQ.to_string(),
            ])
            .args([
                "--steps",
                &settings.steps.to_string(),
                "--warmup",
                &WARMUP.to_string(),
                "--r",
                &R.to_string(),
            ])
            .args(["--device", device, "--dtype", dtype])
            .output()
            .expect("running the PEFT benchmark");
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let rate = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["tokens_per_s"].as_f64());
        if first.is_nan() {
            first = rate.unwrap_or(f64::NAN);
        }
    }
    first
}

/// `summary: SHAPE, N alternating runs: apitune MEDIAN tok/s, PEFT MEDIAN tok/s, ratio R×`.
fn print_summary(settings: &Settings, ours: &[f64], theirs: &[f64]) {
    let ours_median = median(ours.to_vec());
    let line = if theirs.iter().any(|t| t.is_nan()) || theirs.is_empty() {
        format!("apitune median {ours_median:.0} tok/s")
    } else {
        let theirs_median = median(theirs.to_vec());
        format!(
            "apitune median {ours_median:.0} tok/s, PyTorch + PEFT median {theirs_median:.0} tok/s, ratio {:.2}x",
            ours_median / theirs_median
        )
    };
    println!(
        "summary: {}, {} run(s) alternating: {line}",
        settings.shape.name,
        ours.len()
    );
}
