//! The scheduler without a model: `FakeForward` keeps each KV position's token in its pool and
//! answers every logit row with a scripted function of the context it reads back through the
//! sequence's block table — so wrong block bookkeeping (sharing, copying, forks, prefix reuse)
//! shows up as wrong text. Time is a value the test moves; nothing waits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_model::{Logits, SeqStep, TokenPath, KV_BLOCK};
use tandem_text::{byte_to_char_table, Tokenizer, TYPE_CONTROL, TYPE_NORMAL};
use tokio::sync::mpsc::UnboundedReceiver;

use super::forward::{Forward, TextSide};
use super::{Cmd, Scheduler};
use crate::grammar::LazyGrammars;
use crate::request::{EngineConfig, EngineStats, Event, FinishReason, GenRequest, Priority};
use crate::{Grammars, Result, SamplingParams, SpecMode};

/// The fake vocabulary: one token per byte, then `<|im_end|>`.
const EOG: u32 = 256;
const VOCAB: usize = 257;

/// The next token after a context.
type Script = Arc<dyn Fn(&[u32]) -> u32 + Send + Sync>;

/// Letters count up (`abc` → `d`), `z` is followed by `.`, `.` by the end of generation, anything
/// else by `a`.
fn next_letter() -> Script {
    Arc::new(|ctx: &[u32]| match *ctx.last().expect("a context") as u8 {
        b'.' => EOG,
        b'z' => b'.' as u32,
        c @ b'a'..=b'y' => c as u32 + 1,
        _ => b'a' as u32,
    })
}

/// The context's tokens three back: `abc` repeats forever (and speculation finds it).
fn period_three() -> Script {
    Arc::new(|ctx: &[u32]| ctx[ctx.len().saturating_sub(3)])
}

struct FakeText {
    tokenizer: Tokenizer,
    grammars: LazyGrammars,
}

impl FakeText {
    fn new() -> Self {
        let table = byte_to_char_table();
        let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
        tokens.push("<|im_end|>".into());
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut types = vec![TYPE_NORMAL; 256];
        types.push(TYPE_CONTROL);
        let tokenizer = Tokenizer::from_vocab(&tokens, &types, &[], vec![]).expect("a byte vocabulary");
        Self {
            tokenizer,
            grammars: LazyGrammars::default(),
        }
    }
}

impl TextSide for FakeText {
    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    fn grammars(&self) -> std::result::Result<&Grammars, String> {
        self.grammars.get(&self.tokenizer, VOCAB)
    }
}

/// The fake model's `depth_unit`: positions whose attention costs one token's matmuls (large:
/// the tests' short contexts cost their token counts; `deep_prefill_*` sets its own).
const DEPTH_UNIT: usize = 1 << 30;

/// What one step ran: per sequence, (prompt tokens?, the tokens).
type StepLog = Vec<(bool, Vec<u32>)>;

struct FakeForward {
    script: Script,
    /// [blocks][KV_BLOCK]: the token at each position (u32::MAX: never written).
    pool: Vec<Vec<u32>>,
    max_batch: usize,
    depth_unit: usize,
    /// The last step's logit rows, per sequence.
    rows: Vec<Vec<Vec<f32>>>,
    log: Arc<Mutex<Vec<StepLog>>>,
}

impl FakeForward {
    /// One-hot-like logits for the script's next token.
    fn row(&self, ctx: &[u32]) -> Vec<f32> {
        let mut r = vec![-10.0; VOCAB];
        r[(self.script)(ctx) as usize] = 10.0;
        r
    }
}

