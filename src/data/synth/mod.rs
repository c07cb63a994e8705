//! Synthetic chat data from the store (`stylevn synth`).
//!
//! Output, one JSON object a line (OpenAI chat format, read by `stylevn template`):
//! ```json
//! {"messages": [{"role": "system", ...}, {"role": "user", ...},
//!   {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function",
//!     "function": {"name": "get_order_status", "arguments": "{\"order_id\":...}"}}]},
//!   {"role": "tool", "tool_call_id": "call_0", "name": "get_order_status", "content": "{...}"},
//!   {"role": "assistant", "content": "Dạ đơn ..."}],
//!  "tools": [...the schemas of data::tools...], "intent": "order_status"}
//! ```
//! Offline generation ([`generate_offline`]) fills phrasing templates with store
//! entities and runs every tool call against the database, so each tool result is
//! the database's answer and each answer restates it. The same seed gives the same
//! file. Exact and near duplicates (MinHash, [`crate::data::dedup`]) are dropped.

mod catalog;
pub mod config;
pub mod convo;
pub mod holdout;
pub mod import;
mod orders;
mod passage_answers;
mod policy;
mod refusals;
pub mod teacher;

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::dedup::{Deduper, Verdict};
use super::store::Store;
use super::tools::ToolBox;
use crate::{Error, Result};
pub use config::SynthConfig;
use convo::Convo;
pub use holdout::Holdout;

/// What a conversation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Intent {
    /// Order status, id and phone given at once (`get_order_status`).
    OrderStatus,
    /// Order status from the id alone, then maybe the details (multi-turn).
    OrderIdOnly,
    /// An order lookup that finds nothing.
    OrderNotFound,
    /// Stock of a SKU, size and colour (`get_stock`), with alternatives when sold out.
    Stock,
    /// The price of a SKU (`get_stock`).
    Price,
    /// Product search (`search_products`).
    ProductSearch,
    /// Promotions (`get_promotions`).
    Promotions,
    /// Size advice from height and weight (`get_size_chart`).
    SizeAdvice,
    /// A policy question (`get_policy`).
    Policy,
    /// A product question answered from the catalog passages retrieved before it (no tool).
    ProductFromContext,
    /// A policy question answered from the policy passages retrieved before it (no tool).
    PolicyFromContext,
    /// Two requests in one conversation.
    MultiTurn,
    /// Refusal: politics, medicine, other shops, anything outside the store.
    RefuseOutOfScope,
    /// Refusal: another customer's data.
    RefusePrivacy,
    /// Refusal: a prompt injection.
    RefuseInjection,
    /// "Em chưa có thông tin...": the store's data has no answer.
    NoInfo,
}

/// Every intent with its weight in the offline mix (its share is weight / sum of weights).
pub const INTENT_WEIGHTS: [(Intent, u32); 16] = [
    (Intent::OrderStatus, 9),
    (Intent::OrderIdOnly, 12),
    (Intent::OrderNotFound, 4),
    (Intent::Stock, 12),
    (Intent::Price, 5),
    (Intent::ProductSearch, 7),
    (Intent::Promotions, 8),
    (Intent::SizeAdvice, 9),
    (Intent::Policy, 11),
    (Intent::ProductFromContext, 5),
    (Intent::PolicyFromContext, 4),
    (Intent::MultiTurn, 7),
    (Intent::RefuseOutOfScope, 5),
    (Intent::RefusePrivacy, 3),
    (Intent::RefuseInjection, 4),
    (Intent::NoInfo, 4),
];

