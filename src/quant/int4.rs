//! Asymmetric 4-bit weights in groups (AWQ / RTN), kept in a layout made for the CPU
//! matmul rather than AutoAWQ's GPU layout (the file format lives in `awq_gemm.rs`):
//!
//! - codes row-major `[out, in]`, eight per `u32`: element `8w + i` of a row sits in
//!   bits `4i..4i+4` of word `w`; read as bytes, byte `m` holds inputs `2m` (low
//!   nibble) and `2m + 1` (high nibble), so 32 bytes unpack into the order of the
//!   int8 activations' pairs of blocks (`int8_acts`) with two masks and a shift;
//! - per `(row, group)` a scale `s` (an f16 value, widened) and an integer zero
//!   point `z`, so `w = (q - z) * s`, exact in f32.
//!
//! Products run an integer kernel, as llama.cpp does for its 4-bit formats: each token's activations are rounded to int8 in
//! blocks of 32 with one f32 step `d_b` each (`x̂ = d_b q̂`, at most `d_b / 2` off),
//! and `y = Σ_b s_g d_b Σ_{k∈b} q_k q̂_k − Σ_g s_g z_g Σ_{k∈g} x̂_k`, where the inner
//! sums are u8×i8 products (AVX2 `vpmaddubsw`, or AVX-512 VNNI `vpdpbusd` on 64 at
//! once) and the group's scale multiplies once per group. The result is the exact
//! product of the dequantized weight with `x̂`. The vector kernels take any number
//! of tokens (prefill too: the weight is read once per range of rows for all of
//! them); where only the portable kernel runs, batches above [`FUSED_MAX_TOKENS`]
//! dequantize the matrix transiently and use the f32 GEMM on `x` itself, as do groups
//! that are not a multiple of 32 (only tiny test models have them).

use std::sync::OnceLock;

use rayon::prelude::*;

use super::int8_acts::{fused_matmul, slot, Int8Acts, ACT_BLOCK, PAIR};
use crate::{Error, Result};

/// Token count up to which the portable int4 kernel runs; above it the matrix is
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
        let kernels = row_kernel(self.group);
        if (n > FUSED_MAX_TOKENS && !kernels.any_batch) || !self.group.is_multiple_of(ACT_BLOCK) {
            return dense_matmul(x, n, self.cols, &self.dequantize(), self.rows);
        }
        fused_matmul(x, n, self.cols, self.rows, self.group, |first, acts, ys| {
            let count = ys.len() / n;
            let mut done = 0;
            match (kernels.quad, kernels.unpacked) {
                (_, Some(unpacked)) if n >= UNPACK_MIN_TOKENS => {
                    // Four rows at a time, unpacked into a buffer that stays in L1.
                    let mut codes = vec![0u8; 4 * self.cols];
                    while done + 4 <= count {
                        self.unpack_rows(first + done, &mut codes);
                        let rows = [0, 1, 2, 3].map(|i| UnpackedRow {
                            codes: &codes[i * self.cols..(i + 1) * self.cols],
                            packed: self.row(first + done + i),
                        });
                        for (t, a) in acts.iter().enumerate() {
                            let y = unpacked(&rows, a);
                            for (i, v) in y.iter().enumerate() {
                                ys[(done + i) * n + t] = *v;
                            }
                        }
                        done += 4;
                    }
                }
                (Some(quad), _) => {
                    while done + 4 <= count {
                        let rows = [0, 1, 2, 3].map(|i| self.row(first + done + i));
                        for (t, a) in acts.iter().enumerate() {
                            for (i, v) in quad(&rows, a).iter().enumerate() {
                                ys[(done + i) * n + t] = *v;
                            }
                        }
                        done += 4;
                    }
                }
                _ => {}
            }
            for j in done..count {
                let row = self.row(first + j);
                for (t, a) in acts.iter().enumerate() {
                    ys[j * n + t] = (kernels.one)(&row, a);
                }
            }
        })
    }

    /// Rows `first..` (as many as `out` holds, `cols` bytes each) with each pair of
    /// blocks' 32 code bytes split into 64 bytes, low nibbles then high nibbles: the
    /// activations' order, one code a byte.
    fn unpack_rows(&self, first: usize, out: &mut [u8]) {
        let words_per_row = self.cols / 8;
        let count = out.len() / self.cols;
        let words = &self.words[first * words_per_row..(first + count) * words_per_row];
        for (pair, codes) in words.chunks_exact(PAIR / 8).zip(out.chunks_exact_mut(PAIR)) {
            let (low, high) = codes.split_at_mut(PAIR / 2);
            for (w, (lo, hi)) in pair.iter().zip(low.chunks_exact_mut(4).zip(high.chunks_exact_mut(4))) {
                let bytes = w.to_le_bytes();
                for k in 0..4 {
                    lo[k] = bytes[k] & 0xF;
                    hi[k] = bytes[k] >> 4;
                }
            }
        }
    }

    fn row(&self, r: usize) -> WeightRow<'_> {
        let (groups, words_per_row) = (self.groups(), self.cols / 8);
        WeightRow {
            words: &self.words[r * words_per_row..(r + 1) * words_per_row],
            scales: &self.scales[r * groups..(r + 1) * groups],
            zeros: &self.zeros[r * groups..(r + 1) * groups],
        }
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
/// Four outputs at once: four rows' dot products with one token's activations,
/// their sums in independent registers.
type QuadKernel = fn(&[WeightRow; 4], &Int8Acts) -> [f32; 4];
/// [`QuadKernel`] on rows whose codes were unpacked to a byte each beforehand
/// (batches: unpacked once per range of rows, read for every token).
type UnpackedKernel = fn(&[UnpackedRow; 4], &Int8Acts) -> [f32; 4];

