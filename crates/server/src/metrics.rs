//! Prometheus metrics: counters and fixed-bucket histograms kept in atomics, rendered in the text
//! exposition format at `GET /metrics`, plus the engines' own counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::Tier;

/// A histogram with fixed upper bounds (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in microseconds.
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if seconds <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", c.load(Ordering::Relaxed));
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

const LATENCY: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

pub struct Metrics {
    pub requests: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub ttft: Histogram,
    pub inter_token: Histogram,
    /// Requests whose input moderation flagged them: let through, refused.
    pub moderation_flagged: AtomicU64,
    pub moderation_blocked: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            responses_2xx: AtomicU64::new(0),
            responses_4xx: AtomicU64::new(0),
            responses_5xx: AtomicU64::new(0),
            ttft: Histogram::new(LATENCY),
            inter_token: Histogram::new(LATENCY),
            moderation_flagged: AtomicU64::new(0),
            moderation_blocked: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts a moderation decision (`flagged` or `blocked`).
    pub fn moderation(&self, action: &str) {
        let c = if action == "blocked" {
            &self.moderation_blocked
        } else {
            &self.moderation_flagged
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, tiers: &[Tier]) -> String {
        let mut o = String::new();
        let c = |o: &mut String, name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{v}");
        };
        c(
            &mut o,
            "tandem_http_requests_total",
            "HTTP requests received.",
            "counter",
            format!("tandem_http_requests_total {}", self.requests.load(Ordering::Relaxed)),
        );
        let by_class = format!(
            "tandem_http_responses_total{{class=\"2xx\"}} {}\ntandem_http_responses_total{{class=\"4xx\"}} {}\ntandem_http_responses_total{{class=\"5xx\"}} {}",
            self.responses_2xx.load(Ordering::Relaxed),
            self.responses_4xx.load(Ordering::Relaxed),
            self.responses_5xx.load(Ordering::Relaxed)
        );
        c(
            &mut o,
            "tandem_http_responses_total",
            "HTTP responses by status class.",
            "counter",
            by_class,
        );
        c(
            &mut o,
            "tandem_moderation_total",
            "Requests flagged by input moderation, by what was done.",
            "counter",
            format!(
                "tandem_moderation_total{{action=\"flagged\"}} {}\ntandem_moderation_total{{action=\"blocked\"}} {}",
                self.moderation_flagged.load(Ordering::Relaxed),
                self.moderation_blocked.load(Ordering::Relaxed)
            ),
        );
        self.ttft.render(
            "tandem_time_to_first_token_seconds",
            "Time from request to first generated token.",
            &mut o,
        );
        self.inter_token.render(
            "tandem_inter_token_latency_seconds",
            "Time between generated tokens of a stream.",
            &mut o,
        );
        type Get = fn(&tandem_engine::EngineStats) -> f64;
        let engine: [(&str, &str, &str, Get); 15] = [
            ("tandem_queue_depth", "Requests waiting for a slot.", "gauge", |s| {
                s.waiting.load(Ordering::Relaxed) as f64
            }),
            ("tandem_active_sequences", "Sequences in slots.", "gauge", |s| {
                s.active.load(Ordering::Relaxed) as f64
            }),
            (
                "tandem_kv_cache_used_positions",
                "KV-cache positions held by active sequences.",
                "gauge",
                |s| s.kv_used.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_kv_cache_blocks",
                "KV-cache blocks in the pool (32 positions each).",
                "gauge",
                |s| s.kv_blocks_total.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_kv_cache_blocks_in_use",
                "KV-cache blocks held by active sequences (a shared block counts once).",
                "gauge",
                |s| s.kv_blocks_in_use.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_kv_cache_blocks_cached",
                "KV-cache blocks no sequence holds, kept for prefix reuse until their room is needed.",
                "gauge",
                |s| s.kv_blocks_cached.load(Ordering::Relaxed) as f64,
            ),
            ("tandem_forward_steps_total", "Forward passes run.", "counter", |s| {
                s.steps.load(Ordering::Relaxed) as f64
            }),
            (
                "tandem_forward_step_sequences_total",
                "Sum over forward passes of the sequences in each.",
                "counter",
                |s| s.step_seqs.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_forward_step_sequences_max",
                "Most sequences in one forward pass.",
                "gauge",
                |s| s.max_step_seqs.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_prompt_tokens_total",
                "Prompt tokens admitted.",
                "counter",
                |s| s.prompt_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_cached_prompt_tokens_total",
                "Prompt tokens served from the prefix cache.",
                "counter",
                |s| s.cached_tokens.load(Ordering::Relaxed) as f64,
            ),
            ("tandem_generated_tokens_total", "Tokens generated.", "counter", |s| {
                s.generated_tokens.load(Ordering::Relaxed) as f64
            }),
            (
                "tandem_spec_verifications_total",
                "Speculative decoding: steps in which a sequence verified draft tokens.",
                "counter",
                |s| s.spec_verifications.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_spec_draft_tokens_total",
                "Speculative decoding: draft tokens proposed.",
                "counter",
                |s| s.spec_proposed.load(Ordering::Relaxed) as f64,
            ),
            (
                "tandem_spec_accepted_tokens_total",
                "Speculative decoding: draft tokens the model kept.",
                "counter",
                |s| s.spec_accepted.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, kind, get) in engine {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for t in tiers {
                let _ = writeln!(o, "{name}{{model=\"{}\"}} {}", t.id, get(&t.engine.stats));
            }
        }
        let _ = writeln!(o, "# HELP tandem_kv_cache_capacity_positions KV-cache positions across all slots.\n# TYPE tandem_kv_cache_capacity_positions gauge");
        for t in tiers {
            let _ = writeln!(
                o,
                "tandem_kv_cache_capacity_positions{{model=\"{}\"}} {}",
                t.id,
                t.engine.config.slots * t.engine.config.ctx
            );
        }
        // Constrained decoding: the cost of the per-token masks (seconds ÷ masks = per token).
        let _ = writeln!(o, "# HELP tandem_grammar_masks_total Token masks computed for constrained decoding.\n# TYPE tandem_grammar_masks_total counter");
        let _ = writeln!(o, "# HELP tandem_grammar_mask_seconds_total Time spent computing token masks.\n# TYPE tandem_grammar_mask_seconds_total counter");
        for t in tiers {
            let (ns, n) = t.engine.model.grammar_stats();
            let _ = writeln!(o, "tandem_grammar_masks_total{{model=\"{}\"}} {n}", t.id);
            let _ = writeln!(
                o,
                "tandem_grammar_mask_seconds_total{{model=\"{}\"}} {}",
                t.id,
                ns as f64 / 1e9
            );
        }
        o
    }
}
