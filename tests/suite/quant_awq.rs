//! `stylevn quantize` on the tiny fixtures: the AutoAWQ gemm checkpoint unpacks (by
//! scripts/reference/awq_unpack.py, written from the published format) to exactly the
//! weights the engine multiplies with; RTN is the textbook quantizer; AWQ beats RTN on
//! its calibration data; AWQ directories load without any flag and decode.

use crate::common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{golden, root};
use sha2::{Digest, Sha256};
use stylevn::model::tiny::{uniform, TINY_MODELS};
use stylevn::model::{load_transformer, LogitsAt, Mode, ModelFiles, Transformer};
use stylevn::quant::{checkpoint_loader, quantize_model, ClipGrid, LmHead, QuantMethod, QuantizeOptions};

/// Deterministic calibration sequences of token ids for the 160-token fixtures.
fn calibration() -> Vec<Vec<u32>> {
    (0..4).map(|s| uniform(&format!("calib{s}"), 48).iter().map(|u| ((u + 1.0) * 79.9) as u32).collect()).collect()
}

fn quantize(spec: usize, method: QuantMethod, group: usize, out: &Path) -> stylevn::quant::QuantizeSummary {
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[spec].write_dir(base.path()).unwrap();
    let files = ModelFiles::from_dir(base.path()).unwrap();
    let opts = QuantizeOptions {
        method,
        group_size: group,
        max_shard_bytes: 1 << 30,
        search_tokens: 96,
        clip: ClipGrid::Asymmetric,
    };
    quantize_model(&files, out, &opts, &calibration(), &mut |_, _| {}).unwrap()
}

/// Loads `dir` with the loader its weights need, as `generate`, `eval` and `serve` do.
fn load(dir: &Path) -> Transformer {
    load_with_head(dir, LmHead::default())
}

fn load_with_head(dir: &Path, head: LmHead) -> Transformer {
    let files = ModelFiles::from_dir(dir).unwrap();
    load_transformer(&files, DType::F32, &Device::Cpu, checkpoint_loader(&files, head).unwrap().as_ref()).unwrap()
}

