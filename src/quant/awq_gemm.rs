//! AutoAWQ's "gemm" tensor layout (casper-hansen/AutoAWQ,
//! awq/modules/linear/gemm.py `WQLinear_GEMM.from_linear`), the one vLLM reads:
//!
//! ```text
//! {prefix}.qweight  int32 [in, out/8]      word (k, c) bits 4i..4i+4 = q[out = 8c + ORDER[i], in = k]
//! {prefix}.qzeros   int32 [in/G, out/8]    the same packing of the zero points z[out, g]
//! {prefix}.scales   fp16  [in/G, out]      s[out, g]
//! ORDER = [0, 2, 4, 6, 1, 3, 5, 7]          (unpacking reads nibble i into column REVERSE_ORDER[i])
//! w[out, k] = (q - z) * s                   zero points are stored raw (no -1 offset)
//! ```

use super::group_quant::GroupQuant;
use crate::{Error, Result};

/// AutoAWQ's `order_map` for packing eight 4-bit values into an int32.
pub const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];
/// The inverse permutation, AutoAWQ's `AWQ_REVERSE_ORDER` (awq/utils/packing_utils.py).
pub const AWQ_REVERSE_ORDER: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The three tensors of one AWQ gemm layer, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqGemmTensors {
    /// `[in, out/8]`.
    pub qweight: Vec<i32>,
    /// `[in/G, out/8]`.
    pub qzeros: Vec<i32>,
    /// `[in/G, out]`.
    pub scales: Vec<half::f16>,
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
    /// Group size.
    pub group: usize,
}

/// Packs rows of a column-major-by-output table `values[o, k]` (`[out, cols]`) into
/// `[cols, out/8]` words with [`AWQ_ORDER`].
fn pack(values: &[u8], out: usize, cols: usize) -> Vec<i32> {
    let mut words = vec![0i32; cols * out / 8];
    for k in 0..cols {
        for c in 0..out / 8 {
            let mut word = 0u32;
            for (i, &o) in AWQ_ORDER.iter().enumerate() {
                word |= (values[(8 * c + o) * cols + k] as u32 & 0xF) << (4 * i);
            }
            words[k * (out / 8) + c] = word as i32;
        }
    }
    words
}

/// The inverse of [`pack`]: `[cols, out/8]` words to `values[o, k]` (`[out, cols]`).
fn unpack(words: &[i32], out: usize, cols: usize) -> Vec<u8> {
    let mut values = vec![0u8; out * cols];
    for k in 0..cols {
        for c in 0..out / 8 {
            let word = words[k * (out / 8) + c] as u32;
            for (i, &o) in AWQ_ORDER.iter().enumerate() {
                values[(8 * c + o) * cols + k] = ((word >> (4 * i)) & 0xF) as u8;
            }
        }
    }
    values
}

impl AwqGemmTensors {
    /// Lays out a quantized `[out, in]` weight in AutoAWQ's gemm format.
    pub fn from_quant(q: &GroupQuant) -> Result<Self> {
        if !q.rows.is_multiple_of(8) {
            return Err(Error::msg(format!("AWQ gemm: {} output features is not a multiple of 8", q.rows)));
        }
        let groups = q.cols / q.group;
        let mut scales = vec![half::f16::ZERO; groups * q.rows];
        for o in 0..q.rows {
            for g in 0..groups {
                scales[g * q.rows + o] = q.scales[o * groups + g];
            }
        }
        Ok(AwqGemmTensors {
            qweight: pack(&q.codes, q.rows, q.cols),
            qzeros: pack(&q.zeros, q.rows, groups),
            scales,
            out_features: q.rows,
            in_features: q.cols,
            group: q.group,
        })
    }

    /// Reads the layout back into codes, zero points and scales per `[out, ...]` row.
    pub fn to_quant(&self) -> Result<GroupQuant> {
        let (out, cols, group) = (self.out_features, self.in_features, self.group);
        if out % 8 != 0 || group == 0 || cols % group != 0 {
            return Err(Error::msg(format!("AWQ gemm: shape [{out}, {cols}] with group {group} is not valid")));
        }
        let groups = cols / group;
        if self.qweight.len() != cols * out / 8
            || self.qzeros.len() != groups * out / 8
            || self.scales.len() != groups * out
        {
            return Err(Error::msg(format!(
                "AWQ gemm: tensor sizes do not match [{out}, {cols}] in groups of {group}"
            )));
        }
        let mut scales = vec![half::f16::ZERO; out * groups];
        for o in 0..out {
            for g in 0..groups {
                scales[o * groups + g] = self.scales[g * out + o];
            }
        }
        Ok(GroupQuant {
            rows: out,
            cols,
            group,
            codes: unpack(&self.qweight, out, cols),
            zeros: unpack(&self.qzeros, out, groups),
            scales,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_reverse_order_are_inverse() {
        for i in 0..8 {
            assert_eq!(AWQ_ORDER[AWQ_REVERSE_ORDER[i]], i);
        }
    }

    #[test]
    fn packs_as_autoawq_and_round_trips() {
        // One input column, eight outputs with codes 1..=8: word nibble i holds output ORDER[i].
        let q = GroupQuant {
            rows: 8,
            cols: 8,
            group: 8,
            codes: (0..64).map(|i| ((i / 8) + 1) as u8).collect(),
            zeros: (0..8).map(|o| o as u8).collect(),
            scales: (0..8).map(|o| half::f16::from_f32(0.5 + o as f32)).collect(),
        };
        let t = AwqGemmTensors::from_quant(&q).unwrap();
        // Nibbles low to high: outputs 0,2,4,6,1,3,5,7 -> codes 1,3,5,7,2,4,6,8.
        assert_eq!(t.qweight[0] as u32, 0x8642_7531);
        assert_eq!(t.qzeros[0] as u32, 0x7531_6420);
        assert_eq!(t.scales[3], half::f16::from_f32(3.5));
        let back = t.to_quant().unwrap();
        assert_eq!(back.codes, q.codes);
        assert_eq!(back.zeros, q.zeros);
        assert_eq!(back.scales, q.scales);
    }
}
