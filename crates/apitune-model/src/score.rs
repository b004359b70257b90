//! Log-likelihood of a target continuation given a prompt (for perplexity and ranking), batched.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::causal_lm::{CausalLm, Model};
use super::error::{ModelError, Result};
use super::layers::ForwardInput;
use super::tokenizer;

/// Natural-log probabilities of each target token given the prompt and the target tokens
/// before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetScore {
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

impl TargetScore {
    /// Negative log-likelihood summed over the target tokens.
    pub fn total_nll(&self) -> f64 {
        -self.logprobs.iter().map(|&l| f64::from(l)).sum::<f64>()
    }

    /// Mean negative log-likelihood per target token (`ln` of perplexity); 0 for no tokens.
    pub fn mean_nll(&self) -> f64 {
        if self.logprobs.is_empty() {
            0.0
        } else {
            self.total_nll() / self.logprobs.len() as f64
        }
    }
}

/// Scores each `(prompt, target)` pair of token ids in one batch. Prompts need at least one
/// token (the first target token is predicted from them); `max_positions` bounds
/// `prompt + target`.
pub fn score_tokens(
    model: &CausalLm,
    pairs: &[(Vec<u32>, Vec<u32>)],
    max_positions: usize,
    device: &Device,
) -> Result<Vec<TargetScore>> {
    for (i, (prompt, target)) in pairs.iter().enumerate() {
        if prompt.is_empty() {
            return Err(ModelError::InvalidInput(format!(
                "pair {i}: the prompt is empty, so the first target token has no context"
            )));
        }
        if prompt.len() + target.len() > max_positions {
            return Err(ModelError::InvalidInput(format!(
                "pair {i}: prompt + target are {} tokens, more than the model's context length {max_positions}",
                prompt.len() + target.len()
            )));
        }
    }
    let Some(longest) = pairs.iter().map(|(p, t)| p.len() + t.len()).max() else {
        return Ok(Vec::new());
    };
    // Right padding: causal attention never lets a real token see the pads after it, and the
    // pads themselves are masked out as keys.
    let mut rows = Vec::with_capacity(pairs.len());
    let mut valid = Vec::with_capacity(pairs.len());
    // Position j predicts token j + 1: only the positions before a target token are projected
    // to the vocabulary.
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (r, (prompt, target)) in pairs.iter().enumerate() {
        let mut row: Vec<u32> = prompt.iter().chain(target).copied().collect();
        let real = row.len();
        row.resize(longest, 0);
        let mut v = vec![true; real];
        v.resize(longest, false);
        positions.extend((0..target.len()).map(|k| (r * longest + prompt.len() - 1 + k) as i64));
        targets.extend(target.iter().map(|&t| i64::from(t)));
        rows.push(row);
        valid.push(v);
    }
    if targets.is_empty() {
        return Ok(pairs
            .iter()
            .map(|_| TargetScore {
                token_ids: Vec::new(),
                logprobs: Vec::new(),
            })
            .collect());
    }
    let input = ForwardInput::new(&rows, &valid, 0, device);
    let hidden = model.forward_hidden(&input, None);
    let nll: Vec<f32> = model
        .target_nll(hidden, positions, targets)
        .try_into_data()
        .map_err(|e| ModelError::Device(format!("computing log-probabilities: {e}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::InvalidInput(format!("reading log-probabilities: {e:?}")))?;
    let mut start = 0;
    Ok(pairs
        .iter()
        .map(|(_, target)| {
            let logprobs = nll[start..start + target.len()]
                .iter()
                .map(|v| -v)
                .collect();
            start += target.len();
            TargetScore {
                token_ids: target.clone(),
                logprobs,
            }
        })
        .collect())
}

/// Tokenizes and scores `(prompt, target)` text pairs. The target is tokenized on its own, so
/// its tokens are the ones a model would generate after the prompt.
pub fn score(model: &Model, pairs: &[(&str, &str)]) -> Result<Vec<TargetScore>> {
    let ids = pairs
        .iter()
        .map(|(p, t)| {
            Ok((
                tokenizer::encode(&model.tokenizer, p)?,
                tokenizer::encode(&model.tokenizer, t)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    score_tokens(
        &model.network,
        &ids,
        model.config.max_positions(),
        &model.device,
    )
}
