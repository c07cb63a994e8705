//! Matrix-vector product for single-token decoding on the CPU: `y = W x` with `W`
//! row-major `[out, in]` in f32 or f16 (widened on the fly, as AWQ checkpoints keep
//! their embedding table), rows split across rayon threads, dot products with
//! AVX2/FMA/F16C when the CPU has them. Decoding one token is bound by reading the
//! weights once; a GEMM kernel tuned for matrices leaves bandwidth unused here.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `x · Wᵀ` for f32 `x` of shape `(1, in)` and f32 or f16 `w` of shape `(out, in)`;
/// `None` when the inputs do not fit this kernel (the caller then uses the general
/// matmul). No gradient flows through it: callers use it only for untracked tensors.
pub fn gemv(x: &Tensor, w: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let fits = x.dtype() == candle_core::DType::F32
        && matches!(w.dtype(), candle_core::DType::F32 | candle_core::DType::F16)
        && x.device().is_cpu()
        && x.rank() == 2
        && x.dim(0)? == 1
        && !x.track_op()
        && !w.track_op();
    if !fits {
        return Ok(None);
    }
    Ok(Some(x.apply_op2_no_bwd(w, &Gemv)?))
}

struct Gemv;

impl CustomOp2 for Gemv {
    fn name(&self) -> &'static str {
        "stylevn-gemv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s1 else { candle_core::bail!("gemv: f32 input only") };
        let (Some((x0, x1)), Some((w0, _))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("gemv: contiguous inputs only")
        };
        let (out, inp) = l2.shape().dims2()?;
        let x = &x[x0..x1];
        if x.len() != inp {
            candle_core::bail!("gemv: x has {} values, W has {} columns", x.len(), inp)
        }
        let y = match s2 {
            CpuStorage::F32(w) => {
                let dot = dot_kernel::<f32>();
                rows_par(out, |row| dot(&w[w0 + row * inp..w0 + (row + 1) * inp], x))
            }
            CpuStorage::F16(w) => {
                let dot = dot_kernel::<half::f16>();
                rows_par(out, |row| dot(&w[w0 + row * inp..w0 + (row + 1) * inp], x))
            }
            _ => candle_core::bail!("gemv: f32 or f16 weights only"),
        };
        Ok((CpuStorage::F32(y), Shape::from((1, out))))
    }
}

/// `out` values `row(r)`, rows split across the pool.
fn rows_par(out: usize, row: impl Fn(usize) -> f32 + Sync) -> Vec<f32> {
    let mut y = vec![0f32; out];
    let rows_per_task = (out / (rayon::current_num_threads() * 8)).max(16);
    y.par_chunks_mut(rows_per_task).enumerate().for_each(|(c, ys)| {
        for (j, yj) in ys.iter_mut().enumerate() {
            *yj = row(c * rows_per_task + j);
        }
    });
    y
}

/// `Σ a_i b_i` over the shorter of the two slices, with AVX2/FMA when the CPU has them.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_kernel::<f32>()(a, b)
}

/// A weight element the dot kernels widen to f32: f32 itself, or f16.
trait Widen: Copy {
    fn widen(self) -> f32;
    /// Eight elements from `p`, widened into one AVX register.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Widen for f32 {
    fn widen(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl Widen for half::f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx,f16c")]
    unsafe fn load8(p: *const half::f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

/// The dot product of `T` weights with f32 inputs: AVX2/FMA/F16C when the CPU has
/// them (every CPU with AVX2 and FMA also has F16C), portable code otherwise.
fn dot_kernel<T: Widen>() -> fn(&[T], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        return dot_avx2_entry::<T>;
    }
    dot_portable::<T>
}

/// Whether the CPU has AVX2, FMA and F16C (checked once).
#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    static SIMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SIMD.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    })
}

fn dot_portable<T: Widen>(a: &[T], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x.widen() * y).sum();
    for (xa, xb) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += xa[k].widen() * xb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2_entry<T: Widen>(a: &[T], b: &[f32]) -> f32 {
    // SAFETY: selected only after runtime detection of AVX2, FMA and F16C.
    unsafe { dot_avx2(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2<T: Widen>(a: &[T], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc_k) in acc.iter_mut().enumerate() {
            *acc_k = _mm256_fmadd_ps(T::load8(pa.add(i + 8 * k)), _mm256_loadu_ps(pb.add(i + 8 * k)), *acc_k);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(T::load8(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    let mut total: f32 = lanes.iter().sum();
    while i < n {
        total += a[i].widen() * b[i];
        i += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_matmul_for_odd_sizes() {
        for (out, inp) in [(1, 1), (7, 33), (130, 576), (50, 1000)] {
            let w: Vec<f32> = (0..out * inp).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let x: Vec<f32> = (0..inp).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let w = Tensor::from_vec(w, (out, inp), &Device::Cpu).unwrap();
            let x = Tensor::from_vec(x, (1, inp), &Device::Cpu).unwrap();
            let want = x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
            let got = gemv(&x, &w).unwrap().unwrap().to_vec2::<f32>().unwrap();
            for (a, b) in got[0].iter().zip(&want[0]) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{out}x{inp}: {a} vs {b}");
            }
            assert_eq!(dot_portable(&[1.0; 19], &[2.0; 19]), 38.0);
        }
    }

    #[test]
    fn half_weights_equal_the_widened_matmul() {
        for (out, inp) in [(3, 7), (40, 576), (9, 100)] {
            let w: Vec<half::f16> =
                (0..out * inp).map(|i| half::f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 64.0)).collect();
            let x: Vec<f32> = (0..inp).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
            let w = Tensor::from_vec(w, (out, inp), &Device::Cpu).unwrap();
            let x = Tensor::from_vec(x, (1, inp), &Device::Cpu).unwrap();
            let wide = w.to_dtype(candle_core::DType::F32).unwrap();
            let want = x.matmul(&wide.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
            let got = gemv(&x, &w).unwrap().unwrap().to_vec2::<f32>().unwrap();
            for (a, b) in got[0].iter().zip(&want[0]) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{out}x{inp}: {a} vs {b}");
            }
        }
        let w: Vec<half::f16> = (0..19).map(|i| half::f16::from_f32(i as f32)).collect();
        assert_eq!(dot_portable(&w, &[2.0; 19]), 342.0);
    }

    #[test]
    fn declines_what_it_cannot_do() {
        let w = Tensor::zeros((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let two_rows = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(gemv(&two_rows, &w).unwrap().is_none());
        let var = candle_core::Var::zeros((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(gemv(&x, var.as_tensor()).unwrap().is_none());
    }
}
