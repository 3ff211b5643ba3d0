//! tandem's forward pass against the independent numpy reference (tools/reference_forward.py) on the
//! mini tier: same top-1 token, and the top-5 logits relative to the top-1 within 0.05.

mod common;

use tandem_engine::SingleSequence;

#[test]
fn mini_matches_the_numpy_reference() {
    let lm = common::mini();
    let cases = common::golden("mini_reference_logits.json");
    let mut worst = 0f32;
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
        let mut gen = SingleSequence::new(&lm, tokens.len() + 1);
        let logits = gen.logits(&tokens).unwrap();
        let ours_top1 = tandem_engine::argmax(&logits) as usize;
        assert_eq!(ours_top1, top[0].0, "{name}: top-1 token differs from the reference");
        for &(id, ref_logit) in &top[..5] {
            let ours = logits[id] - logits[ours_top1];
            let theirs = ref_logit - top[0].1;
            let diff = (ours - theirs).abs();
            worst = worst.max(diff);
            assert!(
                diff <= 0.05,
                "{name}: token {id} relative logit {ours} vs reference {theirs}"
            );
        }
    }
    eprintln!("largest top-5 relative-logit difference from the reference: {worst:.6}");
}
