//! Where the assistant turns are in a rendered conversation, so a trainer puts
//! loss on them only.
//!
//! The span of assistant message `i` starts where the rendered history
//! `messages[..i]` with the generation prompt ends, and ends where
//! `messages[..=i]` ends, trailing whitespace trimmed. In ChatML:
//!
//! ```text
//! <|im_start|>user\nCòn size M không?<|im_end|>\n<|im_start|>assistant\n[Dạ còn ạ!<|im_end|>]\n
//! ```
//!
//! so the span holds the content, any tool calls and the end-of-turn token. This
//! needs every partial render to be a prefix of the full one; templates that
//! rewrite earlier turns (Qwen3 drops the `<think>` block of turns before the last
//! user message) fail that check with an error saying so.

use std::ops::Range;

use serde_json::Value;

use super::chat_template::ChatTemplate;
use crate::{Error, Result};

/// The label trainers skip (PyTorch's `CrossEntropyLoss(ignore_index=-100)`).
pub const IGNORE_INDEX: i64 = -100;

/// A rendered conversation and the byte ranges of its assistant turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedChat {
    /// The full render, without the generation prompt.
    pub text: String,
    /// One byte range of `text` per assistant message, in order.
    pub spans: Vec<Range<usize>>,
}

/// Renders `messages` and locates each assistant turn (see the module docs).
pub fn render_with_assistant_spans(
    template: &ChatTemplate,
    messages: &[Value],
    tools: Option<&[Value]>,
) -> Result<RenderedChat> {
    let text = template.render(messages, tools, false)?;
    let mut spans = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if message.get("role").and_then(Value::as_str) != Some("assistant") {
            continue;
        }
        if i == 0 {
            return Err(Error::msg("the first message is an assistant turn; start with a system or user message"));
        }
        let before = template.render(&messages[..i], tools, true)?;
        let through = template.render(&messages[..=i], tools, false)?;
        let through = through.trim_end();
        for (what, prefix) in [("with the generation prompt", before.as_str()), ("through it", through)] {
            if !text.starts_with(prefix) {
                return Err(Error::msg(format!(
                    "the chat template does not render incrementally: the history up to message {i} ({what}) is not \
                     a prefix of the whole conversation, so assistant turns cannot be located (templates that \
                     rewrite earlier turns, like Qwen3's, which drops old <think> blocks, do this; use single-turn \
                     rows or another template)"
                )));
            }
        }
        if through.len() < before.len() {
            return Err(Error::msg(format!("assistant message {i} renders to nothing after the generation prompt")));
        }
        spans.push(before.len()..through.len());
    }
    Ok(RenderedChat { text, spans })
}

/// Byte ranges of `text` as `[start, end)` char (Unicode scalar) offsets, the
/// indices Python's `str` uses.
pub fn char_spans(text: &str, byte_spans: &[Range<usize>]) -> Vec<[usize; 2]> {
    let char_at = |byte: usize| text[..byte].chars().count();
    byte_spans.iter().map(|r| [char_at(r.start), char_at(r.end)]).collect()
}

/// Token index ranges `[first, last + 1)` of the tokens lying inside each byte
/// span, given each token's byte offsets (`Encoding::get_offsets`); `[0, 0]`
/// when no token fits.
pub fn token_spans(token_offsets: &[(usize, usize)], byte_spans: &[Range<usize>]) -> Vec<[usize; 2]> {
    byte_spans
        .iter()
        .map(|span| {
            let mut inside = token_offsets
                .iter()
                .enumerate()
                .filter(|(_, &(s, e))| span.start <= s && e <= span.end && s < e)
                .map(|(i, _)| i);
            match inside.next() {
                Some(first) => [first, inside.next_back().unwrap_or(first) + 1],
                None => [0, 0],
            }
        })
        .collect()
}

/// `true` for each of `n_tokens` tokens inside an assistant span: the tokens to train on.
pub fn label_mask(n_tokens: usize, token_spans: &[[usize; 2]]) -> Vec<bool> {
    let mut mask = vec![false; n_tokens];
    for &[start, end] in token_spans {
        mask[start.min(n_tokens)..end.min(n_tokens)].fill(true);
    }
    mask
}

/// Labels for causal-LM training: the token id inside assistant spans, else
/// [`IGNORE_INDEX`] (not shifted; the loss shifts).
pub fn labels(input_ids: &[u32], token_spans: &[[usize; 2]]) -> Vec<i64> {
    let mask = label_mask(input_ids.len(), token_spans);
    input_ids.iter().zip(mask).map(|(&id, on)| if on { i64::from(id) } else { IGNORE_INDEX }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SMOLLM2: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
        message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn spans_cover_content_and_end_token() {
        let t = ChatTemplate::new(SMOLLM2, vec![]).unwrap();
        let msgs = [
            json!({"role": "user", "content": "Áo còn không?"}),
            json!({"role": "assistant", "content": "Dạ còn ạ"}),
            json!({"role": "user", "content": "ok"}),
            json!({"role": "assistant", "content": "Dạ 😊"}),
        ];
        let r = render_with_assistant_spans(&t, &msgs, None).unwrap();
        let got: Vec<&str> = r.spans.iter().map(|s| &r.text[s.clone()]).collect();
        assert_eq!(got, ["Dạ còn ạ<|im_end|>", "Dạ 😊<|im_end|>"]);
        let prefix = "<|im_start|>user\nÁo còn không?<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(char_spans(&r.text, &r.spans[..1]), [[prefix.chars().count(), prefix.chars().count() + 18]]);
    }

    #[test]
    fn non_incremental_templates_are_reported() {
        // Prints only the last message: earlier renders are not prefixes.
        let t = ChatTemplate::new("{{ messages[-1].content }}", vec![]).unwrap();
        let msgs = [json!({"role": "user", "content": "a"}), json!({"role": "assistant", "content": "b"})];
        let err = render_with_assistant_spans(&t, &msgs, None).unwrap_err().to_string();
        assert!(err.contains("does not render incrementally"), "{err}");
    }

    #[test]
    fn tokens_inside_spans_and_labels() {
        // tokens: [0,3) [3,5) [5,8) [8,9) ; span bytes [3, 8)
        let offsets = [(0, 3), (3, 5), (5, 8), (8, 9)];
        let spans = token_spans(&offsets, &[3..8, 4..5]);
        assert_eq!(spans, [[1, 3], [0, 0]]);
        assert_eq!(label_mask(4, &spans[..1]), [false, true, true, false]);
        assert_eq!(labels(&[10, 11, 12, 13], &spans[..1]), [IGNORE_INDEX, 11, 12, IGNORE_INDEX]);
    }
}
