//! The one OpenAI-compatible client every stage talks through (synth's teacher,
//! eval's model under test and judge, serve's upstream proxy and fallback backend):
//! async-openai with raw JSON bodies, so any server's extensions pass through.
//!
//! It owns what was the same in each caller: the TLS provider, the base URL with
//! its version prefix, the bearer token, the `model` field, the streaming fields
//! (`stream`, `stream_options.include_usage`) and the time limit. It sends each
//! request once: async-openai's default transport retries 429s and 5xx, which would
//! double the load on a struggling server, hide rate limits from the serving
//! proxy and fold retry time into measured TTFT. Whoever wants retries (the
//! teacher, the judge) does them and counts them.

use std::pin::Pin;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use futures::Stream;
use serde_json::{json, Value};

/// The chunks of one streamed answer, as the server sent them.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Value, OpenAIError>> + Send>>;

/// Why a call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The time limit passed first.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// The server answered with an error, or the transport failed.
    #[error(transparent)]
    Failed(#[from] OpenAIError),
}

/// One OpenAI-compatible endpoint and the model asked there.
#[derive(Clone)]
pub struct OpenAiClient {
    client: async_openai::Client<OpenAIConfig>,
    base_url: String,
    model: String,
    timeout: Duration,
}

impl OpenAiClient {
    /// A client for `model` at `base_url` (with the version prefix, e.g.
    /// `http://127.0.0.1:8000/v1`); a non-streamed call, or the opening of a stream,
    /// may take at most `timeout`.
    pub fn new(base_url: &str, model: &str, api_key: Option<&str>, timeout: Duration) -> Self {
        crate::tls::install_crypto_provider();
        let config =
            OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/')).with_api_key(api_key.unwrap_or_default());
        let client = async_openai::Client::with_config(config)
            .with_http_service(async_openai::middleware::ReqwestService::default());
        OpenAiClient { client, base_url: base_url.to_string(), model: model.to_string(), timeout }
    }

    /// The base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The time limit of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One non-streamed `/chat/completions` call; `body` holds everything but
    /// `model`, which is set here. Returns the whole response object.
    pub async fn complete(&self, mut body: Value) -> Result<Value, CallError> {
        body["model"] = json!(self.model);
        let chat = self.client.chat();
        let call = chat.create_byot::<Value, Value>(body);
        Ok(tokio::time::timeout(self.timeout, call).await.map_err(|_| CallError::TimedOut(self.timeout))??)
    }

    /// Opens one streamed `/chat/completions` call, by `deadline` at the latest;
    /// `body` holds everything but `model`, `stream` and `stream_options`, which are
    /// set here (usage included in the last chunk). The caller reads the chunks
    /// under whatever limit it keeps for the whole answer.
    pub async fn stream(&self, mut body: Value, deadline: Instant) -> Result<ChunkStream, CallError> {
        body["model"] = json!(self.model);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let chat = self.client.chat();
        let open = chat.create_stream_byot::<Value, Value>(body);
        Ok(tokio::time::timeout_at(deadline.into(), open).await.map_err(|_| CallError::TimedOut(self.timeout))??)
    }
}
