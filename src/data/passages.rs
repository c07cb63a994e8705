//! Retrieved passages in the customer's latest turn: the one layout `serve` uses for
//! what its retrieval finds, `eval` sends with a golden case's contexts (so a bare
//! model is evaluated on the prompt it gets in production) and `synth` trains on.
//!
//! The passages go into the user turn they were retrieved for, not the system prompt:
//! the system turn (with the tool block a template appends to it) then stays the same
//! for every request, so a prefix cache (`serve`'s own, vLLM's) and the trainer's
//! shared-prompt batches reuse it, and templates that accept only one leading system
//! turn (Mistral's) render it unchanged. The grounding check counts user turns as
//! evidence, so an answer taken from a passage is grounded.

use serde_json::{json, Value};

/// The heading the passages follow (`configs/assistant.toml` `context_heading` is the
/// same text).
pub const CONTEXT_HEADING: &str = "Thông tin tham khảo của cửa hàng (chỉ dùng khi liên quan):";

/// The customer's `question` after `heading` and one `- passage` line per passage (its
/// line breaks become spaces) and a blank line; the question alone when there are no
/// passages.
pub fn with_context<S: AsRef<str>>(question: &str, heading: &str, passages: &[S]) -> String {
    if passages.is_empty() {
        return question.to_string();
    }
    let mut out = heading.to_string();
    for passage in passages {
        out.push_str("\n- ");
        out.push_str(&passage.as_ref().split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out.push_str("\n\n");
    out.push_str(question);
    out
}

/// The passages and the question of a user turn written by [`with_context`] with
/// [`CONTEXT_HEADING`]; no passages and the whole text for any other turn.
pub fn split_context(content: &str) -> (Vec<&str>, &str) {
    let Some(rest) = content.strip_prefix(CONTEXT_HEADING) else { return (Vec::new(), content) };
    let Some((list, question)) = rest.split_once("\n\n") else { return (Vec::new(), content) };
    let passages: Vec<&str> = list.split("\n- ").skip(1).collect();
    if passages.is_empty() || !list.starts_with("\n- ") {
        return (Vec::new(), content);
    }
    (passages, question)
}

/// Writes `passages` into the last user message of `messages` ([`with_context`]);
/// messages without a user turn with text are left as they are.
pub fn add_to_last_question<S: AsRef<str>>(messages: &mut [Value], heading: &str, passages: &[S]) {
    let Some(last) = messages.iter_mut().rev().find(|m| m["role"] == "user") else { return };
    let Some(question) = last["content"].as_str() else { return };
    last["content"] = json!(with_context(question, heading, passages));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_follow_the_heading_one_per_line_before_the_question() {
        let s = with_context("váy caro giá sao", CONTEXT_HEADING, &["A: 100.000đ", "B: 14 ngày"]);
        assert_eq!(s, format!("{CONTEXT_HEADING}\n- A: 100.000đ\n- B: 14 ngày\n\nváy caro giá sao"));
    }

    #[test]
    fn split_reads_back_what_was_written() {
        let s = with_context("váy caro\n\ngiá sao", CONTEXT_HEADING, &["A:\n100.000đ", "B: 14 ngày"]);
        assert_eq!(split_context(&s), (vec!["A: 100.000đ", "B: 14 ngày"], "váy caro\n\ngiá sao"));
        assert_eq!(split_context("giá sao"), (Vec::new(), "giá sao"));
        let heading_only = format!("{CONTEXT_HEADING} là gì");
        assert_eq!(split_context(&heading_only), (Vec::new(), heading_only.as_str()));
    }

    #[test]
    fn no_passages_leave_the_question_as_it_was() {
        assert_eq!(with_context("váy caro giá sao", CONTEXT_HEADING, &[] as &[&str]), "váy caro giá sao");
    }

    #[test]
    fn only_the_last_user_turn_gets_them() {
        let mut messages = vec![
            json!({"role": "system", "content": "S"}),
            json!({"role": "user", "content": "chào shop"}),
            json!({"role": "assistant", "content": "Dạ em chào ạ"}),
            json!({"role": "user", "content": "đổi trả mấy ngày"}),
            json!({"role": "assistant", "content": null, "tool_calls": []}),
        ];
        add_to_last_question(&mut messages, "H:", &["14 ngày"]);
        assert_eq!(messages[3]["content"], "H:\n- 14 ngày\n\nđổi trả mấy ngày");
        assert_eq!(messages[1]["content"], "chào shop");
        assert_eq!(messages[0]["content"], "S");
        let mut system_only = vec![json!({"role": "system", "content": "S"})];
        add_to_last_question(&mut system_only, "H:", &["x"]);
        assert_eq!(system_only, vec![json!({"role": "system", "content": "S"})]);
    }
}
