//! Python's `json.dumps`, byte for byte, over `serde_json` values.
//!
//! Chat templates serialize tools and tool-call arguments with `tojson`, which
//! transformers overrides (`utils/chat_template_utils.py`) as
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
//! The model saw exactly those bytes in training, so we reproduce them:
//!
//! ```text
//! {"name": "tìm_sp", "args": {"giá": 1.5e+16, "ok": true, "q": "<a & b>"}}
//! ```
//!
//! - separators `", "` and `": "` by default, `","` and `": "` when indenting;
//! - no HTML escaping (minijinja's own `tojson` escapes `<`, `>`, `&`, `'`);
//! - floats as Python's `repr` (`1e-05`, `1.5e+16`, `100.0`), key order preserved.

use serde_json::Value;

/// The arguments of `json.dumps` that chat templates use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyJsonOptions {
    /// Escape every non-ASCII character as `\uXXXX` (Python's default is true,
    /// transformers' `tojson` passes false).
    pub ensure_ascii: bool,
    /// Indent string per level (`indent=2` is two spaces); `None` writes one line.
    pub indent: Option<String>,
    /// `(item_separator, key_separator)`; `None` picks Python's default for `indent`.
    pub separators: Option<(String, String)>,
    /// Sort object keys (by code point, as Python does).
    pub sort_keys: bool,
}

impl Default for PyJsonOptions {
    /// transformers' `tojson` defaults: `ensure_ascii=False`, one line, keys in order.
    fn default() -> Self {
        PyJsonOptions { ensure_ascii: false, indent: None, separators: None, sort_keys: false }
    }
}

/// `json.dumps(value, ensure_ascii=False)`: what `{{ x | tojson }}` gives in a chat template.
pub fn to_py_json(value: &Value) -> String {
    dumps(value, &PyJsonOptions::default())
}

/// `json.dumps(value, **opts)`.
pub fn dumps(value: &Value, opts: &PyJsonOptions) -> String {
    let (item_sep, key_sep) = match (&opts.separators, &opts.indent) {
        (Some((i, k)), _) => (i.as_str(), k.as_str()),
        (None, None) => (", ", ": "),
        (None, Some(_)) => (",", ": "),
    };
    let writer = Writer { opts, item_sep, key_sep };
    let mut out = String::new();
    writer.value(&mut out, value, 0);
    out
}

struct Writer<'a> {
    opts: &'a PyJsonOptions,
    item_sep: &'a str,
    key_sep: &'a str,
}

impl Writer<'_> {
    fn value(&self, out: &mut String, value: &Value, depth: usize) {
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => out.push_str(&py_json_float(f)),
                _ => out.push_str(&n.to_string()),
            },
            Value::String(s) => self.string(out, s),
            Value::Array(items) => {
                if items.is_empty() {
                    return out.push_str("[]");
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.separator(out, i, depth + 1);
                    self.value(out, item, depth + 1);
                }
                self.newline(out, depth);
                out.push(']');
            }
            Value::Object(map) => {
                if map.is_empty() {
                    return out.push_str("{}");
                }
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                if self.opts.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    self.separator(out, i, depth + 1);
                    self.string(out, key);
                    out.push_str(self.key_sep);
                    self.value(out, item, depth + 1);
                }
                self.newline(out, depth);
                out.push('}');
            }
        }
    }

    /// Before item `i` of a container whose items sit at `depth`.
    fn separator(&self, out: &mut String, i: usize, depth: usize) {
        if i > 0 {
            out.push_str(self.item_sep);
        }
        self.newline(out, depth);
    }

    fn newline(&self, out: &mut String, depth: usize) {
        if let Some(indent) = &self.opts.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    }

    /// Python's `py_encode_basestring` (or `_ascii` with `ensure_ascii`).
    fn string(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.opts.ensure_ascii && !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A float as `json.dumps` writes it: `repr`, with `NaN`/`Infinity` spelled the JSON way.
fn py_json_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        py_float_repr(f)
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional for
/// decimal exponents -4..16, else scientific with a signed two-digit exponent.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest digits: "-1.5e16", "1e-5", "0e0".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{first}{frac}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_match_python_repr() {
        // Each right-hand side is Python 3's `repr(x)`.
        let cases = [
            (0.5, "0.5"),
            (1e-5, "1e-05"),
            (1.5e16, "1.5e+16"),
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (100.0, "100.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.675, "2.675"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.2345e-7, "1.2345e-07"),
            (2.5e20, "2.5e+20"),
            (1e100, "1e+100"),
            (123456.789, "123456.789"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1250000.0, "-1250000.0"),
            (f64::INFINITY, "inf"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "repr({x:?})");
        }
    }

    #[test]
    fn default_dumps_matches_transformers_tojson() {
        // python3 -c 'import json; print(json.dumps(v, ensure_ascii=False))'
        let v = json!({"q": "áo \"polo\" \\ <nam> & nữ'\n\t\r\u{8}\u{c}", "c": "\u{1}\u{1f}\u{7f}\u{2028} 😀",
            "n": [0.5, 1e-5, 100.0, -7, 12345678901234567890u64, true, null], "e": {"o": {}, "l": []}});
        let want = r#"{"q": "áo \"polo\" \\ <nam> & nữ'\n\t\r\b\f", "c": "\u0001\u001f"#.to_string()
            + "\u{7f}\u{2028} 😀\""
            + r#", "n": [0.5, 1e-05, 100.0, -7, 12345678901234567890, true, null], "e": {"o": {}, "l": []}}"#;
        assert_eq!(to_py_json(&v), want);
    }

    #[test]
    fn options_match_python() {
        let v = json!({"b": [1, {"z": "ạ", "a": []}], "a": {}});
        let opts = |indent: Option<&str>, seps: Option<(&str, &str)>, sort_keys, ensure_ascii| PyJsonOptions {
            ensure_ascii,
            indent: indent.map(String::from),
            separators: seps.map(|(a, b)| (a.to_string(), b.to_string())),
            sort_keys,
        };
        // json.dumps(v, indent=2, ensure_ascii=False)
        assert_eq!(
            dumps(&v, &opts(Some("  "), None, false, false)),
            "{\n  \"b\": [\n    1,\n    {\n      \"z\": \"ạ\",\n      \"a\": []\n    }\n  ],\n  \"a\": {}\n}"
        );
        // json.dumps(v, separators=(',', ':'), sort_keys=True, ensure_ascii=False)
        assert_eq!(dumps(&v, &opts(None, Some((",", ":")), true, false)), r#"{"a":{},"b":[1,{"a":[],"z":"ạ"}]}"#);
        // json.dumps(v)  (ensure_ascii=True; astral characters as surrogate pairs)
        assert_eq!(dumps(&json!(["ạ", "🚚"]), &opts(None, None, false, true)), r#"["\u1ea1", "\ud83d\ude9a"]"#);
        // json.dumps([1, [2]], indent=0)
        assert_eq!(dumps(&json!([1, [2]]), &opts(Some(""), None, false, false)), "[\n1,\n[\n2\n]\n]");
    }
}
