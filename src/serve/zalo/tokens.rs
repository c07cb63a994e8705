//! The OA's tokens on disk: `{"access_token", "refresh_token", "expires_at"}`
//! (`expires_at` in Unix seconds). A refresh token is single-use, so the rotated
//! pair is written (atomically, owner-only 0600) before the new access token is used: a crash after
//! a refresh never leaves the file holding a spent refresh token.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic_private;
use crate::{Error, Result};

/// The OA's current tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Sent as the `access_token` header.
    pub access_token: String,
    /// Exchanged (once) for a new pair.
    pub refresh_token: String,
    /// When the access token expires, Unix seconds.
    pub expires_at: u64,
}

/// Tokens and the file they live in.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    tokens: Tokens,
}

impl TokenStore {
    /// Reads the token file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let tokens: Tokens = serde_json::from_str(&text)
            .map_err(|e| Error::bad_input(path, Some(e.line()), format!("not a Zalo token file: {e}")))?;
        Ok(TokenStore { path: path.to_path_buf(), tokens })
    }

    /// Starts the token file at `path` from a refresh token alone: the access token
    /// is obtained (and the pair rotated) on first use.
    pub fn seed(path: &Path, refresh_token: &str) -> Result<Self> {
        let mut store = TokenStore {
            path: path.to_path_buf(),
            tokens: Tokens { access_token: String::new(), refresh_token: refresh_token.into(), expires_at: 0 },
        };
        store.replace(store.tokens.clone())?;
        Ok(store)
    }

    /// The tokens in memory.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Persists `tokens` atomically, then makes them current.
    pub fn replace(&mut self, tokens: Tokens) -> Result<()> {
        let mut text = serde_json::to_string_pretty(&tokens).map_err(|e| Error::msg(e.to_string()))?;
        text.push('\n');
        write_atomic_private(&self.path, text.as_bytes())?;
        self.tokens = tokens;
        Ok(())
    }
}
