//! Fused f32 kernels for the hot spots of a training step on the CPU: tanh GELU, the row softmax
//! of attention and the token cross-entropy, each forward and backward, and the projections'
//! matrix products ([`matmul`]).
//!
//! A separate crate so that it is compiled with optimisations even in test builds (the workspace
//! profile optimises dependencies only): these loops run on every training step.
//!
//! Every function is one pass over its rows, split over rayon's threads in fixed-size pieces, so
//! the result does not depend on the number of threads. `exp` is a polynomial that the compiler
//! turns into SIMD code, unlike libm's `expf`, for the widest vectors the CPU has.

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
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
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

/// Defines `$name` to run `$body` (an `#[inline(always)]` function of slices) compiled for the
/// widest x86 vector extension the CPU reports, AVX-512 or AVX2, else for the build's baseline.
/// No variant uses fused multiply-add, so all of them compute bit-identical results.
macro_rules! widest_simd {
    ($name:ident => $body:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU reports the feature.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU reports the feature.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

mod attention;
mod matmul;
mod norm;
pub use attention::{
    AttentionGradients, AttentionOutput, CausalAttention, causal_attention,
    causal_attention_backward,
};
pub use matmul::{MatRef, column_sums, matmul, matmul_batched};
pub use norm::{Norm, norm_rows, norm_rows_backward};

/// HF's `gelu_new`, `0.5·x·(1 + tanh(z))`, computed as the identical `x·sigmoid(2z)`.
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| gelu_block(x, out));
}

widest_simd!(gelu_block => gelu_body(x: &[f32], out: &mut [f32]));

#[inline(always)]
fn gelu_body(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x * sigmoid(two_z(x));
    }
}

/// `grad · gelu_tanh'(x)`, where `d/dx x·s(2z) = s + x·2s(1−s)·dz/dx`.
pub fn gelu_tanh_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    assert!(x.len() == out.len() && grad.len() == out.len());
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
        .for_each(|(out, (x, grad))| gelu_backward_block(x, grad, out));
}

widest_simd!(gelu_backward_block => gelu_backward_body(x: &[f32], grad: &[f32], out: &mut [f32]));

#[inline(always)]
fn gelu_backward_body(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
        let s = sigmoid(two_z(x));
        let dtwo_z = TWO_SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
        *o = g * (s + x * s * (1.0 - s) * dtwo_z);
    }
}

/// SwiGLU's gate, `silu(gate) · up` with `silu(g) = g·sigmoid(g)` (Qwen2's and Llama's MLP).
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == out.len() && up.len() == out.len());
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| silu_mul_block(gate, up, out));
}

widest_simd!(silu_mul_block => silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]));

#[inline(always)]
fn silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g * sigmoid(g) * u;
    }
}

/// The gradients of [`silu_mul`] for `gate` and `up`, `grad` being that of its output:
/// `grad·up·s·(1 + g·(1−s))` and `grad·g·s`, with `s = sigmoid(g)`.
pub fn silu_mul_backward(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    grad_gate: &mut [f32],
    grad_up: &mut [f32],
) {
    assert!(
        gate.len() == grad.len()
            && up.len() == grad.len()
            && grad_gate.len() == grad.len()
            && grad_up.len() == grad.len()
    );
    grad_gate
        .par_chunks_mut(CHUNK)
        .zip(grad_up.par_chunks_mut(CHUNK))
        .zip(
            gate.par_chunks(CHUNK)
                .zip(up.par_chunks(CHUNK))
                .zip(grad.par_chunks(CHUNK)),
        )
        .for_each(|((grad_gate, grad_up), ((gate, up), grad))| {
            silu_mul_backward_block(gate, up, grad, grad_gate, grad_up)
        });
}

widest_simd!(silu_mul_backward_block => silu_mul_backward_body(gate: &[f32], up: &[f32], grad: &[f32], grad_gate: &mut [f32], grad_up: &mut [f32]));

#[inline(always)]
fn silu_mul_backward_body(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    grad_gate: &mut [f32],
    grad_up: &mut [f32],
) {
    for ((((dg, du), &g), &u), &d) in grad_gate
        .iter_mut()
        .zip(grad_up.iter_mut())
        .zip(gate)
        .zip(up)
        .zip(grad)
    {
        let s = sigmoid(g);
        *dg = d * u * s * (1.0 + g * (1.0 - s));
        *du = d * g * s;
    }
}

