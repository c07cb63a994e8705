//! The golden set (`evals/golden.jsonl`) is well formed, large enough, covers every
//! intent and input style, is internally consistent (references ground their facts,
//! state their must_include facts, refuse exactly when required), and is kept apart
//! from training data: no golden question appears in any file under `data/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use stylevn::conversation::facts::states_fact;
use stylevn::conversation::text::normalize;
use stylevn::conversation::{check, EvidencePolicy};
use stylevn::eval::checks::{is_refusal, DEFAULT_REFUSAL_MARKERS};
use stylevn::eval::load_golden;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn golden_set_is_large_varied_and_consistent() {
    let cases = load_golden(&root().join("evals/golden.jsonl")).unwrap();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let intents: BTreeMap<&str, usize> = cases.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.intent.as_str()).or_insert(0) += 1;
        m
    });
    for intent in ["order_status", "stock", "size", "promotion", "policy", "product", "out_of_scope", "injection"] {
        assert!(intents.get(intent).copied().unwrap_or(0) >= 10, "intent {intent}: {intents:?}");
    }
    let tags: BTreeSet<&str> = cases.iter().flat_map(|c| c.tags.iter().map(String::as_str)).collect();
    for tag in ["multi_turn", "no_diacritics", "typo", "tool_result"] {
        assert!(tags.contains(tag), "no case tagged {tag}");
    }
    let tools: BTreeSet<&str> =
        cases.iter().filter_map(|c| c.expected_tool.as_ref().map(|t| t.name.as_str())).collect();
    assert_eq!(tools, BTreeSet::from(["get_order_status", "get_promotions", "get_size_chart", "get_stock"]));

    let markers: Vec<String> = DEFAULT_REFUSAL_MARKERS.iter().map(|s| s.to_string()).collect();
    for c in cases.iter().filter(|c| c.expected_tool.is_none()) {
        assert_eq!(is_refusal(&c.reference, &markers), c.must_refuse, "{}: refusal markers vs must_refuse", c.id);
        let g = check(&c.reference, &c.evidence(), &EvidencePolicy::EVAL_METRIC);
        assert!(g.ungrounded.is_empty(), "{}: reference states ungrounded {:?}", c.id, g.ungrounded);
        for fact in &c.must_include {
            assert!(states_fact(&c.reference, fact), "{}: reference lacks must_include {fact:?}", c.id);
        }
        for fact in &c.must_not_include {
            assert!(!states_fact(&c.reference, fact), "{}: reference states forbidden {fact:?}", c.id);
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("jsonl" | "json" | "csv" | "md" | "txt")) {
            out.push(p);
        }
    }
}

#[test]
fn no_golden_question_appears_in_training_data() {
    let cases = load_golden(&root().join("evals/golden.jsonl")).unwrap();
    let mut files = Vec::new();
    files_under(&root().join("data"), &mut files);
    let squash = |s: &str| normalize(s).split_whitespace().collect::<Vec<_>>().join(" ");
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, squash(&t.replace("\\n", " ")))))
        .collect();
    for c in &cases {
        for m in c.messages.iter().filter(|m| m["role"] == "user") {
            let q = squash(m["content"].as_str().unwrap_or_default());
            if q.chars().count() < 20 {
                continue;
            }
            for (path, text) in &texts {
                assert!(!text.contains(&q), "{}: question {q:?} appears in {}", c.id, path.display());
            }
        }
    }
}

