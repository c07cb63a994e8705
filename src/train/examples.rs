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

/// Examples after which a micro-batch's first example looks for the partners that
/// share the longest prefix with it, in units of the micro-batch size: wide enough
/// that rows of a rare prompt (a few percent) usually find partners of their own.
const LOOKAHEAD_BATCHES: usize = 32;

/// The order examples are trained in: epochs follow each other, each a seeded
/// permutation whose micro-batches are formed greedily: the first example not yet
/// taken, then the `micro_batch - 1` not taken among the next
/// `LOOKAHEAD_BATCHES * micro_batch` that share the longest token prefix with it
/// (ties in permutation order). The trainer computes a micro-batch's shared prefix
/// once (the system prompt and tool schemas most conversations start with), so
/// rows with a prompt of their own, such as passages retrieved into it, are put
/// together instead of making every micro-batch they land in pay for its prompt.
pub struct BatchOrder<'a> {
    examples: &'a [Example],
    micro_batch: usize,
    seed: u64,
    epochs: Vec<(u64, Vec<usize>)>,
}

impl<'a> BatchOrder<'a> {
    /// The order of `examples` in micro-batches of `micro_batch`, shuffled by `seed`.
    pub fn new(examples: &'a [Example], micro_batch: usize, seed: u64) -> Self {
        BatchOrder { examples, micro_batch: micro_batch.max(1), seed, epochs: Vec::new() }
    }

    /// The example indices of micro-batch `k` (global count since the start of
    /// training).
    pub fn micro_batch(&mut self, k: u64) -> Vec<usize> {
        let n = self.examples.len();
        let first = k as usize * self.micro_batch;
        (first..first + self.micro_batch).map(|p| self.epoch((p / n) as u64)[p % n]).collect()
    }

    fn epoch(&mut self, epoch: u64) -> &[usize] {
        if let Some(i) = self.epochs.iter().position(|(e, _)| *e == epoch) {
            return &self.epochs[i].1;
        }
        let order = grouped(self.examples, &shuffled(self.examples.len(), self.seed, epoch), self.micro_batch);
        if self.epochs.len() == 2 {
            self.epochs.remove(0);
        }
        self.epochs.push((epoch, order));
        &self.epochs.last().expect("just pushed").1
    }
}

/// The examples in file order regrouped into micro-batches of rows sharing their
/// prompt, as [`BatchOrder`] does (for evaluation passes, where order is free).
pub fn grouped_order(examples: &[Example], micro_batch: usize) -> Vec<usize> {
    grouped(examples, &(0..examples.len()).collect::<Vec<_>>(), micro_batch.max(1))
}

/// `order` regrouped: each micro-batch is its first example not yet taken and the
/// partners sharing the longest prefix with it within the lookahead.
fn grouped(examples: &[Example], order: &[usize], micro_batch: usize) -> Vec<usize> {
    let lookahead = LOOKAHEAD_BATCHES * micro_batch;
    let mut taken = vec![false; order.len()];
    let mut out = Vec::with_capacity(order.len());
    let mut next = 0;
    while out.len() < order.len() {
        while taken[next] {
            next += 1;
        }
        taken[next] = true;
        let lead = &examples[order[next]].input_ids;
        out.push(order[next]);
        let mut candidates: Vec<(usize, usize)> = (next + 1..order.len())
            .filter(|&p| !taken[p])
            .take(lookahead)
            .map(|p| (common_prefix(lead, &examples[order[p]].input_ids), p))
            .collect();
        // Longest shared prefix first; equal ones in permutation order.
        candidates.sort_by_key(|&(shared, p)| (std::cmp::Reverse(shared), p));
        for &(_, p) in candidates.iter().take(micro_batch - 1) {
            taken[p] = true;
            out.push(order[p]);
        }
    }
    out
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A seeded permutation of `0..n`, one per `epoch`.
pub fn shuffled(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(ids: &[u32]) -> Example {
        Example { input_ids: ids.to_vec(), label_mask: vec![true; ids.len()], source: String::new() }
    }

    #[test]
    fn each_epoch_visits_every_example_once_in_a_seeded_order() {
        let examples: Vec<Example> = (0..10).map(|i| example(&[1, 2, i])).collect();
        let seen: Vec<usize> = (0..5).flat_map(|k| BatchOrder::new(&examples, 2, 7).micro_batch(k)).collect();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let mut order = BatchOrder::new(&examples, 2, 7);
        assert_eq!(order.micro_batch(3), BatchOrder::new(&examples, 2, 7).micro_batch(3));
        assert_ne!((0..5).flat_map(|k| BatchOrder::new(&examples, 2, 8).micro_batch(k)).collect::<Vec<_>>(), seen);
        let second: Vec<usize> = (5..10).flat_map(|k| order.micro_batch(k)).collect();
        assert_ne!(second, seen, "epochs are reshuffled");
        // Equal prefixes everywhere: the permutation itself, in order.
        assert_eq!(seen, shuffled(10, 7, 0));
    }

    /// Rows of two prompts, mixed by the shuffle, come out in micro-batches of one
    /// prompt each; every row still once per epoch, and a second epoch too.
    #[test]
    fn micro_batches_gather_rows_sharing_a_prompt() {
        let examples: Vec<Example> =
            (0..24u32).map(|i| if i % 4 == 0 { example(&[1, 9, 9, i]) } else { example(&[1, 2, 3, i]) }).collect();
        let mut order = BatchOrder::new(&examples, 3, 5);
        for epoch in 0..2u64 {
            let batches: Vec<Vec<usize>> = (0..8).map(|k| order.micro_batch(epoch * 8 + k)).collect();
            for b in &batches {
                let prompts: std::collections::HashSet<u32> = b.iter().map(|&i| examples[i].input_ids[1]).collect();
                assert_eq!(prompts.len(), 1, "mixed micro-batch {b:?}");
            }
            let mut all: Vec<usize> = batches.concat();
            all.sort();
            assert_eq!(all, (0..24).collect::<Vec<_>>());
        }
        // The first micro-batch starts with the permutation's first row.
        assert_eq!(order.micro_batch(0)[0], shuffled(24, 5, 0)[0]);
    }
}
