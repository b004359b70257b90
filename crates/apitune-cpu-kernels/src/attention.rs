//! Causal self-attention of right-padded rows as one kernel, forward and backward: scores, the
//! causal and padding mask, softmax and the weighted sum of values.
//!
//! Composed from batched products, a training step computes every score of the padded `T × T`
//! square of every row and head, masks most of it away and runs softmax over the rest: with the
//! rows of a batch padded to its longest and half of each square in the future, about a quarter
//! of that work is kept. Here each row of the batch works on its own length `L` only, and in
//! blocks of query rows that stop at the causal diagonal, so the products cover the lower
//! triangle of `L × L` (plus the diagonal blocks). Positions at or past a row's length (padding)
//! get zero output and zero gradients: nothing real attends to them.
//!
//! Work is split over the rows of the batch, each computed on one thread in a fixed order, so the
//! result does not depend on the number of threads. Grouped key/value heads (GQA, multi-query)
//! are read in place: query head `h` uses key/value head `h / (q_heads / kv_heads)`.

use rayon::prelude::*;

use crate::matmul::product_into_block;
use crate::{MatRef, dot, exp, max, sum};

/// Query rows per block: each block's products reach only up to its own last row.
const BLOCK: usize = 64;

/// The operands of one causal attention: per batch row `b` and head, a `[T, head_dim]` matrix.
#[derive(Debug, Clone, Copy)]
pub struct CausalAttention<'a> {
    /// `q[b · q_heads + h]`
    pub q: &'a [MatRef<'a>],
    /// `k[b · kv_heads + g]`
    pub k: &'a [MatRef<'a>],
    /// `v[b · kv_heads + g]`
    pub v: &'a [MatRef<'a>],
    /// Real tokens of each batch row (the rest is right padding), at most `T`.
    pub lengths: &'a [usize],
    pub q_heads: usize,
    pub kv_heads: usize,
    /// Multiplies the scores inside the softmax (1/√head_dim).
    pub scale: f32,
}

/// What the forward pass gives and the backward pass needs.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// `[B, T, q_heads · head_dim]`: the heads already merged.
    pub out: Vec<f32>,
    /// Attention probabilities, per batch row `b` and head `h` an `L_b × L_b` row-major block
    /// (zero above the diagonal), the blocks in order of `b`, then `h`.
    pub probs: Vec<f32>,
}

/// The gradients of q, k and v, row-major `[B, q_heads, T, hd]`, `[B, kv_heads, T, hd]` twice.
#[derive(Debug, Clone)]
pub struct AttentionGradients {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

impl CausalAttention<'_> {
    fn batch(&self) -> usize {
        self.lengths.len()
    }

    fn seq(&self) -> usize {
        self.q.first().map_or(0, |m| m.rows)
    }

    fn head_dim(&self) -> usize {
        self.q.first().map_or(0, |m| m.cols)
    }

    fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }

    /// Where each batch row's probability blocks start, and their total length.
    fn prob_offsets(&self) -> (Vec<usize>, usize) {
        let mut offsets = Vec::with_capacity(self.batch());
        let mut total = 0;
        for &l in self.lengths {
            offsets.push(total);
            total += self.q_heads * l * l;
        }
        (offsets, total)
    }

    fn check(&self) {
        let (b, t, hd) = (self.batch(), self.seq(), self.head_dim());
        assert!(
            self.kv_heads > 0 && self.q_heads.is_multiple_of(self.kv_heads),
            "attention: {} query heads over {} key/value heads",
            self.q_heads,
            self.kv_heads
        );
        assert_eq!(self.q.len(), b * self.q_heads, "attention: query matrices");
        assert_eq!(self.k.len(), b * self.kv_heads, "attention: key matrices");
        assert_eq!(self.v.len(), b * self.kv_heads, "attention: value matrices");
        let shaped = |m: &MatRef| m.rows == t && m.cols == hd;
        assert!(
            self.q.iter().chain(self.k).chain(self.v).all(shaped),
            "attention: every matrix must be {t}x{hd}"
        );
        assert!(
            self.lengths.iter().all(|&l| l <= t),
            "attention: a length past {t}"
        );
    }
}

/// Row blocks `[start, end)` of `length` rows.
fn blocks(length: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..length)
        .step_by(BLOCK)
        .map(move |start| (start, (start + BLOCK).min(length)))
}

