//! Asymmetric 4-bit weights in groups (AWQ / RTN), kept in a layout made for the CPU
//! matmul rather than AutoAWQ's GPU layout (the file format lives in `awq_gemm.rs`):
//!
//! - codes row-major `[out, in]`, eight per `u32`: element `8w + i` of a row sits in
//!   bits `4i..4i+4` of word `w`; read as bytes, 16 bytes hold a block of 32
//!   inputs, the even ones in the low nibbles and the odd ones in the high nibbles;
//! - per `(row, group)` a scale `s` (an f16 value, widened) and an integer zero
//!   point `z`, so `w = (q - z) * s`, exact in f32.
//!
//! Decoding (up to [`FUSED_MAX_TOKENS`] tokens) runs an integer kernel, as llama.cpp
//! does for its 4-bit formats: each token's activations are rounded to int8 in
//! blocks of 32 with one f32 step `d_b` each (`x̂ = d_b q̂`, at most `d_b / 2` off),
//! and `y = Σ_b s_g d_b Σ_{k∈b} q_k q̂_k − Σ_g s_g z_g Σ_{k∈g} x̂_k`, where the inner
//! sums are 32 u8×i8 products in two AVX2 instructions. The result is the exact
//! product of the dequantized weight with `x̂`. Larger batches (prefill,
//! perplexity) dequantize the matrix transiently and use the f32 GEMM on `x` itself,
//! as do groups that are not a multiple of 32 (only tiny test models have them).

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::{Error, Result};

/// Token count up to which the fused int4 kernel runs; above it the matrix is
/// dequantized for the call and multiplied with the f32 GEMM.
pub const FUSED_MAX_TOKENS: usize = 8;

/// A `[rows, cols]` matrix of 4-bit codes with per-group scales and zero points.
#[derive(Debug, Clone)]
pub struct Int4Weight {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// Inputs per quantization group.
    pub group: usize,
    words: Vec<u32>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
}

impl Int4Weight {
    /// Builds the matrix from row-major codes `[rows, cols]` (each 0..=15) and
    /// row-major `[rows, cols/group]` zero points and scales.
    pub fn from_codes(
        codes: &[u8],
        zeros: &[u8],
        scales: &[half::f16],
        rows: usize,
        cols: usize,
        group: usize,
    ) -> Result<Self> {
        if group == 0 || !group.is_multiple_of(8) || !cols.is_multiple_of(group) {
            return Err(Error::msg(format!(
                "int4: group size {group} must be a multiple of 8 dividing the {cols} input columns"
            )));
        }
        let groups = cols / group;
        if codes.len() != rows * cols || zeros.len() != rows * groups || scales.len() != rows * groups {
            return Err(Error::msg(format!("int4: sizes do not match a {rows}x{cols} matrix in groups of {group}")));
        }
        if let Some(bad) = codes.iter().chain(zeros).find(|&&c| c > 15) {
            return Err(Error::msg(format!("int4: value {bad} is not a 4-bit code")));
        }
        let words = codes
            .chunks_exact(8)
            .map(|c| c.iter().enumerate().fold(0u32, |w, (i, &q)| w | ((q as u32) << (4 * i))))
            .collect();
        Ok(Int4Weight {
            rows,
            cols,
            group,
            words,
            scales: scales.iter().map(|s| s.to_f32()).collect(),
            zeros: zeros.iter().map(|&z| z as f32).collect(),
        })
    }

    /// Groups per row.
    pub fn groups(&self) -> usize {
        self.cols / self.group
    }

    /// The code of element `(r, c)`.
    pub fn code(&self, r: usize, c: usize) -> u8 {
        ((self.words[(r * self.cols + c) / 8] >> (4 * (c % 8))) & 0xF) as u8
    }

    /// Zero point of `(row, group)`.
    pub fn zero(&self, r: usize, g: usize) -> u8 {
        self.zeros[r * self.groups() + g] as u8
    }

    /// Scale of `(row, group)` (an f16 value).
    pub fn scale(&self, r: usize, g: usize) -> half::f16 {
        half::f16::from_f32(self.scales[r * self.groups() + g])
    }

    /// Bytes held: codes, scales and zero points.
    pub fn bytes(&self) -> usize {
        self.words.len() * 4 + (self.scales.len() + self.zeros.len()) * 4
    }

