//! Qwen2.5-Coder-0.5B-Instruct, the production family's real model, imported from
//! the registry's GGUF by `stylevn import-gguf` (the fetch script does it), against
//! transformers loading the same GGUF (its own tokenizer, chat template and
//! dequantization; goldens from scripts/reference/qwen_reference.py): the chat
//! template with the store's tools and a tool-call follow-up, the token ids, every
//! position's logits, and greedy decoding.

use crate::common;

use candle_core::{DType, IndexOp};
use common::{fetched, floats, golden, ids};
use serde_json::{json, Value};
use stylevn::generate::{generate, ChatModel, GenerateOptions};
use stylevn::model::{LogitsAt, Mode, ModelFiles};
use stylevn::quant::LmHead;
use stylevn::serve::prompt::render_prompt;
use stylevn::tokenize::{template_row, ChatRecord, ChatTemplate};

/// Largest |ours - transformers| allowed on a logit. Both sides run the same f32
/// weights (the GGUF's dequantized values); what differs is the order of f32 sums
/// over 24 layers and up to 976 positions. Measured worst on 2026-12-03: 3.3e-5 on
/// the 52-token chat, 4.0e-4 on the two ~900-token chats with the store's tools.
const LOGIT_BOUND: f32 = 1e-3;

const MODEL: &str = "qwen2.5-coder-0.5b-instruct";

fn chats() -> Vec<Value> {
    golden("qwen_logits.json")["chats"].as_array().unwrap().clone()
}

#[test]
fn tokenizer_equals_transformers_gguf() {
    let tokenizer = ModelFiles::from_dir(&fetched(MODEL)).unwrap().load_tokenizer().unwrap();
    for case in golden("qwen_tokenizer.json")["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ours = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ours, ids(&case["transformers_gguf"]), "ids differ for {text:?}");
    }
}

#[test]
fn chat_template_with_tools_renders_as_transformers() {
    let files = ModelFiles::from_dir(&fetched(MODEL)).unwrap();
    let template = ChatTemplate::from_model_files(&files).unwrap();
    let tokenizer = files.load_tokenizer().unwrap();
    for chat in chats() {
        let messages = chat["messages"].as_array().unwrap();
        let tools = chat["tools"].as_array().map(|t| t.as_slice());
        let text = template.render(messages, tools, true).unwrap();
        assert_eq!(text, chat["text"].as_str().unwrap(), "{} renders differently", chat["name"]);
        let ours = tokenizer.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        assert_eq!(ours, ids(&chat["ids"]), "{} tokenizes differently", chat["name"]);
    }
}

/// `stylevn template` on the real model: a training row of the tool-call follow-up
/// holds transformers' prompt before the answer, the served prompt before each
/// assistant turn, and assistant spans whose tokens are exactly the call and the answer.
#[test]
fn training_rows_hold_the_served_prompts_and_assistant_spans() {
    let files = ModelFiles::from_dir(&fetched(MODEL)).unwrap();
    let template = ChatTemplate::from_model_files(&files).unwrap();
    let tokenizer = files.load_tokenizer().unwrap();
    let chat = chats().into_iter().find(|c| c["name"] == "tool_follow_up").unwrap();
    let tools = chat["tools"].as_array().unwrap().clone();
    // OpenAI's wire form (arguments as a JSON string, a call id), as synth writes it.
    let mut messages = chat["messages"].as_array().unwrap().clone();
    messages[2] = json!({"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function",
        "function": {"name": "get_order_status", "arguments": "{\"order_id\": \"DH251352\"}"}}]});
    messages[3]["tool_call_id"] = json!("call_0");
    messages.push(json!({"role": "assistant", "content": "Dạ, đơn DH251352 đang được giao, dự kiến ngày 23/06 ạ."}));
    let record = ChatRecord { messages: messages.clone(), tools: Some(tools.clone()), source: "qwen:1".into() };
    let row = template_row(&record, &template, &tokenizer, 100_000).unwrap();
    assert_eq!(row.char_spans.len(), 2);
    let chars: Vec<char> = row.text.chars().collect();
    let text_of = |s: &[usize; 2]| chars[s[0]..s[1]].iter().collect::<String>();
    let before_answer: String = chars[..row.char_spans[1][0]].iter().collect();
    assert_eq!(before_answer, chat["text"].as_str().unwrap(), "the answer's prompt is transformers' prompt");
    for (span, i) in row.char_spans.iter().zip([2, 4]) {
        let before: String = chars[..span[0]].iter().collect();
        assert_eq!(before, render_prompt(&template, &messages[..i], &tools).unwrap(), "message {i}");
    }
    let call = "<tool_call>\n{\"name\": \"get_order_status\", \"arguments\": {\"order_id\": \"DH251352\"}}\n</tool_call><|im_end|>";
    assert_eq!(text_of(&row.char_spans[0]), call);
    assert_eq!(text_of(&row.char_spans[1]), "Dạ, đơn DH251352 đang được giao, dự kiến ngày 23/06 ạ.<|im_end|>");
    for (tokens, chars) in row.token_spans.iter().zip(&row.char_spans) {
        let decoded = tokenizer.decode(&row.input_ids[tokens[0]..tokens[1]], false).unwrap();
        assert_eq!(decoded, text_of(chars), "the span's tokens are its text");
    }
}

