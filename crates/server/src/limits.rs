//! Per-key rate limits: requests and tokens per minute over a sliding 60-second window, so no
//! 60 seconds ever hold more than the limit (a token bucket would let twice the limit through in
//! a minute that starts full). Token limits charge the prompt plus `max_tokens` at admission and
//! are settled to the real count when the response ends.
//!
//! Time comes from a `Clock`, so tests drive a simulated minute instead of waiting for one.
//!
//! Replicas sharing a PostgreSQL store count in the database instead (`RateLimiter::shared`):
//! each admission locks its subject, reads the window's charges and decides with the same rules,
//! so a limit holds across replicas (within the requests racing one admission: none, the lock
//! serialises them). Should the database fail, a replica falls back to its own window and says so.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tandem_store::Store;

const WINDOW: f64 = 60.0;

pub trait Clock: Send + Sync {
    /// Seconds since an arbitrary fixed origin.
    fn now(&self) -> f64;
}

pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// A clock that moves only when told (tests).
#[cfg(test)]
#[derive(Default)]
pub struct ManualClock(AtomicU64);

#[cfg(test)]
impl ManualClock {
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.0.load(Ordering::SeqCst) as f64 / 1e3
    }
}

/// The per-minute limits of one key (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// An admitted request's charge, to be settled when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: String,
    id: u64,
    /// Recorded in the shared store (its charge id is `id`).
    shared: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Denied {
    /// `requests` or `tokens`.
    pub which: &'static str,
    pub limit: u64,
    /// Seconds until the request would fit (`None`: it never fits, it asks for more than the limit).
    pub retry_after: Option<f64>,
    pub requested: u64,
}

#[derive(Default)]
struct Window {
    /// (time, tokens charged, ticket id), oldest first.
    entries: VecDeque<(f64, u64, u64)>,
}

impl Window {
    /// A window from a shared store's charges, `(age, tokens)`, at time 0.
    fn from_ages(held: &[(f64, u64)]) -> Self {
        Self {
            entries: held.iter().map(|&(age, tokens)| (-age, tokens, 0)).collect(),
        }
    }

    /// Whether one more request of `tokens` fits under `limits` at `now`, or why not.
    fn decide(&self, now: f64, limits: Limits, tokens: u64) -> Result<(), Denied> {
        if let Some(rpm) = limits.rpm {
            if self.entries.len() as u64 + 1 > rpm {
                return Err(Denied {
                    which: "requests",
                    limit: rpm,
                    retry_after: (rpm > 0).then(|| self.wait_for(now, rpm, 1, |_| 1)),
                    requested: 1,
                });
            }
        }
        if let Some(tpm) = limits.tpm {
            if self.tokens() + tokens > tpm {
                return Err(Denied {
                    which: "tokens",
                    limit: tpm,
                    retry_after: (tokens <= tpm).then(|| self.wait_for(now, tpm, tokens, |e| e.1)),
                    requested: tokens,
                });
            }
        }
        Ok(())
    }

    fn purge(&mut self, now: f64) {
        while self.entries.front().is_some_and(|e| e.0 <= now - WINDOW) {
            self.entries.pop_front();
        }
    }

    fn tokens(&self) -> u64 {
        self.entries.iter().map(|e| e.1).sum()
    }

    /// Seconds until `need` more fits under `limit` of `measure`.
    fn wait_for(&self, now: f64, limit: u64, need: u64, measure: impl Fn(&(f64, u64, u64)) -> u64) -> f64 {
        let mut used: u64 = self.entries.iter().map(&measure).sum();
        for e in &self.entries {
            if used + need <= limit {
                break;
            }
            used -= measure(e);
            if used + need <= limit {
                return (e.0 + WINDOW - now).max(0.0);
            }
        }
        0.0
    }
}

/// The state of one key's window, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub requests_remaining: u64,
    pub tokens_remaining: u64,
    /// Seconds until the window is empty again.
    pub requests_reset: f64,
    pub tokens_reset: f64,
}

pub struct RateLimiter {
    clock: Box<dyn Clock>,
    windows: Mutex<HashMap<String, Window>>,
    next: AtomicU64,
    /// Replicas' shared store, where windows are counted when present.
    shared: Option<Arc<dyn Store>>,
}