    /// The weight in f32, row-major: `(q - z) * s` per element.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        out.par_chunks_mut(self.cols).enumerate().for_each(|(r, row)| self.dequantize_row(r, row));
        out
    }

    fn dequantize_row(&self, r: usize, row: &mut [f32]) {
        let groups = self.groups();
        let words = &self.words[r * self.cols / 8..(r + 1) * self.cols / 8];
        for (w, (&word, out)) in words.iter().zip(row.chunks_exact_mut(8)).enumerate() {
            let g = r * groups + w * 8 / self.group;
            let (z, s) = (self.zeros[g], self.scales[g]);
            for (i, v) in out.iter_mut().enumerate() {
                *v = (((word >> (4 * i)) & 0xF) as f32 - z) * s;
            }
        }
    }

    /// `x Wᵀ` for `x` row-major `[n, cols]`: `[n, rows]`.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        if n > FUSED_MAX_TOKENS || !self.group.is_multiple_of(ACT_BLOCK) {
            return dense_matmul(x, n, self.cols, &self.dequantize(), self.rows);
        }
        let groups = self.groups();
        let acts: Vec<Int8Acts> = x.chunks_exact(self.cols).map(|xt| Int8Acts::quantize(xt, self.group)).collect();
        let kernel = row_kernel();
        let words_per_row = self.cols / 8;
        let rows_per_task = (self.rows / (rayon::current_num_threads() * 4)).max(8);
        // Row-major [rows, n]: each task fills whole rows.
        let mut y_rows = vec![0f32; self.rows * n];
        y_rows.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(task, ys)| {
            for (j, yr) in ys.chunks_exact_mut(n).enumerate() {
                let r = task * rows_per_task + j;
                let row = WeightRow {
                    words: &self.words[r * words_per_row..(r + 1) * words_per_row],
                    scales: &self.scales[r * groups..(r + 1) * groups],
                    zeros: &self.zeros[r * groups..(r + 1) * groups],
                };
                for (y, a) in yr.iter_mut().zip(&acts) {
                    *y = kernel(&row, a);
                }
            }
        });
        if n == 1 {
            return y_rows;
        }
        let mut y = vec![0f32; n * self.rows];
        for (r, yr) in y_rows.chunks_exact(n).enumerate() {
            for (t, v) in yr.iter().enumerate() {
                y[t * self.rows + r] = *v;
            }
        }
        y
    }
}

/// Inputs per activation block of the integer kernel (one code block: 16 bytes).
const ACT_BLOCK: usize = 32;

/// One token's activations rounded to int8 for the integer kernel.
#[derive(Debug)]
struct Int8Acts {
    /// Per block of 32 inputs: the 16 even inputs, then the 16 odd ones.
    q: Vec<i8>,
    /// Per block: the step `d_b = max |x| / 127`.
    d: Vec<f32>,
    /// Per group: `Σ x̂` (the zero points' term).
    group_sums: Vec<f32>,
}

impl Int8Acts {
    fn quantize(x: &[f32], group: usize) -> Self {
        let blocks = x.len() / ACT_BLOCK;
        let mut acts =
            Int8Acts { q: vec![0; x.len()], d: Vec::with_capacity(blocks), group_sums: vec![0.0; x.len() / group] };
        for (b, (xb, qb)) in x.chunks_exact(ACT_BLOCK).zip(acts.q.chunks_exact_mut(ACT_BLOCK)).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (j, pair) in xb.chunks_exact(2).enumerate() {
                let (even, odd) = ((pair[0] * inv).round() as i8, (pair[1] * inv).round() as i8);
                qb[j] = even;
                qb[ACT_BLOCK / 2 + j] = odd;
                sum += even as i32 + odd as i32;
            }
            acts.d.push(d);
            acts.group_sums[b * ACT_BLOCK / group] += d * sum as f32;
        }
        acts
    }

    /// `x̂` in input order (tests).
    #[cfg(test)]
    fn dequantize(&self) -> Vec<f32> {
        let half = ACT_BLOCK / 2;
        (0..self.q.len())
            .map(|k| {
                let (b, i) = (k / ACT_BLOCK, k % ACT_BLOCK);
                self.d[b] * self.q[b * ACT_BLOCK + (i % 2) * half + i / 2] as f32
            })
            .collect()
    }
}

