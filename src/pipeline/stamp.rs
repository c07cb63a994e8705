//! Up-to-date checks, as a build system does them: a stage's key is a hash of its
//! command line, of the `stylevn` executable that runs it (another build may write
//! other outputs from the same inputs) and of the content of every input file or
//! directory; a stage whose stamp holds the same key, and whose outputs exist, is
//! skipped.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use crate::{Error, Result};

/// What a finished stage leaves in `runs/<name>/stages/<stage>.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    /// Hash of the command line and of the inputs' content.
    pub key: String,
    /// Wall time the stage took, in seconds.
    pub seconds: f64,
}

/// Adds `path` (a file, or every file under a directory in name order) to `hasher`:
/// relative names and contents. A missing path hashes as missing.
fn hash_path(hasher: &mut Sha256, path: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let p = entry.map_err(|e| Error::io(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        files.sort();
    } else if path.is_file() {
        files.push(path.to_path_buf());
    } else {
        hasher.update(format!("missing:{}\n", path.display()));
        return Ok(());
    }
    for f in files {
        let rel = f.strip_prefix(path).unwrap_or(&f);
        hasher.update(format!("file:{}\n", rel.display()));
        let mut file = std::fs::File::open(&f).map_err(|e| Error::io(&f, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| Error::io(&f, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(())
}

/// The key of a stage that runs `args` on `inputs`.
pub fn stage_key(args: &[String], inputs: &[PathBuf]) -> Result<String> {
    let mut hasher = Sha256::new();
    for a in args {
        hasher.update(a.as_bytes());
        hasher.update([0]);
    }
    for input in inputs {
        hasher.update(format!("input:{}\n", input.display()));
        hash_path(&mut hasher, input)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The SHA-256 of the file at `path` (the executable a pipeline runs), in hex.
pub fn file_digest(path: &Path) -> Result<String> {
    if !path.is_file() {
        return Err(Error::msg(format!("{}: not a file", path.display())));
    }
    let mut hasher = Sha256::new();
    hash_path(&mut hasher, path)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The stamp at `path`, if there is a readable one.
pub fn read_stamp(path: &Path) -> Option<Stamp> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Writes `stamp` to `path` atomically.
pub fn write_stamp(path: &Path, stamp: &Stamp) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(stamp).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_arguments_and_input_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        std::fs::create_dir_all(sub.join("x")).unwrap();
        std::fs::write(sub.join("x/a.txt"), "one").unwrap();
        std::fs::write(sub.join("b.txt"), "two").unwrap();
        let args = vec!["train".to_string(), "--out".into(), "o".into()];
        let k1 = stage_key(&args, std::slice::from_ref(&sub)).unwrap();
        assert_eq!(k1, stage_key(&args, std::slice::from_ref(&sub)).unwrap());
        std::fs::write(sub.join("x/a.txt"), "One").unwrap();
        let k2 = stage_key(&args, std::slice::from_ref(&sub)).unwrap();
        assert_ne!(k1, k2);
        let other = vec!["train".to_string(), "--out".into(), "p".into()];
        assert_ne!(k2, stage_key(&other, std::slice::from_ref(&sub)).unwrap());
        let missing = dir.path().join("none");
        assert_ne!(k2, stage_key(&args, &[missing]).unwrap());
    }
}
