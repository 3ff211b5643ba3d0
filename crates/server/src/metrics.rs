//! Prometheus metrics through the `prometheus` crate, in the text exposition format at
//! `GET /metrics`: HTTP requests by route, method and status with their latency; time to first
//! token, time between tokens and whole-response latency per tier; moderation decisions; and the
//! engines' own counters and gauges (read from their atomics at each scrape).

use std::sync::Mutex;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::state::Tier;

const LATENCY: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

pub struct Metrics {
    registry: Registry,
    /// `tandem_http_requests_total{route, method, status}`
    http: IntCounterVec,
    /// `tandem_http_request_duration_seconds{route}`: arrival to the response head (a stream's
    /// body goes on after it).
    http_latency: HistogramVec,
    /// `tandem_time_to_first_token_seconds{model}`
    ttft: HistogramVec,
    /// `tandem_inter_token_latency_seconds{model}`
    inter_token: HistogramVec,
    /// `tandem_response_duration_seconds{model}`: arrival to the last token.
    response: HistogramVec,
    /// `tandem_moderation_total{direction, action}`
    moderation: IntCounterVec,
    engine: EngineMetrics,
}

/// The engines' numbers, copied from their atomics at each scrape; the lock keeps two scrapes
/// from adding the same counter increase twice.
struct EngineMetrics {
    gauges: Vec<(GaugeVec, Get)>,
    counters: Vec<(CounterVec, Get)>,
    refresh: Mutex<()>,
}

fn histogram(name: &str, help: &str, label: &str) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY.to_vec()), &[label]).expect("valid metric")
}

impl Default for Metrics {
    fn default() -> Self {
        let http = IntCounterVec::new(
            Opts::new(
                "tandem_http_requests_total",
                "HTTP requests by route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let registry = Registry::new();
        let engine = EngineMetrics::new(&registry);
        let m = Self {
            registry,
            http,
            http_latency: histogram(
                "tandem_http_request_duration_seconds",
                "From a request's arrival to its response head, by route.",
                "route",
            ),
            ttft: histogram(
                "tandem_time_to_first_token_seconds",
                "Time from request to first generated token, by model.",
                "model",
            ),
            inter_token: histogram(
                "tandem_inter_token_latency_seconds",
                "Time between generated tokens of a response, by model.",
                "model",
            ),
            response: histogram(
                "tandem_response_duration_seconds",
                "Time from request to its last generated token, by model.",
                "model",
            ),
            moderation: IntCounterVec::new(
                Opts::new(
                    "tandem_moderation_total",
                    "Moderation decisions, by direction and action.",
                ),
                &["direction", "action"],
            )
            .expect("valid metric"),
            engine,
        };
        for c in [
            &m.http as &dyn Collect,
            &m.http_latency,
            &m.ttft,
            &m.inter_token,
            &m.response,
            &m.moderation,
        ] {
            c.register(&m.registry);
        }
        m
    }
}

/// Registering any metric vector (one registry, names checked once at start).
trait Collect {
    fn register(&self, r: &Registry);
}

impl<T: prometheus::core::Collector + Clone + 'static> Collect for T {
    fn register(&self, r: &Registry) {
        r.register(Box::new(self.clone())).expect("metric names are unique");
    }
}

impl Metrics {
    pub fn http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_latency.with_label_values(&[route]).observe(seconds);
    }

    pub fn first_token(&self, model: &str, seconds: f64) {
        self.ttft.with_label_values(&[model]).observe(seconds);
    }

    pub fn next_token(&self, model: &str, seconds: f64) {
        self.inter_token.with_label_values(&[model]).observe(seconds);
    }

    pub fn response(&self, model: &str, seconds: f64) {
        self.response.with_label_values(&[model]).observe(seconds);
    }

    /// Counts a moderation decision (`input`/`output`, `flagged`/`blocked`).
    pub fn moderation(&self, direction: &str, action: &str) {
        self.moderation.with_label_values(&[direction, action]).inc();
    }