fn logits(model: &Transformer, tokens: &[u32]) -> Tensor {
    model.forward(tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap()
}

fn mse(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
}

fn golden_dir() -> std::path::PathBuf {
    root().join("tests/golden/tiny-qwen2-awq")
}

#[test]
fn awq_checkpoint_unpacks_to_exactly_the_engine_weights() {
    if std::env::var("STYLEVN_WRITE_GOLDEN").is_ok() {
        quantize(0, QuantMethod::Awq, 32, &golden_dir());
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden_dir().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization_config"],
        serde_json::json!({"bits": 4, "group_size": 32, "modules_to_not_convert": null, "quant_method": "awq",
                           "version": "gemm", "zero_point": true})
    );
    let want = golden("awq_unpack_tiny_qwen2.json");
    let mut model = load(&golden_dir());
    let projections = model.projections_mut();
    assert_eq!(projections.len(), want["projections"].as_object().unwrap().len());
    for (name, proj) in projections {
        let (w, _) = proj.dense_weight().unwrap();
        // The engine holds 4-bit codes, not a dense copy.
        assert!(proj.stored_bytes().unwrap() < w.elem_count(), "{name} is not int4");
        let bytes: Vec<u8> =
            w.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
        let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let g = &want["projections"][&name];
        assert_eq!(w.dims(), common::ids(&g["shape"]).iter().map(|&d| d as usize).collect::<Vec<_>>().as_slice());
        assert_eq!(hash, g["sha256"].as_str().unwrap(), "{name}: engine weights differ from the Python unpacker's");
    }
}

#[test]
fn rtn_is_round_to_nearest_of_the_original_weights() {
    let out = tempfile::tempdir().unwrap();
    quantize(3, QuantMethod::Rtn, 32, out.path());
    let mut model = load(out.path());
    let original = TINY_MODELS[3].tensors().unwrap();
    for (name, proj) in model.projections_mut() {
        let got = proj.dense_weight().unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = original[&format!("{name}.weight")].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // AutoAWQ's quantizer, written out here per group of 32 with the scale rounded to f16.
        for (gi, (group, gw)) in got.chunks(32).zip(w.chunks(32)).enumerate() {
            let max = gw.iter().cloned().fold(f32::MIN, f32::max);
            let min = gw.iter().cloned().fold(f32::MAX, f32::min);
            let s = half::f16::from_f32((max - min).max(1e-5) / 15.0).to_f32();
            let z = (-(min / s).round_ties_even()).clamp(0.0, 15.0);
            for (g, v) in group.iter().zip(gw) {
                let q = ((v / s).round_ties_even() + z).clamp(0.0, 15.0);
                assert_eq!(*g, (q - z) * s, "{name} group {gi}");
            }
        }
    }
}

#[test]
fn awq_beats_rtn_on_its_calibration_data() {
    for spec in [0, 3] {
        let (awq, rtn) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let summary = quantize(spec, QuantMethod::Awq, 32, awq.path());
        assert_eq!(summary.calib_tokens, 4 * 48);
        quantize(spec, QuantMethod::Rtn, 32, rtn.path());
        let base = tempfile::tempdir().unwrap();
        TINY_MODELS[spec].write_dir(base.path()).unwrap();
        let fp = load(base.path());
        let (awq, rtn) = (load(awq.path()), load(rtn.path()));
        let (mut e_awq, mut e_rtn) = (0.0, 0.0);
        for seq in calibration() {
            let want = logits(&fp, &seq);
            e_awq += mse(&logits(&awq, &seq), &want);
            e_rtn += mse(&logits(&rtn, &seq), &want);
        }
        assert!(e_awq < e_rtn, "{}: AWQ logit error {e_awq} not below RTN's {e_rtn}", TINY_MODELS[spec].name);
    }
}

#[test]
fn group_size_is_reduced_to_fit_and_the_directory_decodes() {
    let out = tempfile::tempdir().unwrap();
    // tiny-llama: hidden 48, so groups of 128 (or 32) cannot fit; 16 can.
    let summary = quantize(2, QuantMethod::Awq, 128, out.path());
    assert_eq!(summary.group_size, 16);
    assert!(summary.group_note.unwrap().contains("using 16"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["quantization_config"]["group_size"], 16);
    assert_eq!(config["torch_dtype"], "float16");
    let model = load(out.path());
    // Decoding token by token through the int4 kernel equals the batched forward.
    let tokens = &calibration()[0][..12];
    let all = logits(&model, tokens);
    let mut cache = model.new_cache();
    let mut last = None;
    for &t in tokens {
        last = Some(model.forward_next(&[t], &mut cache).unwrap());
    }
    let want = all.get(tokens.len() - 1).unwrap();
    let diff = (last.unwrap() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn lm_head_formats_keep_the_logits_within_their_rounding() {
    // tiny-qwen2 has its own head; tiny-qwen2-tied's head is its embedding table.
    for spec in [0, 1] {
        let out = tempfile::tempdir().unwrap();
        quantize(spec, QuantMethod::Rtn, 32, out.path());
        let [fp16, int8, int4] = [LmHead::Fp16, LmHead::Int8, LmHead::Int4].map(|h| load_with_head(out.path(), h));
        let (vocab, hidden) = (fp16.config().vocab_size, fp16.config().hidden_size);
        let bytes = |m: &Transformer| m.lm_head.stored_bytes().unwrap();
        assert_eq!(bytes(&fp16), vocab * hidden * 2);
        assert_eq!(bytes(&int8), vocab * hidden + vocab * hidden / 64 * 4);
        assert_eq!(bytes(&int4), vocab * hidden / 2 + vocab * hidden / 64 * 8);
        let (mut e8, mut e4, mut norm) = (0.0, 0.0, 0.0);
        for seq in calibration() {
            let want = logits(&fp16, &seq);
            norm += want.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
            e8 += mse(&logits(&int8, &seq), &want);
            e4 += mse(&logits(&int4, &seq), &want);
        }
        let (e8, e4) = ((e8 / norm).sqrt(), (e4 / norm).sqrt());
        let name = TINY_MODELS[spec].name;
        // int8 rounds weights and activations to 1/254 of their block's largest
        // magnitude; int4 weights to 1/30 of their group's range.
        assert!(e8 < 0.01, "{name}: int8 head's relative logit error {e8}");
        assert!(e4 < 0.15, "{name}: int4 head's relative logit error {e4}");
        assert!(e8 * 4.0 < e4, "{name}: int8 {e8} vs int4 {e4}");
    }
}
