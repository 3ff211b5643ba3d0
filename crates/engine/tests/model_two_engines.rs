//! Two schedulers in one process (as when both tiers are served) stepping at the same time share
//! the compute pool safely, and each gives the output it gives alone.

mod common;

use std::sync::Arc;

use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, SamplingParams};
use tandem_text::{ChatMessage, SpecialMode};

fn answer(engine: &EngineHandle, prompt: Vec<u32>) -> String {
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let mut rx = engine.submit(GenRequest::new(prompt, greedy, 24)).unwrap();
    let mut text = String::new();
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { text: t, .. }) => text.push_str(&t),
            Some(Event::Finished { .. }) => return text,
            Some(Event::Prefilled { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn two_engines_step_concurrently_and_agree_with_running_alone() {
    let lm = Arc::new(common::mini());
    let prompts: Vec<Vec<u32>> = [
        "Write a haiku about rust.",
        "What is 17 times 3?",
        "Name three colours.",
    ]
    .iter()
    .map(|q| lm.chat_prompt(&[ChatMessage::new("user", q)]).unwrap())
    .collect();
    let a = EngineHandle::spawn(lm.clone(), EngineConfig::new(2, 512));
    let b = EngineHandle::spawn(lm.clone(), EngineConfig::new(2, 512));
    let alone: Vec<String> = prompts.iter().map(|p| answer(&a, p.clone())).collect();

    // Both engines busy at once, many times over, embeddings in between.
    let text = lm.tokenizer.encode("a sentence to embed", SpecialMode::None);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let (e, prompts) = (if i % 2 == 0 { &a } else { &b }, &prompts);
                let text = text.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for p in prompts {
                        out.push(answer(e, p.clone()));
                        e.embed(text.clone()).unwrap().blocking_recv().unwrap().unwrap();
                    }
                    out
                })
            })
            .collect();
        for r in runs {
            assert_eq!(r.join().expect("no panic in a step"), alone);
        }
    });
}
