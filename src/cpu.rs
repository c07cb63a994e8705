//! The CPU features the hand-written kernels choose between, detected once. The
//! environment variable `STYLEVN_CPU_CAP` lowers what the kernels may use, so one
//! machine can run (and a benchmark can report) the paths another machine takes:
//! `avx2` hides AVX-512, `portable` hides every vector extension.

use std::sync::OnceLock;

/// The instruction-set extensions this process's kernels may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AVX2 and FMA (the 256-bit integer and f32 kernels).
    pub avx2_fma: bool,
    /// F16C (f16 weights widened in registers).
    pub f16c: bool,
    /// AVX-512 F and BW.
    pub avx512: bool,
    /// AVX-512 BF16 (`VDPBF16PS`).
    pub avx512_bf16: bool,
    /// AVX-512 VNNI (`VPDPBUSD`).
    pub avx512_vnni: bool,
}

/// The variable that caps the features (`avx2` or `portable`).
pub const CAP_VAR: &str = "STYLEVN_CPU_CAP";

impl CpuFeatures {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        let found = {
            use std::arch::is_x86_feature_detected as has;
            let avx512 = has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            CpuFeatures {
                avx2_fma: has!("avx2") && has!("fma"),
                f16c: has!("f16c"),
                avx512,
                avx512_bf16: avx512 && has!("avx512bf16"),
                avx512_vnni: avx512 && has!("avx512vnni"),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let found = CpuFeatures::default();
        found.capped(std::env::var(CAP_VAR).ok().as_deref())
    }

    /// These features lowered to `cap` (`avx2`: no AVX-512; `portable`: none).
    pub fn capped(self, cap: Option<&str>) -> Self {
        match cap.map(str::trim) {
            Some("portable") => CpuFeatures::default(),
            Some("avx2") => CpuFeatures { avx512: false, avx512_bf16: false, avx512_vnni: false, ..self },
            _ => self,
        }
    }

    /// The features as benchmark rows name them, e.g. `avx2 fma f16c avx512 avx512_bf16`.
    pub fn describe(&self) -> String {
        let names = [
            (self.avx2_fma, "avx2 fma"),
            (self.f16c, "f16c"),
            (self.avx512, "avx512"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.avx512_vnni, "avx512_vnni"),
        ];
        let list: Vec<&str> = names.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
        if list.is_empty() {
            "portable".to_string()
        } else {
            list.join(" ")
        }
    }
}

/// The features of this CPU, capped by [`CAP_VAR`]; detected on the first call.
pub fn features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(CpuFeatures::detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lower_the_features_and_name_them() {
        let all = CpuFeatures { avx2_fma: true, f16c: true, avx512: true, avx512_bf16: true, avx512_vnni: true };
        assert_eq!(all.describe(), "avx2 fma f16c avx512 avx512_bf16 avx512_vnni");
        assert_eq!(all.capped(Some("avx2")).describe(), "avx2 fma f16c");
        assert_eq!(all.capped(Some("portable")).describe(), "portable");
        assert_eq!(all.capped(None), all);
    }
}
