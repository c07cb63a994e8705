//! Constrained output for forced tool calls (`tool_choice: "required"` or a named
//! function): the output must be one of a few literal openings (`get_stock", "arguments": `)
//! followed by one JSON object, and ends as soon as that object closes.
//!
//! The scheduler tries candidate tokens from the most likely down and takes the first
//! whose text keeps the output a valid prefix ([`OutputGuard::check`]), so a small model
//! that would ramble still yields a well-formed call.

/// Where a guarded output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardState {
    /// Not a prefix of any allowed output: reject the candidate token.
    Invalid,
    /// A proper prefix: keep generating.
    Partial,
    /// A whole allowed output: stop here.
    Complete,
}

/// The allowed outputs: one of `openings`, then a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputGuard {
    /// Literal texts one of which must come first (an empty list means none).
    pub openings: Vec<String>,
}

impl OutputGuard {
    /// Classifies `text`, the whole output so far.
    pub fn check(&self, text: &str) -> GuardState {
        if self.openings.is_empty() {
            return json_object_prefix(text);
        }
        let mut best = GuardState::Invalid;
        for opening in &self.openings {
            let state = if let Some(rest) = text.strip_prefix(opening.as_str()) {
                json_object_prefix(rest)
            } else if opening.starts_with(text) {
                GuardState::Partial
            } else {
                GuardState::Invalid
            };
            if state == GuardState::Complete {
                return state;
            }
            if state == GuardState::Partial {
                best = state;
            }
        }
        best
    }
}

/// What the scanner expects next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Value,
    /// A key or `}` (right after `{`).
    KeyOrEnd,
    Key,
    Colon,
    /// `,` or the closing bracket of the innermost container.
    CommaOrEnd,
    /// A value or `]` (right after `[`).
    ValueOrEnd,
}

/// Whether `text` is (leading whitespace aside) a prefix of one JSON object, the whole
/// object, or neither.
fn json_object_prefix(text: &str) -> GuardState {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return GuardState::Partial;
    }
    if !trimmed.starts_with('{') {
        return GuardState::Invalid;
    }
    let mut stack: Vec<char> = Vec::new(); // '{' or '['
    let mut expect = Expect::Value;
    let mut chars = trimmed.chars().peekable();
    let mut in_string = false;
    let mut string_is_key = false;
    let mut escape = false;
    let mut scalar = String::new(); // a number or literal being read
    while let Some(c) = chars.next() {
        if stack.is_empty() && expect == Expect::CommaOrEnd && !c.is_whitespace() {
            return GuardState::Invalid; // text after the closed object
        }
        if in_string {
            if escape {
                if !matches!(c, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u') {
                    return GuardState::Invalid;
                }
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' {
                in_string = false;
                expect = if string_is_key { Expect::Colon } else { Expect::CommaOrEnd };
            } else if (c as u32) < 0x20 {
                return GuardState::Invalid;
            }
            continue;
        }
        if !scalar.is_empty() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                scalar.push(c);
                if !scalar_prefix_ok(&scalar) {
                    return GuardState::Invalid;
                }
                continue;
            }
            if !scalar_complete(&scalar) {
                return GuardState::Invalid;
            }
            scalar.clear();
            expect = Expect::CommaOrEnd;
        }
        if c.is_whitespace() {
            continue;
        }
        match (expect, c) {
            (Expect::Value | Expect::ValueOrEnd, '{') => {
                stack.push('{');
                expect = Expect::KeyOrEnd;
            }
            (Expect::Value | Expect::ValueOrEnd, '[') if !stack.is_empty() => {
                stack.push('[');
                expect = Expect::ValueOrEnd;
            }
            (Expect::Value | Expect::ValueOrEnd, '"') if !stack.is_empty() => {
                in_string = true;
                string_is_key = false;
            }
            (Expect::Value | Expect::ValueOrEnd, c) if !stack.is_empty() && (c == '-' || c.is_ascii_alphanumeric()) => {
                scalar.push(c);
                if !scalar_prefix_ok(&scalar) {
                    return GuardState::Invalid;
                }
            }
            (Expect::KeyOrEnd | Expect::Key, '"') => {
                in_string = true;
                string_is_key = true;
            }
            (Expect::Colon, ':') => expect = Expect::Value,
            (Expect::CommaOrEnd, ',') => {
                expect = if stack.last() == Some(&'{') { Expect::Key } else { Expect::Value };
            }
            (Expect::CommaOrEnd | Expect::KeyOrEnd, '}') if stack.last() == Some(&'{') => {
                stack.pop();
                expect = Expect::CommaOrEnd;
            }
            (Expect::CommaOrEnd | Expect::ValueOrEnd, ']') if stack.last() == Some(&'[') => {
                stack.pop();
                expect = Expect::CommaOrEnd;
            }
            _ => return GuardState::Invalid,
        }
    }
    if stack.is_empty() && expect == Expect::CommaOrEnd && !in_string {
        GuardState::Complete
    } else {
        GuardState::Partial
    }
}

/// Whether `s` can still grow into a JSON number or literal.
fn scalar_prefix_ok(s: &str) -> bool {
    ["true", "false", "null"].iter().any(|lit| lit.starts_with(s))
        || (s.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            && s.chars().next().is_some_and(|c| c == '-' || c.is_ascii_digit()))
}

/// Whether `s` is a whole JSON number or literal.
fn scalar_complete(s: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(s).is_ok_and(|v| !v.is_string() && !v.is_object() && !v.is_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use GuardState::*;

    #[test]
    fn json_object_prefixes() {
        for (text, state) in [
            ("", Partial),
            (" {", Partial),
            ("{\"order_id\": \"DH2", Partial),
            ("{\"a\": [1, -2.5e3, true, null, {\"b\": \"x\\\"y\"}], \"c\": fal", Partial),
            ("{\"a\": [1, 2]}", Complete),
            ("{}", Complete),
            ("{} ", Complete),
            ("{}x", Invalid),
            ("{\"a\" 1", Invalid),
            ("{'a': 1}", Invalid),
            ("{\"a\": tru e}", Invalid),
            ("{\"a\": 01x", Invalid),
            ("[1]", Invalid),
            ("hello", Invalid),
            ("{\"a\": 1,}", Invalid),
        ] {
            assert_eq!(json_object_prefix(text), state, "{text:?}");
        }
    }

    #[test]
    fn openings_then_object() {
        let guard = OutputGuard { openings: vec!["get_stock\", \"arguments\": ".into(), "get_order\", \"arguments\": ".into()] };
        assert_eq!(guard.check("get_"), Partial);
        assert_eq!(guard.check("get_order\", \"arg"), Partial);
        assert_eq!(guard.check("get_orders"), Invalid);
        assert_eq!(guard.check("get_stock\", \"arguments\": {\"sku\": \"A1\"}"), Complete);
        assert_eq!(guard.check("get_stock\", \"arguments\": \"x\""), Invalid);
    }
}
