//! Building one conversation: the system turn, customer turns in the customer's
//! own style (formal, casual, no diacritics, teen code, typos), assistant turns
//! addressing the customer consistently, and tool calls executed against the store
//! so that every tool result is the database's answer.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::conversation::text::strip_diacritics;
use crate::data::passages::{add_to_last_question, CONTEXT_HEADING};
use crate::data::text::{capitalize, lower_first, teen_code, typos};
use crate::data::tools::ToolBox;
use crate::data::SYSTEM_PROMPT;
use crate::Result;

/// How a customer types, chosen once per conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As written: diacritics, capitals, punctuation.
    Formal,
    /// Lowercase, no final punctuation, no polite particle.
    Casual,
    /// Casual and without diacritics.
    NoDiacritics,
    /// Casual with chat abbreviations (`k`, `dc`, `bn`...).
    TeenCode,
    /// Formal with one or two typos.
    Typos,
}

/// Forms of address for the customer, as the assistant writes them.
const HONORIFICS: [&str; 4] = ["anh", "chị", "anh/chị", "bạn"];

/// A conversation under construction.
pub struct Convo<'a> {
    /// The generator's random source.
    pub rng: &'a mut StdRng,
    tools: &'a ToolBox,
    style: Style,
    kh: &'static str,
    messages: Vec<Value>,
    next_call: usize,
    /// While set, [`Convo::maybe_thank`] does nothing: more turns follow.
    pub more_to_come: bool,
}

/// Replaces each `{key}` of `template` with its value.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl<'a> Convo<'a> {
    /// Starts a conversation with the system prompt, a random customer style and
    /// form of address.
    pub fn new(rng: &'a mut StdRng, tools: &'a ToolBox) -> Self {
        let style = match rng.random_range(0..100) {
            0..40 => Style::Formal,
            40..55 => Style::Casual,
            55..70 => Style::NoDiacritics,
            70..85 => Style::TeenCode,
            _ => Style::Typos,
        };
        let kh = *HONORIFICS.choose(rng).expect("honorifics");
        let messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        Convo { rng, tools, style, kh, messages, next_call: 0, more_to_come: false }
    }

    /// The customer's form of address (`anh`, `chị`...).
    pub fn kh(&self) -> &'static str {
        self.kh
    }

    /// One of `options`, at random.
    pub fn pick<'b>(&mut self, options: &[&'b str]) -> &'b str {
        options.choose(self.rng).copied().expect("non-empty options")
    }

    /// A customer turn, rewritten in the conversation's style.
    pub fn user(&mut self, text: &str) {
        let casual = |t: &str| lower_first(&t.trim_end_matches(['.', '?', '!']).replace(" ạ", ""));
        let text = match self.style {
            Style::Formal => text.to_string(),
            Style::Casual => casual(text),
            Style::NoDiacritics => strip_diacritics(&casual(text)),
            Style::TeenCode => teen_code(&casual(text), 0.7, self.rng),
            Style::Typos => {
                let n = self.rng.random_range(1..=2);
                typos(text, n, self.rng)
            }
        };
        self.messages.push(json!({"role": "user", "content": text}));
    }

    /// A customer turn (in the conversation's style) with the `passages` retrieval
    /// found for it before it, as `serve` sends them.
    pub fn user_with_passages(&mut self, text: &str, passages: &[String]) {
        self.user(text);
        add_to_last_question(&mut self.messages, CONTEXT_HEADING, passages);
    }

    /// An assistant turn; `{kh}` and `{Kh}` become the customer's form of address.
    pub fn say(&mut self, text: &str) {
        let text = fill(text, &[("kh", self.kh), ("Kh", &capitalize(self.kh))]);
        self.messages.push(json!({"role": "assistant", "content": text}));
    }

    /// An assistant tool call and its result from the store; returns the result.
    pub fn call(&mut self, name: &str, args: Value) -> Result<Value> {
        let result = self.tools.call(name, &args)?;
        let id = format!("call_{}", self.next_call);
        self.next_call += 1;
        self.messages.push(json!({"role": "assistant", "content": "", "tool_calls": [{
            "id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}));
        self.messages.push(json!({"role": "tool", "tool_call_id": id, "name": name, "content": result.to_string()}));
        Ok(result)
    }

    /// An optional greeting exchange (about one conversation in six), only at the start.
    pub fn maybe_greet(&mut self) {
        if self.messages.len() == 1 && self.rng.random_bool(0.16) {
            let hi = self.pick(&["Chào shop", "Shop ơi", "Alo shop ơi", "Em chào shop ạ", "Hello shop", "Xin chào"]);
            self.user(hi);
            let reply = self.pick(&[
                "Dạ StyleVN xin chào {kh}, em có thể giúp gì cho {kh} ạ?",
                "Dạ em chào {kh} ạ! {Kh} cần em hỗ trợ gì ạ?",
                "Dạ StyleVN nghe đây ạ, {kh} cần em tư vấn gì ạ?",
            ]);
            self.say(reply);
        }
    }

    /// An optional thanks exchange at the end (about one conversation in five).
    pub fn maybe_thank(&mut self) {
        if !self.more_to_come && self.rng.random_bool(0.2) {
            let thanks =
                self.pick(&["Cảm ơn shop", "ok cảm ơn em nhé", "Vâng, cảm ơn bạn", "oke thanks shop", "Dạ em cảm ơn"]);
            self.user(thanks);
            let reply = self.pick(&[
                "Dạ không có gì ạ. Cảm ơn {kh} đã tin tưởng StyleVN!",
                "Dạ em cảm ơn {kh} ạ, chúc {kh} một ngày vui vẻ!",
                "Dạ vâng ạ, {kh} cần gì thêm cứ nhắn em nhé!",
            ]);
            self.say(reply);
        }
    }

    /// The finished messages.
    pub fn finish(self) -> Vec<Value> {
        self.messages
    }
}
