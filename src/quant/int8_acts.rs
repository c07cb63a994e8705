//! One token's activations rounded to int8 for the integer kernels of the int4 and
//! int8 weights, as llama.cpp's `Q8` activations: in blocks of [`ACT_BLOCK`] inputs,
//! each with one f32 step `d_b = max |x| / 127` (`x̂ = d_b q̂`, at most `d_b / 2` off).
//!
//! Stored in pairs of blocks ([`PAIR`] inputs), in the order 32 bytes of packed 4-bit
//! codes unpack (low nibbles, then high nibbles): the even inputs of the pair's first
//! block, the even inputs of its second, the odd inputs of the first, the odd inputs
//! of the second. A last unpaired block holds its even inputs, then its odd ones.

/// Inputs per activation block (one step `d_b`).
pub const ACT_BLOCK: usize = 32;
/// Inputs per pair of blocks: the unit the vector kernels read.
pub const PAIR: usize = 2 * ACT_BLOCK;

/// One token's activations rounded to int8.
#[derive(Debug)]
pub struct Int8Acts {
    /// The rounded inputs in the pair order above.
    pub q: Vec<i8>,
    /// Per block: the step `d_b`.
    pub d: Vec<f32>,
    /// Per pair `p`: 16 lanes `[d_2p x4, d_2p+1 x4, d_2p x4, d_2p+1 x4]`, the steps of
    /// the 32-bit sums a pair's products reduce to (each lane four adjacent bytes).
    pub pair_d: Vec<f32>,
    /// Per group of `group` inputs: `Σ x̂` (the int4 zero points' term).
    pub group_sums: Vec<f32>,
}

impl Int8Acts {
    /// Rounds `x` (a whole number of blocks) with group sums over `group` inputs (a
    /// multiple of [`ACT_BLOCK`] dividing `x.len()`).
    pub fn quantize(x: &[f32], group: usize) -> Self {
        let blocks = x.len() / ACT_BLOCK;
        let mut acts = Int8Acts {
            q: vec![0; x.len()],
            d: Vec::with_capacity(blocks),
            pair_d: Vec::with_capacity(blocks / 2 * 16),
            group_sums: vec![0.0; x.len() / group],
        };
        for (b, xb) in x.chunks_exact(ACT_BLOCK).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (k, &v) in xb.iter().enumerate() {
                let q = round_small(v * inv) as i8;
                acts.q[slot(b * ACT_BLOCK + k, x.len())] = q;
                sum += q as i32;
            }
            acts.d.push(d);
            acts.group_sums[b * ACT_BLOCK / group] += d * sum as f32;
        }
        for pair in acts.d.chunks_exact(2) {
            for _ in 0..2 {
                acts.pair_d.extend([pair[0]; 4]);
                acts.pair_d.extend([pair[1]; 4]);
            }
        }
        acts
    }

    /// `x̂` in input order.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.q.len()).map(|k| self.d[k / ACT_BLOCK] * self.q[slot(k, self.q.len())] as f32).collect()
    }
}

/// Where input `k` of a row of `len` inputs is stored (the pair order above).
pub fn slot(k: usize, len: usize) -> usize {
    let paired = len / PAIR * PAIR;
    let (base, i) = if k < paired { (k / PAIR * PAIR, k % PAIR) } else { (paired, k - paired) };
    let (block, e) = (i / ACT_BLOCK, i % ACT_BLOCK);
    if k < paired {
        base + (e % 2) * ACT_BLOCK + block * (ACT_BLOCK / 2) + e / 2
    } else {
        base + (e % 2) * (ACT_BLOCK / 2) + e / 2
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2^22` (the rounding
/// of the magic-number addition, without a call to the C library's `roundf`).
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// Matrices up to this many weights (a K or V projection of a 0.5B model) run on the
/// calling thread: waking the pool costs more than the product.
const SERIAL_MAX_WEIGHTS: usize = 1 << 17;

/// `x Wᵀ` for `x` row-major `[n, cols]` through an integer kernel: each token's
/// activations are rounded once ([`Int8Acts::quantize`] with sums over `group`),
/// then rows are split across the rayon pool in ranges and `task(first, acts, ys)`
/// fills `ys`, the outputs of rows `first..` for every token, row-major `[rows of
/// the range, n]`; a range's weights stay in cache across the tokens. Returns `[n, rows]`.
pub fn fused_matmul(
    x: &[f32],
    n: usize,
    cols: usize,
    rows: usize,
    group: usize,
    task: impl Fn(usize, &[Int8Acts], &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let acts: Vec<Int8Acts> = x.par_chunks_exact(cols).map(|xt| Int8Acts::quantize(xt, group)).collect();
    // One range a thread (in multiples of 4 rows for the four-row kernels): the
    // work is even and each extra task costs a steal; small matrices take one task.
    let threads = if rows * cols < SERIAL_MAX_WEIGHTS { 1 } else { rayon::current_num_threads() };
    let rows_per_task = rows.div_ceil(threads).next_multiple_of(4).max(4);
    let mut y_rows = vec![0f32; rows * n];
    y_rows.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(t, ys)| task(t * rows_per_task, &acts, ys));
    if n == 1 {
        return y_rows;
    }
    let mut y = vec![0f32; n * rows];
    for (r, yr) in y_rows.chunks_exact(n).enumerate() {
        for (t, v) in yr.iter().enumerate() {
            y[t * rows + r] = *v;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_round_to_int8_within_half_a_step() {
        let x: Vec<f32> = (0..128).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0 * (1 + i / 32) as f32).collect();
        let acts = Int8Acts::quantize(&x, 64);
        assert_eq!((acts.d.len(), acts.group_sums.len(), acts.pair_d.len()), (4, 2, 32));
        assert_eq!(acts.d[0], 2.0 / 127.0, "block 0's largest magnitude is 14/7");
        assert_eq!(acts.pair_d[4..8], [acts.d[1]; 4]);
        assert_eq!(acts.pair_d[8..12], [acts.d[0]; 4]);
        for (k, (xh, xv)) in acts.dequantize().iter().zip(&x).enumerate() {
            assert!((xh - xv).abs() <= acts.d[k / 32] / 2.0 * 1.0001, "input {k}: {xh} vs {xv}");
        }
        // x[0] = -2 is the block's extreme: exactly -127 steps; x[1] = (13 - 14)/7,
        // the first odd input, sits after the pair's 32 even ones.
        assert_eq!((acts.q[0], acts.q[32]), (-127, (-1.0f32 / 7.0 / acts.d[0]).round() as i8));
        let sums: Vec<f32> = acts.dequantize().chunks(64).map(|g| g.iter().sum()).collect();
        for (a, b) in acts.group_sums.iter().zip(&sums) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn slots_follow_the_unpacking_order_of_packed_nibbles() {
        // A pair: byte m of 32 holds inputs 2m (low nibble) and 2m+1 (high nibble).
        for m in 0..32 {
            assert_eq!(slot(2 * m, 96), m, "low nibble of byte {m}");
            assert_eq!(slot(2 * m + 1, 96), 32 + m, "high nibble of byte {m}");
        }
        // The unpaired last block: its 16 bytes' low nibbles, then their high nibbles.
        for m in 0..16 {
            assert_eq!((slot(64 + 2 * m, 96), slot(65 + 2 * m, 96)), (64 + m, 80 + m));
        }
        let mut seen: Vec<usize> = (0..160).map(|k| slot(k, 160)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..160).collect::<Vec<_>>());
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        assert_eq!([2.5, 3.5, -2.5, 126.6, -126.4].map(round_small), [2.0, 4.0, -2.0, 127.0, -126.0]);
    }
}
