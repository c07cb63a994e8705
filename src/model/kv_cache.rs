//! Per-sequence key/value cache: for each layer, the keys and values of every
//! position seen so far, shaped `(num_kv_heads, positions, head_dim)`.

use candle_core::Tensor;

/// The KV cache of one sequence. Cloning is cheap (tensors are shared), so a
/// cached prefix (a long system prompt) can seed many sequences.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        KvCache { layers: vec![None; num_layers] }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dim(1).unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `k`, `v` (`(kv_heads, t, head_dim)`) to layer `layer` and returns the
    /// whole cached keys and values of that layer.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let slot = &mut self.layers[layer];
        let (k_all, v_all) = match slot.take() {
            None => (k.contiguous()?, v.contiguous()?),
            Some((k_old, v_old)) => (Tensor::cat(&[&k_old, k], 1)?, Tensor::cat(&[&v_old, v], 1)?),
        };
        *slot = Some((k_all.clone(), v_all.clone()));
        Ok((k_all, v_all))
    }

    /// Keeps only the first `len` positions (to reuse a shared prefix).
    pub fn truncate(&mut self, len: usize) -> candle_core::Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            if k.dim(1)? > len {
                *k = k.narrow(1, 0, len)?.contiguous()?;
                *v = v.narrow(1, 0, len)?.contiguous()?;
            }
        }
        Ok(())
    }
}
