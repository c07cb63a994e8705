//! The assistant's settings (`configs/assistant.toml`, which is also the built-in
//! default: [`AssistantConfig::default`] parses the committed file).

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Deserializer};

use crate::rag::SearchMode;
use crate::serve::guardrails::Rejection;
use crate::{Error, Result};

/// The committed `configs/assistant.toml`.
const DEFAULT_TOML: &str = include_str!("../../../configs/assistant.toml");

/// Refusal texts by [`Rejection`].
#[derive(Debug, Clone, Deserialize)]
pub struct Refusals {
    /// Empty turn.
    pub empty: String,
    /// Turn too long.
    pub too_long: String,
    /// Prompt injection.
    pub injection: String,
    /// System prompt, secrets or other customers' data.
    pub exfiltration: String,
    /// Not about the store.
    pub out_of_scope: String,
}

/// Answer cache settings.
#[derive(Debug, Clone, Deserialize)]
pub struct CacheConfig {
    /// Cosine similarity at which a cached answer is reused for a different wording.
    pub semantic_threshold: f32,
}

/// Per-user conversation memory (Zalo).
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationConfig {
    /// Messages kept per user.
    pub max_messages: usize,
    /// Seconds an idle conversation is kept.
    pub ttl_s: u64,
}

/// Exchange log settings.
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// Salt hashed with user ids.
    pub user_salt: String,
}

/// A regular expression for the shape of one of the shop's ids (matched
/// case-insensitively), as written in the config.
#[derive(Debug, Clone)]
pub struct IdPattern(Regex);

impl IdPattern {
    /// Compiles `pattern`, case-insensitively.
    pub fn new(pattern: &str) -> std::result::Result<Self, regex::Error> {
        Regex::new(&format!("(?i){pattern}")).map(IdPattern)
    }

    /// The compiled expression.
    pub fn regex(&self) -> &Regex {
        &self.0
    }
}

impl<'de> Deserialize<'de> for IdPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IdPattern::new(&text).map_err(|e| serde::de::Error::custom(format!("bad id pattern {text:?}: {e}")))
    }
}

/// How the shop's ids are recognised beyond the store's own rows (which the
/// assistant knows from the database).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsConfig {
    /// Shapes of this shop's order ids: a token of one of them that is no order of
    /// the store is looked up anyway and answered [`IdsConfig::order_not_found`].
    #[serde(default)]
    pub order_id_patterns: Vec<IdPattern>,
    /// The answer to an order id the store does not have.
    pub order_not_found: String,
    /// Wordings of which an answer about an unknown order must use one (folded comparison).
    pub not_found_wordings: Vec<String>,
}

/// Everything the assistant needs besides its model, tools and files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantConfig {
    /// Model id served on `/v1/chat/completions`.
    pub model_id: String,
    /// Prompt version; cached answers are keyed by it.
    pub prompt_version: String,
    /// System prompt.
    pub system_prompt: String,
    /// Heading of the passages retrieved before the customer's question.
    pub context_heading: String,
    /// The store's hotline.
    pub hotline: String,
    /// Safe reply template (`{topic}`, `{hotline}`).
    pub safe_reply: String,
    /// What a Zalo customer over the per-client limits is told (the HTTP routes answer 429).
    pub rate_limited_reply: String,
    /// Model calls per turn that may request tools.
    pub max_tool_rounds: usize,
    /// Longest customer turn in characters.
    pub max_input_chars: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Longest answer in tokens.
    pub max_tokens: u32,
    /// Retrieved chunks per turn.
    pub retrieval_k: usize,
    /// Retrieval rankings.
    pub retrieval_mode: SearchMode,
    /// Fallback calls per minute.
    pub fallback_per_minute: usize,
    /// Refusal texts.
    pub refusals: Refusals,
    /// Safe-reply topics by tool name, plus `default`.
    pub topics: BTreeMap<String, String>,
    /// Answer cache.
    pub cache: CacheConfig,
    /// Conversation memory.
    pub conversation: ConversationConfig,
    /// Exchange log.
    pub log: LogConfig,
    /// The shop's id formats.
    pub ids: IdsConfig,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        toml::from_str(DEFAULT_TOML).expect("the committed configs/assistant.toml parses")
    }
}

impl AssistantConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::bad_input(path, None, e.to_string()))
    }

    /// The refusal for `why`.
    pub fn refusal(&self, why: Rejection) -> &str {
        let r = &self.refusals;
        match why {
            Rejection::Empty => &r.empty,
            Rejection::TooLong => &r.too_long,
            Rejection::Injection => &r.injection,
            Rejection::Exfiltration => &r.exfiltration,
            Rejection::OutOfScope => &r.out_of_scope,
        }
    }

    /// The safe reply for a turn whose first tool was `tool`.
    pub fn safe_reply_for(&self, tool: Option<&str>) -> String {
        let topic = tool
            .and_then(|t| self.topics.get(t))
            .or_else(|| self.topics.get("default"))
            .map(String::as_str)
            .unwrap_or("câu hỏi này");
        self.safe_reply.replace("{topic}", topic).replace("{hotline}", &self.hotline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped prompt is the one the model is fine-tuned with, and the heading the
    /// one its context rows and the pipeline's evaluations put passages under.
    #[test]
    fn shipped_prompt_is_the_training_prompt() {
        let c = AssistantConfig::default();
        assert_eq!(c.system_prompt, crate::data::SYSTEM_PROMPT);
        assert_eq!(c.context_heading, crate::data::passages::CONTEXT_HEADING);
    }

    #[test]
    fn id_patterns_compile_case_insensitively_and_a_bad_one_is_named() {
        let c = AssistantConfig::default();
        assert!(c.ids.order_id_patterns.iter().any(|p| p.regex().is_match("đơn dh 250004 ạ")));
        let bad = DEFAULT_TOML.replace(r"order_id_patterns = ['\bDH\s?\d{6}\b']", "order_id_patterns = ['(']");
        assert_ne!(bad, DEFAULT_TOML);
        let e = toml::from_str::<AssistantConfig>(&bad).unwrap_err().to_string();
        assert!(e.contains("bad id pattern \"(\""), "{e}");
    }
}
