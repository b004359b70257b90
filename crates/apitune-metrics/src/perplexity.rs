//! Corpus perplexity from per-example target-token NLL sums (prompt tokens excluded by the caller).

use serde::{Deserialize, Serialize};

/// One example's summed negative log-likelihood (natural log) over its `n_tokens` target tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenNll {
    pub sum_nll: f64,
    pub n_tokens: u64,
}

/// exp(Σ NLL / Σ tokens): every target token weighs the same, however the corpus is split into
/// examples. `None` when there are no tokens or an NLL is not finite.
pub fn corpus_perplexity(examples: &[TokenNll]) -> Option<f64> {
    let tokens: u64 = examples.iter().map(|e| e.n_tokens).sum();
    let nll: f64 = examples.iter().map(|e| e.sum_nll).sum();
    (tokens > 0 && nll.is_finite()).then(|| (nll / tokens as f64).exp())
}

/// The study's variant for comparison: the mean of per-example perplexities.
pub fn mean_example_perplexity(examples: &[TokenNll]) -> Option<f64> {
    let per: Vec<f64> = examples
        .iter()
        .filter(|e| e.n_tokens > 0)
        .map(|e| (e.sum_nll / e.n_tokens as f64).exp())
        .collect();
    (!per.is_empty() && per.iter().all(|p| p.is_finite()))
        .then(|| per.iter().sum::<f64>() / per.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_weighted_not_example_weighted() {
        let ex = [
            TokenNll {
                sum_nll: 2.0,
                n_tokens: 1,
            },
            TokenNll {
                sum_nll: 0.0,
                n_tokens: 3,
            },
        ];
        assert!((corpus_perplexity(&ex).unwrap() - (0.5f64).exp()).abs() < 1e-15);
        assert!((mean_example_perplexity(&ex).unwrap() - (2f64.exp() + 1.0) / 2.0).abs() < 1e-15);
        assert_eq!(corpus_perplexity(&[]), None);
        assert_eq!(
            corpus_perplexity(&[TokenNll {
                sum_nll: 1.0,
                n_tokens: 0
            }]),
            None
        );
    }
}
