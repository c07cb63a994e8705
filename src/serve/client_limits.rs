//! Per-client limits on the public routes (the chat page, the assistant's
//! completions, feedback, Zalo messages), so one client cannot take the capacity or
//! the fallback model's budget from everyone else. Token buckets (GCRA, from the
//! `governor` crate), one state per client:
//!
//! - requests: `requests_per_minute`, bursts of `request_burst`;
//! - generated tokens: `tokens_per_minute`, bursts of `token_burst`; a request is
//!   admitted when its client's bucket holds the `max_tokens` it may generate, which
//!   are taken at admission (as hosted APIs count `max_tokens` against tokens per
//!   minute); unused tokens are not given back;
//! - fallback-model calls: `fallback_per_day` per client, beside the assistant's
//!   global `fallback_per_minute`;
//! - requests in flight: `max_in_flight` per client, so a client the buckets still
//!   admit (a slow server makes few requests a minute) cannot hold more of the
//!   engine's slots than that.
//!
//! A client is its IP address (the first `X-Forwarded-For` hop when
//! `trust_forwarded_for` says a proxy in front sets it) or, on Zalo, its hashed user
//! id. 0 turns a limit off.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

/// The limits, `[limits]` of `configs/serve.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimitsConfig {
    /// Requests a client may make per minute, sustained (0: no limit).
    pub requests_per_minute: u32,
    /// Requests a client may make at once after a quiet spell.
    pub request_burst: u32,
    /// Generated tokens (`max_tokens` of admitted requests) per client per minute (0: no limit).
    pub tokens_per_minute: u32,
    /// Generated tokens a client may take at once.
    pub token_burst: u32,
    /// Fallback-model calls per client per day (0: no per-client cap).
    pub fallback_per_day: u32,
    /// Requests of one client answered at once (0: no cap).
    pub max_in_flight: u32,
    /// Take the client's address from the first `X-Forwarded-For` hop (only behind a
    /// proxy that sets it: otherwise any client can pick its own address).
    pub trust_forwarded_for: bool,
}

impl Default for ClientLimitsConfig {
    fn default() -> Self {
        ClientLimitsConfig {
            requests_per_minute: 20,
            request_burst: 10,
            tokens_per_minute: 4096,
            token_burst: 2048,
            fallback_per_day: 20,
            max_in_flight: 2,
            trust_forwarded_for: false,
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    Requests,
    /// Generated tokens per minute.
    Tokens,
    /// Requests in flight.
    InFlight,
}

impl LimitKind {
    /// The name in metrics and in OpenAI's error `type` (`requests`, `tokens`).
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::InFlight => "requests_in_flight",
        }
    }
}

/// A refused request: which limit, and when the client may try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Denied {
    /// The limit reached.
    pub kind: LimitKind,
    /// How long until the request would be admitted.
    pub retry_after: Duration,
}

impl Denied {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

type Limiter = DefaultKeyedRateLimiter<String>;

/// The per-client buckets, shared by every public route.
pub struct ClientLimits {
    config: ClientLimitsConfig,
    requests: Option<Limiter>,
    tokens: Option<Limiter>,
    fallback: Option<Limiter>,
    clock: DefaultClock,
    checks: AtomicU64,
    refused: [AtomicU64; 3],
    fallback_refused: AtomicU64,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// One admitted request of a client, counted in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    client: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Checks between two sweeps of idle clients' state.
const SWEEP_EVERY: u64 = 4096;

fn limiter(per_minute: u32, burst: u32) -> Option<Limiter> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Limiter::keyed(Quota::per_minute(rate).allow_burst(burst)))
}

