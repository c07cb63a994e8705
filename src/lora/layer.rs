//! The LoRA layer: `y = W x + B(A(dropout(x))) * scale` around any frozen base
//! projection (dense, NF4...), with PEFT's initialisation: `A` kaiming-uniform with
//! `a = sqrt(5)`, i.e. `U(-1/sqrt(in), 1/sqrt(in))`, and `B = 0`.
//!
//! Dropout is counter-based: its mask is a hash of (step key, layer, element), so a
//! run is reproducible from its seed and step alone (resume needs no RNG state)
//! and a recomputed forward draws the same mask.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{Device, Shape, Tensor, Var};

use super::config::LoraConfig;
use crate::model::linear::{LowRank, Projection};
use crate::seeded::uniform;

/// Training switch and step key shared by every LoRA layer of a model.
#[derive(Debug, Default)]
pub struct DropoutState {
    enabled: AtomicBool,
    key: AtomicU64,
}

impl DropoutState {
    /// Turns dropout on (training) or off (evaluation, inference).
    pub fn set_training(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }
    /// Sets the key of the next forward passes (e.g. seed and micro-step).
    pub fn set_key(&self, key: u64) {
        self.key.store(key, Ordering::Relaxed);
    }
}

/// A frozen base projection with a trainable low-rank update.
#[derive(Debug)]
pub struct LoraLinear {
    base: Box<dyn Projection>,
    /// `lora_A`, `[r, in]`.
    pub a: Var,
    /// `lora_B`, `[out, r]`.
    pub b: Var,
    scale: f64,
    dropout: f32,
    layer_id: u64,
    state: Arc<DropoutState>,
}

impl LoraLinear {
    /// Wraps `base` with PEFT-initialised adapters shaped by `config`; `seed` and
    /// `name` seed `A`, `layer_id` keys the dropout masks.
    pub fn new(
        base: Box<dyn Projection>,
        name: &str,
        config: &LoraConfig,
        seed: u64,
        layer_id: u64,
        state: Arc<DropoutState>,
    ) -> candle_core::Result<Self> {
        let (r, scale, dropout) = (config.r, config.scale(), config.dropout);
        let (inp, out) = (base.in_features(), base.out_features());
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = uniform(&format!("{seed}:{name}.lora_A"), r * inp).into_iter().map(|u| u * bound).collect();
        let a = Var::from_vec(a, (r, inp), &Device::Cpu)?;
        let b = Var::zeros((out, r), candle_core::DType::F32, &Device::Cpu)?;
        Ok(LoraLinear { base, a, b, scale, dropout, layer_id, state })
    }

    /// The frozen base projection.
    pub fn base(&self) -> &dyn Projection {
        self.base.as_ref()
    }

    /// The update's scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    fn dropout(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.mask(x.shape())? {
            Some(mask) => x * mask.to_dtype(x.dtype())?,
            None => Ok(x.clone()),
        }
    }

    fn mask(&self, shape: &Shape) -> candle_core::Result<Option<Tensor>> {
        if self.dropout <= 0.0 || !self.state.enabled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let key = self.state.key.load(Ordering::Relaxed) ^ self.layer_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let keep = 1.0 / (1.0 - self.dropout);
        let mask: Vec<f32> = uniform(&format!("dropout:{key}"), shape.elem_count())
            .into_iter()
            .map(|u| if (u + 1.0) / 2.0 >= self.dropout { keep } else { 0.0 })
            .collect();
        Ok(Some(Tensor::from_vec(mask, shape, &Device::Cpu)?))
    }
}

impl LowRank for LoraLinear {
    fn base(&self) -> &dyn Projection {
        self.base.as_ref()
    }
    fn a(&self) -> &Var {
        &self.a
    }
    fn b(&self) -> &Var {
        &self.b
    }
    fn scale(&self) -> f64 {
        self.scale
    }
    fn dropout_mask(&self, shape: &Shape) -> candle_core::Result<Option<Tensor>> {
        self.mask(shape)
    }
}

