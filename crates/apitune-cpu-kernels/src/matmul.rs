//! f32 matrix products for the projections of a model, forward and backward, through the `gemm`
//! crate (the kernel burn's flex backend calls too), writing straight into the output buffer.
//!
//! flex's own matmul zero-fills a fresh buffer and then copies it once more to realign it before
//! the product overwrites every element, and a bias is one more pass over the output. Here the
//! output is allocated uninitialised and written once: by the product, or, with a bias, by the
//! bias rows that the product then accumulates onto.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Products smaller than this many multiply-adds run on the calling thread (flex's threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// A read-only strided view of an f32 matrix inside `data`: element `(i, j)` is
/// `data[offset + i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The same elements read as the transposed matrix (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The sub-matrix of rows `rows` and columns `cols` (no copy).
    pub fn block(self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> Self {
        assert!(
            rows.start <= rows.end && rows.end <= self.rows,
            "block rows {rows:?}"
        );
        assert!(
            cols.start <= cols.end && cols.end <= self.cols,
            "block cols {cols:?}"
        );
        let offset = self.offset as isize
            + rows.start as isize * self.row_stride
            + cols.start as isize * self.col_stride;
        Self {
            offset: usize::try_from(offset).expect("a block starts inside its data"),
            rows: rows.len(),
            cols: cols.len(),
            ..self
        }
    }

    /// Whether every element the view addresses lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let reach = |count: usize, stride: isize| (count as isize - 1) * stride;
        let corners = [
            0,
            reach(self.rows, self.row_stride),
            reach(self.cols, self.col_stride),
            reach(self.rows, self.row_stride) + reach(self.cols, self.col_stride),
        ];
        let start = self.offset as isize;
        corners
            .iter()
            .all(|&c| start + c >= 0 && ((start + c) as usize) < self.data.len())
    }

    fn ptr(&self) -> *const f32 {
        self.data.as_ptr().wrapping_add(self.offset)
    }
}

/// `lhs · rhs (+ bias on every row)` as a new row-major buffer: `[lhs.rows × rhs.cols]`.
///
/// # Panics
/// When the shapes do not chain, the bias length is not `rhs.cols`, or a view reaches outside
/// its data.
pub fn matmul(lhs: MatRef, rhs: MatRef, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, n) = (lhs.rows, rhs.cols);
    if let Some(bias) = bias {
        assert_eq!(
            bias.len(),
            n,
            "matmul: bias of {} for {n} columns",
            bias.len()
        );
    }
    if m <= FEW_ROWS && (rhs.col_stride == 1 || rhs.row_stride == 1) {
        return few_rows_product(lhs, rhs, bias);
    }
    let mut out = Vec::with_capacity(m * n);
    let spare = &mut out.spare_capacity_mut()[..m * n];
    let accumulate = match bias {
        Some(bias) => {
            for row in spare.chunks_exact_mut(n.max(1)) {
                for (slot, &b) in row.iter_mut().zip(bias) {
                    slot.write(b);
                }
            }
            true
        }
        None => false,
    };
    product_into(spare, lhs, rhs, accumulate, parallelism_for(lhs, rhs));
    // SAFETY: the first m·n elements were written, by the bias rows or by the product (gemm
    // writes every output element when it does not read them).
    unsafe { out.set_len(m * n) };
    out
}

/// At most this many rows of `lhs` (a decoding step's batch) take [`few_rows_product`].
const FEW_ROWS: usize = 16;

/// Weights (`rhs` elements) from which [`few_rows_product`] splits its work over threads.
const SPLIT_WEIGHTS: usize = 1 << 18;

/// Pieces [`few_rows_product`] splits a large product into: bands of `rhs` rows (row-major `rhs`)
/// or runs of columns (column-major). A count fixed by the shape, so the result does not depend
/// on the threads.
const PIECES: usize = 8;