impl ClientLimits {
    /// Buckets for `config`.
    pub fn new(config: ClientLimitsConfig) -> Self {
        let fallback = NonZeroU32::new(config.fallback_per_day).and_then(|n| {
            let period = Duration::from_secs(86_400) / n.get();
            Quota::with_period(period).map(|q| Limiter::keyed(q.allow_burst(n)))
        });
        ClientLimits {
            requests: limiter(config.requests_per_minute, config.request_burst),
            tokens: limiter(config.tokens_per_minute, config.token_burst),
            fallback,
            config,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
            refused: Default::default(),
            fallback_refused: AtomicU64::new(0),
            in_flight: Arc::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientLimitsConfig {
        &self.config
    }

    /// The client key of an HTTP request from `peer` with `forwarded_for` (the
    /// `X-Forwarded-For` header), as the config says to read it.
    pub fn http_client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> String {
        let forwarded = forwarded_for
            .filter(|_| self.config.trust_forwarded_for)
            .and_then(|h| h.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok());
        match forwarded.or(peer) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".into(),
        }
    }

    /// Counts one request of `client`; refused when its request bucket is empty.
    pub fn admit_request(&self, client: &str) -> Result<(), Denied> {
        self.sweep();
        let Some(l) = &self.requests else { return Ok(()) };
        l.check_key(&client.to_string()).map_err(|not_until| {
            self.refuse(Denied { kind: LimitKind::Requests, retry_after: not_until.wait_time_from(self.clock.now()) })
        })
    }

    /// Counts one more request of `client` in flight until the returned guard is
    /// dropped; refused (Retry-After 1 s) when it already has `max_in_flight`.
    pub fn enter(&self, client: &str) -> Result<InFlight, Denied> {
        let mut counts = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(client.to_string()).or_insert(0);
        if self.config.max_in_flight > 0 && *n >= self.config.max_in_flight {
            return Err(self.refuse(Denied { kind: LimitKind::InFlight, retry_after: Duration::from_secs(1) }));
        }
        *n += 1;
        Ok(InFlight { counts: self.in_flight.clone(), client: client.to_string() })
    }

    /// Takes `max_tokens` from `client`'s token bucket; refused (and nothing taken)
    /// when it holds fewer. A request asking for more than a whole burst takes the burst.
    pub fn take_tokens(&self, client: &str, max_tokens: u32) -> Result<(), Denied> {
        let Some(l) = &self.tokens else { return Ok(()) };
        let n = NonZeroU32::new(max_tokens.clamp(1, self.burst_of_tokens())).unwrap_or(NonZeroU32::MIN);
        match l.check_key_n(&client.to_string(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(self
                .refuse(Denied { kind: LimitKind::Tokens, retry_after: not_until.wait_time_from(self.clock.now()) })),
            // n is at most the burst, so the bucket can always hold it.
            Err(_) => Ok(()),
        }
    }

    /// Whether `client` may have one more fallback-model call today (and counts it).
    pub fn allow_fallback(&self, client: &str) -> bool {
        let Some(l) = &self.fallback else { return true };
        let ok = l.check_key(&client.to_string()).is_ok();
        if !ok {
            self.fallback_refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Requests refused so far by `kind`.
    pub fn refused(&self, kind: LimitKind) -> u64 {
        self.refused[kind as usize].load(Ordering::Relaxed)
    }

    /// Fallback calls refused by the per-client daily cap so far.
    pub fn fallback_refused(&self) -> u64 {
        self.fallback_refused.load(Ordering::Relaxed)
    }

    /// Prometheus text of the counters.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP stylevn_rate_limited_total Requests refused with 429 by a per-client limit.\n\
             # TYPE stylevn_rate_limited_total counter\n",
        );
        for kind in [LimitKind::Requests, LimitKind::Tokens, LimitKind::InFlight] {
            out.push_str(&format!("stylevn_rate_limited_total{{limit=\"{}\"}} {}\n", kind.name(), self.refused(kind)));
        }
        out.push_str(
            "# HELP stylevn_fallback_client_capped_total Fallback calls refused by the per-client daily cap.\n\
             # TYPE stylevn_fallback_client_capped_total counter\n",
        );
        out.push_str(&format!("stylevn_fallback_client_capped_total {}\n", self.fallback_refused()));
        out
    }

    /// The token bucket's size (its burst; the per-minute rate when no burst is set).
    fn burst_of_tokens(&self) -> u32 {
        match self.config.token_burst {
            0 => self.config.tokens_per_minute.max(1),
            b => b,
        }
    }

    fn refuse(&self, denied: Denied) -> Denied {
        self.refused[denied.kind as usize].fetch_add(1, Ordering::Relaxed);
        denied
    }

    /// Every [`SWEEP_EVERY`] checks, forgets clients whose buckets are full again.
    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in [&self.requests, &self.tokens, &self.fallback].into_iter().flatten() {
                l.retain_recent();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: (u32, u32), tokens: (u32, u32), fallback: u32) -> ClientLimits {
        ClientLimits::new(ClientLimitsConfig {
            requests_per_minute: requests.0,
            request_burst: requests.1,
            tokens_per_minute: tokens.0,
            token_burst: tokens.1,
            fallback_per_day: fallback,
            max_in_flight: 0,
            trust_forwarded_for: false,
        })
    }

    /// Two in flight per client: a third waits for one to end; others are not counted against it.
    #[test]
    fn requests_in_flight_are_capped_per_client() {
        let mut c = limits((0, 0), (0, 0), 0).config().clone();
        c.max_in_flight = 2;
        let l = ClientLimits::new(c);
        let (a1, _a2) = (l.enter("a").unwrap(), l.enter("a").unwrap());
        let denied = l.enter("a").unwrap_err();
        assert_eq!((denied.kind, denied.retry_after_s()), (LimitKind::InFlight, 1));
        let _b = l.enter("b").unwrap();
        drop(a1);
        let _a3 = l.enter("a").unwrap();
        assert_eq!(l.refused(LimitKind::InFlight), 1);
        assert!(l.render().contains("stylevn_rate_limited_total{limit=\"requests_in_flight\"} 1\n"));
    }

    /// A burst of 3 at 60/min: three requests pass, the fourth waits about a second;
    /// another client is not affected; refusals are counted by kind.
    #[test]
    fn request_bucket_is_per_client() {
        let l = limits((60, 3), (0, 0), 0);
        for _ in 0..3 {
            l.admit_request("ip:10.0.0.1").unwrap();
        }
        let denied = l.admit_request("ip:10.0.0.1").unwrap_err();
        assert_eq!(denied.kind, LimitKind::Requests);
        assert!(denied.retry_after > Duration::from_millis(900) && denied.retry_after <= Duration::from_secs(1));
        assert_eq!(denied.retry_after_s(), 1);
        l.admit_request("ip:10.0.0.2").unwrap();
        assert_eq!((l.refused(LimitKind::Requests), l.refused(LimitKind::Tokens)), (1, 0));
        assert!(l.render().contains("stylevn_rate_limited_total{limit=\"requests\"} 1\n"));
    }

    /// 600 tokens/min in bursts of 500: 300 + 200 pass, 100 more waits 10 s (one
    /// token per 100 ms); a request larger than the burst takes the burst.
    #[test]
    fn token_bucket_takes_max_tokens_at_admission() {
        let l = limits((0, 0), (600, 500), 0);
        l.take_tokens("a", 300).unwrap();
        l.take_tokens("a", 200).unwrap();
        let denied = l.take_tokens("a", 100).unwrap_err();
        assert_eq!(denied.kind, LimitKind::Tokens);
        assert!((denied.retry_after.as_secs_f64() - 10.0).abs() < 0.2, "{:?}", denied.retry_after);
        l.take_tokens("b", 10_000).unwrap();
        assert!(l.take_tokens("b", 1).is_err(), "the whole burst was taken");
        // Off: everything passes.
        let off = limits((0, 0), (0, 0), 0);
        for _ in 0..1000 {
            off.admit_request("a").unwrap();
            off.take_tokens("a", 4096).unwrap();
        }
    }

    /// Two fallback calls a day per client: the third is refused and counted.
    #[test]
    fn fallback_cap_is_per_client_per_day() {
        let l = limits((0, 0), (0, 0), 2);
        assert!(l.allow_fallback("zalo:u1") && l.allow_fallback("zalo:u1"));
        assert!(!l.allow_fallback("zalo:u1"));
        assert!(l.allow_fallback("zalo:u2"));
        assert_eq!(l.fallback_refused(), 1);
    }

    /// The peer address is the client unless the config trusts `X-Forwarded-For`.
    #[test]
    fn client_key_from_peer_or_trusted_forwarded_for() {
        let peer = Some(IpAddr::from([127, 0, 0, 2]));
        let l = limits((0, 0), (0, 0), 0);
        assert_eq!(l.http_client(peer, Some("203.0.113.7")), "ip:127.0.0.2");
        let mut c = l.config().clone();
        c.trust_forwarded_for = true;
        let trusting = ClientLimits::new(c);
        assert_eq!(trusting.http_client(peer, Some("203.0.113.7, 10.0.0.1")), "ip:203.0.113.7");
        assert_eq!(trusting.http_client(peer, Some("garbage")), "ip:127.0.0.2");
        assert_eq!(trusting.http_client(None, None), "ip:unknown");
    }
}
