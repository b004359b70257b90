//! Training examples (prompt + target + EOS, prompt masked out of the loss) and their seeded,
//! length-bucketed order.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokenizers::Tokenizer;

use crate::model::tokenizer::encode;

/// One tokenized training sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    /// Index of the first target token: tokens before it are prompt and carry no loss.
    pub target_start: usize,
}

impl Example {
    /// Number of tokens that carry loss (target tokens, EOS included).
    pub fn target_tokens(&self) -> usize {
        self.tokens.len() - self.target_start
    }
}

/// What encoding a set of texts did besides producing examples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EncodeStats {
    /// Examples cut at `max_len` (they keep their prompt and the start of their target).
    pub truncated: u64,
    /// Examples left out because the prompt alone filled `max_len`, leaving no target token.
    pub dropped: u64,
}

/// How a sequence longer than `max_len` makes room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep the prompt whole and cut the target's end (the study's plain prompts).
    CutTarget,
    /// First drop the prompt's beginning, down to half of `max_len`, then cut the target's end:
    /// a prompt with retrieved examples loses its earliest (least similar) example first and
    /// keeps the actual task, as generation does when it fits a prompt into the context.
    CutPromptStart,
}

/// Tokenizes `prompt` and `target` separately (so the boundary is exact), appends `eos` to the
/// target, and cuts the sequence at `max_len` as `overflow` says. `None` when no target token
/// fits.
pub fn encode_example(
    tokenizer: &Tokenizer,
    (prompt, target): (&str, &str),
    eos: u32,
    (max_len, overflow): (usize, Overflow),
    stats: &mut EncodeStats,
) -> crate::model::error::Result<Option<Example>> {
    let mut tokens = encode(tokenizer, prompt)?;
    let mut target_tokens = encode(tokenizer, target)?;
    target_tokens.push(eos);
    let mut cut = false;
    if overflow == Overflow::CutPromptStart && tokens.len() + target_tokens.len() > max_len {
        let keep = max_len
            .saturating_sub(target_tokens.len())
            .max(max_len / 2)
            .min(tokens.len());
        tokens.drain(..tokens.len() - keep);
        cut = true;
    }
    let target_start = tokens.len();
    tokens.extend(target_tokens);
    if tokens.len() > max_len {
        tokens.truncate(max_len);
        cut = true;
    }
    stats.truncated += u64::from(cut);
    // The first target token is predicted from the last prompt token, so a sequence needs at
    // least one prompt token before its first target token, and one target token.
    if target_start >= tokens.len() || target_start == 0 && tokens.len() < 2 {
        stats.dropped += 1;
        return Ok(None);
    }
    Ok(Some(Example {
        tokens,
        target_start: target_start.max(1),
    }))
}

/// Micro-batches (indices into the examples) of one epoch: a seeded shuffle, then within windows
/// of `micro_batch * BUCKET_WINDOW` examples a sort by length so a batch holds similar lengths,
/// then a seeded shuffle of the batches so lengths do not rise through the epoch.
pub fn epoch_batches(
    lengths: &[usize],
    micro_batch: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    const BUCKET_WINDOW: usize = 32;
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let mut batches = Vec::new();
    for window in order.chunks(micro_batch * BUCKET_WINDOW) {
        let mut window = window.to_vec();
        window.sort_by_key(|&i| (lengths[i], i));
        batches.extend(window.chunks(micro_batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_example_once_and_are_seeded() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 300 + 5).collect();
        let a = epoch_batches(&lengths, 8, 7, 0);
        let b = epoch_batches(&lengths, 8, 7, 0);
        assert_eq!(a, b);
        assert_ne!(a, epoch_batches(&lengths, 8, 7, 1));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn bucketing_keeps_padding_small() {
        let lengths: Vec<usize> = (0..4096).map(|i| (i * 7919) % 500 + 10).collect();
        let batches = epoch_batches(&lengths, 8, 1, 0);
        let padded: usize = batches
            .iter()
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len())
            .sum();
        let real: usize = lengths.iter().sum();
        // Random batches of 8 pad to ~1.6x here; sorted windows of 256 stay within a few percent.
        assert!(
            (padded as f64) < real as f64 * 1.1,
            "padded {padded} vs real {real}"
        );
    }
}
