//! Retrieved passages in the system prompt: the one layout `serve` uses for what its
//! retrieval finds and `eval` sends with a golden case's contexts, so a bare model is
//! evaluated on the prompt it gets in production; the grounding check reads it back.

/// The heading the passages follow (`configs/assistant.toml` `context_heading` is the
/// same text).
pub const CONTEXT_HEADING: &str = "Thông tin tham khảo của cửa hàng (chỉ dùng khi liên quan):";

/// `system`, then (when there are any passages) a blank line, `heading` and one
/// `- passage` line per passage.
pub fn with_context<S: AsRef<str>>(system: &str, heading: &str, passages: &[S]) -> String {
    let mut out = system.to_string();
    for (i, passage) in passages.iter().enumerate() {
        if i == 0 {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(heading);
        }
        out.push_str("\n- ");
        out.push_str(passage.as_ref());
    }
    out
}

/// The passages part of a system prompt written by [`with_context`] with
/// [`CONTEXT_HEADING`] (what follows the heading), if it has one.
pub fn retrieved_part(system: &str) -> Option<&str> {
    system.find(CONTEXT_HEADING).map(|at| &system[at + CONTEXT_HEADING.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_follow_the_heading_one_per_line() {
        let s = with_context("Bạn là trợ lý.", CONTEXT_HEADING, &["A: 100.000đ", "B: 14 ngày"]);
        assert_eq!(s, format!("Bạn là trợ lý.\n\n{CONTEXT_HEADING}\n- A: 100.000đ\n- B: 14 ngày"));
        assert_eq!(retrieved_part(&s), Some("\n- A: 100.000đ\n- B: 14 ngày"));
    }

    #[test]
    fn no_passages_leave_the_prompt_as_it_was() {
        assert_eq!(with_context("Bạn là trợ lý.", CONTEXT_HEADING, &[] as &[&str]), "Bạn là trợ lý.");
        assert_eq!(retrieved_part("Bạn là trợ lý."), None);
        assert_eq!(with_context("", "H:", &["x"]), "H:\n- x");
    }
}
