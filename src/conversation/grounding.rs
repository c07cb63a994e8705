//! The one grounding check: which of an answer's facts ([`super::facts`]) its
//! evidence backs, under an explicit [`EvidencePolicy`] saying which sources count.
//!
//! Each caller names its policy:
//!
//! | policy | tool results | retrieved passages | system prompt | customer's words | letter-only codes |
//! |---|---|---|---|---|---|
//! | [`EvidencePolicy::EVAL_METRIC`] (eval's grounding score) | yes | yes | no | yes | no |
//! | [`EvidencePolicy::SERVING_VERIFIER`] (the guardrail) | yes | yes | yes | no | yes |
//! | [`EvidencePolicy::SYNTH_FILTER`] (synth's filter, `crate::data::grounding`) | yes | yes | no | yes | yes |
//!
//! Synth's filter applies the check turn by turn: each assistant turn against the
//! turns before it.
//!
//! The verifier does not take the customer's words: an answer must not confirm a
//! status or price just because the customer asserted it. Letter-only codes
//! (`HELLOSUMMER`) are checked, when the policy asks, as uppercase words of the
//! answer that must appear as whole words in the evidence.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::facts::{extract_facts, supported, FactKey};

/// Uppercase words that may be codes (`HELLOSUMMER`, `FREESHIP50`).
static CAPS_CODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9]{4,}\b").expect("code regex"));

/// Where a piece of evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A tool's result (JSON text).
    ToolResult,
    /// A passage retrieved for the turn (catalog, policies).
    Retrieved,
    /// The system prompt and the store's configured facts (hotline).
    SystemPrompt,
    /// What the customer wrote.
    Customer,
}

impl Source {
    /// The source of an OpenAI chat turn: `system` the system prompt, `user` the
    /// customer's words (with any passages retrieved into them), `tool` a tool result;
    /// `None` for assistant turns, which are not evidence.
    pub fn of_role(role: &str) -> Option<Source> {
        match role {
            "system" => Some(Source::SystemPrompt),
            "user" => Some(Source::Customer),
            "tool" => Some(Source::ToolResult),
            _ => None,
        }
    }
}

/// One text an answer may take facts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Where it comes from.
    pub source: Source,
    /// The text.
    pub text: String,
}

impl Evidence {
    /// `text` from `source`.
    pub fn new(source: Source, text: impl Into<String>) -> Self {
        Evidence { source, text: text.into() }
    }

    /// The evidence in OpenAI chat messages, each turn tagged by [`Source::of_role`].
    pub fn from_messages(messages: &[Value]) -> Vec<Evidence> {
        messages
            .iter()
            .filter_map(|m| {
                let source = Source::of_role(m.get("role")?.as_str()?)?;
                Some(Evidence::new(source, m.get("content")?.as_str()?))
            })
            .collect()
    }
}

/// Which sources count as evidence, and which facts are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidencePolicy {
    /// Tool results count.
    pub tool_results: bool,
    /// Retrieved passages count.
    pub retrieved: bool,
    /// The system prompt counts.
    pub system_prompt: bool,
    /// The customer's words count.
    pub customer: bool,
    /// Uppercase letter-only words (`HELLOSUMMER`) are checked as codes too.
    pub letter_codes: bool,
}

impl EvidencePolicy {
    /// The eval's deterministic grounding score: facts from the case's contexts,
    /// its tool results and the customer's turns.
    pub const EVAL_METRIC: EvidencePolicy = EvidencePolicy {
        tool_results: true,
        retrieved: true,
        system_prompt: false,
        customer: true,
        letter_codes: false,
    };

    /// The serving guardrail: facts from this turn's tool results, retrieved context,
    /// policies and system prompt; never from the customer.
    pub const SERVING_VERIFIER: EvidencePolicy = EvidencePolicy {
        tool_results: true,
        retrieved: true,
        system_prompt: true,
        customer: false,
        letter_codes: true,
    };

    /// Synth's filter of generated conversations: facts from tool results and the
    /// customer's turns (retrieved passages arrive inside them), never the system
    /// prompt's own words.
    pub const SYNTH_FILTER: EvidencePolicy = EvidencePolicy {
        tool_results: true,
        retrieved: true,
        system_prompt: false,
        customer: true,
        letter_codes: true,
    };

    /// Whether evidence from `source` counts.
    pub fn admits(&self, source: Source) -> bool {
        match source {
            Source::ToolResult => self.tool_results,
            Source::Retrieved => self.retrieved,
            Source::SystemPrompt => self.system_prompt,
            Source::Customer => self.customer,
        }
    }
}

