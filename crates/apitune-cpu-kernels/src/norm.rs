//! Row normalisation, forward and backward in one pass each: LayerNorm (`centered`, HF GPT-2's
//! `ln_*`) and RMSNorm (Qwen2's). Composed from tensor ops, each is about six passes forward and
//! a dozen backward.
//!
//! Statistics are taken in f32, two-pass (mean, then the mean square of the centred values), and
//! the row is scaled by `1/√(var + ε)` as PyTorch does. The γ and β gradients are summed per
//! fixed block of rows and the blocks added in order, so they do not depend on the thread count.

use rayon::prelude::*;

use super::{dot, rows_per_task, sum};

/// Which normalisation: LayerNorm subtracts the row mean, RMSNorm does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Layer,
    Rms,
}

/// `out = x̂ ⊙ γ (+ β)` per row of `width`, `x̂` the row normalised.
pub fn norm_rows(
    norm: Norm,
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    epsilon: f32,
    out: &mut [f32],
) {
    let width = gamma.len();
    assert!(width > 0 && x.len() == out.len() && x.len().is_multiple_of(width));
    assert!(beta.is_none_or(|b| b.len() == width));
    let chunk = rows_per_task(width) * width;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(out, x)| forward_block(norm, x, gamma, beta, epsilon, out));
}

widest_simd!(forward_block => forward_body(norm: Norm, x: &[f32], gamma: &[f32], beta: Option<&[f32]>, epsilon: f32, out: &mut [f32]));

#[inline(always)]
fn forward_body(
    norm: Norm,
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    epsilon: f32,
    out: &mut [f32],
) {
    let width = gamma.len();
    for (out, row) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
        let (mean, rstd) = statistics(norm, row, epsilon);
        for ((o, &v), &g) in out.iter_mut().zip(row).zip(gamma) {
            *o = (v - mean) * rstd * g;
        }
        if let Some(beta) = beta {
            out.iter_mut().zip(beta).for_each(|(o, &b)| *o += b);
        }
    }
}

/// The gradients through [`norm_rows`]: `dx` into `dx`, and γ's and β's (summed over the rows)
/// returned as `(dgamma, dbeta)`.
pub fn norm_rows_backward(
    norm: Norm,
    x: &[f32],
    gamma: &[f32],
    grad: &[f32],
    epsilon: f32,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let width = gamma.len();
    assert!(width > 0 && x.len() == dx.len() && x.len() == grad.len());
    assert!(x.len().is_multiple_of(width));
    let chunk = rows_per_task(width) * width;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(grad.par_chunks(chunk)))
        .map(|(dx, (x, grad))| backward_block(norm, x, gamma, grad, epsilon, dx))
        .collect();
    let mut dgamma = vec![0.0f32; width];
    let mut dbeta = vec![0.0f32; width];
    for (block_gamma, block_beta) in partials {
        dgamma
            .iter_mut()
            .zip(block_gamma)
            .for_each(|(s, v)| *s += v);
        dbeta.iter_mut().zip(block_beta).for_each(|(s, v)| *s += v);
    }
    (dgamma, dbeta)
}

widest_simd!(backward_block => backward_body(norm: Norm, x: &[f32], gamma: &[f32], grad: &[f32], epsilon: f32, dx: &mut [f32]) -> (Vec<f32>, Vec<f32>));

#[inline(always)]
fn backward_body(
    norm: Norm,
    x: &[f32],
    gamma: &[f32],
    grad: &[f32],
    epsilon: f32,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let width = gamma.len();
    let mut dgamma = vec![0.0f32; width];
    let mut dbeta = vec![0.0f32; width];
    let mut scaled = vec![0.0f32; width];
    let mut normalised = vec![0.0f32; width];
    let rows = dx
        .chunks_exact_mut(width)
        .zip(x.chunks_exact(width).zip(grad.chunks_exact(width)));
    for (dx, (row, dy)) in rows {
        let (mean, rstd) = statistics(norm, row, epsilon);
        for i in 0..width {
            normalised[i] = (row[i] - mean) * rstd;
            scaled[i] = dy[i] * gamma[i];
            dgamma[i] += dy[i] * normalised[i];
            dbeta[i] += dy[i];
        }
        let n = width as f32;
        let mean_scaled = match norm {
            Norm::Layer => sum(&scaled) / n,
            Norm::Rms => 0.0,
        };
        let mean_projection = dot(&scaled, &normalised) / n;
        for i in 0..width {
            dx[i] = rstd * (scaled[i] - mean_scaled - normalised[i] * mean_projection);
        }
    }
    (dgamma, dbeta)
}

