//! Exact and near-duplicate removal for chat data: MinHash over syllable 3-gram
//! shingles with LSH banding (Broder 1997; Leskovec et al., *Mining of Massive
//! Datasets*, ch. 3).
//!
//! A text is normalised (lowercase, punctuation to spaces; diacritics kept, since
//! they distinguish Vietnamese words), split into syllables, and shingled into
//! overlapping 3-syllable windows. Two texts whose estimated Jaccard similarity is
//! at least the threshold are near duplicates; identical normalised texts are exact
//! duplicates. Hashes are FNV-1a + splitmix64, so verdicts are the same on every run.

use std::collections::{HashMap, HashSet};

use crate::seeded::{fnv1a64, splitmix64};

/// MinHash signature length: `BANDS * ROWS`.
pub const NUM_HASHES: usize = 64;
/// LSH bands; with 4 rows each, pairs at Jaccard 0.8 collide in some band with
/// probability 1 - (1 - 0.8^4)^16 ≈ 0.9996.
const BANDS: usize = 16;
const ROWS: usize = NUM_HASHES / BANDS;
/// Syllables per shingle.
const SHINGLE: usize = 3;

/// What [`Deduper::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before; now remembered.
    New,
    /// The same normalised text was seen before.
    Exact,
    /// A text at least `threshold` similar was seen before.
    Near,
}

/// Lowercase syllables of `text`, punctuation removed.
pub fn syllables(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(String::from).collect()
}

/// The hashed 3-syllable shingles of `text` (one shingle for shorter texts).
pub fn shingles(text: &str) -> HashSet<u64> {
    let syl = syllables(text);
    if syl.len() < SHINGLE {
        return HashSet::from([fnv1a64(syl.join(" ").as_bytes())]);
    }
    syl.windows(SHINGLE).map(|w| fnv1a64(w.join(" ").as_bytes())).collect()
}

/// The MinHash signature of a shingle set.
pub fn signature(shingles: &HashSet<u64>) -> [u64; NUM_HASHES] {
    let mut sig = [u64::MAX; NUM_HASHES];
    for &s in shingles {
        for (i, slot) in sig.iter_mut().enumerate() {
            *slot = (*slot).min(splitmix64(s ^ splitmix64(i as u64 + 1)));
        }
    }
    sig
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64; NUM_HASHES], b: &[u64; NUM_HASHES]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / NUM_HASHES as f64
}

/// Remembers texts and says whether a new one duplicates any of them.
pub struct Deduper {
    threshold: f64,
    exact: HashSet<u64>,
    signatures: Vec<[u64; NUM_HASHES]>,
    buckets: HashMap<(usize, u64), Vec<usize>>,
}

impl Deduper {
    /// A deduper flagging near duplicates at estimated Jaccard ≥ `threshold`
    /// (values above 1 turn near-duplicate detection off).
    pub fn new(threshold: f64) -> Self {
        Deduper { threshold, exact: HashSet::new(), signatures: Vec::new(), buckets: HashMap::new() }
    }

    /// Texts remembered so far.
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    /// Whether nothing was remembered yet.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Checks `text` against everything remembered and remembers it if new.
    pub fn insert(&mut self, text: &str) -> Verdict {
        let key = fnv1a64(syllables(text).join(" ").as_bytes());
        if self.exact.contains(&key) {
            return Verdict::Exact;
        }
        let sig = signature(&shingles(text));
        let band_keys: Vec<(usize, u64)> =
            (0..BANDS).map(|b| (b, fnv1a64(&bytes_of(&sig[b * ROWS..(b + 1) * ROWS])))).collect();
        if self.threshold <= 1.0 {
            let mut seen = HashSet::new();
            for k in &band_keys {
                for &j in self.buckets.get(k).into_iter().flatten() {
                    if seen.insert(j) && similarity(&sig, &self.signatures[j]) >= self.threshold {
                        return Verdict::Near;
                    }
                }
            }
        }
        self.exact.insert(key);
        let id = self.signatures.len();
        self.signatures.push(sig);
        for k in band_keys {
            self.buckets.entry(k).or_default().push(id);
        }
        Verdict::New
    }
}

fn bytes_of(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_exact_and_near_duplicates_only() {
        let mut d = Deduper::new(0.8);
        let a = "Dạ đơn hàng DH250011 của chị đang được giao, dự kiến chị nhận hàng trong hai ngày tới ạ. \
                 Chị để ý điện thoại giúp em nhé, nếu cần gì thêm chị cứ nhắn cho em ạ.";
        assert_eq!(d.insert(a), Verdict::New);
        assert_eq!(d.insert(&a.to_uppercase()), Verdict::Exact, "case and punctuation do not matter");
        let near = a.replace("nhé", "nha");
        assert_eq!(d.insert(&near), Verdict::Near);
        let other = "Dạ hiện tại bên em có mã HELLOSUMMER giảm 10% cho đơn từ 300.000đ ạ.";
        assert_eq!(d.insert(other), Verdict::New);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn similarity_tracks_jaccard() {
        let a = signature(&shingles("một hai ba bốn năm sáu bảy tám chín mười"));
        let b = signature(&shingles("một hai ba bốn năm sáu bảy tám chín mười"));
        let c = signature(&shingles("mười một mười hai mười ba mười bốn mười lăm"));
        assert_eq!(similarity(&a, &b), 1.0);
        assert!(similarity(&a, &c) < 0.2);
    }
}
