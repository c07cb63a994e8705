//! The golden set (`evals/golden.jsonl`): one JSON object per line.
//!
//! ```text
//! {"id": "order-003", "intent": "order_status", "tags": ["no_diacritics"],
//!  "messages": [{"role": "user", "content": "don DH250004 cua em toi dau roi a"}],
//!  "reference": "Dạ, đơn DH250004 của anh/chị đang giao ...",
//!  "must_include": ["đang giao"], "must_not_include": ["đã giao"],
//!  "expected_tool": {"name": "get_order_status", "arguments": {"order_id": "DH250004"}},
//!  "must_refuse": false,
//!  "contexts": ["Đơn DH250004: trạng thái Đang giao, dự kiến giao 2025-06-23, J&T Express"]}
//! ```
//!
//! `messages` is the conversation so far in OpenAI's shape (assistant `tool_calls`
//! and `tool` results included); the model under test writes the next assistant turn.
//! When `expected_tool` is set, that turn must be the tool call; otherwise it is a
//! text answer scored against `reference`, `must_include`, `must_not_include` and the
//! `contexts` that ground it.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conversation::{Evidence, Source, ToolCall};
use crate::{Error, Result};

/// One golden case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenCase {
    /// Unique id.
    pub id: String,
    /// The customer's intent (order_status, stock, size, promotion, policy, product,
    /// out_of_scope, injection, ...); reports group scores by it.
    pub intent: String,
    /// Free labels: `multi_turn`, `no_diacritics`, `typo`, `teencode`, ...
    #[serde(default)]
    pub tags: Vec<String>,
    /// The conversation so far (OpenAI chat messages).
    pub messages: Vec<Value>,
    /// A good answer (empty when the expected turn is a tool call).
    #[serde(default)]
    pub reference: String,
    /// Facts the answer must state.
    #[serde(default)]
    pub must_include: Vec<String>,
    /// Facts the answer must not state (wrong statuses, invented prices, leaked data).
    #[serde(default)]
    pub must_not_include: Vec<String>,
    /// The tool call the next turn must be, if any.
    #[serde(default)]
    pub expected_tool: Option<ToolCall>,
    /// Whether the assistant must decline.
    #[serde(default)]
    pub must_refuse: bool,
    /// The knowledge that grounds the answer (policy text, tool results, catalog rows).
    #[serde(default)]
    pub contexts: Vec<String>,
}

impl GoldenCase {
    /// The last user message's text (the question the judge sees).
    pub fn question(&self) -> String {
        crate::conversation::message::last_user_text(&self.messages)
    }

    /// Everything an answer may take facts from: the contexts (as retrieved
    /// passages) and the conversation's turns, each tagged with its source.
    pub fn evidence(&self) -> Vec<Evidence> {
        let mut out: Vec<Evidence> = self.contexts.iter().map(|c| Evidence::new(Source::Retrieved, c)).collect();
        out.extend(Evidence::from_messages(&self.messages));
        out
    }

    /// The judge's contexts: the case's contexts plus the conversation's tool results.
    pub fn judge_contexts(&self) -> Vec<String> {
        let mut out = self.contexts.clone();
        out.extend(
            self.messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .filter_map(|m| m["content"].as_str())
                .map(str::to_owned),
        );
        out
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.id.trim().is_empty() || self.intent.trim().is_empty() {
            return Err("id and intent must be non-empty".into());
        }
        let Some(last) = self.messages.last() else { return Err("messages is empty".into()) };
        if !matches!(last["role"].as_str(), Some("user" | "tool")) {
            return Err("the last message must be from the user or a tool".into());
        }
        for m in &self.messages {
            match m["role"].as_str() {
                Some("system" | "user" | "assistant" | "tool") => {}
                other => return Err(format!("unknown role {other:?}")),
            }
        }
        if self.expected_tool.is_none() && self.reference.trim().is_empty() {
            return Err("a case without expected_tool needs a reference answer".into());
        }
        Ok(())
    }
}

/// Reads and validates a golden set: every line parses, ids are unique, every case
/// is well formed. Errors name the file and line.
pub fn load_golden(path: &Path) -> Result<Vec<GoldenCase>> {
    let mut seen = HashSet::new();
    let mut cases = Vec::new();
    for (line, case) in crate::jsonl::read_jsonl::<GoldenCase>(path, |e| e.to_string())? {
        case.validate().map_err(|m| Error::bad_input(path, Some(line), format!("case {:?}: {m}", case.id)))?;
        if !seen.insert(case.id.clone()) {
            return Err(Error::bad_input(path, Some(line), format!("duplicate id {:?}", case.id)));
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(Error::bad_input(path, None, "no cases"));
    }
    Ok(cases)
}

/// A sample of `n` cases that covers every intent and spreads over each intent's
/// cases: intents (in order of first appearance) get their share in turn, one case
/// at a time, until `n` are given out (an intent that runs out drops from the turn);
/// an intent given `k` of its `m` cases contributes the middle cases of `k` equal
/// slices of its cases in file order, so a set that lists an intent's first-turn
/// questions before its follow-ups with tool results samples both. The sample keeps
/// the file's order. All cases when `n` is at least their number.
pub fn sample_by_intent(cases: Vec<GoldenCase>, n: usize) -> Vec<GoldenCase> {
    if n >= cases.len() {
        return cases;
    }
    let mut intents: Vec<&str> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match intents.iter().position(|x| *x == case.intent) {
            Some(k) => members[k].push(i),
            None => {
                intents.push(&case.intent);
                members.push(vec![i]);
            }
        }
    }
    let mut shares = vec![0usize; members.len()];
    let mut taken = 0;
    while taken < n {
        for (share, m) in shares.iter_mut().zip(&members) {
            if taken < n && *share < m.len() {
                *share += 1;
                taken += 1;
            }
        }
    }
    let mut chosen = vec![false; cases.len()];
    for (&k, m) in shares.iter().zip(&members) {
        for j in 0..k {
            chosen[m[(2 * j + 1) * m.len() / (2 * k)]] = true;
        }
    }
    cases.into_iter().zip(chosen).filter_map(|(case, keep)| keep.then_some(case)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, intent: &str) -> GoldenCase {
        serde_json::from_value(serde_json::json!({"id": id, "intent": intent,
            "messages": [{"role": "user", "content": "x"}]}))
        .unwrap()
    }

    #[test]
    fn a_sample_takes_intents_in_turn_spreads_within_each_and_keeps_file_order() {
        let cases =
            vec![case("a1", "a"), case("a2", "a"), case("a3", "a"), case("b1", "b"), case("c1", "c"), case("c2", "c")];
        let ids = |n| sample_by_intent(cases.clone(), n).into_iter().map(|c| c.id).collect::<Vec<_>>();
        // One each: the middle case of a's three, b's only one, the second of c's two.
        assert_eq!(ids(3), ["a2", "b1", "c2"]);
        assert_eq!(ids(5), ["a1", "a3", "b1", "c1", "c2"], "b has run out; a and c go on");
        // An intent listing 4 first-turn questions then 4 follow-ups: 2 taken, one of each.
        let mixed: Vec<GoldenCase> =
            (0..8).map(|i| case(&format!("{}{i}", if i < 4 { "q" } else { "f" }), "x")).collect();
        let two: Vec<String> = sample_by_intent(mixed, 2).into_iter().map(|c| c.id).collect();
        assert_eq!(two, ["q2", "f6"]);
        assert_eq!(ids(6).len(), 6);
        assert_eq!(ids(60).len(), 6);
    }
}