/// Runs a store call from async code: on a multi-threaded runtime the worker thread hands its
/// other tasks away while it waits (`block_in_place`).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl RateLimiter {
    pub fn new(clock: Box<dyn Clock>) -> Self {
        Self {
            clock,
            windows: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            shared: None,
        }
    }

    /// A limiter whose windows live in `store`, shared by every replica using it.
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Self {
            shared: Some(store),
            ..Self::new(Box::new(SystemClock::default()))
        }
    }

    /// Admits one request estimated at `tokens`, or says when it would fit.
    pub fn admit(&self, key: &str, limits: Limits, tokens: u64) -> Result<Ticket, Denied> {
        if let Some(store) = &self.shared {
            let mut denied = None;
            let r = blocking(|| {
                store.rate_admit(key, WINDOW, tokens, &mut |held| {
                    let d = Window::from_ages(held).decide(0.0, limits, tokens);
                    let ok = d.is_ok();
                    denied = d.err();
                    ok
                })
            });
            match r {
                Ok(Some(id)) => {
                    return Ok(Ticket {
                        key: key.to_string(),
                        id: id as u64,
                        shared: true,
                    })
                }
                Ok(None) => return Err(denied.expect("a refusal says why")),
                Err(e) => tracing::error!(error = %e, "shared rate limit: counting on this replica alone"),
            }
        }
        let now = self.clock.now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let win = w.entry(key.to_string()).or_default();
        win.purge(now);
        win.decide(now, limits, tokens)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        win.entries.push_back((now, tokens, id));
        Ok(Ticket {
            key: key.to_string(),
            id,
            shared: false,
        })
    }

    /// Replaces an admitted request's token estimate with what it really used.
    pub fn settle(&self, t: &Ticket, tokens: u64) {
        if t.shared {
            if let Some(store) = &self.shared {
                if let Err(e) = blocking(|| store.rate_settle(t.id as i64, tokens)) {
                    tracing::error!(error = %e, "shared rate limit: settling a charge");
                }
            }
            return;
        }
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = w
            .get_mut(&t.key)
            .and_then(|win| win.entries.iter_mut().find(|e| e.2 == t.id))
        {
            e.1 = tokens;
        }
    }

    /// Takes back an admitted request that will not run (a later limit refused it): it counts
    /// neither as a request nor as tokens.
    pub fn release(&self, t: &Ticket) {
        if t.shared {
            if let Some(store) = &self.shared {
                if let Err(e) = blocking(|| store.rate_release(t.id as i64)) {
                    tracing::error!(error = %e, "shared rate limit: releasing a charge");
                }
            }
            return;
        }
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(win) = w.get_mut(&t.key) {
            win.entries.retain(|e| e.2 != t.id);
        }
    }

    pub fn snapshot(&self, key: &str, limits: Limits) -> Snapshot {
        if let Some(store) = &self.shared {
            if let Ok(held) = blocking(|| store.rate_window(key, WINDOW)) {
                return Window::from_ages(&held).snapshot(0.0, limits);
            }
        }
        let now = self.clock.now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let win = w.entry(key.to_string()).or_default();
        win.purge(now);
        win.snapshot(now, limits)
    }
}

impl Window {
    fn snapshot(&self, now: f64, limits: Limits) -> Snapshot {
        let win = self;
        let reset = win.entries.back().map(|e| (e.0 + WINDOW - now).max(0.0)).unwrap_or(0.0);
        Snapshot {
            requests_remaining: limits.rpm.unwrap_or(0).saturating_sub(win.entries.len() as u64),
            tokens_remaining: limits.tpm.unwrap_or(0).saturating_sub(win.tokens()),
            requests_reset: reset,
            tokens_reset: reset,
        }
    }
}

/// An admitted request's charges (its key's, its project's): dropped, they are settled to the
/// tokens recorded with `used` — 0 for a request that ended before generating, so every early exit
/// gives its estimate back without saying so.
pub struct Charge {
    limiter: std::sync::Arc<RateLimiter>,
    tickets: Vec<Ticket>,
    used: AtomicU64,
}

impl Charge {
    pub fn new(limiter: std::sync::Arc<RateLimiter>, tickets: Vec<Ticket>) -> Self {
        Self {
            limiter,
            tickets,
            used: AtomicU64::new(0),
        }
    }

