//! Reads the tensors of safetensors files one at a time with positioned reads
//! (header: 8-byte little-endian length, then JSON `{name: {"dtype", "shape",
//! "data_offsets"}}`; data after it). Unlike a memory map, nothing stays resident
//! once a tensor is dropped, so a streamed merge holds one tensor at a time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Where one tensor lies.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Checkpoint name.
    pub name: String,
    /// Stored dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    file: usize,
    start: u64,
    end: u64,
}

/// The tensors of one or more safetensors files.
#[derive(Debug)]
pub struct TensorReader {
    paths: Vec<PathBuf>,
    files: Vec<File>,
    /// Every tensor, in file order.
    pub entries: Vec<TensorEntry>,
}

fn parse_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I32" => DType::I32,
        "I64" => DType::I64,
        "U8" => DType::U8,
        "U32" => DType::U32,
        _ => return None,
    })
}

impl TensorReader {
    /// Reads the headers of `paths`.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for (fi, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let mut len = [0u8; 8];
            file.read_exact_at(&mut len, 0).map_err(|e| Error::io(path, e))?;
            let n = u64::from_le_bytes(len);
            if n > 100_000_000 {
                return Err(Error::bad_input(path, None, "not a safetensors file (header too large)"));
            }
            let mut header = vec![0u8; n as usize];
            file.read_exact_at(&mut header, 8).map_err(|e| Error::io(path, e))?;
            let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
                .map_err(|e| Error::bad_input(path, None, format!("bad safetensors header: {e}")))?;
            for (name, info) in json {
                if name == "__metadata__" {
                    continue;
                }
                let bad = |why: &str| Error::bad_input(path, None, format!("tensor `{name}`: {why}"));
                let dtype = info["dtype"].as_str().and_then(parse_dtype).ok_or_else(|| bad("unsupported dtype"))?;
                let shape = info["shape"]
                    .as_array()
                    .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| bad("bad shape"))?;
                let offsets = info["data_offsets"].as_array().ok_or_else(|| bad("no data_offsets"))?;
                let (Some(a), Some(b)) =
                    (offsets.first().and_then(|v| v.as_u64()), offsets.get(1).and_then(|v| v.as_u64()))
                else {
                    return Err(bad("bad data_offsets"));
                };
                if b - a != (shape.iter().product::<usize>() * dtype.size_in_bytes()) as u64 {
                    return Err(bad("data_offsets do not match the shape"));
                }
                entries.push(TensorEntry { name, dtype, shape, file: fi, start: 8 + n + a, end: 8 + n + b });
            }
            files.push(file);
        }
        Ok(TensorReader { paths: paths.to_vec(), files, entries })
    }

    /// Reads tensor `name` into memory.
    pub fn load(&self, name: &str) -> Result<Tensor> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::msg(format!("no tensor `{name}` in the model files")))?;
        let path: &Path = &self.paths[e.file];
        let mut bytes = vec![0u8; (e.end - e.start) as usize];
        self.files[e.file].read_exact_at(&mut bytes, e.start).map_err(|err| Error::io(path, err))?;
        Ok(Tensor::from_raw_buffer(&bytes, e.dtype, &e.shape, &Device::Cpu)?)
    }
}
