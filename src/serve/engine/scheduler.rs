//! The scheduler loop: admit, prune, one packed forward, sample, report; repeat.

use std::sync::atomic::Ordering;
use std::time::Instant;

use candle_core::IndexOp;
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use super::guard::{GuardState, OutputGuard};
use super::prefix_cache::PrefixCache;
use super::{GenEvent, Pending, Shared};
use crate::generate::{ChatModel, FinishReason, Sampler, StopMatcher, StopStep, TextStream};
use crate::model::{KvCache, LogitsAt, Mode};

/// One sequence in the running batch.
struct Sequence<'t> {
    events: mpsc::UnboundedSender<GenEvent>,
    prompt: Vec<u32>,
    /// Prompt tokens whose keys and values are in `cache`.
    computed: usize,
    /// The prompt prefix whose KV goes into the prefix cache.
    shared_prefix: usize,
    cache: KvCache,
    sampler: Sampler,
    /// Prompt and output so far (for the repetition penalty).
    context: Vec<u32>,
    generated: usize,
    /// The last sampled token, to feed in the next step.
    next_input: Option<u32>,
    text: TextStream<'t>,
    stops: StopMatcher,
    max_new_tokens: usize,
    eos_ids: Vec<u32>,
    deadline: Instant,
    guard: Option<OutputGuard>,
    tokenizer: &'t Tokenizer,
    admitted: Instant,
    last_token_at: Option<Instant>,
}

/// How a sequence left the batch.
enum Exit {
    Finished(FinishReason),
    Cancelled,
    TimedOut,
    /// An error event was already sent.
    Failed,
}

/// Runs until the engine is stopped.
pub(super) fn run(model: &ChatModel, shared: &Shared) {
    let config = &shared.config;
    let metrics = &shared.metrics;
    let mut prefix_cache = PrefixCache::new(config.prefix_cache_tokens);
    let mut running: Vec<Sequence<'_>> = Vec::new();
    loop {
        // Admit waiting requests into free slots (block while idle).
        let admitted: Vec<Pending> = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while running.is_empty() && queue.waiting.is_empty() && !queue.stopping {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.stopping {
                for pending in queue.waiting.drain(..) {
                    let _ = pending.events.send(GenEvent::Failed("the server is shutting down".into()));
                }
                for seq in running.drain(..) {
                    let _ = seq.events.send(GenEvent::Failed("the server is shutting down".into()));
                }
                metrics.queue_depth.store(0, Ordering::Relaxed);
                metrics.running.store(0, Ordering::Relaxed);
                return;
            }
            let free = config.max_num_seqs.saturating_sub(running.len()).min(queue.waiting.len());
            let admitted = queue.waiting.drain(..free).collect();
            metrics.queue_depth.store(queue.waiting.len() as i64, Ordering::Relaxed);
            admitted
        };
        for pending in admitted {
            if let Some(seq) = admit(model, &model.tokenizer, pending, &mut prefix_cache, shared) {
                running.push(seq);
            }
        }

        // Drop sequences whose client left or whose time is up.
        let now = Instant::now();
        running.retain_mut(|seq| {
            let exit = if seq.events.is_closed() {
                Exit::Cancelled
            } else if now >= seq.deadline {
                Exit::TimedOut
            } else {
                return true;
            };
            report_exit(seq, exit, shared);
            false
        });
        if running.is_empty() {
            continue;
        }

        // Build the packed batch: every decoding sequence, then prompt chunks.
        let mut budget = config.max_batch_tokens;
        let mut rows: Vec<(usize, usize)> = Vec::new(); // (sequence index, tokens this step)
        let mut tokens: Vec<u32> = Vec::new();
        for (i, seq) in running.iter().enumerate() {
            if let Some(t) = seq.next_input {
                tokens.push(t);
                rows.push((i, 1));
                budget -= 1;
            }
        }
        for (i, seq) in running.iter().enumerate() {
            if seq.next_input.is_none() && budget > 0 {
                // A chunk ends at the shareable prefix, so its KV can be cached exactly.
                let end = if seq.computed < seq.shared_prefix { seq.shared_prefix } else { seq.prompt.len() };
                let n = (end - seq.computed).min(budget);
                tokens.extend_from_slice(&seq.prompt[seq.computed..seq.computed + n]);
                rows.push((i, n));
                budget -= n;
            }
        }
        let seq_lens: Vec<usize> = rows.iter().map(|&(_, n)| n).collect();
        let mut caches: Vec<KvCache> =
            rows.iter().map(|&(i, _)| std::mem::replace(&mut running[i].cache, KvCache::new(0))).collect();
        let result = model.transformer.forward(&tokens, &seq_lens, Some(&mut caches), Mode::Infer, LogitsAt::Last);
        for (&(i, _), cache) in rows.iter().zip(caches) {
            running[i].cache = cache;
        }
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // The batch's caches may be half-updated: fail its sequences, keep serving.
                let failed: Vec<usize> = rows.iter().map(|&(i, _)| i).collect();
                let mut index = 0;
                running.retain(|seq| {
                    let keep = !failed.contains(&index);
                    index += 1;
                    if !keep {
                        metrics.running.fetch_sub(1, Ordering::Relaxed);
                        let _ = seq.events.send(GenEvent::Failed(format!("model forward failed: {e}")));
                    }
                    keep
                });
                continue;
            }
        };

        // Sample for every sequence whose prompt is complete.
        let mut exits: Vec<(usize, Exit)> = Vec::new();
        for (row, &(i, n)) in rows.iter().enumerate() {
            let seq = &mut running[i];
            if seq.next_input.is_none() {
                seq.computed += n;
                if seq.computed == seq.shared_prefix {
                    prefix_cache.insert(&seq.prompt[..seq.shared_prefix], &seq.cache);
                }
                if seq.computed < seq.prompt.len() {
                    continue;
                }
            }
            match step(seq, &logits, row, shared) {
                Ok(None) => {}
                Ok(Some(reason)) => exits.push((i, Exit::Finished(reason))),
                Err(e) => {
                    let _ = seq.events.send(GenEvent::Failed(format!("sampling failed: {e}")));
                    exits.push((i, Exit::Failed));
                }
            }
        }
        // Highest index first, so earlier indices stay valid.
        exits.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, exit) in exits {
            let mut seq = running.remove(i);
            report_exit(&mut seq, exit, shared);
        }
    }
}