    /// The tokens the request really used (prompt + completion).
    pub fn used(&self, tokens: u64) {
        self.used.store(tokens, Ordering::Relaxed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let used = self.used.load(Ordering::Relaxed);
        for t in &self.tickets {
            self.limiter.settle(t, used);
        }
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge").field("tickets", &self.tickets).finish()
    }
}

/// A duration as OpenAI's headers write it: `20ms`, `1.5s`, `6m0s`.
pub fn duration_text(secs: f64) -> String {
    if secs < 1.0 {
        format!("{}ms", (secs * 1e3).ceil() as u64)
    } else if secs < 60.0 {
        let s = format!("{:.3}", secs);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        let whole = secs.ceil() as u64;
        format!("{}m{}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Shared(Arc<ManualClock>);
    impl Clock for Shared {
        fn now(&self) -> f64 {
            self.0.now()
        }
    }

    fn limiter() -> (Arc<ManualClock>, RateLimiter) {
        let c = Arc::new(ManualClock::default());
        (c.clone(), RateLimiter::new(Box::new(Shared(c))))
    }

    /// N clients hammer one key for a simulated minute (each tries again
    /// every 50 ms): what gets through lies in [0.9·limit, limit].
    #[test]
    fn concurrent_clients_over_a_simulated_minute_get_the_limit() {
        for (clients, rpm) in [(1, 60), (8, 60), (32, 100), (5, 7)] {
            let (clock, rl) = limiter();
            let lim = Limits {
                rpm: Some(rpm),
                tpm: None,
            };
            let rl = Arc::new(rl);
            let mut accepted = 0;
            // Each simulated 50 ms tick, every client tries once, in parallel threads.
            for _ in 0..1200 {
                let handles: Vec<_> = (0..clients)
                    .map(|_| {
                        let rl = rl.clone();
                        std::thread::spawn(move || rl.admit("k", lim, 0).is_ok())
                    })
                    .collect();
                accepted += handles.into_iter().map(|h| h.join().unwrap()).filter(|&ok| ok).count() as u64;
                clock.advance_ms(50);
            }
            assert!(
                accepted * 10 >= rpm * 9 && accepted <= rpm,
                "{clients} clients, rpm {rpm}: {accepted} accepted"
            );
        }
    }

    #[test]
    fn tokens_are_charged_up_front_and_settled() {
        let (clock, rl) = limiter();
        let lim = Limits {
            rpm: None,
            tpm: Some(1000),
        };
        let t = rl.admit("k", lim, 600).unwrap();
        let d = rl.admit("k", lim, 600).unwrap_err();
        assert_eq!((d.which, d.limit, d.requested), ("tokens", 1000, 600));
        assert_eq!(d.retry_after, Some(60.0));
        // It used 100 tokens in the end: the rest of the minute's budget comes back.
        rl.settle(&t, 100);
        assert_eq!(rl.snapshot("k", lim).tokens_remaining, 900);
        rl.admit("k", lim, 600).unwrap();
        clock.advance_ms(30_000);
        let d = rl.admit("k", lim, 600).unwrap_err();
        assert_eq!(
            d.retry_after,
            Some(30.0),
            "the first charge leaves the window at t = 60 s"
        );
        let huge = rl.admit("k", lim, 5000).unwrap_err();
        assert_eq!(huge.retry_after, None, "more than the limit never fits");
        clock.advance_ms(30_001);
        rl.admit("k", lim, 300).unwrap();
    }

    #[test]
    fn snapshot_and_header_durations() {
        let (clock, rl) = limiter();
        let lim = Limits {
            rpm: Some(3),
            tpm: Some(100),
        };
        rl.admit("a", lim, 10).unwrap();
        clock.advance_ms(1500);
        rl.admit("a", lim, 20).unwrap();
        let s = rl.snapshot("a", lim);
        assert_eq!((s.requests_remaining, s.tokens_remaining), (1, 70));
        assert_eq!(s.requests_reset, 60.0);
        assert_eq!(rl.snapshot("b", lim).requests_remaining, 3);
        assert_eq!(duration_text(0.02), "20ms");
        assert_eq!(duration_text(1.5), "1.5s");
        assert_eq!(duration_text(6.0), "6s");
        assert_eq!(duration_text(360.0), "6m0s");
    }
}