impl Forward for FakeForward {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    fn logit_capacity(&self) -> usize {
        64
    }
    fn depth_unit(&self) -> usize {
        self.depth_unit
    }
    fn step(&mut self, seqs: &mut [SeqStep]) -> Result<()> {
        let total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        assert!(total <= self.max_batch, "a step of {total} tokens");
        self.rows.clear();
        let mut log = Vec::new();
        for s in seqs.iter_mut() {
            log.push((s.path == TokenPath::Prompt, s.tokens.to_vec()));
            let mut rows = Vec::new();
            for (j, &t) in s.tokens.iter().enumerate() {
                let pos = s.kv.len + j;
                let block = s.kv.blocks[pos / KV_BLOCK] as usize;
                self.pool[block][pos % KV_BLOCK] = t;
                let wanted = match s.logits {
                    Logits::None => false,
                    Logits::Last => j + 1 == s.tokens.len(),
                    Logits::Every => true,
                };
                if wanted {
                    let ctx: Vec<u32> = (0..=pos)
                        .map(|p| self.pool[s.kv.blocks[p / KV_BLOCK] as usize][p % KV_BLOCK])
                        .collect();
                    assert!(!ctx.contains(&u32::MAX), "a position read before it was written");
                    rows.push(self.row(&ctx));
                }
            }
            s.kv.len += s.tokens.len();
            self.rows.push(rows);
        }
        self.log.lock().unwrap().push(log);
        Ok(())
    }
    fn logit_row_mut(&mut self, k: usize, j: usize) -> Option<&mut [f32]> {
        self.rows.get_mut(k)?.get_mut(j).map(|r| &mut r[..])
    }
    fn copy_block(&mut self, src: u32, dst: u32, rows: usize) {
        let from = self.pool[src as usize][..rows].to_vec();
        self.pool[dst as usize][..rows].copy_from_slice(&from);
    }
    fn embed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        Ok(vec![tokens.len() as f32])
    }
}

struct Rig {
    sched: Scheduler,
    log: Arc<Mutex<Vec<StepLog>>>,
    now: Instant,
}

impl Rig {
    fn new(cfg: EngineConfig, script: Script) -> Self {
        Self::with_depth_unit(cfg, script, DEPTH_UNIT)
    }

    /// A rig whose model says deep positions cost a token's matmuls every `depth_unit` positions.
    fn with_depth_unit(cfg: EngineConfig, script: Script, depth_unit: usize) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let model = FakeForward {
            script,
            pool: vec![vec![u32::MAX; KV_BLOCK]; cfg.pool_blocks()],
            max_batch: cfg.step_tokens.max(cfg.slots),
            depth_unit,
            rows: Vec::new(),
            log: log.clone(),
        };
        let stats = Arc::new(EngineStats::default());
        let sched = Scheduler::new(Arc::new(FakeText::new()), Box::new(model), cfg, stats, None);
        Self {
            sched,
            log,
            now: Instant::now(),
        }
    }

    /// Queues a request as `EngineHandle::submit` does (the queue counter included).
    fn submit(&mut self, req: GenRequest) -> UnboundedReceiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.sched
            .stats
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.sched.command(Cmd::Submit(Box::new(req), tx, self.now));
        rx
    }

    fn tick(&mut self) {
        self.sched.tick(self.now);
    }

    /// Ticks until nothing is active or waiting (at most `n` times).
    fn settle(&mut self, n: usize) {
        for _ in 0..n {
            if self.sched.active.is_empty() && self.sched.waiting.is_empty() {
                return;
            }
            self.tick();
        }
        panic!("still busy after {n} ticks");
    }

    fn steps(&self) -> Vec<StepLog> {
        self.log.lock().unwrap().clone()
    }
}

fn cfg(slots: usize, ctx: usize) -> EngineConfig {
    EngineConfig::new(slots, ctx)
}

fn req(prompt: &str, max_tokens: usize) -> GenRequest {
    GenRequest::new(tokens(prompt), SamplingParams::greedy(), max_tokens)
}

fn tokens(s: &str) -> Vec<u32> {
    s.bytes().map(u32::from).collect()
}

