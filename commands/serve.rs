//! `stylevn serve`: the OpenAI-compatible server (local model or upstream proxy).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use stylevn::model::linear::ComputeDtype;
use stylevn::serve::assistant::{build_assistant, routes, AssistantOptions, AssistantService, AssistantState};
use stylevn::serve::client_limits::ClientLimits;
use stylevn::serve::config::{LogFormat, ServeConfig, ZaloSection};
use stylevn::serve::server::{default_model_name, Backend, ServeOptions, Server};
use stylevn::serve::upstream::UpstreamConfig;
use stylevn::serve::zalo::{TokenStore, Zalo, ZaloConfig};

use crate::config::{self, config_flags};

/// Serve a model over the OpenAI chat API (`/v1/chat/completions`, `/v1/models`,
/// `/health`, `/metrics`), with continuous batching and prefix caching, or proxy
/// generation to an upstream OpenAI-compatible server (vLLM) with --upstream.
///
/// Who may call what: with --api-key, `/v1/chat/completions` and `/v1/models` need
/// `Authorization: Bearer KEY` (without it they are open to anyone and not limited per
/// client: set a key on any server reachable beyond localhost); `/health` and
/// `/metrics` are open (keep them off the internet). With --db, the assistant's chat routes (`/` the chat page,
/// `POST /assistant/v1/chat/completions`, `POST /v1/feedback` for a response id this
/// server gave out) are public, as a customer-facing bot is, each client (its IP, or
/// the first X-Forwarded-For hop with --trust-forwarded-for) held to the per-client
/// limits below (429 + Retry-After past them); --assistant-requires-key puts them
/// behind the key too (the chat page as well). `POST /zalo/webhook` is public and
/// checks Zalo's signature; a Zalo user (its hashed id) has the same limits.
#[derive(clap::Args)]
pub struct Args {
    /// Model: an HF directory (e.g. models/smollm2-135m-instruct) or an HF repo id.
    #[arg(long, required_unless_present = "upstream")]
    model: Option<String>,
    /// Model id clients ask for. [default: the model directory's name, or --upstream-model]
    #[arg(long)]
    served_model_name: Option<String>,
    /// Require `Authorization: Bearer KEY` on the OpenAI API (/v1/chat/completions, /v1/models).
    #[arg(long, env = "STYLEVN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Proxy generation to this OpenAI-compatible base URL (e.g. http://vllm-host:8000/v1).
    #[arg(long, requires = "upstream_model", conflicts_with = "model")]
    upstream: Option<String>,
    /// The model id to request from --upstream.
    #[arg(long, requires = "upstream")]
    upstream_model: Option<String>,
    /// Bearer token for --upstream.
    #[arg(long, env = "STYLEVN_UPSTREAM_API_KEY", hide_env_values = true)]
    upstream_api_key: Option<String>,
    #[command(flatten)]
    settings: Settings,
    /// Config file (default: configs/serve.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store database: with it, the store assistant is served as model `stylevn-assistant`
    /// (tools, guardrails, caches), plus the chat page at `/` and `POST /v1/feedback`.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Catalog index (`stylevn embed-catalog --index`) the assistant retrieves from (hot-reloaded).
    #[arg(long, value_name = "DIR", requires = "db")]
    index: Option<PathBuf>,
    /// Assistant settings. [default: configs/assistant.toml when present]
    #[arg(long, value_name = "FILE", requires = "db")]
    assistant_config: Option<PathBuf>,
    /// Policy files; a change invalidates cached answers. [default: data/policies when present]
    #[arg(long, value_name = "DIR", requires = "db")]
    policies: Option<PathBuf>,
    /// Answer cache database (kept across restarts). [default: in memory]
    #[arg(long, value_name = "FILE", requires = "db")]
    cache_db: Option<PathBuf>,
    /// Exchange log database (WAL; PII masked): every turn, tool call, guardrail event, feedback.
    #[arg(long, value_name = "FILE", requires = "db")]
    log_db: Option<PathBuf>,
    /// A stronger OpenAI-compatible model asked when a local answer fails the guardrails.
    #[arg(long, value_name = "URL", requires_all = ["db", "fallback_model"])]
    fallback_url: Option<String>,
    /// Model id at --fallback-url.
    #[arg(long, requires = "fallback_url")]
    fallback_model: Option<String>,
    /// Bearer token for --fallback-url.
    #[arg(long, env = "STYLEVN_FALLBACK_API_KEY", hide_env_values = true)]
    fallback_api_key: Option<String>,
}

