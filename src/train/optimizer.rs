//! AdamW with decoupled weight decay (PyTorch's `torch.optim.AdamW` update order)
//! and its state in f32, so a checkpoint can save and restore it exactly.

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::Result;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWParams {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        // The QLoRA recipe: β₂ 0.999 (shared/REFERENCE.md); PyTorch's defaults otherwise.
        AdamWParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// AdamW over a fixed list of variables.
pub struct AdamW {
    params: AdamWParams,
    vars: Vec<Var>,
    /// First moments, one per variable.
    pub m: Vec<Tensor>,
    /// Second moments, one per variable.
    pub v: Vec<Tensor>,
    /// Updates applied so far.
    pub step: u64,
}

impl AdamW {
    /// A fresh optimizer (zero moments) for `vars`.
    pub fn new(vars: Vec<Var>, params: AdamWParams) -> Result<Self> {
        let m = vars.iter().map(|v| v.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW { params, vars, m, v, step: 0 })
    }

    /// One update with learning rate `lr` from `grads` (one per variable, same order).
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let AdamWParams { beta1, beta2, eps, weight_decay } = self.params;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        for (i, var) in self.vars.iter().enumerate() {
            let g = &grads[i];
            self.m[i] = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            self.v[i] = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((&self.v[i] / bc2)?.sqrt()? + eps)?;
            let update = ((&self.m[i] / bc1)? / denom)?;
            let p = var.as_tensor().detach();
            let p = if weight_decay > 0.0 { (p * (1.0 - lr * weight_decay))? } else { p };
            var.set(&(p - (update * lr)?)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps by hand: PyTorch AdamW with lr 0.1, wd 0.01 on p = [1, -2], g = [0.5, 0.25].
    #[test]
    fn matches_the_update_rule() {
        let var = Var::from_vec(vec![1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let params = AdamWParams { weight_decay: 0.01, ..Default::default() };
        let mut opt = AdamW::new(vec![var.clone()], params).unwrap();
        let g = Tensor::new(&[0.5f32, 0.25], &Device::Cpu).unwrap();
        opt.step(std::slice::from_ref(&g), 0.1).unwrap();
        opt.step(&[g], 0.1).unwrap();
        // Step 1: p*(1-0.001) - 0.1*sign(g) (m̂/√v̂ = ±1); step 2 likewise.
        let want = [(1.0 * 0.999 - 0.1) * 0.999 - 0.1, (-2.0 * 0.999 - 0.1) * 0.999 - 0.1];
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        for (a, b) in got.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
