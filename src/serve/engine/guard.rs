//! Constrained output for forced tool calls (`tool_choice: "required"` or a named
//! function): the output must be one of a few literal openings (`get_stock", "arguments": `)
//! followed by one JSON object, and ends as soon as that object closes. When the
//! tool's schema lists `properties`, the object's top-level keys must be among them,
//! each at most once (so the object closes once every key is used), and a value must
//! start like its declared JSON type (`"` for a string, a digit for a number, ...). A character cut
//! by a token boundary (U+FFFD) may only be the last thing written.
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

/// One allowed shape: a literal opening, then a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedObject {
    /// Literal text that comes first (may be empty).
    pub opening: String,
    /// Allowed top-level keys of the object with their JSON-schema `type`, if any;
    /// `None` allows any key.
    pub keys: Option<Vec<(String, Option<String>)>>,
}

/// The allowed outputs: any one of the shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputGuard {
    /// The alternatives.
    pub shapes: Vec<GuardedObject>,
}

impl OutputGuard {
    /// Classifies `text`, the whole output so far.
    pub fn check(&self, text: &str) -> GuardState {
        if text.trim_end_matches('\u{fffd}').contains('\u{fffd}') {
            return GuardState::Invalid;
        }
        let mut best = GuardState::Invalid;
        for shape in &self.shapes {
            let opening = shape.opening.as_str();
            let state = if let Some(rest) = text.strip_prefix(opening) {
                json_object_prefix(rest, shape.keys.as_deref())
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

/// Whether `text` is (leading whitespace aside) a prefix of one JSON object (with
/// top-level keys from `keys`, each once, when given), the whole object, or neither.
fn json_object_prefix(text: &str, keys: Option<&[(String, Option<String>)]>) -> GuardState {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return GuardState::Partial;
    }
    if !trimmed.starts_with('{') {
        return GuardState::Invalid;
    }
    let mut stack: Vec<char> = Vec::new(); // '{' or '['
    let mut expect = Expect::Value;

    let mut in_string = false;
    let mut string_is_key = false;
    let mut escape = false;
    let mut scalar = String::new(); // a number or literal being read
    let mut key = String::new(); // a top-level key being read
    let mut used: Vec<String> = Vec::new();
    let mut value_type: Option<&str> = None; // declared type of the top-level value expected next
    for c in trimmed.chars() {
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
                if let (Some(allowed), true) = (keys, string_is_key && stack.len() == 1) {
                    let Some((_, declared)) = allowed.iter().find(|(k, _)| *k == key) else {
                        return GuardState::Invalid;
                    };
                    if used.contains(&key) {
                        return GuardState::Invalid;
                    }
                    value_type = declared.as_deref();
                    used.push(std::mem::take(&mut key));
                }
                continue;
            } else if (c as u32) < 0x20 {
                return GuardState::Invalid;
            }
            if let (Some(allowed), true) = (keys, string_is_key && stack.len() == 1) {
                key.push(c);
                if !allowed.iter().any(|(k, _)| k.starts_with(key.as_str()) && !used.contains(k)) {
                    return GuardState::Invalid;
                }
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
        if expect == Expect::Value && stack.len() == 1 {
            if let Some(declared) = value_type.take() {
                if !starts_like(declared, c) {
                    return GuardState::Invalid;
                }
            }
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
                let all_keys_used = keys.is_some_and(|k| used.len() >= k.len());
                if stack.len() == 1 && all_keys_used {
                    return GuardState::Invalid;
                }
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

/// Whether a value of JSON-schema type `declared` can start with `c` (unknown types: any).
fn starts_like(declared: &str, c: char) -> bool {
    match declared {
        "string" => c == '"',
        "integer" | "number" => c == '-' || c.is_ascii_digit(),
        "boolean" => c == 't' || c == 'f',
        "object" => c == '{',
        "array" => c == '[',
        "null" => c == 'n',
        _ => true,
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
            assert_eq!(json_object_prefix(text, None), state, "{text:?}");
        }
    }

    #[test]
    fn schema_keys_each_once_then_close() {
        let keys = vec![("order_id".to_string(), Some("string".to_string())), ("phone".to_string(), None)];
        let check = |t: &str| json_object_prefix(t, Some(&keys));
        assert_eq!(check("{\"ord"), Partial);
        assert_eq!(check("{\"type"), Invalid);
        assert_eq!(check("{\"order_id\": {"), Invalid, "order_id is a string");
        assert_eq!(check("{\"phone\": {\"nested\": 1}, \"ord"), Partial, "untyped values and nested keys are free");
        assert_eq!(check("{\"order_id\": \"A\", \"order_id"), Invalid, "no key twice");
        assert_eq!(
            check("{\"order_id\": \"A\", \"phone\": \"1\","),
            Invalid,
            "every key used: only a closing brace may follow"
        );
        assert_eq!(check("{\"order_id\": \"A\", \"phone\": \"1\"}"), Complete);
        let guard = OutputGuard { shapes: vec![GuardedObject { opening: String::new(), keys: None }] };
        assert_eq!(guard.check("{\"a\": \"x\u{fffd}"), Partial, "a cut character at the end may still complete");
        assert_eq!(guard.check("{\"a\": \"x\u{fffd}y"), Invalid);
    }

    #[test]
    fn openings_then_object() {
        let shape = |opening: &str| GuardedObject { opening: opening.into(), keys: None };
        let guard =
            OutputGuard { shapes: vec![shape("get_stock\", \"arguments\": "), shape("get_order\", \"arguments\": ")] };
        assert_eq!(guard.check("get_"), Partial);
        assert_eq!(guard.check("get_order\", \"arg"), Partial);
        assert_eq!(guard.check("get_orders"), Invalid);
        assert_eq!(guard.check("get_stock\", \"arguments\": {\"sku\": \"A1\"}"), Complete);
        assert_eq!(guard.check("get_stock\", \"arguments\": \"x\""), Invalid);
    }
}
