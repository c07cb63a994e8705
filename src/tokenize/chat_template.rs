//! A model's chat template, rendered the way transformers' `apply_chat_template` does.
//!
//! Where the template comes from (transformers' rule): `chat_template.jinja` wins
//! over the `chat_template` field of `tokenizer_config.json`, which is a string or
//! a list of `{"name", "template"}` (we use `"default"`).
//!
//! What it renders with (transformers `utils/chat_template_utils.py`):
//! Jinja2 with `trim_blocks`, `lstrip_blocks` and loop controls; the globals
//! `raise_exception(msg)` and `strftime_now(fmt)`; `tojson` as
//! `json.dumps(ensure_ascii=False)`; and the variables `messages`, `tools`,
//! `documents`, `add_generation_prompt`, the special tokens (`bos_token`,
//! `eos_token`, ...) and any extra keyword arguments (`enable_thinking`). Python
//! string and dict methods (`.strip()`, `.items()`) come from minijinja-contrib's
//! pycompat, printed values look like Python's (`None`, `True`).
//!
//! Messages are normalized first, as transformers does: keys whose value is null
//! are dropped, and a reasoning field (`reasoning_content`, `thinking` or
//! `reasoning`) is copied under both `thinking` and `reasoning_content`.
//! Tool-call `arguments` go through as given, object or JSON string.

use std::path::Path;

use minijinja::value::{Kwargs, Value as JinjaValue};
use minijinja::{Environment, ErrorKind};
use serde_json::{Map, Value};

use super::pyjson::{dumps, PyJsonOptions};
use super::pyrepr::python_formatter;
use super::strftime::strftime_now;
use crate::model::ModelFiles;
use crate::{Error, Result};

/// The named special tokens transformers passes to templates (`SPECIAL_TOKENS_ATTRIBUTES`).
pub const SPECIAL_TOKEN_NAMES: [&str; 7] =
    ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/// Names a message's reasoning goes under; transformers copies the first one present
/// into `thinking` and `reasoning_content` (`_REASONING_FIELDS`).
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template plus the special tokens it may print.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    special_tokens: Vec<(String, String)>,
}

impl ChatTemplate {
    /// Compiles `source` with the special tokens `(name, content)` (e.g. `("eos_token", "<|im_end|>")`).
    pub fn new(source: impl Into<String>, special_tokens: Vec<(String, String)>) -> Result<Self> {
        let source = source.into();
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", |message: String| -> Result<JinjaValue, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", |format: String| strftime_now(&format));
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| Error::msg(format!("the chat template does not compile: {}", describe(&e))))?;
        Ok(ChatTemplate { env, source, special_tokens })
    }

    /// The template of a model: its `chat_template.jinja`, else the `chat_template`
    /// of its `tokenizer_config.json`; special tokens from `tokenizer_config.json`.
    pub fn from_model_files(files: &ModelFiles) -> Result<Self> {
        Self::from_files(files.tokenizer_config.as_deref(), files.chat_template.as_deref(), &files.spec)
    }

    /// Like [`ChatTemplate::from_model_files`] from the two files themselves;
    /// `model` names the model in error messages.
    pub fn from_files(tokenizer_config: Option<&Path>, chat_template: Option<&Path>, model: &str) -> Result<Self> {
        let config = match tokenizer_config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                let json: Value = serde_json::from_str(&text)
                    .map_err(|e| Error::bad_input(path, Some(e.line()), format!("not valid JSON: {e}")))?;
                Some((path, json))
            }
            None => None,
        };
        let source = match (chat_template, &config) {
            (Some(path), _) => std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?,
            (None, Some((path, json))) => template_from_config(path, json)?,
            (None, None) => {
                return Err(Error::msg(format!(
                    "{model}: no chat template (neither chat_template.jinja nor tokenizer_config.json)"
                )))
            }
        };
        let special = config.map(|(_, json)| special_tokens_from_config(&json)).unwrap_or_default();
        Self::new(source, special)
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A special token's content by name (`"eos_token"`), when the model defines it.
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.special_tokens.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `apply_chat_template(messages, tools=tools, add_generation_prompt=..., tokenize=False)`.
    pub fn render(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, tools, add_generation_prompt, &Map::new())
    }

    /// [`ChatTemplate::render`] with extra template variables (`{"enable_thinking": false}`),
    /// which override the special tokens as transformers' `**kwargs` do.
    pub fn render_with(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
        extra: &Map<String, Value>,
    ) -> Result<String> {
        let mut ctx = Map::new();
        for (name, content) in &self.special_tokens {
            ctx.insert(name.clone(), Value::String(content.clone()));
        }
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), Value::Array(messages.iter().map(normalize_message).collect()));
        ctx.insert("tools".into(), tools.map(|t| Value::Array(t.to_vec())).unwrap_or(Value::Null));
        ctx.insert("documents".into(), Value::Null);
        ctx.insert("add_generation_prompt".into(), Value::Bool(add_generation_prompt));
        let template = self.env.get_template(TEMPLATE_NAME).map_err(|e| Error::msg(describe(&e)))?;
        template
            .render(JinjaValue::from_serialize(&ctx))
            .map_err(|e| Error::msg(format!("the chat template failed: {}", describe(&e))))
    }
}

/// A minijinja error with its cause chain, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// A message as transformers hands it to the template: null-valued keys dropped,
/// reasoning copied under `thinking` (first) and `reasoning_content`.
fn normalize_message(message: &Value) -> Value {
    let Value::Object(map) = message else {
        return message.clone();
    };
    let kept: Map<String, Value> =
        map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
    let Some(reasoning) = REASONING_FIELDS.iter().find_map(|f| kept.get(*f)).cloned() else {
        return Value::Object(kept);
    };
    // Python: {"thinking": r, **message, "reasoning_content": r}
    let mut out = Map::new();
    out.insert("thinking".into(), reasoning.clone());
    out.extend(kept);
    out.insert("reasoning_content".into(), reasoning);
    Value::Object(out)
}