/// One load for both engine checks: the f32 model is 2 GB.
#[test]
fn logits_and_greedy_tokens_equal_transformers() {
    let model = ChatModel::load(fetched(MODEL).to_str().unwrap(), DType::F32, LmHead::default()).unwrap();
    let sampled = ids(&golden("qwen_logits.json")["sampled_ids"]);
    for chat in chats() {
        let name = chat["name"].as_str().unwrap();
        let tokens = ids(&chat["ids"]);
        let logits = model.transformer.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap();
        let mut worst = 0f32;
        for (pos, (top, values)) in
            chat["top2_ids"].as_array().unwrap().iter().zip(chat["top2_logits"].as_array().unwrap()).enumerate()
        {
            let row = logits.i(pos).unwrap().to_vec1::<f32>().unwrap();
            let (top, values) = (ids(top), floats(values));
            for (id, v) in top.iter().zip(&values) {
                worst = worst.max((row[*id as usize] - v).abs());
            }
            // The argmax must agree wherever transformers' top two are not a near tie.
            if values[0] - values[1] > 2.0 * LOGIT_BOUND {
                let argmax =
                    row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
                assert_eq!(argmax as u32, top[0], "{name}: top-1 differs at position {pos}");
            }
        }
        let last = logits.i(tokens.len() - 1).unwrap().to_vec1::<f32>().unwrap();
        let pairs = ids(&chat["last_top_ids"]).into_iter().zip(floats(&chat["last_top_logits"]));
        for (id, v) in pairs.chain(sampled.iter().copied().zip(floats(&chat["last_sampled"]))) {
            worst = worst.max((last[id as usize] - v).abs());
        }
        assert!(worst < LOGIT_BOUND, "{name}: max abs logit difference {worst} (bound {LOGIT_BOUND})");
        eprintln!("{name}: {} positions, max abs logit difference {worst:.2e}", tokens.len());

        let want = ids(&chat["greedy"]);
        let options = GenerateOptions {
            sampling: Default::default(),
            max_new_tokens: want.len(),
            eos_ids: model.eos_ids.clone(),
            stop: Vec::new(),
        };
        let out = generate(&model.transformer, &model.tokenizer, &tokens, &options, &mut |_| {}).unwrap();
        let n = out.tokens.len();
        assert_eq!(out.tokens, want[..n], "{name}: greedy tokens differ");
        assert!(n == want.len() || model.eos_ids.contains(&want[n]), "{name}: stopped early without EOS");
        assert_eq!(out.text, chat["greedy_text"].as_str().unwrap(), "{name}: greedy text differs");
    }
}