/// `lhs · rhs (+ bias)` for a few rows of `lhs` and `rhs` with contiguous rows or columns: one
/// pass over `rhs` in its memory order, read in place.
///
/// A decoding step multiplies one row per sequence by every weight matrix of the model. gemm
/// packs the whole right-hand matrix into its own layout at every call, which for a few rows
/// costs more than the product and doubles the memory traffic of a step that is bound by it.
/// Here each element of `rhs` is read once, streaming, and used for every row; every output
/// element is summed in a fixed order, so the result depends neither on the thread count nor on
/// the other rows of the batch.
fn few_rows_product(lhs: MatRef, rhs: MatRef, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: {m}x{k} times {}x{n}", rhs.rows);
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "matmul: view outside its data"
    );
    let mut out = match bias {
        Some(bias) => bias.repeat(m),
        None => vec![0.0; m * n],
    };
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    let at = |i: usize, p: usize| {
        lhs.data[(lhs.offset as isize + i as isize * lhs.row_stride + p as isize * lhs.col_stride)
            as usize]
    };
    let x: Vec<f32> = (0..m).flat_map(|i| (0..k).map(move |p| at(i, p))).collect();
    // Small matrices stay on the calling thread: tasks and partial buffers would cost more than
    // the product. The split depends on `rhs` alone, so a row's sums never depend on the batch.
    let row_major = rhs.col_stride == 1;
    if k * n < SPLIT_WEIGHTS {
        accumulate_few_rows(&x, k, rhs, if row_major { 0..k } else { 0..n }, &mut out);
        return out;
    }
    if row_major {
        // Each band of rhs rows adds its share to a partial product; the partials are then
        // added in band order.
        let band = k.div_ceil(PIECES);
        let partials: Vec<Vec<f32>> = (0..k)
            .into_par_iter()
            .step_by(band)
            .map(|start| {
                let mut partial = vec![0.0f32; m * n];
                accumulate_few_rows(&x, k, rhs, start..(start + band).min(k), &mut partial);
                partial
            })
            .collect();
        for partial in partials {
            for (o, p) in out.iter_mut().zip(partial) {
                *o += p;
            }
        }
    } else {
        let run = n.div_ceil(PIECES);
        let runs: Vec<(usize, Vec<f32>)> = (0..n)
            .into_par_iter()
            .step_by(run)
            .map(|start| {
                let columns = start..(start + run).min(n);
                let mut block = vec![0.0f32; m * columns.len()];
                accumulate_few_rows(&x, k, rhs, columns, &mut block);
                (start, block)
            })
            .collect();
        for (start, block) in runs {
            let width = block.len() / m;
            for (i, row) in block.chunks_exact(width).enumerate() {
                for (o, v) in out[i * n + start..][..width].iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
    }
    out
}

/// Adds `x · rhs` over `range` to `out`, for `rhs` with contiguous rows or columns.
///
/// Row-major `rhs`: `range` is a band of its rows, read once in order, each added to every row
/// of `out` (`[m, n]`) scaled by `x`. Column-major `rhs` (a transposed row-major matrix, as the
/// tied output embedding): `range` is a run of its columns, each read once and dotted with every
/// row of `x` into `out` (`[m, range.len()]`).
fn accumulate_few_rows(
    x: &[f32],
    k: usize,
    rhs: MatRef,
    range: std::ops::Range<usize>,
    out: &mut [f32],
) {
    widest_simd!(kernel => accumulate_few_rows_body(x: &[f32], k: usize, rhs: MatRef, range: std::ops::Range<usize>, out: &mut [f32]));
    kernel(x, k, rhs, range, out)
}

#[inline(always)]
fn accumulate_few_rows_body(
    x: &[f32],
    k: usize,
    rhs: MatRef,
    range: std::ops::Range<usize>,
    out: &mut [f32],
) {
    if rhs.col_stride == 1 {
        let n = rhs.cols;
        for p in range {
            let start = (rhs.offset as isize + p as isize * rhs.row_stride) as usize;
            let weights = &rhs.data[start..start + n];
            for (row, xs) in out.chunks_exact_mut(n).zip(x.chunks_exact(k)) {
                let scale = xs[p];
                for (o, &w) in row.iter_mut().zip(weights) {
                    *o += scale * w;
                }
            }
        }
    } else {
        let width = range.len();
        for (c, j) in range.enumerate() {
            let start = (rhs.offset as isize + j as isize * rhs.col_stride) as usize;
            let column = &rhs.data[start..start + k];
            for (i, xs) in x.chunks_exact(k).enumerate() {
                out[i * width + c] += crate::dot(xs, column);
            }
        }
    }
}

/// `lhs[g] · rhs[g]` for every `g`, the products stacked in one row-major buffer
/// `[count × lhs.rows × rhs.cols]`: the batched products of attention, one product per task
/// (each on one thread, as they are small and many).
///
/// # Panics
/// As [`matmul`], or when the two lists differ in length or in their matrices' shapes.
pub fn matmul_batched(lhs: &[MatRef], rhs: &[MatRef]) -> Vec<f32> {
    assert_eq!(lhs.len(), rhs.len(), "matmul_batched: operand counts");
    let Some((first_lhs, first_rhs)) = lhs.first().zip(rhs.first()) else {
        return Vec::new();
    };
    let (m, n) = (first_lhs.rows, first_rhs.cols);
    let same_shapes = first_lhs.cols == first_rhs.rows
        && lhs.iter().all(|l| (l.rows, l.cols) == (m, first_lhs.cols))
        && rhs.iter().all(|r| (r.rows, r.cols) == (first_rhs.rows, n));
    assert!(
        same_shapes,
        "matmul_batched: every product must have the same shape"
    );
    let mut out = Vec::with_capacity(lhs.len() * m * n);
    let spare = &mut out.spare_capacity_mut()[..lhs.len() * m * n];
    if m * n > 0 {
        spare
            .par_chunks_mut(m * n)
            .zip(lhs.par_iter().zip(rhs))
            .for_each(|(out, (&l, &r))| product_into(out, l, r, false, gemm::Parallelism::None));
    }
    // SAFETY: every product wrote its m·n elements (gemm writes every output element when it
    // does not read them).
    unsafe { out.set_len(lhs.len() * m * n) };
    out
}

/// Column sums of a row-major `[rows × cols]` matrix, summed in row order (a bias gradient).
pub fn column_sums(values: &[f32], cols: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; cols];
    for row in values.chunks_exact(cols.max(1)) {
        for (sum, &v) in sums.iter_mut().zip(row) {
            *sum += v;
        }
    }
    sums
}

