//! Text metrics against independent truth: ROUGE equals Google's `rouge_score` (and
//! chrF sacreBLEU) on the committed English goldens; on Vietnamese, identical texts
//! score 1 and unrelated ones stay low where `rouge_score`'s ASCII tokenizer gives
//! about 0.25; `stylevn eval score --json` prints the same numbers.

use std::path::PathBuf;
use std::process::Command;

use stylevn::eval::chrf::chrf;
use stylevn::eval::rouge::{rouge, RougeScore};

fn golden(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn check(ours: RougeScore, want: &serde_json::Value, what: &str) {
    for (field, v) in [("precision", ours.precision), ("recall", ours.recall), ("fmeasure", ours.fmeasure)] {
        let w = want[field].as_f64().unwrap();
        assert!((v - w).abs() < 1e-6, "{what} {field}: ours {v}, rouge_score {w}");
    }
}

#[test]
fn rouge_equals_rouge_score_on_english_goldens() {
    let g = golden("rouge_english.json");
    let pairs = g["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 100, "need at least 100 golden pairs, have {}", pairs.len());
    for (i, p) in pairs.iter().enumerate() {
        let (pred, refr) = (p["prediction"].as_str().unwrap(), p["reference"].as_str().unwrap());
        let s = rouge(pred, refr);
        let what = format!("pair {i} ({pred:?} vs {refr:?})");
        check(s.rouge1, &p["rouge1"], &format!("{what} rouge1"));
        check(s.rouge2, &p["rouge2"], &format!("{what} rouge2"));
        check(s.rouge_l, &p["rougeL"], &format!("{what} rougeL"));
        check(s.rouge_lsum, &p["rougeLsum"], &format!("{what} rougeLsum"));
        let c = chrf(pred, refr);
        let want = p["chrf"].as_f64().unwrap();
        assert!((c - want).abs() < 1e-6, "{what} chrf: ours {c}, sacrebleu {want}");
    }
}

#[test]
fn vietnamese_identical_is_one_and_unrelated_is_low() {
    let g = golden("rouge_vietnamese.json");
    for text in g["identical"].as_array().unwrap() {
        let t = text.as_str().unwrap();
        let s = rouge(t, t);
        for v in [s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum] {
            assert!((v.fmeasure - 1.0).abs() < 1e-12, "{t}: {v:?}");
        }
        assert!((chrf(t, t) - 1.0).abs() < 1e-12);
    }
    let unrelated = g["unrelated"].as_array().unwrap();
    let (mut ours, mut theirs) = (0.0, 0.0);
    for p in unrelated {
        let (pred, refr) = (p["prediction"].as_str().unwrap(), p["reference"].as_str().unwrap());
        let s = rouge(pred, refr);
        assert!(s.rouge1.fmeasure < 0.25, "{pred} / {refr}: {:?}", s.rouge1);
        ours += s.rouge1.fmeasure;
        theirs += p["rouge_score_rouge1"].as_f64().unwrap();
    }
    let n = unrelated.len() as f64;
    assert!(ours / n < 0.1, "mean ROUGE-1 on unrelated Vietnamese: {}", ours / n);
    // The committed set shows the failure we avoid: rouge_score's own tokenizer.
    assert!(theirs / n > 0.2, "rouge_score mean {}", theirs / n);
}

#[test]
fn eval_score_json_prints_per_pair_and_mean() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.jsonl");
    let g = golden("rouge_english.json");
    let pairs: Vec<&serde_json::Value> = g["pairs"].as_array().unwrap().iter().take(12).collect();
    let mut lines = String::new();
    for p in &pairs {
        lines.push_str(&serde_json::json!({"prediction": p["prediction"], "reference": p["reference"]}).to_string());
        lines.push('\n');
    }
    lines.push_str(&serde_json::json!({"id": "vi", "prediction": "Dạ đơn DH1 đang giao ạ", "reference": "Dạ đơn DH1 đang giao ạ", "contexts": ["DH1 Đang giao"]}).to_string());
    std::fs::write(&input, lines).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["eval", "score", "--in", input.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 13);
    let rows = v["pairs"].as_array().unwrap();
    for metric in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
        let mut sum = 0.0;
        for (row, p) in rows.iter().zip(&pairs) {
            let want = p[metric]["fmeasure"].as_f64().unwrap();
            assert!((row[metric].as_f64().unwrap() - want).abs() < 1e-6, "{metric}");
        }
        for row in rows {
            sum += row[metric].as_f64().unwrap();
        }
        assert!((v["mean"][metric].as_f64().unwrap() - sum / 13.0).abs() < 1e-9);
    }
    assert_eq!(rows[12]["id"], "vi");
    assert_eq!(rows[12]["rougeL"], 1.0);
    assert_eq!(rows[12]["chrf"], 1.0);
    assert_eq!(rows[12]["grounding"], 1.0);
    assert!(v["mean"]["chrf"].is_number());

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prediction\": \"x\"}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["eval", "score", "--in", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:1"));
}
