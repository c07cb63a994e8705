//! Offline scoring of an existing predictions file (`stylevn eval score`): one JSON
//! object per line with `prediction`, `reference` and optional `contexts` (and an
//! optional `id`), scored with the text metrics only (ROUGE, chrF, grounding).
//!
//! ```text
//! {"id": "p1", "prediction": "Dạ đơn đang giao ạ", "reference": "Dạ, đơn đang giao ạ.", "contexts": ["..."]}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checks::mean_defined;
use super::chrf::chrf;
use super::rouge::rouge;
use crate::conversation::{check, Evidence, EvidencePolicy, Source};
use crate::{Error, Result};

/// One line of a predictions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Optional id, echoed in the output.
    #[serde(default)]
    pub id: Option<String>,
    /// The model's answer.
    pub prediction: String,
    /// The reference answer.
    pub reference: String,
    /// Texts the answer's facts must come from (enables grounding).
    #[serde(default)]
    pub contexts: Vec<String>,
}

/// Text scores of one pair (F-measures; chrF and grounding in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// The pair's id, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ROUGE-1 F.
    pub rouge1: f64,
    /// ROUGE-2 F.
    pub rouge2: f64,
    /// ROUGE-L F.
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// ROUGE-Lsum F.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
    /// chrF.
    pub chrf: f64,
    /// Grounding of the prediction's facts in `contexts` (`None` without contexts or
    /// when the prediction states no fact).
    pub grounding: Option<f64>,
}

/// Means over all pairs (grounding over the pairs where it is defined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanScores {
    /// Mean ROUGE-1 F.
    pub rouge1: f64,
    /// Mean ROUGE-2 F.
    pub rouge2: f64,
    /// Mean ROUGE-L F.
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// Mean ROUGE-Lsum F.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
    /// Mean chrF.
    pub chrf: f64,
    /// Mean grounding.
    pub grounding: Option<f64>,
}

/// The output of `stylevn eval score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreOutput {
    /// Number of pairs.
    pub count: usize,
    /// Per pair, in file order.
    pub pairs: Vec<PairScores>,
    /// Means.
    pub mean: MeanScores,
}

/// Scores one pair.
pub fn score_pair(pair: &Pair) -> PairScores {
    let r = rouge(&pair.prediction, &pair.reference);
    let grounding = if pair.contexts.is_empty() {
        None
    } else {
        let evidence: Vec<Evidence> = pair.contexts.iter().map(|c| Evidence::new(Source::Retrieved, c)).collect();
        check(&pair.prediction, &evidence, &EvidencePolicy::EVAL_METRIC).score
    };
    PairScores {
        id: pair.id.clone(),
        rouge1: r.rouge1.fmeasure,
        rouge2: r.rouge2.fmeasure,
        rouge_l: r.rouge_l.fmeasure,
        rouge_lsum: r.rouge_lsum.fmeasure,
        chrf: chrf(&pair.prediction, &pair.reference),
        grounding,
    }
}

/// Reads a predictions file; errors name the line.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let pairs: Vec<Pair> =
        crate::jsonl::read_jsonl(path, |e| format!("{e} (each line needs \"prediction\" and \"reference\")"))?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
    if pairs.is_empty() {
        return Err(Error::bad_input(path, None, "no pairs"));
    }
    Ok(pairs)
}

/// Scores every pair and averages.
pub fn score_pairs(pairs: &[Pair]) -> ScoreOutput {
    let scored: Vec<PairScores> = pairs.iter().map(score_pair).collect();
    let n = scored.len().max(1) as f64;
    let mean = |f: fn(&PairScores) -> f64| scored.iter().map(f).sum::<f64>() / n;
    let means = MeanScores {
        rouge1: mean(|p| p.rouge1),
        rouge2: mean(|p| p.rouge2),
        rouge_l: mean(|p| p.rouge_l),
        rouge_lsum: mean(|p| p.rouge_lsum),
        chrf: mean(|p| p.chrf),
        grounding: mean_defined(scored.iter().map(|p| p.grounding)),
    };
    ScoreOutput { count: scored.len(), pairs: scored, mean: means }
}
