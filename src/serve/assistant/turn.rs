//! One assistant turn, end to end:
//!
//! 1. input checks ([`check_input`]) answer refusals without the model;
//! 2. a cacheable turn (first question, no order id or phone) is looked up in the
//!    answer cache;
//! 3. retrieval adds catalog and policy chunks before the customer's question ([`crate::data::passages`]);
//! 4. deterministic routing ([`Router::route`]) runs the tools an unambiguous turn
//!    needs (an order id or SKU of the store, or an id shaped like the shop's order
//!    ids; a size question with measurements, promotions, a policy) before the model
//!    sees it; an order the store does not have is answered `order_not_found`;
//! 5. the tool loop: the model calls tools, we run them and feed the results, up to
//!    `max_tool_rounds` model calls (the last one is offered no tools);
//! 6. the grounding verifier checks the answer against this turn's evidence (tool
//!    results, retrieved context, system prompt, store facts); a failing answer goes
//!    to the fallback model (rate-capped);
//! 7. an answer that leaves out a fact of a routed result, or no passing answer at
//!    all, is replaced by the answer written from the routed results
//!    ([`facts::facts`]), verified like any other; with nothing routed, a failed
//!    turn ends in the safe reply;
//! 8. the answer is cached when it depends on no live data, and the exchange is logged.
//!
//! Conversation history from the client keeps only user and assistant text: a
//! client cannot smuggle in a system prompt or forged tool results as evidence.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::backend::{ChatRequest, Sampling, ServedModel};
use super::config::{AssistantConfig, IdsConfig};
use super::facts::{facts, Facts};
use super::metrics::{inc, Metrics};
use super::retrieval::Retriever;
use super::routing::{self, Router};
use crate::conversation::{Evidence, Message, Role, Source};
use crate::data::exchange_log::{Exchange, ExchangeLog};
use crate::data::passages::add_to_last_question;
use crate::serve::cache::{scope, AnswerCache, CacheHit};
use crate::serve::chat::Usage;
use crate::serve::client_limits::ClientLimits;
use crate::serve::guardrails::{check_input, verify, InputLimits, Rejection, Verdict};
use crate::serve::tools::ToolBackend;
use crate::{Error, Result};

/// Tools whose results are the same for every customer and change only with the
/// policies: answers using nothing else may be cached.
const CACHEABLE_TOOLS: [&str; 1] = ["get_policy"];

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The local model's answer passed the verifier.
    Answered,
    /// The fallback model's answer passed the verifier.
    Fallback,
    /// Served from the answer cache.
    Cached,
    /// Written from the routed tool results: the model's answer left out their
    /// facts, or no answer passed the verifier.
    Composed,
    /// Refused by the input checks.
    Refused(Rejection),
    /// No answer passed the verifier: the safe reply was delivered.
    SafeReply,
}

impl Outcome {
    /// The name logged.
    pub fn name(self) -> String {
        match self {
            Outcome::Answered => "answered".into(),
            Outcome::Fallback => "fallback".into(),
            Outcome::Cached => "cached".into(),
            Outcome::Composed => "composed".into(),
            Outcome::Refused(r) => format!("refused:{}", r.name()),
            Outcome::SafeReply => "safe_reply".into(),
        }
    }
}

/// One customer turn to answer.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The conversation so far, ending with the customer's turn.
    pub messages: Vec<Message>,
    /// The end user's id on the channel, when known.
    pub user: Option<String>,
    /// The client's rate-limit key ([`ClientLimits`]): its fallback calls are capped
    /// per day. `None`: a trusted caller, not capped per client.
    pub client: Option<String>,
    /// `api`, `web` or `zalo`.
    pub channel: String,
    /// Sampling; the config's when `None`.
    pub sampling: Option<Sampling>,
}

/// One tool run during a turn.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRun {
    /// Tool name.
    pub name: String,
    /// Arguments.
    pub arguments: Value,
    /// Result.
    pub result: Value,
    /// Run by deterministic routing rather than asked for by the model.
    pub routed: bool,
}

