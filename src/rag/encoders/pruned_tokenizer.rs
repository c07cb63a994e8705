//! A Unigram tokenizer cut down to the pieces some known texts can use.
//!
//! Building e5's (and BGE-M3's) 250,002-piece Unigram model takes the tokenizers
//! crate 0.7 s, most of it inserting every piece into its trie: more than embedding
//! the few documents an incremental index update changes. The model segments each
//! word the normalizer, the added tokens and the pre-tokenizer leave, using only
//! pieces that are substrings of that word: keeping those pieces, plus the one with
//! the lowest score (the unknown-token score is derived from it), the unknown piece
//! and the added tokens, gives a model whose Viterbi lattice, and so whose tokens,
//! are the same for these texts. The words come from a probe tokenizer (the same
//! file with only the added tokens as vocabulary), as the tokenizer itself splits
//! them. The kept pieces are renumbered in their original order; the added tokens
//! and the post-processor's special-token ids are renumbered with them, and
//! [`PrunedTokenizer::original_ids`] maps every new id back.

use std::collections::HashSet;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokenizers::{OffsetReferential, OffsetType, PreTokenizer, Tokenizer};

use crate::{Error, Result};

/// A tokenizer for a known set of texts, and the original id of each of its ids.
pub(super) struct PrunedTokenizer {
    /// The cut-down tokenizer.
    pub tokenizer: Tokenizer,
    /// `original_ids[id]` is the whole tokenizer's id of this tokenizer's `id`.
    pub original_ids: Vec<u32>,
}

/// `tokenizer.json` with the model's vocabulary read as (piece, score) pairs: a third
/// of the time of a `Value` tree for 250,002 pieces.
#[derive(Deserialize)]
struct File {
    model: Model,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// The `model` object: its vocabulary apart from the other fields.
#[derive(Deserialize)]
struct Model {
    #[serde(default)]
    vocab: Pieces,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A Unigram vocabulary (a list of `[piece, score]`), or `None` for another kind
/// (WordPiece's and BPE's are maps, skipped unread).
#[derive(Default)]
struct Pieces(Option<Vec<(String, f64)>>);

impl<'de> Deserialize<'de> for Pieces {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Pieces;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of [piece, score] or a map")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Pieces, A::Error> {
                let mut pieces = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(p) = seq.next_element()? {
                    pieces.push(p);
                }
                Ok(Pieces(Some(pieces)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Pieces, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Pieces(None))
            }
        }
        d.deserialize_any(Either)
    }
}

