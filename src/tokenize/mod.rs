//! Tokenization for training and serving: chat templates rendered exactly as
//! transformers renders them, assistant spans and label masks, and the chat
//! datasets `stylevn template` turns into training rows.
//!
//! Data flows one way: [`read_chats`] (JSONL or CSV, bad rows reported with
//! `file:line`) → [`template_chats`] (render with [`ChatTemplate`], locate
//! assistant turns, tokenize, dedup, split) → [`write_rows`]; the trainer reads
//! them back with [`read_rows`] and takes [`TemplatedRow::labels`].

pub mod assistant_spans;
pub mod chat_dataset;
pub mod chat_template;
pub mod pyjson;
pub mod pyrepr;
pub mod strftime;
pub mod template_config;
pub mod templated;
pub mod token_stats;
pub mod tool_prompt;

pub use assistant_spans::{label_mask, labels, render_with_assistant_spans, RenderedChat, IGNORE_INDEX};
pub use chat_dataset::{read_chats, BadRow, BadRowKind, ChatRecord, ChatRows};
pub use chat_template::ChatTemplate;
pub use pyjson::{to_py_json, PyJsonOptions};
pub use template_config::TemplateConfig;
pub use templated::{
    read_rows, template_chats, template_row, write_rows, TemplateOptions, TemplateSummary, TemplatedDataset,
    TemplatedRow,
};
pub use token_stats::TokenStats;