fn drain(rx: &mut UnboundedReceiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Choice `c`'s text and how it finished, from all of a request's events.
fn answer(events: &[Event], c: usize) -> (String, Option<(FinishReason, usize)>) {
    let mut text = String::new();
    let mut fin = None;
    for e in events {
        match e {
            Event::Token { choice, text: t, .. } if *choice == c => text.push_str(t),
            Event::Finished {
                choice,
                reason,
                completion_tokens,
                ..
            } if *choice == c => fin = Some((*reason, *completion_tokens)),
            _ => {}
        }
    }
    (text, fin)
}

fn admitted(events: &[Event]) -> Option<usize> {
    events.iter().find_map(|e| match e {
        Event::Prefilled { cached_tokens, .. } => Some(*cached_tokens),
        _ => None,
    })
}

/// A prompt of `n` tokens that ends in a letter (so `next_letter` continues it).
fn long_prompt(n: usize) -> String {
    (0..n - 1)
        .map(|i| (b'A' + (i % 26) as u8) as char)
        .chain(std::iter::once('k'))
        .collect()
}

#[test]
fn prompt_continues_until_max_tokens() {
    let mut r = Rig::new(cfg(2, 256), next_letter());
    let mut rx = r.submit(req("abc", 3));
    r.settle(10);
    let ev = drain(&mut rx);
    assert_eq!(admitted(&ev), Some(0));
    assert_eq!(answer(&ev, 0), ("def".into(), Some((FinishReason::Length, 3))));
}

#[test]
fn end_of_generation_ends_with_stop_and_counts() {
    let mut r = Rig::new(cfg(2, 256), next_letter());
    let mut rx = r.submit(req("wx", 10));
    r.settle(10);
    assert_eq!(
        answer(&drain(&mut rx), 0),
        ("yz.".into(), Some((FinishReason::Stop, 4)))
    );
}

#[test]
fn stop_string_cuts_the_text() {
    let mut r = Rig::new(cfg(2, 256), next_letter());
    let mut rx = r.submit(GenRequest {
        stop: vec!["fg".into()],
        ..req("abc", 10)
    });
    r.settle(10);
    assert_eq!(answer(&drain(&mut rx), 0), ("de".into(), Some((FinishReason::Stop, 4))));
}

#[test]
fn admission_waits_for_a_free_slot() {
    let mut r = Rig::new(cfg(2, 256), next_letter());
    let mut rxs: Vec<_> = (0..3).map(|_| r.submit(req("abc", 4))).collect();
    r.tick();
    let firsts: Vec<_> = rxs.iter_mut().map(|rx| admitted(&drain(rx))).collect();
    assert_eq!(firsts, [Some(0), Some(0), None]);
    assert_eq!(r.sched.waiting.len(), 1);
    r.settle(20);
    let ev = drain(&mut rxs[2]);
    assert!(admitted(&ev).is_some());
    assert_eq!(answer(&ev, 0).0, "defg");
}

/// Admission order of `reqs` (each admitted when the previous finishes: one slot).
fn admission_order(mut r: Rig, reqs: Vec<GenRequest>) -> Vec<usize> {
    let mut rxs: Vec<_> = reqs.into_iter().map(|q| r.submit(q)).collect();
    let mut order = Vec::new();
    for _ in 0..200 {
        r.tick();
        for (i, rx) in rxs.iter_mut().enumerate() {
            if admitted(&drain(rx)).is_some() {
                order.push(i);
            }
        }
        if r.sched.active.is_empty() && r.sched.waiting.is_empty() {
            break;
        }
    }
    order
}

#[test]
fn interactive_requests_go_before_queued_batch_work() {
    let mut c = cfg(1, 256);
    c.batch_reserve = 0;
    let batch = |p| GenRequest {
        priority: Priority::Batch,
        ..req(p, 2)
    };
    let order = admission_order(
        Rig::new(c, next_letter()),
        vec![req("a", 2), batch("b"), batch("c"), req("d", 2)],
    );
    assert_eq!(order, [0, 3, 1, 2]);
}

#[test]
fn fair_queuing_admits_the_least_served_tenant() {
    let of = |tenant, p| GenRequest { tenant, ..req(p, 2) };
    let order = admission_order(
        Rig::new(cfg(1, 256), next_letter()),
        vec![of(1, "a"), of(1, "b"), of(1, "c"), of(2, "d")],
    );
    // Tenant 2 arrived last but had been served least once tenant 1's first request ran.
    assert_eq!(order, [0, 3, 1, 2]);
}

#[test]
fn batch_work_leaves_the_reserve_free() {
    let mut c = cfg(4, 256);
    c.batch_reserve = 1;
    let mut r = Rig::new(c, next_letter());
    let mut batch: Vec<_> = (0..4)
        .map(|_| {
            r.submit(GenRequest {
                priority: Priority::Batch,
                ..req("abc", 8)
            })
        })
        .collect();
    r.tick();
    let got: Vec<_> = batch.iter_mut().map(|rx| admitted(&drain(rx)).is_some()).collect();
    assert_eq!(got, [true, true, true, false]);
    let mut rx = r.submit(req("abc", 2));
    r.tick();
    assert!(
        admitted(&drain(&mut rx)).is_some(),
        "the reserved slot takes the interactive request"
    );
}

#[test]
fn interactive_requests_time_out_in_the_queue_and_batch_work_does_not() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let _running = r.submit(req("abc", 50));
    r.tick();
    let mut late = r.submit(req("abc", 2));
    let mut batch = r.submit(GenRequest {
        priority: Priority::Batch,
        ..req("abc", 2)
    });
    r.now += r.sched.cfg.queue_timeout + Duration::from_millis(1);
    r.tick();
    assert_eq!(drain(&mut late), [Event::TimedOut]);
    assert!(drain(&mut batch).is_empty(), "batch work waits as long as it must");
    assert_eq!(r.sched.waiting.len(), 1);
    assert_eq!(r.sched.stats.waiting.load(std::sync::atomic::Ordering::Acquire), 1);
}

