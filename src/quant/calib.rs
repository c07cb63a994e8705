//! Token sequences for AWQ calibration and perplexity, from the project's own data:
//!
//! - chat data (`.jsonl` rows with `messages`, or instruction `.csv`) rendered with
//!   the model's chat template, exactly as training sees it; rows written by
//!   `stylevn template` (they carry `input_ids`) are taken as they are;
//! - any other file is read as plain text, tokenized whole and cut into windows.
//!
//! Each conversation (or window) is one sequence of at most `max_len` tokens. A
//! conversation longer than that keeps its *last* `max_len` tokens: every rendered
//! chat starts with the same system prompt and tool list, and the turns after them
//! are what differs from one conversation to the next.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokenizers::Tokenizer;

use crate::model::ModelFiles;
use crate::tokenize::{read_chats, read_rows, template_chats, ChatTemplate, TemplateOptions};
use crate::{Error, Result};

/// Whether `path` holds chat rows (or templated rows) rather than plain text.
fn is_chat_file(path: &Path) -> Result<bool> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if ext == "csv" {
        return Ok(true);
    }
    if ext != "jsonl" {
        return Ok(false);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    Ok(serde_json::from_str::<serde_json::Value>(first)
        .is_ok_and(|v| v.get("messages").is_some() || v.get("input_ids").is_some()))
}

/// Every sequence of `path` for the model of `files`, each at most `max_len` tokens.
pub fn token_sequences(
    path: &Path,
    files: &ModelFiles,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<Vec<Vec<u32>>> {
    if max_len < 2 {
        return Err(Error::msg("sequences need at least 2 tokens"));
    }
    let mut seqs: Vec<Vec<u32>> = if is_chat_file(path)? {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let templated = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.get("input_ids").is_some()));
        let rows = if templated {
            read_rows(path)?
        } else {
            let template = ChatTemplate::from_model_files(files)?;
            let opts = TemplateOptions { max_len: usize::MAX, val_frac: 0.0, seed: 0 };
            template_chats(read_chats(path)?, &template, tokenizer, &opts, &|| {})?.train
        };
        rows.into_iter().map(|r| r.input_ids[r.input_ids.len().saturating_sub(max_len)..].to_vec()).collect()
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let ids = tokenizer.encode(text.as_str(), false)?.get_ids().to_vec();
        ids.chunks(max_len).map(<[u32]>::to_vec).collect()
    };
    seqs.retain(|s| s.len() >= 2);
    if seqs.is_empty() {
        return Err(Error::bad_input(path, None, "no sequence of at least 2 tokens"));
    }
    Ok(seqs)
}

/// Every file's sequences (see [`token_sequences`]), in file order.
pub fn token_sequences_of(
    paths: &[&Path],
    files: &ModelFiles,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(token_sequences(p, files, tokenizer, max_len)?);
    }
    Ok(out)
}

/// `n` calibration sequences drawn from `seqs` by a seeded shuffle (all when fewer).
pub fn sample_sequences(mut seqs: Vec<Vec<u32>>, n: usize, seed: u64) -> Vec<Vec<u32>> {
    seqs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    seqs.truncate(n);
    seqs
}
