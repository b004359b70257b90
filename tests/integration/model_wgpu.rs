//! The tiny checkpoints on wgpu against the same checkpoints on flex: logits, target NLL,
//! greedy tokens (KV cache, batched with left padding). Built with `--features wgpu`; it needs a
//! Vulkan (or Metal) adapter, a software one will do (Debian: `mesa-vulkan-drivers`):
//!
//!     cargo test --release --features wgpu --test model_wgpu
//!
//! Without an adapter the tests say so and pass, unless `APITUNE_REQUIRE_WGPU=1` makes that a
//! failure (for machines that are meant to have one).

use crate::model_support;

use apitune::model::generate::sequence_logits;
use apitune::model::{Backend, GenerationConfig, Model, generate_tokens, score_tokens};
use burn::tensor::Device;
use model_support::*;

/// Both sides compute in f32; the GPU sums in another order (tiled matmul, tree reductions).
const LOGITS_ABS_TOLERANCE: f32 = 1e-4;
const LOSS_REL_TOLERANCE: f64 = 1e-5;

fn wgpu() -> Option<Device> {
    match Backend::Wgpu.device() {
        Ok(device) => Some(device),
        Err(e) if std::env::var_os("APITUNE_REQUIRE_WGPU").is_none() => {
            eprintln!("skipped, no wgpu adapter: {e}");
            None
        }
        Err(e) => panic!("APITUNE_REQUIRE_WGPU is set but {e}"),
    }
}

fn pair(name: &str) -> Option<(Model, Model)> {
    let gpu = wgpu()?;
    let on = |device: &Device| {
        Model::load(&fixture_dir(name), device).unwrap_or_else(|e| panic!("loading {name}: {e}"))
    };
    Some((on(&Device::flex()), on(&gpu)))
}

fn check_logits_and_loss(name: &str) {
    let Some((cpu, gpu)) = pair(name) else { return };
    let reference = reference(name);
    for (i, prompt) in reference.prompts.iter().enumerate() {
        let logits = |m: &Model| -> Vec<f32> {
            sequence_logits(&m.network, &prompt.input_ids, &m.device)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let diff = max_abs_diff(&logits(&gpu), &logits(&cpu));
        assert!(
            diff <= LOGITS_ABS_TOLERANCE,
            "{name} prompt {i}: max |wgpu - flex| logit {diff:e}"
        );
    }
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = reference
        .prompts
        .iter()
        .map(|p| (p.input_ids[..1].to_vec(), p.input_ids[1..].to_vec()))
        .collect();
    let nll =
        |m: &Model| score_tokens(&m.network, &pairs, m.config.max_positions(), &m.device).unwrap();
    for (i, (g, c)) in nll(&gpu).iter().zip(nll(&cpu)).enumerate() {
        let rel = (g.mean_nll() - c.mean_nll()).abs() / c.mean_nll().abs();
        assert!(
            rel <= LOSS_REL_TOLERANCE,
            "{name} prompt {i}: NLL wgpu {} vs flex {} (rel {rel:e})",
            g.mean_nll(),
            c.mean_nll()
        );
    }
}

fn check_greedy(name: &str) {
    let Some((cpu, gpu)) = pair(name) else { return };
    let reference = reference(name);
    let mut config = GenerationConfig::greedy(reference.max_new_tokens);
    config.eos_token_ids = vec![reference.eos_token_id];
    // All prompts in one batch: prompts of different lengths exercise the left padding.
    let prompts: Vec<Vec<u32>> = reference
        .prompts
        .iter()
        .map(|p| p.input_ids.clone())
        .collect();
    let run = |m: &Model| {
        generate_tokens(
            &m.network,
            &prompts,
            &config,
            m.config.max_positions(),
            &m.device,
            &mut |_, _| false,
        )
        .unwrap()
    };
    for (i, (g, c)) in run(&gpu).iter().zip(run(&cpu)).enumerate() {
        assert_eq!(
            g.tokens, c.tokens,
            "{name} prompt {i}: greedy tokens on wgpu vs flex"
        );
        assert_eq!(
            g.tokens, reference.prompts[i].greedy_new_tokens,
            "{name} prompt {i}: greedy tokens on wgpu vs HF"
        );
    }
}

macro_rules! wgpu_tests {
    ($($module:ident => $fixture:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn logits_and_loss_match_flex() { super::check_logits_and_loss($fixture) }
            #[test]
            fn batched_greedy_matches_flex() { super::check_greedy($fixture) }
        }
    )*};
}

wgpu_tests! {
    gpt2 => "gpt2-tiny",
    gpt2_f16 => "gpt2-tiny-f16",
    bigcode_sharded => "bigcode-tiny-sharded",
    qwen2 => "qwen2-tiny",
    qwen2_bf16_tied => "qwen2-tiny-bf16-tied",
}
