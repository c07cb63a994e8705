//! AutoAWQ's asymmetric 4-bit group quantizer (casper-hansen/AutoAWQ,
//! awq/quantize/quantizer.py `pseudo_quantize_tensor`), the step shared by RTN and
//! AWQ: per row and group of `group` inputs,
//!
//! ```text
//! s = (max - min).clamp(min=1e-5) / 15      stored as f16
//! z = clamp(-round(min / s), 0, 15)
//! q = clamp(round(w / s) + z, 0, 15)        w ≈ (q - z) * s
//! ```
//! `round` is round-half-to-even, as `torch.round`. The scale is rounded to f16
//! *before* `z` and `q` are computed, so the stored f16 scale is exactly the one the
//! codes were made with and dequantization needs no other value.

use rayon::prelude::*;

use super::int4::Int4Weight;
use crate::Result;

/// Largest 4-bit code (AutoAWQ `max_int = 2**w_bit - 1`).
pub const MAX_CODE: f32 = 15.0;
/// Smallest `max - min` of a group (AutoAWQ `clamp(min=1e-5)`).
const MIN_RANGE: f32 = 1e-5;

/// One row-major `[rows, cols]` matrix quantized in groups along each row.
#[derive(Debug, Clone)]
pub struct GroupQuant {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// Inputs per group.
    pub group: usize,
    /// Codes `[rows, cols]`, each 0..=15.
    pub codes: Vec<u8>,
    /// Zero points `[rows, cols/group]`.
    pub zeros: Vec<u8>,
    /// Scales `[rows, cols/group]`.
    pub scales: Vec<half::f16>,
}

impl GroupQuant {
    /// Quantizes the row-major `w` (`[rows, cols]`).
    pub fn quantize(w: &[f32], rows: usize, cols: usize, group: usize) -> Self {
        let groups = cols / group;
        let mut codes = vec![0u8; rows * cols];
        let mut zeros = vec![0u8; rows * groups];
        let mut scales = vec![half::f16::ZERO; rows * groups];
        codes
            .par_chunks_mut(group)
            .zip(zeros.par_iter_mut())
            .zip(scales.par_iter_mut())
            .zip(w.par_chunks(group))
            .for_each(|(((q, z), s), wg)| {
                let (scale, zero) = group_params(wg);
                *s = scale;
                *z = zero as u8;
                let sf = scale.to_f32();
                for (qi, &v) in q.iter_mut().zip(wg) {
                    *qi = ((v / sf).round_ties_even() + zero).clamp(0.0, MAX_CODE) as u8;
                }
            });
        GroupQuant { rows, cols, group, codes, zeros, scales }
    }

    /// The dequantized matrix `(q - z) * s`, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let groups = self.cols / self.group;
        (0..self.rows * self.cols)
            .map(|i| {
                let g = (i / self.cols) * groups + (i % self.cols) / self.group;
                (self.codes[i] as f32 - self.zeros[g] as f32) * self.scales[g].to_f32()
            })
            .collect()
    }

    /// The matrix in the engine's int4 layout.
    pub fn to_int4(&self) -> Result<Int4Weight> {
        Int4Weight::from_codes(&self.codes, &self.zeros, &self.scales, self.rows, self.cols, self.group)
    }
}

/// The f16 scale and the zero point of one group.
fn group_params(wg: &[f32]) -> (half::f16, f32) {
    let (lo, hi) = wg.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let scale = half::f16::from_f32((hi - lo).max(MIN_RANGE) / MAX_CODE);
    let zero = (-(lo / scale.to_f32()).round_ties_even()).clamp(0.0, MAX_CODE);
    (scale, zero)
}

/// Quantize-then-dequantize of `w` in groups (AutoAWQ's `w_quantize_func`), in place.
pub fn fake_quantize(w: &mut [f32], group: usize) {
    w.par_chunks_mut(group).for_each(fake_quantize_group);
}

/// Quantize-then-dequantize of one group, in place.
pub fn fake_quantize_group(wg: &mut [f32]) {
    let (scale, zero) = group_params(wg);
    let sf = scale.to_f32();
    for v in wg.iter_mut() {
        let q = ((*v / sf).round_ties_even() + zero).clamp(0.0, MAX_CODE);
        *v = (q - zero) * sf;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_group() {
        // min -0.3, max 0.45: s = 0.75/15 = 0.05, z = round(6) = 6.
        let w = [-0.3f32, 0.0, 0.1, 0.45, 0.12, -0.07, 0.2, 0.33];
        let q = GroupQuant::quantize(&w, 1, 8, 8);
        assert_eq!(q.scales[0], half::f16::from_f32(0.05));
        assert_eq!(q.zeros[0], 6);
        let s = half::f16::from_f32(0.05).to_f32();
        let want: Vec<u8> = w.iter().map(|v| ((v / s).round_ties_even() + 6.0).clamp(0.0, 15.0) as u8).collect();
        assert_eq!(q.codes, want);
        assert_eq!(q.codes[0], 0);
        assert_eq!(q.codes[3], 15);
        let mut fake = w.to_vec();
        fake_quantize(&mut fake, 8);
        assert_eq!(fake, q.dequantize());
        for (a, b) in fake.iter().zip(&w) {
            assert!((a - b).abs() <= s / 2.0 + 1e-6);
        }
    }

    #[test]
    fn zero_is_exact_when_the_group_spans_it() {
        let w: Vec<f32> = (0..16).map(|i| if i % 5 == 0 { 0.0 } else { (i as f32 - 7.3) * 0.013 }).collect();
        let q = GroupQuant::quantize(&w, 2, 8, 8);
        let deq = q.dequantize();
        for (d, v) in deq.iter().zip(&w) {
            if *v == 0.0 {
                assert_eq!(*d, 0.0);
            }
        }
        assert_eq!(q.to_int4().unwrap().dequantize(), deq);
    }
}