#[test]
fn a_request_waits_for_kv_blocks_until_they_are_released() {
    // One context's worth of blocks: the first request reserves them all.
    let mut c = cfg(2, 4 * KV_BLOCK);
    c.kv_blocks = 4;
    let mut r = Rig::new(c, next_letter());
    let mut a = r.submit(req("abc", 3 * KV_BLOCK));
    let mut b = r.submit(req("abc", 3));
    r.tick();
    assert!(admitted(&drain(&mut a)).is_some());
    for _ in 0..10 {
        r.tick();
        assert!(
            admitted(&drain(&mut b)).is_none(),
            "admitted without blocks to grow into"
        );
    }
    drop(a); // the client leaves: its blocks come back
    r.tick();
    r.tick();
    assert!(admitted(&drain(&mut b)).is_some());
}

#[test]
fn a_cancelled_request_frees_its_slot_and_blocks() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let a = r.submit(req("abc", 100));
    let mut b = r.submit(req("xyz", 2));
    r.tick();
    r.tick();
    assert_eq!(r.sched.blocks.in_use(), 1);
    drop(a);
    r.settle(10);
    assert_eq!(answer(&drain(&mut b), 0).0, ".");
    assert_eq!(r.sched.blocks.in_use(), 0);
}

#[test]
fn choices_share_the_prompt_and_read_it_right() {
    let mut r = Rig::new(cfg(3, 256), next_letter());
    let prompt = long_prompt(2 * KV_BLOCK + 5);
    let mut rx = r.submit(GenRequest {
        n: 3,
        ..req(&prompt, 4)
    });
    r.settle(20);
    let ev = drain(&mut rx);
    for c in 0..3 {
        assert_eq!(answer(&ev, c), ("lmno".into(), Some((FinishReason::Length, 4))));
    }
    // The prompt ran once, for the first choice.
    let prompt_tokens: usize = r.steps().iter().flatten().filter(|s| s.0).map(|s| s.1.len()).sum();
    assert_eq!(prompt_tokens, prompt.len());
}

#[test]
fn a_repeated_prefix_starts_from_its_cached_blocks() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let first = long_prompt(3 * KV_BLOCK + 5);
    let mut a = r.submit(req(&first, 3));
    r.settle(10);
    assert_eq!(answer(&drain(&mut a), 0).0, "lmn");
    // Two whole cached blocks, then 10 rows of the third (copied into a block of its own).
    let second = format!("{}k", &first[..2 * KV_BLOCK + 10]);
    let before = r.steps().len();
    let mut b = r.submit(req(&second, 3));
    r.settle(10);
    let ev = drain(&mut b);
    assert_eq!(admitted(&ev), Some(2 * KV_BLOCK + 10));
    assert_eq!(answer(&ev, 0).0, "lmn");
    let rerun: usize = r.steps()[before..]
        .iter()
        .flatten()
        .filter(|s| s.0)
        .map(|s| s.1.len())
        .sum();
    assert_eq!(rerun, 1);
}

#[test]
fn chunked_prefill_keeps_decodes_going() {
    let mut c = cfg(2, 256);
    c.step_tokens = 8;
    let mut r = Rig::new(c, period_three());
    let _a = r.submit(req("abc", 40));
    r.tick();
    r.tick();
    let before = r.steps().len();
    let _b = r.submit(req(&long_prompt(40), 2));
    for _ in 0..8 {
        r.tick();
    }
    let during: Vec<StepLog> = r.steps()[before..]
        .iter()
        .filter(|s| s.iter().any(|x| x.0))
        .cloned()
        .collect();
    assert_eq!(
        during.len(),
        6,
        "40 prompt tokens in chunks of 7 beside one decode token"
    );
    for s in during {
        assert!(s.iter().any(|x| !x.0), "a prefill step without the running decode");
    }
}

