//! Per-sequence key/value cache: for each layer, the keys and values of every
//! position seen so far, shaped `(num_kv_heads, positions, head_dim)`.
//!
//! Each layer keeps preallocated buffers `(num_kv_heads, capacity, head_dim)`;
//! new positions are written in place after the filled ones and attention reads a
//! narrow view of the filled length, so a decode step copies only its own keys and
//! values. When the buffers are full they are replaced by ones twice as large (one
//! copy of the filled part), so appending `n` positions one at a time copies
//! O(n) in all instead of the O(n²) of concatenating at every step.
//!
//! Buffers are shared between clones (a cached prefix seeding many sequences) and
//! copied on the first write by a clone that does not own them alone, so a clone
//! never sees another's positions.

use std::sync::Arc;

use candle_core::Tensor;

/// Capacity of a layer's first buffers when fewer positions are appended (positions).
const MIN_CAPACITY: usize = 64;

/// Preallocated keys and values of one layer, `(kv_heads, capacity, head_dim)`.
#[derive(Debug)]
struct Buffers {
    keys: Tensor,
    values: Tensor,
}

impl Buffers {
    /// Zeroed buffers shaped like `k`, `v` with room for `capacity` positions.
    fn zeros(k: &Tensor, v: &Tensor, capacity: usize) -> candle_core::Result<Self> {
        let (kv_heads, _, k_dim) = k.dims3()?;
        let (_, _, v_dim) = v.dims3()?;
        Ok(Buffers {
            keys: Tensor::zeros((kv_heads, capacity, k_dim), k.dtype(), k.device())?,
            values: Tensor::zeros((kv_heads, capacity, v_dim), v.dtype(), v.device())?,
        })
    }

    /// Buffers with room for `capacity` positions holding the first `len` of `self`
    /// (one pass over the data: the filled rows, then zeros).
    fn regrown(&self, len: usize, capacity: usize) -> candle_core::Result<Self> {
        let extend = |buffer: &Tensor| {
            let (kv_heads, _, dim) = buffer.dims3()?;
            let rest = Tensor::zeros((kv_heads, capacity - len, dim), buffer.dtype(), buffer.device())?;
            Tensor::cat(&[&buffer.narrow(1, 0, len)?, &rest], 1)
        };
        Ok(Buffers { keys: extend(&self.keys)?, values: extend(&self.values)? })
    }

    fn capacity(&self) -> usize {
        self.keys.dim(1).unwrap_or(0)
    }

    /// Writes `k`, `v` at positions `offset..` (they must fit).
    fn write(&self, offset: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        self.keys.slice_set(&k.contiguous()?, 1, offset)?;
        self.values.slice_set(&v.contiguous()?, 1, offset)
    }

    /// The first `len` positions, as views of the buffers.
    fn filled(&self, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((self.keys.narrow(1, 0, len)?, self.values.narrow(1, 0, len)?))
    }
}

/// One layer's buffers and how many of their positions belong to this cache.
#[derive(Debug, Clone)]
struct LayerKv {
    buffers: Arc<Buffers>,
    len: usize,
}

