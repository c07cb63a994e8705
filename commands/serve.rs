//! `stylevn serve`: the OpenAI-compatible server (local model or upstream proxy).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use stylevn::model::linear::parse_dtype;
use stylevn::serve::api::HttpLimits;
use stylevn::serve::assistant::{build_assistant, routes, AssistantOptions, AssistantService, AssistantState};
use stylevn::serve::client_limits::{ClientLimits, ClientLimitsConfig};
use stylevn::serve::engine::EngineConfig;
use stylevn::serve::local::GenerationDefaults;
use stylevn::serve::request::RequestLimits;
use stylevn::serve::server::{default_model_name, Backend, ServeOptions, Server};
use stylevn::serve::upstream::UpstreamConfig;
use stylevn::serve::zalo::{self, TokenStore, Zalo, ZaloConfig};

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
    /// Address to listen on. [config: host, default 127.0.0.1]
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port to listen on (0 picks a free one). [config: port, default 8000]
    #[arg(long)]
    port: Option<u16>,
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
    /// Compute dtype: f32 or f16. [config: dtype, default f32]
    #[arg(long)]
    dtype: Option<String>,
    /// Most sequences decoded together. [config: max_num_seqs, default 16]
    #[arg(long)]
    max_num_seqs: Option<usize>,
    /// Most tokens (prompt + output) per sequence. [config: max_model_len, default 4096]
    #[arg(long)]
    max_model_len: Option<usize>,
    /// Most waiting requests; more get 429. [config: max_queue, default 64]
    #[arg(long)]
    max_queue: Option<usize>,
    /// Tokens per forward step. [config: max_batch_tokens, default 512]
    #[arg(long)]
    max_batch_tokens: Option<usize>,
    /// KV positions kept by the prefix cache; 0 disables it. [config: prefix_cache_tokens, default 8192]
    #[arg(long)]
    prefix_cache_tokens: Option<usize>,
    /// Largest request body in bytes. [config: max_body_bytes, default 2097152]
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Most messages per request. [config: max_messages, default 512]
    #[arg(long)]
    max_messages: Option<usize>,
    /// Largest max_tokens a request may ask for. [config: max_tokens_limit, default 4096]
    #[arg(long)]
    max_tokens_limit: Option<usize>,
    /// max_tokens when a request gives none. [config: default_max_tokens, default 512]
    #[arg(long)]
    default_max_tokens: Option<usize>,
    /// Temperature when a request gives none. [config: temperature, default 0.7]
    #[arg(long)]
    temperature: Option<f64>,
    /// top_p when a request gives none. [config: top_p, default 1.0]
    #[arg(long)]
    top_p: Option<f64>,
    /// Seconds one request may take, queueing included. [config: request_timeout_s, default 300]
    #[arg(long)]
    request_timeout_s: Option<u64>,
    /// Log format: text or json. [config: log_format, default text]
    #[arg(long)]
    log_format: Option<String>,
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
    /// Require --api-key on the assistant's chat routes too (/assistant/v1/chat/completions,
    /// /v1/feedback, the chat page), for a shop's own web front end before them.
    /// [config: assistant_requires_key, default false]
    #[arg(long, requires = "db")]
    assistant_requires_key: bool,
    /// Requests per minute per client on the assistant's public routes, 0 for no limit.
    /// [config: limits.requests_per_minute, default 20]
    #[arg(long, requires = "db")]
    requests_per_minute: Option<u32>,
    /// Requests a client may send at once. [config: limits.request_burst, default 10]
    #[arg(long, requires = "db")]
    request_burst: Option<u32>,
    /// Generated tokens per minute per client (each request takes its max_tokens at
    /// admission), 0 for no limit. [config: limits.tokens_per_minute, default 4096]
    #[arg(long, requires = "db")]
    tokens_per_minute: Option<u32>,
    /// Generated tokens a client may take at once. [config: limits.token_burst, default 2048]
    #[arg(long, requires = "db")]
    token_burst: Option<u32>,
    /// Fallback-model calls per client per day, 0 for no per-client cap.
    /// [config: limits.fallback_per_day, default 20]
    #[arg(long, requires = "db")]
    fallback_per_day: Option<u32>,
    /// Requests of one client answered at once, 0 for no cap.
    /// [config: limits.max_in_flight, default 2]
    #[arg(long, requires = "db")]
    max_in_flight: Option<u32>,
    /// The client is the first X-Forwarded-For hop (only behind a proxy that sets it).
    /// [config: limits.trust_forwarded_for, default false]
    #[arg(long, requires = "db")]
    trust_forwarded_for: bool,
    /// Zalo app id: with it the assistant answers Zalo OA messages at `POST /zalo/webhook`.
    /// The OA secret key, app secret and first refresh token come from the environment
    /// variables named in [zalo] (ZALO_OA_SECRET_KEY, ZALO_APP_SECRET, ZALO_REFRESH_TOKEN).
    /// [config: zalo.app_id]
    #[arg(long, value_name = "ID", requires = "db")]
    zalo_app_id: Option<String>,
    /// Zalo token file: the access and refresh tokens, rewritten atomically at every
    /// refresh; started from $ZALO_REFRESH_TOKEN when missing. [config: zalo.token_file]
    #[arg(long, value_name = "FILE", requires = "db")]
    zalo_token_file: Option<PathBuf>,
    /// Database of handled Zalo message ids (deduplication across restarts).
    /// [config: zalo.seen_db, default in memory]
    #[arg(long, value_name = "FILE", requires = "db")]
    zalo_seen_db: Option<PathBuf>,
    /// Zalo OA API base URL. [config: zalo.api_base, default https://openapi.zalo.me]
    #[arg(long, value_name = "URL", requires = "db")]
    zalo_api_base: Option<String>,
    /// Zalo OAuth base URL. [config: zalo.oauth_base, default https://oauth.zaloapp.com]
    #[arg(long, value_name = "URL", requires = "db")]
    zalo_oauth_base: Option<String>,
}

