//! ROUGE-L as Google's `rouge-score` 0.1.2 computes it with `RougeScorer(["rougeL"])` (the HF
//! `evaluate` default): lowercase, every run of characters outside `[a-z0-9]` becomes a separator,
//! no stemming; LCS over tokens. HF's aggregate is a bootstrap median; callers report the plain mean.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Precision, recall and F-measure of one pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RougeL {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// `rouge_score.tokenize.tokenize(text, stemmer=None)`.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    normalize(text)
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The text lower-cased with every character outside `[a-z0-9]` replaced by a space, so that
/// its whitespace-separated parts are rouge-score's tokens.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut push = |c: char| {
        out.push(if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            ' '
        })
    };
    for c in text.chars() {
        if c.is_ascii() {
            push(c.to_ascii_lowercase());
        } else {
            // Lowercasing can turn a non-ASCII letter into ASCII (KELVIN SIGN -> 'k',
            // U+0130 -> "i\u{307}").
            c.to_lowercase().for_each(&mut push);
        }
    }
    out
}

/// `RougeScorer(["rougeL"]).score(target, prediction)["rougeL"]`. Note the argument order.
pub fn rouge_l(target: &str, prediction: &str) -> RougeL {
    let (target_text, prediction_text) = (normalize(target), normalize(prediction));
    let target_tokens: Vec<&str> = target_text.split_ascii_whitespace().collect();
    let prediction_tokens: Vec<&str> = prediction_text.split_ascii_whitespace().collect();
    if target_tokens.is_empty() || prediction_tokens.is_empty() {
        return RougeL::default();
    }
    let lcs = lcs_len(&target_tokens, &prediction_tokens);
    let precision = lcs as f64 / prediction_tokens.len() as f64;
    let recall = lcs as f64 / target_tokens.len() as f64;
    let fmeasure = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeL {
        precision,
        recall,
        fmeasure,
    }
}

/// Length of the longest common subsequence of two token lists, by the bit-parallel algorithm of
/// Allison–Dix / Hyyrö: O(|a|·|b|/64) instead of rouge-score's O(|a|·|b|) table.
pub fn lcs_len<T: AsRef<str>>(a: &[T], b: &[T]) -> usize {
    let (rows, cols) = if a.len() >= b.len() { (b, a) } else { (a, b) };
    // Bits index the longer sequence (`cols`); iterate over the shorter one.
    let mut ids: FxHashMap<&str, usize> = FxHashMap::default();
    for t in cols {
        let next = ids.len();
        ids.entry(t.as_ref()).or_insert(next);
    }
    let words = cols.len().div_ceil(64);
    let mut masks = vec![0u64; ids.len() * words];
    for (j, t) in cols.iter().enumerate() {
        let id = ids[t.as_ref()];
        masks[id * words + j / 64] |= 1 << (j % 64);
    }
    let mut v = vec![u64::MAX; words];
    let zero = vec![0u64; words];
    for t in rows {
        let m = match ids.get(t.as_ref()) {
            Some(&id) => &masks[id * words..(id + 1) * words],
            None => &zero[..],
        };
        let mut carry = 0u64;
        let mut borrow = 0u64;
        for w in 0..words {
            let u = v[w] & m[w];
            let (sum1, c1) = v[w].overflowing_add(u);
            let (sum, c2) = sum1.overflowing_add(carry);
            carry = u64::from(c1 || c2);
            let (diff1, b1) = v[w].overflowing_sub(u);
            let (diff, b2) = diff1.overflowing_sub(borrow);
            borrow = u64::from(b1 || b2);
            v[w] = sum | diff;
        }
    }
    let ones: usize = v.iter().map(|w| w.count_zeros() as usize).sum();
    // Bits beyond cols.len() in the last word stay set (never in any mask), so they never count.
    ones
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp_lcs(a: &[&str], b: &[&str]) -> usize {
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                t[i][j] = if a[i - 1] == b[j - 1] {
                    t[i - 1][j - 1] + 1
                } else {
                    t[i - 1][j].max(t[i][j - 1])
                };
            }
        }
        t[a.len()][b.len()]
    }

    #[test]
    fn tokenizer_matches_rouge_score() {
        assert_eq!(
            rouge_tokens("Hello, World! it's 3.14 Ünïcode"),
            ["hello", "world", "it", "s", "3", "14", "n", "code"]
        );
        assert_eq!(rouge_tokens("\u{212a}elvin"), ["kelvin"]);
    }

    #[test]
    fn bit_parallel_lcs_agrees_with_the_table() {
        let vocab = ["a", "b", "c", "d", "e"];
        let mut seed = 12345u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let la = (next() % 150) as usize;
            let lb = (next() % 150) as usize;
            let a: Vec<&str> = (0..la).map(|_| vocab[(next() % 5) as usize]).collect();
            let b: Vec<&str> = (0..lb).map(|_| vocab[(next() % 5) as usize]).collect();
            assert_eq!(lcs_len(&a, &b), dp_lcs(&a, &b), "{a:?} / {b:?}");
        }
    }

    #[test]
    fn empty_side_scores_zero() {
        assert_eq!(rouge_l("", "abc").fmeasure, 0.0);
        assert_eq!(rouge_l("!!!", "abc").fmeasure, 0.0);
    }
}