/// Softmax of `scale ·` each row of `width` values (`scale > 0`, attention's 1/√d folded in); a
/// row that is all `-inf` (fully masked) gives zeros.
pub fn softmax_rows(x: &[f32], scale: f32, width: usize, out: &mut [f32]) {
    assert!(x.len() == out.len() && width > 0 && x.len().is_multiple_of(width));
    let chunk = rows_per_task(width) * width;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(out, x)| softmax_block(x, scale, width, out));
}

widest_simd!(softmax_block => softmax_body(x: &[f32], scale: f32, width: usize, out: &mut [f32]));

#[inline(always)]
fn softmax_body(x: &[f32], scale: f32, width: usize, out: &mut [f32]) {
    for (out, row) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
        let max = max(row);
        if max == f32::NEG_INFINITY {
            out.fill(0.0);
            continue;
        }
        for (o, &v) in out.iter_mut().zip(row) {
            *o = exp(scale * (v - max));
        }
        let inverse = 1.0 / sum(out);
        out.iter_mut().for_each(|o| *o *= inverse);
    }
}

/// `scale · y ⊙ (dy − Σ dy ⊙ y)` per row, the gradient through `y = softmax_rows(x, scale)`.
pub fn softmax_rows_backward(y: &[f32], grad: &[f32], scale: f32, width: usize, out: &mut [f32]) {
    assert!(
        y.len() == out.len()
            && grad.len() == out.len()
            && width > 0
            && y.len().is_multiple_of(width)
    );
    let chunk = rows_per_task(width) * width;
    out.par_chunks_mut(chunk)
        .zip(y.par_chunks(chunk).zip(grad.par_chunks(chunk)))
        .for_each(|(out, (y, grad))| softmax_backward_block(y, grad, scale, width, out));
}

widest_simd!(softmax_backward_block => softmax_backward_body(y: &[f32], grad: &[f32], scale: f32, width: usize, out: &mut [f32]));

#[inline(always)]
fn softmax_backward_body(y: &[f32], grad: &[f32], scale: f32, width: usize, out: &mut [f32]) {
    for ((out, y), g) in out
        .chunks_exact_mut(width)
        .zip(y.chunks_exact(width))
        .zip(grad.chunks_exact(width))
    {
        let dot = dot(y, g);
        for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
            *o = scale * (y * (g - dot));
        }
    }
}

/// `-log_softmax(row)[target]` for each row of `width` logits. A target outside the row gives
/// NaN: the loss then says something is wrong instead of the process aborting.
pub fn token_nll(logits: &[f32], width: usize, targets: &[usize], out: &mut [f32]) {
    assert!(width > 0 && logits.len() == targets.len() * width && out.len() == targets.len());
    out.par_iter_mut()
        .zip(logits.par_chunks(width))
        .zip(targets)
        .for_each(|((out, row), &target)| {
            *out = log_sum_exp(row) - row.get(target).copied().unwrap_or(f32::NAN);
        });
}

widest_simd!(log_sum_exp => log_sum_exp_body(row: &[f32]) -> f32);

/// `max + ln Σ exp(v − max)`; the exponentials go through a small buffer so that the loop
/// computing them vectorizes.
#[inline(always)]
fn log_sum_exp_body(row: &[f32]) -> f32 {
    let max = max(row);
    let mut buffer = [0.0f32; 256];
    let mut total = 0.0f32;
    for block in row.chunks(buffer.len()) {
        let buffer = &mut buffer[..block.len()];
        for (b, &v) in buffer.iter_mut().zip(block) {
            *b = exp(v - max);
        }
        total += sum(buffer);
    }
    max + total.ln()
}