/// Cuts the tokenizer in `json` (the text of a `tokenizer.json`) down to what
/// `texts` use. `None` when it is not a Unigram model, or its post-processor or
/// added tokens are of a kind this does not know how to renumber: load it whole.
pub(super) fn prune(json: &str, texts: &[String]) -> Result<Option<PrunedTokenizer>> {
    let file: File = serde_json::from_str(json).map_err(|e| Error::msg(format!("tokenizer.json: {e}")))?;
    let mut root = Value::Object(file.rest);
    root["model"] = Value::Object(file.model.rest);
    if root["model"]["type"] != "Unigram" {
        return Ok(None);
    }
    let Some(vocab) = file.model.vocab.0 else {
        return Ok(None);
    };
    let lowest = vocab.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(i, _)| i);
    let unk_id = root["model"]["unk_id"].as_u64().map(|i| i as usize);
    let added: Vec<String> = root["added_tokens"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["content"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    let unk = unk_id.and_then(|i| vocab.get(i)).map(|p| p.0.to_string());
    let longest = vocab.iter().map(|p| p.0.chars().count()).max().unwrap_or(0);
    let words = model_words(&root, &added, unk.as_deref(), texts)?;
    let substrings = substrings(&words, longest);
    let mut new_id = vec![None; vocab.len()];
    let mut original_ids = Vec::new();
    let mut kept = Vec::new();
    for (i, (text, score)) in vocab.iter().enumerate() {
        let text = text.as_str();
        let keep =
            Some(i) == lowest || Some(i) == unk_id || substrings.contains(text) || added.iter().any(|a| a == text);
        if keep {
            new_id[i] = Some(original_ids.len() as u32);
            original_ids.push(i as u32);
            kept.push(json!([text, score]));
        }
    }
    let renumber = |id: &Value| id.as_u64().and_then(|i| new_id.get(i as usize).copied().flatten());
    if let Some(unk) = unk_id {
        root["model"]["unk_id"] = new_id[unk].into();
    }
    root["model"]["vocab"] = Value::Array(kept);
    // Added tokens are matched by content against the model: each kept one gets its piece's new id.
    if let Some(tokens) = root["added_tokens"].as_array_mut() {
        for t in tokens {
            let Some(id) = renumber(&t["id"]) else { return Ok(None) };
            t["id"] = id.into();
        }
    }
    if !renumber_post_processor(&mut root["post_processor"], &renumber) {
        return Ok(None);
    }
    let tokenizer: Tokenizer =
        root.to_string().parse().map_err(|e| Error::msg(format!("tokenizer.json, cut down: {e}")))?;
    Ok(Some(PrunedTokenizer { tokenizer, original_ids }))
}

/// The words of `texts` the model segments: what the added tokens, the normalizer
/// and the pre-tokenizer of the file leave (the Metaspace `▁` included), split by
/// a probe tokenizer that has the file's parts and only the added tokens (and the
/// unknown piece `unk`) as vocabulary.
fn model_words(root: &Value, added: &[String], unk: Option<&str>, texts: &[String]) -> Result<Vec<String>> {
    let mut vocab: Vec<Value> = added.iter().map(|a| json!([a, 0.0])).collect();
    let unk_id = unk.map(|u| match added.iter().position(|a| a == u) {
        Some(i) => i,
        None => {
            vocab.push(json!([u, 0.0]));
            vocab.len() - 1
        }
    });
    let mut probe = root.clone();
    probe["model"]["vocab"] = Value::Array(vocab);
    probe["model"]["unk_id"] = unk_id.into();
    probe["post_processor"] = Value::Null;
    if let Some(tokens) = probe["added_tokens"].as_array_mut() {
        for (i, t) in tokens.iter_mut().enumerate() {
            t["id"] = i.into();
        }
    }
    let probe: Tokenizer = probe.to_string().parse().map_err(|e| Error::msg(format!("tokenizer.json: {e}")))?;
    let mut words = Vec::new();
    for text in texts {
        let mut split = probe.get_added_vocabulary().extract_and_normalize(probe.get_normalizer(), text);
        if let Some(p) = probe.get_pre_tokenizer() {
            p.pre_tokenize(&mut split).map_err(|e| Error::msg(format!("tokenizer.json pre_tokenizer: {e}")))?;
        }
        for (word, _, tokens) in split.get_splits(OffsetReferential::Normalized, OffsetType::Char) {
            if tokens.is_none() {
                words.push(word.to_string());
            }
        }
    }
    Ok(words)
}

/// Every substring of `words` of at most `longest` characters.
fn substrings(words: &[String], longest: usize) -> HashSet<&str> {
    let mut set = HashSet::new();
    for w in words {
        let bounds: Vec<usize> = w.char_indices().map(|(i, _)| i).chain([w.len()]).collect();
        for (a, &start) in bounds.iter().enumerate() {
            for &end in bounds.iter().skip(a + 1).take(longest) {
                set.insert(&w[start..end]);
            }
        }
    }
    set
}

/// Renumbers the special-token ids of a TemplateProcessing, RobertaProcessing or
/// BertProcessing post-processor (or of none); false for any other kind, or an id
/// that was not kept.
fn renumber_post_processor(p: &mut Value, renumber: &dyn Fn(&Value) -> Option<u32>) -> bool {
    match p["type"].as_str() {
        None if p.is_null() => true,
        Some("TemplateProcessing") => {
            let Some(specials) = p["special_tokens"].as_object_mut() else { return false };
            specials.values_mut().all(|s| {
                s["ids"]
                    .as_array_mut()
                    .is_some_and(|ids| ids.iter_mut().all(|id| renumber(id).map(|n| *id = n.into()).is_some()))
            })
        }
        Some("RobertaProcessing" | "BertProcessing") => {
            ["sep", "cls"].iter().all(|k| renumber(&p[*k][1]).map(|n| p[*k][1] = n.into()).is_some())
        }
        _ => false,
    }
}