/// `softmax(scale · S) V` over each row's causal prefix; see the module documentation.
pub fn causal_attention(a: &CausalAttention) -> AttentionOutput {
    a.check();
    let (t, hd, heads) = (a.seq(), a.head_dim(), a.q_heads);
    let (offsets, total) = a.prob_offsets();
    let mut out = vec![0.0f32; a.batch() * t * heads * hd];
    let mut probs = vec![0.0f32; total];
    let prob_blocks = split_at_offsets(&mut probs, &offsets);
    out.par_chunks_mut((t * heads * hd).max(1))
        .zip(prob_blocks)
        .enumerate()
        .for_each(|(b, (out, probs))| forward_row(a, b, out, probs));
    AttentionOutput { out, probs }
}

/// Batch row `b` of [`causal_attention`]: `out` is its `[T, heads·hd]` block, `probs` its
/// `heads` probability squares.
fn forward_row(a: &CausalAttention, b: usize, out: &mut [f32], probs: &mut [f32]) {
    let (l, hd, heads) = (a.lengths[b], a.head_dim(), a.q_heads);
    if l == 0 {
        return;
    }
    for (h, p) in probs.chunks_exact_mut(l * l).enumerate() {
        let q = a.q[b * heads + h];
        let kv = b * a.kv_heads + h / a.group();
        let (k, v) = (a.k[kv], a.v[kv]);
        for (start, end) in blocks(l) {
            let scores = q.block(start..end, 0..hd);
            let keys = k.block(0..end, 0..hd).t();
            product_into_block(p, start * l, l, scores, keys, false);
            for i in start..end {
                softmax_prefix(&mut p[i * l..(i + 1) * l], i + 1, a.scale);
            }
            let weights = MatRef::row_major(p, l, l).block(start..end, 0..end);
            let offset = start * heads * hd + h * hd;
            let values = v.block(0..end, 0..hd);
            product_into_block(out, offset, heads * hd, weights, values, false);
        }
    }
}

/// Softmax of `scale ·` the first `keep` values of `row`, in place; the rest set to zero.
fn softmax_prefix(row: &mut [f32], keep: usize, scale: f32) {
    widest_simd!(softmax_prefix_simd => softmax_prefix_body(row: &mut [f32], keep: usize, scale: f32));
    softmax_prefix_simd(row, keep, scale)
}

#[inline(always)]
fn softmax_prefix_body(row: &mut [f32], keep: usize, scale: f32) {
    let (kept, future) = row.split_at_mut(keep);
    future.fill(0.0);
    let max = max(kept);
    for v in kept.iter_mut() {
        *v = exp(scale * (*v - max));
    }
    let inverse = 1.0 / sum(kept);
    kept.iter_mut().for_each(|v| *v *= inverse);
}

/// The gradients of [`causal_attention`] for `grad` (`[B, T, heads·hd]`, the gradient of its
/// output), given the probabilities it returned.
pub fn causal_attention_backward(
    a: &CausalAttention,
    probs: &[f32],
    grad: &[f32],
) -> AttentionGradients {
    a.check();
    let (b, t, hd) = (a.batch(), a.seq(), a.head_dim());
    let (offsets, total) = a.prob_offsets();
    assert_eq!(probs.len(), total, "attention backward: probabilities");
    assert_eq!(
        grad.len(),
        b * t * a.q_heads * hd,
        "attention backward: gradient"
    );
    let mut dq = vec![0.0f32; b * a.q_heads * t * hd];
    let mut dk = vec![0.0f32; b * a.kv_heads * t * hd];
    let mut dv = vec![0.0f32; b * a.kv_heads * t * hd];
    let kv_chunk = (a.kv_heads * t * hd).max(1);
    dq.par_chunks_mut((a.q_heads * t * hd).max(1))
        .zip(dk.par_chunks_mut(kv_chunk))
        .zip(dv.par_chunks_mut(kv_chunk))
        .enumerate()
        .for_each(|(row, ((dq, dk), dv))| {
            let l = a.lengths[row];
            let probs = &probs[offsets[row]..][..a.q_heads * l * l];
            let grad = &grad[row * t * a.q_heads * hd..][..t * a.q_heads * hd];
            backward_row(a, row, probs, grad, [dq, dk, dv]);
        });
    AttentionGradients {
        q: dq,
        k: dk,
        v: dv,
    }
}

