//! Faithfulness the Ragas way (`ragas/metrics/_faithfulness.py`), with a judge model
//! at any OpenAI-compatible URL:
//!
//! 1. the judge splits the answer into standalone statements, as JSON
//!    `{"statements": ["...", ...]}`;
//! 2. the judge gives each statement a verdict against the joined contexts, as JSON
//!    `{"verdicts": [{"statement": "...", "reason": "...", "verdict": 1 | 0}, ...]}`,
//!    one per statement, in order;
//! 3. score = supported statements / statements; undefined with no statements.
//!
//! Every judge call runs in JSON mode. A transport error or output that does not parse
//! into that shape is retried (with backoff) up to `max_attempts` times; after that the
//! answer is reported as not judged, with the reason, and never scored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::ChatClient;
use crate::{Error, Result};

const STATEMENTS_SYSTEM: &str = "You split answers into facts. Given a customer's question and an assistant's \
answer (often in Vietnamese), break every sentence of the answer into short standalone statements, each \
understandable without the others (no pronouns; repeat the subject). Keep the answer's language. Skip greetings, \
thanks and politeness that state no fact. Reply with JSON only: {\"statements\": [\"...\", ...]}.";

const VERDICTS_SYSTEM: &str = "You judge faithfulness. For each statement, decide whether it can be directly \
inferred from the context: verdict 1 if it can, 0 if it cannot (including when the context says nothing about \
it). Judge every statement, in the order given. Reply with JSON only: {\"verdicts\": [{\"statement\": \"...\", \
\"reason\": \"...\", \"verdict\": 1}, ...]}.";

/// A statement and the judge's verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The statement, as the judge extracted it.
    pub statement: String,
    /// Whether the contexts support it.
    pub supported: bool,
    /// The judge's reason.
    #[serde(default)]
    pub reason: String,
}

/// The judge's outcome for one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Faithfulness {
    /// Judged: every statement with its verdict.
    Scored {
        /// supported / statements.
        score: f64,
        /// The verdicts.
        verdicts: Vec<Verdict>,
    },
    /// The answer states nothing checkable (score undefined, as in Ragas).
    NoStatements,
    /// The judge failed after all retries; the answer is not scored.
    Failed {
        /// Why the last attempt failed.
        reason: String,
    },
}

impl Faithfulness {
    /// The score, when judged.
    pub fn score(&self) -> Option<f64> {
        match self {
            Faithfulness::Scored { score, .. } => Some(*score),
            _ => None,
        }
    }

    /// Whether some statement was judged unsupported.
    pub fn has_unsupported(&self) -> bool {
        matches!(self, Faithfulness::Scored { verdicts, .. } if verdicts.iter().any(|v| !v.supported))
    }
}

/// Judge call counters, shared across concurrent cases.
#[derive(Debug, Default)]
pub struct JudgeCounters {
    calls: AtomicUsize,
    retries: AtomicUsize,
    transport_errors: AtomicUsize,
    malformed: AtomicUsize,
    failed_answers: AtomicUsize,
}

/// A snapshot of [`JudgeCounters`], as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JudgeStats {
    /// Judge requests sent (attempts included).
    pub calls: usize,
    /// Attempts that were retries.
    pub retries: usize,
    /// Attempts that failed in transport (HTTP errors, timeouts).
    pub transport_errors: usize,
    /// Attempts whose output did not parse into the expected JSON.
    pub malformed: usize,
    /// Answers left unjudged after all retries.
    pub failed_answers: usize,
}

/// A judge model behind an OpenAI-compatible endpoint.
pub struct Judge {
    client: ChatClient,
    /// Attempts per judge call (1 = no retry).
    pub max_attempts: usize,
    /// Delay before the first retry; doubles on each further one.
    pub backoff: Duration,
    counters: JudgeCounters,
}

impl Judge {
    /// A judge talking through `client`.
    pub fn new(client: ChatClient, max_attempts: usize, backoff: Duration) -> Self {
        Judge { client, max_attempts: max_attempts.max(1), backoff, counters: JudgeCounters::default() }
    }

    /// The judge's model id.
    pub fn model(&self) -> &str {
        &self.client.endpoint().model
    }

    /// Counters so far.
    pub fn stats(&self) -> JudgeStats {
        let c = &self.counters;
        JudgeStats {
            calls: c.calls.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            transport_errors: c.transport_errors.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            failed_answers: c.failed_answers.load(Ordering::Relaxed),
        }
    }

