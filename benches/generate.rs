//! Greedy generation speed (KV cache, batch 1 and 8) of a GPT-2-small-shaped random model:
//! apitune on burn and HF transformers on PyTorch, side by side in one run.
//!
//!     cargo bench --bench generate
//!     APITUNE_BENCH_PYTHON=path/to/venv/bin/python cargo bench --bench generate
//!     APITUNE_BENCH_BACKEND=wgpu cargo bench --features wgpu --bench generate
//!
//! `APITUNE_BENCH_BACKEND` (cpu | wgpu | cuda, default cpu) picks apitune's backend; on a GPU
//! backend the HF side runs on CUDA. `APITUNE_BENCH_BATCHES` (default `1,8`) lists the batch sizes.
//!
//! The HF side is benches/generate_hf.py, run with $APITUNE_BENCH_PYTHON (default `python3`;
//! needs the packages of scripts/requirements-fixtures.txt). Without it only apitune's numbers
//! are printed. Both sides generate exactly the same number of tokens (no EOS stop) from random
//! prompts; each number is the best of `REPEATS` runs, prefill included.

use std::process::Command;
use std::time::Instant;

use apitune::model::gpt2::Gpt2Config;
use apitune::model::{Backend, CausalLm, GenerationConfig, ModelConfig, generate_tokens};
use rand::{Rng, SeedableRng};

#[path = "support/host.rs"]
mod host;

const PROMPT_LEN: usize = 32;
const REPEATS: usize = 2;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    apitune::tune_allocator();
    let new_tokens = env_usize("APITUNE_BENCH_NEW_TOKENS", 64);
    let backend_name = std::env::var("APITUNE_BENCH_BACKEND").unwrap_or_else(|_| "cpu".into());
    let backend = backend_name
        .parse::<Backend>()
        .expect("APITUNE_BENCH_BACKEND: cpu, wgpu or cuda");
    let batches: Vec<usize> = std::env::var("APITUNE_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,8".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .expect("APITUNE_BENCH_BATCHES: comma-separated batch sizes")
        })
        .collect();
    let hf_device = if backend == Backend::Cpu {
        "cpu"
    } else {
        "cuda"
    };
    // The HF side runs first, before this process starts its own thread pool: run after our
    // side in one run, PyTorch measured 2.9 tokens/s at batch 1 against 32 when run alone.
    let hf = run_hf(&batches, new_tokens, hf_device);
    println!("{}", host::stamp());
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string()
    });
    let torch = std::env::var_os("APITUNE_BENCH_PYTHON");
    println!("{}", host::calibration(torch.as_deref(), &threads));

    let ours = run_apitune(backend, &batches, new_tokens);
    print_table(
        &batches,
        &ours,
        hf.as_ref(),
        (backend, hf_device, new_tokens),
    );
}

/// transformers' tokens/s per batch size (`benches/generate_hf.py`), or `None` when it cannot run.
fn run_hf(batches: &[usize], new_tokens: usize, hf_device: &str) -> Option<serde_json::Value> {
    let python = std::env::var("APITUNE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/generate_hf.py");
    let batch_list = batches
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let hf = Command::new(&python)
        .args([
            script,
            "--batches",
            &batch_list,
            "--prompt-len",
            &PROMPT_LEN.to_string(),
            "--device",
            hf_device,
        ])
        .args([
            "--new-tokens",
            &new_tokens.to_string(),
            "--repeats",
            &REPEATS.to_string(),
        ])
        .output();
    match hf {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!(
                "HF side failed ({}): {}",
                python,
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("HF side not run ({python}: {e})");
            None
        }
    }
}

/// apitune's greedy tokens/s per batch size: the best of `REPEATS` runs after a warm-up.
fn run_apitune(backend: Backend, batches: &[usize], new_tokens: usize) -> Vec<f64> {
    let device = backend.device().expect("apitune backend");
    let config = Gpt2Config::new(50257, 1024, 768, 12, 12);
    let model = CausalLm::init(&ModelConfig::Gpt2(config.clone()), &device, 0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let generation = GenerationConfig::greedy(new_tokens);

    let mut ours = Vec::new();
    for &batch in batches {
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..PROMPT_LEN)
                    .map(|_| rng.random_range(0..config.vocab_size as u32))
                    .collect()
            })
            .collect();
        // One untimed warm-up so thread pools and allocations are in place, as for PyTorch.
        let _ = generate_tokens(
            &model,
            &prompts,
            &GenerationConfig::greedy(2),
            1024,
            &device,
            &mut |_, _| false,
        );
        let mut best = f64::INFINITY;
        for _ in 0..REPEATS {
            let start = Instant::now();
            let out = generate_tokens(&model, &prompts, &generation, 1024, &device, &mut |_, _| {
                false
            })
            .expect("generation");
            best = best.min(start.elapsed().as_secs_f64());
            assert!(out.iter().all(|g| g.tokens.len() == new_tokens));
        }
        let rate = (batch * new_tokens) as f64 / best;
        eprintln!("apitune batch {batch}: {best:.2} s, {rate:.1} tokens/s");
        ours.push(rate);
    }
    ours
}

fn print_table(
    batches: &[usize],
    ours: &[f64],
    hf: Option<&serde_json::Value>,
    (backend, hf_device, new_tokens): (Backend, &str, usize),
) {
    println!(
        "GPT-2-small shape (12 layers, d=768, vocab 50257), random weights, greedy, KV cache, \
         prompt {PROMPT_LEN} tokens + {new_tokens} new, best of {REPEATS}, {} CPU threads, apitune on {backend}, HF on {hf_device}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Some(hf) = hf {
        println!(
            "HF transformers: torch {} with {} threads",
            hf["torch"], hf["threads"]
        );
    }
    println!(
        "| batch | apitune (burn {backend}) tokens/s | HF transformers ({hf_device}) tokens/s | apitune / HF |"
    );
    println!("|---:|---:|---:|---:|");
    for (batch, rate) in batches.iter().zip(ours) {
        let theirs = hf.and_then(|hf| hf["results"][batch.to_string()]["tokens_per_s"].as_f64());
        match theirs {
            Some(theirs) => println!(
                "| {batch} | {rate:.1} | {theirs:.1} | {:.2} |",
                rate / theirs
            ),
            None => println!("| {batch} | {rate:.1} | – | – |"),
        }
    }
}
