//! Chat templating against the Python reference (transformers' `apply_chat_template`
//! and the `tokenizers` package, goldens from scripts/reference/chat_templates.py),
//! and `stylevn template` end to end on the fixtures in tests/fixtures/chats/.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fetched, golden, ids, root};
use serde_json::{json, Value};
use stylevn::model::ModelFiles;
use stylevn::serve::prompt::render_prompt;
use stylevn::tokenize::assistant_spans::{char_spans, token_spans};
use stylevn::tokenize::{read_rows, render_with_assistant_spans, template_row, ChatRecord, ChatTemplate, TemplatedRow};

fn qwen_tokenizer_path() -> PathBuf {
    fetched("qwen-tokenizer/tokenizer.json")
}

fn qwen_tokenizer() -> tokenizers::Tokenizer {
    tokenizers::Tokenizer::from_file(qwen_tokenizer_path()).expect("load the Qwen tokenizer")
}

fn qwen25_template_source() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/qwen2.5_chat_template.jinja")).unwrap()
}

/// A Qwen2.5-style model directory (no weights): the Qwen tokenizer, and a
/// tokenizer_config.json with the golden's special tokens and the Qwen2.5 template.
fn qwen25_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::copy(qwen_tokenizer_path(), dir.path().join("tokenizer.json")).unwrap();
    let mut config = golden("chat_templates.json")["special_tokens"].clone();
    config["chat_template"] = Value::String(qwen25_template_source());
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    dir
}

fn messages(case: &Value) -> Vec<Value> {
    case["messages"].as_array().unwrap().clone()
}

fn tools(case: &Value) -> Option<Vec<Value>> {
    case["tools"].as_array().cloned()
}

/// Where two texts first differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let around = |s: &str| s.chars().skip(at.saturating_sub(20)).take(60).collect::<String>();
    format!("char {at}: ours {:?} vs reference {:?}", around(a), around(b))
}