/// Batch row `b` of [`causal_attention_backward`]: `dq` `[heads, T, hd]`, `dk` and `dv`
/// `[kv_heads, T, hd]`, all zero on entry.
fn backward_row(
    a: &CausalAttention,
    b: usize,
    probs: &[f32],
    grad: &[f32],
    [dq, dk, dv]: [&mut [f32]; 3],
) {
    let (l, t, hd, heads) = (a.lengths[b], a.seq(), a.head_dim(), a.q_heads);
    if l == 0 {
        return;
    }
    let mut d_scores = vec![0.0f32; l * l];
    for (h, p) in probs.chunks_exact(l * l).enumerate() {
        let q = a.q[b * heads + h];
        let g = h / a.group();
        let (k, v) = (a.k[b * a.kv_heads + g], a.v[b * a.kv_heads + g]);
        // The gradient of this head's output, `[L, hd]` with the other heads between its rows.
        let d_out = MatRef {
            data: grad,
            offset: h * hd,
            rows: l,
            cols: hd,
            row_stride: (heads * hd) as isize,
            col_stride: 1,
        };
        let probs = MatRef::row_major(p, l, l);
        // dS = scale · P ⊙ (dP − Σⱼ P·dP), dP = dO·Vᵀ, over each row's causal prefix.
        for (start, end) in blocks(l) {
            let rows = d_out.block(start..end, 0..hd);
            let values = v.block(0..end, 0..hd).t();
            product_into_block(&mut d_scores, start * l, l, rows, values, false);
            for i in start..end {
                let row = &mut d_scores[i * l..(i + 1) * l];
                softmax_prefix_backward(row, &p[i * l..(i + 1) * l], i + 1, a.scale);
            }
            // dQ = dS·K for these rows.
            let ds = MatRef::row_major(&d_scores, l, l).block(start..end, 0..end);
            let keys = k.block(0..end, 0..hd);
            product_into_block(dq, h * t * hd + start * hd, hd, ds, keys, false);
        }
        // dK = dSᵀ·Q and dV = Pᵀ·dO, by column blocks: column j gets rows i ≥ j only.
        let ds = MatRef::row_major(&d_scores, l, l);
        for (start, end) in blocks(l) {
            let offset = g * t * hd + start * hd;
            let ds_t = ds.block(start..l, start..end).t();
            product_into_block(dk, offset, hd, ds_t, q.block(start..l, 0..hd), true);
            let p_t = probs.block(start..l, start..end).t();
            product_into_block(dv, offset, hd, p_t, d_out.block(start..l, 0..hd), true);
        }
    }
}

/// `scale · P ⊙ (dP − P·dP)` over the first `keep` entries of a row, in place over `dp`; the
/// rest zero.
fn softmax_prefix_backward(dp: &mut [f32], p: &[f32], keep: usize, scale: f32) {
    widest_simd!(softmax_prefix_backward_simd => softmax_prefix_backward_body(dp: &mut [f32], p: &[f32], keep: usize, scale: f32));
    softmax_prefix_backward_simd(dp, p, keep, scale)
}

#[inline(always)]
fn softmax_prefix_backward_body(dp: &mut [f32], p: &[f32], keep: usize, scale: f32) {
    let (kept, future) = dp.split_at_mut(keep);
    future.fill(0.0);
    let p = &p[..keep];
    let dot = dot(p, kept);
    for (d, &p) in kept.iter_mut().zip(p) {
        *d = scale * (p * (*d - dot));
    }
}

