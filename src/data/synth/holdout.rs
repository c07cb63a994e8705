//! Questions held out of training data: the golden evaluation set's user turns.
//! A generated conversation that contains one (after Unicode normalisation and
//! whitespace folding, as `tests/eval_golden.rs` compares) is rejected, so the
//! golden set stays an honest test of what the model learned.

use std::path::Path;

use serde_json::Value;

use crate::conversation::text::normalize;
use crate::{Error, Result};

/// Shorter questions ("chào shop") are too generic to hold out.
const MIN_CHARS: usize = 20;

/// The held-out questions, normalised.
#[derive(Debug, Clone, Default)]
pub struct Holdout {
    questions: Vec<String>,
}

fn squash(text: &str) -> String {
    normalize(text).split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Holdout {
    /// The user turns of a golden JSONL file (`{"messages": [...]}` per line).
    pub fn from_golden(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut questions = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Value =
                serde_json::from_str(line).map_err(|e| Error::bad_input(path, Some(i + 1), e.to_string()))?;
            let messages = row["messages"].as_array().into_iter().flatten();
            for m in messages.filter(|m| m["role"] == "user") {
                let q = squash(m["content"].as_str().unwrap_or_default());
                if q.chars().count() >= MIN_CHARS {
                    questions.push(q);
                }
            }
        }
        Ok(Holdout { questions })
    }

    /// Number of held-out questions.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }

    /// Whether any user turn of `messages` contains a held-out question.
    pub fn hits(&self, messages: &[Value]) -> bool {
        !self.questions.is_empty()
            && messages.iter().filter(|m| m["role"] == "user").any(|m| {
                let text = squash(m["content"].as_str().unwrap_or_default());
                self.questions.iter().any(|q| text.contains(q.as_str()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_after_normalisation_and_ignores_short_questions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("golden.jsonl");
        let rows = [
            json!({"messages": [{"role": "user", "content": "đơn bao nhiêu thì được  freeship ạ?"}]}),
            json!({"messages": [{"role": "user", "content": "chào shop"}]}),
        ];
        std::fs::write(&path, rows.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
        let h = Holdout::from_golden(&path).unwrap();
        assert_eq!(h.len(), 1);
        let user = |t: &str| vec![json!({"role": "system", "content": "x"}), json!({"role": "user", "content": t})];
        assert!(h.hits(&user("Dạ cho hỏi: đơn bao nhiêu thì được freeship ạ?")));
        assert!(!h.hits(&user("chào shop")));
        assert!(!h.hits(&user("đơn bao nhiêu thì được giảm giá ạ?")));
    }
}
