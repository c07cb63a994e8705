//! The element-wise parts of an encoder layer on f32 rows, written as branch-free
//! loops that the compiler turns into AVX-512 code inside the `#[target_feature]`
//! functions: exp, erf (GELU), softmax and layer norm. Sums run in 16 lanes, so they
//! vectorize without reordering rules the compiler may not apply to floats.

/// Lanes of the partial sums (one AVX-512 vector of f32).
const LANES: usize = 16;

/// `e^x` within 2 ulp for |x| < 87 (0 below -87, 2^127 above 88): `2^n * e^r` with
/// `n = round(x / ln 2)` and a degree-6 polynomial for `e^r`, |r| <= ln(2)/2.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p: f32 = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, c);
    }
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)` within 5e-7 (1.5e-7 of the formula, the rest f32 rounding; GELU in bf16 products needs far less): Abramowitz & Stegun 7.1.26 (a rational term times `e^(-x^2)`).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let ax = x.abs();
    let t = 1.0 / P.mul_add(ax, 1.0);
    let mut poly = A[4];
    for &a in A[..4].iter().rev() {
        poly = poly.mul_add(t, a);
    }
    let y = 1.0 - poly * t * exp(-ax * ax);
    y.copysign(x)
}

/// GELU as BERT defines it: `x/2 * (1 + erf(x / sqrt 2))`, in place.
#[target_feature(enable = "avx512f")]
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The sum of `x`, in [`LANES`] partial sums.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `softmax(scale * x)` of one row, in place.
#[target_feature(enable = "avx512f")]
pub fn softmax(x: &mut [f32], scale: f32) {
    let mut top = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (m, &v) in top.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = top.iter().fold(rest, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v = exp((*v - max) * scale);
    }
    let inv = 1.0 / sum(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x = layer_norm(x + residual) * weight + bias` for each row of `weight.len()` values.
#[target_feature(enable = "avx512f")]
pub fn add_layer_norm(x: &mut [f32], residual: Option<&[f32]>, weight: &[f32], bias: &[f32], eps: f32) {
    let width = weight.len();
    for (i, row) in x.chunks_exact_mut(width).enumerate() {
        if let Some(res) = residual {
            for (v, r) in row.iter_mut().zip(&res[i * width..(i + 1) * width]) {
                *v += r;
            }
        }
        let mean = sum(row) / width as f32;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let mut sq = [0f32; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for c in chunks {
            for (a, v) in sq.iter_mut().zip(c) {
                *a = v.mul_add(*v, *a);
            }
        }
        let var = (sq.iter().sum::<f32>() + rest) / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v * inv).mul_add(*w, *b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx512() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    /// erf by its Taylor series in f64 (the cancellation costs under 1e-9 for |x| <= 4).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut total) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
            if term.abs() < 1e-18 {
                break;
            }
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), (x as f64).exp());
            assert!(((got as f64 - want) / want).abs() < 2.5e-7, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_is_within_5e7_of_the_series() {
        let mut x = -4.0f32;
        while x <= 4.0 {
            let (got, want) = (erf(x) as f64, erf_series(x as f64));
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
            x += 0.001;
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn softmax_gelu_and_layer_norm_match_plain_f64() {
        if !avx512() {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        let row: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
        let mut sm = row.clone();
        // SAFETY: the CPU has AVX-512 F (checked above).
        unsafe { softmax(&mut sm, 0.5) };
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let z: f64 = row.iter().map(|&v| ((v as f64 - max) * 0.5).exp()).sum();
        for (g, &v) in sm.iter().zip(&row) {
            assert!((*g as f64 - ((v as f64 - max) * 0.5).exp() / z).abs() < 1e-7);
        }
        let mut ge = row.clone();
        // SAFETY: as above.
        unsafe { gelu(&mut ge) };
        for (g, &v) in ge.iter().zip(&row) {
            let want = 0.5 * v as f64 * (1.0 + erf_series(v as f64 / 2f64.sqrt()));
            assert!((*g as f64 - want).abs() < 1e-6, "gelu({v})");
        }
        let (width, rows) = (37, 3);
        let x: Vec<f32> = (0..width * rows).map(|i| ((i * 31) % 17) as f32 - 8.0).collect();
        let res: Vec<f32> = (0..width * rows).map(|i| (i % 5) as f32 * 0.25).collect();
        let w: Vec<f32> = (0..width).map(|i| 1.0 + i as f32 / 100.0).collect();
        let b: Vec<f32> = (0..width).map(|i| i as f32 / 10.0).collect();
        let mut got = x.clone();
        // SAFETY: as above.
        unsafe { add_layer_norm(&mut got, Some(&res), &w, &b, 1e-12) };
        for r in 0..rows {
            let v: Vec<f64> = (0..width).map(|j| (x[r * width + j] + res[r * width + j]) as f64).collect();
            let mean = v.iter().sum::<f64>() / width as f64;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / width as f64;
            for j in 0..width {
                let want = (v[j] - mean) / (var + 1e-12).sqrt() * w[j] as f64 + b[j] as f64;
                assert!((got[r * width + j] as f64 - want).abs() < 1e-5, "row {r} col {j}");
            }
        }
    }
}