/// Batches of at least this many tokens unpack their rows' codes once per task.
const UNPACK_MIN_TOKENS: usize = 4;

/// A row whose codes are unpacked to one byte each in the activations' order.
struct UnpackedRow<'a> {
    codes: &'a [u8],
    packed: WeightRow<'a>,
}

/// The kernels this CPU runs for one group size.
#[derive(Clone, Copy)]
struct Kernels {
    one: RowKernel,
    quad: Option<QuadKernel>,
    unpacked: Option<UnpackedKernel>,
    /// Whether batches of any size run these kernels (faster than dequantizing).
    any_batch: bool,
    name: &'static str,
}

/// The kernel [`Int4Weight::matmul`] runs for a few tokens of a matrix in groups of
/// `group` on this CPU, as benchmark rows name it.
pub fn kernel_name(group: usize) -> &'static str {
    row_kernel(group).name
}

/// The vector kernels read pairs of blocks under one scale: groups of a multiple of
/// 64 inputs. Other groups (32; tiny test models) run the portable kernel.
fn row_kernel(group: usize) -> Kernels {
    static KERNEL: OnceLock<Kernels> = OnceLock::new();
    let portable = Kernels { one: row_portable, quad: None, unpacked: None, any_batch: false, name: "int4 portable" };
    if !group.is_multiple_of(PAIR) {
        return portable;
    }
    *KERNEL.get_or_init(|| {
        let cpu = crate::cpu::features();
        #[cfg(target_arch = "x86_64")]
        {
            if cpu.avx512_vnni {
                return Kernels {
                    one: row_vnni_entry,
                    quad: Some(quad_vnni_entry),
                    unpacked: Some(unpacked_vnni_entry),
                    any_batch: true,
                    name: "int4 avx512-vnni x4 rows",
                };
            }
            if cpu.avx2_fma {
                return Kernels {
                    one: row_avx2_entry,
                    quad: None,
                    unpacked: Some(unpacked_avx2_entry),
                    any_batch: true,
                    name: "int4 avx2",
                };
            }
        }
        let _ = cpu;
        portable
    })
}

/// The zero points' term of a row: `Σ_g s_g z_g Σ_{k∈g} x̂_k`.
fn zero_term(row: &WeightRow, acts: &Int8Acts) -> f32 {
    row.scales.iter().zip(row.zeros).zip(&acts.group_sums).map(|((s, z), xs)| s * z * xs).sum()
}

