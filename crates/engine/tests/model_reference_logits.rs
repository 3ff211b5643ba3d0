//! tandem's forward pass against the independent numpy reference (tools/reference_forward.py) on the
//! mini tier: same top-1 token, and the top-5 logits relative to the top-1 within 0.05 on the
//! exact f32 path. Prompts on the bf16 path (AMX where the CPU has it) round weights and
//! activations to 8 significant bits, as llama.cpp's 8-bit activations do: within 0.1 there
//! (measured worst 0.030–0.054 as other kernels changed; greedy text still equals llama.cpp's).
//! Each check also runs with the last 16 tokens decoded one at a time: generated tokens take the
//! int8 kernels (activations rounded to int8 blocks of 32): within 0.25 (measured 0.107–0.179).

mod common;

use tandem_engine::SingleSequence;
use tandem_kernels::{KernelChoice, PromptKernel};
use tandem_model::{KvType, Rope, Yarn};

/// Tokens at the end of each prompt run as generated tokens in the decode check.
const DECODED: usize = 16;

#[test]
fn mini_matches_the_numpy_reference() {
    // The exact paths, then the best ones.
    check(KernelChoice::exact(), 0.05, 0);
    check(KernelChoice::exact(), 0.05, DECODED);
    let best = KernelChoice::best();
    if best.prompt() != PromptKernel::Exact {
        // Int8 prompts (no AMX): measured 0.087 with f32 attention tiles, 0.119 with the flash
        // kernel's bf16 sums (`tandem_kernels::flash`; per prompt 0.074 0.119 0.036 0.055 0.086,
        // was 0.051 0.087 0.079 0.073 0.079: int8 rounding steps moved, as below — with bf16
        // prompt matmuls the flash kernel gives 0.091 against the f32 tiles' 0.095); bf16 (AMX)
        // 0.030–0.054 with exact logits.
        check(best, 0.15, 0);
    }
    // Measured worst 0.107–0.179 as the kernels' float roundings moved, 0.097 on packed panels
    // with int8 prompts, 0.174 with the scores on position-minor f16 keys (top-1 unchanged everywhere): int8 activations in every layer and the
    // logits matmul, over 16 tokens whose own KV entries carry the rounding. Rounding to int8 is a step function, so an ulp upstream
    // can flip a value by one step: the deviation is noise of that size, not drift.
    check(best, 0.25, DECODED);
}

/// The KV cache in q8_0 blocks (ggml's 8-bit rounding of every key and value): the same top-1
/// everywhere; the top-5 relative logits move by up to 0.74 (measured: exact kernels 0.744, best
/// kernels with 16 tokens decoded 0.692, against 0.05 and 0.18 with f16): within 1.0.
#[test]
fn mini_with_a_q8_kv_cache_matches_the_numpy_reference() {
    check_kv(KernelChoice::exact(), 1.0, 0, KvType::Q8_0);
    check_kv(KernelChoice::best(), 1.0, DECODED, KvType::Q8_0);
}

/// The KV cache in q4_0 blocks (ggml's 4-bit rounding of every key and value, 16 levels per block
/// of 32) is too coarse for the mini: Qwen2's keys carry large bias channels, so a block's scale
/// is set by its outlier and the rest round to a few levels. Measured: the top-1 token differs from
/// the reference on 2 of the 5 prompts (exact kernels) and 3 of 5 (best kernels, 16 decoded), top-5
/// relative logits off by up to 7.33 / 6.41; with the flash kernel's bf16 sums on top (best
/// kernels) 1 of 5, 7.68. This pins that measurement (at least 2 of 5 agree on the exact path,
/// 1 on the best, within 10 — a broken cache agrees on none), so a change to it is seen;
/// docs/long-context.md says not to use q4_0 with these tiers.
#[test]
fn mini_with_a_q4_kv_cache_is_measured_against_the_numpy_reference() {
    for (kernels, decoded, least) in [(KernelChoice::exact(), 0, 2), (KernelChoice::best(), DECODED, 1)] {
        let cases = compare(
            "mini_reference_logits.json",
            Rope::Plain,
            kernels,
            decoded,
            KvType::Q4_0,
        );
        let agree = cases.iter().filter(|c| c.1).count();
        let worst = cases.iter().map(|c| c.2).fold(0f32, f32::max);
        eprintln!(
            "{kernels:?}, KV Q4_0, last {decoded} decoded: top-1 agrees on {agree} of {}, top-5 within {worst:.3}",
            cases.len()
        );
        assert!(agree >= least && worst <= 10.0, "{cases:?}");
    }
}