/// One row of an [`Int4Weight`]: its code words, scales and zero points.
struct WeightRow<'a> {
    words: &'a [u32],
    scales: &'a [f32],
    zeros: &'a [f32],
}

/// `x Wᵀ` through candle's f32 GEMM.
fn dense_matmul(x: &[f32], n: usize, cols: usize, w: &[f32], rows: usize) -> Vec<f32> {
    let dev = candle_core::Device::Cpu;
    let run = || -> candle_core::Result<Vec<f32>> {
        let x = candle_core::Tensor::from_slice(x, (n, cols), &dev)?;
        let w = candle_core::Tensor::from_slice(w, (rows, cols), &dev)?;
        x.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f32>()
    };
    // Shapes are checked by the caller; the CPU matmul of valid shapes cannot fail.
    run().unwrap_or_else(|_| vec![f32::NAN; n * rows])
}

/// One output: the dot product of a weight row with one token's int8 activations.
type RowKernel = fn(&WeightRow, &Int8Acts) -> f32;

fn row_kernel() -> RowKernel {
    static KERNEL: OnceLock<RowKernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return row_avx2_entry;
        }
        row_portable
    })
}

/// The zero points' term of a row: `Σ_g s_g z_g Σ_{k∈g} x̂_k`.
fn zero_term(row: &WeightRow, acts: &Int8Acts) -> f32 {
    row.scales.iter().zip(row.zeros).zip(&acts.group_sums).map(|((s, z), xs)| s * z * xs).sum()
}

fn row_portable(row: &WeightRow, acts: &Int8Acts) -> f32 {
    let blocks_per_group = acts.d.len() / row.scales.len();
    let half = ACT_BLOCK / 2;
    let mut y = 0f32;
    for (b, (words, q)) in row.words.chunks_exact(ACT_BLOCK / 8).zip(acts.q.chunks_exact(ACT_BLOCK)).enumerate() {
        let mut dot = 0i32;
        for j in 0..half {
            let byte = (words[j / 4] >> (8 * (j % 4))) & 0xFF;
            dot += (byte & 0xF) as i32 * q[j] as i32 + (byte >> 4) as i32 * q[half + j] as i32;
        }
        y += row.scales[b / blocks_per_group] * acts.d[b] * dot as f32;
    }
    y - zero_term(row, acts)
}

