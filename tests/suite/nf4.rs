//! NF4 quantization against bitsandbytes (goldens from scripts/reference/nf4_reference.py,
//! bitsandbytes 0.50 on this CPU). Inputs are rebuilt from the tiny-model formula.

use crate::common;

use common::{floats, golden};
use stylevn::model::tiny::uniform;
use stylevn::quant::dynamic_map::signed_dynamic_map;
use stylevn::quant::Nf4Weight;

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex_f32(s: &str) -> Vec<f32> {
    hex_bytes(s).chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn nf4_matches_bitsandbytes() {
    let g = golden("nf4.json");
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (rows, cols) = (case["rows"].as_u64().unwrap() as usize, case["cols"].as_u64().unwrap() as usize);
        let scale = case["scale"].as_f64().unwrap() as f32;
        let mut values: Vec<f32> = uniform(name, rows * cols).into_iter().map(|u| u * scale).collect();
        for o in case["outliers"].as_array().unwrap() {
            let (r, c, v) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize, o[2].as_f64().unwrap());
            values[r * cols + c] = v as f32;
        }
        let w = Nf4Weight::quantize(&values, rows, cols);

        // 4-bit codes and packing: bit-exact.
        assert_eq!(w.codes, hex_bytes(case["packed_hex"].as_str().unwrap()), "{name}: packed codes");
        // Double quantization: offset and second-level scales.
        let offset = case["absmax_offset"].as_f64().unwrap() as f32;
        assert!((w.absmax_offset - offset).abs() <= 1e-6 * offset.abs(), "{name}: offset");
        // torch sums the mean in f32 (cascade), we in f64: the offset may differ in its
        // last bits, and absmax2 = max |absmax - offset| inherits that difference.
        for (a, b) in w.absmax2.iter().zip(floats(&case["absmax2"])) {
            assert!((a - b).abs() <= 1e-6 * offset.abs().max(b.abs()), "{name}: absmax2 {a} vs {b}");
        }
        // Absmax codes: exactly bitsandbytes' reference quantizer; its CPU C kernel
        // searches approximately and may land one code away on a few values.
        let reference: Vec<u8> =
            case["absmax_q_reference"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        assert_eq!(w.absmax_q, reference, "{name}: absmax codes");
        let bnb_cpu: Vec<u8> = case["absmax_q"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        let differ = w.absmax_q.iter().zip(&bnb_cpu).filter(|(a, b)| a != b).count();
        assert!(w.absmax_q.iter().zip(&bnb_cpu).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 1), "{name}");
        assert!(differ * 40 <= bnb_cpu.len().max(40), "{name}: {differ} absmax codes differ from the CPU kernel");

        // Dequantization: the published formula on bitsandbytes' codes; equal where
        // the absmax codes agree, within the one dynamic-map step where they do not.
        let want = hex_f32(case["formula_dequantized_f32_hex"].as_str().unwrap());
        let got = w.dequantize();
        let map = signed_dynamic_map();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let block = i / 64;
            let (ours, theirs) = (w.absmax_q[block] as usize, bnb_cpu[block] as usize);
            let step = (map[ours] - map[theirs]).abs() * w.absmax2[block / 256];
            assert!((a - b).abs() <= step + 1e-6 * b.abs().max(1e-3), "{name}[{i}]: {a} vs {b}");
        }
    }
}

#[test]
fn dynamic_map_equals_bitsandbytes() {
    let g = golden("nf4.json");
    let want = floats(&g["cases"][0]["code2"]);
    for (a, b) in signed_dynamic_map().iter().zip(&want) {
        assert!((a - b).abs() <= 1e-7, "{a} vs {b}");
    }
}
