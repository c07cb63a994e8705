//! Symmetric 8-bit weights for the CPU: each row in blocks of [`PAIR`] (64) inputs,
//! one f32 scale `s = max |w| / 127` per block, `w ≈ s q` with `q` in -127..=127
//! (1.06 bytes per weight, as llama.cpp's `Q8_0`). Used for the LM head of a 4-bit
//! model at load time (AutoAWQ and vLLM keep it in fp16, so the checkpoint's
//! contract is untouched): on Qwen2.5-0.5B that head is 136M weights, the largest
//! single read of a decoded token.
//!
//! The product runs on int8 activations ([`Int8Acts`]), whose steps come in blocks
//! of 32: `y = Σ_p s_p Σ_{b∈p} d_b Σ_{k∈b} q_k q̂_k`. The inner sums are i8×i8
//! products (AVX2: the weight's magnitude times the activation with the weight's
//! sign, as `vpmaddubsw` takes one unsigned operand; AVX-512 VNNI: `vpdpbusd` on 64
//! at once). Each block's codes are stored in the activations' order.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::int8_acts::{fused_matmul, slot, Int8Acts, PAIR};
use crate::{Error, Result};

/// A `[rows, cols]` matrix of int8 codes with one scale per row block of 64.
#[derive(Debug, Clone)]
pub struct Int8Weight {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Int8Weight {
    /// Rounds the row-major matrix `w` `[rows, cols]` (f32 or f16; `cols` a multiple of 64).
    pub fn quantize<T: Copy + Into<f32> + Sync>(w: &[T], rows: usize, cols: usize) -> Result<Self> {
        if cols == 0 || !cols.is_multiple_of(PAIR) || w.len() != rows * cols {
            return Err(Error::msg(format!(
                "int8: a {rows}x{cols} matrix ({} values) needs whole blocks of {PAIR} columns",
                w.len()
            )));
        }
        let mut codes = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * cols / PAIR];
        codes.par_chunks_mut(PAIR).zip(scales.par_iter_mut()).zip(w.par_chunks(PAIR)).for_each(|((qb, s), wb)| {
            let amax = wb.iter().fold(0f32, |m, &v| m.max(v.into().abs()));
            *s = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            for (k, &v) in wb.iter().enumerate() {
                qb[slot(k, PAIR)] = (v.into() * inv).round().clamp(-127.0, 127.0) as i8;
            }
        });
        Ok(Int8Weight { rows, cols, codes, scales })
    }

    /// Bytes held: codes and scales.
    pub fn bytes(&self) -> usize {
        self.codes.len() + self.scales.len() * 4
    }

    /// The weight in f32, row-major: `s q` per element.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        out.par_chunks_mut(PAIR).zip(self.codes.par_chunks(PAIR)).zip(self.scales.par_iter()).for_each(
            |((ob, qb), s)| {
                for (k, o) in ob.iter_mut().enumerate() {
                    *o = s * qb[slot(k, PAIR)] as f32;
                }
            },
        );
        out
    }

    /// `x Wᵀ` for `x` row-major `[n, cols]` on int8 activations: `[n, rows]`. The
    /// weight is read once for all `n` tokens, so no dequantized copy is made.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        let kernel = row_kernel().0;
        let pairs = self.cols / PAIR;
        fused_matmul(x, n, self.cols, self.rows, self.cols, |first, acts, ys| {
            for (j, yr) in ys.chunks_exact_mut(acts.len()).enumerate() {
                let r = first + j;
                let row = Row {
                    codes: &self.codes[r * self.cols..(r + 1) * self.cols],
                    scales: &self.scales[r * pairs..(r + 1) * pairs],
                };
                for (y, a) in yr.iter_mut().zip(acts) {
                    *y = kernel(&row, a);
                }
            }
        })
    }
}

/// One row of an [`Int8Weight`].
struct Row<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
}

/// One output: a weight row's product with one token's int8 activations.
type RowKernel = fn(&Row, &Int8Acts) -> f32;

/// The kernel [`Int8Weight::matmul`] runs on this CPU, as benchmark rows name it.
pub fn kernel_name() -> &'static str {
    row_kernel().1
}

fn row_kernel() -> (RowKernel, &'static str) {
    static KERNEL: OnceLock<(RowKernel, &'static str)> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let cpu = crate::cpu::features();
        #[cfg(target_arch = "x86_64")]
        {
            if cpu.avx512_vnni {
                return (row_vnni_entry, "int8 avx512-vnni");
            }
            if cpu.avx2_fma {
                return (row_avx2_entry, "int8 avx2");
            }
        }
        let _ = cpu;
        (row_portable, "int8 portable")
    })
}

fn row_portable(row: &Row, acts: &Int8Acts) -> f32 {
    let half = PAIR / 4;
    let mut y = 0f32;
    for (p, &s) in row.scales.iter().enumerate() {
        let (w, x) = (&row.codes[p * PAIR..(p + 1) * PAIR], &acts.q[p * PAIR..(p + 1) * PAIR]);
        // Block j of the pair: its even inputs at j*16.., its odd ones at 32 + j*16...
        let block = |j: usize| -> i32 {
            [j * half, PAIR / 2 + j * half]
                .iter()
                .flat_map(|&at| (at..at + half).map(|i| w[i] as i32 * x[i] as i32))
                .sum()
        };
        y += s * (acts.d[2 * p] * block(0) as f32 + acts.d[2 * p + 1] * block(1) as f32);
    }
    y
}

