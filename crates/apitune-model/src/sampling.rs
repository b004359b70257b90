//! Picking the next token from a row of logits: greedy, or seeded sampling with temperature,
//! top-k and top-p (nucleus) filtering applied in that order, as HF's `generate` does.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sampling {
    /// The most likely token (the lowest id among equals).
    Greedy,
    /// Sample from softmax(logits / temperature), restricted to the `top_k` most likely tokens
    /// and then to the smallest set whose probability reaches `top_p`.
    Random {
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: u64,
    },
}

impl Sampling {
    /// Greedy for temperature 0 (or none), sampling otherwise; checks the ranges.
    pub fn from_options(
        temperature: Option<f32>,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: u64,
    ) -> Result<Self> {
        if let Some(t) = temperature
            && !(t >= 0.0 && t.is_finite())
        {
            return Err(ModelError::InvalidInput(format!(
                "temperature must be >= 0, got {t}"
            )));
        }
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ModelError::InvalidInput(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if top_k == Some(0) {
            return Err(ModelError::InvalidInput("top_k must be at least 1".into()));
        }
        Ok(match temperature {
            None | Some(0.0) => Self::Greedy,
            Some(temperature) => Self::Random {
                temperature,
                top_k,
                top_p,
                seed,
            },
        })
    }
}

/// The per-sequence state of a sampler: its own random stream, so a prompt's continuation does
/// not depend on which other prompts share its batch.
pub struct Sampler {
    sampling: Sampling,
    rng: StdRng,
}

impl Sampler {
    /// The sampler of prompt number `index` in a request; it draws from seed `seed + index`.
    pub fn new(sampling: &Sampling, index: usize) -> Self {
        let seed = match sampling {
            Sampling::Greedy => 0,
            Sampling::Random { seed, .. } => seed.wrapping_add(index as u64),
        };
        Self {
            sampling: sampling.clone(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn next_token(&mut self, logits: &[f32]) -> u32 {
        match &self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
                ..
            } => {
                let candidates = filter(logits, *temperature, *top_k, *top_p);
                let total: f64 = candidates.iter().map(|&(_, p)| p).sum();
                let mut draw = self.rng.random::<f64>() * total;
                for &(id, p) in &candidates {
                    if draw < p {
                        return id;
                    }
                    draw -= p;
                }
                candidates.last().map_or(0, |&(id, _)| id)
            }
        }
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// (token, unnormalised probability) pairs left after temperature, top-k and top-p, most
/// likely first.
fn filter(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
) -> Vec<(u32, f64)> {
    let mut scored: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i as u32, l / temperature))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = top_k {
        scored.truncate(k.max(1));
    }
    let Some(&(_, max)) = scored.first() else {
        return vec![(argmax(logits), 1.0)];
    };
    let mut weighted: Vec<(u32, f64)> = scored
        .into_iter()
        .map(|(id, l)| (id, f64::from(l - max).exp()))
        .collect();
    if let Some(p) = top_p {
        let total: f64 = weighted.iter().map(|&(_, w)| w).sum();
        let mut cumulative = 0.0;
        let mut keep = 0;
        for &(_, w) in &weighted {
            keep += 1;
            cumulative += w / total;
            if cumulative >= f64::from(p) {
                break;
            }
        }
        weighted.truncate(keep.max(1));
    }
    weighted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let sampling = Sampling::from_options(Some(1.0), Some(1), None, 3).unwrap();
        let mut sampler = Sampler::new(&sampling, 0);
        for _ in 0..20 {
            assert_eq!(sampler.next_token(&[0.1, 0.3, 3.0, 0.2]), 2);
        }
    }

    #[test]
    fn top_p_keeps_smallest_set_reaching_p() {
        // probabilities ~ 0.64, 0.24, 0.09, 0.03
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let kept = filter(&logits, 1.0, None, Some(0.8));
        assert_eq!(
            kept.iter().map(|&(id, _)| id).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let kept = filter(&logits, 1.0, None, Some(0.5));
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn same_seed_same_draws_and_distribution_follows_probabilities() {
        let sampling = Sampling::from_options(Some(1.0), None, None, 42).unwrap();
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let draws = |s: &mut Sampler| (0..4000).map(|_| s.next_token(&logits)).collect::<Vec<_>>();
        let a = draws(&mut Sampler::new(&sampling, 0));
        let b = draws(&mut Sampler::new(&sampling, 0));
        assert_eq!(a, b);
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / a.len() as f64;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn invalid_options_are_rejected() {
        assert!(Sampling::from_options(Some(-1.0), None, None, 0).is_err());
        assert!(Sampling::from_options(Some(1.0), None, Some(0.0), 0).is_err());
        assert!(Sampling::from_options(Some(1.0), Some(0), None, 0).is_err());
        assert_eq!(
            Sampling::from_options(Some(0.0), None, None, 0).unwrap(),
            Sampling::Greedy
        );
    }
}