fn stylevn(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stylevn")).args(args).output().unwrap();
    assert!(out.status.success(), "stylevn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn load(path: &std::path::Path, name: &str) -> candle_core::Tensor {
    // SAFETY: the file is not modified while the test reads it.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.unwrap();
    st.load(name, &candle_core::Device::Cpu).unwrap()
}

/// `merge` then `quantize` on the real model's shapes: an adapter on layer 23's q_proj
/// and down_proj (896 and 4864 inputs) folds in as `W + B A alpha/r` and leaves every
/// other tensor as it was; the RTN checkpoint keeps group 128 (both widths are
/// multiples of it) in AutoAWQ's gemm shapes; `generate` loads and runs it.
#[test]
fn merge_and_quantize_fit_qwen_shapes() {
    use candle_core::{Device, Tensor};
    use stylevn::lora::LoraConfig;
    let base = fetched(MODEL);
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    let lora = LoraConfig {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "down_proj".into()],
        use_rslora: false,
        layers_to_transform: vec![23],
        trainable_token_indices: vec![],
    };
    std::fs::write(adapter.join("adapter_config.json"), lora.peft_json(base.to_str().unwrap()).unwrap()).unwrap();
    let small = |rows: usize, cols: usize, seed: usize| {
        let v: Vec<f32> =
            (0..rows * cols).map(|i| (((i * 7919 + seed * 104729) % 2001) as f32 - 1000.0) * 1e-5).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    };
    let key = |m: &str, w: &str| format!("base_model.model.model.layers.23.{m}.lora_{w}.weight");
    let tensors = [
        (key("self_attn.q_proj", "A"), small(2, 896, 1)),
        (key("self_attn.q_proj", "B"), small(896, 2, 2)),
        (key("mlp.down_proj", "A"), small(2, 4864, 3)),
        (key("mlp.down_proj", "B"), small(896, 2, 4)),
    ];
    candle_core::safetensors::save(&tensors.iter().cloned().collect(), adapter.join("adapter_model.safetensors"))
        .unwrap();

    let merged = dir.path().join("merged");
    stylevn(&[
        "merge",
        "--base",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let (base_w, merged_w) = (base.join("model.safetensors"), merged.join("model.safetensors"));
    for (module, a, b) in [("self_attn.q_proj", 0, 1), ("mlp.down_proj", 2, 3)] {
        let name = format!("model.layers.23.{module}.weight");
        let want = (load(&base_w, &name) + (tensors[b].1.matmul(&tensors[a].1).unwrap() * 2.0).unwrap()).unwrap();
        let diff =
            (load(&merged_w, &name) - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{name}: merged differs from W + BA*alpha/r by {diff}");
    }
    for name in ["model.layers.22.self_attn.q_proj.weight", "model.layers.23.self_attn.k_proj.weight", "lm_head.weight"]
    {
        let same =
            load(&base_w, name).eq(&load(&merged_w, name)).unwrap().min_all().unwrap().to_scalar::<u8>().unwrap();
        assert_eq!(same, 1, "{name} changed");
    }

    let quantized = dir.path().join("rtn");
    stylevn(&[
        "quantize",
        "--method",
        "rtn",
        "--model",
        merged.to_str().unwrap(),
        "--out",
        quantized.to_str().unwrap(),
    ]);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(quantized.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["quantization_config"]["group_size"], 128);
    let q = quantized.join("model.safetensors");
    for (name, inputs, outputs) in
        [("self_attn.q_proj", 896, 896), ("self_attn.k_proj", 896, 128), ("mlp.down_proj", 4864, 896)]
    {
        let p = format!("model.layers.23.{name}");
        assert_eq!(load(&q, &format!("{p}.qweight")).dims(), [inputs, outputs / 8], "{p}.qweight");
        assert_eq!(load(&q, &format!("{p}.qzeros")).dims(), [inputs / 128, outputs / 8], "{p}.qzeros");
        assert_eq!(load(&q, &format!("{p}.scales")).dims(), [inputs / 128, outputs], "{p}.scales");
    }
    stylevn(&[
        "generate",
        "--model",
        quantized.to_str().unwrap(),
        "--prompt",
        "Xin chào",
        "--temperature",
        "0",
        "--max-new-tokens",
        "4",
    ]);
}
