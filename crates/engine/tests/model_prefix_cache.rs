//! The paged KV cache on the real mini, through the scheduler: a prompt that shares full blocks
//! with a sequence in another slot (running or finished) starts from them and answers exactly as
//! it would from scratch; choices of one request share the prompt's blocks; and when the pool is
//! full a request waits for blocks instead of failing.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::{EngineConfig, EngineError, EngineHandle, Event, GenRequest};
use tandem_model::{blocks_for, KV_BLOCK};
use tandem_text::SpecialMode;
use tokio::sync::mpsc::UnboundedReceiver;

/// The tests share the machine's cores; under `cargo test` (one process) they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one request produced.
#[derive(Debug, Default, Clone, PartialEq)]
struct Done {
    cached: usize,
    texts: Vec<String>,
    tokens: Vec<usize>,
}

/// Reads a request's events to the end (60 s at most).
fn finish(rx: &mut UnboundedReceiver<Event>, n: usize) -> Done {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut d = Done {
        texts: vec![String::new(); n],
        tokens: vec![0; n],
        ..Done::default()
    };
    let mut left = n;
    while left > 0 {
        assert!(Instant::now() < deadline, "timed out: {d:?}");
        match rx.try_recv() {
            Ok(Event::Prefilled { cached_tokens, .. }) => d.cached = cached_tokens,
            Ok(Event::Token { choice, text, .. }) => d.texts[choice].push_str(&text),
            Ok(Event::Finished {
                choice,
                completion_tokens,
                ..
            }) => {
                d.tokens[choice] = completion_tokens;
                left -= 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    d
}

/// Waits for the first token of a request (it has been admitted and prefilled).
fn first_token(rx: &mut UnboundedReceiver<Event>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut cached = usize::MAX;
    loop {
        assert!(Instant::now() < deadline, "no first token");
        match rx.try_recv() {
            Ok(Event::Prefilled { cached_tokens, .. }) => cached = cached_tokens,
            Ok(Event::Token { .. }) => return cached,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[test]
fn a_shared_prefix_is_reused_across_slots_and_changes_no_output() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lm = Arc::new(common::mini());
    let tok = |s: &str| lm.tokenizer.encode(s, SpecialMode::None);
    let system = "You are a careful senior engineer. Answer in plain prose, name the trade-offs, \
                  prefer the standard library, and never invent an API. When code is asked for, \
                  give one short example and explain what each line does and why it is safe. \
                  Keep answers under two hundred words, use the reader's terms, say when a question \
                  is ambiguous, and end with one sentence on how to test what you suggested.\n";
    let (a, b) = (
        tok(&format!("{system}Question: how do I read a file line by line in Rust?")),
        tok(&format!("{system}Question: what is a mutex for?")),
    );
    let common_len = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(common_len >= 2 * KV_BLOCK, "the shared part is {common_len} tokens");
    let greedy = common::greedy_without_eog(&lm);
    let req = |p: &Vec<u32>, max: usize| GenRequest::new(p.clone(), greedy.clone(), max);

    // From scratch, on an engine that has seen nothing.
    let fresh = EngineHandle::spawn(lm.clone(), EngineConfig::new(2, 512));
    let want_b = finish(&mut fresh.submit(req(&b, 12)).unwrap(), 1);
    assert_eq!(want_b.cached, 0);
    drop(fresh);

    let engine = EngineHandle::spawn(lm.clone(), EngineConfig::new(4, 512));
    // A runs (and keeps running) in one slot; B, in another, starts from A's full blocks.
    let mut ra = engine.submit(req(&a, 40)).unwrap();
    assert_eq!(first_token(&mut ra), 0);
    let got_b = finish(&mut engine.submit(req(&b, 12)).unwrap(), 1);
    // At least A's full blocks that B starts with; past them, the rows of A's next block that
    // match too, when that block is full (and so indexed) already.
    let blocks = common_len / KV_BLOCK * KV_BLOCK;
    let a_full = a.len() / KV_BLOCK * KV_BLOCK;
    let want = if a_full > blocks { common_len } else { blocks };
    assert_eq!(
        got_b.cached, want,
        "B starts from A's blocks ({common_len} tokens shared)"
    );
    assert_eq!(got_b.texts, want_b.texts, "output from shared blocks differs");
    let stats = &engine.stats;
    assert!(stats.kv_blocks_in_use.load(std::sync::atomic::Ordering::Relaxed) > 0);
    finish(&mut ra, 1);

    // After both left, their blocks stay cached: B asked again reuses its whole prompt but the
    // last token, which must run (its last block, filled further by B's answer, is copied up to
    // the prompt's end).
    let again = finish(&mut engine.submit(req(&b, 12)).unwrap(), 1);
    assert_eq!(again.cached, b.len() - 1, "B's own cached prefix");
    assert_eq!(again.texts, want_b.texts);

    // Choices of one request share its prompt: greedy choices are identical, and equal n = 1.
    let mut two = req(&b, 12);
    two.n = 2;
    let both = finish(&mut engine.submit(two).unwrap(), 2);
    assert_eq!(both.texts, vec![want_b.texts[0].clone(); 2]);
}

#[test]
fn requests_wait_for_kv_blocks_instead_of_failing() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lm = Arc::new(common::mini());
    let ctx = 256;
    // One context's worth of blocks for four slots: 8 blocks of 32 positions.
    let cfg = EngineConfig {
        kv_blocks: blocks_for(ctx),
        ..EngineConfig::new(4, ctx)
    };
    let engine = EngineHandle::spawn(lm.clone(), cfg);
    let greedy = common::greedy_without_eog(&lm);
    let prompts = ["Tell me about owls.", "Tell me about rivers.", "Tell me about salt."];
    let max = 100; // each request reserves blocks_for(prompt + 100) = 4 blocks: two fit at once
    let mut rxs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let p = lm.tokenizer.encode(p, SpecialMode::None);
            assert_eq!(blocks_for(p.len() + max), 4);
            engine.submit(GenRequest::new(p, greedy.clone(), max)).unwrap()
        })
        .collect();
    // The first two are admitted; the third waits until one of them has finished.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut admitted = [None; 3];
    let mut finished = [None; 3];
    let mut clock = 0;
    while finished.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "admitted {admitted:?} finished {finished:?}");
        for (i, rx) in rxs.iter_mut().enumerate() {
            while let Ok(ev) = rx.try_recv() {
                clock += 1;
                match ev {
                    Event::Prefilled { .. } => admitted[i] = Some(clock),
                    Event::Finished { completion_tokens, .. } => {
                        assert_eq!(completion_tokens, max, "request {i} ran to max_tokens");
                        finished[i] = Some(clock);
                    }
                    Event::Token { .. } => {}
                    other => panic!("request {i}: {other:?}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let first_done = finished[0].unwrap().min(finished[1].unwrap());
    assert!(
        admitted[2].unwrap() > first_done,
        "the third request was admitted before any blocks came free: admitted {admitted:?} finished {finished:?}"
    );

    // A request that needs the whole pool runs, and again when its own blocks are all that is
    // cached (the second time it starts from a copy of its first rows, taken from the blocks it
    // is about to evict).
    let p = lm.tokenizer.encode("Tell me about owls.", SpecialMode::None);
    let whole = ctx - p.len();
    assert_eq!(blocks_for(p.len() + whole), engine.config.pool_blocks());
    let first = finish(
        &mut engine
            .submit(GenRequest::new(p.clone(), greedy.clone(), whole))
            .unwrap(),
        1,
    );
    let second = finish(
        &mut engine
            .submit(GenRequest::new(p.clone(), greedy.clone(), whole))
            .unwrap(),
        1,
    );
    assert_eq!(second.cached, p.len() - 1);
    assert_eq!(second.texts, first.texts);
    assert_eq!(second.tokens, vec![whole]);

    // A request that could never fit is refused at once, naming the parameter.
    let mut wide = GenRequest::new(p, greedy.clone(), 200);
    wide.n = 4;
    match engine.submit(wide) {
        Err(EngineError::BadParam { param: "n", problem }) => assert!(problem.contains("KV blocks"), "{problem}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("4 choices of 200 tokens in 8 blocks were accepted"),
    }
}
