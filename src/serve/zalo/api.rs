//! The OA APIs: sending a customer-service text message
//! (`POST {api_base}/v3.0/oa/message/cs`, `access_token` header, JSON
//! `{"recipient": {"user_id"}, "message": {"text"}}`) and refreshing the access
//! token (`POST {oauth_base}/v4/oa/access_token`, `secret_key` header, form
//! `refresh_token`, `app_id`, `grant_type=refresh_token`; the answer carries a new
//! `access_token`, `refresh_token` and `expires_in` seconds). Failures are retried
//! with exponential backoff; an access token the API rejects is refreshed once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::tokens::{TokenStore, Tokens};
use super::ZaloConfig;
use crate::serve::assistant::metrics::{inc, Metrics};
use crate::{Error, Result};

/// Zalo error codes meaning the access token is invalid or expired.
const TOKEN_ERRORS: [i64; 2] = [-216, -124];

/// Client of the OA message and OAuth APIs.
pub struct ZaloApi {
    http: reqwest::Client,
    config: ZaloConfig,
    tokens: Mutex<TokenStore>,
    metrics: Arc<Metrics>,
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A failed call: whether trying again may help, and why.
struct Failure {
    token_rejected: bool,
    message: String,
}

impl ZaloApi {
    /// A client over `tokens`, counting into `metrics`.
    pub fn new(config: &ZaloConfig, tokens: TokenStore, metrics: Arc<Metrics>) -> Self {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
        ZaloApi { http, config: config.clone(), tokens: Mutex::new(tokens), metrics }
    }

    /// The tokens in use now.
    pub async fn tokens(&self) -> Tokens {
        self.tokens.lock().await.tokens().clone()
    }

    /// A valid access token: the current one, or a refreshed one when it expires
    /// within the margin or `rejected` says the API refused it.
    pub async fn access_token(&self, rejected: Option<&str>) -> Result<String> {
        let mut store = self.tokens.lock().await;
        let t = store.tokens();
        let expiring = now_s() + self.config.refresh_margin.as_secs() >= t.expires_at;
        // Another task may have refreshed while this one waited for the lock.
        let stale = rejected.is_some_and(|r| r == t.access_token);
        if !expiring && !stale {
            return Ok(t.access_token.clone());
        }
        let fresh = self.refresh(&t.refresh_token).await?;
        store.replace(fresh)?;
        inc(&self.metrics.zalo_token_refreshes);
        Ok(store.tokens().access_token.clone())
    }

    /// Exchanges `refresh_token` for a new pair, with retries on transport and server errors.
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        let url = format!("{}/v4/oa/access_token", self.config.oauth_base.trim_end_matches('/'));
        let form = format!(
            "refresh_token={}&app_id={}&grant_type=refresh_token",
            form_encode(refresh_token),
            form_encode(&self.config.app_id)
        );
        let mut delay = self.config.backoff;
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            let sent = self
                .http
                .post(&url)
                .header("secret_key", &self.config.app_secret)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status();
            let body: Value = match resp.bytes().await.map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(v)) => v,
                _ => {
                    last = format!("HTTP {status}: unreadable body");
                    continue;
                }
            };
            if status.is_server_error() {
                last = format!("HTTP {status}");
                continue;
            }
            let (Some(access), Some(refresh)) = (body["access_token"].as_str(), body["refresh_token"].as_str()) else {
                // A refused refresh token will not be accepted on a retry either.
                return Err(Error::msg(format!("Zalo token refresh refused: {body}")));
            };
            let expires_in = match &body["expires_in"] {
                Value::String(s) => s.parse().unwrap_or(0),
                v => v.as_u64().unwrap_or(0),
            };
            return Ok(Tokens {
                access_token: access.into(),
                refresh_token: refresh.into(),
                expires_at: now_s() + expires_in,
            });
        }
        Err(Error::msg(format!("Zalo token refresh failed after retries: {last}")))
    }

    async fn send_once(&self, token: &str, user_id: &str, text: &str) -> std::result::Result<(), Failure> {
        let url = format!("{}/v3.0/oa/message/cs", self.config.api_base.trim_end_matches('/'));
        let body = json!({"recipient": {"user_id": user_id}, "message": {"text": text}});
        let fail = |message: String| Failure { token_rejected: false, message };
        let resp = self
            .http
            .post(&url)
            .header("access_token", token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| fail(format!("HTTP {status}: not JSON")))?;
        match v["error"].as_i64() {
            Some(0) if status.is_success() => Ok(()),
            Some(code) if TOKEN_ERRORS.contains(&code) => Err(Failure { token_rejected: true, message: v.to_string() }),
            _ => Err(fail(format!("HTTP {status}: {v}"))),
        }
    }

    /// Sends `text` to `user_id`, retrying with backoff; counts the outcome.
    pub async fn send_text(&self, user_id: &str, text: &str) -> Result<()> {
        let mut delay = self.config.backoff;
        let mut rejected: Option<String> = None;
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 && rejected.is_none() {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            let token = match self.access_token(rejected.as_deref()).await {
                Ok(t) => t,
                Err(e) => {
                    last = e.to_string();
                    rejected = None;
                    continue;
                }
            };
            match self.send_once(&token, user_id, text).await {
                Ok(()) => {
                    inc(&self.metrics.zalo_replies);
                    return Ok(());
                }
                Err(f) => {
                    last = f.message;
                    rejected = f.token_rejected.then_some(token);
                }
            }
        }
        inc(&self.metrics.zalo_send_failures);
        Err(Error::msg(format!("Zalo send failed after retries: {last}")))
    }
}
