//! Prefix caching: the KV caches of recent prompts, so a new prompt that starts with
//! the same tokens (the store's long system prompt and tool list, or the earlier turns
//! of a conversation) continues from the cached keys and values instead of
//! recomputing them.
//!
//! An entry is a prompt's token ids and its KV cache (shared buffers: storing and
//! handing out a cache copies no data; a sequence copies the part it uses on its
//! first append). A lookup takes the entry sharing the longest common prefix with
//! the new prompt; when that prefix is shorter than the entry, the cache is cut to
//! it. Entries are evicted least recently used first when their tokens exceed the
//! budget.

use crate::model::KvCache;

/// Shorter shared prefixes are recomputed: the copy would not pay for itself.
const MIN_PREFIX_TOKENS: usize = 16;

struct Entry {
    tokens: Vec<u32>,
    cache: KvCache,
    last_used: u64,
}

/// The cached prompts.
pub struct PrefixCache {
    entries: Vec<Entry>,
    budget_tokens: usize,
    clock: u64,
}

impl PrefixCache {
    /// A cache holding at most `budget_tokens` positions in all (0 disables it).
    pub fn new(budget_tokens: usize) -> Self {
        PrefixCache { entries: Vec::new(), budget_tokens, clock: 0 }
    }

    /// A cache for the longest cached prefix of `prompt` (at most `prompt.len() - 1`
    /// positions, so the last prompt token is always computed and gives logits), or
    /// `None` when no entry shares at least [`MIN_PREFIX_TOKENS`].
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<KvCache> {
        self.clock += 1;
        let limit = prompt.len().saturating_sub(1);
        let best = self
            .entries
            .iter_mut()
            .map(|e| {
                let common = e.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(limit);
                (common, e)
            })
            .max_by_key(|(common, _)| *common);
        let (common, entry) = best.filter(|(common, _)| *common >= MIN_PREFIX_TOKENS)?;
        entry.last_used = self.clock;
        let mut cache = entry.cache.clone();
        cache.truncate(common);
        Some(cache)
    }

    /// Stores `cache`, the keys and values of exactly `tokens`.
    pub fn insert(&mut self, tokens: &[u32], cache: &KvCache) {
        if tokens.len() < MIN_PREFIX_TOKENS || tokens.len() > self.budget_tokens || cache.len() != tokens.len() {
            return;
        }
        // An entry that is a prefix of the new one is superseded by it.
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        if self.entries.iter().any(|e| e.tokens.starts_with(tokens)) {
            return;
        }
        self.clock += 1;
        self.entries.push(Entry { tokens: tokens.to_vec(), cache: cache.clone(), last_used: self.clock });
        while self.entries.iter().map(|e| e.tokens.len()).sum::<usize>() > self.budget_tokens {
            let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used).map(|(i, _)| i);
            match oldest {
                Some(i) => drop(self.entries.swap_remove(i)),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// A one-layer cache whose key at position p is p (so truncation is visible).
    fn cache_of(len: usize) -> KvCache {
        let mut cache = KvCache::new(1);
        let k = Tensor::arange(0f32, len as f32, &Device::Cpu).unwrap().reshape((1, len, 1)).unwrap();
        cache.append(0, &k, &k).unwrap();
        cache
    }

    #[test]
    fn longest_common_prefix_wins_and_is_cut() {
        let mut pc = PrefixCache::new(1000);
        let system: Vec<u32> = (0..40).collect();
        let a: Vec<u32> = system.iter().copied().chain([100, 101]).collect();
        pc.insert(&a, &cache_of(a.len()));
        let b: Vec<u32> = system.iter().copied().chain([200, 201, 202]).collect();
        let hit = pc.lookup(&b).expect("shares 40 tokens");
        assert_eq!(hit.len(), 40);
        // The whole prompt cached: all but the last token is reused.
        assert_eq!(pc.lookup(&a).unwrap().len(), a.len() - 1);
        assert!(pc.lookup(&[7; 30]).is_none());
    }

    #[test]
    fn evicts_least_recently_used_over_budget() {
        let mut pc = PrefixCache::new(50);
        let a: Vec<u32> = (0..30).collect();
        let b: Vec<u32> = (1000..1030).collect();
        pc.insert(&a, &cache_of(30));
        pc.insert(&b, &cache_of(30));
        assert!(pc.lookup(&a).is_none(), "a was evicted");
        assert!(pc.lookup(&b).is_some());
    }
}
