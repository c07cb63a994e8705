//! Runs a golden set against an endpoint: sends every case (at a fixed concurrency or
//! as Poisson arrivals), times the stream, judges the answer, and scores it.
//! [`score_case`] is the pure part: one case and its reply in, one [`CaseResult`] out.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::conversation::facts::states_fact;
use crate::conversation::{check, EvidencePolicy, Grounding, ToolCall};
use crate::data::passages::add_to_last_question;

use super::checks::{is_refusal, tool_call_matches};
use super::chrf::chrf;
use super::client::{ChatClient, StreamedReply};
use super::faithfulness::{Faithfulness, Judge};
use super::golden::GoldenCase;
use super::latency::{poisson_offsets, LoadShape, RequestTiming};
use super::rouge::{rouge, RougeScores};

/// How the cases are sent.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Concurrency or Poisson rate.
    pub load: LoadShape,
    /// `max_tokens` of every request.
    pub max_tokens: u32,
    /// Sampling temperature of every request.
    pub temperature: f64,
    /// Request seed, and the seed of Poisson arrivals.
    pub seed: u64,
    /// A system prompt to put first when a case has none.
    pub system_prompt: Option<String>,
    /// OpenAI `tools` offered on every request.
    pub tools: Option<Value>,
    /// When set, a case's contexts go into its last user turn under this heading, as
    /// `serve` adds what its retrieval finds ([`crate::data::passages`]); for models
    /// served without retrieval.
    pub context_heading: Option<String>,
    /// Phrases that mark a refusal.
    pub refusal_markers: Vec<String>,
}

/// Everything measured about one case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case id.
    pub id: String,
    /// The case intent.
    pub intent: String,
    /// The case tags.
    pub tags: Vec<String>,
    /// The customer's last message.
    pub question: String,
    /// The model's text answer.
    pub answer: String,
    /// The reference answer.
    pub reference: String,
    /// The model's tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// The request's error, when it failed (nothing else is then scored).
    pub error: Option<String>,
    /// Stream timings.
    pub timing: Option<RequestTiming>,
    /// ROUGE against the reference (text answers).
    pub rouge: Option<RougeScores>,
    /// chrF against the reference (text answers).
    pub chrf: Option<f64>,
    /// Deterministic grounding of the answer's facts (text answers).
    pub grounding: Option<Grounding>,
    /// The judge's verdicts (text answers with contexts, when a judge is set).
    pub faithfulness: Option<Faithfulness>,
    /// Any unsupported fact: a forbidden fact, an ungrounded fact, or a statement the
    /// judge rejected. `None` when not applicable (failed request, tool turn).
    pub hallucinated: Option<bool>,
    /// Whether the answer refuses.
    pub refused: bool,
    /// Whether it had to.
    pub must_refuse: bool,
    /// Whether the expected tool call was made (tool turns only).
    pub tool_correct: Option<bool>,
    /// Whether a call named the expected tool, whatever its arguments (tool turns only).
    #[serde(default)]
    pub tool_name_correct: Option<bool>,
    /// A tool was called where a text answer was expected.
    pub spurious_tool_call: bool,
    /// Share of `must_include` facts stated (when there are any).
    pub must_include: Option<f64>,
    /// The `must_include` facts not stated.
    pub missing: Vec<String>,
    /// The `must_not_include` facts stated.
    pub forbidden: Vec<String>,
}

