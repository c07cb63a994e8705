//! Matrix products with bf16 inputs and f32 sums on AVX-512 BF16 (`VDPBF16PS`: each
//! f32 lane adds the products of one pair of bf16 values), about twice the f32 FMA
//! rate of the same core. Used by the packed encoder (`rag::encoders`) for its
//! linear layers and attention, and by training for the frozen NF4 base.
//!
//! `C (m x n) = A (m x k) . B (k x n)`. `B` is packed once ([`PackedB`]) into panels of
//! [`NR`] columns: for each pair of rows `(2p, 2p+1)`, 32 lanes of `[B(2p, j), B(2p+1, j)]`.
//! `A` is rounded to bf16 (to nearest, ties to even) per call and interleaved by
//! [`MR`]-row blocks, so the micro-kernel reads both operands sequentially and keeps
//! an `MR x NR` tile of sums in 24 of the 32 vector registers.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Columns per panel of `B` (two vectors of 16 f32 sums).
const NR: usize = 32;
/// Rows of `A` per micro-kernel tile.
const MR: usize = 12;
/// Rows of `A` per parallel task of [`matmul`] (a whole number of tiles).
const ROWS_PER_TASK: usize = MR * 8;

/// Whether this CPU runs the kernel (AVX-512 F and BF16).
pub fn supported() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

/// `f32` rounded to the nearest bf16 (ties to even), as its 16 bits. NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// A `k x n` right-hand matrix packed for the kernel.
pub struct PackedB {
    k: usize,
    n: usize,
    /// Panels of `NR` columns, each `ceil(k/2)` pairs of rows x `NR` lanes x 2 values.
    data: Vec<u16>,
}

impl PackedB {
    /// Packs `B` whose column `c` is `src[c * stride..c * stride + k]` (`B = M^T` for a
    /// row-major `n x k` matrix `M`: a linear layer's weight as PyTorch stores it, or
    /// attention's keys).
    pub fn from_columns(src: &[f32], stride: usize, k: usize, n: usize) -> Self {
        assert!(stride >= k && (n == 0 || src.len() >= (n - 1) * stride + k), "columns outside src");
        let pairs = k.div_ceil(2);
        let mut data = vec![0u16; n.div_ceil(NR) * pairs * NR * 2];
        for c in 0..n {
            let (panel, lane) = (c / NR, c % NR);
            let column = &src[c * stride..c * stride + k];
            let out = &mut data[panel * pairs * NR * 2 + 2 * lane..];
            for (p, two) in column.chunks(2).enumerate() {
                out[p * NR * 2] = to_bf16(two[0]);
                if let Some(&hi) = two.get(1) {
                    out[p * NR * 2 + 1] = to_bf16(hi);
                }
            }
        }
        PackedB { k, n, data }
    }

    /// Packs `B` whose row `r` is `src[r * stride..r * stride + n]` (attention's values).
    pub fn from_rows(src: &[f32], stride: usize, k: usize, n: usize) -> Self {
        assert!(stride >= n && (k == 0 || src.len() >= (k - 1) * stride + n), "rows outside src");
        let pairs = k.div_ceil(2);
        let mut data = vec![0u16; n.div_ceil(NR) * pairs * NR * 2];
        for p in 0..pairs {
            let lo = &src[2 * p * stride..2 * p * stride + n];
            let hi = (2 * p + 1 < k).then(|| &src[(2 * p + 1) * stride..(2 * p + 1) * stride + n]);
            for (panel, lo) in lo.chunks(NR).enumerate() {
                let out = &mut data[(panel * pairs + p) * NR * 2..][..2 * lo.len()];
                for (lane, &v) in lo.iter().enumerate() {
                    out[2 * lane] = to_bf16(v);
                }
                if let Some(hi) = hi {
                    for (lane, &v) in hi[panel * NR..panel * NR + lo.len()].iter().enumerate() {
                        out[2 * lane + 1] = to_bf16(v);
                    }
                }
            }
        }
        PackedB { k, n, data }
    }

