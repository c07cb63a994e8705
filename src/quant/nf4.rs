//! NF4 weights exactly as bitsandbytes stores them (`quantize_4bit(quant_type="nf4",
//! blocksize=64, compress_statistics=True)`, bitsandbytes/functional.py and its
//! reference kernels in backends/default/ops.py):
//!
//! - the row-major `[out, in]` weight is cut into blocks of 64 values; each block is
//!   scaled by its absmax, clamped to [-1, 1] and mapped to the nearest of the 16
//!   NF4 code values (ties to the lower code);
//! - two 4-bit codes per byte, the first element in the high nibble;
//! - double quantization: `offset = mean(absmax)`, then `absmax - offset` is
//!   quantized in blocks of 256 with the signed dynamic 8-bit map;
//! - dequantization: `NF4_CODE[q] * (dynamic_map[absmax_q] * absmax2 + offset)`.

use rayon::prelude::*;

use super::dynamic_map::{quantize_blockwise, signed_dynamic_map, NearestCode};

/// The 16 NF4 code values (bitsandbytes functional.py, `get_4bit_type("nf4")`), written
/// with bitsandbytes' digits; they round to the same f32 values.
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];
/// Index of 0.0 in [`NF4_CODE`].
const NF4_ZERO: u8 = 7;
/// Values per NF4 block (bitsandbytes' QLoRA default).
pub const NF4_BLOCK: usize = 64;
/// Absmax values per block of the double quantization.
pub const ABSMAX_BLOCK: usize = 256;

/// An NF4-quantized matrix with double-quantized block scales.
#[derive(Debug, Clone)]
pub struct Nf4Weight {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// 4-bit codes, two per byte, first element in the high nibble.
    pub codes: Vec<u8>,
    /// Dynamic-map index of each 64-block's `absmax - offset`.
    pub absmax_q: Vec<u8>,
    /// Scale of each group of 256 quantized absmax values.
    pub absmax2: Vec<f32>,
    /// Mean of the absmax values, added back at dequantization.
    pub absmax_offset: f32,
}

impl Nf4Weight {
    /// Quantizes a row-major `[rows, cols]` matrix.
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "NF4: {} values for a {rows}x{cols} matrix", values.len());
        let (q, absmax) = quantize_blockwise(values, NF4_BLOCK, &NearestCode::new(&NF4_CODE));
        // An odd count is padded with the code of 0.0, as bitsandbytes pads with zeros.
        let codes = q.chunks(2).map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(NF4_ZERO)).collect();
        let offset = (absmax.iter().map(|&a| a as f64).sum::<f64>() / absmax.len() as f64) as f32;
        let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
        let (absmax_q, absmax2) = quantize_blockwise(&centred, ABSMAX_BLOCK, &NearestCode::new(&signed_dynamic_map()));
        Nf4Weight { rows, cols, codes, absmax_q, absmax2, absmax_offset: offset }
    }

    /// Number of quantized values.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the matrix is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 4-bit code of element `i`.
    pub fn code(&self, i: usize) -> u8 {
        let byte = self.codes[i / 2];
        if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0x0f
        }
    }

    /// The dequantized absmax of every 64-block.
    pub fn absmax(&self) -> Vec<f32> {
        let map = signed_dynamic_map();
        self.absmax_q
            .iter()
            .enumerate()
            .map(|(b, &q)| map[q as usize] * self.absmax2[b / ABSMAX_BLOCK] + self.absmax_offset)
            .collect()
    }

    /// The whole matrix in f32, row-major (block-parallel).
    pub fn dequantize(&self) -> Vec<f32> {
        let absmax = self.absmax();
        let mut out = vec![0f32; self.len()];
        out.par_chunks_mut(NF4_BLOCK).enumerate().for_each(|(b, chunk)| {
            let scale = absmax[b];
            let first = b * NF4_BLOCK;
            for (j, v) in chunk.iter_mut().enumerate() {
                *v = NF4_CODE[self.code(first + j) as usize] * scale;
            }
        });
        out
    }

    /// Bytes held by the quantized representation.
    pub fn bytes(&self) -> usize {
        self.codes.len() + self.absmax_q.len() + 4 * self.absmax2.len() + 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_bounded_by_half_the_largest_code_gap() {
        let values: Vec<f32> = (0..640).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1).collect();
        let w = Nf4Weight::quantize(&values, 10, 64);
        let back = w.dequantize();
        let absmax = w.absmax();
        for (i, (a, b)) in values.iter().zip(&back).enumerate() {
            // Largest gap between NF4 codes is 1 - 0.7229 = 0.277; plus absmax rounding.
            assert!((a - b).abs() <= absmax[i / 64] * 0.14 + 1e-3, "{i}: {a} vs {b}");
        }
        assert_eq!(w.bytes(), 320 + 10 + 4 + 4);
    }

    #[test]
    fn packs_the_first_element_in_the_high_nibble() {
        let w = Nf4Weight::quantize(&[-1.0, 1.0, 0.0, 0.0], 1, 4);
        assert_eq!(w.codes, vec![0x0f, 0x77]);
    }
}
