//! The Zalo Official Account channel: the webhook (`POST /zalo/webhook`) checks
//! `X-ZEvent-Signature`, answers 200 at once and handles the event in the
//! background; messages are deduplicated by `msg_id` (Zalo retries for hours);
//! each user has a short conversation memory; replies go out through the OA
//! message API with a token that is refreshed before it expires.

mod api;
mod conversations;
mod dedup;
mod signature;
mod tokens;

pub use api::ZaloApi;
pub use conversations::Conversations;
pub use dedup::SeenIds;
pub use signature::{expected_signature, verify_signature};
pub use tokens::{TokenStore, Tokens};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::conversation::Message;
use crate::serve::assistant::metrics::inc;
use crate::serve::assistant::{Assistant, Turn};
use crate::Result;

/// The OA API's base URL (developers.zalo.me, "Official Account API").
pub const API_BASE: &str = "https://openapi.zalo.me";

/// The OAuth server's base URL (developers.zalo.me, "Official Account access token").
pub const OAUTH_BASE: &str = "https://oauth.zaloapp.com";

/// How long a message id is remembered (Zalo retries for up to 12 hours).
pub const DEDUP_TTL: Duration = Duration::from_secs(24 * 3600);

/// The OA's settings.
#[derive(Debug, Clone)]
pub struct ZaloConfig {
    /// The Zalo app id (signs webhooks, refreshes tokens).
    pub app_id: String,
    /// The OA secret key (webhook signatures).
    pub oa_secret_key: String,
    /// The app secret (token refresh).
    pub app_secret: String,
    /// OA API base, [`API_BASE`].
    pub api_base: String,
    /// OAuth base, [`OAUTH_BASE`].
    pub oauth_base: String,
    /// JSON file holding the access and refresh tokens (rewritten atomically on refresh).
    pub token_file: PathBuf,
    /// Retries of a failed send or refresh.
    pub max_retries: u32,
    /// First retry delay; doubled each time.
    pub backoff: Duration,
    /// Refresh the access token this long before it expires.
    pub refresh_margin: Duration,
    /// SQLite file of handled message ids (kept across restarts); in memory when `None`.
    pub seen_db: Option<PathBuf>,
}

/// The Zalo channel of one assistant.
pub struct Zalo {
    config: ZaloConfig,
    assistant: Arc<Assistant>,
    api: ZaloApi,
    seen: SeenIds,
    conversations: Conversations,
}

fn text_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": if status.is_success() { 0 } else { -1 }, "message": message}))).into_response()
}

impl Zalo {
    /// The channel for `assistant`; reads the token file.
    pub fn new(config: ZaloConfig, assistant: Arc<Assistant>) -> Result<Self> {
        let store = TokenStore::load(&config.token_file)?;
        let api = ZaloApi::new(&config, store, assistant.metrics().clone());
        let c = &assistant.config().conversation;
        let conversations = Conversations::new(c.max_messages, Duration::from_secs(c.ttl_s));
        let seen = SeenIds::open(config.seen_db.as_deref(), DEDUP_TTL)?;
        Ok(Zalo { config, assistant, api, seen, conversations })
    }

    /// The OA API client (tokens, sending).
    pub fn api(&self) -> &ZaloApi {
        &self.api
    }

    /// Handles one webhook request: verifies, deduplicates, acknowledges, and
    /// answers in a background task.
    pub fn webhook(self: Arc<Self>, headers: &HeaderMap, body: &[u8]) -> Response {
        let metrics = self.assistant.metrics();
        let Ok(event) = serde_json::from_slice::<Value>(body) else {
            return text_response(StatusCode::BAD_REQUEST, "body is not JSON");
        };
        let timestamp = match &event["timestamp"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let header = headers.get("x-zevent-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !verify_signature(&self.config.app_id, body, &timestamp, &self.config.oa_secret_key, header) {
            inc(&metrics.zalo_bad_signatures);
            return text_response(StatusCode::UNAUTHORIZED, "bad signature");
        }
        if event["event_name"] != "user_send_text" {
            return text_response(StatusCode::OK, "ignored");
        }
        let (Some(user), Some(text), Some(msg_id)) = (
            event.pointer("/sender/id").and_then(Value::as_str),
            event.pointer("/message/text").and_then(Value::as_str),
            event.pointer("/message/msg_id").and_then(Value::as_str),
        ) else {
            return text_response(
                StatusCode::BAD_REQUEST,
                "user_send_text without sender.id, message.text, message.msg_id",
            );
        };
        match self.seen.first_delivery(msg_id) {
            Ok(true) => {}
            Ok(false) => {
                inc(&metrics.zalo_duplicates);
                return text_response(StatusCode::OK, "duplicate");
            }
            // Not acknowledged: Zalo retries, and the event is handled once the store works.
            Err(e) => return text_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
        inc(&metrics.zalo_events);
        let (user, text) = (user.to_string(), text.to_string());
        tokio::spawn(async move { self.answer(user, text).await });
        text_response(StatusCode::OK, "accepted")
    }

    /// Answers one message and sends the reply (failures are counted and logged by the API client).
    async fn answer(&self, user: String, text: String) {
        let messages = self.conversations.push(&user, Message::user(text));
        let client = zalo_client(&user);
        // Held while the turn is answered.
        let mut _in_flight = None;
        if let Some(limits) = self.assistant.client_limits() {
            let max_tokens = self.assistant.config().max_tokens;
            let admitted = limits.admit_request(&client).and_then(|_| limits.enter(&client));
            match admitted.and_then(|guard| limits.take_tokens(&client, max_tokens).map(|_| guard)) {
                Ok(guard) => _in_flight = Some(guard),
                Err(_) => {
                    let _ = self.api.send_text(&user, &self.assistant.config().rate_limited_reply).await;
                    return;
                }
            }
        }
        let turn =
            Turn { messages, user: Some(user.clone()), client: Some(client), channel: "zalo".into(), sampling: None };
        let content = match self.assistant.respond(turn).await {
            Ok(reply) => reply.content,
            Err(_) => self.assistant.config().safe_reply_for(None),
        };
        self.conversations.push(&user, Message::assistant(content.as_str()));
        let _ = self.api.send_text(&user, &content).await;
    }
}

/// The rate-limit key of a Zalo user: a hash of the id, not the id itself.
fn zalo_client(user: &str) -> String {
    use sha2::Digest;
    format!("zalo:{}", hex::encode(&sha2::Sha256::digest(user.as_bytes())[..12]))
}