#[test]
fn chat_templates_render_byte_for_byte_like_transformers() {
    let golden = golden("chat_templates.json");
    assert_eq!(golden["templates"]["qwen2.5"], qwen25_template_source(), "fixture and golden templates differ");
    let model = qwen25_model_dir();
    let files = ModelFiles::from_dir(model.path()).unwrap();
    let qwen25 = ChatTemplate::from_model_files(&files).unwrap();
    assert_eq!(qwen25.special_token("eos_token"), Some("<|im_end|>"));
    assert_eq!(qwen25.special_token("bos_token"), None);

    let tokenizer = qwen_tokenizer();
    let mut failures = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let key = case["template"].as_str().unwrap();
        let other;
        let template = if key == "qwen2.5" {
            &qwen25
        } else {
            let special = vec![("eos_token".into(), "<|im_end|>".into()), ("pad_token".into(), "<|endoftext|>".into())];
            other = ChatTemplate::new(golden["templates"][key].as_str().unwrap(), special).unwrap();
            &other
        };
        let add_gen = case["add_generation_prompt"].as_bool().unwrap();
        let rendered = template.render(&messages(case), tools(case).as_deref(), add_gen);
        match (rendered, case.get("text").and_then(Value::as_str), case.get("error").and_then(Value::as_str)) {
            (Ok(ours), Some(want), _) if ours == want => {
                let ours_ids = tokenizer.encode(ours.as_str(), false).unwrap().get_ids().to_vec();
                if ours_ids != ids(&case["input_ids"]) {
                    failures.push(format!("{name}: token ids differ"));
                }
            }
            (Ok(ours), Some(want), _) => failures.push(format!("{name}: {}", first_difference(&ours, want))),
            (Err(e), _, Some(want)) if e.to_string().contains(want) => {}
            (ours, _, _) => failures.push(format!("{name}: got {ours:?}, reference {case}")),
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn assistant_spans_match_the_reference() {
    let golden = golden("chat_templates.json");
    let tokenizer = qwen_tokenizer();
    let mut checked = 0;
    for case in golden["cases"].as_array().unwrap() {
        let Some(want_chars) = case.get("char_spans") else {
            continue;
        };
        let name = case["name"].as_str().unwrap();
        let template =
            ChatTemplate::new(golden["templates"][case["template"].as_str().unwrap()].as_str().unwrap(), vec![])
                .unwrap();
        let result = render_with_assistant_spans(&template, &messages(case), tools(case).as_deref());
        if want_chars.is_null() {
            let err = result.expect_err(name).to_string();
            assert!(err.contains("does not render incrementally"), "{name}: {err}");
            continue;
        }
        let rendered = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let chars: Vec<Value> = char_spans(&rendered.text, &rendered.spans).iter().map(|s| json!(s)).collect();
        assert_eq!(Value::Array(chars), *want_chars, "{name}: char spans");
        let encoding = tokenizer.encode(rendered.text.as_str(), false).unwrap();
        let tokens: Vec<Value> =
            token_spans(encoding.get_offsets(), &rendered.spans).iter().map(|s| json!(s)).collect();
        assert_eq!(Value::Array(tokens), case["token_spans"], "{name}: token spans");
        for span in &rendered.spans {
            assert!(rendered.text[span.clone()].ends_with("<|im_end|>"), "{name}: span ends at the turn's end");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} span cases");
}

#[test]
fn qwen_tokenizer_ids_and_offsets_match_python_tokenizers() {
    let tokenizer = qwen_tokenizer();
    let golden = golden("qwen_tokenizer_ids.json");
    for case in golden["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let encoding = tokenizer.encode(text, false).unwrap();
        assert_eq!(encoding.get_ids(), ids(&case["ids"]).as_slice(), "ids of {text:?}");
        let byte_spans: Vec<_> = encoding.get_offsets().iter().map(|&(s, e)| s..e).collect();
        let offsets: Vec<Value> = char_spans(text, &byte_spans).iter().map(|s| json!(s)).collect();
        assert_eq!(Value::Array(offsets), case["offsets"], "char offsets of {text:?}");
    }
}

#[test]
fn chat_template_jinja_wins_and_named_lists_use_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let config = json!({"eos_token": {"content": "</s>"},
        "chat_template": [{"name": "rag", "template": "RAG"}, {"name": "default", "template": "{{ eos_token }}"}]});
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let render = || {
        let t = ChatTemplate::from_model_files(&ModelFiles::from_dir(dir.path()).unwrap()).unwrap();
        t.render(&[json!({"role": "user", "content": "x"})], None, false).unwrap()
    };
    assert_eq!(render(), "</s>");
    std::fs::write(dir.path().join("chat_template.jinja"), "jinja {{ messages[0].content }}\n").unwrap();
    assert_eq!(render(), "jinja x", "chat_template.jinja wins; one trailing newline dropped as in Jinja2");
}

/// Training rows hold tool conversations exactly as `stylevn serve` prompts with
/// them, for a template that renders tools (Qwen2.5) and one that does not
/// (SmolLM2): the text before each assistant turn is the served prompt for the
/// messages before it, and the turn itself is what the server's tool parser reads.
#[test]
fn training_text_before_each_assistant_turn_is_the_served_prompt() {
    let golden = golden("chat_templates.json");
    let tokenizer = qwen_tokenizer();
    let messages = vec![
        json!({"role": "system", "content": "Bạn là trợ lý của StyleVN."}),
        json!({"role": "user", "content": "Đơn DH250011 của em tới đâu rồi ạ?"}),
        json!({"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_order_status", "arguments": "{\"order_id\":\"DH250011\"}"}}]}),
        json!({"role": "tool", "tool_call_id": "call_0", "content": "{\"status\":\"Đang giao\"}"}),
        json!({"role": "assistant", "content": "Dạ đơn DH250011 đang giao ạ."}),
    ];
    let tools = vec![json!({"type": "function", "function": {"name": "get_order_status",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}})];
    let record = ChatRecord { messages: messages.clone(), tools: Some(tools.clone()), source: "test:1".into() };
    for name in ["qwen2.5", "smollm2"] {
        let template = ChatTemplate::new(golden["templates"][name].as_str().unwrap(), vec![]).unwrap();
        let row = template_row(&record, &template, &tokenizer, 100_000).unwrap();
        assert_eq!(row.char_spans.len(), 2, "{name}");
        for (span, i) in row.char_spans.iter().zip([2, 4]) {
            let before: String = row.text.chars().take(span[0]).collect();
            assert_eq!(before, render_prompt(&template, &messages[..i], &tools).unwrap(), "{name}, message {i}");
        }
        let call: String =
            row.text.chars().skip(row.char_spans[0][0]).take(row.char_spans[0][1] - row.char_spans[0][0]).collect();
        let expected =
            "<tool_call>\n{\"name\": \"get_order_status\", \"arguments\": {\"order_id\": \"DH250011\"}}\n</tool_call>";
        assert!(call.starts_with(expected), "{name}: {call:?}");
    }
}