/// The delivered answer.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// Response id (`chatcmpl-...`).
    pub id: String,
    /// The text delivered to the customer.
    pub content: String,
    /// How the turn ended.
    pub outcome: Outcome,
    /// Tools run, in order.
    pub tools: Vec<ToolRun>,
    /// Guardrail events.
    pub events: Vec<String>,
    /// Tokens of every model call of the turn (tool rounds and fallback included).
    pub usage: Usage,
}

/// What [`Assistant::new`] is built from.
pub struct AssistantParts {
    /// The local model.
    pub backend: ServedModel,
    /// The stronger model asked when the local answer fails the guardrails.
    pub fallback: Option<ServedModel>,
    /// The tools.
    pub tools: Arc<dyn ToolBackend>,
    /// Catalog and policy retrieval.
    pub retriever: Option<Arc<Retriever>>,
    /// Answer cache.
    pub cache: Option<AnswerCache>,
    /// Exchange log.
    pub log: Option<Arc<ExchangeLog>>,
    /// The policy files (`data/policies`): a change invalidates cached answers.
    pub policies_dir: Option<PathBuf>,
}

/// The store assistant.
pub struct Assistant {
    config: AssistantConfig,
    router: Router,
    parts: AssistantParts,
    fallback_window: Mutex<VecDeque<Instant>>,
    metrics: Arc<Metrics>,
    limits: Option<Arc<ClientLimits>>,
}

/// Result of one backend's attempt at the tool loop.
struct Attempt {
    content: String,
    messages: Vec<Value>,
}

/// A fresh response id.
pub fn response_id() -> String {
    format!("chatcmpl-{:032x}", rand::random::<u128>())
}

/// A client's OpenAI message as a [`Message`], read leniently: `content` a string or a
/// list of `{"type": "text"}` parts (joined by newlines); `None` for a role that is not
/// OpenAI's. Only the role and the text are kept.
pub fn client_message(m: &Value) -> Option<Message> {
    let role: Role = serde_json::from_value(m.get("role")?.clone()).ok()?;
    let content = match m.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        }
        _ => None,
    };
    Some(Message { role, content, tool_calls: Vec::new(), tool_call_id: None, name: None })
}

/// The routed calls as the conversation shows them: one assistant message calling
/// them all, then their results.
fn routed_messages(routed: &[ToolRun]) -> Vec<Value> {
    if routed.is_empty() {
        return Vec::new();
    }
    let calls: Vec<Value> = routed
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": format!("call_routed_{i}"), "type": "function",
                "function": {"name": t.name, "arguments": t.arguments.to_string()}})
        })
        .collect();
    let mut out = vec![json!({"role": "assistant", "content": null, "tool_calls": calls})];
    for (i, t) in routed.iter().enumerate() {
        out.push(json!({"role": "tool", "tool_call_id": format!("call_routed_{i}"), "content": t.result.to_string()}));
    }
    out
}

/// The answer written from the routed results ([`facts`]; an order the store does
/// not have, the config's `order_not_found`), when each has one and together they
/// pass the verifier.
fn written_answer(routed: &[ToolRun], question: &str, evidence: &[Evidence], ids: &IdsConfig) -> Option<Facts> {
    if routed.is_empty() {
        return None;
    }
    let written_one = |t: &ToolRun| {
        if t.name == "get_order_status" && t.result["found"] == json!(false) {
            return Some(Facts { text: ids.order_not_found.clone(), required: vec![ids.not_found_wordings.clone()] });
        }
        facts(&t.name, &t.result, question)
    };
    let parts = routed.iter().map(written_one).collect::<Option<Vec<_>>>()?;
    let text = parts.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join("\n");
    let written = Facts { text, required: parts.into_iter().flat_map(|f| f.required).collect() };
    let verdict = verify(&written.text, evidence);
    if !verdict.grounded() {
        tracing::warn!(ungrounded = ?verdict.ungrounded, "an answer written from tool results failed the verifier");
        return None;
    }
    Some(written)
}

/// The client's conversation reduced to user and assistant text.
fn clean_history(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .filter_map(|m| {
            let text = m.content.as_deref().filter(|t| !t.trim().is_empty())?;
            matches!(m.role, Role::User | Role::Assistant).then(|| Message::new(m.role, text).to_openai())
        })
        .collect()
}