impl Projection for LoraLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.base.forward(x)?;
        let h = self.dropout(x)?.broadcast_matmul(&self.a.as_tensor().t()?)?;
        let update = h.broadcast_matmul(&self.b.as_tensor().t()?)?;
        y + (update * self.scale)?
    }
    fn in_features(&self) -> usize {
        self.base.in_features()
    }
    fn out_features(&self) -> usize {
        self.base.out_features()
    }
    fn stored_bytes(&self) -> Option<usize> {
        self.base.stored_bytes()
    }
    fn input_grad(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        self.base.input_grad(dy)
    }
    fn low_rank(&self) -> Option<&dyn LowRank> {
        Some(self)
    }
    /// The merged weight `W + (B @ A) * scale` (PEFT's merge), when the base is dense.
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        let (w, bias) = self.base.dense_weight()?;
        let delta = self.b.as_tensor().matmul(self.a.as_tensor()).ok()?;
        let merged = (w + (delta * self.scale).ok()?).ok()?;
        Some((merged, bias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::linear::DenseLinear;

    fn layer(dropout: f32) -> LoraLinear {
        let w: Vec<f32> = uniform("base", 6 * 10).into_iter().map(|u| u * 0.3).collect();
        let base = DenseLinear::new(Tensor::from_vec(w, (6, 10), &Device::Cpu).unwrap(), None);
        let config = LoraConfig {
            r: 3,
            alpha: 6.0,
            dropout,
            target_modules: vec![],
            use_rslora: false,
            layers_to_transform: vec![],
            trainable_token_indices: vec![],
        };
        let l = LoraLinear::new(Box::new(base), "t", &config, 7, 1, Arc::default()).unwrap();
        let b: Vec<f32> = uniform("b", 18).into_iter().map(|u| u * 0.5).collect();
        l.b.set(&Tensor::from_vec(b, (6, 3), &Device::Cpu).unwrap()).unwrap();
        l
    }

    /// Gradients of A and B from backprop equal central finite differences.
    #[test]
    fn gradients_equal_finite_differences() {
        let l = layer(0.0);
        let x = Tensor::from_vec(uniform("x", 4 * 10), (4, 10), &Device::Cpu).unwrap();
        let target = Tensor::from_vec(uniform("y", 4 * 6), (4, 6), &Device::Cpu).unwrap();
        let loss = |l: &LoraLinear| (l.forward(&x).unwrap() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss(&l).backward().unwrap();
        for var in [&l.a, &l.b] {
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let shape = var.as_tensor().shape().clone();
            for i in [0, base.len() / 2, base.len() - 1] {
                let eps = 1e-2f32;
                let probe = |d: f32| {
                    let mut v = base.clone();
                    v[i] += d;
                    var.set(&Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap()).unwrap();
                    loss(&l).to_scalar::<f32>().unwrap()
                };
                let fd = (probe(eps) - probe(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base.clone(), shape.clone(), &Device::Cpu).unwrap()).unwrap();
                assert!((fd - g[i]).abs() <= 2e-3 * (1.0 + fd.abs()), "element {i}: fd {fd} vs grad {}", g[i]);
            }
        }
    }

    #[test]
    fn peft_init_bounds_a_and_zeroes_b() {
        let base = DenseLinear::new(Tensor::zeros((5, 16), candle_core::DType::F32, &Device::Cpu).unwrap(), None);
        let config = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            target_modules: vec![],
            use_rslora: false,
            layers_to_transform: vec![],
            trainable_token_indices: vec![],
        };
        let l = LoraLinear::new(Box::new(base), "q", &config, 1, 0, Arc::default()).unwrap();
        let a = l.a.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(a.iter().all(|v| v.abs() <= 0.25) && a.iter().any(|v| v.abs() > 0.2));
        assert_eq!(l.b.as_tensor().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn dropout_is_reproducible_per_key_and_off_in_eval() {
        let l = layer(0.5);
        let x = Tensor::ones((3, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
        let eval = l.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        l.state.set_training(true);
        l.state.set_key(11);
        let a = l.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let b = l.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        l.state.set_key(12);
        let c = l.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, eval);
    }
}