/// The gradient of [`token_nll`] for the logits, `grad` being that of its output:
/// `grad[row] · (softmax(row) − onehot(target))`. The row's log-sum-exp comes back from the
/// forward's output, `nll = lse − x[target]`, so this is a single pass.
pub fn token_nll_backward(
    logits: &[f32],
    width: usize,
    targets: &[usize],
    nll: &[f32],
    grad: &[f32],
    out: &mut [f32],
) {
    assert!(width > 0 && logits.len() == out.len() && logits.len() == targets.len() * width);
    assert!(nll.len() == targets.len() && grad.len() == targets.len());
    out.par_chunks_mut(width)
        .zip(logits.par_chunks(width))
        .enumerate()
        .for_each(|(r, (out, row))| {
            let target = targets[r];
            let lse = nll[r] + row.get(target).copied().unwrap_or(f32::NAN);
            softmax_scaled_block(row, lse, grad[r], out);
            if let Some(o) = out.get_mut(target) {
                *o -= grad[r];
            }
        });
}

widest_simd!(softmax_scaled_block => softmax_scaled_body(row: &[f32], lse: f32, scale: f32, out: &mut [f32]));

#[inline(always)]
fn softmax_scaled_body(row: &[f32], lse: f32, scale: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(row) {
        *o = scale * exp(v - lse);
    }
}

fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

/// Sums in eight interleaved lanes, which vectorizes (a single running sum cannot).
#[inline(always)]
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

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += a * b;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    lanes.iter().copied().fold(tail, f32::max)
}

/// Deterministic test inputs: `n` values spread over `[low, high)`, different per seed.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32, low: f32, high: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) % 1000)
        .map(|v| low + (high - low) * v as f32 / 1000.0)
        .collect()
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
            assert!(
                relative < 2.5e-7,
                "exp({x}) = {got}, expected {expected} (relative error {relative:e})"
            );
            x += 0.0137;
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    /// The dispatched kernels (AVX-512 or AVX2 where the CPU has them) give the same bits as the
    /// baseline build of the same code, so results do not depend on the machine's vector width.
    #[test]
    fn vector_variants_match_the_baseline_bit_for_bit() {
        let width = 300;
        let x: Vec<f32> = (0..width * 7)
            .map(|k| ((k * 7919 % 2000) as f32 - 1000.0) / 97.0)
            .collect();
        let g: Vec<f32> = (0..width * 7)
            .map(|k| ((k * 104_729 % 2000) as f32 - 1000.0) / 1000.0)
            .collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut out = vec![0.0f32; x.len()];
            f(&mut out);
            bits(&out)
        };
        assert_eq!(run(&|o| gelu_block(&x, o)), run(&|o| gelu_body(&x, o)));
        assert_eq!(
            run(&|o| gelu_backward_block(&x, &g, o)),
            run(&|o| gelu_backward_body(&x, &g, o))
        );
        assert_eq!(
            run(&|o| softmax_block(&x, 0.125, width, o)),
            run(&|o| softmax_body(&x, 0.125, width, o))
        );
        assert_eq!(
            run(&|o| softmax_backward_block(&x, &g, 0.125, width, o)),
            run(&|o| softmax_backward_body(&x, &g, 0.125, width, o))
        );
        assert_eq!(
            run(&|o| softmax_scaled_block(&x, 3.5, 0.25, o)),
            run(&|o| softmax_scaled_body(&x, 3.5, 0.25, o))
        );
        assert_eq!(
            run(&|o| silu_mul_block(&x, &g, o)),
            run(&|o| silu_mul_body(&x, &g, o))
        );
        let run_two = |f: &dyn Fn(&mut [f32], &mut [f32])| {
            let (mut first, mut second) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            f(&mut first, &mut second);
            (bits(&first), bits(&second))
        };
        assert_eq!(
            run_two(&|gate, up| silu_mul_backward_block(&x, &g, &g, gate, up)),
            run_two(&|gate, up| silu_mul_backward_body(&x, &g, &g, gate, up))
        );
        assert_eq!(log_sum_exp(&x).to_bits(), log_sum_exp_body(&x).to_bits());
    }

    #[test]
    fn reductions_match_a_plain_loop() {
        let values: Vec<f32> = (0..1037)
            .map(|k| ((k * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let plain: f64 = values.iter().map(|&v| v as f64).sum();
        assert!((sum(&values) as f64 - plain).abs() < 1e-3);
        assert_eq!(
            max(&values),
            values.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        );
        let squares: f64 = values.iter().map(|&v| (v as f64) * (v as f64)).sum();
        assert!((dot(&values, &values) as f64 - squares).abs() / squares < 1e-6);
    }
}
