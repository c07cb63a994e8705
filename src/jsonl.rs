//! Reading JSON Lines: one value per non-blank line, each bad line reported as
//! `file:line` with serde's reason.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Every non-blank line of `path` parsed as `T`, with its 1-based line number;
/// `describe` turns a parse error into the message shown after `file:line`.
pub fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
    describe: impl Fn(serde_json::Error) -> String,
) -> Result<Vec<(usize, T)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map(|v| (i + 1, v)).map_err(|e| Error::bad_input(path, Some(i + 1), describe(e)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_blank_lines_and_names_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "1\n\n  \n2\n").unwrap();
        let rows: Vec<(usize, u32)> = read_jsonl(&path, |e| e.to_string()).unwrap();
        assert_eq!(rows, vec![(1, 1), (4, 2)]);
        std::fs::write(&path, "1\n{oops\n").unwrap();
        let err = read_jsonl::<u32>(&path, |e| format!("bad: {e}")).unwrap_err().to_string();
        assert!(err.contains("x.jsonl:2: bad: "), "{err}");
    }
}