    /// The text exposition of every metric, the engines' read now.
    pub fn render(&self, tiers: &[Tier]) -> String {
        self.engine.refresh(tiers);
        let mut out = Vec::new();
        // Writing to a Vec cannot fail, and every family is well-formed.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

type Get = fn(&Tier) -> f64;

/// An engine counter's value (the engine keeps them in `AtomicU64` or `AtomicUsize`).
fn load<A: Atomic>(a: &A) -> f64 {
    a.read() as f64
}

trait Atomic {
    fn read(&self) -> u64;
}

impl Atomic for std::sync::atomic::AtomicU64 {
    fn read(&self) -> u64 {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Atomic for std::sync::atomic::AtomicUsize {
    fn read(&self) -> u64 {
        self.load(std::sync::atomic::Ordering::Relaxed) as u64
    }
}

/// Gauges: (name, help, read).
const GAUGES: [(&str, &str, Get); 10] = [
    ("tandem_queue_depth", "Requests waiting for a slot.", |t| {
        load(&t.engine.stats.waiting)
    }),
    ("tandem_active_sequences", "Sequences in slots.", |t| {
        load(&t.engine.stats.active)
    }),
    (
        "tandem_kv_cache_used_positions",
        "KV-cache positions held by active sequences.",
        |t| load(&t.engine.stats.kv_used),
    ),
    (
        "tandem_kv_cache_capacity_positions",
        "KV-cache positions across all slots.",
        |t| (t.engine.config.slots * t.engine.config.ctx) as f64,
    ),
    (
        "tandem_context_length_tokens",
        "Context each sequence may reach (planned at start: docs/long-context.md).",
        |t| t.engine.config.ctx as f64,
    ),
    (
        "tandem_kv_cache_pool_positions",
        "Positions the KV pool holds, all sequences together.",
        |t| load(&t.engine.stats.kv_blocks_total) * tandem_engine::KV_BLOCK as f64,
    ),
    (
        "tandem_kv_cache_blocks",
        "KV-cache blocks in the pool (32 positions each).",
        |t| load(&t.engine.stats.kv_blocks_total),
    ),
    (
        "tandem_kv_cache_blocks_in_use",
        "KV-cache blocks held by active sequences (a shared block counts once).",
        |t| load(&t.engine.stats.kv_blocks_in_use),
    ),
    (
        "tandem_kv_cache_blocks_cached",
        "KV-cache blocks no sequence holds, kept for prefix reuse until their room is needed.",
        |t| load(&t.engine.stats.kv_blocks_cached),
    ),
    (
        "tandem_forward_step_sequences_max",
        "Most sequences in one forward pass.",
        |t| load(&t.engine.stats.max_step_seqs),
    ),
];

/// Counters: (name, help, read).
const COUNTERS: [(&str, &str, Get); 10] = [
    ("tandem_forward_steps_total", "Forward passes run.", |t| {
        load(&t.engine.stats.steps)
    }),
    (
        "tandem_forward_step_sequences_total",
        "Sum over forward passes of the sequences in each.",
        |t| load(&t.engine.stats.step_seqs),
    ),
    ("tandem_prompt_tokens_total", "Prompt tokens admitted.", |t| {
        load(&t.engine.stats.prompt_tokens)
    }),
    (
        "tandem_cached_prompt_tokens_total",
        "Prompt tokens served from the prefix cache.",
        |t| load(&t.engine.stats.cached_tokens),
    ),
    ("tandem_generated_tokens_total", "Tokens generated.", |t| {
        load(&t.engine.stats.generated_tokens)
    }),
    (
        "tandem_spec_verifications_total",
        "Speculative decoding: steps in which a sequence verified draft tokens.",
        |t| load(&t.engine.stats.spec_verifications),
    ),
    (
        "tandem_spec_draft_tokens_total",
        "Speculative decoding: draft tokens proposed.",
        |t| load(&t.engine.stats.spec_proposed),
    ),
    (
        "tandem_spec_accepted_tokens_total",
        "Speculative decoding: draft tokens the model kept.",
        |t| load(&t.engine.stats.spec_accepted),
    ),
    // Constrained decoding: the cost of the per-token masks (seconds ÷ masks = per token).
    (
        "tandem_grammar_masks_total",
        "Token masks computed for constrained decoding.",
        |t| t.engine.model.grammar_stats().1 as f64,
    ),
    (
        "tandem_grammar_mask_seconds_total",
        "Time spent computing token masks.",
        |t| t.engine.model.grammar_stats().0 as f64 / 1e9,
    ),
];

impl EngineMetrics {
    fn new(registry: &Registry) -> Self {
        let gauges = GAUGES
            .iter()
            .map(|(name, help, get)| {
                let g = GaugeVec::new(Opts::new(*name, *help), &["model"]).expect("valid metric");
                g.register(registry);
                (g, *get)
            })
            .collect();
        let counters = COUNTERS
            .iter()
            .map(|(name, help, get)| {
                let c = CounterVec::new(Opts::new(*name, *help), &["model"]).expect("valid metric");
                c.register(registry);
                (c, *get)
            })
            .collect();
        Self {
            gauges,
            counters,
            refresh: Mutex::new(()),
        }
    }

    /// Copies the engines' numbers into the vectors: gauges set, counters moved up by what the
    /// engine counted since the last scrape.
    fn refresh(&self, tiers: &[Tier]) {
        let _one_at_a_time = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
        for t in tiers {
            for (g, get) in &self.gauges {
                g.with_label_values(&[&t.id]).set(get(t));
            }
            for (c, get) in &self.counters {
                let c = c.with_label_values(&[&t.id]);
                c.inc_by((get(t) - c.get()).max(0.0));
            }
        }
    }
}