impl Intent {
    /// The name written in the output's `intent` field.
    pub fn name(self) -> &'static str {
        match self {
            Intent::OrderStatus => "order_status",
            Intent::OrderIdOnly => "order_id_only",
            Intent::OrderNotFound => "order_not_found",
            Intent::Stock => "stock",
            Intent::Price => "price",
            Intent::ProductSearch => "product_search",
            Intent::Promotions => "promotions",
            Intent::SizeAdvice => "size_advice",
            Intent::Policy => "policy",
            Intent::ProductFromContext => "product_context",
            Intent::PolicyFromContext => "policy_context",
            Intent::MultiTurn => "multi_turn",
            Intent::RefuseOutOfScope => "refuse_out_of_scope",
            Intent::RefusePrivacy => "refuse_privacy",
            Intent::RefuseInjection => "refuse_injection",
            Intent::NoInfo => "no_info",
        }
    }

    /// The intent named `name`.
    pub fn from_name(name: &str) -> Option<Intent> {
        INTENT_WEIGHTS.iter().map(|(i, _)| *i).find(|i| i.name() == name)
    }

    /// Whether this is a refusal.
    pub fn is_refusal(self) -> bool {
        matches!(self, Intent::RefuseOutOfScope | Intent::RefusePrivacy | Intent::RefuseInjection)
    }
}

type Builder = fn(&mut Convo, &Store) -> Result<()>;

fn builder(intent: Intent) -> Builder {
    match intent {
        Intent::OrderStatus => orders::order_status,
        Intent::OrderIdOnly => orders::order_id_only,
        Intent::OrderNotFound => orders::order_not_found,
        Intent::Stock => catalog::stock,
        Intent::Price => catalog::price,
        Intent::ProductSearch => catalog::search,
        Intent::Promotions => policy::promotions,
        Intent::SizeAdvice => catalog::size_advice,
        Intent::Policy => policy::policy,
        Intent::ProductFromContext => passage_answers::product,
        Intent::PolicyFromContext => passage_answers::policy,
        Intent::RefuseOutOfScope => refusals::out_of_scope,
        Intent::RefusePrivacy => refusals::privacy,
        Intent::RefuseInjection => refusals::injection,
        Intent::NoInfo => refusals::no_info,
        Intent::MultiTurn => multi_turn,
    }
}

/// Two requests in a row, e.g. an order status then the return policy.
fn multi_turn(c: &mut Convo, store: &Store) -> Result<()> {
    // Pairs whose tool results stay well inside a 2,048-token training row (policy
    // texts and promotion lists are long enough on their own).
    const PAIRS: [(Builder, Builder); 6] = [
        (orders::order_status, catalog::price),
        (catalog::stock, catalog::size_advice),
        (catalog::size_advice, catalog::stock),
        (catalog::search, catalog::size_advice),
        (catalog::price, catalog::stock),
        (orders::order_id_only, catalog::search),
    ];
    let (first, second) = PAIRS[c.rng.random_range(0..PAIRS.len())];
    c.more_to_come = true;
    first(c, store)?;
    c.more_to_come = false;
    second(c, store)
}

/// One generated conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// What it is about.
    pub intent: Intent,
    /// OpenAI chat messages, system prompt first.
    pub messages: Vec<Value>,
}

impl Example {
    /// The JSONL row: messages, the store's tool `schemas` ([`ToolBox::schemas`]), and
    /// the intent.
    pub fn to_json(&self, schemas: &[Value]) -> Value {
        json!({"messages": self.messages, "tools": schemas, "intent": self.intent.name()})
    }

    /// Whether any assistant turn calls a tool.
    pub fn has_tool_call(&self) -> bool {
        self.messages.iter().any(|m| m.get("tool_calls").is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty())))
    }

    /// The text deduplication looks at: the customer and assistant turns.
    pub fn dedup_text(&self) -> String {
        dialogue_text(&self.messages)
    }
}