/// Beside a decoding sequence, a long prompt's chunks shrink as its depth grows (each step costs
/// about a shallow step of `step_tokens`), never below the minimum chunk, and every step carries
/// the decode; alone, the same prompt's chunks shrink the same way.
#[test]
fn deep_prefill_chunks_shrink_beside_decodes() {
    let chunks = |with_decoder: bool| {
        let mut c = cfg(2, 1024);
        c.step_tokens = 64;
        let mut r = Rig::with_depth_unit(c, period_three(), 16);
        let _a = with_decoder.then(|| r.submit(req("abc", 64)));
        r.tick();
        r.tick();
        let before = r.steps().len();
        let _b = r.submit(req(&long_prompt(300), 2));
        r.settle(200);
        r.steps()[before..]
            .iter()
            .filter_map(|s| {
                let prompt: usize = s.iter().filter(|x| x.0).map(|x| x.1.len()).sum();
                assert!(
                    !with_decoder || s.iter().any(|x| !x.0),
                    "a prefill step without the decode"
                );
                (prompt > 0).then_some(prompt)
            })
            .collect::<Vec<_>>()
    };
    let beside = chunks(true);
    assert_eq!(beside.iter().sum::<usize>(), 300);
    assert_eq!(beside[0], 32, "from depth 0: 32 tokens cost the step (unit 16)");
    assert!(
        beside.windows(2).all(|w| w[1] <= w[0]),
        "chunks shrink with depth: {beside:?}"
    );
    let rest = &beside[..beside.len() - 1];
    assert!(
        rest.iter().all(|&c| c >= 8),
        "never below the minimum chunk but the last: {beside:?}"
    );
    // Alone the chunks are sized the same way (an arriving request waits for one step, not for a
    // whole deep chunk): from depth 0 the 64-token step's cost buys 32 tokens.
    let alone = chunks(false);
    assert_eq!(alone.iter().sum::<usize>(), 300);
    assert_eq!(alone[0], 32);
    assert!(
        alone.windows(2).all(|w| w[1] <= w[0]),
        "alone too, chunks shrink: {alone:?}"
    );
}

/// Shorter prompts go first, but the oldest prefilling prompt keeps a minimum chunk of every step:
/// short requests arriving one after another never starve it, and each is prefilled within two
/// steps of arriving.
#[test]
fn short_prompts_go_first_without_starving_the_oldest() {
    let mut c = cfg(3, 512);
    c.step_tokens = 16;
    let mut r = Rig::new(c, period_three());
    // The long prompt is upper-case letters (and a final 'k'); the short ones lower-case.
    let _l = r.submit(req(&long_prompt(200), 2));
    r.tick();
    let is_long = |toks: &[u32]| toks.iter().all(|&t| (b'A' as u32..=b'Z' as u32).contains(&t));
    for k in 0..6u8 {
        let short = format!("short {} abc", (b'a' + k) as char);
        let _s = r.submit(req(&short, 1));
        let before = r.steps().len();
        r.tick();
        r.tick();
        let steps = &r.steps()[before..];
        for s in steps {
            let long_part: usize = s.iter().filter(|x| x.0 && is_long(&x.1)).map(|x| x.1.len()).sum();
            assert!(
                long_part >= 8,
                "short {k}: the long prompt advanced {long_part} tokens: {s:?}"
            );
        }
        let short_part: usize = steps
            .iter()
            .flatten()
            .filter(|x| x.0 && !is_long(&x.1))
            .map(|x| x.1.len())
            .sum();
        assert_eq!(short_part, short.len(), "short {k} prefilled within two steps");
    }
}

#[test]
fn an_interactive_prefill_pauses_batch_decoding() {
    let mut r = Rig::new(cfg(3, 256), next_letter());
    let _batch = r.submit(GenRequest {
        priority: Priority::Batch,
        ..req("abc", 40)
    });
    r.tick();
    r.tick();
    let before = r.steps().len();
    let _i = r.submit(req("xyz", 2));
    r.tick();
    let step = &r.steps()[before];
    assert_eq!(
        step.len(),
        1,
        "the interactive prompt's step carries batch work: {step:?}"
    );
    assert!(step[0].0);
}

#[test]
fn ngram_speculation_gives_the_same_text_in_fewer_steps() {
    let run = |spec: SpecMode| {
        let mut c = cfg(1, 256);
        c.spec.mode = spec;
        c.spec.forced = true;
        let mut r = Rig::new(c, period_three());
        let mut rx = r.submit(req("abcabc", 30));
        r.settle(100);
        let stats = &r.sched.stats;
        let accepted = stats.spec_accepted.load(std::sync::atomic::Ordering::Relaxed);
        (answer(&drain(&mut rx), 0), r.steps().len(), accepted)
    };
    let (plain, plain_steps, _) = run(SpecMode::Off);
    let (spec, spec_steps, accepted) = run(SpecMode::NGram);
    assert_eq!(plain.0, "abc".repeat(10));
    assert_eq!(spec, plain);
    assert!(accepted > 0);
    assert!(
        spec_steps * 2 < plain_steps,
        "{spec_steps} steps with drafts, {plain_steps} without"
    );
}