/// `configs/serve.toml`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    host: IpAddr,
    port: u16,
    dtype: String,
    max_num_seqs: usize,
    max_model_len: usize,
    max_queue: usize,
    max_batch_tokens: usize,
    prefix_cache_tokens: usize,
    max_body_bytes: usize,
    max_messages: usize,
    max_tokens_limit: usize,
    default_max_tokens: usize,
    temperature: f64,
    top_p: f64,
    request_timeout_s: u64,
    log_format: String,
    assistant_requires_key: bool,
    limits: ClientLimitsConfig,
    zalo: ZaloSection,
}

/// `[zalo]` of `configs/serve.toml`: the assistant's Zalo OA channel. Secrets are
/// never in the file: it names the environment variables that hold them.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ZaloSection {
    app_id: Option<String>,
    token_file: PathBuf,
    seen_db: Option<PathBuf>,
    api_base: String,
    oauth_base: String,
    oa_secret_key_env: String,
    app_secret_env: String,
    refresh_token_env: String,
    max_retries: u32,
    backoff_ms: u64,
    refresh_margin_s: u64,
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

impl Default for Config {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            dtype: "f32".into(),
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
            log_format: "text".into(),
            assistant_requires_key: false,
            limits: ClientLimitsConfig::default(),
            zalo: ZaloSection::default(),
        }
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg: Config = crate::config::load(args.config.as_deref(), "serve.toml")?;
    init_logs(args.log_format.as_deref().unwrap_or(&cfg.log_format))?;
    let addr = SocketAddr::new(args.host.unwrap_or(cfg.host), args.port.unwrap_or(cfg.port));
    let (backend, default_name) = match (&args.model, &args.upstream, &args.upstream_model) {
        (Some(model), None, _) => {
            let engine = EngineConfig {
                max_num_seqs: args.max_num_seqs.unwrap_or(cfg.max_num_seqs),
                max_model_len: args.max_model_len.unwrap_or(cfg.max_model_len),
                max_queue: args.max_queue.unwrap_or(cfg.max_queue),
                max_batch_tokens: args.max_batch_tokens.unwrap_or(cfg.max_batch_tokens),
                prefix_cache_tokens: args.prefix_cache_tokens.unwrap_or(cfg.prefix_cache_tokens),
            };
            let dtype = parse_dtype(args.dtype.as_deref().unwrap_or(&cfg.dtype))?;
            (Backend::Local { model: model.clone(), dtype, engine }, default_model_name(model))
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
        defaults: GenerationDefaults {
            temperature: args.temperature.unwrap_or(cfg.temperature),
            top_p: args.top_p.unwrap_or(cfg.top_p),
            max_tokens: args.default_max_tokens.unwrap_or(cfg.default_max_tokens),
            request_timeout: Duration::from_secs(args.request_timeout_s.unwrap_or(cfg.request_timeout_s)),
        },
        http: HttpLimits {
            max_body_bytes: args.max_body_bytes.unwrap_or(cfg.max_body_bytes),
            request: RequestLimits {
                max_messages: args.max_messages.unwrap_or(cfg.max_messages),
                max_tokens: args.max_tokens_limit.unwrap_or(cfg.max_tokens_limit),
            },
        },
    };

    let zalo_config = zalo_config(&args, &cfg.zalo)?;
    let limits = Arc::new(ClientLimits::new(client_limits(&args, &cfg.limits)));
    let require_key = args.assistant_requires_key || cfg.assistant_requires_key;
    if require_key && options.api_key.is_none() {
        bail!("--assistant-requires-key needs --api-key (or STYLEVN_API_KEY)");
    }
    let assistant_key = options.api_key.as_deref().filter(|_| require_key).map(Arc::<str>::from);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = Server::bind(options.clone()).await?;
        let bound = server.local_addr()?;
        let extra_routes = match assistant_options(&args) {
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

/// `[limits]` with the flags that override it.
fn client_limits(args: &Args, section: &ClientLimitsConfig) -> ClientLimitsConfig {
    ClientLimitsConfig {
        requests_per_minute: args.requests_per_minute.unwrap_or(section.requests_per_minute),
        request_burst: args.request_burst.unwrap_or(section.request_burst),
        tokens_per_minute: args.tokens_per_minute.unwrap_or(section.tokens_per_minute),
        token_burst: args.token_burst.unwrap_or(section.token_burst),
        fallback_per_day: args.fallback_per_day.unwrap_or(section.fallback_per_day),
        max_in_flight: args.max_in_flight.unwrap_or(section.max_in_flight),
        trust_forwarded_for: args.trust_forwarded_for || section.trust_forwarded_for,
    }
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
fn zalo_config(args: &Args, section: &ZaloSection) -> anyhow::Result<Option<ZaloConfig>> {
    let Some(app_id) = args.zalo_app_id.clone().or_else(|| section.app_id.clone()) else { return Ok(None) };
    if args.db.is_none() {
        bail!("Zalo (app id {app_id}) answers through the store assistant: give --db");
    }
    let secret = |var: &str| {
        std::env::var(var).ok().filter(|v| !v.is_empty()).with_context(|| {
            format!("Zalo is on (app id {app_id}) but ${var} is not set; export it (see [zalo] in configs/serve.toml)")
        })
    };
    let (oa_secret_key, app_secret) = (secret(&section.oa_secret_key_env)?, secret(&section.app_secret_env)?);
    let token_file = args.zalo_token_file.clone().unwrap_or_else(|| section.token_file.clone());
    if !token_file.exists() {
        let refresh_token = secret(&section.refresh_token_env)
            .with_context(|| format!("Zalo token file {} is missing", token_file.display()))?;
        TokenStore::seed(&token_file, &refresh_token)?;
    }
    Ok(Some(ZaloConfig {
        oa_secret_key,
        app_secret,
        app_id,
        api_base: args.zalo_api_base.clone().unwrap_or_else(|| section.api_base.clone()),
        oauth_base: args.zalo_oauth_base.clone().unwrap_or_else(|| section.oauth_base.clone()),
        token_file,
        max_retries: section.max_retries,
        backoff: Duration::from_millis(section.backoff_ms),
        refresh_margin: Duration::from_secs(section.refresh_margin_s),
        seen_db: args.zalo_seen_db.clone().or_else(|| section.seen_db.clone()),
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

fn init_logs(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => bail!("log_format must be text or json, not {other:?}"),
    }
    Ok(())
}
