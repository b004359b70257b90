//! Autoregressive generation for a batch of prompts with a KV cache.
//!
//! Prompts of different lengths are left-padded: pad positions are masked out of attention and
//! every row counts positions from its own first real token, so a prompt continues exactly as it
//! would alone. Rows that finish leave the batch (their cache rows are dropped).

use serde::{Deserialize, Serialize};

use super::causal_lm::{CausalLm, Model};
use super::error::{ModelError, Result};
use super::layers::{ForwardInput, KvCache};
use super::sampling::{Sampler, Sampling};
use super::tokenizer;

use burn::tensor::{Device, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation of a row stops after any of these tokens (it is kept in `tokens`).
    pub eos_token_ids: Vec<u32>,
    /// Generation stops once the decoded continuation contains one of these; the text is cut
    /// before it.
    pub stop_strings: Vec<String>,
}

impl GenerationConfig {
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token.
    Eos,
    /// A stop string appeared in the text.
    StopString,
    /// `max_new_tokens` reached.
    MaxNewTokens,
    /// The model's position limit (context length) reached.
    ContextLength,
}

/// The continuation of one prompt, as token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenGeneration {
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
}

/// The continuation of one prompt, as text and token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub prompt_token_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
}

/// Decides, after each new token of row `prompt_index`, whether that row is done.
pub type StopCheck<'a> = dyn FnMut(usize, &[u32]) -> bool + 'a;

/// Generates continuations of token-id `prompts` (any lengths, at least one token each).
/// `max_positions` is the model's context length. `stop` is asked after every new token whether
/// that row is done (for stop strings); EOS and the token limits are handled here.
pub fn generate_tokens(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    max_positions: usize,
    device: &Device,
    stop: &mut StopCheck,
) -> Result<Vec<TokenGeneration>> {
    check_prompts(prompts, max_positions)?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if config.max_new_tokens == 0 {
        let nothing = TokenGeneration {
            tokens: Vec::new(),
            finish_reason: FinishReason::MaxNewTokens,
        };
        return Ok(vec![nothing; prompts.len()]);
    }
    let mut results: Vec<Option<TokenGeneration>> = vec![None; prompts.len()];
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut samplers: Vec<Sampler> = (0..prompts.len())
        .map(|i| Sampler::new(&config.sampling, i))
        .collect();
    let pad = config.eos_token_ids.first().copied().unwrap_or(0);
    let (mut step_tokens, mut key_valid) = left_padded(prompts, pad);
    // Prompt index of each batch row still generating.
    let mut rows: Vec<usize> = (0..prompts.len()).collect();
    let mut cache = model.new_cache();
    loop {
        let input = ForwardInput::new(&step_tokens, &key_valid, cache.len(), device);
        let (logits, vocab) = next_token_logits(model, &input, &mut cache)?;
        let mut still_running = Vec::with_capacity(rows.len());
        for (batch_row, &prompt_index) in rows.iter().enumerate() {
            let token = samplers[prompt_index]
                .next_token(&logits[batch_row * vocab..(batch_row + 1) * vocab]);
            let tokens = &mut generated[prompt_index];
            tokens.push(token);
            let room = max_positions - prompts[prompt_index].len();
            let finish = finish_reason(config, (prompt_index, tokens), room, stop);
            match finish {
                Some(finish_reason) => {
                    let tokens = std::mem::take(tokens);
                    results[prompt_index] = Some(TokenGeneration {
                        tokens,
                        finish_reason,
                    });
                }
                None => still_running.push(batch_row),
            }
        }
        if still_running.is_empty() {
            break;
        }
        if still_running.len() < rows.len() {
            cache.select_rows(&still_running);
            rows = still_running.iter().map(|&r| rows[r]).collect();
            key_valid = still_running
                .iter()
                .map(|&r| key_valid[r].clone())
                .collect();
        }
        step_tokens = rows
            .iter()
            .map(|&p| vec![*generated[p].last().expect("one token per step")])
            .collect();
        for valid in &mut key_valid {
            valid.push(true);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every row finishes before the loop ends"))
        .collect())
}

/// Whether row `prompt_index`, which has generated `tokens` and has room for `room` tokens in the
/// context, is done, and why.
fn finish_reason(
    config: &GenerationConfig,
    (prompt_index, tokens): (usize, &[u32]),
    room: usize,
    stop: &mut StopCheck,
) -> Option<FinishReason> {
    let token = *tokens.last()?;
    if config.eos_token_ids.contains(&token) {
        Some(FinishReason::Eos)
    } else if stop(prompt_index, tokens) {
        Some(FinishReason::StopString)
    } else if tokens.len() >= config.max_new_tokens {
        Some(FinishReason::MaxNewTokens)
    } else if tokens.len() >= room {
        Some(FinishReason::ContextLength)
    } else {
        None
    }
}

/// Fails on an empty prompt or one longer than the context.
fn check_prompts(prompts: &[Vec<u32>], max_positions: usize) -> Result<()> {
    for (i, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(ModelError::InvalidInput(format!(
                "prompt {i} is empty: nothing to continue"
            )));
        }
        if prompt.len() > max_positions {
            return Err(ModelError::InvalidInput(format!(
                "prompt {i} has {} tokens, more than the model's context length {max_positions}",
                prompt.len()
            )));
        }
    }
    Ok(())
}

