//! Confidence intervals by cluster bootstrap.
//!
//! Examples of one API are not independent: they share a host, an auth scheme and a naming
//! style, so a model that learned one API scores well on all of its examples. Resampling examples
//! would then understate the uncertainty. A resample here draws whole APIs with replacement,
//! keeps every example of each draw, and recomputes the corpus metric from those examples (corpus
//! BLEU pools n-gram statistics, so it is recomputed, never averaged). The interval is the
//! percentile interval of the resampled values (numpy's default linear interpolation).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::corpus::{ExampleScores, Scores, aggregate};

/// The metrics that get an interval: the ones a results table and an ablation curve lead with.
pub const HEADLINE: [&str; 9] = [
    "sacrebleu_corpus",
    "sacrebleu_sentence_mean",
    "rouge_l",
    "exact_match",
    "syntax",
    "endpoint_match",
    "api_call_match",
    "call_valid",
    "same_operation",
];

/// The value of a [`HEADLINE`] metric in `scores`; `None` when the metric does not apply (no
/// example checked for syntax, say) or the name is not a headline metric.
pub fn headline_value(scores: &Scores, metric: &str) -> Option<f64> {
    match metric {
        "sacrebleu_corpus" => Some(scores.sacrebleu_corpus),
        "sacrebleu_sentence_mean" => Some(scores.sacrebleu_sentence_mean),
        "rouge_l" => Some(scores.rouge_l),
        "exact_match" => Some(scores.exact_match),
        "syntax" => scores.syntax.rate,
        "endpoint_match" => scores.endpoint_match.rate,
        "api_call_match" => scores.api_call_match.rate,
        "call_valid" => scores.grounded?.call_valid.rate,
        "same_operation" => scores.grounded?.same_operation.rate,
        _ => None,
    }
}

/// A two-sided interval of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The intervals of a set of examples, with what they were computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// Coverage, e.g. 0.95.
    pub confidence: f64,
    pub resamples: usize,
    /// Distinct clusters (APIs) the resamples drew from. With one cluster every resample is the
    /// sample itself and the interval has zero width: it says nothing about uncertainty.
    pub clusters: usize,
    /// Keyed by [`HEADLINE`] metric name.
    pub metrics: BTreeMap<String, Interval>,
}

/// How intervals are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    pub resamples: usize,
    pub confidence: f64,
    /// Seeds the draws: the same seed and clusters give the same resamples, so arms evaluated on
    /// the same held-out set are resampled alike.
    pub seed: u64,
}

impl Bootstrap {
    /// 1,000 resamples, 95%.
    pub fn new(seed: u64) -> Self {
        Self {
            resamples: 1000,
            confidence: 0.95,
            seed,
        }
    }

    /// Intervals of the [`HEADLINE`] metrics over `examples`, `clusters[i]` naming the cluster
    /// (API) of `examples[i]`. `None` without examples.
    pub fn intervals(&self, examples: &[&ExampleScores], clusters: &[&str]) -> Option<Intervals> {
        assert_eq!(examples.len(), clusters.len(), "one cluster per example");
        if examples.is_empty() || self.resamples == 0 {
            return None;
        }
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, c) in clusters.iter().enumerate() {
            members.entry(c).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = members.into_values().collect();
        // Each resample has its own seeded generator, so the draws do not depend on how rayon
        // splits the work.
        let values: Vec<[Option<f64>; HEADLINE.len()]> = (0..self.resamples)
            .into_par_iter()
            .map(|r| {
                let mut rng = StdRng::seed_from_u64(
                    self.seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let mut drawn = Vec::with_capacity(examples.len());
                for _ in 0..groups.len() {
                    let group = &groups[rng.random_range(0..groups.len())];
                    drawn.extend(group.iter().map(|&i| examples[i]));
                }
                let scores = aggregate(&drawn);
                HEADLINE.map(|m| headline_value(&scores, m))
            })
            .collect();
        let alpha = (1.0 - self.confidence) / 2.0;
        let mut metrics = BTreeMap::new();
        for (k, metric) in HEADLINE.iter().enumerate() {
            let mut column: Vec<f64> = values.iter().filter_map(|v| v[k]).collect();
            if column.is_empty() {
                continue;
            }
            column.sort_by(f64::total_cmp);
            metrics.insert(
                metric.to_string(),
                Interval {
                    low: percentile(&column, alpha),
                    high: percentile(&column, 1.0 - alpha),
                },
            );
        }
        Some(Intervals {
            confidence: self.confidence,
            resamples: self.resamples,
            clusters: groups.len(),
            metrics,
        })
    }
}

/// numpy's default (`linear`) percentile of sorted values, `q` in [0, 1].
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * weight
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Example, score_example};

    fn scored(pairs: &[(&str, &str)]) -> Vec<ExampleScores> {
        pairs
            .iter()
            .map(|(p, r)| {
                score_example(&Example {
                    prediction: p,
                    reference: r,
                    lang: "cURL",
                    known_endpoints: None,
                    grounding: None,
                    nll: None,
                })
            })
            .collect()
    }

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) == [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 0.025) - 1.075).abs() < 1e-12);
        assert!((percentile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((percentile(&v, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn one_cluster_gives_a_zero_width_interval_at_the_value() {
        let ex = scored(&[("curl -X GET https://a/x", "curl https://a/x"), ("b", "b")]);
        let refs: Vec<&ExampleScores> = ex.iter().collect();
        let iv = Bootstrap::new(1).intervals(&refs, &["api", "api"]).unwrap();
        assert_eq!(iv.clusters, 1);
        let value = aggregate(&refs).sacrebleu_corpus;
        let bleu = iv.metrics["sacrebleu_corpus"];
        assert_eq!((bleu.low, bleu.high), (value, value));
    }

    #[test]
    fn resampling_by_api_is_wider_than_by_example_when_apis_differ() {
        // Ten APIs, ten examples each: the model gets every example of half the APIs right and
        // every example of the other half wrong. By example the rate looks precise; by API it is
        // a coin flip over ten draws.
        let mut pairs = Vec::new();
        let mut apis = Vec::new();
        let names: Vec<String> = (0..10).map(|a| format!("api{a}")).collect();
        for (a, name) in names.iter().enumerate() {
            for _ in 0..10 {
                pairs.push(if a % 2 == 0 {
                    ("x y", "x y")
                } else {
                    ("p", "q r")
                });
                apis.push(name.as_str());
            }
        }
        let ex = scored(&pairs);
        let refs: Vec<&ExampleScores> = ex.iter().collect();
        let bootstrap = Bootstrap::new(7);
        let by_api = bootstrap.intervals(&refs, &apis).unwrap();
        let ids: Vec<String> = (0..refs.len()).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let by_example = bootstrap.intervals(&refs, &ids).unwrap();
        let width = |iv: &Intervals| {
            let em = iv.metrics["exact_match"];
            assert!(em.low <= 0.5 && 0.5 <= em.high, "{em:?}");
            em.high - em.low
        };
        assert_eq!(by_api.clusters, 10);
        assert!(
            width(&by_api) > 2.0 * width(&by_example),
            "by API {:?} vs by example {:?}",
            by_api.metrics["exact_match"],
            by_example.metrics["exact_match"]
        );
        // Seeded: the same call gives the same interval.
        assert_eq!(bootstrap.intervals(&refs, &apis).unwrap(), by_api);
    }
}
