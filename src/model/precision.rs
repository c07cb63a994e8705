//! How the large matrix products of a stage are computed: f32 throughout (the
//! reference), or bf16 inputs with f32 sums on CPUs with AVX-512 BF16
//! ([`super::bf16_gemm`]), about twice the speed. `embed-catalog` uses it for its
//! encoder, `train` for the frozen NF4 base.

use crate::{Error, Result};

/// The precision of a stage's matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the CPU has AVX-512 BF16, f32 elsewhere.
    #[default]
    Auto,
    /// f32 throughout: the reference.
    F32,
    /// bf16 inputs, f32 sums (x86-64 with AVX-512 BF16 only).
    Bf16,
}

impl Precision {
    /// Whether this precision runs in bf16 here: `Auto` where the CPU can, `Bf16` always
    /// (an error where the CPU cannot), `F32` never.
    pub fn use_bf16(self) -> Result<bool> {
        match self {
            Precision::F32 => Ok(false),
            Precision::Auto => Ok(bf16_supported()),
            Precision::Bf16 if bf16_supported() => Ok(true),
            Precision::Bf16 => Err(Error::msg("precision bf16 needs a CPU with AVX-512 BF16; use auto or f32")),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Precision::Auto),
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(Error::msg(format!("precision {s:?} is not auto, f32 or bf16"))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// Whether this machine runs [`Precision::Bf16`].
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::bf16_gemm::supported();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}
