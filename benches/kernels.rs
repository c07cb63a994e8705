//! The decode kernels alone, at Qwen2.5-0.5B's shapes, in bytes of weight read per
//! second, beside the machine's read bandwidth (a parallel sum over a buffer of the
//! same size as the LM head's): int4 (group 128) `gate_proj` and `down_proj`, the
//! int8 LM head, one token each. A kernel near the read bandwidth is bound by memory.
//! The kernels are the ones this CPU selects (`STYLEVN_CPU_CAP=avx2` for the AVX2 ones).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use stylevn::quant::{Int4Weight, Int8Weight};

fn int4(rows: usize, cols: usize, group: usize) -> Int4Weight {
    let codes: Vec<u8> = (0..rows * cols).map(|i| (i * 7 % 16) as u8).collect();
    let groups = rows * cols / group;
    let zeros: Vec<u8> = (0..groups).map(|i| (i * 5 % 16) as u8).collect();
    let scales: Vec<half::f16> = (0..groups).map(|i| half::f16::from_f32(0.01 + 0.001 * (i % 7) as f32)).collect();
    Int4Weight::from_codes(&codes, &zeros, &scales, rows, cols, group).expect("weight")
}

fn benches(c: &mut Criterion) {
    let cpu = stylevn::cpu::features().describe();
    let mut g = c.benchmark_group(format!("decode-kernels [{cpu}]"));
    for (name, rows, cols) in [("gate_proj 4864x896", 4864, 896), ("down_proj 896x4864", 896, 4864)] {
        let w = int4(rows, cols, 128);
        let x: Vec<f32> = (0..cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
        g.throughput(Throughput::Bytes(w.bytes() as u64));
        g.bench_function(format!("{} {name}", stylevn::quant::int4::kernel_name(128)), |b| b.iter(|| w.matmul(&x, 1)));
    }
    let (rows, cols) = (151936, 896);
    let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0).collect();
    let head = Int8Weight::quantize(&values, rows, cols).expect("head");
    drop(values);
    let x: Vec<f32> = (0..cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect();
    g.throughput(Throughput::Bytes(head.bytes() as u64));
    g.bench_function(format!("{} lm_head 151936x896", stylevn::quant::int8::kernel_name()), |b| {
        b.iter(|| head.matmul(&x, 1))
    });
    let buffer: Vec<u64> = (0..head.bytes() / 8).map(|i| i as u64).collect();
    g.throughput(Throughput::Bytes((buffer.len() * 8) as u64));
    g.bench_function("read bandwidth (parallel sum)", |b| {
        b.iter(|| buffer.par_chunks(1 << 16).map(|c| c.iter().fold(0u64, |a, &v| a.wrapping_add(v))).sum::<u64>())
    });
    g.finish();
}

criterion_group! {
    name = kernels;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(kernels);