/// Turns a queued request into a running sequence, seeded from the prefix cache.
fn admit<'t>(
    model: &ChatModel,
    tokenizer: &'t Tokenizer,
    pending: Pending,
    prefix_cache: &mut PrefixCache,
    shared: &Shared,
) -> Option<Sequence<'t>> {
    let Pending { request, events, submitted } = pending;
    let metrics = &shared.metrics;
    if events.is_closed() {
        metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if Instant::now() >= request.deadline {
        metrics.timed_out.fetch_add(1, Ordering::Relaxed);
        let _ = events.send(GenEvent::TimedOut);
        return None;
    }
    metrics.prefix_cache_queries.fetch_add(1, Ordering::Relaxed);
    let cache = match prefix_cache.lookup(&request.prompt) {
        Some(cache) => {
            metrics.prefix_cache_hits.fetch_add(1, Ordering::Relaxed);
            metrics.prefix_cache_hit_tokens.fetch_add(cache.len() as u64, Ordering::Relaxed);
            cache
        }
        None => model.transformer.new_cache(),
    };
    metrics.prompt_tokens.fetch_add(request.prompt.len() as u64, Ordering::Relaxed);
    let computed = cache.len();
    metrics.running.fetch_add(1, Ordering::Relaxed);
    let _ = events.send(GenEvent::Started { prompt_tokens: request.prompt.len(), cached_tokens: computed });
    let room = shared.config.max_model_len.saturating_sub(request.prompt.len());
    let shared_prefix = match request.shared_prefix {
        0 => request.prompt.len(),
        n => n.min(request.prompt.len()),
    };
    Some(Sequence {
        events,
        computed,
        shared_prefix,
        cache,
        sampler: Sampler::new(&request.sampling),
        context: request.prompt.clone(),
        prompt: request.prompt,
        generated: 0,
        next_input: None,
        text: TextStream::new(tokenizer),
        stops: StopMatcher::new(&request.stop),
        max_new_tokens: request.max_new_tokens.min(room),
        eos_ids: request.eos_ids,
        deadline: request.deadline,
        guard: request.guard,
        tokenizer,
        admitted: submitted,
        last_token_at: None,
    })
}

