//! GGUF import: a llama.cpp GGUF file (architectures `llama` and `qwen2`, any
//! quantization candle reads) becomes a complete HF model directory.
//!
//! Format facts (llama.cpp `convert_hf_to_gguf.py`, `gguf-py`):
//! - metadata `{arch}.block_count`, `.embedding_length`, `.feed_forward_length`,
//!   `.attention.head_count`, `.attention.head_count_kv`, `.rope.freq_base`,
//!   `.attention.layer_norm_rms_epsilon`, `.context_length`; tokenizer under
//!   `tokenizer.ggml.*` and the chat template in `tokenizer.chat_template`;
//! - tensors `token_embd`, `blk.{i}.attn_{q,k,v,output}`, `blk.{i}.ffn_{gate,up,down}`,
//!   `blk.{i}.attn_norm`, `blk.{i}.ffn_norm`, `output_norm`, `output` (absent when tied);
//! - for `llama`, Q and K rows were permuted for llama.cpp's interleaved RoPE:
//!   `w.reshape(heads, 2, rows/heads/2, in).swapaxes(1, 2)`; we apply the inverse
//!   `w.reshape(heads, rows/heads/2, 2, in).swapaxes(1, 2)` (K with the KV head count).
//!   `qwen2` is stored unpermuted.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Map, Value as Json};

use super::projections::LayerProjection;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The HF directory written.
    pub out_dir: PathBuf,
    /// `llama` or `qwen2`.
    pub arch: String,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of parameters.
    pub parameters: usize,
    /// Size of `model.safetensors` in bytes.
    pub weight_bytes: u64,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
}

/// An open GGUF file: its metadata and tensor directory.
pub struct GgufFile {
    path: PathBuf,
    file: File,
    content: Content,
}