/// Customer and assistant contents of a conversation, one per line.
pub fn dialogue_text(messages: &[Value]) -> String {
    messages
        .iter()
        .filter(|m| matches!(m["role"].as_str(), Some("user" | "assistant")))
        .filter_map(|m| m["content"].as_str())
        .map(|t| crate::data::passages::split_context(t).1)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Counts of a synth run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SynthSummary {
    /// Conversations written.
    pub written: usize,
    /// Conversations per intent name.
    pub per_intent: BTreeMap<String, usize>,
    /// Conversations with at least one tool call.
    pub with_tool_calls: usize,
    /// Refusals.
    pub refusals: usize,
    /// Dropped as exact duplicates.
    pub exact_duplicates: usize,
    /// Dropped as near duplicates.
    pub near_duplicates: usize,
    /// Rejected, by reason (teacher mode and imports).
    pub rejected: BTreeMap<String, usize>,
}

impl SynthSummary {
    /// Counts an accepted example.
    pub fn count(&mut self, intent: &str, tool_call: bool, refusal: bool) {
        self.written += 1;
        *self.per_intent.entry(intent.to_string()).or_default() += 1;
        self.with_tool_calls += tool_call as usize;
        self.refusals += refusal as usize;
    }

    /// Counts a rejection.
    pub fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_default() += 1;
    }
}

/// Options of offline generation.
#[derive(Debug, Clone, Copy)]
pub struct OfflineOptions {
    /// Distinct conversations to produce.
    pub n: usize,
    /// Random seed.
    pub seed: u64,
    /// Estimated Jaccard at or above which two conversations are near duplicates.
    pub near_dup_threshold: f64,
}

/// Generates `opts.n` distinct conversations from the store; `progress` receives
/// the number accepted so far. Fails if the templates cannot give `n` distinct ones.
pub fn generate_offline(
    tools: &ToolBox,
    store: &Store,
    opts: OfflineOptions,
    progress: impl FnMut(usize),
) -> Result<(Vec<Example>, SynthSummary)> {
    generate_offline_excluding(tools, store, opts, &Holdout::default(), progress)
}

/// [`generate_offline`], rejecting (and counting as `golden_holdout`) every
/// conversation that contains a `holdout` question.
pub fn generate_offline_excluding(
    tools: &ToolBox,
    store: &Store,
    opts: OfflineOptions,
    holdout: &Holdout,
    mut progress: impl FnMut(usize),
) -> Result<(Vec<Example>, SynthSummary)> {
    if store.orders.is_empty() || store.products.is_empty() || store.promotions.is_empty() {
        return Err(Error::msg(
            "the store has no orders, products or promotions; run `stylevn db init` on data/ first",
        ));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let total_weight: u32 = INTENT_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut dedup = Deduper::new(opts.near_dup_threshold);
    let mut summary = SynthSummary::default();
    let mut out = Vec::with_capacity(opts.n);
    let max_attempts = opts.n * 20 + 1000;
    let mut attempts = 0;
    while out.len() < opts.n {
        attempts += 1;
        if attempts > max_attempts {
            return Err(Error::msg(format!(
                "only {} distinct conversations after {max_attempts} attempts; ask for fewer (--n) or raise the near-duplicate threshold",
                out.len()
            )));
        }
        // Cycle through the intents in proportion to their weights, so small runs cover every intent.
        let mut slot = ((attempts - 1) as u32 * 37) % total_weight;
        let intent = INTENT_WEIGHTS
            .iter()
            .find(|(_, w)| {
                if slot < *w {
                    true
                } else {
                    slot -= w;
                    false
                }
            })
            .map(|(i, _)| *i)
            .expect("weights cover every slot");
        let mut conv = Convo::new(&mut rng, tools);
        builder(intent)(&mut conv, store)?;
        let example = Example { intent, messages: conv.finish() };
        if holdout.hits(&example.messages) {
            summary.reject("golden_holdout");
            continue;
        }
        match dedup.insert(&example.dedup_text()) {
            Verdict::Exact => summary.exact_duplicates += 1,
            Verdict::Near => summary.near_duplicates += 1,
            Verdict::New => {
                summary.count(intent.name(), example.has_tool_call(), intent.is_refusal());
                out.push(example);
                progress(out.len());
            }
        }
    }
    Ok((out, summary))
}

/// Writes rows as JSONL, atomically.
pub fn write_jsonl(path: &Path, rows: impl IntoIterator<Item = Value>) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.to_string());
        text.push('\n');
    }
    crate::atomic::write_atomic(path, text.as_bytes())
}
