//! Evaluation: the CI gate that runs before a model or adapter ships.
//!
//! Text metrics need nothing but text: [`rouge`] (equal to Google's `rouge_score` on
//! ASCII, Unicode-aware for Vietnamese through [`vi_tokenize`]), [`chrf`], and
//! deterministic grounding (numbers, prices, codes, dates and statuses checked
//! against the sources by [`crate::conversation::grounding`] under its eval policy).
//! [`faithfulness`] asks a judge model, the Ragas way. [`checks`] holds
//! refusals, tool calls and `must_include`. [`latency`] defines TTFT/ITL/TPOT/E2E as
//! vLLM's benchmark_serving does. [`runner`] sends a [`golden`] set to any
//! OpenAI-compatible endpoint through [`client`]; [`report`] aggregates, gates and
//! compares, and [`bootstrap`] gives each score's 95% interval over cases;
//! [`report_md`] and [`plots`] render it; [`score`] scores a predictions file offline.

pub mod bootstrap;
pub mod checks;
pub mod chrf;
pub mod client;
pub mod config;
pub mod faithfulness;
pub mod golden;
pub mod latency;
pub mod plots;
pub mod report;
pub mod report_md;
pub mod rouge;
pub mod runner;
pub mod score;
pub mod vi_tokenize;

pub use client::{ChatClient, Endpoint, StreamedReply};
pub use config::EvalConfig;
pub use faithfulness::{Faithfulness, Judge, JudgeStats};
pub use golden::{load_golden, sample_by_intent, GoldenCase};
pub use latency::{LatencySummary, LoadShape, RequestTiming};
pub use report::{compare, Delta, Report, ReportMeta, Thresholds};
pub use rouge::{rouge, RougeScore, RougeScores};
pub use runner::{run_cases, CaseResult, RunOptions};
pub use score::{score_pairs, Pair, ScoreOutput};
pub mod perplexity;