impl GgufFile {
    /// Opens and parses the header of a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content =
            Content::read(&mut file).map_err(|e| Error::bad_input(path, None, format!("not a GGUF file: {e}")))?;
        Ok(GgufFile { path: path.to_path_buf(), file, content })
    }

    fn meta(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| Error::bad_input(&self.path, None, format!("missing GGUF metadata key `{key}`")))
    }

    fn meta_usize(&self, key: &str) -> Result<usize> {
        value_usize(self.meta(key)?).ok_or_else(|| self.bad(format!("metadata `{key}` is not an integer")))
    }

    /// A float stored as f32 in GGUF, given back as its shortest decimal (1e-5, not 9.99e-6).
    fn meta_f32_decimal(&self, key: &str) -> Result<Option<f64>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(v) => {
                let f = v.to_f32().map_err(|_| self.bad(format!("metadata `{key}` is not a float")))?;
                Ok(Some(f.to_string().parse::<f64>().unwrap_or(f as f64)))
            }
        }
    }

    fn meta_str(&self, key: &str) -> Option<&str> {
        self.content.metadata.get(key).and_then(|v| v.to_string().ok()).map(String::as_str)
    }

    fn meta_id(&self, key: &str) -> Option<usize> {
        self.content.metadata.get(key).and_then(value_usize)
    }

    fn bad(&self, message: String) -> Error {
        Error::bad_input(&self.path, None, message)
    }

    /// The architecture (`general.architecture`).
    pub fn arch(&self) -> Result<String> {
        let arch =
            self.meta_str("general.architecture").ok_or_else(|| self.bad("missing general.architecture".into()))?;
        match arch {
            "llama" | "qwen2" => Ok(arch.to_string()),
            other => Err(self.bad(format!("GGUF architecture `{other}` is not supported (llama, qwen2)"))),
        }
    }

    /// The HF `config.json` equivalent of the GGUF metadata.
    pub fn hf_config(&self) -> Result<Json> {
        let arch = self.arch()?;
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = self.meta_usize(&key("embedding_length"))?;
        let heads = self.meta_usize(&key("attention.head_count"))?;
        let kv_heads = self.meta_id(&key("attention.head_count_kv")).unwrap_or(heads);
        let vocab = match self.meta_id(&key("vocab_size")) {
            Some(v) => v,
            None => self.tokens()?.len(),
        };
        let tied = !self.content.tensor_infos.contains_key("output.weight");
        let (model_type, architecture) =
            if arch == "qwen2" { ("qwen2", "Qwen2ForCausalLM") } else { ("llama", "LlamaForCausalLM") };
        let mut cfg = json!({
            "architectures": [architecture],
            "model_type": model_type,
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": self.meta_usize(&key("feed_forward_length"))?,
            "num_hidden_layers": self.meta_usize(&key("block_count"))?,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": self.meta_id(&key("attention.key_length")).unwrap_or(hidden / heads),
            "max_position_embeddings": self.meta_id(&key("context_length")).unwrap_or(4096),
            "rms_norm_eps": self.meta_f32_decimal(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            "rope_theta": self.meta_f32_decimal(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            "tie_word_embeddings": tied,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        });
        let obj = cfg.as_object_mut().ok_or_else(|| Error::msg("config is an object"))?;
        if arch == "llama" {
            let has_bias = self.content.tensor_infos.contains_key("blk.0.attn_q.bias");
            obj.insert("attention_bias".into(), json!(has_bias));
            obj.insert("mlp_bias".into(), json!(false));
        }
        for (hf, gg) in
            [("bos_token_id", "tokenizer.ggml.bos_token_id"), ("eos_token_id", "tokenizer.ggml.eos_token_id")]
        {
            if let Some(id) = self.meta_id(gg) {
                obj.insert(hf.into(), json!(id));
            }
        }
        Ok(cfg)
    }

    fn tokens(&self) -> Result<Vec<String>> {
        let arr = self
            .meta("tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|_| self.bad("tokenizer.ggml.tokens is not an array".into()))?;
        arr.iter()
            .map(|v| v.to_string().cloned().map_err(|_| self.bad("tokenizer.ggml.tokens holds a non-string".into())))
            .collect()
    }

    /// The HF `tokenizer.json` equivalent of the GGUF vocabulary and merges
    /// (byte-level BPE, `tokenizer.ggml.model = gpt2`).
    pub fn hf_tokenizer(&self) -> Result<Json> {
        let model = self.meta_str("tokenizer.ggml.model").unwrap_or("");
        if model != "gpt2" {
            return Err(self.bad(format!(
                "tokenizer.ggml.model `{model}` is not supported: only byte-level BPE (`gpt2`, as in SmolLM2, Qwen2, Llama 3) is converted"
            )));
        }
        let tokens = self.tokens()?;
        let types: Vec<usize> = match self.content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| self.bad("token_type is not an array".into()))?
                .iter()
                .map(|t| value_usize(t).unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        let merges: Vec<Json> = self
            .meta("tokenizer.ggml.merges")?
            .to_vec()
            .map_err(|_| self.bad("tokenizer.ggml.merges is not an array".into()))?
            .iter()
            .map(|m| {
                let s = m.to_string().map_err(|_| self.bad("a merge is not a string".into()))?;
                let (a, b) = s.split_once(' ').ok_or_else(|| self.bad(format!("merge `{s}` has no space")))?;
                Ok(json!([a, b]))
            })
            .collect::<Result<_>>()?;
        let mut vocab = Map::new();
        for (i, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), json!(i));
        }
        // 3 = control (special), 4 = user-defined (added, not special), as in llama.cpp.
        let added: Vec<Json> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == 3 || **t == 4)
            .map(|(i, t)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": *t == 4, "special": *t == 3})
            })
            .collect();
        let pre = self.meta_str("tokenizer.ggml.pre").unwrap_or("default");
        let (normalizer, pre_tokenizer, byte_level) = pre_tokenizer_for(pre).ok_or_else(|| {
            self.bad(format!("tokenizer.ggml.pre `{pre}` is not supported (smollm, qwen2, llama-bpe, gpt2, default)"))
        })?;
        let unk = self.meta_id("tokenizer.ggml.unknown_token_id").and_then(|i| tokens.get(i).cloned());
        Ok(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": byte_level.clone(),
            "decoder": byte_level,
            "model": {
                "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges,
            }
        }))
    }

    /// `tokenizer_config.json`: special tokens, the chat template, the tokenizer class.
    pub fn hf_tokenizer_config(&self) -> Result<Json> {
        let tokens = self.tokens()?;
        let mut cfg = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
            "add_bos_token": self.content.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false),
            "model_max_length": self.meta_id(&format!("{}.context_length", self.arch()?)).unwrap_or(4096),
        });
        let obj = cfg.as_object_mut().ok_or_else(|| Error::msg("config is an object"))?;
        for (name, key) in [
            ("bos_token", "tokenizer.ggml.bos_token_id"),
            ("eos_token", "tokenizer.ggml.eos_token_id"),
            ("pad_token", "tokenizer.ggml.padding_token_id"),
            ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ] {
            if let Some(tok) = self.meta_id(key).and_then(|i| tokens.get(i)) {
                obj.insert(name.into(), json!(tok));
            }
        }
        if let Some(t) = self.meta_str("tokenizer.chat_template") {
            obj.insert("chat_template".into(), json!(t));
        }
        Ok(cfg)
    }

    /// `generation_config.json`: the special token ids.
    pub fn hf_generation_config(&self) -> Json {
        let mut cfg = Map::new();
        for (hf, gg) in [
            ("bos_token_id", "tokenizer.ggml.bos_token_id"),
            ("eos_token_id", "tokenizer.ggml.eos_token_id"),
            ("pad_token_id", "tokenizer.ggml.padding_token_id"),
        ] {
            if let Some(id) = self.meta_id(gg) {
                cfg.insert(hf.into(), json!(id));
            }
        }
        Json::Object(cfg)
    }

    /// Every tensor, dequantized to `dtype` and renamed to HF names (Q/K un-permuted
    /// for `llama`). `progress(done, total)` is called after each tensor.
    pub fn hf_tensors(
        &mut self,
        dtype: DType,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(String, Tensor)>> {
        let arch = self.arch()?;
        let heads = self.meta_usize(&format!("{arch}.attention.head_count"))?;
        let kv_heads = self.meta_id(&format!("{arch}.attention.head_count_kv")).unwrap_or(heads);
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort();
        let total = names.len();
        let mut out = Vec::with_capacity(total);
        for (i, name) in names.iter().enumerate() {
            let hf = hf_tensor_name(name).ok_or_else(|| self.bad(format!("tensor `{name}` has no HF equivalent")))?;
            let q = self
                .content
                .tensor(&mut self.file, name, &Device::Cpu)
                .map_err(|e| self.bad(format!("tensor `{name}`: {e}")))?;
            let mut t = q.dequantize(&Device::Cpu)?;
            if arch == "llama" {
                if name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias") {
                    t = unpermute_rows(&t, heads)?;
                } else if name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias") {
                    t = unpermute_rows(&t, kv_heads)?;
                }
            }
            out.push((hf, t.to_dtype(dtype)?));
            progress(i + 1, total);
        }
        Ok(out)
    }
}