fn row_portable(row: &WeightRow, acts: &Int8Acts) -> f32 {
    let cols = acts.q.len();
    let blocks_per_group = acts.d.len() / row.scales.len();
    let y: f32 = (0..acts.d.len())
        .map(|b| {
            let dot: i32 = (b * ACT_BLOCK..(b + 1) * ACT_BLOCK)
                .map(|k| ((row.words[k / 8] >> (4 * (k % 8))) & 0xF) as i32 * acts.q[slot(k, cols)] as i32)
                .sum();
            row.scales[b / blocks_per_group] * acts.d[b] * dot as f32
        })
        .sum();
    y - zero_term(row, acts)
}

#[cfg(target_arch = "x86_64")]
fn row_avx2_entry(row: &WeightRow, acts: &Int8Acts) -> f32 {
    // SAFETY: selected only where AVX2 and FMA were detected, for groups of a multiple
    // of 64; `matmul` gives every row cols/8 words and every token cols activations.
    unsafe { row_avx2(row, acts) }
}

/// Per pair of blocks: their 32 code bytes masked into low and high nibbles (the
/// activations' order), two `vpmaddubsw` (u8 x i8, pairs summed in i16, at most
/// 2 x 15 x 127 each), their sum widened to 8 i32 lanes, four per block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(row: &WeightRow, acts: &Int8Acts) -> f32 {
    use std::arch::x86_64::*;
    let pairs_per_group = acts.d.len() / 2 / row.scales.len();
    let codes = row.words.as_ptr() as *const __m256i;
    let xq = acts.q.as_ptr() as *const __m256i;
    let pair_d = acts.pair_d.as_ptr();
    let (low, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
    let mut acc = _mm256_setzero_ps();
    for (g, &scale) in row.scales.iter().enumerate() {
        let mut group_acc = _mm256_setzero_ps();
        for p in g * pairs_per_group..(g + 1) * pairs_per_group {
            let bytes = _mm256_loadu_si256(codes.add(p));
            let lo = _mm256_and_si256(bytes, low);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
            let sums = _mm256_add_epi16(
                _mm256_maddubs_epi16(lo, _mm256_loadu_si256(xq.add(2 * p))),
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256(xq.add(2 * p + 1))),
            );
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, ones));
            group_acc = _mm256_fmadd_ps(sums, _mm256_loadu_ps(pair_d.add(16 * p)), group_acc);
        }
        acc = _mm256_fmadd_ps(group_acc, _mm256_set1_ps(scale), acc);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    lanes.iter().sum::<f32>() - zero_term(row, acts)
}

#[cfg(target_arch = "x86_64")]
fn row_vnni_entry(row: &WeightRow, acts: &Int8Acts) -> f32 {
    // SAFETY: selected only where AVX-512 F/BW/VL and VNNI were detected, for groups
    // of a multiple of 64; `matmul` gives every row cols/8 words and every token
    // cols activations.
    unsafe { row_vnni(row, acts) }
}

/// Per pair of blocks: their 32 code bytes broadcast to both halves of a 512-bit
/// vector, the upper half shifted by a nibble, masked (low nibbles, then high ones:
/// the activations' order), and one `vpdpbusd` sums the 64 products in fours into
/// 16 i32 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn row_vnni(row: &WeightRow, acts: &Int8Acts) -> f32 {
    use std::arch::x86_64::*;
    let pairs_per_group = acts.d.len() / 2 / row.scales.len();
    let codes = row.words.as_ptr() as *const __m256i;
    let xq = acts.q.as_ptr() as *const __m512i;
    let pair_d = acts.pair_d.as_ptr();
    let low = _mm512_set1_epi8(0x0F);
    let shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    let mut acc = _mm512_setzero_ps();
    for (g, &scale) in row.scales.iter().enumerate() {
        let mut group_acc = _mm512_setzero_ps();
        for p in g * pairs_per_group..(g + 1) * pairs_per_group {
            let bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256(codes.add(p)));
            let q = _mm512_and_si512(_mm512_srlv_epi64(bytes, shifts), low);
            let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(xq.add(p)));
            group_acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_loadu_ps(pair_d.add(16 * p)), group_acc);
        }
        acc = _mm512_fmadd_ps(group_acc, _mm512_set1_ps(scale), acc);
    }
    _mm512_reduce_add_ps(acc) - zero_term(row, acts)
}