#[cfg(target_arch = "x86_64")]
fn row_avx2_entry(row: &Row, acts: &Int8Acts) -> f32 {
    // SAFETY: selected only where AVX2 and FMA were detected; every row and token has
    // `cols` values in whole pairs of blocks.
    unsafe { row_avx2(row, acts) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(row: &Row, acts: &Int8Acts) -> f32 {
    use std::arch::x86_64::*;
    let w = row.codes.as_ptr() as *const __m256i;
    let xq = acts.q.as_ptr() as *const __m256i;
    let pair_d = acts.pair_d.as_ptr();
    let ones = _mm256_set1_epi16(1);
    // 32 products summed in fours into 8 i32 lanes (no i16 overflow: 2 x 127 x 127).
    let half = |i: usize| {
        let wv = _mm256_loadu_si256(w.add(i));
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(_mm256_loadu_si256(xq.add(i)), wv));
        _mm256_madd_epi16(pairs, ones)
    };
    let mut acc = _mm256_setzero_ps();
    for (p, &s) in row.scales.iter().enumerate() {
        let sums = _mm256_cvtepi32_ps(_mm256_add_epi32(half(2 * p), half(2 * p + 1)));
        let steps = _mm256_mul_ps(sums, _mm256_loadu_ps(pair_d.add(16 * p)));
        acc = _mm256_fmadd_ps(steps, _mm256_set1_ps(s), acc);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    lanes.iter().sum()
}

#[cfg(target_arch = "x86_64")]
fn row_vnni_entry(row: &Row, acts: &Int8Acts) -> f32 {
    // SAFETY: selected only where AVX-512 F/BW/VL and VNNI were detected; every row
    // and token has `cols` values in whole pairs of blocks.
    unsafe { row_vnni(row, acts) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn row_vnni(row: &Row, acts: &Int8Acts) -> f32 {
    use std::arch::x86_64::*;
    let w = row.codes.as_ptr() as *const __m512i;
    let xq = acts.q.as_ptr() as *const __m512i;
    let pair_d = acts.pair_d.as_ptr();
    let mut acc = _mm512_setzero_ps();
    for (p, &s) in row.scales.iter().enumerate() {
        let wv = _mm512_loadu_si512(w.add(p));
        let xv = _mm512_loadu_si512(xq.add(p));
        let signed_x = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), _mm512_setzero_si512(), xv);
        let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wv), signed_x);
        let steps = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_loadu_ps(pair_d.add(16 * p)));
        acc = _mm512_fmadd_ps(steps, _mm512_set1_ps(s), acc);
    }
    _mm512_reduce_add_ps(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0 * (1 + i % 3) as f32).collect()
    }

    #[test]
    fn rounds_each_block_to_127_steps_of_its_largest_magnitude() {
        let (rows, cols) = (3, 128);
        let w = matrix(rows, cols);
        let q = Int8Weight::quantize(&w, rows, cols).unwrap();
        let back = q.dequantize();
        for (b, (wb, qb)) in w.chunks(64).zip(back.chunks(64)).enumerate() {
            let amax = wb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(q.scales[b], amax / 127.0);
            for (a, v) in qb.iter().zip(wb) {
                assert!((a - v).abs() <= amax / 254.0 * 1.0001, "block {b}: {a} vs {v}");
            }
            // The extreme is kept exactly (up to the scale's rounding).
            let k = wb.iter().position(|v| v.abs() == amax).unwrap();
            assert!((qb[k] - wb[k]).abs() <= 1e-6 * amax);
        }
        assert_eq!(q.bytes(), rows * cols + rows * cols / 64 * 4);
        assert!(Int8Weight::quantize(&w[..96], 1, 96).is_err());
    }

    #[test]
    fn every_kernel_equals_the_dense_product_of_the_rounded_operands() {
        for (rows, cols, n) in [(5, 64, 1), (40, 192, 3), (17, 896, 12), (9, 128, 2)] {
            let q = Int8Weight::quantize(&matrix(rows, cols), rows, cols).unwrap();
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let w_hat = q.dequantize();
            let x_hat: Vec<f32> = x.chunks(cols).flat_map(|xt| Int8Acts::quantize(xt, cols).dequantize()).collect();
            let want: Vec<f32> = (0..n)
                .flat_map(|t| {
                    let (xt, w_hat) = (&x_hat[t * cols..(t + 1) * cols], &w_hat);
                    (0..rows).map(move |r| w_hat[r * cols..(r + 1) * cols].iter().zip(xt).map(|(a, b)| a * b).sum())
                })
                .collect();
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            for (a, b) in q.matmul(&x, n).iter().zip(&want) {
                assert!(close(*a, *b), "{rows}x{cols} n={n} ({}): {a} vs {b}", kernel_name());
            }
            let acts = Int8Acts::quantize(&x[..cols], cols);
            let row = Row { codes: &q.codes[..cols], scales: &q.scales[..cols / 64] };
            let mut kernels: Vec<(RowKernel, &str)> = vec![(row_portable, "portable")];
            #[cfg(target_arch = "x86_64")]
            {
                let cpu = crate::cpu::features();
                if cpu.avx2_fma {
                    kernels.push((row_avx2_entry, "avx2"));
                }
                if cpu.avx512_vnni {
                    kernels.push((row_vnni_entry, "vnni"));
                }
            }
            for (kernel, name) in kernels {
                let got = kernel(&row, &acts);
                assert!(close(got, want[0]), "{name} {rows}x{cols}: {got} vs {}", want[0]);
            }
        }
    }
}