// ---- the binary, end to end ----

fn stylevn(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stylevn")).args(args).current_dir(cwd).output().expect("run stylevn")
}

fn fixture(name: &str) -> String {
    root().join("tests/fixtures/chats").join(name).display().to_string()
}

struct Run {
    out: std::process::Output,
    work: tempfile::TempDir,
}

impl Run {
    fn new(model: &Path, extra: &[&str]) -> Run {
        let work = tempfile::tempdir().unwrap();
        let model = model.display().to_string();
        let mut args = vec!["template", "--model", &model, "--out", "train.jsonl", "--val-out", "val.jsonl"];
        args.extend_from_slice(extra);
        let out = stylevn(&args, work.path());
        Run { out, work }
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn rows(&self, name: &str) -> Vec<TemplatedRow> {
        read_rows(&self.work.path().join(name)).unwrap()
    }
    fn summary(&self) -> Value {
        serde_json::from_str(self.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout()))
    }
}

#[test]
fn cli_templates_jsonl_and_csv_with_bad_rows_dedup_and_split() {
    let model = qwen25_model_dir();
    let (jsonl, csv) = (fixture("store.jsonl"), fixture("store.csv"));
    let run = Run::new(model.path(), &["--in", &jsonl, "--in", &csv, "--val-frac", "0.2", "--seed", "7", "--json"]);
    assert!(run.out.status.success(), "{}", run.stderr());

    let s = run.summary();
    assert_eq!(s["rows_in"], 15 + 4);
    assert_eq!(s["duplicates"], 1);
    assert_eq!(s["bad"], 5 + 1);
    assert_eq!(s["kept"], 12);
    assert_eq!((s["train"].as_u64(), s["val"].as_u64()), (Some(10), Some(2)));
    assert_eq!(
        s["bad_by_kind"],
        json!({"bad_json": 1, "bad_shape": 1, "unknown_role": 1, "no_content": 2, "no_assistant": 1})
    );
    assert_eq!(s["tokens"]["count"], 12);

    let stderr = run.stderr();
    for (line, reason) in [
        (format!("{jsonl}:6"), "not valid JSON"),
        (format!("{jsonl}:7"), "messages[0]: unknown role \"khach\""),
        (format!("{jsonl}:8"), "no assistant turn"),
        (format!("{jsonl}:9"), "`messages` is empty"),
        (format!("{jsonl}:10"), "messages[0] (user) has no content"),
        (format!("{csv}:5"), "messages[1] (assistant) has no content"),
    ] {
        assert!(stderr.contains(&format!("bad row {line}: {reason}")), "missing {line}: {reason} in\n{stderr}");
    }

    let (train, val) = (run.rows("train.jsonl"), run.rows("val.jsonl"));
    let all: Vec<&TemplatedRow> = train.iter().chain(&val).collect();
    let golden = golden("chat_templates.json");
    let case = |name: &str| golden["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    // Tool-call arguments given as JSON strings are rendered as objects, the way the
    // server (like vLLM) hands them to the template: the `_served` golden.
    for (source, golden_case) in
        [(format!("{jsonl}:1"), "qwen2.5/multi_turn"), (format!("{jsonl}:3"), "qwen2.5/tools_full_served")]
    {
        let row = all.iter().find(|r| r.source == source).unwrap_or_else(|| panic!("no row from {source}"));
        let want = case(golden_case);
        assert_eq!(row.text, want["text"].as_str().unwrap(), "{source}");
        assert_eq!(json!(row.char_spans), want["char_spans"], "{source}");
        assert_eq!(json!(row.token_spans), want["token_spans"], "{source}");
        assert_eq!(row.input_ids, ids(&want["input_ids"]), "{source}");
    }
    assert!(!all.iter().any(|r| r.source == format!("{jsonl}:4")), "the duplicate of line 1 is dropped");
    let multiline = all.iter().find(|r| r.source == format!("{csv}:2")).expect("CSV row on line 2");
    assert!(multiline.text.contains("<|im_start|>system\nBạn là trợ lý của StyleVN.<|im_end|>"));
    for row in &all {
        assert_eq!(row.n_tokens, row.input_ids.len());
        let labels = row.labels();
        let trained: Vec<u32> = labels.iter().filter(|&&l| l >= 0).map(|&l| l as u32).collect();
        let decoded = qwen_tokenizer().decode(&trained, false).unwrap();
        assert!(decoded.ends_with("<|im_end|>"), "{}: labels cover the turn end: {decoded:?}", row.source);
        assert!(!decoded.contains("<|im_start|>"), "{}: labels stay inside assistant turns", row.source);
    }
}

#[test]
fn cli_split_is_deterministic_and_seeded() {
    let model = qwen25_model_dir();
    let jsonl = fixture("store.jsonl");
    let run = |seed: &str| {
        let r = Run::new(model.path(), &["--in", &jsonl, "--val-frac", "0.3", "--seed", seed]);
        assert!(r.out.status.success(), "{}", r.stderr());
        assert!(
            r.stdout().starts_with("template: 15 rows in, 9 kept (6 train, 3 val), 1 duplicates dropped, 5 bad;"),
            "{}",
            r.stdout()
        );
        let read = |n: &str| std::fs::read(r.work.path().join(n)).unwrap();
        (read("train.jsonl"), read("val.jsonl"))
    };
    let a = run("42");
    assert_eq!(a, run("42"), "same seed, same files");
    let sources = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["source"].to_string())
            .collect()
    };
    let others: Vec<Vec<String>> = ["1", "2", "3"].iter().map(|s| sources(&run(s).1)).collect();
    assert!(others.iter().any(|v| *v != sources(&a.1)), "some other seed moves the validation rows");
}

#[test]
fn cli_strict_and_max_len_fail_or_filter() {
    let model = qwen25_model_dir();
    let jsonl = fixture("store.jsonl");
    let strict = Run::new(model.path(), &["--in", &jsonl, "--strict"]);
    assert!(!strict.out.status.success());
    assert!(strict.stderr().contains("5 bad rows with --strict"), "{}", strict.stderr());
    assert!(!strict.work.path().join("train.jsonl").exists(), "--strict writes nothing");

    let short = Run::new(model.path(), &["--in", &fixture("store.csv"), "--max-len", "60", "--strict=false", "--json"]);
    assert!(short.out.status.success(), "{}", short.stderr());
    let s = short.summary();
    assert!(s["tokens"]["over_max_len"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["tokens"]["max"].as_u64().unwrap() <= 60, "{s}");
    assert!(short.stderr().contains("over max-len 60"), "{}", short.stderr());
}

#[test]
fn cli_help_documents_every_flag() {
    let out = stylevn(&["template", "--help"], &root());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in
        ["--model", "--in", "--out", "--val-out", "--val-frac", "--seed", "--max-len", "--strict", "--json", "--config"]
    {
        assert!(help.contains(flag), "template --help lacks {flag}:\n{help}");
    }
}
