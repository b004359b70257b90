//! Fused f32 kernels for the elementwise hot spots of a training step on the CPU: tanh GELU, the
//! row softmax of attention and the token cross-entropy, each forward and backward.
//!
//! A separate crate so that it is compiled with optimisations even in test builds (the workspace
//! profile optimises dependencies only): these loops run on every training step.
//!
//! Every function is one pass over its rows, split over rayon's threads in fixed-size pieces, so
//! the result does not depend on the number of threads. `exp` is a polynomial that the compiler
//! turns into SIMD code, unlike libm's `expf`.

use rayon::prelude::*;

/// Elements per parallel task: large enough that rayon's overhead vanishes.
const CHUNK: usize = 16 * 1024;

/// `2·√(2/π)`: `gelu_tanh(x) = x·sigmoid(2z)` with `z = √(2/π)·(x + 0.044715·x³)`.
pub const TWO_SQRT_2_OVER_PI: f32 = 1.595_769_2;
pub const GELU_CUBIC: f32 = 0.044715;

/// eˣ in f32 to within 2 ulp for x ≥ −87 (0 below, where the result would be subnormal), as
/// straight-line arithmetic that vectorizes: x = k·ln2 + r with |r| ≤ ln2/2, eʳ by a degree-7
/// Taylor polynomial (truncation error < 2e-8 relative), 2ᵏ built from its exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k·LN2_HI is exact for |k| < 2⁹.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let shifted = clamped * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = clamped - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn two_z(x: f32) -> f32 {
    TWO_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)
}

/// HF's `gelu_new`, `0.5·x·(1 + tanh(z))`, computed as the identical `x·sigmoid(2z)`.
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(out, x)| {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x * sigmoid(two_z(x));
        }
    });
}

/// `grad · gelu_tanh'(x)`, where `d/dx x·s(2z) = s + x·2s(1−s)·dz/dx`.
pub fn gelu_tanh_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    assert!(x.len() == out.len() && grad.len() == out.len());
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK))).for_each(|(out, (x, grad))| {
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
            let s = sigmoid(two_z(x));
            let dtwo_z = TWO_SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
            *o = g * (s + x * s * (1.0 - s) * dtwo_z);
        }
    });
}

/// Softmax of each row of `width` values; a row that is all `-inf` (fully masked) gives zeros.
pub fn softmax_rows(x: &[f32], width: usize, out: &mut [f32]) {
    assert!(x.len() == out.len() && width > 0 && x.len() % width == 0);
    let chunk = rows_per_task(width) * width;
    out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(out, x)| {
        for (out, row) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
            let max = max(row);
            if max == f32::NEG_INFINITY {
                out.fill(0.0);
                continue;
            }
            for (o, &v) in out.iter_mut().zip(row) {
                *o = exp(v - max);
            }
            let inverse = 1.0 / sum(out);
            out.iter_mut().for_each(|o| *o *= inverse);
        }
    });
}

/// `y ⊙ (dy − Σ dy ⊙ y)` per row, the gradient through `y = softmax_rows(x)`.
pub fn softmax_rows_backward(y: &[f32], grad: &[f32], width: usize, out: &mut [f32]) {
    assert!(y.len() == out.len() && grad.len() == out.len() && width > 0 && y.len() % width == 0);
    let chunk = rows_per_task(width) * width;
    out.par_chunks_mut(chunk).zip(y.par_chunks(chunk).zip(grad.par_chunks(chunk))).for_each(|(out, (y, grad))| {
        for ((out, y), g) in out.chunks_exact_mut(width).zip(y.chunks_exact(width)).zip(grad.chunks_exact(width)) {
            let dot = dot(y, g);
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = y * (g - dot);
            }
        }
    });
}

/// `-log_softmax(row)[target]` for each row of `width` logits. A target outside the row gives
/// NaN: the loss then says something is wrong instead of the process aborting.
pub fn token_nll(logits: &[f32], width: usize, targets: &[usize], out: &mut [f32]) {
    assert!(width > 0 && logits.len() == targets.len() * width && out.len() == targets.len());
    out.par_iter_mut().zip(logits.par_chunks(width)).zip(targets).for_each(|((out, row), &target)| {
        let max = max(row);
        *out = max + sum_exp(row, max).ln() - row.get(target).copied().unwrap_or(f32::NAN);
    });
}

/// The gradient of [`token_nll`] for the logits, `grad` being that of its output:
/// `grad[row] · (softmax(row) − onehot(target))`. The row's log-sum-exp comes back from the
/// forward's output, `nll = lse − x[target]`, so this is a single pass.
pub fn token_nll_backward(logits: &[f32], width: usize, targets: &[usize], nll: &[f32], grad: &[f32], out: &mut [f32]) {
    assert!(width > 0 && logits.len() == out.len() && logits.len() == targets.len() * width);
    assert!(nll.len() == targets.len() && grad.len() == targets.len());
    out.par_chunks_mut(width).zip(logits.par_chunks(width)).enumerate().for_each(|(r, (out, row))| {
        let target = targets[r];
        let lse = nll[r] + row.get(target).copied().unwrap_or(f32::NAN);
        let g = grad[r];
        for (o, &v) in out.iter_mut().zip(row) {
            *o = g * exp(v - lse);
        }
        if let Some(o) = out.get_mut(target) {
            *o -= g;
        }
    });
}

fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

/// Sums in eight interleaved lanes, which vectorizes (a single running sum cannot).
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn sum_exp(values: &[f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - max)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += exp(v - max);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += a * b;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    lanes.iter().copied().fold(tail, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let expected = (x as f64).exp();
            let got = exp(x) as f64;
            let relative = ((got - expected) / expected).abs();
            assert!(relative < 2.5e-7, "exp({x}) = {got}, expected {expected} (relative error {relative:e})");
            x += 0.0137;
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions_match_a_plain_loop() {
        let values: Vec<f32> = (0..1037).map(|k| ((k * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let plain: f64 = values.iter().map(|&v| v as f64).sum();
        assert!((sum(&values) as f64 - plain).abs() < 1e-3);
        assert_eq!(max(&values), values.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let squares: f64 = values.iter().map(|&v| (v as f64) * (v as f64)).sum();
        assert!((dot(&values, &values) as f64 - squares).abs() / squares < 1e-6);
    }
}