config_flags! {
    /// `ServeConfig`'s fields.
    struct Settings for ServeConfig {
        /// Address to listen on.
        host: IpAddr,
        /// Port to listen on (0 picks a free one).
        port: u16,
        /// Compute dtype: f32 or f16.
        dtype: ComputeDtype,
        /// How a 4-bit checkpoint's LM head is held in memory: int8, int4 or fp16 (as stored).
        lm_head: stylevn::quant::LmHead,
        /// Most sequences decoded together.
        max_num_seqs: usize,
        /// Most tokens (prompt + output) per sequence.
        max_model_len: usize,
        /// Most waiting requests; more get 429.
        max_queue: usize,
        /// Tokens per forward step.
        max_batch_tokens: usize,
        /// KV positions kept by the prefix cache; 0 disables it.
        prefix_cache_tokens: usize,
        /// Largest request body in bytes.
        max_body_bytes: usize,
        /// Most messages per request.
        max_messages: usize,
        /// Largest max_tokens a request may ask for.
        max_tokens_limit: usize,
        /// max_tokens when a request gives none.
        default_max_tokens: usize,
        /// Temperature when a request gives none.
        temperature: f64,
        /// top_p when a request gives none.
        top_p: f64,
        /// Seconds one request may take, queueing included.
        request_timeout_s: u64,
        /// Log format.
        log_format: LogFormat,
        /// Require --api-key on the assistant's chat routes too (/assistant/v1/chat/completions,
        /// /v1/feedback, the chat page), for a shop's own web front end before them.
        #[arg(requires = "db", num_args = 0..=1, default_missing_value = "true")]
        assistant_requires_key: bool,
        /// Requests per minute per client on the assistant's public routes, 0 for no limit.
        /// [config: limits.requests_per_minute]
        #[arg(requires = "db")]
        requests_per_minute => limits.requests_per_minute: u32,
        /// Requests a client may send at once. [config: limits.request_burst]
        #[arg(requires = "db")]
        request_burst => limits.request_burst: u32,
        /// Generated tokens per minute per client (each request takes its max_tokens at
        /// admission), 0 for no limit. [config: limits.tokens_per_minute]
        #[arg(requires = "db")]
        tokens_per_minute => limits.tokens_per_minute: u32,
        /// Generated tokens a client may take at once. [config: limits.token_burst]
        #[arg(requires = "db")]
        token_burst => limits.token_burst: u32,
        /// Fallback-model calls per client per day, 0 for no per-client cap.
        /// [config: limits.fallback_per_day]
        #[arg(requires = "db")]
        fallback_per_day => limits.fallback_per_day: u32,
        /// Requests of one client answered at once, 0 for no cap. [config: limits.max_in_flight]
        #[arg(requires = "db")]
        max_in_flight => limits.max_in_flight: u32,
        /// The client is the first X-Forwarded-For hop (only behind a proxy that sets it).
        /// [config: limits.trust_forwarded_for]
        #[arg(requires = "db", num_args = 0..=1, default_missing_value = "true")]
        trust_forwarded_for => limits.trust_forwarded_for: bool,
        /// Zalo app id: with it the assistant answers Zalo OA messages at `POST /zalo/webhook`.
        /// The OA secret key, app secret and first refresh token come from the environment
        /// variables named in [zalo] (ZALO_OA_SECRET_KEY, ZALO_APP_SECRET, ZALO_REFRESH_TOKEN).
        /// [config: zalo.app_id]
        #[arg(value_name = "ID", requires = "db")]
        zalo_app_id => zalo.app_id: String,
        /// Zalo token file: the access and refresh tokens, rewritten atomically at every
        /// refresh; started from $ZALO_REFRESH_TOKEN when missing. [config: zalo.token_file]
        #[arg(value_name = "FILE", requires = "db")]
        zalo_token_file => zalo.token_file: PathBuf,
        /// Database of handled Zalo message ids (deduplication across restarts; default in
        /// memory). [config: zalo.seen_db]
        #[arg(value_name = "FILE", requires = "db")]
        zalo_seen_db => zalo.seen_db: PathBuf,
        /// Zalo OA API base URL. [config: zalo.api_base]
        #[arg(value_name = "URL", requires = "db")]
        zalo_api_base => zalo.api_base: String,
        /// Zalo OAuth base URL. [config: zalo.oauth_base]
        #[arg(value_name = "URL", requires = "db")]
        zalo_oauth_base => zalo.oauth_base: String,
        /// Environment variable holding the Zalo OA secret key. [config: zalo.oa_secret_key_env]
        #[arg(value_name = "VAR", requires = "db")]
        zalo_oa_secret_key_env => zalo.oa_secret_key_env: String,
        /// Environment variable holding the Zalo app secret. [config: zalo.app_secret_env]
        #[arg(value_name = "VAR", requires = "db")]
        zalo_app_secret_env => zalo.app_secret_env: String,
        /// Environment variable holding the first Zalo refresh token. [config: zalo.refresh_token_env]
        #[arg(value_name = "VAR", requires = "db")]
        zalo_refresh_token_env => zalo.refresh_token_env: String,
        /// Retries per Zalo reply or refresh. [config: zalo.max_retries]
        #[arg(requires = "db")]
        zalo_max_retries => zalo.max_retries: u32,
        /// First Zalo retry delay in ms, doubled each time. [config: zalo.backoff_ms]
        #[arg(requires = "db")]
        zalo_backoff_ms => zalo.backoff_ms: u64,
        /// Refresh the Zalo access token this many seconds before it expires. [config: zalo.refresh_margin_s]
        #[arg(requires = "db")]
        zalo_refresh_margin_s => zalo.refresh_margin_s: u64,
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let assistant_opts = assistant_options(&args);
    let cfg = config::resolve(args.config.as_deref(), "serve.toml", args.settings)?;
    init_logs(cfg.log_format);
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let (backend, default_name) = match (&args.model, &args.upstream, &args.upstream_model) {
        (Some(model), None, _) => {
            let dtype = cfg.dtype.dtype();
            let lm_head = cfg.lm_head;
            (Backend::Local { model: model.clone(), dtype, lm_head, engine: cfg.engine() }, default_model_name(model))
        }
        (None, Some(url), Some(upstream_model)) => {
            let upstream = UpstreamConfig {
                base_url: url.clone(),
                model: upstream_model.clone(),
                api_key: args.upstream_api_key.clone(),
            };
            (Backend::Upstream(upstream), upstream_model.clone())
        }
        _ => bail!("give --model, or --upstream with --upstream-model"),
    };
    let options = ServeOptions {
        addr,
        backend,
        served_model_name: args.served_model_name.clone().unwrap_or(default_name),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        defaults: cfg.generation_defaults(),
        http: cfg.http_limits(),
    };

    let zalo_config = zalo_config(args.db.is_some(), &cfg.zalo)?;
    let limits = Arc::new(ClientLimits::new(cfg.limits.clone()));
    let require_key = cfg.assistant_requires_key;
    if require_key && options.api_key.is_none() {
        bail!("--assistant-requires-key needs --api-key (or STYLEVN_API_KEY)");
    }
    let assistant_key = options.api_key.as_deref().filter(|_| require_key).map(Arc::<str>::from);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = Server::bind(options.clone()).await?;
        let bound = server.local_addr()?;
        let extra_routes = match assistant_opts {
            Some(opts) => {
                let state = server.state();
                let assistant = build_assistant(&opts, state.registry.clone(), &options.served_model_name)?;
                let assistant = Arc::new(assistant.with_client_limits(limits.clone()));
                let id = assistant.config().model_id.clone();
                state.registry.register(id.clone(), Arc::new(AssistantService::new(assistant.clone())));
                let metrics = assistant.metrics().clone();
                state.metrics.add_source(move || metrics.render());
                let counted = limits.clone();
                state.metrics.add_source(move || counted.render());
                println!("serving the store assistant as {id} (chat page: http://{bound}/)");
                let zalo = match zalo_config {
                    Some(config) => {
                        println!("answering Zalo OA app {} at http://{bound}/zalo/webhook", config.app_id);
                        Some(Arc::new(Zalo::new(config, assistant.clone())?))
                    }
                    None => None,
                };
                routes(Arc::new(AssistantState { assistant, zalo, api_key: assistant_key }))
            }
            None => axum::Router::new(),
        };
        // The one line scripts wait for: the address actually bound.
        println!("serving {} on http://{bound}/v1", options.served_model_name);
        server.run(extra_routes, shutdown_signal()).await?;
        println!("stopped: drained in-flight requests");
        anyhow::Ok(())
    })
}