impl Assistant {
    /// An assistant with `config` over `parts`; turns are routed by the ids of the
    /// tools' store ([`ToolBackend::store_ids`]) and the config's id patterns.
    pub fn new(config: AssistantConfig, parts: AssistantParts) -> Self {
        let ids = parts.tools.store_ids().unwrap_or_default();
        Assistant {
            router: Router::new(ids, config.ids.order_id_patterns.clone()),
            config,
            parts,
            fallback_window: Mutex::new(VecDeque::new()),
            metrics: Arc::new(Metrics::default()),
            limits: None,
        }
    }

    /// The same assistant with per-client limits (its routes admit requests by them,
    /// and a turn's fallback calls are capped per client and day).
    pub fn with_client_limits(mut self, limits: Arc<ClientLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The per-client limits, when set.
    pub fn client_limits(&self) -> Option<&Arc<ClientLimits>> {
        self.limits.as_ref()
    }

    /// The settings.
    pub fn config(&self) -> &AssistantConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The exchange log, when one is kept.
    pub fn log(&self) -> Option<&Arc<ExchangeLog>> {
        self.parts.log.as_ref()
    }

    /// Whether the rate caps let one more fallback call through now (and count it):
    /// the global per-minute window, then `client`'s daily cap.
    fn fallback_allowed(&self, client: Option<&str>) -> bool {
        let Ok(mut w) = self.fallback_window.lock() else { return false };
        let now = Instant::now();
        while w.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
            w.pop_front();
        }
        if w.len() >= self.config.fallback_per_minute {
            return false;
        }
        if let (Some(limits), Some(client)) = (&self.limits, client) {
            if !limits.allow_fallback(client) {
                return false;
            }
        }
        w.push_back(now);
        true
    }

