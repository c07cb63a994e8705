//! Asymmetric 4-bit weights in groups (AWQ / RTN), kept in a layout made for the CPU
//! matmul rather than AutoAWQ's GPU layout (the file format lives in `awq_gemm.rs`):
//!
//! - codes row-major `[out, in]`, eight per `u32`: element `8w + i` of a row sits in
//!   bits `4i..4i+4` of word `w`, so one broadcast and one variable shift unpack eight
//!   consecutive inputs into eight SIMD lanes;
//! - per `(row, group)` a scale `s` (an f16 value, widened) and an integer zero
//!   point `z`, so `w = (q - z) * s`, exact in f32.
//!
//! `y = Σ_g s_g (Σ_{k∈g} q_k x_k − z_g Σ_{k∈g} x_k)`: the group sums of `x` are
//! computed once per token, the inner loop is one FMA per code. Decoding (a few
//! tokens) streams the 4-bit codes once per token; larger batches dequantize the
//! matrix transiently and use the f32 GEMM.

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
        if group == 0 || group % 8 != 0 || cols % group != 0 {
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
        if n > FUSED_MAX_TOKENS {
            return dense_matmul(x, n, self.cols, &self.dequantize(), self.rows);
        }
        let groups = self.groups();
        let xsums: Vec<f32> = x.chunks_exact(self.group).map(|g| g.iter().sum()).collect();
        let kernel = row_kernel();
        let words_per_row = self.cols / 8;
        let rows_per_task = (self.rows / (rayon::current_num_threads() * 4)).max(8);
        // Row-major [rows, n]: each task fills whole rows.
        let mut y_rows = vec![0f32; self.rows * n];
        y_rows.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(task, ys)| {
            for (j, yr) in ys.chunks_exact_mut(n).enumerate() {
                let r = task * rows_per_task + j;
                let words = &self.words[r * words_per_row..(r + 1) * words_per_row];
                let scales = &self.scales[r * groups..(r + 1) * groups];
                let zeros = &self.zeros[r * groups..(r + 1) * groups];
                for (t, y) in yr.iter_mut().enumerate() {
                    let xt = &x[t * self.cols..(t + 1) * self.cols];
                    let st = &xsums[t * groups..(t + 1) * groups];
                    *y = kernel(words, xt, scales, zeros, st, self.group);
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

/// One output: `Σ_g s_g (Σ q x − z_g xsum_g)` over a row's words.
type RowKernel = fn(&[u32], &[f32], &[f32], &[f32], &[f32], usize) -> f32;

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

fn row_portable(words: &[u32], x: &[f32], scales: &[f32], zeros: &[f32], xsums: &[f32], group: usize) -> f32 {
    let wpg = group / 8;
    let mut y = 0f32;
    for (g, gw) in words.chunks_exact(wpg).enumerate() {
        let mut acc = 0f32;
        for (w, &word) in gw.iter().enumerate() {
            let xs = &x[g * group + w * 8..g * group + w * 8 + 8];
            for (i, xv) in xs.iter().enumerate() {
                acc += ((word >> (4 * i)) & 0xF) as f32 * xv;
            }
        }
        y += scales[g] * (acc - zeros[g] * xsums[g]);
    }
    y
}

#[cfg(target_arch = "x86_64")]
fn row_avx2_entry(words: &[u32], x: &[f32], scales: &[f32], zeros: &[f32], xsums: &[f32], group: usize) -> f32 {
    // SAFETY: selected only after runtime detection of AVX2 and FMA; the slices have
    // the lengths `matmul` gives them (cols/8 words, cols inputs, one scale per group).
    unsafe { row_avx2(words, x, scales, zeros, xsums, group) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(words: &[u32], x: &[f32], scales: &[f32], zeros: &[f32], xsums: &[f32], group: usize) -> f32 {
    use std::arch::x86_64::*;
    let wpg = group / 8;
    let shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    let mask = _mm256_set1_epi32(0xF);
    let mut total = _mm256_setzero_ps();
    let mut correction = 0f32;
    let px = x.as_ptr();
    for g in 0..scales.len() {
        let mut acc = [_mm256_setzero_ps(); 4];
        let base = g * wpg;
        let mut w = 0;
        while w + 4 <= wpg {
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let word = _mm256_set1_epi32(*words.get_unchecked(base + w + k) as i32);
                let q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word, shifts), mask));
                *acc_k = _mm256_fmadd_ps(q, _mm256_loadu_ps(px.add((base + w + k) * 8)), *acc_k);
            }
            w += 4;
        }
        while w < wpg {
            let word = _mm256_set1_epi32(*words.get_unchecked(base + w) as i32);
            let q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word, shifts), mask));
            acc[0] = _mm256_fmadd_ps(q, _mm256_loadu_ps(px.add((base + w) * 8)), acc[0]);
            w += 1;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        total = _mm256_fmadd_ps(_mm256_set1_ps(scales[g]), sum, total);
        correction += scales[g] * zeros[g] * xsums[g];
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), total);
    lanes.iter().sum::<f32>() - correction
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
    fn kernels_equal_the_dense_product() {
        for (rows, cols, group, n) in [(5, 64, 64, 1), (40, 128, 32, 3), (17, 96, 16, 8), (9, 64, 32, 12)] {
            let w = sample(rows, cols, group);
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let want = dense_matmul(&x, n, cols, &w.dequantize(), rows);
            let got = w.matmul(&x, n);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{rows}x{cols}/{group} n={n}: {a} vs {b}");
            }
            let xs: Vec<f32> = x[..cols].chunks_exact(group).map(|g| g.iter().sum()).collect();
            let portable = row_portable(
                &w.words[..cols / 8],
                &x[..cols],
                &w.scales[..cols / group],
                &w.zeros[..cols / group],
                &xs,
                group,
            );
            assert!((portable - want[0]).abs() <= 1e-4 * (1.0 + want[0].abs()));
        }
    }

    #[test]
    fn refuses_groups_that_do_not_fit() {
        let codes = vec![0u8; 48];
        assert!(Int4Weight::from_codes(&codes, &[0], &[half::f16::ONE], 1, 48, 64).is_err());
        assert!(Int4Weight::from_codes(&codes, &[0, 0, 0, 0], &[half::f16::ONE; 4], 1, 48, 12).is_err());
    }
}