#[cfg(target_arch = "x86_64")]
fn quad_vnni_entry(rows: &[WeightRow; 4], acts: &Int8Acts) -> [f32; 4] {
    // SAFETY: as `row_vnni_entry`, for four rows of the same matrix.
    unsafe { quad_vnni(rows, acts) }
}

/// [`row_vnni`] on four rows at once: each pair's activations and steps are loaded
/// once for the four, and the four sums are independent chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn quad_vnni(rows: &[WeightRow; 4], acts: &Int8Acts) -> [f32; 4] {
    use std::arch::x86_64::*;
    let groups = rows[0].scales.len();
    let pairs_per_group = acts.d.len() / 2 / groups;
    let codes = rows.each_ref().map(|r| r.words.as_ptr() as *const __m256i);
    let xq = acts.q.as_ptr() as *const __m512i;
    let pair_d = acts.pair_d.as_ptr();
    let low = _mm512_set1_epi8(0x0F);
    let shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    let mut acc = [_mm512_setzero_ps(); 4];
    for g in 0..groups {
        let mut group_acc = [_mm512_setzero_ps(); 4];
        for p in g * pairs_per_group..(g + 1) * pairs_per_group {
            let x = _mm512_loadu_si512(xq.add(p));
            let d = _mm512_loadu_ps(pair_d.add(16 * p));
            for i in 0..4 {
                let bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256(codes[i].add(p)));
                let q = _mm512_and_si512(_mm512_srlv_epi64(bytes, shifts), low);
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, x);
                group_acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), d, group_acc[i]);
            }
        }
        for i in 0..4 {
            acc[i] = _mm512_fmadd_ps(group_acc[i], _mm512_set1_ps(rows[i].scales[g]), acc[i]);
        }
    }
    [0, 1, 2, 3].map(|i| _mm512_reduce_add_ps(acc[i]) - zero_term(&rows[i], acts))
}

#[cfg(target_arch = "x86_64")]
fn unpacked_vnni_entry(rows: &[UnpackedRow; 4], acts: &Int8Acts) -> [f32; 4] {
    // SAFETY: as `quad_vnni_entry`; each unpacked row holds cols bytes.
    unsafe { unpacked_vnni(rows, acts) }
}

/// [`quad_vnni`] on unpacked codes: one load a pair and row instead of the unpacking.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn unpacked_vnni(rows: &[UnpackedRow; 4], acts: &Int8Acts) -> [f32; 4] {
    use std::arch::x86_64::*;
    let groups = rows[0].packed.scales.len();
    let pairs_per_group = acts.d.len() / 2 / groups;
    let codes = rows.each_ref().map(|r| r.codes.as_ptr() as *const __m512i);
    let xq = acts.q.as_ptr() as *const __m512i;
    let pair_d = acts.pair_d.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    for g in 0..groups {
        let mut group_acc = [_mm512_setzero_ps(); 4];
        for p in g * pairs_per_group..(g + 1) * pairs_per_group {
            let x = _mm512_loadu_si512(xq.add(p));
            let d = _mm512_loadu_ps(pair_d.add(16 * p));
            for i in 0..4 {
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(codes[i].add(p)), x);
                group_acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), d, group_acc[i]);
            }
        }
        for i in 0..4 {
            acc[i] = _mm512_fmadd_ps(group_acc[i], _mm512_set1_ps(rows[i].packed.scales[g]), acc[i]);
        }
    }
    [0, 1, 2, 3].map(|i| _mm512_reduce_add_ps(acc[i]) - zero_term(&rows[i].packed, acts))
}

#[cfg(target_arch = "x86_64")]
fn unpacked_avx2_entry(rows: &[UnpackedRow; 4], acts: &Int8Acts) -> [f32; 4] {
    // SAFETY: selected only where AVX2 and FMA were detected, for groups of a multiple
    // of 64; each unpacked row holds cols bytes and each token cols activations.
    unsafe { unpacked_avx2(rows, acts) }
}

