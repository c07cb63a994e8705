//! SmolLM2-135M-Instruct imported from its GGUF by `stylevn import-gguf` (the
//! fetch script does it) against independent references: logits from transformers
//! loading the GGUF itself, token ids from llama.cpp and transformers' GGUF
//! tokenizer (goldens from scripts/reference/model_logits.py).

use crate::common;

use candle_core::{DType, IndexOp};
use common::{fetched, floats, golden, ids};
use stylevn::generate::ChatModel;
use stylevn::model::{LogitsAt, Mode};
use stylevn::quant::LmHead;

fn smollm2() -> ChatModel {
    let dir = fetched("smollm2-135m-instruct");
    ChatModel::load(dir.to_str().unwrap(), DType::F32, LmHead::default()).unwrap()
}

#[test]
fn imported_tokenizer_equals_llama_cpp_and_transformers() {
    let model = smollm2();
    for case in golden("smollm2_tokenizer.json")["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ours = model.encode(text).unwrap();
        if let Some(llama) = case.get("llama_cpp") {
            assert_eq!(ours, ids(llama), "llama.cpp ids differ for {text:?}");
        }
        assert_eq!(ours, ids(&case["transformers_gguf"]), "transformers ids differ for {text:?}");
    }
}

#[test]
fn logits_equal_transformers_gguf_load() {
    let model = smollm2();
    let g = golden("smollm2_logits.json");
    let sampled = ids(&g["sampled_ids"]);
    for case in g["texts"].as_array().unwrap() {
        let tokens = ids(&case["ids"]);
        let logits = model.transformer.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap();
        let mut worst = 0f32;
        for (pos, want) in case["positions"].as_array().unwrap().iter().enumerate() {
            let row = logits.i(pos).unwrap().to_vec1::<f32>().unwrap();
            let top = ids(&want["top_ids"]);
            for (id, v) in top.iter().zip(floats(&want["top_logits"])) {
                worst = worst.max((row[*id as usize] - v).abs());
            }
            for (id, v) in sampled.iter().zip(floats(&want["sampled"])) {
                worst = worst.max((row[*id as usize] - v).abs());
            }
            let argmax = row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
            assert_eq!(argmax as u32, top[0], "top-1 differs at position {pos}");
        }
        assert!(worst < 1e-3, "max abs logit difference {worst} for {:?}", case["text"]);
    }
}

#[test]
fn greedy_generation_equals_transformers() {
    let model = smollm2();
    let g = golden("smollm2_logits.json");
    for case in g["texts"].as_array().unwrap() {
        let tokens = ids(&case["ids"]);
        let want = ids(&case["greedy"]);
        let options = stylevn::generate::GenerateOptions {
            sampling: Default::default(),
            max_new_tokens: want.len(),
            eos_ids: model.eos_ids.clone(),
            stop: Vec::new(),
        };
        let out =
            stylevn::generate::generate(&model.transformer, &model.tokenizer, &tokens, &options, &mut |_| {}).unwrap();
        let n = out.tokens.len();
        assert_eq!(out.tokens, want[..n], "greedy tokens differ");
        assert!(n == want.len() || want[n] == 2, "stopped early without EOS");
        assert_eq!(out.text, case["greedy_text"].as_str().unwrap());
    }
}