    /// Judges `answer` to `question` against `contexts`.
    pub async fn faithfulness(&self, question: &str, answer: &str, contexts: &[String]) -> Faithfulness {
        let user = format!("Question: {question}\nAnswer: {answer}");
        let statements = match self.call(STATEMENTS_SYSTEM, &user, parse_statements).await {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        if statements.is_empty() {
            return Faithfulness::NoStatements;
        }
        let numbered: Vec<String> = statements.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect();
        let user = format!("Context:\n{}\n\nStatements:\n{}", contexts.join("\n"), numbered.join("\n"));
        let n = statements.len();
        match self.call(VERDICTS_SYSTEM, &user, |text| parse_verdicts(text, n)).await {
            Ok(flags) => {
                let verdicts: Vec<Verdict> = statements
                    .into_iter()
                    .zip(flags)
                    .map(|(statement, (supported, reason))| Verdict { statement, supported, reason })
                    .collect();
                let supported = verdicts.iter().filter(|v| v.supported).count();
                Faithfulness::Scored { score: supported as f64 / verdicts.len() as f64, verdicts }
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, e: Error) -> Faithfulness {
        self.counters.failed_answers.fetch_add(1, Ordering::Relaxed);
        Faithfulness::Failed { reason: e.to_string() }
    }

    /// One judge call with retries: transport errors and unparseable output both retry.
    async fn call<T>(&self, system: &str, user: &str, parse: impl Fn(&str) -> Result<T>) -> Result<T> {
        let mut last = Error::msg("judge was not called");
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt as u32 - 1)).await;
            }
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            match self.client.chat_json(system, user).await {
                Err(e) => {
                    self.counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    last = e;
                }
                Ok(text) => match parse(&text) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        last = e;
                    }
                },
            }
        }
        Err(Error::msg(format!("judge failed after {} attempts: {last}", self.max_attempts)))
    }
}

/// The JSON object in a judge reply, tolerating a Markdown code fence around it.
fn json_object(text: &str) -> Result<Value> {
    let (start, end) = (text.find('{'), text.rfind('}'));
    let slice = match (start, end) {
        (Some(s), Some(e)) if e > s => &text[s..=e],
        _ => return Err(Error::msg(format!("malformed judge output (no JSON object): {}", clip(text)))),
    };
    serde_json::from_str(slice).map_err(|e| Error::msg(format!("malformed judge output ({e}): {}", clip(text))))
}

/// Parses `{"statements": [string, ...]}`.
pub fn parse_statements(text: &str) -> Result<Vec<String>> {
    let v = json_object(text)?;
    let list = v["statements"]
        .as_array()
        .ok_or_else(|| Error::msg(format!("malformed judge output (no \"statements\" list): {}", clip(text))))?;
    list.iter()
        .map(|s| s.as_str().map(|s| s.trim().to_string()))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().filter(|s| !s.is_empty()).collect())
        .ok_or_else(|| Error::msg(format!("malformed judge output (a statement is not a string): {}", clip(text))))
}

/// Parses `{"verdicts": [{"verdict": 0|1, "reason": ...}, ...]}` holding exactly `n`
/// verdicts; a verdict may be a number, a boolean or a numeric string.
pub fn parse_verdicts(text: &str, n: usize) -> Result<Vec<(bool, String)>> {
    let v = json_object(text)?;
    let list = v["verdicts"]
        .as_array()
        .ok_or_else(|| Error::msg(format!("malformed judge output (no \"verdicts\" list): {}", clip(text))))?;
    if list.len() != n {
        return Err(Error::msg(format!("malformed judge output ({} verdicts for {n} statements)", list.len())));
    }
    list.iter()
        .map(|item| {
            let verdict = match &item["verdict"] {
                Value::Number(x) if x.as_f64() == Some(1.0) => Some(true),
                Value::Number(x) if x.as_f64() == Some(0.0) => Some(false),
                Value::Bool(b) => Some(*b),
                Value::String(s) if s.trim() == "1" => Some(true),
                Value::String(s) if s.trim() == "0" => Some(false),
                _ => None,
            };
            verdict
                .map(|b| (b, item["reason"].as_str().unwrap_or_default().to_string()))
                .ok_or_else(|| Error::msg(format!("malformed judge output (verdict not 0/1): {item}")))
        })
        .collect()
}

fn clip(text: &str) -> String {
    let t: String = text.chars().take(120).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fenced_json_and_rejects_bad_shapes() {
        assert_eq!(parse_statements("```json\n{\"statements\": [\"A\", \" \"]}\n```").unwrap(), ["A"]);
        assert!(parse_statements("{\"statement\": []}").is_err());
        assert!(parse_statements("I think yes").is_err());
        let v = parse_verdicts(r#"{"verdicts": [{"verdict": 1}, {"verdict": "0", "reason": "r"}]}"#, 2).unwrap();
        assert_eq!(v, [(true, String::new()), (false, "r".into())]);
        assert!(parse_verdicts(r#"{"verdicts": [{"verdict": 1}]}"#, 2).is_err());
        assert!(parse_verdicts(r#"{"verdicts": [{"verdict": "maybe"}]}"#, 1).is_err());
    }
}
