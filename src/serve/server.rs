//! Putting the server together: bind, answer `/health` with 503 while the model
//! loads, register the model's service, serve until the shutdown signal, then drain
//! (stop accepting, let in-flight answers finish) and stop the engine.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::DType;

use super::api::{router, AppState, HttpLimits, ModelRegistry};
use super::engine::{EngineConfig, EngineHandle};
use super::local::{GenerationDefaults, LocalChatService};
use super::metrics::Metrics;
use super::upstream::{UpstreamChatService, UpstreamConfig};
use crate::generate::ChatModel;
use crate::{Error, Result};

/// Where generation happens.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A model loaded in this process.
    Local {
        /// HF directory or repo id.
        model: String,
        /// Compute dtype.
        dtype: DType,
        /// How a 4-bit checkpoint's LM head is held.
        lm_head: crate::quant::LmHead,
        /// Engine limits.
        engine: EngineConfig,
    },
    /// An OpenAI-compatible server (vLLM) that does the generation.
    Upstream(UpstreamConfig),
}

/// Everything `stylevn serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Generation backend.
    pub backend: Backend,
    /// Model id clients use.
    pub served_model_name: String,
    /// Bearer token for `/v1/*`.
    pub api_key: Option<String>,
    /// Defaults and the request timeout.
    pub defaults: GenerationDefaults,
    /// Body, message and token limits.
    pub http: HttpLimits,
}

/// The model id for a model path: its directory name (`models/smollm2-135m-instruct`
/// serves `smollm2-135m-instruct`).
pub fn default_model_name(model: &str) -> String {
    Path::new(model.trim_end_matches('/')).file_name().map_or(model.to_string(), |n| n.to_string_lossy().into_owned())
}

/// A bound server, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    options: ServeOptions,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(options: ServeOptions) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| Error::msg(format!("cannot listen on {}: {e}", options.addr)))?;
        let state = AppState {
            registry: Arc::new(ModelRegistry::default()),
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(options.http.clone()),
            api_key: options.api_key.as_deref().map(Arc::from),
        };
        Ok(Server { listener, state, options })
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::msg(format!("local address: {e}")))
    }

    /// The shared state: register more model ids or build more routes from it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Loads the backend and serves `router(state)` merged with `extra_routes` until
    /// `shutdown` resolves, then drains and stops.
    pub async fn run(
        self,
        extra_routes: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Server { listener, state, options } = self;
        let app = router(state.clone()).merge(extra_routes);
        let engine: Arc<Mutex<Option<EngineHandle>>> = Arc::default();
        let loading = {
            let (state, engine, options) = (state.clone(), engine.clone(), options.clone());
            tokio::task::spawn_blocking(move || load_backend(&options, &state, &engine))
        };
        let registry = state.registry.clone();
        let draining = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            registry.set_ready(false);
        };
        // The peer address reaches the handlers: the assistant's per-client limits key on it.
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let serving = axum::serve(listener, service).with_graceful_shutdown(draining);
        let loaded_then_served = async {
            loading.await.map_err(|e| Error::msg(format!("loading the model: {e}")))??;
            tracing::info!(model = %options.served_model_name, "ready");
            std::future::pending::<Result<()>>().await
        };
        let result = tokio::select! {
            served = serving => served.map_err(|e| Error::msg(format!("server: {e}"))),
            failed = loaded_then_served => failed,
        };
        let engine = engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(engine) = engine {
            tokio::task::spawn_blocking(move || engine.shutdown()).await.map_err(|e| Error::msg(e.to_string()))?;
        }
        result
    }
}

fn load_backend(options: &ServeOptions, state: &AppState, engine_slot: &Mutex<Option<EngineHandle>>) -> Result<()> {
    match &options.backend {
        Backend::Local { model, dtype, lm_head, engine } => {
            tracing::info!(model = %model, "loading");
            let chat_model = Arc::new(ChatModel::load(model, *dtype, *lm_head)?);
            let handle = EngineHandle::start(chat_model.clone(), engine.clone(), state.metrics.clone())?;
            *engine_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.clone());
            let service = Arc::new(LocalChatService::new(handle, chat_model, options.defaults.clone())?);
            state.registry.register(options.served_model_name.clone(), Arc::new(service));
        }
        Backend::Upstream(config) => {
            let service = UpstreamChatService::new(config.clone(), options.defaults.request_timeout);
            state.registry.register(options.served_model_name.clone(), Arc::new(service));
        }
    }
    state.registry.set_ready(true);
    Ok(())
}