/// How well an answer's facts are grounded in its evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Grounding {
    /// Facts found in the answer.
    pub facts: usize,
    /// The answer's facts that no admitted evidence backs, as written.
    pub ungrounded: Vec<String>,
    /// Share of facts backed by evidence; `None` when the answer states no fact.
    pub score: Option<f64>,
}

/// The letter-only codes of `text` (`HELLOSUMMER`): its uppercase words of five or more
/// letters without a digit, which [`check`] counts as facts when the policy asks.
/// Codes with digits are the fact extractor's ([`super::facts`]).
pub fn letter_codes(text: &str) -> impl Iterator<Item = &str> {
    CAPS_CODE.find_iter(text).map(|m| m.as_str()).filter(|w| !w.bytes().any(|b| b.is_ascii_digit()))
}

/// Checks `answer` against the `evidence` that `policy` admits.
pub fn check(answer: &str, evidence: &[Evidence], policy: &EvidencePolicy) -> Grounding {
    let admitted: Vec<&str> = evidence.iter().filter(|e| policy.admits(e.source)).map(|e| e.text.as_str()).collect();
    let keys: HashSet<FactKey> = admitted.iter().flat_map(|t| extract_facts(t)).map(|f| f.key).collect();
    let facts = extract_facts(answer);
    let mut count = facts.len();
    let mut ungrounded: Vec<String> = facts.iter().filter(|f| !supported(f, &keys)).map(|f| f.text.clone()).collect();
    if policy.letter_codes {
        let haystack = admitted.iter().map(|e| e.to_uppercase()).collect::<Vec<_>>().join("\n");
        for code in letter_codes(answer) {
            count += 1;
            let found = haystack.match_indices(code).any(|(i, w)| {
                let before = haystack[..i].chars().next_back();
                let after = haystack[i + w.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
            });
            if !found {
                ungrounded.push(code.to_string());
            }
        }
    }
    let score = (count > 0).then(|| (count - ungrounded.len()) as f64 / count as f64);
    Grounding { facts: count, ungrounded, score }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(text: &str) -> Vec<Evidence> {
        vec![Evidence::new(Source::ToolResult, text)]
    }

    #[test]
    fn grounding_counts_unsupported_facts() {
        let ctx = tool("order_id DH250004 status Đang giao eta 2025-06-23 total_vnd 2916000");
        let eval = &EvidencePolicy::EVAL_METRIC;
        let g = check("Dạ đơn DH250004 đang giao, dự kiến 23/6, tổng 2.916.000đ ạ", &ctx, eval);
        assert_eq!((g.facts, g.score), (4, Some(1.0)));
        let g = check("Dạ đơn DH250004 đã giao ngày 22/6 ạ", &ctx, eval);
        assert_eq!(g.facts, 3);
        assert_eq!(g.ungrounded, ["22/6", "đã giao"]);
        assert!((g.score.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(check("Dạ em chào chị ạ", &ctx, eval).score, None);
    }

    /// The customer's words support the eval's answer but not the served one; the
    /// system prompt the other way round.
    #[test]
    fn each_policy_admits_its_sources() {
        let messages = [
            json!({"role": "system", "content": "Hotline 19001234"}),
            json!({"role": "user", "content": "đơn DH250004 của em đã giao chưa"}),
            json!({"role": "assistant", "content": "Dạ em kiểm tra ạ"}),
        ];
        let evidence = Evidence::from_messages(&messages);
        assert_eq!(evidence.len(), 2);
        let answer = "Dạ đơn DH250004, hotline 19001234 ạ";
        assert_eq!(check(answer, &evidence, &EvidencePolicy::EVAL_METRIC).ungrounded, ["19001234"]);
        assert_eq!(check(answer, &evidence, &EvidencePolicy::SERVING_VERIFIER).ungrounded, ["dh250004"]);
    }

    #[test]
    fn letter_codes_are_whole_words_of_the_evidence() {
        let evidence = tool(r#"{"promotions": [{"code": "HELLOSUMMER", "discount_pct": 10}]}"#);
        let serve = &EvidencePolicy::SERVING_VERIFIER;
        assert!(check("Mã HELLOSUMMER giảm 10% ạ", &evidence, serve).ungrounded.is_empty());
        assert_eq!(check("Mã SUMMER giảm 10% ạ", &evidence, serve).ungrounded, ["SUMMER"]);
        assert_eq!(check("Mã SUMMER giảm 10% ạ", &evidence, &EvidencePolicy::EVAL_METRIC).facts, 1);
    }
}