/// Samples the next token of `seq` from logits row `row`; `Some(reason)` when it ends.
fn step(
    seq: &mut Sequence<'_>,
    logits: &candle_core::Tensor,
    row: usize,
    shared: &Shared,
) -> crate::Result<Option<FinishReason>> {
    if seq.max_new_tokens == 0 {
        return Ok(Some(FinishReason::Length));
    }
    let row_logits = logits.i(row)?;
    let (next, guard_state) = match &seq.guard {
        None => (seq.sampler.next(&row_logits, &seq.context)?, None),
        Some(guard) => {
            let (token, state) = guarded_next(seq, guard, &row_logits.to_vec1::<f32>()?)?;
            (token, Some(state))
        }
    };
    let now = Instant::now();
    match seq.last_token_at {
        None => shared.metrics.ttft.observe((now - seq.admitted).as_secs_f64()),
        Some(previous) => shared.metrics.itl.observe((now - previous).as_secs_f64()),
    }
    seq.last_token_at = Some(now);
    if seq.eos_ids.contains(&next) {
        return Ok(Some(FinishReason::Stop));
    }
    seq.generated += 1;
    shared.metrics.generation_tokens.fetch_add(1, Ordering::Relaxed);
    seq.context.push(next);
    seq.next_input = Some(next);
    if let Some(piece) = seq.text.push(next)? {
        match seq.stops.push(&piece) {
            StopStep::Continue(out) => send_text(seq, out),
            StopStep::Stop(out) => {
                send_text(seq, out);
                return Ok(Some(FinishReason::Stop));
            }
        }
    }
    if guard_state == Some(GuardState::Complete) {
        return Ok(Some(FinishReason::Stop));
    }
    Ok((seq.generated >= seq.max_new_tokens).then_some(FinishReason::Length))
}

/// The most likely token that keeps a guarded output valid (and adds text to it).
fn guarded_next(seq: &Sequence<'_>, guard: &OutputGuard, logits: &[f32]) -> crate::Result<(u32, GuardState)> {
    let output = &seq.context[seq.prompt.len()..];
    let before = seq.tokenizer.decode(output, true)?;
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    let mut tokens = output.to_vec();
    tokens.push(0);
    for candidate in order {
        if seq.eos_ids.contains(&candidate) {
            continue;
        }
        *tokens.last_mut().expect("one pushed") = candidate;
        let text = seq.tokenizer.decode(&tokens, true)?;
        if text.len() <= before.len() {
            continue;
        }
        match guard.check(&text) {
            GuardState::Invalid => continue,
            state => return Ok((candidate, state)),
        }
    }
    Err(crate::Error::msg("no token continues the constrained output"))
}

fn send_text(seq: &Sequence<'_>, text: String) {
    if !text.is_empty() {
        let _ = seq.events.send(GenEvent::Text(text));
    }
}

/// Sends the last event of a sequence leaving the batch and counts it.
fn report_exit(seq: &mut Sequence<'_>, exit: Exit, shared: &Shared) {
    // The gauge drops before the last event, so a client that saw its answer end
    // never finds itself still counted as running.
    shared.metrics.running.fetch_sub(1, Ordering::Relaxed);
    match exit {
        Exit::Finished(reason) => {
            // Text held back as a possible stop-string start is final now.
            let rest = seq.stops.flush();
            send_text(seq, rest);
            let _ = seq.events.send(GenEvent::Finished { reason, completion_tokens: seq.generated });
        }
        Exit::Failed => {}
        Exit::Cancelled => {
            shared.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        Exit::TimedOut => {
            shared.metrics.timed_out.fetch_add(1, Ordering::Relaxed);
            let _ = seq.events.send(GenEvent::TimedOut);
        }
    }
}
