//! The on-disk vector index, published atomically in generations.
//!
//! ```text
//! DIR/CURRENT                    name of the live generation ("gen-<unix ms>-<pid>"), replaced by rename
//! DIR/gen-*/manifest.json        format, encoder id, model, dimension, {document id: content hash}
//! DIR/gen-*/docs.jsonl           one Document per line
//! DIR/gen-*/vectors.f32          little-endian f32, row i = line i of docs.jsonl, `dim` per row
//! DIR/.lock                      held (flock) by the one run allowed to write
//! ```
//!
//! A writer fills `DIR/.tmp-gen-*`, fsyncs it, renames it to `DIR/gen-*`, then
//! replaces `CURRENT` by an atomic rename. A reader (or a killed writer) therefore
//! sees either the old generation or the new one, never a mix; `serve` reloads by
//! noticing that `CURRENT` changed. The previous generation is kept so a reader
//! that just read the old `CURRENT` can still open it; older ones and leftovers of
//! killed runs are removed by the next writer, under the lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chunk::Document;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// Version of the layout above.
pub const FORMAT: u32 = 1;
const CURRENT: &str = "CURRENT";
const LOCK: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";
const GEN_PREFIX: &str = "gen-";

/// `manifest.json` of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Id of the encoder that made the vectors (`Encoder::id`).
    pub encoder_id: String,
    /// The model as given to embed-catalog (directory or repo id), to load the query encoder.
    pub model: String,
    /// Vector dimension.
    pub dim: usize,
    /// This generation's name.
    pub generation: String,
    /// Creation time, unix seconds.
    pub created_unix: u64,
    /// Content hash of every document, by id.
    pub documents: BTreeMap<String, String>,
}

/// One generation loaded in memory.
#[derive(Debug, Clone)]
pub struct Index {
    /// The index directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Documents, in vector row order.
    pub docs: Vec<Document>,
    /// `docs.len() * manifest.dim` floats, row-major.
    pub vectors: Vec<f32>,
}

impl Index {
    /// Opens the live generation of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        // A writer may remove an old generation between reading CURRENT and opening it: retry once.
        let mut last_err = None;
        for _ in 0..2 {
            let Some(generation) = current_generation(dir)? else {
                return Err(Error::msg(format!(
                    "{}: no index here yet (no CURRENT file); build one with `stylevn embed-catalog --index {}`",
                    dir.display(),
                    dir.display()
                )));
            };
            match Self::open_generation(dir, &generation) {
                Ok(ix) => return Ok(ix),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("two attempts"))
    }

    /// Opens generation `generation` of `dir`.
    pub fn open_generation(dir: &Path, generation: &str) -> Result<Self> {
        let gdir = dir.join(generation);
        let manifest_path = gdir.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::bad_input(&manifest_path, Some(e.line()), format!("not an index manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(Error::bad_input(
                &manifest_path,
                None,
                format!("index format {} (this stylevn reads {FORMAT}); rebuild with --full", manifest.format),
            ));
        }
        let docs_path = gdir.join("docs.jsonl");
        let file = File::open(&docs_path).map_err(|e| Error::io(&docs_path, e))?;
        let mut docs = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::io(&docs_path, e))?;
            docs.push(
                serde_json::from_str(&line).map_err(|e| Error::bad_input(&docs_path, Some(i + 1), e.to_string()))?,
            );
        }
        let vec_path = gdir.join("vectors.f32");
        let bytes = std::fs::read(&vec_path).map_err(|e| Error::io(&vec_path, e))?;
        if bytes.len() != docs.len() * manifest.dim * 4 || manifest.documents.len() != docs.len() {
            return Err(Error::bad_input(
                &vec_path,
                None,
                format!(
                    "{} bytes for {} documents of dimension {}: the generation is damaged; rebuild with --full",
                    bytes.len(),
                    docs.len(),
                    manifest.dim
                ),
            ));
        }
        let vectors = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        Ok(Index { dir: dir.to_path_buf(), manifest, docs, vectors })
    }

    /// The vector of document `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.manifest.dim..(i + 1) * self.manifest.dim]
    }

    /// This generation's name.
    pub fn generation(&self) -> &str {
        &self.manifest.generation
    }
}

/// The live generation's name, or `None` when `dir` holds no index.
pub fn current_generation(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(CURRENT);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes a new generation from `docs` and `vectors` and makes it live. Needs the
/// lock (`_lock`); returns the generation's name.
pub fn publish(
    dir: &Path,
    _lock: &IndexLock,
    mut manifest: Manifest,
    docs: &[Document],
    vectors: &[f32],
) -> Result<String> {
    if vectors.len() != docs.len() * manifest.dim {
        return Err(Error::msg(format!(
            "{} floats for {} documents of dimension {}",
            vectors.len(),
            docs.len(),
            manifest.dim
        )));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("{GEN_PREFIX}{}-{}", now.as_millis(), std::process::id());
    manifest.generation = name.clone();
    manifest.created_unix = now.as_secs();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write_synced(&tmp.join("docs.jsonl"), |w| {
        for d in docs {
            serde_json::to_writer(&mut *w, d)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    write_synced(&tmp.join("vectors.f32"), |w| {
        for v in vectors {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })?;
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(e.to_string()))?;
    write_synced(&tmp.join("manifest.json"), |w| w.write_all(&manifest_json))?;
    sync_dir(&tmp)?;
    let final_dir = dir.join(&name);
    std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    sync_dir(dir)?;
    write_atomic(&dir.join(CURRENT), format!("{name}\n").as_bytes())?;
    sync_dir(dir)?;
    Ok(name)
}

/// Removes generations other than `keep` (the live and previous ones) and leftovers of killed runs.
pub fn collect_garbage(dir: &Path, _lock: &IndexLock, keep: &[&str]) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(GEN_PREFIX) || name.starts_with(TMP_PREFIX);
        if ours && entry.path().is_dir() && !keep.contains(&name.as_str()) {
            std::fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn write_synced(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(&file);
    fill(&mut w).map_err(|e| Error::io(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))?;
    drop(w);
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The writer's lock on an index directory (`DIR/.lock`, an advisory `flock` that the
/// kernel releases when the process exits, even by SIGKILL). Dropping it unlocks.
#[derive(Debug)]
pub struct IndexLock {
    _file: File,
}

impl IndexLock {
    /// Takes the lock without waiting: `Ok(None)` when another process holds it (its
    /// pid, when it wrote one, is in [`IndexLock::holder`]).
    pub fn try_acquire(dir: &Path) -> Result<Option<Self>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if !try_flock(&file).map_err(|e| Error::io(&path, e))? {
            return Ok(None);
        }
        file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())).map_err(|e| Error::io(&path, e))?;
        Ok(Some(IndexLock { _file: file }))
    }

    /// The pid written by the process holding (or last holding) the lock of `dir`.
    pub fn holder(dir: &Path) -> Option<u32> {
        std::fs::read_to_string(dir.join(LOCK)).ok()?.trim().parse().ok()
    }
}

#[cfg(unix)]
fn try_flock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(not(unix))]
fn try_flock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}