/// The `chat_template` field: a string, or a list of named templates (use "default").
fn template_from_config(path: &Path, config: &Value) -> Result<String> {
    match config.get("chat_template") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(named)) => {
            let name_of = |t: &Value| t.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| {
                    let names: Vec<String> = named.iter().map(name_of).collect();
                    Error::bad_input(
                        path,
                        None,
                        format!("`chat_template` has no \"default\" entry (has: {})", names.join(", ")),
                    )
                })
        }
        _ => Err(Error::bad_input(
            path,
            None,
            "no `chat_template` (string or list of {name, template}) and no chat_template.jinja beside it",
        )),
    }
}

/// The named special tokens of a `tokenizer_config.json`: strings or `{"content": ...}`.
fn special_tokens_from_config(config: &Value) -> Vec<(String, String)> {
    SPECIAL_TOKEN_NAMES
        .iter()
        .filter_map(|name| {
            let content = match config.get(*name)? {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("content")?.as_str()?.to_string(),
                _ => return None,
            };
            Some((name.to_string(), content))
        })
        .collect()
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
/// (`sort_keys` by keyword only: minijinja filters take at most five arguments).
fn tojson(
    value: JinjaValue,
    ensure_ascii: Option<JinjaValue>,
    indent: Option<JinjaValue>,
    separators: Option<JinjaValue>,
    kwargs: Kwargs,
) -> Result<JinjaValue, minijinja::Error> {
    let arg = |positional: Option<JinjaValue>, name: &str| -> Result<Option<JinjaValue>, minijinja::Error> {
        let named: Option<JinjaValue> = kwargs.get(name)?;
        Ok(named.or(positional).filter(|v| !v.is_none() && !v.is_undefined()))
    };
    let bad = |msg: &str| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {msg}"));
    let indent = match arg(indent, "indent")? {
        None => None,
        Some(v) if v.as_str().is_some() => Some(v.as_str().unwrap_or_default().to_string()),
        Some(v) => {
            Some(" ".repeat(v.as_i64().ok_or_else(|| bad("indent must be an integer or a string"))?.max(0) as usize))
        }
    };
    let separators = match arg(separators, "separators")? {
        None => None,
        Some(v) => {
            let parts: Vec<String> = v.try_iter()?.map(|p| p.as_str().unwrap_or_default().to_string()).collect();
            match <[String; 2]>::try_from(parts) {
                Ok([item, key]) => Some((item, key)),
                Err(_) => return Err(bad("separators must be a pair of strings")),
            }
        }
    };
    let opts = PyJsonOptions {
        ensure_ascii: arg(ensure_ascii, "ensure_ascii")?.is_some_and(|v| v.is_true()),
        indent,
        separators,
        sort_keys: arg(None, "sort_keys")?.is_some_and(|v| v.is_true()),
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| bad(&e.to_string()))?;
    Ok(JinjaValue::from(dumps(&json, &opts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qwen25() -> ChatTemplate {
        let source = include_str!("../../tests/fixtures/qwen2.5_chat_template.jinja");
        ChatTemplate::new(source, vec![("eos_token".into(), "<|im_end|>".into())]).unwrap()
    }

    #[test]
    fn renders_chatml_with_default_system() {
        let text = qwen25().render(&[json!({"role": "user", "content": "Chào shop"})], None, true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nChào shop<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn extra_variables_reach_the_template_and_override_special_tokens() {
        let source =
            "{{ eos_token }}{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}";
        let t = ChatTemplate::new(source, vec![("eos_token".into(), "<|im_end|>".into())]).unwrap();
        assert_eq!(t.render(&[], None, false).unwrap(), "<|im_end|>");
        let extra = json!({"enable_thinking": false, "eos_token": "</s>"});
        assert_eq!(t.render_with(&[], None, false, extra.as_object().unwrap()).unwrap(), "</s><think></think>");
    }

    #[test]
    fn raise_exception_is_an_error_with_the_message() {
        let t = ChatTemplate::new("{{ raise_exception('Thiếu tin nhắn user') }}", vec![]).unwrap();
        let err = t.render(&[], None, false).unwrap_err().to_string();
        assert!(err.contains("Thiếu tin nhắn user"), "{err}");
    }

    #[test]
    fn null_keys_are_dropped_and_reasoning_aliased() {
        let m = normalize_message(&json!({"role": "assistant", "content": "x", "tool_calls": null, "reasoning": "r"}));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"thinking":"r","role":"assistant","content":"x","reasoning":"r","reasoning_content":"r"}"#
        );
    }

    #[test]
    fn special_tokens_come_as_strings_or_objects() {
        let config = json!({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "unk_token": null});
        let tokens = special_tokens_from_config(&config);
        assert_eq!(tokens, vec![("bos_token".into(), "<s>".into()), ("eos_token".into(), "</s>".into())]);
    }

    #[test]
    fn named_template_list_uses_default() {
        let config =
            json!({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]});
        assert_eq!(template_from_config(Path::new("c.json"), &config).unwrap(), "D");
        let err =
            template_from_config(Path::new("c.json"), &json!({"chat_template": [{"name": "rag", "template": "R"}]}));
        assert!(err.unwrap_err().to_string().contains("has: rag"));
    }

    #[test]
    fn tojson_rejects_unknown_arguments() {
        let t = ChatTemplate::new("{{ messages | tojson(indnet=2) }}", vec![]).unwrap();
        assert!(t.render(&[], None, false).is_err());
    }
}
