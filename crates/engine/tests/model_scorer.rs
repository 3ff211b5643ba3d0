//! Continuation log-likelihoods (multiple-choice scoring) against next-token logits computed one
//! prefix at a time.

mod common;

use tandem_engine::{log_softmax_at, Scorer};
use tandem_model::{KvCache, RunState};
use tandem_text::SpecialMode;

/// Σ_j log p(cont_j | context + cont[..j]): the context prefilled, then the continuation fed as
/// one-token prompt chunks (scoring reads a given text, so it takes the prompt path; one logit
/// row at a time).
fn reference(lm: &tandem_engine::LoadedModel, context: &[u32], cont: &[u32]) -> f64 {
    let cfg = &lm.model.config;
    let (mut st, mut kv) = (RunState::new(cfg, 256, 1, 512), KvCache::new(cfg, 512));
    let mut logits = lm.model.forward(&mut st, &mut kv, context).unwrap().to_vec();
    let mut total = 0.0;
    for &t in cont {
        total += log_softmax_at(&logits, t as usize).0;
        logits = lm.model.forward(&mut st, &mut kv, &[t]).unwrap().to_vec();
    }
    total
}

#[test]
fn scores_equal_one_prefix_at_a_time_and_rank_the_right_answer_first() {
    let lm = common::mini();
    let tok = |s: &str| lm.tokenizer.encode(s, SpecialMode::None);
    let context = tok("Q: What is the capital of France?\nA:");
    let choices = [tok(" Paris"), tok(" Berlin"), tok(" The capital of France is Paris.")];

    let mut scorer = Scorer::new(&lm, 512);
    let scores: Vec<_> = choices.iter().map(|c| scorer.score(&context, c).unwrap()).collect();
    for (c, s) in choices.iter().zip(&scores) {
        let want = reference(&lm, &context, c);
        assert!(
            (s.logprob - want).abs() < 1e-3,
            "scorer {} vs one prefix at a time {want}",
            s.logprob
        );
        assert_eq!(s.tokens, c.len());
    }
    assert!(scores[0].logprob > scores[1].logprob, "{scores:?}");
    assert!(scores[0].greedy, "\" Paris\" should be the greedy answer: {scores:?}");
    assert!(!scores[1].greedy);

    // The cache holds the last choice: scoring again, or after another context, changes nothing.
    assert_eq!(scorer.score(&context, &choices[0]).unwrap(), scores[0]);
    let other = tok("Q: What is 2 + 2?\nA:");
    let four = scorer.score(&other, &tok(" 4")).unwrap();
    assert_eq!(Scorer::new(&lm, 512).score(&other, &tok(" 4")).unwrap(), four);
    assert_eq!(scorer.score(&context, &choices[1]).unwrap(), scores[1]);
}

#[test]
fn continuations_longer_than_one_step_of_rows() {
    let lm = common::mini();
    let tok = |s: &str| lm.tokenizer.encode(s, SpecialMode::None);
    let context = tok("def fib(n):\n");
    let body = tok(&"    # the next line computes a Fibonacci number step by step\n".repeat(9));
    assert!(body.len() > tandem_engine::SCORE_ROWS, "{} tokens", body.len());
    let s = Scorer::new(&lm, 512).score(&context, &body).unwrap();
    let want = reference(&lm, &context, &body);
    assert!((s.logprob - want).abs() < 1e-2, "{} vs {want}", s.logprob);

    let err = Scorer::new(&lm, 512).score(&[], &body).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
    let err = Scorer::new(&lm, 64).score(&context, &body).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}