/// Four unpacked rows with AVX2: per pair, two `vpmaddubsw` a row on the shared
/// activations (low nibbles with the even inputs, high with the odd).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn unpacked_avx2(rows: &[UnpackedRow; 4], acts: &Int8Acts) -> [f32; 4] {
    use std::arch::x86_64::*;
    let groups = rows[0].packed.scales.len();
    let pairs_per_group = acts.d.len() / 2 / groups;
    let codes = rows.each_ref().map(|r| r.codes.as_ptr() as *const __m256i);
    let xq = acts.q.as_ptr() as *const __m256i;
    let pair_d = acts.pair_d.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    for g in 0..groups {
        let mut group_acc = [_mm256_setzero_ps(); 4];
        for p in g * pairs_per_group..(g + 1) * pairs_per_group {
            let (x0, x1) = (_mm256_loadu_si256(xq.add(2 * p)), _mm256_loadu_si256(xq.add(2 * p + 1)));
            let d = _mm256_loadu_ps(pair_d.add(16 * p));
            for i in 0..4 {
                let sums = _mm256_add_epi16(
                    _mm256_maddubs_epi16(_mm256_loadu_si256(codes[i].add(2 * p)), x0),
                    _mm256_maddubs_epi16(_mm256_loadu_si256(codes[i].add(2 * p + 1)), x1),
                );
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, ones));
                group_acc[i] = _mm256_fmadd_ps(sums, d, group_acc[i]);
            }
        }
        for i in 0..4 {
            acc[i] = _mm256_fmadd_ps(group_acc[i], _mm256_set1_ps(rows[i].packed.scales[g]), acc[i]);
        }
    }
    [0, 1, 2, 3].map(|i| {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[i]);
        lanes.iter().sum::<f32>() - zero_term(&rows[i].packed, acts)
    })
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
    fn kernels_equal_the_dense_product_of_the_rounded_activations() {
        for (rows, cols, group, n) in [
            (5, 64, 64, 1),
            (7, 96, 32, 1),
            (6, 896, 128, 1),
            (9, 128, 64, 20),
            (40, 128, 32, 3),
            (17, 192, 64, 8),
            (9, 256, 128, 2),
        ] {
            let w = sample(rows, cols, group);
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let x_hat: Vec<f32> =
                x.chunks_exact(cols).flat_map(|xt| Int8Acts::quantize(xt, group).dequantize()).collect();
            let want = dense_matmul(&x_hat, n, cols, &w.dequantize(), rows);
            // Only the portable kernel leaves large batches to the exact f32 product.
            let exact = n > FUSED_MAX_TOKENS && !row_kernel(group).any_batch;
            let want_batch = if exact { dense_matmul(&x, n, cols, &w.dequantize(), rows) } else { want.clone() };
            let got = w.matmul(&x, n);
            for (a, b) in got.iter().zip(&want_batch) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{rows}x{cols}/{group} n={n}: {a} vs {b}");
            }
            let row = WeightRow {
                words: &w.words[..cols / 8],
                scales: &w.scales[..cols / group],
                zeros: &w.zeros[..cols / group],
            };
            let acts = Int8Acts::quantize(&x[..cols], group);
            let mut kernels: Vec<(RowKernel, &str)> = vec![(row_portable, "portable")];
            #[cfg(target_arch = "x86_64")]
            if group.is_multiple_of(PAIR) {
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
                assert!((got - want[0]).abs() <= 1e-4 * (1.0 + want[0].abs()), "{name}: {got} vs {}", want[0]);
            }
            #[cfg(target_arch = "x86_64")]
            if rows >= 4 && group.is_multiple_of(PAIR) && crate::cpu::features().avx512_vnni {
                let got = quad_vnni_entry(&[0, 1, 2, 3].map(|r| w.row(r)), &acts);
                for (r, g) in got.iter().enumerate() {
                    let want = want[r];
                    assert!((g - want).abs() <= 1e-4 * (1.0 + want.abs()), "quad row {r}: {g} vs {want}");
                }
            }
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