/// Scores one case from its reply (or request error) and judge outcome.
pub fn score_case(
    case: &GoldenCase,
    reply: std::result::Result<&StreamedReply, &str>,
    faithfulness: Option<Faithfulness>,
    refusal_markers: &[String],
) -> CaseResult {
    let mut r = CaseResult {
        id: case.id.clone(),
        intent: case.intent.clone(),
        tags: case.tags.clone(),
        question: case.question(),
        reference: case.reference.clone(),
        must_refuse: case.must_refuse,
        ..Default::default()
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.answer = reply.content.trim().to_string();
    r.tool_calls = reply.tool_calls.clone();
    r.timing = Some(reply.timing.clone());
    r.refused = is_refusal(&r.answer, refusal_markers);
    if let Some(expected) = &case.expected_tool {
        r.tool_correct = Some(reply.tool_calls.iter().any(|c| tool_call_matches(expected, c)));
        r.tool_name_correct = Some(reply.tool_calls.iter().any(|c| c.name == expected.name));
        return r;
    }
    r.spurious_tool_call = !reply.tool_calls.is_empty();
    if !case.reference.trim().is_empty() {
        r.rouge = Some(rouge(&r.answer, &case.reference));
        r.chrf = Some(chrf(&r.answer, &case.reference));
    }
    let g = check(&r.answer, &case.evidence(), &EvidencePolicy::EVAL_METRIC);
    if !case.must_include.is_empty() {
        r.missing = case.must_include.iter().filter(|f| !states_fact(&r.answer, f)).cloned().collect();
        r.must_include = Some(1.0 - r.missing.len() as f64 / case.must_include.len() as f64);
    }
    r.forbidden = case.must_not_include.iter().filter(|f| states_fact(&r.answer, f)).cloned().collect();
    let judged_unsupported = faithfulness.as_ref().is_some_and(Faithfulness::has_unsupported);
    r.hallucinated = Some(!r.forbidden.is_empty() || !g.ungrounded.is_empty() || judged_unsupported);
    r.grounding = Some(g);
    r.faithfulness = faithfulness;
    r
}

/// Whether a case's answer goes to the judge: a text turn with contexts that is not a
/// required refusal.
pub fn needs_judge(case: &GoldenCase) -> bool {
    case.expected_tool.is_none() && !case.must_refuse && !case.judge_contexts().is_empty()
}

/// The request body for a case (without `model` and `stream`).
pub fn request_body(case: &GoldenCase, options: &RunOptions) -> Value {
    let mut messages = case.messages.clone();
    if let Some(system) = options.system_prompt.as_deref().filter(|s| !s.trim().is_empty()) {
        if messages.first().is_none_or(|m| m["role"] != "system") {
            messages.insert(0, json!({"role": "system", "content": system}));
        }
    }
    if let Some(heading) = options.context_heading.as_deref() {
        add_to_last_question(&mut messages, heading, &case.contexts);
    }
    let mut body = json!({
        "messages": messages,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "seed": options.seed,
    });
    if let Some(tools) = &options.tools {
        body["tools"] = tools.clone();
    }
    body
}

/// The results of a run, in the set's order.
pub struct RunOutput {
    /// One per case.
    pub results: Vec<CaseResult>,
    /// From the first send to the end of the last stream, seconds (judging excluded).
    pub duration_s: f64,
}

/// Runs every case. `on_done` is called as each case finishes (for progress bars).
pub async fn run_cases(
    client: Arc<ChatClient>,
    judge: Option<Arc<Judge>>,
    cases: Vec<GoldenCase>,
    options: &RunOptions,
    on_done: Arc<dyn Fn(&CaseResult) + Send + Sync>,
) -> RunOutput {
    let (permits, offsets) = match options.load {
        LoadShape::Concurrency(n) => (n.max(1), vec![0.0; cases.len()]),
        LoadShape::Rate { per_s, max_concurrency } => {
            let cap = if max_concurrency == 0 { Semaphore::MAX_PERMITS } else { max_concurrency };
            (cap, poisson_offsets(cases.len(), per_s.max(1e-9), options.seed))
        }
    };
    let semaphore = Arc::new(Semaphore::new(permits));
    let start = Instant::now();
    let last_end = Arc::new(Mutex::new(start));
    let mut handles = Vec::with_capacity(cases.len());
    for (case, offset) in cases.into_iter().zip(offsets) {
        let (client, judge, semaphore, last_end, on_done) =
            (client.clone(), judge.clone(), semaphore.clone(), last_end.clone(), on_done.clone());
        let body = request_body(&case, options);
        let markers = options.refusal_markers.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + std::time::Duration::from_secs_f64(offset)).into()).await;
            let reply = {
                let _permit = semaphore.acquire_owned().await.expect("semaphore is never closed");
                let reply = client.stream_chat(body).await;
                let mut last = last_end.lock().expect("lock");
                *last = (*last).max(Instant::now());
                reply
            };
            let faithfulness = match (&reply, &judge) {
                (Ok(reply), Some(judge)) if needs_judge(&case) && !reply.content.trim().is_empty() => {
                    Some(judge.faithfulness(&case.question(), reply.content.trim(), &case.judge_contexts()).await)
                }
                _ => None,
            };
            let error = reply.as_ref().err().map(ToString::to_string);
            let result =
                score_case(&case, reply.as_ref().map_err(|_| error.as_deref().unwrap_or("")), faithfulness, &markers);
            on_done(&result);
            result
        }));
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await.expect("an evaluation task panicked"));
    }
    let duration_s = (*last_end.lock().expect("lock") - start).as_secs_f64();
    RunOutput { results, duration_s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(system_prompt: Option<&str>, context_heading: Option<&str>) -> RunOptions {
        RunOptions {
            load: LoadShape::Concurrency(1),
            max_tokens: 8,
            temperature: 0.0,
            seed: 0,
            system_prompt: system_prompt.map(str::to_owned),
            tools: None,
            context_heading: context_heading.map(str::to_owned),
            refusal_markers: Vec::new(),
        }
    }

    fn case(v: Value) -> GoldenCase {
        serde_json::from_value(v).unwrap()
    }

    /// With a heading, the contexts precede the question in the last user turn, as
    /// `serve`'s retrieval puts them; without one they are not sent; the system prompt
    /// is left as it was.
    #[test]
    fn contexts_go_into_the_last_question_under_the_heading() {
        let ctx = case(json!({"id": "p1", "intent": "policy", "contexts": ["Đổi trả trong 14 ngày.", "Phí 30.000đ."],
            "messages": [{"role": "user", "content": "Đổi trả mấy ngày?"}]}));
        let body = request_body(&ctx, &options(Some("Bạn là trợ lý."), Some("Tham khảo:")));
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "Bạn là trợ lý."}));
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "Tham khảo:\n- Đổi trả trong 14 ngày.\n- Phí 30.000đ.\n\nĐổi trả mấy ngày?"})
        );
        let body = request_body(&ctx, &options(None, Some("Tham khảo:")));
        assert_eq!(body["messages"].as_array().unwrap().len(), 1, "no system turn added");
        let body = request_body(&ctx, &options(Some("Bạn là trợ lý."), None));
        assert_eq!(body["messages"][1]["content"], "Đổi trả mấy ngày?");

        let multi = case(json!({"id": "p2", "intent": "policy", "contexts": ["Hotline 1900 0000."],
            "messages": [{"role": "user", "content": "chào shop"}, {"role": "assistant", "content": "Dạ em chào ạ"},
                         {"role": "user", "content": "Hotline?"}]}));
        let body = request_body(&multi, &options(None, Some("Tham khảo:")));
        assert_eq!(body["messages"][0]["content"], "chào shop");
        assert_eq!(body["messages"][2]["content"], "Tham khảo:\n- Hotline 1900 0000.\n\nHotline?");

        let none = case(
            json!({"id": "o1", "intent": "order_status", "messages": [{"role": "user", "content": "Đơn DH250001?"}]}),
        );
        let body = request_body(&none, &options(None, Some("Tham khảo:")));
        assert_eq!(body["messages"][0]["content"], "Đơn DH250001?", "no contexts, no heading");
    }
}
