//! Seeded, platform-stable hashing and pseudo-random values (unlike `std`'s hasher,
//! the same on every machine and release): LoRA's deterministic initialisation, the
//! tiny test models, synth's near-duplicate signatures and template's train/val split.
//!
//! ```text
//! fnv1a64(bytes) = FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3)
//! mix64(z)       = splitmix64's finaliser (xor-shift 30/27/31, multipliers below)
//! splitmix64(x)  = mix64(x + 0x9e3779b97f4a7c15)
//! uniform(name, i) = (splitmix64(fnv1a64(name) + i) >> 40) / 2^24 * 2 - 1   in [-1, 1)
//! ```
//! All arithmetic wraps at 64 bits. `scripts/reference/tiny_models.py` rebuilds
//! `uniform` bit for bit.

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// splitmix64's output finaliser.
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One splitmix64 step from state `x`.
pub fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

/// The deterministic values `u(name, i)` in `[-1, 1)` for `count` elements.
pub fn uniform(name: &str, count: usize) -> Vec<f32> {
    let seed = fnv1a64(name.as_bytes());
    (0..count)
        .map(|i| {
            let x = splitmix64(seed.wrapping_add(i as u64)) >> 40;
            (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // FNV-1a 64 test vectors (the FNV authors' table): "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // splitmix64 seeded with 0: its first output (Vigna's reference implementation).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert!(uniform("w", 1000).iter().all(|u| (-1.0..1.0).contains(u)));
    }
}
