//! Generation: the KV cache gives what full recomputation gives, a padded batch gives what each
//! prompt gives alone, and the stop conditions hold.

use crate::model_support;

use apitune::model::generate::sequence_logits;
use apitune::model::layers::ForwardInput;
use apitune::model::sampling::argmax;
use apitune::model::{FinishReason, GenerationConfig, Sampling, generate, generate_tokens};
use burn::tensor::Tensor;
use model_support::*;

const ARCHITECTURES: [&str; 3] = ["gpt2-tiny", "bigcode-tiny-sharded", "qwen2-tiny"];

fn prompts(name: &str) -> Vec<Vec<u32>> {
    reference(name)
        .prompts
        .into_iter()
        .map(|p| p.input_ids)
        .collect()
}

fn run(
    model: &apitune::model::Model,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Vec<Vec<u32>> {
    generate_tokens(
        &model.network,
        prompts,
        config,
        model.config.max_positions(),
        &model.device,
        &mut |_, _| false,
    )
    .unwrap()
    .into_iter()
    .map(|g| g.tokens)
    .collect()
}

#[test]
fn kv_cache_generation_equals_full_recomputation() {
    for name in ARCHITECTURES {
        let model = load(name);
        let config = GenerationConfig::greedy(12);
        for prompt in prompts(name) {
            let cached = run(&model, std::slice::from_ref(&prompt), &config).remove(0);
            // Recompute the whole sequence at every step, no cache.
            let mut sequence = prompt.clone();
            let mut recomputed = Vec::new();
            for _ in 0..config.max_new_tokens {
                let logits = sequence_logits(&model.network, &sequence, &model.device);
                let [t, v] = logits.dims();
                let last: Vec<f32> = logits
                    .slice([t - 1..t, 0..v])
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap();
                let token = argmax(&last);
                recomputed.push(token);
                sequence.push(token);
            }
            assert_eq!(cached, recomputed, "{name}");
        }
    }
}

#[test]
fn cached_step_logits_match_uncached_logits() {
    for name in ARCHITECTURES {
        let model = load(name);
        let tokens = prompts(name).remove(0);
        let full: Vec<f32> = sequence_logits(&model.network, &tokens, &model.device)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let vocab = full.len() / tokens.len();
        // Feed the prompt in three chunks through the cache.
        let mut cache = model.network.new_cache();
        let mut stepped = Vec::new();
        for chunk in [&tokens[..5], &tokens[5..6], &tokens[6..]] {
            let past = cache.len();
            let valid = vec![vec![true; past + chunk.len()]];
            let input = ForwardInput::new(&[chunk.to_vec()], &valid, past, &model.device);
            let logits: Vec<f32> = model
                .network
                .forward(&input, Some(&mut cache))
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            stepped.extend(logits);
        }
        assert_eq!(stepped.len(), tokens.len() * vocab);
        let diff = max_abs_diff(&stepped, &full);
        assert!(diff < 1e-4, "{name}: {diff:e}");
    }
}

#[test]
fn left_padded_batch_logits_match_single_sequences() {
    for name in ARCHITECTURES {
        let model = load(name);
        let prompts = prompts(name);
        let longest = prompts.iter().map(Vec::len).max().unwrap();
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                std::iter::repeat_n(0, longest - p.len())
                    .chain(p.iter().copied())
                    .collect()
            })
            .collect();
        let valid: Vec<Vec<bool>> = prompts
            .iter()
            .map(|p| {
                std::iter::repeat_n(false, longest - p.len())
                    .chain(std::iter::repeat_n(true, p.len()))
                    .collect()
            })
            .collect();
        let input = ForwardInput::new(&rows, &valid, 0, &model.device);
        let batch: Tensor<3> = model.network.forward(&input, None);
        let vocab = batch.dims()[2];
        for (b, prompt) in prompts.iter().enumerate() {
            let padded: Vec<f32> = batch
                .clone()
                .slice([b..b + 1, longest - prompt.len()..longest, 0..vocab])
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let alone: Vec<f32> = sequence_logits(&model.network, prompt, &model.device)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let diff = max_abs_diff(&padded, &alone);
            assert!(diff < 1e-4, "{name} row {b}: {diff:e}");
        }
    }
}

