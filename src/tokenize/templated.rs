//! From conversations to training rows: render with the model's chat template,
//! locate the assistant spans, tokenize, drop over-long rows and exact
//! duplicates, split train/val.
//!
//! Each row is one JSONL line (`input_ids` last, as it is the long one):
//!
//! ```text
//! {"text": "<|im_start|>system\n...<|im_end|>\n<|im_start|>assistant\nDạ còn ạ<|im_end|>\n",
//!  "char_spans": [[219, 273]], "token_spans": [[56, 81]], "n_tokens": 82,
//!  "source": "data/chats.jsonl:12", "input_ids": [151644, 8948, ...]}
//! ```
//!
//! `char_spans` are `[start, end)` Unicode-scalar offsets into `text` (Python
//! string indices), `token_spans` `[start, end)` indices into `input_ids`;
//! [`TemplatedRow::labels`] turns them into training labels.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::assistant_spans::{char_spans, label_mask, labels, render_with_assistant_spans, token_spans};
use super::chat_dataset::{BadRow, BadRowKind, ChatRecord, ChatRows};
use super::chat_template::ChatTemplate;
use super::token_stats::TokenStats;
use super::tool_prompt::with_tool_convention;
use crate::atomic::write_atomic_with;
use crate::seeded::{fnv1a64, mix64};
use crate::Result;

/// How to build the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateOptions {
    /// Rows with more tokens than this are rejected (not truncated).
    pub max_len: usize,
    /// Fraction of kept rows for validation, in `[0, 1)`.
    pub val_frac: f64,
    /// Seed of the train/val split.
    pub seed: u64,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions { max_len: 2048, val_frac: 0.0, seed: 42 }
    }
}

/// One training example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatedRow {
    /// The conversation rendered by the chat template.
    pub text: String,
    /// Assistant turns as `[start, end)` char offsets into `text`.
    pub char_spans: Vec<[usize; 2]>,
    /// Assistant turns as `[start, end)` indices into `input_ids`.
    pub token_spans: Vec<[usize; 2]>,
    /// `input_ids.len()`.
    pub n_tokens: usize,
    /// Where the conversation came from, `file:line`.
    pub source: String,
    /// Token ids of `text` (no special tokens added beyond what the template wrote).
    pub input_ids: Vec<u32>,
}

impl TemplatedRow {
    /// Per-token flags: `true` inside assistant turns (the tokens to train on).
    pub fn label_mask(&self) -> Vec<bool> {
        label_mask(self.input_ids.len(), &self.token_spans)
    }

    /// Causal-LM labels: the id inside assistant turns, else -100 (unshifted).
    pub fn labels(&self) -> Vec<i64> {
        labels(&self.input_ids, &self.token_spans)
    }
}

/// What a run did, for the summary line (and `--json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TemplateSummary {
    /// Rows read.
    pub rows_in: usize,
    /// Rows written (train + val).
    pub kept: usize,
    /// Exact duplicates (same rendered text) dropped.
    pub duplicates: usize,
    /// Rows rejected.
    pub bad: usize,
    /// Rejected rows per kind of problem.
    pub bad_by_kind: BTreeMap<BadRowKind, usize>,
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub val: usize,
    /// Token lengths of the kept rows.
    pub tokens: TokenStats,
}

/// The built dataset.
#[derive(Debug, Default)]
pub struct TemplatedDataset {
    /// Training rows, in input order.
    pub train: Vec<TemplatedRow>,
    /// Validation rows, in input order.
    pub val: Vec<TemplatedRow>,
    /// Every rejected row, read errors first.
    pub bad: Vec<BadRow>,
    /// Counts and statistics.
    pub summary: TemplateSummary,
}

/// Renders, tokenizes, filters, deduplicates and splits `rows`; `on_row` is
/// called once per record processed (from several threads).
pub fn template_chats(
    rows: ChatRows,
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    opts: &TemplateOptions,
    on_row: &(dyn Fn() + Sync),
) -> Result<TemplatedDataset> {
    let plain;
    let tokenizer = if tokenizer.get_truncation().is_some() || tokenizer.get_padding().is_some() {
        let mut t = tokenizer.clone();
        t.with_truncation(None)?.with_padding(None);
        plain = t;
        &plain
    } else {
        tokenizer
    };
    let results: Vec<std::result::Result<TemplatedRow, BadRow>> = rows
        .records
        .into_par_iter()
        .map(|record| {
            let row = template_row(&record, template, tokenizer, opts.max_len);
            on_row();
            row.map_err(|(kind, reason)| BadRow { source: record.source, kind, reason })
        })
        .collect();

    let mut bad = rows.bad;
    let mut kept = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for result in results {
        match result {
            Ok(row) if seen.insert(row.text.clone()) => kept.push(row),
            Ok(_) => duplicates += 1,
            Err(b) => bad.push(b),
        }
    }
    let is_val = split_val(&kept, opts.val_frac, opts.seed);
    let lengths: Vec<usize> = kept.iter().map(|r| r.n_tokens).collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (row, v) in kept.into_iter().zip(is_val) {
        if v { &mut val } else { &mut train }.push(row);
    }
    let mut bad_by_kind = BTreeMap::new();
    for b in &bad {
        *bad_by_kind.entry(b.kind).or_insert(0) += 1;
    }
    let over = bad_by_kind.get(&BadRowKind::TooLong).copied().unwrap_or(0);
    let summary = TemplateSummary {
        rows_in: rows.rows_in,
        kept: lengths.len(),
        duplicates,
        bad: bad.len(),
        bad_by_kind,
        train: train.len(),
        val: val.len(),
        tokens: TokenStats::new(&lengths, over, opts.max_len),
    };
    Ok(TemplatedDataset { train, val, bad, summary })
}

