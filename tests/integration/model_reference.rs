//! The three architectures against HF transformers' own outputs on the committed tiny
//! checkpoints (f32, f16 and bf16 weights, single-file and sharded, tied and untied heads,
//! names with and without the `transformer.` prefix).

use crate::model_support;

use apitune::model::generate::sequence_logits;
use apitune::model::{GenerationConfig, score_tokens};
use model_support::*;

/// HF computes in f32 as we do; the only differences are summation orders.
const LOGITS_ABS_TOLERANCE: f32 = 1e-4;
const LOSS_REL_TOLERANCE: f64 = 1e-5;

fn check_logits(name: &str) {
    let model = load(name);
    let reference = reference(name);
    assert_eq!(model.config.model_type(), reference.model_type);
    for (i, prompt) in reference.prompts.iter().enumerate() {
        let ids = apitune::model::tokenizer::encode(&model.tokenizer, &prompt.prompt).unwrap();
        assert_eq!(ids, prompt.input_ids, "{name}: tokenization of prompt {i}");
        let (expected, vocab) = reference_logits(name, i);
        let logits = sequence_logits(&model.network, &ids, &model.device);
        assert_eq!(logits.dims(), [ids.len(), vocab]);
        let actual: Vec<f32> = logits.into_data().try_into_vec::<f32>().unwrap();
        let diff = max_abs_diff(&actual, &expected);
        assert!(
            diff <= LOGITS_ABS_TOLERANCE,
            "{name} prompt {i}: max |logit diff| {diff:e}"
        );
    }
}

fn check_loss(name: &str) {
    let model = load(name);
    let reference = reference(name);
    // HF's loss with labels = input_ids is the mean NLL of tokens 1.. given the ones before.
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = reference
        .prompts
        .iter()
        .map(|p| (p.input_ids[..1].to_vec(), p.input_ids[1..].to_vec()))
        .collect();
    let scores = score_tokens(
        &model.network,
        &pairs,
        model.config.max_positions(),
        &model.device,
    )
    .unwrap();
    for (i, (score, prompt)) in scores.iter().zip(&reference.prompts).enumerate() {
        let rel = (score.mean_nll() - prompt.loss).abs() / prompt.loss.abs();
        assert!(
            rel <= LOSS_REL_TOLERANCE,
            "{name} prompt {i}: loss {} vs HF {} (rel {rel:e})",
            score.mean_nll(),
            prompt.loss
        );
    }
}

fn check_greedy(name: &str) {
    let model = load(name);
    let reference = reference(name);
    let mut config = GenerationConfig::greedy(reference.max_new_tokens);
    config.eos_token_ids = vec![reference.eos_token_id];
    for (i, prompt) in reference.prompts.iter().enumerate() {
        let out = apitune::model::generate_tokens(
            &model.network,
            std::slice::from_ref(&prompt.input_ids),
            &config,
            model.config.max_positions(),
            &model.device,
            &mut |_, _| false,
        )
        .unwrap();
        assert_eq!(
            out[0].tokens, prompt.greedy_new_tokens,
            "{name}: greedy tokens of prompt {i}"
        );
    }
}

macro_rules! reference_tests {
    ($($module:ident => $fixture:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn logits_match_hf() { super::check_logits($fixture) }
            #[test]
            fn loss_matches_hf() { super::check_loss($fixture) }
            #[test]
            fn greedy_tokens_match_hf() { super::check_greedy($fixture) }
        }
    )*};
}

reference_tests! {
    gpt2 => "gpt2-tiny",
    gpt2_f16_unprefixed_names => "gpt2-tiny-f16",
    bigcode_sharded => "bigcode-tiny-sharded",
    qwen2 => "qwen2-tiny",
    qwen2_bf16_tied => "qwen2-tiny-bf16-tied",
}

#[test]
fn every_fixture_uses_every_tensor() {
    for name in FIXTURES {
        let model = load(name);
        assert!(
            model.unused_tensors.is_empty(),
            "{name}: unused {:?}",
            model.unused_tensors
        );
    }
}