    /// Rows of `B` (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B` (the output width).
    pub fn n(&self) -> usize {
        self.n
    }
}

/// `out[i * ldc + j] = sum_r a[i * lda + r] * B(r, j) + bias[j]` for `i < m`, `j < b.n()`,
/// with `a` and `B` rounded to bf16 and sums in f32. Rows are spread over rayon's pool
/// when `parallel`. Panics unless [`supported`] (callers check once, at load).
#[allow(clippy::too_many_arguments)] // BLAS-style: each operand with its row stride
pub fn matmul(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldc: usize,
    parallel: bool,
) {
    assert!(supported(), "matmul needs AVX-512 BF16");
    assert!(lda >= b.k && ldc >= b.n, "row strides shorter than the rows");
    if m == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + b.k && out.len() >= (m - 1) * ldc + b.n, "matrices shorter than m rows");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), b.n, "bias length");
    }
    let task = |(t, out): (usize, &mut [f32])| {
        let first = t * ROWS_PER_TASK;
        let rows = (m - first).min(ROWS_PER_TASK);
        // SAFETY: the CPU has AVX-512 F and BF16 (asserted above); the slices hold the rows read and written.
        unsafe { rows_block(&a[first * lda..], lda, rows, b, bias, out, ldc) }
    };
    // Each task owns whole rows of `out`; the last one may hold fewer than `ldc` columns of its last row.
    let chunk = ROWS_PER_TASK * ldc;
    let out = &mut out[..(m - 1) * ldc + b.n];
    if parallel && m > ROWS_PER_TASK {
        out.par_chunks_mut(chunk).enumerate().for_each(task);
    } else {
        out.chunks_mut(chunk).enumerate().for_each(task);
    }
}