    /// The cache scope now: prompt version, index generation, policy files.
    fn cache_scope(&self) -> Result<String> {
        let generation = match &self.parts.retriever {
            Some(r) => r.generation()?,
            None => String::new(),
        };
        let mut policies = String::new();
        if let Some(dir) = &self.parts.policies_dir {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
                policies.push_str(&scope(&[&f.to_string_lossy(), &text]));
            }
        }
        Ok(scope(&[&self.config.prompt_version, &generation, &policies]))
    }

    /// Answers one customer turn. Errors only for broken infrastructure (cache,
    /// log, retrieval); a failing model ends in the fallback or the safe reply.
    pub async fn respond(&self, turn: Turn) -> Result<Reply> {
        inc(&self.metrics.requests);
        let id = response_id();
        let history = clean_history(&turn.messages);
        let question = turn.messages.iter().rev().find(|m| m.role == Role::User).and_then(|m| m.content.clone());
        let question = question.unwrap_or_default();
        let mut reply = Reply {
            id,
            content: String::new(),
            outcome: Outcome::Answered,
            tools: Vec::new(),
            events: Vec::new(),
            usage: Usage::default(),
        };

        let limits = InputLimits { max_chars: self.config.max_input_chars };
        if let Some(why) = check_input(&question, limits) {
            self.metrics.refused(why);
            reply.content = self.config.refusal(why).to_string();
            reply.outcome = Outcome::Refused(why);
            self.record(&turn, &history, &reply, None)?;
            return Ok(reply);
        }

        let first_question = history.iter().filter(|m| m["role"] == "user").count() == 1;
        let personal = self.router.order_id(&question).is_some() || routing::phone_hint(&question).is_some();
        let cache = self.parts.cache.as_ref().filter(|_| first_question && !personal);
        let mut cache_key = None;
        if let Some(cache) = cache {
            let scope = self.cache_scope()?;
            let embedding = self.embed(&question).await?;
            match cache.get(&scope, &question, embedding.as_deref())? {
                Some((answer, hit)) => {
                    inc(if hit == CacheHit::Exact {
                        &self.metrics.cache_hits_exact
                    } else {
                        &self.metrics.cache_hits_semantic
                    });
                    reply.content = answer;
                    reply.outcome = Outcome::Cached;
                    self.record(&turn, &history, &reply, None)?;
                    return Ok(reply);
                }
                None => inc(&self.metrics.cache_misses),
            }
            cache_key = Some((scope, embedding));
        }

        let passages = self.retrieve(&question).await?;
        let mut evidence = vec![
            Evidence::new(Source::SystemPrompt, self.config.system_prompt.clone()),
            Evidence::new(Source::SystemPrompt, format!("Hotline: {}", self.config.hotline)),
        ];
        evidence.extend(passages.iter().map(|p| Evidence::new(Source::Retrieved, p.clone())));
        let mut messages = vec![json!({"role": "system", "content": self.config.system_prompt})];
        messages.extend(history.iter().cloned());
        add_to_last_question(&mut messages, &self.config.context_heading, &passages);

        let mut routed = Vec::new();
        for call in self.router.route(&question) {
            let mut arguments = call.arguments;
            let mut result = self.run_tool(call.name, &arguments).await;
            if call.name == "get_stock" {
                if result["found"] == json!(false) {
                    continue; // a word shaped like a SKU; the model may still look it up
                }
                if let Some(color) = routing::narrow_color(&question, &result) {
                    arguments["color"] = json!(color);
                    result = self.run_tool(call.name, &arguments).await;
                }
            }
            inc(&self.metrics.routed_calls);
            routed.push(ToolRun { name: call.name.into(), arguments, result, routed: true });
        }
        let routed_turn = routed_messages(&routed);
        messages.extend(routed_turn.iter().cloned());
        evidence.extend(routed.iter().map(|t| Evidence::new(Source::ToolResult, t.result.to_string())));
        let written = written_answer(&routed, &question, &evidence, &self.config.ids);
        reply.tools.extend(routed);

        let sampling = turn.sampling.unwrap_or(Sampling {
            temperature: self.config.temperature,
            top_p: None,
            max_tokens: self.config.max_tokens,
            seed: None,
        });
        let mut error = None;
        let primary = self.parts.backend.clone();
        let mut delivered = self
            .attempt(&primary, messages.clone(), evidence.clone(), sampling, &mut reply, &mut error)
            .await
            .map(|a| (a, Outcome::Answered));
        if delivered.is_none() {
            if let Some(fallback) = self.parts.fallback.clone() {
                if self.fallback_allowed(turn.client.as_deref()) {
                    delivered = self
                        .attempt(&fallback, messages, evidence, sampling, &mut reply, &mut error)
                        .await
                        .map(|a| (a, Outcome::Fallback));
                    if delivered.is_some() {
                        inc(&self.metrics.fallback_used);
                    }
                } else {
                    inc(&self.metrics.fallback_capped);
                    reply.events.push("fallback_capped".into());
                }
            }
        }
        if let (Some((a, _)), Some(w)) = (&delivered, &written) {
            if !w.stated_in(&a.content) {
                reply.events.push(format!("incomplete: the answer left out {}", w.named().join(", ")));
                delivered = None;
            }
        }
        let final_messages = match (delivered, written) {
            (Some((a, outcome)), _) => {
                reply.content = a.content;
                reply.outcome = outcome;
                a.messages
            }
            (None, Some(w)) => {
                inc(&self.metrics.composed_answers);
                reply.content = w.text;
                reply.outcome = Outcome::Composed;
                let mut m = history.clone();
                m.extend(routed_turn);
                m.push(json!({"role": "assistant", "content": reply.content}));
                m
            }
            (None, None) => {
                inc(&self.metrics.safe_replies);
                reply.content = self.config.safe_reply_for(reply.tools.first().map(|t| t.name.as_str()));
                reply.outcome = Outcome::SafeReply;
                let mut m = history.clone();
                m.push(json!({"role": "assistant", "content": reply.content}));
                m
            }
        };

        let live = reply.tools.iter().any(|t| !CACHEABLE_TOOLS.contains(&t.name.as_str()));
        if let (Some(cache), Some((scope, embedding))) = (cache, cache_key) {
            if reply.outcome != Outcome::SafeReply && !live {
                cache.put(&scope, &question, embedding.as_deref(), &reply.content)?;
            }
        }
        let logged: Vec<Value> = final_messages.into_iter().filter(|m| m["role"] != "system").collect();
        self.record(&turn, &logged, &reply, error)?;
        Ok(reply)
    }

    /// One backend's tool loop and verification; `None` when it failed (counted,
    /// with the reason in `reply.events` or `error`).
    async fn attempt(
        &self,
        backend: &ServedModel,
        mut messages: Vec<Value>,
        mut evidence: Vec<Evidence>,
        sampling: Sampling,
        reply: &mut Reply,
        error: &mut Option<String>,
    ) -> Option<Attempt> {
        let rounds = self.config.max_tool_rounds.max(1);
        for round in 0..rounds {
            let last = round + 1 == rounds;
            let tools = if last { Vec::new() } else { self.parts.tools.schemas().to_vec() };
            let request = ChatRequest { messages: messages.clone(), tools, sampling };
            let m = match backend.chat(&request).await {
                Ok(m) => {
                    reply.usage += m.usage;
                    m
                }
                Err(e) => {
                    inc(&self.metrics.backend_errors);
                    reply.events.push(format!("backend_error: {}", backend.name()));
                    *error = Some(e.to_string());
                    return None;
                }
            };
            if m.tool_calls.is_empty() || last {
                let content = m.content.unwrap_or_default().trim().to_string();
                messages.push(json!({"role": "assistant", "content": content}));
                let verdict = if content.is_empty() {
                    Verdict { facts: 0, ungrounded: vec!["(no answer)".into()] }
                } else {
                    verify(&content, &evidence)
                };
                if !verdict.grounded() {
                    inc(&self.metrics.grounding_failures);
                    reply.events.push(format!("ungrounded ({}): {}", backend.name(), verdict.ungrounded.join(", ")));
                    return None;
                }
                return Some(Attempt { content, messages });
            }
            messages.push(m.to_openai());
            for call in &m.tool_calls {
                let result = self.run_tool(&call.name, &call.arguments).await;
                evidence.push(Evidence::new(Source::ToolResult, result.to_string()));
                messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": result.to_string()}));
                reply.tools.push(ToolRun {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    result,
                    routed: false,
                });
            }
        }
        None
    }

    /// Runs a tool; failures become an `{"error": ..}` result the model sees.
    async fn run_tool(&self, name: &str, args: &Value) -> Value {
        inc(&self.metrics.tool_calls);
        match self.parts.tools.call(name, args).await {
            Ok(v) => v,
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    /// Retrieved chunk texts for `question` (none without a retriever).
    async fn retrieve(&self, question: &str) -> Result<Vec<String>> {
        let Some(r) = self.parts.retriever.clone() else { return Ok(Vec::new()) };
        let q = question.to_string();
        let hits = tokio::task::spawn_blocking(move || r.search(&q))
            .await
            .map_err(|e| Error::msg(format!("retrieval task: {e}")))??;
        Ok(hits.into_iter().map(|h| h.doc.text).collect())
    }

    /// The question's embedding for the semantic cache, when the retriever has an encoder.
    async fn embed(&self, question: &str) -> Result<Option<Vec<f32>>> {
        let Some(r) = self.parts.retriever.clone() else { return Ok(None) };
        let q = question.to_string();
        tokio::task::spawn_blocking(move || r.embed(&q).transpose())
            .await
            .map_err(|e| Error::msg(format!("embedding task: {e}")))?
    }

    fn record(&self, turn: &Turn, messages: &[Value], reply: &Reply, error: Option<String>) -> Result<()> {
        let Some(log) = &self.parts.log else { return Ok(()) };
        let mut messages = messages.to_vec();
        if messages.last().is_none_or(|m| m["role"] != "assistant") {
            messages.push(json!({"role": "assistant", "content": reply.content}));
        }
        log.record(&Exchange {
            id: reply.id.clone(),
            channel: turn.channel.clone(),
            user: turn.user.clone(),
            messages,
            outcome: reply.outcome.name(),
            events: reply.events.clone(),
            error,
        })
    }
}