/// The assistant's parts, when `--db` asks for it.
fn assistant_options(args: &Args) -> Option<AssistantOptions> {
    let db = args.db.clone()?;
    let default_if_present = |p: &str| Some(PathBuf::from(p)).filter(|p| p.exists());
    Some(AssistantOptions {
        config: args.assistant_config.clone().or_else(|| default_if_present("configs/assistant.toml")),
        db,
        index: args.index.clone(),
        policies: args.policies.clone().or_else(|| default_if_present("data/policies")),
        cache_db: args.cache_db.clone(),
        log_db: args.log_db.clone(),
        fallback: args
            .fallback_url
            .clone()
            .zip(args.fallback_model.clone())
            .map(|(url, model)| (url, model, args.fallback_api_key.clone())),
    })
}

/// The Zalo channel's settings when an app id is given (flag or `[zalo]`), with its
/// secrets read from the environment and the token file started when missing.
fn zalo_config(with_db: bool, section: &ZaloSection) -> anyhow::Result<Option<ZaloConfig>> {
    let Some(app_id) = section.app_id.clone() else { return Ok(None) };
    if !with_db {
        bail!("Zalo (app id {app_id}) answers through the store assistant: give --db");
    }
    let secret = |var: &str| {
        std::env::var(var).ok().filter(|v| !v.is_empty()).with_context(|| {
            format!("Zalo is on (app id {app_id}) but ${var} is not set; export it (see [zalo] in configs/serve.toml)")
        })
    };
    let (oa_secret_key, app_secret) = (secret(&section.oa_secret_key_env)?, secret(&section.app_secret_env)?);
    let token_file = section.token_file.clone();
    if !token_file.exists() {
        let refresh_token = secret(&section.refresh_token_env)
            .with_context(|| format!("Zalo token file {} is missing", token_file.display()))?;
        TokenStore::seed(&token_file, &refresh_token)?;
    }
    Ok(Some(ZaloConfig {
        oa_secret_key,
        app_secret,
        app_id,
        api_base: section.api_base.clone(),
        oauth_base: section.oauth_base.clone(),
        token_file,
        max_retries: section.max_retries,
        backoff: Duration::from_millis(section.backoff_ms),
        refresh_margin: Duration::from_secs(section.refresh_margin_s),
        seen_db: section.seen_db.clone(),
    }))
}

/// Resolves on Ctrl-C or SIGTERM (what systemd and EC2 send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
