//! bitsandbytes' signed dynamic 8-bit map (`create_dynamic_map(signed=True)`,
//! bitsandbytes/functional.py), used to quantize NF4 block absmax values ("double
//! quantization"), and its nearest-code quantizer.
//!
//! The map: for exponent `i` in 0..7, `2^i + 1` points of `linspace(0.1, 1)` give
//! `2^i` midpoints, scaled by `±10^(i-6)`; then the 0 and 1.0 entries; sorted.
//! Computed in f32 as torch computes it.

/// The 256 sorted values of the signed dynamic map.
pub fn signed_dynamic_map() -> [f32; 256] {
    const MAX_EXPONENT_BITS: i32 = 7;
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..MAX_EXPONENT_BITS {
        let fraction_items = (1usize << i) + 1;
        let bounds = linspace_f32(0.1, 1.0, fraction_items);
        let scale = 10f64.powi(-(MAX_EXPONENT_BITS - 1) + i) as f32;
        let means: Vec<f32> = bounds.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        data.extend(means.iter().map(|m| scale * m));
        data.extend(means.iter().map(|m| -scale * m));
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(|a, b| a.total_cmp(b));
    let mut map = [0f32; 256];
    map.copy_from_slice(&data);
    map
}

/// `torch.linspace(start, end, steps, dtype=float32)`: the first half counts up from
/// `start`, the second half down from `end`, in f32.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { start + step * i as f32 } else { end - step * (steps - i - 1) as f32 })
        .collect()
}

/// Nearest-code quantizer over a sorted code book, as bitsandbytes' reference
/// kernels do it: `bucketize` on the midpoints, so a value exactly on a midpoint
/// takes the lower code.
#[derive(Debug, Clone)]
pub struct NearestCode {
    bounds: Vec<f32>,
}

impl NearestCode {
    /// A quantizer for the sorted `code`.
    pub fn new(code: &[f32]) -> Self {
        NearestCode { bounds: code.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect() }
    }

    /// The index of the code nearest `x`.
    pub fn index(&self, x: f32) -> u8 {
        self.bounds.partition_point(|&b| b < x) as u8
    }
}

/// Quantizes `values` blockwise: each block is scaled by its absmax (clamped to
/// [-1, 1]) and mapped to the nearest code. Returns the codes and per-block absmax.
pub fn quantize_blockwise(values: &[f32], block: usize, code: &NearestCode) -> (Vec<u8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(values.len());
    let mut absmax = Vec::with_capacity(values.len().div_ceil(block));
    for chunk in values.chunks(block) {
        let m = chunk.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-38);
        let inv = 1.0 / m;
        codes.extend(chunk.iter().map(|v| code.index((v * inv).clamp(-1.0, 1.0))));
        absmax.push(m);
    }
    (codes, absmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_has_the_documented_shape() {
        let m = signed_dynamic_map();
        assert_eq!(m[255], 1.0);
        assert!(m.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(m.iter().filter(|v| **v == 0.0).count(), 1);
        // The largest magnitude below 1.0 is the last midpoint of the 65-point grid.
        assert!((m[254] - 0.992_968_75).abs() < 1e-6 && (m[0] + 0.992_968_75).abs() < 1e-6);
    }

    #[test]
    fn nearest_code_breaks_ties_downwards() {
        let q = NearestCode::new(&[-1.0, 0.0, 1.0]);
        assert_eq!(q.index(-0.5), 0);
        assert_eq!(q.index(-0.49), 1);
        assert_eq!(q.index(0.5), 1);
        assert_eq!(q.index(0.51), 2);
    }
}
