//! BLEU as sacreBLEU 2.x computes it (`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp`), and as Hugging
//! Face `evaluate`'s `bleu` computes it (TensorFlow NMT's script: no smoothing, 0..1 scale).
//!
//! Both reduce a corpus to the same sufficient statistics (clipped n-gram matches and n-gram totals
//! for n = 1..4, hypothesis and reference lengths); with one reference per hypothesis, sacreBLEU's
//! "closest" and HF's "shortest" reference length coincide. They differ in that sacreBLEU
//! `rstrip()`s both sides before tokenizing, and in how the statistics become a score.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::pysum::{python_rstrip, python_split, python_sum};
use super::tokenize_13a::tokenize_13a_spaced;

/// Highest n-gram order, as in both reference implementations.
pub const MAX_ORDER: usize = 4;

/// BLEU's sufficient statistics for one segment or a whole corpus (sums of segments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BleuStats {
    pub hyp_len: u64,
    pub ref_len: u64,
    /// Clipped n-gram matches, index n-1.
    pub correct: [u64; MAX_ORDER],
    /// Hypothesis n-gram counts, index n-1.
    pub total: [u64; MAX_ORDER],
}

impl std::ops::AddAssign for BleuStats {
    fn add_assign(&mut self, o: Self) {
        self.hyp_len += o.hyp_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

/// Which tool's preprocessing to apply before the 13a tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// sacreBLEU: `rstrip()` hypothesis and reference.
    SacreBleu,
    /// HF `evaluate`: tokenize the raw strings.
    HfEvaluate,
}

/// sacreBLEU's and HF's statistics of one pair. Without trailing whitespace on either side the
/// two preprocessings tokenize identically, so the pair is only counted once.
pub fn segment_stats_both(hypothesis: &str, reference: &str) -> (BleuStats, BleuStats) {
    let sacre = segment_stats(hypothesis, reference, Preprocess::SacreBleu);
    let unchanged = python_rstrip(hypothesis).len() == hypothesis.len()
        && python_rstrip(reference).len() == reference.len();
    let hf = if unchanged {
        sacre
    } else {
        segment_stats(hypothesis, reference, Preprocess::HfEvaluate)
    };
    (sacre, hf)
}

/// Statistics of one (hypothesis, reference) pair.
pub fn segment_stats(hypothesis: &str, reference: &str, preprocess: Preprocess) -> BleuStats {
    let (hyp, reference) = match preprocess {
        Preprocess::SacreBleu => (python_rstrip(hypothesis), python_rstrip(reference)),
        Preprocess::HfEvaluate => (hypothesis, reference),
    };
    let mut hyp_buf = String::new();
    let mut ref_buf = String::new();
    let hyp_text = tokenize_13a_spaced(hyp, &mut hyp_buf);
    let ref_text = tokenize_13a_spaced(reference, &mut ref_buf);

    // Tokens are interned to small ids so an n-gram is one integer key (ids start at 1, so
    // zero padding keeps n-grams of different orders distinct).
    let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
    let mut intern = |t| {
        let next = ids.len() as u32 + 1;
        *ids.entry(t).or_insert(next)
    };
    let hyp_ids: Vec<u32> = python_split(hyp_text).map(&mut intern).collect();
    let ref_ids: Vec<u32> = python_split(ref_text).map(&mut intern).collect();

    let mut counts: FxHashMap<u128, (u32, u32)> = FxHashMap::default();
    counts.reserve(hyp_ids.len() * MAX_ORDER);
    for_each_ngram(&ref_ids, |key| counts.entry(key).or_default().1 += 1);
    let mut stats = BleuStats {
        hyp_len: hyp_ids.len() as u64,
        ref_len: ref_ids.len() as u64,
        ..Default::default()
    };
    for_each_ngram(&hyp_ids, |key| counts.entry(key).or_default().0 += 1);
    for (key, (in_hyp, in_ref)) in counts {
        if in_hyp > 0 {
            let order = ngram_order(key);
            stats.total[order - 1] += u64::from(in_hyp);
            stats.correct[order - 1] += u64::from(in_hyp.min(in_ref));
        }
    }
    stats
}

fn for_each_ngram(ids: &[u32], mut f: impl FnMut(u128)) {
    for start in 0..ids.len() {
        let mut key: u128 = 0;
        for (k, &id) in ids[start..].iter().take(MAX_ORDER).enumerate() {
            key |= u128::from(id) << (32 * k);
            f(key);
        }
    }
}

fn ngram_order(key: u128) -> usize {
    (0..MAX_ORDER)
        .rev()
        .find(|k| (key >> (32 * k)) as u32 != 0)
        .map_or(0, |k| k + 1)
}

/// sacreBLEU's `my_log`: log, with -9999999999 for a zero precision.
fn sacrebleu_log(p: f64) -> f64 {
    if p == 0.0 { -9_999_999_999.0 } else { p.ln() }
}

/// `BLEU.compute_bleu(..., smooth_method='exp', effective_order)`: the score on the 0..100 scale.
pub fn sacrebleu_from_stats(stats: &BleuStats, effective_order: bool) -> f64 {
    let mut bp = 1.0;
    if stats.hyp_len < stats.ref_len {
        bp = if stats.hyp_len > 0 {
            (1.0 - stats.ref_len as f64 / stats.hyp_len as f64).exp()
        } else {
            0.0
        };
    }
    if stats.correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = MAX_ORDER;
    for n in 1..=MAX_ORDER {
        let (correct, total) = (stats.correct[n - 1], stats.total[n - 1]);
        if total == 0 {
            break;
        }
        if effective_order {
            eff_order = n;
        }
        precisions[n - 1] = if correct == 0 {
            smooth_mteval *= 2.0;
            100.0 / (smooth_mteval * total as f64)
        } else {
            100.0 * correct as f64 / total as f64
        };
    }
    let log_sum = python_sum(precisions[..eff_order].iter().map(|&p| sacrebleu_log(p)));
    bp * (log_sum / eff_order as f64).exp()
}

/// HF `evaluate` bleu (`nmt_bleu.compute_bleu`, `smooth=False`): the score on the 0..1 scale.
pub fn hf_bleu_from_stats(stats: &BleuStats) -> f64 {
    let precisions: [f64; MAX_ORDER] = std::array::from_fn(|i| {
        if stats.total[i] > 0 {
            stats.correct[i] as f64 / stats.total[i] as f64
        } else {
            0.0
        }
    });
    let geo_mean = if precisions.iter().all(|&p| p > 0.0) {
        python_sum(
            precisions
                .iter()
                .map(|&p| (1.0 / MAX_ORDER as f64) * p.ln()),
        )
        .exp()
    } else {
        0.0
    };
    let bp = if stats.ref_len == 0 || stats.hyp_len == 0 {
        0.0
    } else {
        let ratio = stats.hyp_len as f64 / stats.ref_len as f64;
        if ratio > 1.0 {
            1.0
        } else {
            (1.0 - 1.0 / ratio).exp()
        }
    };
    geo_mean * bp
}

/// `sacrebleu.corpus_bleu(hyps, [refs]).score`.
pub fn sacrebleu_corpus<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let mut total = BleuStats::default();
    for (h, r) in pairs {
        total += segment_stats(h, r, Preprocess::SacreBleu);
    }
    sacrebleu_from_stats(&total, false)
}

