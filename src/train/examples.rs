//! Training examples: token ids with the mask of tokens to learn (assistant turns),
//! from `stylevn template` output or from chat JSONL/CSV templated on the fly, and
//! their deterministic order (a seeded shuffle per epoch).

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokenizers::Tokenizer;

use crate::tokenize::{read_chats, read_rows, template_chats, ChatTemplate, TemplateOptions};
use crate::{Error, Result};

/// One training sequence.
#[derive(Debug, Clone)]
pub struct Example {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Whether each token is a target (inside an assistant turn).
    pub label_mask: Vec<bool>,
    /// `file:line` of the source row.
    pub source: String,
}

/// Loads examples from `path`: rows written by `stylevn template` (they carry
/// `input_ids`) or chat JSONL / instruction CSV, rendered with `template`.
/// Rows longer than `max_len` fail the load unless `truncate`; rows without any
/// assistant token always fail; every bad row is named by file:line. Chat rows need
/// the model's chat template and tokenizer (`chat`).
pub fn load_examples(
    path: &Path,
    chat: Option<(&ChatTemplate, &Tokenizer)>,
    max_len: usize,
    truncate: bool,
) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let first = text.lines().find(|l| !l.trim().is_empty());
    let Some(first) = first else { return Err(Error::bad_input(path, None, "the file has no rows")) };
    let templated = serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| v.get("input_ids").is_some());
    let rows = if templated {
        read_rows(path)?
    } else {
        let (template, tokenizer) = chat.ok_or_else(|| {
            Error::bad_input(path, None, "chat rows need a model with tokenizer.json and a chat template")
        })?;
        let chats = read_chats(path)?;
        let opts = TemplateOptions { max_len: usize::MAX, val_frac: 0.0, seed: 0 };
        let set = template_chats(chats, template, tokenizer, &opts, &|| {})?;
        if let Some(bad) = set.bad.first() {
            return Err(Error::msg(format!(
                "{} bad row(s) in {}; first: {bad} (fix them or filter with `stylevn template`)",
                set.bad.len(),
                path.display()
            )));
        }
        set.train
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut mask = row.label_mask();
        let mut ids = row.input_ids.clone();
        if ids.len() > max_len {
            if !truncate {
                return Err(Error::msg(format!(
                    "{}: {} tokens, over --max-len {max_len} (pass --truncate to cut rows)",
                    row.source,
                    ids.len()
                )));
            }
            ids.truncate(max_len);
            mask.truncate(max_len);
        }
        // Token 0 is never predicted: a target needs a token before it.
        if !mask.iter().skip(1).any(|m| *m) {
            return Err(Error::msg(format!("{}: no assistant tokens to learn from", row.source)));
        }
        out.push(Example { input_ids: ids, label_mask: mask, source: row.source });
    }
    Ok(out)
}

/// The example indices of micro-batch `k` (global count since the start of
/// training): epochs follow each other, each a seeded permutation.
pub fn micro_batch(n_examples: usize, micro_batch: usize, seed: u64, k: u64) -> Vec<usize> {
    let first = k as usize * micro_batch;
    (first..first + micro_batch)
        .map(|p| {
            let epoch = (p / n_examples) as u64;
            epoch_order(n_examples, seed, epoch)[p % n_examples]
        })
        .collect()
}

/// A seeded permutation of `0..n`, one per `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_example_once_in_a_seeded_order() {
        let seen: Vec<usize> = (0..5).flat_map(|k| micro_batch(10, 2, 7, k)).collect();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(micro_batch(10, 2, 7, 3), micro_batch(10, 2, 7, 3));
        assert_ne!((0..5).flat_map(|k| micro_batch(10, 2, 8, k)).collect::<Vec<_>>(), seen);
        let second: Vec<usize> = (5..10).flat_map(|k| micro_batch(10, 2, 7, k)).collect();
        assert_ne!(second, seen, "epochs are reshuffled");
    }
}
