//! The assistant inside `stylevn serve`: its model is whichever model id the server
//! registered (the local engine or the upstream proxy), reached in process through
//! the [`ModelRegistry`], and the assistant itself is registered as one more model
//! id (`stylevn-assistant`) on `/v1/chat/completions`.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::backend::{AssistantMessage, ServedModel};
use super::config::AssistantConfig;
use super::retrieval::Retriever;
use super::turn::{Assistant, AssistantParts, Turn};
use crate::data::exchange_log::ExchangeLog;
use crate::serve::api::ModelRegistry;
use crate::serve::api_error::ApiError;
use crate::serve::cache::AnswerCache;
use crate::serve::chat::{ChatRequest, ChatService, ChatStream};
use crate::serve::tools::SqliteTools;
use crate::serve::upstream::{UpstreamChatService, UpstreamConfig};
use crate::Result;

/// The service registered as `model`, looked up at each call: the server registers
/// its model once it has loaded, after the assistant is built.
struct Registered {
    registry: Arc<ModelRegistry>,
    model: String,
}

impl ChatService for Registered {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, std::result::Result<ChatStream, ApiError>> {
        match self.registry.get(&self.model) {
            Some(service) => service.chat(request),
            None => {
                let message = format!("model {} is not served yet", self.model);
                Box::pin(async move { Err(ApiError::unavailable(message)) })
            }
        }
    }
}

/// The assistant as a [`ChatService`]: the delivered (verified) answer as one
/// content event, then `stop`.
pub struct AssistantService {
    assistant: Arc<Assistant>,
}

impl AssistantService {
    /// Serves `assistant`.
    pub fn new(assistant: Arc<Assistant>) -> Self {
        AssistantService { assistant }
    }
}

impl ChatService for AssistantService {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, std::result::Result<ChatStream, ApiError>> {
        let assistant = self.assistant.clone();
        Box::pin(async move {
            let mut sampling = super::backend::Sampling {
                temperature: assistant.config().temperature,
                top_p: request.top_p.map(|p| p as f32),
                max_tokens: assistant.config().max_tokens,
                seed: request.seed,
            };
            if let Some(t) = request.temperature {
                sampling.temperature = t as f32;
            }
            if let Some(m) = request.max_tokens {
                sampling.max_tokens = sampling.max_tokens.min(m as u32);
            }
            // Behind the API key: a trusted caller, not capped per client.
            let turn = Turn {
                messages: request.messages,
                user: None,
                client: None,
                channel: "api".into(),
                sampling: Some(sampling),
            };
            let reply = assistant.respond(turn).await.map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(AssistantMessage::text(reply.content).with_usage(reply.usage).into_stream())
        })
    }
}

/// Where the assistant's parts come from (`stylevn serve` flags).
#[derive(Debug, Clone)]
pub struct AssistantOptions {
    /// `configs/assistant.toml` (defaults when absent).
    pub config: Option<PathBuf>,
    /// The store database.
    pub db: PathBuf,
    /// The catalog index (`embed-catalog` output); no retrieval without it.
    pub index: Option<PathBuf>,
    /// Policy files: a change invalidates cached answers.
    pub policies: Option<PathBuf>,
    /// Answer cache database (in memory when absent).
    pub cache_db: Option<PathBuf>,
    /// Exchange log database (feedback needs it).
    pub log_db: Option<PathBuf>,
    /// A stronger OpenAI-compatible model for answers that fail the guardrails.
    pub fallback: Option<(String, String, Option<String>)>,
}

/// Builds the assistant over the model served as `model` in `registry`.
pub fn build_assistant(options: &AssistantOptions, registry: Arc<ModelRegistry>, model: &str) -> Result<Assistant> {
    let config = match &options.config {
        Some(path) => AssistantConfig::load(path)?,
        None => AssistantConfig::default(),
    };
    let retriever = match &options.index {
        Some(dir) => Some(Arc::new(Retriever::open(dir, config.retrieval_mode, config.retrieval_k)?)),
        None => None,
    };
    let fallback = options.fallback.as_ref().map(|(url, model, key)| {
        let config = UpstreamConfig { base_url: url.clone(), model: model.clone(), api_key: key.clone() };
        let service = UpstreamChatService::new(config, std::time::Duration::from_secs(60));
        ServedModel::new(model.clone(), Arc::new(service))
    });
    let registered = Registered { registry, model: model.to_string() };
    let parts = AssistantParts {
        backend: ServedModel::new(model, Arc::new(registered)),
        fallback,
        tools: Arc::new(SqliteTools::open(&options.db)?),
        retriever,
        cache: Some(AnswerCache::open(options.cache_db.as_deref(), config.cache.semantic_threshold)?),
        log: match &options.log_db {
            Some(p) => Some(Arc::new(ExchangeLog::open(Some(p), &config.log.user_salt)?)),
            None => None,
        },
        policies_dir: options.policies.clone(),
    };
    Ok(Assistant::new(config, parts))
}
