//! Streaming, sharded safetensors output, as `save_pretrained` lays it out:
//! one `model.safetensors`, or `model-00001-of-0000N.safetensors` shards listed in
//! `model.safetensors.index.json` (`{"metadata": {"total_size": bytes},
//! "weight_map": {tensor: file}}`).
//!
//! The safetensors format (huggingface/safetensors, README "Format"): 8 bytes of
//! little-endian header length, a JSON header `{name: {"dtype", "shape",
//! "data_offsets": [begin, end]}, "__metadata__": {...}}` padded with spaces to a
//! multiple of 8, then the raw little-endian tensor bytes. The whole plan (names,
//! dtypes, shapes) is known before any tensor is produced, so each shard's header is
//! written first and every tensor is produced, written and dropped one at a time:
//! peak memory is one tensor, not one shard.

use std::path::Path;

use candle_core::{DType, Tensor};
use serde_json::json;

use crate::atomic::{write_atomic, write_atomic_with};
use crate::{Error, Result};

/// One tensor of the output: its name, stored dtype and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Checkpoint name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Stored dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Bytes the tensor occupies in the file.
    pub fn bytes(&self) -> u64 {
        (self.shape.iter().product::<usize>() * self.dtype.size_in_bytes()) as u64
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ShardSummary {
    /// The weight file names, in order.
    pub files: Vec<String>,
    /// Sum of the tensor bytes.
    pub total_bytes: u64,
}

/// Parses a size like `5GB`, `500MB`, `2GiB` or a plain byte count (units as
/// transformers' `max_shard_size`: GB = 10^9, GiB = 2^30).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| Error::msg(format!("bad size `{text}` (e.g. 5GB, 500MB)")))?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(Error::msg(format!("bad size unit `{other}` in `{text}` (use B, KB, MB, GB, KiB, MiB, GiB)")))
        }
    };
    Ok((value * mult) as u64)
}

/// Splits `specs` (in order) into shards of at most `max_shard_bytes` each; a tensor
/// larger than the limit gets a shard of its own, as transformers does.
pub fn plan_shards(specs: &[TensorSpec], max_shard_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current = 0u64;
    for (i, spec) in specs.iter().enumerate() {
        let b = spec.bytes();
        match shards.last_mut() {
            Some(last) if !last.is_empty() && current + b <= max_shard_bytes => {
                last.push(i);
                current += b;
            }
            _ => {
                shards.push(vec![i]);
                current = b;
            }
        }
    }
    shards
}

/// Writes `specs` into `dir`, calling `produce(index, spec)` for each tensor in
/// order; the tensor it returns must have the spec's shape (it is cast to the spec's
/// dtype). Each file is written atomically.
pub fn write_sharded(
    dir: &Path,
    specs: &[TensorSpec],
    max_shard_bytes: u64,
    mut produce: impl FnMut(usize, &TensorSpec) -> Result<Tensor>,
) -> Result<ShardSummary> {
    let shards = plan_shards(specs, max_shard_bytes);
    let n = shards.len();
    let names: Vec<String> = if n <= 1 {
        vec!["model.safetensors".to_string()]
    } else {
        (1..=n).map(|i| format!("model-{i:05}-of-{n:05}.safetensors")).collect()
    };
    for (shard, file) in shards.iter().zip(&names) {
        let path = dir.join(file);
        let mut failure: Option<Error> = None;
        let written = write_atomic_with(&path, |w| {
            w.write_all(&header(specs, shard))?;
            for &i in shard {
                let bytes = produce(i, &specs[i]).and_then(|t| tensor_bytes(&t, &specs[i]));
                match bytes {
                    Ok(b) => w.write_all(&b)?,
                    Err(e) => {
                        failure = Some(e);
                        return Err(std::io::Error::other("tensor production failed"));
                    }
                }
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written?;
    }
    let total_bytes: u64 = specs.iter().map(TensorSpec::bytes).sum();
    if n > 1 {
        let mut weight_map: Vec<(&str, &str)> = shards
            .iter()
            .zip(&names)
            .flat_map(|(s, f)| s.iter().map(move |&i| (specs[i].name.as_str(), f.as_str())))
            .collect();
        weight_map.sort();
        let map: serde_json::Map<String, serde_json::Value> =
            weight_map.into_iter().map(|(k, f)| (k.to_string(), json!(f))).collect();
        let index = json!({"metadata": {"total_size": total_bytes}, "weight_map": map});
        let text = serde_json::to_string_pretty(&index).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&dir.join("model.safetensors.index.json"), text.as_bytes())?;
    }
    Ok(ShardSummary { files: names, total_bytes })
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::I32 => "I32",
        DType::I64 => "I64",
        DType::U8 => "U8",
        DType::U32 => "U32",
        DType::F64 => "F64",
        _ => "UNSUPPORTED",
    }
}

/// The length prefix and JSON header of one shard.
fn header(specs: &[TensorSpec], shard: &[usize]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for &i in shard {
        let s = &specs[i];
        map.insert(
            s.name.clone(),
            json!({"dtype": dtype_name(s.dtype), "shape": s.shape, "data_offsets": [offset, offset + s.bytes()]}),
        );
        offset += s.bytes();
    }
    let mut text = serde_json::to_string(&map).unwrap_or_default().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out
}

/// The little-endian bytes of `t` cast to the spec's dtype, after checking its shape.
fn tensor_bytes(t: &Tensor, spec: &TensorSpec) -> Result<Vec<u8>> {
    if t.dims() != spec.shape.as_slice() {
        return Err(Error::msg(format!("{}: produced shape {:?}, planned {:?}", spec.name, t.dims(), spec.shape)));
    }
    let t = t.to_dtype(spec.dtype)?.flatten_all()?;
    Ok(match spec.dtype {
        DType::F32 => t.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => t.to_vec1::<half::f16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::BF16 => t.to_vec1::<half::bf16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I32 => t.to_vec1::<i32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I64 => t.to_vec1::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::U8 => t.to_vec1::<u8>()?,
        DType::U32 => t.to_vec1::<u32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => t.to_vec1::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        other => return Err(Error::msg(format!("{}: cannot store dtype {other:?}", spec.name))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sizes_parse_like_transformers() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2MiB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn shards_round_trip_through_candle() {
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<TensorSpec> =
            (0..5).map(|i| TensorSpec { name: format!("t{i}"), dtype: DType::F16, shape: vec![3, 4 + i] }).collect();
        let make =
            |i: usize| Tensor::arange(0f32, (3 * (4 + i)) as f32, &Device::Cpu).unwrap().reshape((3, 4 + i)).unwrap();
        let summary = write_sharded(dir.path(), &specs, 60, |i, _| Ok(make(i))).unwrap();
        assert!(summary.files.len() > 1);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("model.safetensors.index.json")).unwrap()).unwrap();
        assert_eq!(index["metadata"]["total_size"], summary.total_bytes);
        for (i, spec) in specs.iter().enumerate() {
            let file = index["weight_map"][&spec.name].as_str().unwrap();
            let loaded = candle_core::safetensors::load(dir.path().join(file), &Device::Cpu).unwrap();
            let got = loaded[&spec.name].to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(got, make(i).to_vec2::<f32>().unwrap());
        }
    }
}
