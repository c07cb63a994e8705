//! `configs/serve.toml`: the settings of `stylevn serve` (engine, request limits,
//! defaults, logs, per-client limits and the Zalo channel).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::HttpLimits;
use super::client_limits::ClientLimitsConfig;
use super::engine::EngineConfig;
use super::local::GenerationDefaults;
use super::request::RequestLimits;
use super::zalo;
use crate::model::linear::ComputeDtype;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The settings of `stylevn serve`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Compute dtype: `f32` or `f16`.
    pub dtype: ComputeDtype,
    /// How a 4-bit checkpoint's LM head is held: `int8`, `int4` or `fp16`.
    pub lm_head: crate::quant::LmHead,
    /// Most sequences decoded together.
    pub max_num_seqs: usize,
    /// Most tokens (prompt + output) per sequence.
    pub max_model_len: usize,
    /// Most waiting requests; more get 429.
    pub max_queue: usize,
    /// Tokens per forward step.
    pub max_batch_tokens: usize,
    /// KV positions kept by the prefix cache (0 disables it).
    pub prefix_cache_tokens: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most messages per request.
    pub max_messages: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// Temperature when a request gives none.
    pub temperature: f64,
    /// `top_p` when a request gives none.
    pub top_p: f64,
    /// Seconds one request may take, queueing included.
    pub request_timeout_s: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Put the assistant's chat routes behind the API key too.
    pub assistant_requires_key: bool,
    /// `[limits]`: per-client limits of the assistant's public routes.
    pub limits: ClientLimitsConfig,
    /// `[zalo]`: the assistant's Zalo OA channel.
    pub zalo: ZaloSection,
}

/// `[zalo]` of `configs/serve.toml`: the assistant's Zalo OA channel. Secrets are
/// never in the file: it names the environment variables that hold them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZaloSection {
    /// The Zalo app id; the channel is on when it is set.
    pub app_id: Option<String>,
    /// Access and refresh tokens, rewritten atomically at each refresh.
    pub token_file: PathBuf,
    /// Handled message ids, kept across restarts (in memory when unset).
    pub seen_db: Option<PathBuf>,
    /// OA API base URL.
    pub api_base: String,
    /// OAuth base URL.
    pub oauth_base: String,
    /// Environment variable holding the OA secret key (webhook signatures).
    pub oa_secret_key_env: String,
    /// Environment variable holding the app secret (token refresh).
    pub app_secret_env: String,
    /// Environment variable holding the first refresh token (read when the token file is missing).
    pub refresh_token_env: String,
    /// Retries per reply or refresh.
    pub max_retries: u32,
    /// First retry delay in ms, doubled each time.
    pub backoff_ms: u64,
    /// Refresh this many seconds before the access token expires.
    pub refresh_margin_s: u64,
}

impl Default for ZaloSection {
    fn default() -> Self {
        ZaloSection {
            app_id: None,
            token_file: PathBuf::from("data/zalo-tokens.json"),
            seen_db: None,
            api_base: zalo::API_BASE.into(),
            oauth_base: zalo::OAUTH_BASE.into(),
            oa_secret_key_env: "ZALO_OA_SECRET_KEY".into(),
            app_secret_env: "ZALO_APP_SECRET".into(),
            refresh_token_env: "ZALO_REFRESH_TOKEN".into(),
            max_retries: 3,
            backoff_ms: 500,
            refresh_margin_s: 300,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        ServeConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            dtype: ComputeDtype::F32,
            lm_head: crate::quant::LmHead::default(),
            max_num_seqs: engine.max_num_seqs,
            max_model_len: engine.max_model_len,
            max_queue: engine.max_queue,
            max_batch_tokens: engine.max_batch_tokens,
            prefix_cache_tokens: engine.prefix_cache_tokens,
            max_body_bytes: 2 * 1024 * 1024,
            max_messages: 512,
            max_tokens_limit: 4096,
            default_max_tokens: 512,
            temperature: 0.7,
            top_p: 1.0,
            request_timeout_s: 300,
            log_format: LogFormat::Text,
            assistant_requires_key: false,
            limits: ClientLimitsConfig::default(),
            zalo: ZaloSection::default(),
        }
    }
}

impl ServeConfig {
    /// The engine's limits.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            max_num_seqs: self.max_num_seqs,
            max_model_len: self.max_model_len,
            max_queue: self.max_queue,
            max_batch_tokens: self.max_batch_tokens,
            prefix_cache_tokens: self.prefix_cache_tokens,
        }
    }

    /// What a request that does not say gets.
    pub fn generation_defaults(&self) -> GenerationDefaults {
        GenerationDefaults {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.default_max_tokens,
            request_timeout: Duration::from_secs(self.request_timeout_s),
        }
    }

    /// The HTTP request limits.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_body_bytes: self.max_body_bytes,
            request: RequestLimits { max_messages: self.max_messages, max_tokens: self.max_tokens_limit },
        }
    }
}