/// `out = (accumulate ? out : 0) + lhs · rhs`, `out` row-major; it is only read when
/// `accumulate`.
fn product_into(
    out: &mut [MaybeUninit<f32>],
    lhs: MatRef,
    rhs: MatRef,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: {m}x{k} times {}x{n}", rhs.rows);
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "matmul: view outside its data"
    );
    assert_eq!(out.len(), m * n, "matmul: output size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.iter_mut().for_each(|slot| {
                slot.write(0.0);
            });
        }
        return;
    }
    // SAFETY: both views were checked to lie inside their slices and `out` to hold m·n
    // elements (laid out row-major); gemm reads `out` only when `read_dst` is set, in which case
    // the caller initialised it.
    unsafe {
        gemm_into(
            out.as_mut_ptr().cast::<f32>(),
            n,
            lhs,
            rhs,
            accumulate,
            parallelism,
        )
    }
}

/// `dst = (accumulate ? dst : 0) + lhs · rhs` through gemm, `dst` row-major with `row_stride`.
///
/// # Safety
/// Both views must lie inside their data and `dst` must hold `lhs.rows` rows of `row_stride`
/// (the last one `rhs.cols` long), initialised where `accumulate` reads them.
unsafe fn gemm_into(
    dst: *mut f32,
    row_stride: usize,
    lhs: MatRef,
    rhs: MatRef,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst,
            1,
            row_stride as isize,
            accumulate,
            lhs.ptr(),
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr(),
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `dst = (accumulate ? dst : 0) + lhs · rhs` on one thread, where `dst` is the
/// `lhs.rows × rhs.cols` matrix at `offset` in `data` with `row_stride` between its rows (a block
/// of a larger row-major buffer).
///
/// # Panics
/// When the shapes do not chain or a matrix reaches outside its data.
pub(crate) fn product_into_block(
    data: &mut [f32],
    offset: usize,
    row_stride: usize,
    lhs: MatRef,
    rhs: MatRef,
    accumulate: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: {m}x{k} times {}x{n}", rhs.rows);
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "matmul: view outside its data"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        row_stride >= n && offset + (m - 1) * row_stride + n <= data.len(),
        "matmul: output block outside its buffer"
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                data[offset + row * row_stride..][..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: both views and the output block were checked to lie inside their slices.
    unsafe {
        gemm_into(
            data.as_mut_ptr().add(offset),
            row_stride,
            lhs,
            rhs,
            accumulate,
            gemm::Parallelism::None,
        )
    }
}

/// All threads for a product of at least [`PARALLEL_THRESHOLD`] multiply-adds, else the caller's.
fn parallelism_for(lhs: MatRef, rhs: MatRef) -> gemm::Parallelism {
    let work = lhs.rows.saturating_mul(lhs.cols).saturating_mul(rhs.cols);
    if work >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values;

    /// The product in f64, element by element.
    fn naive(lhs: MatRef, rhs: MatRef) -> Vec<f64> {
        let at = |m: &MatRef, i: usize, j: usize| {
            let index = m.offset as isize + i as isize * m.row_stride + j as isize * m.col_stride;
            m.data[index as usize] as f64
        };
        let mut out = vec![0.0; lhs.rows * rhs.cols];
        for i in 0..lhs.rows {
            for j in 0..rhs.cols {
                out[i * rhs.cols + j] =
                    (0..lhs.cols).map(|p| at(&lhs, i, p) * at(&rhs, p, j)).sum();
            }
        }
        out
    }

    fn assert_close(actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()),
                "[{i}]: {a} vs {e}"
            );
        }
    }

    #[test]
    fn a_product_with_bias_and_transposed_operands_matches_the_naive_sum() {
        let (m, k, n) = (37, 70, 45);
        let a = test_values(m * k, 1, -1.0, 1.0);
        let b = test_values(n * k, 2, -1.0, 1.0);
        let bias = test_values(n, 3, -1.0, 1.0);
        // rhs is read through a transposed view of an [n, k] matrix.
        let lhs = MatRef::row_major(&a, m, k);
        let rhs = MatRef::row_major(&b, n, k).t();
        let got = matmul(lhs, rhs, Some(&bias));
        let mut expected = naive(lhs, rhs);
        for (i, e) in expected.iter_mut().enumerate() {
            *e += bias[i % n] as f64;
        }
        assert_close(&got, &expected);
    }

    #[test]
    fn a_large_product_splits_over_threads_and_gives_the_same_bits() {
        let (m, k, n) = (256, 200, 192);
        let a = test_values(m * k, 4, -1.0, 1.0);
        let b = test_values(k * n, 5, -1.0, 1.0);
        let (lhs, rhs) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        let parallel = matmul(lhs, rhs, None);
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| matmul(lhs, rhs, None));
        assert_eq!(parallel, single);
        assert_close(&parallel, &naive(lhs, rhs));
    }

    #[test]
    fn a_batch_of_strided_products_matches_each_product() {
        let (count, m, k, n) = (5, 7, 6, 9);
        let a = test_values(count * m * k, 9, -1.0, 1.0);
        let b = test_values(count * n * k, 10, -1.0, 1.0);
        let lhs: Vec<MatRef> = (0..count)
            .map(|g| MatRef {
                offset: g * m * k,
                ..MatRef::row_major(&a, m, k)
            })
            .collect();
        // Each rhs is the transpose of an [n, k] block, as attention reads keys.
        let rhs: Vec<MatRef> = (0..count)
            .map(|g| {
                MatRef {
                    offset: g * n * k,
                    ..MatRef::row_major(&b, n, k)
                }
                .t()
            })
            .collect();
        let got = matmul_batched(&lhs, &rhs);
        let expected: Vec<f64> = lhs
            .iter()
            .zip(&rhs)
            .flat_map(|(&l, &r)| naive(l, r))
            .collect();
        assert_close(&got, &expected);
    }

    /// A decoding step's product (a few rows, `rhs` row-major or a transposed view, with and
    /// without bias) matches the naive sum, on any thread count, and a row's result does not
    /// depend on the other rows of the batch.
    #[test]
    fn a_few_rows_take_one_pass_over_the_weights_with_the_same_result() {
        // On the calling thread, and split into pieces.
        for shape in [(8, 70, 600), (4, 300, 900)] {
            few_rows_case(shape);
        }
    }

    fn few_rows_case((m, k, n): (usize, usize, usize)) {
        let a = test_values(m * k, 11, -1.0, 1.0);
        let b = test_values(k * n, 12, -1.0, 1.0);
        let bias = test_values(n, 13, -1.0, 1.0);
        let lhs = MatRef::row_major(&a, m, k);
        for rhs in [MatRef::row_major(&b, k, n), MatRef::row_major(&b, n, k).t()] {
            for bias in [None, Some(bias.as_slice())] {
                let got = matmul(lhs, rhs, bias);
                let mut expected = naive(lhs, rhs);
                if let Some(bias) = bias {
                    for (i, e) in expected.iter_mut().enumerate() {
                        *e += bias[i % n] as f64;
                    }
                }
                assert_close(&got, &expected);
                let single = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap()
                    .install(|| matmul(lhs, rhs, bias));
                assert_eq!(got, single);
                let third_row = MatRef {
                    offset: 3 * k,
                    ..MatRef::row_major(&a, 1, k)
                };
                assert_eq!(matmul(third_row, rhs, bias), got[3 * n..4 * n]);
            }
        }
    }

    #[test]
    fn column_sums_add_each_column() {
        assert_eq!(
            column_sums(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3),
            [5.0, 7.0, 9.0]
        );
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_view_past_its_data_is_refused() {
        let a = [0.0f32; 4];
        let lhs = MatRef::row_major(&a, 2, 3);
        matmul(lhs, MatRef::row_major(&a, 3, 1), None);
    }
}