/// Prompts through the prompt path, or (`decoded` > 0) with their last tokens decoded one at a time.
fn check(kernels: KernelChoice, tolerance: f32, decoded: usize) {
    check_kv(kernels, tolerance, decoded, KvType::F16)
}

fn check_kv(kernels: KernelChoice, tolerance: f32, decoded: usize, kv: KvType) {
    check_against(
        "mini_reference_logits.json",
        Rope::Plain,
        kernels,
        (tolerance, decoded),
        kv,
    )
}

/// Every position rotated with YaRN ×4 (`--rope-scaling yarn`) against the numpy reference run
/// the same way (tools/reference_forward.py … 4): the whole model's YaRN — frequencies and
/// temperature — within the exact path's 0.05 and the best path's 0.45 (measured 0.386 with int8
/// prompts too; under 0.25 with exact prompts). (YaRN itself moves the
/// reference's top-5 relative logits by up to 0.895 at these short lengths, top-1 unchanged: why
/// `auto` leaves requests within the trained context on the trained RoPE.)
#[test]
fn mini_with_yarn_matches_the_numpy_yarn_reference() {
    let golden = "mini_reference_logits_yarn.json";
    check_against(golden, Rope::Yarn, KernelChoice::exact(), (0.05, 0), KvType::F16);
    check_against(golden, Rope::Yarn, KernelChoice::best(), (0.45, DECODED), KvType::F16);
}

fn check_against(golden: &str, rope: Rope, kernels: KernelChoice, (tolerance, decoded): (f32, usize), kv: KvType) {
    let mut worst = 0f32;
    for (name, same_top1, diff) in compare(golden, rope, kernels, decoded, kv) {
        assert!(
            same_top1,
            "{kernels:?} decoded {decoded}: {name}: top-1 token differs from the reference"
        );
        assert!(
            diff <= tolerance,
            "{kernels:?} decoded {decoded}: {name}: top-5 relative logits off by {diff}"
        );
        worst = worst.max(diff);
    }
    eprintln!(
        "{kernels:?}, KV {kv:?}, {rope:?}, last {decoded} tokens decoded: largest top-5 relative-logit difference from the reference: {worst:.6}"
    );
}

/// Per reference prompt: its name, whether tandem's top-1 token is the reference's, and the
/// largest difference of the reference's top-5 logits relative to its top-1.
fn compare(golden: &str, rope: Rope, kernels: KernelChoice, decoded: usize, kv: KvType) -> Vec<(String, bool, f32)> {
    let mut lm = common::mini();
    lm.model.kernels = kernels;
    if rope == Rope::Yarn {
        lm.model.config.yarn = Some(Yarn::new(4.0, lm.model.config.ctx_train));
    }
    let cases = common::golden(golden);
    let mut out = Vec::new();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let tokens: Vec<u32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert!((20..=200).contains(&tokens.len()), "{name}: prompts are 20–200 tokens");
        let top: Vec<(usize, f32)> = case["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap() as f32))
            .collect();
        let mut gen = SingleSequence::with_kv_type(&lm, tokens.len() + 1, kv).with_rope(rope);
        let logits = gen.logits_decoding(&tokens, decoded).unwrap();
        let ours_top1 = tandem_engine::argmax(&logits) as usize;
        let diff = top[..5]
            .iter()
            .map(|&(id, ref_logit)| ((logits[id] - logits[top[0].0]) - (ref_logit - top[0].1)).abs())
            .fold(0f32, f32::max);
        out.push((name.to_string(), ours_top1 == top[0].0, diff));
    }
    out
}