#[cfg(target_arch = "x86_64")]
fn row_avx2_entry(row: &WeightRow, acts: &Int8Acts) -> f32 {
    // SAFETY: selected only after runtime detection of AVX2 and FMA; `matmul` gives
    // every row cols/8 words and every token cols activations in whole blocks.
    unsafe { row_avx2(row, acts) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(row: &WeightRow, acts: &Int8Acts) -> f32 {
    use std::arch::x86_64::*;
    let blocks_per_group = acts.d.len() / row.scales.len();
    let codes = row.words.as_ptr() as *const __m128i;
    let xq = acts.q.as_ptr() as *const __m256i;
    let d = acts.d.as_ptr();
    // Block b's 32 products, summed in pairs of lanes into 8 i32 and widened to f32.
    let block = |b: usize| {
        let low = _mm_set1_epi8(0x0F);
        let bytes = _mm_loadu_si128(codes.add(b));
        let q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), _mm_and_si128(bytes, low));
        let pairs = _mm256_maddubs_epi16(q, _mm256_loadu_si256(xq.add(b)));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    };
    // Two accumulators keep consecutive blocks' FMAs independent.
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (g, &scale) in row.scales.iter().enumerate() {
        let first = g * blocks_per_group;
        let mut k = 0;
        while k + 2 <= blocks_per_group {
            let b = first + k;
            acc0 = _mm256_fmadd_ps(block(b), _mm256_set1_ps(scale * *d.add(b)), acc0);
            acc1 = _mm256_fmadd_ps(block(b + 1), _mm256_set1_ps(scale * *d.add(b + 1)), acc1);
            k += 2;
        }
        if k < blocks_per_group {
            let b = first + k;
            acc0 = _mm256_fmadd_ps(block(b), _mm256_set1_ps(scale * *d.add(b)), acc0);
        }
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1));
    lanes.iter().sum::<f32>() - zero_term(row, acts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize, cols: usize, group: usize) -> Int4Weight {
        let codes: Vec<u8> = (0..rows * cols).map(|i| (i * 7 % 16) as u8).collect();
        let groups = rows * cols / group;
        let zeros: Vec<u8> = (0..groups).map(|i| (i * 5 % 16) as u8).collect();
        let scales: Vec<half::f16> = (0..groups).map(|i| half::f16::from_f32(0.01 + 0.003 * (i % 7) as f32)).collect();
        Int4Weight::from_codes(&codes, &zeros, &scales, rows, cols, group).unwrap()
    }

    #[test]
    fn codes_round_trip_and_dequantize_exactly() {
        let w = sample(3, 32, 16);
        assert_eq!(w.code(1, 5), ((32 + 5) * 7 % 16) as u8);
        let dense = w.dequantize();
        let (r, c) = (2, 17);
        let g = r * 2 + 1;
        let want = (((r * 32 + c) * 7 % 16) as f32 - (g * 5 % 16) as f32)
            * half::f16::from_f32(0.01 + 0.003 * (g % 7) as f32).to_f32();
        assert_eq!(dense[r * 32 + c], want);
    }

    #[test]
    fn activations_round_to_int8_within_half_a_step() {
        let x: Vec<f32> = (0..128).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0 * (1 + i / 32) as f32).collect();
        let acts = Int8Acts::quantize(&x, 64);
        assert_eq!((acts.d.len(), acts.group_sums.len()), (4, 2));
        assert_eq!(acts.d[0], 2.0 / 127.0, "block 0's largest magnitude is 14/7");
        for (k, (xh, xv)) in acts.dequantize().iter().zip(&x).enumerate() {
            assert!((xh - xv).abs() <= acts.d[k / 32] / 2.0 * 1.0001, "input {k}: {xh} vs {xv}");
        }
        // x[0] = -2 is the block's extreme: exactly -127 steps; x[1] = (13 - 14)/7.
        assert_eq!((acts.q[0], acts.q[16]), (-127, (-1.0f32 / 7.0 / acts.d[0]).round() as i8));
        let sums: Vec<f32> = acts.dequantize().chunks(64).map(|g| g.iter().sum()).collect();
        for (a, b) in acts.group_sums.iter().zip(&sums) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn kernels_equal_the_dense_product_of_the_rounded_activations() {
        for (rows, cols, group, n) in [(5, 64, 64, 1), (40, 128, 32, 3), (17, 192, 64, 8), (9, 256, 128, 2)] {
            let w = sample(rows, cols, group);
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let x_hat: Vec<f32> =
                x.chunks_exact(cols).flat_map(|xt| Int8Acts::quantize(xt, group).dequantize()).collect();
            let want = dense_matmul(&x_hat, n, cols, &w.dequantize(), rows);
            let got = w.matmul(&x, n);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{rows}x{cols}/{group} n={n}: {a} vs {b}");
            }
            let row = WeightRow {
                words: &w.words[..cols / 8],
                scales: &w.scales[..cols / group],
                zeros: &w.zeros[..cols / group],
            };
            let portable = row_portable(&row, &Int8Acts::quantize(&x[..cols], group));
            assert!((portable - want[0]).abs() <= 1e-4 * (1.0 + want[0].abs()));
        }
    }

    #[test]
    fn large_batches_and_small_groups_multiply_the_exact_activations() {
        for (rows, cols, group, n) in [(9, 64, 32, 12), (17, 96, 16, 3)] {
            let w = sample(rows, cols, group);
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let want = dense_matmul(&x, n, cols, &w.dequantize(), rows);
            assert_eq!(w.matmul(&x, n), want);
        }
    }

    #[test]
    fn refuses_groups_that_do_not_fit() {
        let codes = vec![0u8; 48];
        assert!(Int4Weight::from_codes(&codes, &[0], &[half::f16::ONE], 1, 48, 64).is_err());
        assert!(Int4Weight::from_codes(&codes, &[0, 0, 0, 0], &[half::f16::ONE; 4], 1, 48, 12).is_err());
    }
}
