//! How Jinja2 prints values (`{{ x }}`): Python's `str()`, which differs from
//! minijinja's defaults for `None`, booleans, floats, lists and dicts.
//!
//! ```text
//! {{ none }}|{{ true }}|{{ 2.5e20 }}|{{ [1, 'a', none] }}|{{ {'k': "it's"} }}
//! None|True|2.5e+20|[1, 'a', None]|{'k': "it's"}
//! ```

use std::fmt::Write;

use minijinja::value::{Value, ValueKind};

use super::pyjson::py_float_repr;

/// minijinja formatter printing values as Jinja2 does (no auto-escaping: chat
/// templates are rendered as plain text).
pub fn python_formatter(
    out: &mut minijinja::Output,
    _state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        return Ok(());
    }
    out.write_str(&py_str(value)).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "writing the rendered template").with_source(e)
    })
}

/// Python's `str(value)`.
pub fn py_str(value: &Value) -> String {
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => s.to_string(),
        _ => py_repr(value),
    }
}

/// Python's `repr(value)`.
pub fn py_repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(f) => py_float_repr(f),
            Err(_) => value.to_string(),
        },
        ValueKind::String => py_str_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq => match value.try_iter() {
            Ok(items) => format!("[{}]", items.map(|v| py_repr(&v)).collect::<Vec<_>>().join(", ")),
            Err(_) => value.to_string(),
        },
        ValueKind::Map => match value.try_iter() {
            Ok(keys) => {
                let entries: Vec<String> = keys
                    .map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&v))
                    })
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            Err(_) => value.to_string(),
        },
        _ => value.to_string(),
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`;
/// escapes for the quote, backslash, control characters and the common
/// non-printable spaces and format characters.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let code = c as u32;
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Python's `str.isprintable` without Unicode tables:
/// control characters, separators other than the ASCII space, and the
/// frequent format characters are not printable.
fn is_printable(c: char) -> bool {
    !matches!(c,
        '\0'..='\u{1f}' | '\u{7f}'..='\u{a0}' | '\u{ad}'
        | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
        | '\u{205f}'..='\u{2064}' | '\u{3000}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_python() {
        // Right-hand sides from Python 3: str(x) / repr(x).
        let v = |s: &str| Value::from_serialize(serde_json::from_str::<serde_json::Value>(s).unwrap());
        assert_eq!(py_str(&v("null")), "None");
        assert_eq!(py_str(&v("[true, false, 1.0, 2, \"a\"]")), "[True, False, 1.0, 2, 'a']");
        assert_eq!(
            py_str(&v(r#"{"k": "it's", "q": "say \"hi\"", "b": "both ' \""}"#)),
            r#"{'k': "it's", 'q': 'say "hi"', 'b': 'both \' "'}"#
        );
        assert_eq!(py_str(&v(r#""ạ\n\\\u0001\u00a0\u200d😀""#)), "ạ\n\\\u{1}\u{a0}\u{200d}😀");
        assert_eq!(py_repr(&v(r#""ạ\n\\\u0001\u00a0\u200d😀""#)), r"'ạ\n\\\x01\xa0\u200d😀'");
        assert_eq!(py_str(&v("1e16")), "1e+16");
    }
}
