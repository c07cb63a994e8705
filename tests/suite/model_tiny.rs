//! The engine against PyTorch transformers on the tiny fixtures (goldens from
//! scripts/reference/model_logits.py), plus the consistency of its batched,
//! cached and training paths.

use crate::common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{floats, golden, ids, max_abs_diff};
use stylevn::model::tiny::{TinySpec, TINY_MODELS};
use stylevn::model::{load_transformer, DenseLoader, LogitsAt, Mode, ModelFiles, Transformer};

fn load(spec: &TinySpec) -> (tempfile::TempDir, Transformer) {
    let dir = tempfile::tempdir().unwrap();
    spec.write_dir(dir.path()).unwrap();
    let files = ModelFiles::from_dir(dir.path()).unwrap();
    let model = load_transformer(&files, DType::F32, &Device::Cpu, &DenseLoader).unwrap();
    (dir, model)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

#[test]
fn logits_equal_transformers_on_every_fixture_and_both_modes() {
    let g = golden("tiny_logits.json");
    for spec in TINY_MODELS.iter() {
        let (_dir, model) = load(spec);
        for prompt in g["models"][spec.name]["prompts"].as_array().unwrap() {
            let tokens = ids(&prompt["ids"]);
            let want: Vec<Vec<f32>> = prompt["logits"].as_array().unwrap().iter().map(floats).collect();
            for mode in [Mode::Infer, Mode::Train] {
                let got = rows(&model.forward(&tokens, &[tokens.len()], None, mode, LogitsAt::All).unwrap());
                let worst = got.iter().zip(&want).map(|(a, b)| max_abs_diff(a, b)).fold(0.0, f32::max);
                assert!(worst < 1e-4, "{} {:?}: max abs diff {worst}", spec.name, mode);
            }
        }
    }
}

#[test]
fn cached_greedy_decoding_equals_transformers_generate() {
    let g = golden("tiny_logits.json");
    for spec in TINY_MODELS.iter() {
        let (_dir, model) = load(spec);
        for prompt in g["models"][spec.name]["prompts"].as_array().unwrap() {
            let tokens = ids(&prompt["ids"]);
            let want = ids(&prompt["greedy"]);
            let mut cache = model.new_cache();
            let mut logits = model.forward_next(&tokens, &mut cache).unwrap();
            let mut got = Vec::new();
            for _ in 0..want.len() {
                let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
                got.push(next);
                logits = model.forward_next(&[next], &mut cache).unwrap();
            }
            assert_eq!(got, want, "{}", spec.name);
        }
    }
}

#[test]
fn packed_batch_equals_sequences_run_alone() {
    let (_dir, model) = load(&TINY_MODELS[0]);
    let a: Vec<u32> = vec![1, 5, 17, 33, 2, 99, 140];
    let b: Vec<u32> = vec![4, 8, 15, 16, 23, 42, 7, 9, 11, 3];
    let packed: Vec<u32> = a.iter().chain(&b).copied().collect();
    let all = rows(&model.forward(&packed, &[a.len(), b.len()], None, Mode::Infer, LogitsAt::All).unwrap());
    let alone_a = rows(&model.forward(&a, &[a.len()], None, Mode::Infer, LogitsAt::All).unwrap());
    let alone_b = rows(&model.forward(&b, &[b.len()], None, Mode::Infer, LogitsAt::All).unwrap());
    for (got, want) in all.iter().zip(alone_a.iter().chain(&alone_b)) {
        assert!(max_abs_diff(got, want) < 1e-5);
    }
    let last = rows(&model.forward(&packed, &[a.len(), b.len()], None, Mode::Infer, LogitsAt::Last).unwrap());
    assert!(max_abs_diff(&last[0], &alone_a[a.len() - 1]) < 1e-5);
    assert!(max_abs_diff(&last[1], &alone_b[b.len() - 1]) < 1e-5);
}

#[test]
fn chunked_prefill_with_cache_equals_one_forward() {
    for spec in [&TINY_MODELS[1], &TINY_MODELS[2]] {
        let (_dir, model) = load(spec);
        let tokens: Vec<u32> = (0..20).map(|i| (i * 13 + 5) % 160).collect();
        let full = rows(&model.forward(&tokens, &[20], None, Mode::Infer, LogitsAt::All).unwrap());
        // Two sequences continue from caches at different lengths in one packed call.
        let mut caches = vec![model.new_cache(), model.new_cache()];
        model.forward(&tokens[..6], &[6], Some(&mut caches[..1]), Mode::Infer, LogitsAt::Last).unwrap();
        model.forward(&tokens[..11], &[11], Some(&mut caches[1..]), Mode::Infer, LogitsAt::Last).unwrap();
        let rest: Vec<u32> = tokens[6..].iter().chain(&tokens[11..]).copied().collect();
        let got = rows(&model.forward(&rest, &[14, 9], Some(&mut caches), Mode::Infer, LogitsAt::All).unwrap());
        for (i, row) in got.iter().enumerate() {
            let pos = if i < 14 { 6 + i } else { 11 + i - 14 };
            assert!(max_abs_diff(row, &full[pos]) < 1e-5, "{} row {i}", spec.name);
        }
        assert_eq!(caches[0].len(), 20);
        assert_eq!(caches[1].len(), 20);
    }
}

/// Every weight is a variable; a training-mode forward + backward must reach a
/// parameter of every kind in every layer. The fused inference path must not.
#[test]
fn training_forward_sends_gradients_to_every_layer() {
    for spec in [&TINY_MODELS[0], &TINY_MODELS[2]] {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap();
            for (name, t) in spec.tensors().unwrap() {
                data.insert(name, Var::from_tensor(&t).unwrap());
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config: stylevn::model::ModelConfig = serde_json::from_value(spec.config_json()).unwrap();
        let model = Transformer::load(&config, vb, &DenseLoader).unwrap();
        let tokens: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 160).collect();
        let targets = Tensor::new(&tokens[1..], &Device::Cpu).unwrap();
        let grads_of = |mode: Mode| {
            let logits = model.forward(&tokens, &[12], None, mode, LogitsAt::All).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits.narrow(0, 0, 11).unwrap(), &targets).unwrap();
            loss.backward().unwrap()
        };
        let grads = grads_of(Mode::Train);
        let data = varmap.data().lock().unwrap();
        let norm_of = |name: &str, g: &candle_core::backprop::GradStore| {
            g.get(data[name].as_tensor()).map(|t| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
        };
        for l in 0..spec.layers {
            for p in [
                "self_attn.q_proj.weight",
                "self_attn.k_proj.weight",
                "self_attn.v_proj.weight",
                "self_attn.o_proj.weight",
                "mlp.gate_proj.weight",
                "mlp.down_proj.weight",
                "input_layernorm.weight",
                "post_attention_layernorm.weight",
            ] {
                let name = format!("model.layers.{l}.{p}");
                let n = norm_of(&name, &grads).unwrap_or_else(|| panic!("{}: no gradient for {name}", spec.name));
                assert!(n > 0.0, "{}: zero gradient for {name}", spec.name);
            }
        }
        // The fused RmsNorm drops gradients: the norm scales get none in inference mode.
        let infer = grads_of(Mode::Infer);
        assert!(norm_of("model.layers.0.input_layernorm.weight", &infer).is_none());
    }
}