/// The KV cache of one sequence. Cloning is cheap (buffers are shared until one
/// clone appends), so a cached prefix (a long system prompt) can seed many sequences.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        KvCache { layers: vec![None; num_layers] }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(layer)) => layer.len,
            _ => 0,
        }
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `k`, `v` (`(kv_heads, t, head_dim)`) to layer `layer` and returns the
    /// whole cached keys and values of that layer (views of the cache's buffers, valid
    /// until the next append to this layer).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (old, len) = match self.layers[layer].take() {
            Some(l) => (Some(l.buffers), l.len),
            None => (None, 0),
        };
        let needed = len + k.dim(1)?;
        let buffers = match old {
            // No `Weak` is ever made, so one strong count means no other clone holds them.
            Some(b) if b.capacity() >= needed && Arc::strong_count(&b) == 1 => b,
            old => {
                // Full, or shared with another clone: move to buffers of our own.
                let old_capacity = old.as_ref().map_or(0, |b| b.capacity());
                let capacity = if old_capacity >= needed { old_capacity } else { needed.max(2 * old_capacity) };
                let capacity = capacity.max(MIN_CAPACITY);
                Arc::new(match old.filter(|_| len > 0) {
                    Some(b) => b.regrown(len, capacity)?,
                    None => Buffers::zeros(k, v, capacity)?,
                })
            }
        };
        buffers.write(len, k, v)?;
        let all = buffers.filled(needed)?;
        self.layers[layer] = Some(LayerKv { buffers, len: needed });
        Ok(all)
    }

    /// Keeps only the first `len` positions (to reuse a shared prefix); copies nothing.
    pub fn truncate(&mut self, len: usize) {
        for layer in self.layers.iter_mut().flatten() {
            layer.len = layer.len.min(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    /// `(kv_heads, t, head_dim)` keys whose values are distinct per position, from `start`.
    fn chunk(start: usize, t: usize) -> Tensor {
        let (heads, dim) = (2, 3);
        let n = heads * t * dim;
        Tensor::arange(start as f32 * 1000.0, start as f32 * 1000.0 + n as f32, &Device::Cpu)
            .unwrap()
            .reshape((heads, t, dim))
            .unwrap()
    }

    fn values_of(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
        t.to_vec3().unwrap()
    }

    #[test]
    fn appending_in_chunks_past_a_growth_equals_one_concatenation() {
        // 50 + 30 passes MIN_CAPACITY (64), 90 more passes the doubled 128.
        let sizes = [1, 49, 30, 1, 1, 88, 5];
        let chunks: Vec<(Tensor, Tensor)> = sizes
            .iter()
            .scan(0, |start, &t| {
                let s = *start;
                *start += t;
                Some((chunk(s, t), (chunk(s, t) * -1.0).unwrap()))
            })
            .collect();
        let mut cache = KvCache::new(2);
        let mut last = None;
        for (k, v) in &chunks {
            cache.append(0, k, v).unwrap();
            last = Some(cache.append(1, k, v).unwrap());
        }
        let (k_all, v_all) = last.unwrap();
        let keys: Vec<&Tensor> = chunks.iter().map(|(k, _)| k).collect();
        let values: Vec<&Tensor> = chunks.iter().map(|(_, v)| v).collect();
        assert_eq!(cache.len(), sizes.iter().sum::<usize>());
        assert_eq!(values_of(&k_all), values_of(&Tensor::cat(&keys, 1).unwrap()));
        assert_eq!(values_of(&v_all), values_of(&Tensor::cat(&values, 1).unwrap()));
    }

    #[test]
    fn clones_do_not_see_each_others_positions() {
        let mut prefix = KvCache::new(1);
        prefix.append(0, &chunk(0, 10), &chunk(0, 10)).unwrap();
        let (mut a, mut b) = (prefix.clone(), prefix.clone());
        b.truncate(4);
        let (ka, _) = a.append(0, &chunk(10, 1), &chunk(10, 1)).unwrap();
        let (kb, _) = b.append(0, &chunk(20, 1), &chunk(20, 1)).unwrap();
        let (kp, _) = prefix.append(0, &chunk(30, 1), &chunk(30, 1)).unwrap();
        assert_eq!((a.len(), b.len(), prefix.len()), (11, 5, 11));
        assert_eq!(values_of(&ka.i((.., 10..11, ..)).unwrap()), values_of(&chunk(10, 1)));
        assert_eq!(values_of(&kb.i((.., 0..4, ..)).unwrap()), values_of(&chunk(0, 10).i((.., 0..4, ..)).unwrap()));
        assert_eq!(values_of(&kb.i((.., 4..5, ..)).unwrap()), values_of(&chunk(20, 1)));
        assert_eq!(values_of(&kp.i((.., 10..11, ..)).unwrap()), values_of(&chunk(30, 1)));
    }
}
