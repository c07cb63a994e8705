//! Trainable LM-head rows for chosen tokens, as PEFT's trainable tokens
//! (huggingface/peft, src/peft/tuners/trainable_tokens/layer.py): the rows of the
//! chosen ids start as the base's and are trained in full, and the adapter file holds
//! the new rows themselves (`base_model.model.lm_head.token_adapter.trainable_tokens_delta`,
//! `[ids, hidden]`), which a merge copies over the base's rows.
//!
//! A token the base model barely emits (Qwen2.5-Coder's `<tool_call>`, whose head row
//! is 0.63x the median norm) is out of reach of low-rank updates in a few hundred
//! rows; its own row, 896 numbers, is not.

use candle_core::{Tensor, Var};

use crate::model::linear::{Projection, TrainedRows};

/// PEFT's key of the trained LM-head rows.
pub const LM_HEAD_ROWS_KEY: &str = "base_model.model.lm_head.token_adapter.trainable_tokens_delta";

/// A frozen projection whose output rows `ids` are replaced by trainable `values`.
#[derive(Debug)]
pub struct TokenRows {
    base: Box<dyn Projection>,
    ids: Vec<u32>,
    index: Tensor,
    /// The base's own rows at `ids`, `[ids, in]`.
    originals: Tensor,
    values: Var,
}

impl TokenRows {
    /// Wraps `base`, whose rows `ids` become trainable, starting from the base's values.
    pub fn new(base: Box<dyn Projection>, ids: &[u32]) -> candle_core::Result<Self> {
        let (weight, _) = base
            .dense_weight()
            .ok_or_else(|| candle_core::Error::Msg("trainable token rows need a dense LM head".into()))?;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= base.out_features()) {
            candle_core::bail!("trainable token id {bad} is outside the LM head's {} rows", base.out_features());
        }
        let index = Tensor::new(ids, weight.device())?;
        let originals = weight.index_select(&index, 0)?.to_dtype(candle_core::DType::F32)?;
        let values = Var::from_tensor(&originals.copy()?)?;
        Ok(TokenRows { base, ids: ids.to_vec(), index, originals, values })
    }

    /// `values - originals`, in `dtype`, without autograd.
    fn delta(&self, dtype: candle_core::DType) -> candle_core::Result<Tensor> {
        (self.values.as_tensor().detach() - &self.originals)?.to_dtype(dtype)
    }
}

impl Projection for TokenRows {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.base.forward(x)?;
        let dims = x.dims().to_vec();
        let in_f = *dims.last().unwrap_or(&0);
        let flat = x.reshape(((), in_f))?;
        let yf = y.reshape(((), self.base.out_features()))?;
        // y[:, ids] += x · (values - originals)ᵀ: the base's columns become x · valuesᵀ
        // (differentiable in `values`: the autograd reference of training's backward).
        let delta = (self.values.as_tensor() - &self.originals)?.to_dtype(flat.dtype())?;
        let extra = flat.matmul(&delta.t()?)?.to_dtype(yf.dtype())?;
        yf.index_add(&self.index, &extra, 1)?.reshape(y.shape())
    }
    fn in_features(&self) -> usize {
        self.base.in_features()
    }
    fn out_features(&self) -> usize {
        self.base.out_features()
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        let (w, b) = self.base.dense_weight()?;
        let delta = self.delta(w.dtype()).ok()?;
        Some((w.index_add(&self.index, &delta, 0).ok()?, b))
    }
    fn stored_bytes(&self) -> Option<usize> {
        self.base.stored_bytes()
    }
    fn input_grad(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        let dx = self.base.input_grad(dy)?;
        let dy_rows = dy.index_select(&self.index, dy.rank() - 1)?;
        let extra = dy_rows.matmul(&self.delta(dy.dtype())?)?.to_dtype(dx.dtype())?;
        dx + extra
    }
    fn trained_rows(&self) -> Option<&dyn TrainedRows> {
        Some(self)
    }
}

impl TrainedRows for TokenRows {
    fn ids(&self) -> &[u32] {
        &self.ids
    }
    fn values(&self) -> &Var {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::linear::DenseLinear;
    use candle_core::{DType, Device};

    fn tensor(rows: usize, cols: usize, seed: u32) -> Tensor {
        let v: Vec<f32> = (0..rows * cols).map(|i| ((i as u32 * 7919 + seed) % 101) as f32 / 50.0 - 1.0).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// After setting the rows, forward, the dense weight and the input gradient are
    /// those of a dense layer whose weight has the new rows, computed independently.
    #[test]
    fn replaced_rows_act_as_a_dense_weight_with_those_rows() {
        let (w, x, dy) = (tensor(10, 6, 3), tensor(4, 6, 11), tensor(4, 10, 29));
        let rows = TokenRows::new(Box::new(DenseLinear::new(w.clone(), None)), &[7, 2]).unwrap();
        let new = tensor(2, 6, 57);
        rows.values().set(&new).unwrap();
        let mut want = w.to_vec2::<f32>().unwrap();
        let new_v = new.to_vec2::<f32>().unwrap();
        (want[7], want[2]) = (new_v[0].clone(), new_v[1].clone());
        let want = Tensor::new(want, &Device::Cpu).unwrap();
        let close = |a: &Tensor, b: &Tensor| {
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "max diff {d}");
        };
        close(&rows.forward(&x).unwrap(), &x.matmul(&want.t().unwrap()).unwrap());
        close(&rows.dense_weight().unwrap().0, &want);
        close(&rows.input_grad(&dy).unwrap(), &dy.matmul(&want).unwrap());
        // A batch of sequences goes through the same rows.
        let x3 = x.reshape((2, 2, 6)).unwrap();
        close(&rows.forward(&x3).unwrap().reshape((4, 10)).unwrap(), &x.matmul(&want.t().unwrap()).unwrap());
        assert_eq!(rows.values().dtype(), DType::F32);
        assert!(TokenRows::new(Box::new(DenseLinear::new(w, None)), &[10]).is_err());
    }
}