/// Normalizer, pre-tokenizer and byte-level step of each llama.cpp pre-tokenizer
/// type, as the HF `tokenizer.json` of the original models has them.
fn pre_tokenizer_for(pre: &str) -> Option<(Json, Json, Json)> {
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let byte_level = |prefix: bool, trim: bool, regex: bool| json!({"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": trim, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    match pre {
        // StarCoder-style: every digit alone, then GPT-2 byte-level splitting.
        "smollm" | "starcoder" => Some((
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(false, true, true)]}),
            byte_level(false, true, true),
        )),
        "qwen2" => Some((
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(false, false, false)]}),
            byte_level(false, false, false),
        )),
        "llama-bpe" | "llama3" | "smaug-bpe" => Some((
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(false, true, false)]}),
            byte_level(true, true, true),
        )),
        "gpt2" | "default" => Some((Json::Null, byte_level(false, true, true), byte_level(false, true, true))),
        _ => None,
    }
}

fn value_usize(v: &Value) -> Option<usize> {
    match v {
        Value::U8(x) => Some(*x as usize),
        Value::U16(x) => Some(*x as usize),
        Value::U32(x) => Some(*x as usize),
        Value::U64(x) => Some(*x as usize),
        Value::I8(x) => usize::try_from(*x).ok(),
        Value::I16(x) => usize::try_from(*x).ok(),
        Value::I32(x) => usize::try_from(*x).ok(),
        Value::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}

/// The HF name of a GGUF tensor.
fn hf_tensor_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf_module = match module {
        "attn_norm" => "input_layernorm".to_string(),
        "ffn_norm" => "post_attention_layernorm".to_string(),
        projection => LayerProjection::from_gguf(projection)?.module(),
    };
    Some(format!("model.layers.{layer}.{hf_module}.{kind}"))
}