/// One task: `rows` (at most [`ROWS_PER_TASK`]) rows of `a` times `B` into `out`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn rows_block(
    a: &[f32],
    lda: usize,
    rows: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldc: usize,
) {
    let pairs = b.k.div_ceil(2);
    let blocks = rows.div_ceil(MR);
    // A in bf16 pairs, interleaved: [block][pair][row of the block].
    let mut packed = vec![0u32; blocks * pairs * MR];
    // One row in bf16, an odd k's last pair padded with 0.
    let mut row_bf16 = vec![0u16; 2 * pairs];
    for i in 0..rows {
        let (block, r) = (i / MR, i % MR);
        row_to_bf16(&a[i * lda..i * lda + b.k], &mut row_bf16[..b.k]);
        for (p, two) in row_bf16.chunks_exact(2).enumerate() {
            packed[(block * pairs + p) * MR + r] = two[0] as u32 | ((two[1] as u32) << 16);
        }
    }
    let mut tile = [0f32; MR * NR];
    for panel in 0..b.n.div_ceil(NR) {
        let bp = &b.data[panel * pairs * NR * 2..(panel + 1) * pairs * NR * 2];
        let c0 = panel * NR;
        let cols = (b.n - c0).min(NR);
        for block in 0..blocks {
            let ap = &packed[block * pairs * MR..(block + 1) * pairs * MR];
            kernel(ap, bp, pairs, &mut tile);
            let r0 = block * MR;
            for r in 0..(rows - r0).min(MR) {
                let dst = &mut out[(r0 + r) * ldc + c0..(r0 + r) * ldc + c0 + cols];
                let src = &tile[r * NR..r * NR + cols];
                match bias {
                    Some(bias) => {
                        for ((d, s), b) in dst.iter_mut().zip(src).zip(&bias[c0..c0 + cols]) {
                            *d = s + b;
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
    }
}

/// `dst[i] = to_bf16(src[i])`, 32 at a time with `VCVTNE2PS2BF16` (which also rounds
/// to nearest even; it flushes denormals to zero, values under 1.2e-38).
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn row_to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len());
    let mut chunks = src.chunks_exact(32);
    for (i, c) in chunks.by_ref().enumerate() {
        // SAFETY: c holds 32 values and dst[32 i..32 i + 32] exists (same length as src).
        let lo = _mm512_loadu_ps(c.as_ptr());
        let hi = _mm512_loadu_ps(c.as_ptr().add(16));
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr().add(32 * i) as *mut _, both);
    }
    let done = src.len() - chunks.remainder().len();
    for (d, &x) in dst[done..].iter_mut().zip(chunks.remainder()) {
        *d = to_bf16(x);
    }
}

/// The micro-kernel: `tile (MR x NR) = A block (pairs x MR, interleaved) . B panel`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel(a: &[u32], b: &[u16], pairs: usize, tile: &mut [f32; MR * NR]) {
    debug_assert!(a.len() >= pairs * MR && b.len() >= pairs * NR * 2);
    let mut c = [[_mm512_setzero_ps(); 2]; MR];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for p in 0..pairs {
        // SAFETY: p < pairs; the panel holds pairs * NR * 2 values and the block pairs * MR.
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(p * NR * 2) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(p * NR * 2 + NR) as *const _));
        for (r, acc) in c.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(p * MR + r) as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
        }
    }
    for (r, acc) in c.iter().enumerate() {
        _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR), acc[0]);
        _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR + 16), acc[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 value of bf16 bits.
    fn from_bf16(bits: u16) -> f32 {
        f32::from_bits((bits as u32) << 16)
    }

    /// Deterministic values in about [-2, 2].
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 4001) as f32 / 1000.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is half-way between 1 and 1 + 2^-7: ties to the even one, 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is half-way between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up.
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn vector_rounding_equals_scalar_rounding() {
        if !supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        // Ties, signs, large and small values in the vector part, 19 more in the scalar tail.
        let mut src = vec![1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -0.0, 65504.0, 1e-30, f32::INFINITY, -3.0e38];
        src.extend(values(76, 9));
        let mut dst = vec![0u16; src.len()];
        // SAFETY: the CPU has AVX-512 BF16 (checked above).
        unsafe { row_to_bf16(&src, &mut dst) };
        for (x, got) in src.iter().zip(&dst) {
            assert_eq!(*got, to_bf16(*x), "{x}");
        }
    }

    /// Against a plain triple loop over the bf16-rounded inputs, on shapes that leave
    /// partial tiles, panels, tasks and an odd inner dimension, with strides and bias,
    /// B packed either way.
    #[test]
    fn matmul_equals_the_product_of_the_rounded_inputs() {
        if !supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        for &(m, k, n) in &[(1, 1, 1), (13, 37, 45), (97, 64, 32), (200, 384, 70), (5, 1536, 384)] {
            let (lda, ldc) = (k + 3, n + 5);
            let a = values(m * lda, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            // The same B packed from its columns (W, n x k) and from its rows (W^T, k x n).
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            for (b, parallel) in [
                (PackedB::from_columns(&w, k, k, n), false),
                (PackedB::from_columns(&w, k, k, n), true),
                (PackedB::from_rows(&wt, n, k, n), true),
            ] {
                let mut out = vec![f32::NAN; m * ldc];
                matmul(&a, lda, m, &b, Some(&bias), &mut out, ldc, parallel);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|r| {
                                from_bf16(to_bf16(a[i * lda + r])) as f64 * from_bf16(to_bf16(w[j * k + r])) as f64
                            })
                            .sum::<f64>()
                            + bias[j] as f64;
                        let got = out[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (k as f64).sqrt() * 4.0,
                            "({m},{k},{n}) [{i},{j}]: {got} vs {want}"
                        );
                    }
                    // Past the row's n columns nothing is written.
                    assert!(out[i * ldc + n..(i + 1) * ldc].iter().all(|x| x.is_nan()));
                }
            }
        }
    }
}
