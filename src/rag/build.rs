//! Incremental index builds: compare the new documents with the live generation by
//! id and content hash, embed only the new and changed ones, reuse the other
//! vectors, drop the removed documents, and publish a new generation.
//!
//! Without changes (same encoder, same documents and metadata) nothing is embedded
//! and nothing is published. A different encoder, a damaged live generation or
//! `full` rebuilds everything.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::chunk::Document;
use super::encoders::{encoder_id_of, Encoder, Precision, TextKind};
use super::index::{collect_garbage, current_generation, publish, Index, IndexLock, Manifest, FORMAT};
use crate::Result;

/// Options of one build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Re-embed every document.
    pub full: bool,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// The encoder's matrix-product precision.
    pub precision: Precision,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { full: false, batch_size: super::encoders::DEFAULT_BATCH_SIZE, precision: Precision::Auto }
    }
}

/// What a build did: the one-line cron summary and `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildSummary {
    /// Documents new in this run (embedded).
    pub added: usize,
    /// Documents whose text changed (re-embedded).
    pub updated: usize,
    /// Documents gone from the catalog (removed).
    pub deleted: usize,
    /// Documents whose vector was reused.
    pub unchanged: usize,
    /// Documents embedded in this run (added + updated, or all of them on a full rebuild).
    pub embedded: usize,
    /// Seconds spent embedding (model load excluded): `embedded / embed_seconds` is the throughput.
    pub embed_seconds: f64,
    /// The precision the encoder ran in (`f32` / `bf16`); empty when nothing was embedded.
    pub precision: String,
    /// Documents in the published index.
    pub documents: usize,
    /// The live generation after the run.
    pub generation: String,
    /// Whether a new generation was published (false when nothing changed).
    pub published: bool,
    /// Whether every document was embedded (`--full`, a new encoder, or no usable index).
    pub full_rebuild: bool,
    /// The encoder's id.
    pub encoder_id: String,
    /// Wall time of the build, seconds.
    pub seconds: f64,
}

/// Progress events of a build, for the command's progress bar.
#[derive(Debug, Clone, Copy)]
pub enum BuildProgress {
    /// `n` documents will be embedded.
    Start(usize),
    /// `n` more documents were embedded.
    Embedded(usize),
}

/// Builds (or updates) the index in `dir` from `docs` with the encoder `model`.
/// `lock` proves this process holds the index lock.
pub fn build_index(
    dir: &Path,
    lock: &IndexLock,
    model: &str,
    docs: Vec<Document>,
    opts: &BuildOptions,
    progress: &(dyn Fn(BuildProgress) + Sync),
) -> Result<BuildSummary> {
    let started = Instant::now();
    let encoder_id = encoder_id_of(model)?;
    // A generation that cannot be read (or was made by another encoder) is rebuilt from scratch.
    let live_before = current_generation(dir)?;
    // The live generation, when readable: the baseline of the counts.
    let live = live_before.as_deref().and_then(|g| Index::open_generation(dir, g).ok());
    // Its vectors are reused only when made by this encoder, and not with --full.
    let reusable = live.as_ref().is_some_and(|ix| ix.manifest.encoder_id == encoder_id) && !opts.full;
    let previous = if reusable { live.as_ref() } else { None };
    let mut summary = BuildSummary { encoder_id: encoder_id.clone(), full_rebuild: !reusable, ..Default::default() };

    let old: HashMap<&str, usize> = live
        .as_ref()
        .map(|ix| ix.docs.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect())
        .unwrap_or_default();
    let mut to_embed = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let same = match (old.get(d.id.as_str()), &live) {
            (Some(&j), Some(ix)) if ix.docs[j].hash == d.hash => Some(true),
            (Some(_), _) => Some(false),
            (None, _) => None,
        };
        match same {
            Some(true) => summary.unchanged += 1,
            Some(false) => summary.updated += 1,
            None => summary.added += 1,
        }
        if same != Some(true) || previous.is_none() {
            to_embed.push(i);
        }
    }
    let new_ids: std::collections::HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    summary.deleted = old.keys().filter(|id| !new_ids.contains(*id)).count();
    summary.documents = docs.len();

    if let Some(ix) = previous {
        if to_embed.is_empty() && summary.deleted == 0 && ix.docs == docs {
            summary.generation = ix.generation().to_string();
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok(summary);
        }
    }

    let (dim, fresh) = if to_embed.is_empty() {
        (previous.map(|ix| ix.manifest.dim).unwrap_or(0), Vec::new())
    } else {
        progress(BuildProgress::Start(to_embed.len()));
        let texts: Vec<String> = to_embed.iter().map(|&i| docs[i].text.clone()).collect();
        let encoder = Encoder::load_for(model, &texts, TextKind::Passage, opts.precision)?;
        let t0 = Instant::now();
        let vecs =
            encoder.embed(&texts, TextKind::Passage, opts.batch_size, &|n| progress(BuildProgress::Embedded(n)))?;
        summary.embed_seconds = t0.elapsed().as_secs_f64();
        summary.precision = encoder.precision().to_string();
        summary.embedded = texts.len();
        (encoder.dim(), vecs)
    };

    let mut vectors = vec![0f32; docs.len() * dim];
    let fresh_of: HashMap<usize, &Vec<f32>> = to_embed.iter().copied().zip(fresh.iter()).collect();
    for (i, d) in docs.iter().enumerate() {
        let row = match (fresh_of.get(&i), previous) {
            (Some(v), _) => v.as_slice(),
            (None, Some(ix)) => ix.vector(old[d.id.as_str()]),
            (None, None) => unreachable!("without a previous index every document is embedded"),
        };
        vectors[i * dim..(i + 1) * dim].copy_from_slice(row);
    }
    let manifest = Manifest {
        format: FORMAT,
        encoder_id,
        model: model.to_string(),
        dim,
        generation: String::new(),
        created_unix: 0,
        documents: docs.iter().map(|d| (d.id.clone(), d.hash.clone())).collect(),
    };
    let generation = publish(dir, lock, manifest, &docs, &vectors)?;
    // Keep what was live before: a reader may have just read the old CURRENT.
    let mut keep = vec![generation.as_str()];
    keep.extend(live_before.as_deref());
    collect_garbage(dir, lock, &keep)?;
    summary.generation = generation;
    summary.published = true;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