/// `sacrebleu.sentence_bleu(hyp, [ref]).score` (its default `use_effective_order=True`).
pub fn sacrebleu_sentence(hypothesis: &str, reference: &str) -> f64 {
    sacrebleu_from_stats(
        &segment_stats(hypothesis, reference, Preprocess::SacreBleu),
        true,
    )
}

/// `evaluate.load("bleu").compute(predictions=hyps, references=refs)["bleu"]`.
pub fn hf_bleu_corpus<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let mut total = BleuStats::default();
    for (h, r) in pairs {
        total += segment_stats(h, r, Preprocess::HfEvaluate);
    }
    hf_bleu_from_stats(&total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_long_sentence_is_100() {
        let s = "curl --request GET --url https://api.example.com/v1/pets";
        // exp(ln(100)) rounds up in the last bit; sacreBLEU reports the same 100.00000000000004.
        assert_eq!(sacrebleu_sentence(s, s), 100.00000000000004);
        assert_eq!(hf_bleu_corpus([(s, s)]), 1.0);
    }

    #[test]
    fn short_hypothesis_scores_zero_in_corpus_mode_only() {
        let stats = segment_stats("a b", "a b", Preprocess::SacreBleu);
        assert_eq!(stats.total, [2, 1, 0, 0]);
        assert_eq!(sacrebleu_from_stats(&stats, false), 0.0);
        assert_eq!(sacrebleu_from_stats(&stats, true), 100.00000000000004);
    }

    #[test]
    fn clipping_counts_reference_occurrences() {
        let stats = segment_stats("the the the", "the cat", Preprocess::SacreBleu);
        assert_eq!(stats.correct[0], 1);
        assert_eq!(stats.total[0], 3);
    }
}
