//! The library's error type: every variant carries the context (file, line, field)
//! a user needs to fix the input.

use std::path::PathBuf;

/// Errors raised by the stylevn library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it prints once).
        error: std::io::Error,
    },
    /// A file's content is not what it must be.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadInput {
        /// The file involved.
        path: PathBuf,
        /// 1-based line (or row) number, when known.
        line: Option<usize>,
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
    /// The tokenizer library failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Anything else, with a message that says what went wrong.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }

    /// An [`Error::BadInput`] for `path` (and `line`, 1-based, when known).
    pub fn bad_input(path: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::BadInput { path: path.into(), line, message: message.into() }
    }

    /// An [`Error::Msg`].
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Msg(message.into())
    }
}

impl From<tokenizers::Error> for Error {
    fn from(e: tokenizers::Error) -> Self {
        Error::Tokenizer(e.to_string())
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