/// Undoes llama.cpp's Q/K row permutation for `heads` heads (weight `[rows, in]` or bias `[rows]`).
fn unpermute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let inner: usize = dims[1..].iter().product();
    let t = t.reshape((heads, rows / heads / 2, 2, inner))?.transpose(1, 2)?.contiguous()?;
    Ok(t.reshape(dims)?)
}

/// Converts `gguf_path` into an HF directory at `out_dir` (written beside it under a
/// temporary name, then renamed, so `out_dir` is never half-written).
pub fn import_gguf(
    gguf_path: &Path,
    out_dir: &Path,
    dtype: DType,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary> {
    let mut gguf = GgufFile::open(gguf_path)?;
    let arch = gguf.arch()?;
    let config = gguf.hf_config()?;
    let tokenizer = gguf.hf_tokenizer()?;
    let tokenizer_config = gguf.hf_tokenizer_config()?;
    let generation_config = gguf.hf_generation_config();
    let tensors = gguf.hf_tensors(dtype, progress)?;

    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let staging = tempfile::Builder::new().prefix(".import-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    let write_json = |name: &str, v: &Json| -> Result<()> {
        let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&staging.path().join(name), &bytes)
    };
    write_json("config.json", &config)?;
    write_json("tokenizer.json", &tokenizer)?;
    write_json("tokenizer_config.json", &tokenizer_config)?;
    write_json("generation_config.json", &generation_config)?;
    // The tokenizer must load before we publish it.
    tokenizers::Tokenizer::from_file(staging.path().join("tokenizer.json"))
        .map_err(|e| Error::msg(format!("{}: the converted tokenizer does not load: {e}", gguf_path.display())))?;
    let parameters = tensors.iter().map(|(_, t)| t.elem_count()).sum();
    let weights = staging.path().join("model.safetensors");
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(tensors.iter().map(|(k, v)| (k.as_str(), v)), meta, &weights)
        .map_err(|e| Error::msg(format!("{}: {e}", weights.display())))?;
    let weight_bytes = std::fs::metadata(&weights).map_err(|e| Error::io(&weights, e))?.len();

    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    }
    crate::atomic::set_mode(staging.path(), 0o755)?;
    let staged = staging.keep();
    std::fs::rename(&staged, out_dir).map_err(|e| Error::io(out_dir, e))?;
    Ok(ImportSummary {
        out_dir: out_dir.to_path_buf(),
        arch,
        tensors: tensors.len(),
        parameters,
        weight_bytes,
        vocab_size: tokenizer["model"]["vocab"].as_object().map(|m| m.len()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_llama_cpp_tensor_name() {
        assert_eq!(hf_tensor_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(hf_tensor_name("blk.12.attn_q.bias").unwrap(), "model.layers.12.self_attn.q_proj.bias");
        assert_eq!(hf_tensor_name("blk.0.ffn_down.weight").unwrap(), "model.layers.0.mlp.down_proj.weight");
        assert_eq!(hf_tensor_name("blk.3.ffn_norm.weight").unwrap(), "model.layers.3.post_attention_layernorm.weight");
        assert!(hf_tensor_name("rope_freqs.weight").is_none());
    }

    /// llama.cpp's permutation, written as in convert_hf_to_gguf.py, then ours undoes it.
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, rows, cols) = (3usize, 12usize, 5usize);
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let hf = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
        let permuted = hf
            .reshape((heads, 2, rows / heads / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap();
        assert_ne!(permuted.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
        let back = unpermute_rows(&permuted, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
        // Row 1 of head 0 in llama.cpp's layout is HF row 2 (pairs interleave the halves).
        assert_eq!(permuted.to_vec2::<f32>().unwrap()[1], hf.to_vec2::<f32>().unwrap()[2]);
    }
}
