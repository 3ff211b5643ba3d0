//! Speculative decoding changes speed, never output: with each drafter forced on (every step
//! drafts as much as it can), greedy and seeded outputs are token for token those of plain
//! decoding, over prompts that exercise accepted drafts, rejected drafts, stop strings, the
//! token limit and several sequences verifying in one step.

mod common;

use std::sync::Arc;

use tandem_engine::{
    EngineConfig, EngineHandle, Event, FinishReason, GenRequest, LoadedModel, SamplingParams, SpecConfig, SpecMode,
};
use tandem_text::ChatMessage;

#[derive(Debug, PartialEq)]
struct Answer {
    text: String,
    reason: FinishReason,
    tokens: usize,
    logprobs: Vec<f32>,
}

const CODE: &str = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n";

fn requests(lm: &LoadedModel) -> Vec<GenRequest> {
    let code = CODE;
    let chats = [
        format!(
            "Rename the functions of this code to snake_case with a `rect_` prefix and repeat the whole code:\n{code}"
        ),
        "List the numbers from 1 to 30, separated by commas.".to_string(),
        "Write one sentence about the sea.".to_string(),
        format!("Add type hints to this code and print it again:\n{code}"),
    ];
    let greedy = SamplingParams::greedy();
    let seeded = SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        seed: Some(11),
        ..SamplingParams::default()
    };
    chats
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let prompt = lm.chat_prompt(&[ChatMessage::new("user", c)]).unwrap();
            let params = if i % 2 == 0 { greedy.clone() } else { seeded.clone() };
            GenRequest {
                stop: if i == 1 { vec!["17".into()] } else { Vec::new() },
                top_logprobs: (i == 3).then_some(2),
                ..GenRequest::new(prompt, params, if i == 2 { 9 } else { 48 })
            }
        })
        .collect()
}

/// Submits every request at once (they share steps) and collects the answers in order.
fn run(engine: &EngineHandle, reqs: &[GenRequest]) -> Vec<Answer> {
    let mut rxs: Vec<_> = reqs.iter().map(|r| engine.submit(r.clone()).unwrap()).collect();
    rxs.iter_mut()
        .map(|rx| {
            let mut a = Answer {
                text: String::new(),
                reason: FinishReason::Stop,
                tokens: 0,
                logprobs: Vec::new(),
            };
            loop {
                match rx.blocking_recv() {
                    Some(Event::Token { text, logprobs, .. }) => {
                        a.text.push_str(&text);
                        a.logprobs.extend(logprobs.map(|l| l.chosen.logprob));
                    }
                    Some(Event::Finished {
                        reason,
                        completion_tokens,
                        ..
                    }) => {
                        a.reason = reason;
                        a.tokens = completion_tokens;
                        return a;
                    }
                    Some(Event::Prefilled { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .collect()
}

fn config(mode: SpecMode) -> EngineConfig {
    EngineConfig {
        spec: SpecConfig {
            mode,
            max_draft: 5,
            max_rows: 8,
            forced: true,
        },
        ..EngineConfig::new(2, 512)
    }
}

#[test]
fn forced_speculation_gives_the_plain_output() {
    let lm = Arc::new(common::mini());
    let reqs = requests(&lm);
    let plain = run(&EngineHandle::spawn(lm.clone(), config(SpecMode::Off)), &reqs);
    assert!(plain.iter().all(|a| a.tokens > 0));
    assert_eq!(plain[2].reason, FinishReason::Length);
    assert_eq!(plain[3].logprobs.len(), plain[3].tokens, "one logprob per token");

    let ngram = EngineHandle::spawn(lm.clone(), config(SpecMode::NGram));
    assert_eq!(run(&ngram, &reqs), plain, "n-gram drafts");
    let (p, a) = (
        ngram.stats.spec_proposed.load(Relaxed),
        ngram.stats.spec_accepted.load(Relaxed),
    );
    eprintln!("ngram: {a} of {p} draft tokens accepted");
    assert!(
        a > 0 && a < p,
        "the prompts should give both accepted and rejected drafts: {a} of {p}"
    );

    // The mini drafting for itself: greedy drafts are the target's own greedy choices (accepted),
    // seeded rows sample and often disagree (rejected).
    let draft = EngineHandle::spawn_with_draft(lm.clone(), config(SpecMode::Draft), Some(lm.clone())).unwrap();
    assert_eq!(run(&draft, &reqs), plain, "model drafts");
    let (p, a) = (
        draft.stats.spec_proposed.load(Relaxed),
        draft.stats.spec_accepted.load(Relaxed),
    );
    eprintln!("draft model: {a} of {p} draft tokens accepted");
    assert!(a > 0 && a < p, "{a} of {p}");
    // The same requests again: the drafter's caches roll back to each new prompt.
    assert_eq!(run(&draft, &reqs), plain, "model drafts, second round");

    // Predicted Outputs on an engine whose own speculation is off: the code the prompts edit as
    // the prediction of every request (right for the edits, wrong for the others).
    let code = lm.tokenizer.encode(CODE, tandem_text::SpecialMode::None);
    let predicted: Vec<GenRequest> = reqs
        .iter()
        .map(|r| GenRequest {
            prediction: code.clone(),
            ..r.clone()
        })
        .collect();
    let engine = EngineHandle::spawn(lm.clone(), config(SpecMode::Off));
    assert_eq!(run(&engine, &predicted), plain, "predicted outputs");
    let (p, a) = (
        engine.stats.spec_proposed.load(Relaxed),
        engine.stats.spec_accepted.load(Relaxed),
    );
    eprintln!("prediction: {a} of {p} draft tokens accepted");
    assert!(a > 0 && a < p, "{a} of {p}");
}

use std::sync::atomic::Ordering::Relaxed;