/// The tools the evaluation offers are the store's own schemas (the ones training
/// data and `serve` use), and every expected call names one of them with arguments
/// it declares.
#[test]
fn offered_tools_are_the_stores_and_expected_calls_fit_them() {
    let path = root().join("evals/tools.json");
    let offered: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("stylevn.db");
    stylevn::data::db::init_db(&root().join("data"), &db).unwrap();
    let tools = stylevn::data::tools::ToolBox::at_store_date(rusqlite::Connection::open(&db).unwrap()).unwrap();
    assert_eq!(offered, serde_json::json!(tools.schemas()), "{} is stale", path.display());
    for case in load_golden(&root().join("evals/golden.jsonl")).unwrap() {
        let Some(call) = &case.expected_tool else { continue };
        let tool = offered.as_array().unwrap().iter().find(|t| t["function"]["name"] == call.name.as_str());
        let properties = &tool.unwrap_or_else(|| panic!("{}: unknown tool {}", case.id, call.name))["function"]
            ["parameters"]["properties"];
        for key in call.arguments.as_object().unwrap().keys() {
            assert!(properties.get(key).is_some(), "{}: {} has no argument {key}", case.id, call.name);
        }
    }
}

/// Every context is a document exactly as `embed-catalog` indexes it (and `serve`
/// retrieves it): a product's text or a policy section's, so a bare model evaluated
/// with the golden contexts sees what the served assistant would. Product and policy
/// questions come with their documents; size charts and promotions are not indexed,
/// so those cases carry the store's tool results instead.
#[test]
fn contexts_are_the_index_documents() {
    use stylevn::rag::chunk::{policy_documents, product_documents, ChunkOptions};
    use stylevn::rag::ingest::{read_catalog, read_policies, ColumnMap};
    let opts = ChunkOptions::default();
    let catalog = read_catalog(&root().join("data/catalog.csv"), &ColumnMap::default()).unwrap();
    let mut documents: BTreeSet<String> =
        catalog.products.iter().flat_map(|p| product_documents(p, &opts)).map(|d| d.text).collect();
    let policies = read_policies(&root().join("data/policies")).unwrap();
    documents.extend(policies.iter().flat_map(|s| policy_documents(s, &opts)).map(|d| d.text));
    let cases = load_golden(&root().join("evals/golden.jsonl")).unwrap();
    let mut with_context = BTreeMap::new();
    for c in &cases {
        for ctx in &c.contexts {
            assert!(documents.contains(ctx), "{}: context {ctx:?} is not an index document", c.id);
        }
        *with_context.entry(c.intent.as_str()).or_insert(0) += !c.contexts.is_empty() as usize;
    }
    assert_eq!(with_context["product"], 22, "{with_context:?}");
    assert_eq!(with_context["policy"], 37, "{with_context:?}");
    assert_eq!(with_context["size"] + with_context["promotion"], 0, "{with_context:?}");
}

/// Every tool message is what the store's tool answers to the call before it, on the
/// database built from `data/` (as `synth` writes tool turns and the assistant serves
/// them), so a follow-up case tests reading the tools' real output.
#[test]
fn tool_results_are_the_store_tools_answers() {
    use stylevn::data::db::{init_db, open_db};
    use stylevn::data::tools::ToolBox;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    init_db(&root().join("data"), &db).unwrap();
    let tools = ToolBox::at_store_date(open_db(&db).unwrap()).unwrap();
    let mut checked = BTreeMap::new();
    for c in load_golden(&root().join("evals/golden.jsonl")).unwrap() {
        for (i, m) in c.messages.iter().enumerate().filter(|(_, m)| m["role"] == "tool") {
            let id = &m["tool_call_id"];
            let call = c.messages[..i]
                .iter()
                .flat_map(|a| a["tool_calls"].as_array().into_iter().flatten())
                .find(|t| &t["id"] == id)
                .unwrap_or_else(|| panic!("{}: no call {id} before its result", c.id));
            let name = call["function"]["name"].as_str().unwrap();
            let args: serde_json::Value =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            let want = tools.call(name, &args).unwrap().to_string();
            assert_eq!(m["content"].as_str(), Some(want.as_str()), "{}: result of {name}({args})", c.id);
            *checked.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    let names: Vec<&str> = checked.keys().map(String::as_str).collect();
    assert_eq!(names, ["get_order_status", "get_promotions", "get_size_chart", "get_stock"], "{checked:?}");
}