/// The row's mean (0 for RMSNorm) and `1/√(var + ε)`, var the mean square about it.
#[inline(always)]
fn statistics(norm: Norm, row: &[f32], epsilon: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = match norm {
        Norm::Layer => sum(row) / n,
        Norm::Rms => 0.0,
    };
    let mut lanes = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += (v - mean) * (v - mean);
        }
    }
    let var = (lanes.iter().sum::<f32>() + tail) / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values;

    /// The normalised rows in f64, straight from the definition.
    fn reference(norm: Norm, x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f64> {
        let width = gamma.len();
        x.chunks(width)
            .flat_map(|row| {
                let n = width as f64;
                let mean = match norm {
                    Norm::Layer => row.iter().map(|&v| v as f64).sum::<f64>() / n,
                    Norm::Rms => 0.0,
                };
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                let rstd = 1.0 / (var + eps).sqrt();
                row.iter()
                    .enumerate()
                    .map(move |(i, &v)| (v as f64 - mean) * rstd * gamma[i] as f64 + beta[i] as f64)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn both_norms_match_their_definition() {
        let width = 37;
        let (x, gamma, beta) = (
            test_values(5 * width, 1, -2.0, 2.0),
            test_values(width, 2, -2.0, 2.0),
            test_values(width, 3, -2.0, 2.0),
        );
        for norm in [Norm::Layer, Norm::Rms] {
            let mut out = vec![0.0; x.len()];
            norm_rows(norm, &x, &gamma, Some(&beta), 1e-5, &mut out);
            for (o, e) in out.iter().zip(reference(norm, &x, &gamma, &beta, 1e-5)) {
                assert!(
                    (*o as f64 - e).abs() < 1e-5 * (1.0 + e.abs()),
                    "{norm:?}: {o} vs {e}"
                );
            }
        }
    }

    /// Each gradient against a central difference of `Σ dy ⊙ norm(x)` in f64.
    #[test]
    fn gradients_match_finite_differences() {
        let width = 11;
        let rows = 3;
        let (x, gamma, dy) = (
            test_values(rows * width, 4, -2.0, 2.0),
            test_values(width, 5, -2.0, 2.0),
            test_values(rows * width, 6, -2.0, 2.0),
        );
        let zeros = vec![0.0f32; width];
        for norm in [Norm::Layer, Norm::Rms] {
            let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                let y = reference(norm, x, gamma, beta, 1e-5);
                y.iter().zip(&dy).map(|(y, &d)| y * d as f64).sum()
            };
            let mut dx = vec![0.0; x.len()];
            let (dgamma, dbeta) = norm_rows_backward(norm, &x, &gamma, &dy, 1e-5, &mut dx);
            let h = 1e-3f32;
            let numeric = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
            for i in [0, 7, 20, 32] {
                let nudged = |d: f32| {
                    let mut x = x.clone();
                    x[i] += d;
                    loss(&x, &gamma, &zeros)
                };
                let expected = numeric(&nudged);
                assert!(
                    (dx[i] as f64 - expected).abs() < 2e-2,
                    "{norm:?} dx[{i}]: {} vs {expected}",
                    dx[i]
                );
            }
            for i in [0, 5, 10] {
                let nudged_gamma = |d: f32| {
                    let mut g = gamma.clone();
                    g[i] += d;
                    loss(&x, &g, &zeros)
                };
                let nudged_beta = |d: f32| {
                    let mut b = zeros.clone();
                    b[i] += d;
                    loss(&x, &gamma, &b)
                };
                assert!((dgamma[i] as f64 - numeric(&nudged_gamma)).abs() < 2e-2);
                assert!((dbeta[i] as f64 - numeric(&nudged_beta)).abs() < 2e-2);
            }
        }
    }
}
