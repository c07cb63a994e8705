//! Engine micro-benchmarks: one decode step and a 128-token prefill of
//! SmolLM2-135M-Instruct (after scripts/fetch-models.sh), and the tiny Qwen2
//! fixture; and the serving engine's steady state, batched decode steps of 16
//! sequences with long caches. Side-by-side comparisons with PyTorch and
//! llama.cpp live in benches/compare_decode.py.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use stylevn::model::tiny::TINY_MODELS;
use stylevn::model::{load_transformer, DenseLoader, LogitsAt, Mode, ModelFiles, Transformer};

/// Sequences decoded together (`serve`'s default `max_num_seqs`).
const BATCH_SEQS: usize = 16;
/// Positions already cached per sequence (a third of the store's 1,663-token system prompt and tools).
const BATCH_CONTEXT: usize = 512;
/// Decode steps per measured iteration.
const BATCH_STEPS: usize = 8;

fn load(dir: &std::path::Path) -> Transformer {
    let files = ModelFiles::from_dir(dir).expect("model directory");
    load_transformer(&files, DType::F32, &Device::Cpu, &DenseLoader).expect("model loads")
}

fn bench_model(c: &mut Criterion, name: &str, model: &Transformer) {
    let vocab = model.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919 + 13) % vocab).collect();
    c.bench_function(&format!("{name}/prefill_128"), |b| {
        b.iter(|| {
            let mut cache = model.new_cache();
            model.forward_next(&prompt, &mut cache).expect("prefill")
        })
    });
    let mut cache = model.new_cache();
    model.forward_next(&prompt, &mut cache).expect("prefill");
    c.bench_function(&format!("{name}/decode_step_at_128"), |b| {
        b.iter_batched(
            || cache.clone(),
            |mut cache| model.forward_next(&[42], &mut cache).expect("decode"),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// [`BATCH_STEPS`] decode steps of [`BATCH_SEQS`] sequences with [`BATCH_CONTEXT`] cached positions.
fn bench_batched_decode(c: &mut Criterion, name: &str, model: &Transformer) {
    let vocab = model.config().vocab_size as u32;
    let context: Vec<u32> = (0..BATCH_CONTEXT as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let mut cache = model.new_cache();
    model.forward_next(&context, &mut cache).expect("prefill");
    let (tokens, seq_lens) = (vec![42u32; BATCH_SEQS], vec![1usize; BATCH_SEQS]);
    c.bench_function(&format!("{name}/decode_{BATCH_SEQS}_seqs_at_{BATCH_CONTEXT}_x{BATCH_STEPS}"), |b| {
        b.iter_batched(
            || {
                // One step outside the timing: each sequence gets caches of its own, as in serving.
                let mut caches = vec![cache.clone(); BATCH_SEQS];
                model.forward(&tokens, &seq_lens, Some(&mut caches), Mode::Infer, LogitsAt::Last).expect("decode");
                caches
            },
            |mut caches| {
                for _ in 0..BATCH_STEPS {
                    model.forward(&tokens, &seq_lens, Some(&mut caches), Mode::Infer, LogitsAt::Last).expect("decode");
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    let tiny_dir = tempfile::tempdir().expect("tempdir");
    TINY_MODELS[0].write_dir(tiny_dir.path()).expect("tiny model");
    bench_model(c, "tiny-qwen2", &load(tiny_dir.path()));
    let smol = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/smollm2-135m-instruct");
    assert!(smol.is_dir(), "{} missing: run scripts/fetch-models.sh", smol.display());
    let smol = load(&smol);
    bench_model(c, "smollm2-135m", &smol);
    bench_batched_decode(c, "smollm2-135m", &smol);
}

criterion_group! {
    name = decode;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(decode);
