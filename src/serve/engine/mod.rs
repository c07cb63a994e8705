//! The serving engine: one scheduler thread runs the model with continuous
//! batching. Requests wait in a bounded queue, join the running batch between
//! steps (up to `max_num_seqs`), and leave it as soon as they finish, are cancelled
//! (their receiver was dropped: the client went away) or time out. Each sequence has
//! its own KV cache, seeded from the [`PrefixCache`] when its prompt starts like a
//! recent one.
//!
//! One step is one packed forward (see [`crate::model::Transformer::forward`]): one
//! token for every decoding sequence, then prompt chunks of sequences still in
//! prefill, within a token budget (`max_batch_tokens`), so a long prompt never
//! stalls the others for more than one chunk.
//!
//! In-process use: [`EngineHandle::submit`] takes token ids and sampling settings and
//! returns a stream of [`GenEvent`]s; dropping the stream cancels the generation.

mod guard;
mod prefix_cache;
mod scheduler;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

pub use guard::{GuardState, GuardedObject, OutputGuard};
pub use prefix_cache::PrefixCache;

use super::metrics::Metrics;
use crate::generate::{ChatModel, FinishReason, SamplingParams};
use crate::{Error, Result};

/// Engine limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most sequences in the running batch.
    pub max_num_seqs: usize,
    /// Most tokens (prompt + output) of one sequence.
    pub max_model_len: usize,
    /// Most requests waiting for a slot; beyond it `submit` fails with [`SubmitError::QueueFull`].
    pub max_queue: usize,
    /// Most tokens in one forward step (decode tokens plus prompt chunks).
    pub max_batch_tokens: usize,
    /// Positions the prefix cache may hold in all (0 disables it).
    pub prefix_cache_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_num_seqs: 16,
            max_model_len: 4096,
            max_queue: 64,
            max_batch_tokens: 512,
            prefix_cache_tokens: 8192,
        }
    }
}

/// One generation to run.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// Prompt token ids (the rendered chat).
    pub prompt: Vec<u32>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Strings that end generation (not part of the output).
    pub stop: Vec<String>,
    /// Token ids that end generation (not part of the output).
    pub eos_ids: Vec<u32>,
    /// When to give up (queue time included).
    pub deadline: Instant,
    /// Length of the prompt prefix worth caching for later requests (the
    /// conversation before its last message); 0 caches the whole prompt. Caching at
    /// this boundary lets the next request reuse the entry without cutting it.
    pub shared_prefix: usize,
    /// Constrains the output (forced tool calls): tokens are then picked greedily
    /// among those that keep it valid, and generation stops when it is complete.
    pub guard: Option<OutputGuard>,
}

/// What a generation reports, in order: `Started`, any number of `Text`, then one of
/// `Finished`, `TimedOut` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// The request joined the batch; `cached_tokens` prompt tokens came from the prefix cache.
    Started {
        /// Prompt length in tokens.
        prompt_tokens: usize,
        /// Prompt tokens reused from the prefix cache.
        cached_tokens: usize,
    },
    /// Final text (stop strings held back until known not to be one).
    Text(String),
    /// Generation ended normally.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Tokens generated (EOS excluded).
        completion_tokens: usize,
    },
    /// The request ran past its deadline.
    TimedOut,
    /// The engine failed on this request.
    Failed(String),
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: retry later.
    #[error("the server is at capacity ({0} requests waiting); retry later")]
    QueueFull(usize),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The request can never run (empty prompt, too long).
    #[error("{0}")]
    Invalid(String),
}

/// A submitted request as the scheduler sees it.
pub(crate) struct Pending {
    pub(crate) request: GenRequest,
    pub(crate) events: mpsc::UnboundedSender<GenEvent>,
    pub(crate) submitted: Instant,
}

/// State shared by handles and the scheduler thread.
pub(crate) struct Shared {
    pub(crate) queue: Mutex<Queue>,
    pub(crate) wake: Condvar,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: EngineConfig,
}

/// The waiting requests and the stop flag.
pub(crate) struct Queue {
    pub(crate) waiting: VecDeque<Pending>,
    pub(crate) stopping: bool,
}

/// A cloneable handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// The events of one generation; dropping it cancels the generation.
pub type GenStream = tokio_stream::wrappers::UnboundedReceiverStream<GenEvent>;

impl EngineHandle {
    /// Starts the scheduler thread for `model`.
    pub fn start(model: Arc<ChatModel>, config: EngineConfig, metrics: Arc<Metrics>) -> Result<Self> {
        if config.max_num_seqs == 0 || config.max_batch_tokens < config.max_num_seqs {
            return Err(Error::msg(format!(
                "max_num_seqs ({}) must be at least 1 and at most max_batch_tokens ({})",
                config.max_num_seqs, config.max_batch_tokens
            )));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { waiting: VecDeque::new(), stopping: false }),
            wake: Condvar::new(),
            metrics,
            config,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("stylevn-engine".into())
            .spawn(move || scheduler::run(&model, &thread_shared))
            .map_err(|e| Error::msg(format!("starting the engine thread: {e}")))?;
        Ok(EngineHandle { shared, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// The limits the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Queues `request`. The stream yields its events; dropping the stream cancels it.
    pub fn submit(&self, request: GenRequest) -> std::result::Result<GenStream, SubmitError> {
        let limit = self.shared.config.max_model_len;
        if request.prompt.is_empty() {
            return Err(SubmitError::Invalid("the prompt is empty".into()));
        }
        if request.prompt.len() >= limit {
            return Err(SubmitError::Invalid(format!(
                "the prompt has {} tokens; this model's maximum context length is {limit} tokens",
                request.prompt.len()
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stopping {
            return Err(SubmitError::ShuttingDown);
        }
        if queue.waiting.len() >= self.shared.config.max_queue {
            return Err(SubmitError::QueueFull(queue.waiting.len()));
        }
        queue.waiting.push_back(Pending { request, events: tx, submitted: Instant::now() });
        self.shared.metrics.queue_depth.store(queue.waiting.len() as i64, Ordering::Relaxed);
        drop(queue);
        self.shared.wake.notify_one();
        Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
    }

    /// Stops the engine: waiting requests fail, running ones stop, the thread exits.
    /// Call it after the HTTP server has drained.
    pub fn shutdown(&self) {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