#[test]
fn batched_generation_equals_one_by_one() {
    let sampled = Sampling::from_options(Some(0.8), Some(20), Some(0.95), 11).unwrap();
    for name in ARCHITECTURES {
        let model = load(name);
        let prompts = prompts(name);
        for sampling in [Sampling::Greedy, sampled.clone()] {
            let mut config = GenerationConfig::greedy(10);
            config.sampling = sampling.clone();
            let batched = run(&model, &prompts, &config);
            for (i, prompt) in prompts.iter().enumerate() {
                // Prompt i of a batch draws from seed + i; alone, it is prompt 0.
                let mut alone_config = config.clone();
                if let Sampling::Random { seed, .. } = &mut alone_config.sampling {
                    *seed += i as u64;
                }
                let alone = run(&model, std::slice::from_ref(prompt), &alone_config).remove(0);
                assert_eq!(batched[i], alone, "{name} {sampling:?} prompt {i}");
            }
        }
    }
}

#[test]
fn rows_finishing_early_leave_the_others_unchanged() {
    let model = load("qwen2-tiny");
    let prompts = prompts("qwen2-tiny");
    let free = run(&model, &prompts, &GenerationConfig::greedy(10));
    // Make the second prompt's 3rd generated token an EOS: that row stops there.
    let mut config = GenerationConfig::greedy(10);
    config.eos_token_ids = vec![free[1][2]];
    let out = generate_tokens(
        &model.network,
        &prompts,
        &config,
        64,
        &model.device,
        &mut |_, _| false,
    )
    .unwrap();
    let first_eos = free[1].iter().position(|&t| t == free[1][2]).unwrap();
    assert_eq!(out[1].tokens, free[1][..=first_eos]);
    assert_eq!(out[1].finish_reason, FinishReason::Eos);
    for i in [0, 2] {
        let expected: Vec<u32> = match free[i].iter().position(|&t| t == free[1][2]) {
            Some(p) => free[i][..=p].to_vec(),
            None => free[i].clone(),
        };
        assert_eq!(out[i].tokens, expected, "prompt {i}");
    }
}

#[test]
fn sampling_is_reproducible_and_seed_dependent() {
    let model = load("gpt2-tiny");
    let prompts = prompts("gpt2-tiny");
    let config = |seed| GenerationConfig {
        max_new_tokens: 16,
        sampling: Sampling::from_options(Some(1.5), None, None, seed).unwrap(),
        eos_token_ids: Vec::new(),
        stop_strings: Vec::new(),
    };
    let a = run(&model, &prompts, &config(1));
    assert_eq!(a, run(&model, &prompts, &config(1)));
    assert_ne!(a, run(&model, &prompts, &config(2)));
}

#[test]
fn max_new_tokens_and_context_length_bound_generation() {
    let model = load("gpt2-tiny");
    let prompt = prompts("gpt2-tiny").remove(0);
    let out = generate_tokens(
        &model.network,
        std::slice::from_ref(&prompt),
        &GenerationConfig::greedy(5),
        64,
        &model.device,
        &mut |_, _| false,
    )
    .unwrap();
    assert_eq!(out[0].tokens.len(), 5);
    assert_eq!(out[0].finish_reason, FinishReason::MaxNewTokens);

    let limit = prompt.len() + 3;
    let out = generate_tokens(
        &model.network,
        std::slice::from_ref(&prompt),
        &GenerationConfig::greedy(50),
        limit,
        &model.device,
        &mut |_, _| false,
    )
    .unwrap();
    assert_eq!(out[0].tokens.len(), 3);
    assert_eq!(out[0].finish_reason, FinishReason::ContextLength);

    let too_long = vec![1u32; 65];
    let err = generate_tokens(
        &model.network,
        &[too_long],
        &GenerationConfig::greedy(1),
        64,
        &model.device,
        &mut |_, _| false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("context length 64"), "{err}");
}

#[test]
fn stop_strings_end_generation_and_are_cut_from_the_text() {
    let model = load("gpt2-tiny");
    let prompt = "curl --request GET";
    let free = generate(&model, &[prompt], &GenerationConfig::greedy(16))
        .unwrap()
        .remove(0);
    assert!(free.text.chars().count() > 4, "{free:?}");
    // Stop at a piece of text the model produces anyway.
    let stop: String = free.text.chars().skip(2).take(2).collect();
    let mut config = GenerationConfig::greedy(16);
    config.stop_strings = vec![stop.clone()];
    let stopped = generate(&model, &[prompt], &config).unwrap().remove(0);
    assert_eq!(stopped.finish_reason, FinishReason::StopString);
    assert!(!stopped.text.contains(&stop));
    assert!(free.text.starts_with(&stopped.text));
    assert!(stopped.token_ids.len() <= free.token_ids.len());
    assert_eq!(
        stopped.token_ids[..],
        free.token_ids[..stopped.token_ids.len()]
    );
}