/// The prompts left-padded with `pad` to one length, and which key positions are real tokens.
fn left_padded(prompts: &[Vec<u32>], pad: u32) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    prompts
        .iter()
        .map(|prompt| {
            let padding = longest - prompt.len();
            let mut tokens = vec![pad; padding];
            tokens.extend_from_slice(prompt);
            let mut valid = vec![false; padding];
            valid.resize(longest, true);
            (tokens, valid)
        })
        .unzip()
}

/// Runs `input` through the model (extending `cache`) and returns the logits of each row's last
/// position, flat `[rows · vocab]`, with the vocabulary size.
fn next_token_logits(
    model: &CausalLm,
    input: &ForwardInput,
    cache: &mut KvCache,
) -> Result<(Vec<f32>, usize)> {
    let hidden = model.forward_hidden(input, Some(cache));
    let [b, t, d] = hidden.dims();
    let logits = model.logits(hidden.slice([0..b, t - 1..t, 0..d]));
    let vocab = logits.dims()[2];
    let logits: Vec<f32> = logits
        .reshape([b * vocab])
        .try_into_data()
        .map_err(|e| ModelError::Device(format!("computing the next-token logits: {e}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::InvalidInput(format!("reading logits: {e:?}")))?;
    Ok((logits, vocab))
}

/// Tokenizes `prompts`, generates, and decodes; EOS defaults to the model's own.
pub fn generate(
    model: &Model,
    prompts: &[&str],
    config: &GenerationConfig,
) -> Result<Vec<Generation>> {
    let prompt_ids = prompts
        .iter()
        .map(|p| tokenizer::encode(&model.tokenizer, p))
        .collect::<Result<Vec<_>>>()?;
    generate_from_ids(model, prompt_ids, config)
}

/// Generates from already tokenized prompts (e.g. truncated to fit the context) and decodes.
pub fn generate_from_ids(
    model: &Model,
    prompt_ids: Vec<Vec<u32>>,
    config: &GenerationConfig,
) -> Result<Vec<Generation>> {
    let mut config = config.clone();
    if config.eos_token_ids.is_empty() {
        config.eos_token_ids = model.special_tokens.eos_token_id.clone();
    }
    let stop_strings = config.stop_strings.clone();
    let tokenizer = &model.tokenizer;
    let mut stop = |_: usize, tokens: &[u32]| {
        !stop_strings.is_empty()
            && tokenizer::decode(tokenizer, tokens)
                .is_ok_and(|text| stop_strings.iter().any(|s| text.contains(s.as_str())))
    };
    let generations = generate_tokens(
        &model.network,
        &prompt_ids,
        &config,
        model.config.max_positions(),
        &model.device,
        &mut stop,
    )?;
    prompt_ids
        .into_iter()
        .zip(generations)
        .map(|(prompt_token_ids, g)| {
            let mut text = tokenizer::decode(&model.tokenizer, &g.tokens)?;
            if let Some(cut) = stop_strings
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(cut);
            }
            Ok(Generation {
                prompt_token_ids,
                token_ids: g.tokens,
                text,
                finish_reason: g.finish_reason,
            })
        })
        .collect()
}

/// Logits `[T, vocab]` of one unpadded sequence, computed without a cache.
pub fn sequence_logits(model: &CausalLm, tokens: &[u32], device: &Device) -> Tensor<2> {
    let input = ForwardInput::causal(&[tokens.to_vec()], device);
    let logits = model.forward(&input, None);
    let [_, t, v] = logits.dims();
    logits.reshape([t, v])
}