#[test]
fn a_grammar_masks_what_the_model_prefers() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let schema = serde_json::json!({"type": "integer"});
    let mut rx = r.submit(GenRequest {
        grammar: Some(crate::Grammar::json_schema(schema)),
        ..req("abc", 6)
    });
    r.settle(20);
    let (text, fin) = answer(&drain(&mut rx), 0);
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-'),
        "{text:?}"
    );
    assert!(fin.is_some());
}

#[test]
fn every_block_comes_back_when_the_work_is_done() {
    let mut r = Rig::new(cfg(4, 256), next_letter());
    let prompt = long_prompt(KV_BLOCK + 3);
    let _rxs: Vec<_> = (0..6)
        .map(|i| {
            r.submit(GenRequest {
                n: 1 + i % 2,
                ..req(&prompt, 5 + i)
            })
        })
        .collect();
    r.settle(200);
    assert_eq!(r.sched.blocks.in_use(), 0);
    assert_eq!(r.sched.blocks.available(), r.sched.cfg.pool_blocks());
}

#[test]
fn a_waiting_request_whose_client_left_leaves_the_queue() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let _running = r.submit(req("abc", 50));
    r.tick();
    let gone = r.submit(req("abc", 2));
    let mut next = r.submit(req("xyz", 2));
    drop(gone);
    r.tick();
    assert_eq!(r.sched.waiting.len(), 1);
    assert_eq!(r.sched.stats.waiting.load(std::sync::atomic::Ordering::Acquire), 1);
    r.settle(100);
    assert_eq!(answer(&drain(&mut next), 0).0, ".");
}

#[test]
fn the_end_of_the_context_finishes_with_length() {
    let mut r = Rig::new(cfg(1, KV_BLOCK), period_three());
    let prompt = "abc".repeat(9); // 27 of the 32 positions
    let mut rx = r.submit(req(&prompt, 100));
    r.settle(20);
    let (text, fin) = answer(&drain(&mut rx), 0);
    assert_eq!(fin.map(|f| f.0), Some(FinishReason::Length));
    // The last token sampled needs no position of its own.
    assert_eq!(text.len(), KV_BLOCK - prompt.len() + 1);
}

#[test]
fn a_prediction_is_verified_as_drafts() {
    let run = |prediction: &str| {
        let mut r = Rig::new(cfg(1, 256), next_letter());
        let mut rx = r.submit(GenRequest {
            prediction: tokens(prediction),
            ..req("abc", 12)
        });
        r.settle(50);
        let ev = drain(&mut rx);
        let usage = ev.iter().find_map(|e| match e {
            Event::Finished { prediction, .. } => *prediction,
            _ => None,
        });
        (answer(&ev, 0).0, r.steps().len(), usage)
    };
    let (plain, plain_steps, _) = run("");
    let (text, steps, usage) = run("defghijkxxxx");
    assert_eq!(plain, "defghijklmno");
    assert_eq!(text, plain);
    assert!(
        steps < plain_steps,
        "{steps} steps with the prediction, {plain_steps} without"
    );
    assert_eq!(usage.map(|u| (u.accepted, u.rejected)), Some((8, 4)));
}

#[test]
fn logprobs_name_the_chosen_token_and_the_likeliest() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let mut rx = r.submit(GenRequest {
        top_logprobs: Some(2),
        ..req("abc", 2)
    });
    r.settle(10);
    let lps: Vec<_> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            Event::Token { logprobs, .. } => logprobs,
            _ => None,
        })
        .collect();
    assert_eq!(lps.len(), 2);
    assert_eq!(lps[0].chosen.text, "d");
    assert_eq!(lps[0].top.len(), 2);
    assert_eq!(lps[0].top[0].text, "d");
    assert!(lps[0].chosen.logprob > -1e-3 && lps[0].top[1].logprob < -10.0);
}

#[test]
fn an_embedding_runs_between_steps() {
    let mut r = Rig::new(cfg(1, 256), next_letter());
    let _running = r.submit(req("abc", 5));
    r.tick();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    r.sched.command(Cmd::Embed(tokens("hello"), tx));
    assert_eq!(rx.try_recv().expect("answered at once").expect("embedded"), [5.0]);
    r.settle(10);
}
