//! How long a context each tier serves, and how its RoPE reaches that far: planned at start from
//! the model, `--ctx-size`, `--rope-scaling` and the KV budget, and said on one line.

use tandem_model::{Config, KvPool, KvType, RopeScaling, KV_BLOCK};

/// The shortest context the planner picks by itself when the budget holds less than a full one.
const MIN_AUTO_CTX: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub struct ContextPlan {
    /// Positions each sequence may reach.
    pub ctx: usize,
    /// The model's longest context under the RoPE setting.
    pub full: usize,
    /// Positions the KV budget holds, all sequences together.
    pub budget_positions: usize,
    /// Sequences reaching past this rotate with YaRN (`EngineConfig::yarn_past`).
    pub yarn_past: Option<usize>,
    /// Why `ctx` is less than asked or than `full`, for the startup line.
    pub note: Option<String>,
}

/// Plans `cfg`'s context and sets its YaRN scaling to match (`Config::set_rope_for`). `asked`:
/// `--ctx-size` (capped at the full context); without it, the full context where `budget`
/// bytes of `kv` hold one, else the most they hold (at least `MIN_AUTO_CTX`).
pub fn plan(cfg: &mut Config, asked: Option<usize>, mode: RopeScaling, budget: usize, kv: KvType) -> ContextPlan {
    let full = cfg.full_context(mode);
    let budget_positions = budget / KvPool::block_bytes(cfg, kv) * KV_BLOCK;
    let (ctx, note) = match asked {
        Some(c) if c > full => (
            full,
            Some(format!(
                "--ctx-size {c} is past the model's {full} under --rope-scaling"
            )),
        ),
        Some(c) => (c, None),
        None if budget_positions >= full => (full, None),
        None => {
            let ctx = budget_positions.max(MIN_AUTO_CTX).min(full);
            let mib = budget >> 20;
            (ctx, Some(format!("the KV budget of {mib} MiB holds {budget_positions} positions, less than the full {full} (--kv-budget-mib)")))
        }
    };
    let yarn_past = cfg.set_rope_for(ctx, mode);
    ContextPlan {
        ctx,
        full,
        budget_positions,
        yarn_past,
        note,
    }
}

impl ContextPlan {
    /// "RoPE: trained (…) | YaRN ×F …" for the startup line.
    pub fn rope_words(&self, cfg: &Config) -> String {
        match (self.yarn_past, cfg.yarn) {
            (Some(0), Some(y)) => format!("YaRN ×{} for every request", y.factor),
            (Some(n), Some(y)) => format!(
                "trained up to {n} positions, YaRN ×{} for requests reaching past",
                y.factor
            ),
            _ => format!("trained, {} positions at most", cfg.ctx_train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Qwen2-like config: 24 layers, 2 KV heads of 64 (12 KiB per position in f16), 32k trained.
    fn qwen() -> Config {
        Config {
            arch: tandem_model::Arch::Qwen2,
            name: "t".into(),
            n_layer: 24,
            dim: 896,
            n_head: 14,
            n_kv_head: 2,
            head_dim: 64,
            ffn_dim: 4864,
            vocab: 151_936,
            rope_base: 1e6,
            rms_eps: 1e-6,
            ctx_train: 32_768,
            yarn: None,
            activation: tandem_model::Activation::SwiGlu,
            embed_scale: 1.0,
            sliding: None,
        }
    }

    #[test]
    fn the_full_context_where_the_budget_holds_it_else_what_fits() {
        let per_pos = 2 * 24 * 128 * 2;
        let mut c = qwen();
        let p = plan(&mut c, None, RopeScaling::Auto, 131_072 * per_pos, KvType::F16);
        assert_eq!((p.ctx, p.full, p.yarn_past), (131_072, 131_072, Some(32_768)));
        assert_eq!(c.yarn.map(|y| y.factor), Some(4.0));
        let mut c = qwen();
        let p = plan(&mut c, None, RopeScaling::Auto, 40_000 * per_pos, KvType::F16);
        assert_eq!((p.ctx, p.yarn_past), (40_000 / 32 * 32, Some(32_768)));
        assert!(p.note.is_some());
        // Within the trained context nothing is scaled.
        let mut c = qwen();
        let p = plan(&mut c, Some(4096), RopeScaling::Auto, 1 << 40, KvType::F16);
        assert_eq!((p.ctx, p.yarn_past, c.yarn), (4096, None, None));
        // none: the trained context at most; yarn: every request.
        let mut c = qwen();
        let p = plan(&mut c, Some(100_000), RopeScaling::Off, 1 << 40, KvType::F16);
        assert_eq!((p.ctx, p.yarn_past, c.yarn), (32_768, None, None));
        let mut c = qwen();
        let p = plan(&mut c, Some(4096), RopeScaling::Yarn(2.0), 1 << 40, KvType::F16);
        assert_eq!((p.ctx, p.full, p.yarn_past), (4096, 65_536, Some(0)));
        // Other architectures have no YaRN unless their file says so.
        let mut c = Config {
            arch: tandem_model::Arch::Gemma3,
            ..qwen()
        };
        let p = plan(&mut c, None, RopeScaling::Auto, 1 << 40, KvType::F16);
        assert_eq!((p.ctx, p.yarn_past), (32_768, None));
    }

    #[test]
    fn rope_settings_parse() {
        assert_eq!("auto".parse(), Ok(RopeScaling::Auto));
        assert_eq!("none".parse(), Ok(RopeScaling::Off));
        assert_eq!("yarn".parse(), Ok(RopeScaling::Yarn(4.0)));
        assert_eq!("yarn:2.5".parse(), Ok(RopeScaling::Yarn(2.5)));
        assert!("yarn:0.5".parse::<RopeScaling>().is_err());
        assert!("linear".parse::<RopeScaling>().is_err());
    }
}