/// `data` cut into consecutive pieces starting at `offsets` (the first at 0), the last to the end.
fn split_at_offsets<'a>(mut data: &'a mut [f32], offsets: &[usize]) -> Vec<&'a mut [f32]> {
    let mut pieces = Vec::with_capacity(offsets.len());
    let mut at = 0;
    for (i, _) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(at + data.len());
        let (piece, rest) = data.split_at_mut(end - at);
        pieces.push(piece);
        data = rest;
        at = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values;

    /// The same attention in f64, the plain way: full padded squares, masked, softmax, products.
    /// Returns the output `[B, T, H·hd]` and the gradients for `grad`.
    fn naive(a: &CausalAttention, grad: &[f32]) -> [Vec<f64>; 4] {
        let (t, hd, heads) = (a.seq(), a.head_dim(), a.q_heads);
        let at = |m: &MatRef, i: usize, j: usize| {
            m.data[(m.offset as isize + i as isize * m.row_stride + j as isize * m.col_stride)
                as usize] as f64
        };
        let mut out = vec![0.0; a.batch() * t * heads * hd];
        let mut dq = vec![0.0; a.batch() * heads * t * hd];
        let mut dk = vec![0.0; a.batch() * a.kv_heads * t * hd];
        let mut dv = dk.clone();
        for (b, &l) in a.lengths.iter().enumerate() {
            for h in 0..heads {
                let q = &a.q[b * heads + h];
                let g = b * a.kv_heads + h / a.group();
                let (k, v) = (&a.k[g], &a.v[g]);
                for i in 0..l {
                    let s: Vec<f64> = (0..=i)
                        .map(|j| (0..hd).map(|c| at(q, i, c) * at(k, j, c)).sum::<f64>())
                        .map(|s| s * a.scale as f64)
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|s| (s - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|e| e / z).collect();
                    let go = |c: usize| grad[(b * t + i) * heads * hd + h * hd + c] as f64;
                    for c in 0..hd {
                        out[(b * t + i) * heads * hd + h * hd + c] =
                            (0..=i).map(|j| p[j] * at(v, j, c)).sum();
                    }
                    let dp: Vec<f64> = (0..=i)
                        .map(|j| (0..hd).map(|c| go(c) * at(v, j, c)).sum())
                        .collect();
                    let dot: f64 = p.iter().zip(&dp).map(|(p, d)| p * d).sum();
                    for j in 0..=i {
                        let ds = a.scale as f64 * p[j] * (dp[j] - dot);
                        for c in 0..hd {
                            dq[((b * heads + h) * t + i) * hd + c] += ds * at(k, j, c);
                            dk[(g * t + j) * hd + c] += ds * at(q, i, c);
                            dv[(g * t + j) * hd + c] += p[j] * go(c);
                        }
                    }
                }
            }
        }
        [out, dq, dk, dv]
    }

    fn assert_close(actual: &[f32], expected: &[f64], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a as f64 - e).abs() < 1e-5 * (1.0 + e.abs()),
                "{what}[{i}]: {a} vs {e}"
            );
        }
    }

    /// Views `[T, hd]` per (batch row, head) of a buffer laid out `[B, T, heads, hd]`, as a
    /// model's split heads are.
    fn head_views(
        data: &[f32],
        batch: usize,
        t: usize,
        heads: usize,
        hd: usize,
    ) -> Vec<MatRef<'_>> {
        (0..batch * heads)
            .map(|bh| MatRef {
                data,
                offset: (bh / heads) * t * heads * hd + (bh % heads) * hd,
                rows: t,
                cols: hd,
                row_stride: (heads * hd) as isize,
                col_stride: 1,
            })
            .collect()
    }

    fn check(lengths: &[usize], t: usize, q_heads: usize, kv_heads: usize, hd: usize) {
        let b = lengths.len();
        let q = test_values(b * t * q_heads * hd, 1, -1.0, 1.0);
        let k = test_values(b * t * kv_heads * hd, 2, -1.0, 1.0);
        let v = test_values(b * t * kv_heads * hd, 3, -1.0, 1.0);
        let grad = test_values(b * t * q_heads * hd, 4, -1.0, 1.0);
        let (qv, kv, vv) = (
            head_views(&q, b, t, q_heads, hd),
            head_views(&k, b, t, kv_heads, hd),
            head_views(&v, b, t, kv_heads, hd),
        );
        let a = CausalAttention {
            q: &qv,
            k: &kv,
            v: &vv,
            lengths,
            q_heads,
            kv_heads,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        let forward = causal_attention(&a);
        let grads = causal_attention_backward(&a, &forward.probs, &grad);
        let [out, dq, dk, dv] = naive(&a, &grad);
        assert_close(&forward.out, &out, "out");
        assert_close(&grads.q, &dq, "dq");
        assert_close(&grads.k, &dk, "dk");
        assert_close(&grads.v, &dv, "dv");
    }

    #[test]
    fn matches_the_masked_softmax_in_f64_with_padding_and_several_blocks() {
        // Lengths across block boundaries, one row of padding only, one full.
        check(&[150, 0, 64, 7, 200], 200, 4, 4, 8);
    }

    #[test]
    fn grouped_and_multi_query_heads_share_their_keys_and_values() {
        check(&[70, 33], 80, 4, 2, 16);
        check(&[90, 90], 90, 4, 1, 8);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let lengths = [120, 77, 130, 5];
        let (t, heads, hd) = (130, 2, 16);
        let q = test_values(4 * t * heads * hd, 5, -1.0, 1.0);
        let grad = test_values(4 * t * heads * hd, 6, -1.0, 1.0);
        let views = head_views(&q, 4, t, heads, hd);
        let a = CausalAttention {
            q: &views,
            k: &views,
            v: &views,
            lengths: &lengths,
            q_heads: heads,
            kv_heads: heads,
            scale: 0.25,
        };
        let run = || {
            let forward = causal_attention(&a);
            let g = causal_attention_backward(&a, &forward.probs, &grad);
            [forward.out, g.q, g.k, g.v].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(run);
        assert!(one == three, "results differ between 1 and 3 threads");
    }
}