/// One conversation to one training row, or why not.
pub fn template_row(
    record: &ChatRecord,
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> std::result::Result<TemplatedRow, (BadRowKind, String)> {
    // Tools go in the way `stylevn serve` will present them (see `tool_prompt`).
    let (messages, tools) = with_tool_convention(template, &record.messages, record.tools.as_deref().unwrap_or(&[]));
    let rendered = render_with_assistant_spans(template, &messages, (!tools.is_empty()).then_some(&tools[..]))
        .map_err(|e| (BadRowKind::Template, e.to_string()))?;
    let encoding = tokenizer
        .encode(rendered.text.as_str(), false)
        .map_err(|e| (BadRowKind::Template, format!("tokenizer: {e}")))?;
    let n_tokens = encoding.len();
    if n_tokens > max_len {
        return Err((BadRowKind::TooLong, format!("{n_tokens} tokens, over max-len {max_len}")));
    }
    Ok(TemplatedRow {
        char_spans: char_spans(&rendered.text, &rendered.spans),
        token_spans: token_spans(encoding.get_offsets(), &rendered.spans),
        n_tokens,
        source: record.source.clone(),
        input_ids: encoding.get_ids().to_vec(),
        text: rendered.text,
    })
}

/// Which rows go to validation: the `round(n * val_frac)` rows (at least one when
/// `val_frac > 0` and there are two rows or more; never all) whose text ranks
/// lowest under a seeded hash. The choice depends only on each row's text and
/// the seed, not on file order.
fn split_val(rows: &[TemplatedRow], val_frac: f64, seed: u64) -> Vec<bool> {
    let n = rows.len();
    let mut n_val = ((n as f64 * val_frac).round() as usize).min(n.saturating_sub(1));
    if val_frac > 0.0 && n >= 2 {
        n_val = n_val.max(1);
    }
    let mut order: Vec<(u64, usize)> = rows.iter().enumerate().map(|(i, r)| (seeded_hash(seed, &r.text), i)).collect();
    order.sort_unstable();
    let mut is_val = vec![false; n];
    for &(_, i) in order.iter().take(n_val) {
        is_val[i] = true;
    }
    is_val
}

/// FNV-1a over the seed and text, finished with splitmix64: stable across
/// platforms and releases (unlike `std`'s hasher).
fn seeded_hash(seed: u64, text: &str) -> u64 {
    let bytes: Vec<u8> = seed.to_le_bytes().iter().chain(text.as_bytes()).copied().collect();
    mix64(fnv1a64(&bytes))
}

/// Writes `rows` as JSONL, atomically.
pub fn write_rows(path: &Path, rows: &[TemplatedRow]) -> Result<()> {
    write_atomic_with(path, |w| {
        for row in rows {
            serde_json::to_writer(&mut *w, row)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Reads rows written by [`write_rows`] (what the trainer loads).
pub fn read_rows(path: &Path) -> Result<Vec<TemplatedRow>> {
    Ok(crate::jsonl::read_jsonl(path, |e| e.to_string())?.into_iter().map(|(_, row)| row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str) -> TemplatedRow {
        TemplatedRow {
            text: text.into(),
            char_spans: vec![],
            token_spans: vec![],
            n_tokens: 0,
            source: String::new(),
            input_ids: vec![],
        }
    }

    #[test]
    fn split_is_deterministic_exact_and_order_free() {
        let rows: Vec<TemplatedRow> = (0..100).map(|i| row(&format!("hội thoại {i}"))).collect();
        let a = split_val(&rows, 0.1, 42);
        assert_eq!(a, split_val(&rows, 0.1, 42));
        assert_eq!(a.iter().filter(|v| **v).count(), 10);
        assert_ne!(a, split_val(&rows, 0.1, 7), "another seed, another split");
        let reversed: Vec<TemplatedRow> = rows.iter().rev().cloned().collect();
        let b = split_val(&reversed, 0.1, 42);
        let val_texts = |rows: &[TemplatedRow], flags: &[bool]| {
            let mut v: Vec<String> = rows.iter().zip(flags).filter(|(_, f)| **f).map(|(r, _)| r.text.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(val_texts(&rows, &a), val_texts(&reversed, &b));
        assert_eq!(split_val(&rows[..2], 0.01, 1).iter().filter(|v| **v).count(), 1);
        assert_eq!(split_val(&rows[..1], 0.5, 1), [false]);
        assert_eq!(split_val(&rows, 0.0, 1).iter().filter(|v| **v).count(), 0);
    }

    #[test]
    fn rows_round_trip_through_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        let mut r = row("a\nb");
        r.input_ids = vec![1, 2, 3];
        r.token_spans = vec![[1, 3]];
        r.n_tokens = 3;
        write_rows(&path, &[r.clone(), r.clone()]).unwrap();
        assert_eq!(read_rows(&path).unwrap(), vec![r.clone(), r.clone()]);
        assert_eq!(r.labels(), [-100, 2, 3]);
        assert_eq!(r.label_mask(), [false, true, true]);
    }
}
