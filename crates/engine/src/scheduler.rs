//! Continuous batching. A scheduler thread owns one model, its paged KV cache and a fixed number of
//! sequence slots; each step it admits waiting requests into free slots, runs the decode tokens of
//! every active sequence and prompt chunks of the prefilling ones in one forward step (one pass over
//! the weights), samples, and sends token events. Requests join and leave between steps.
//!
//! KV memory is a pool of blocks (`kv_blocks`): a request is admitted when a slot is free and the
//! blocks it can grow into can be reserved, and its prompt starts from the longest run of cached
//! full blocks it shares with earlier or running sequences (a system prompt, a conversation so far).
//!
//! The thread is an actor: others talk to it only through `EngineHandle` (a command channel in, an
//! event channel per request out). A request whose event receiver is dropped (client gone) is
//! removed at the next step and its slot freed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use tandem_model::{BlockTable, KvCache, KvPool, Logits, RunState, SeqStep, KV_BLOCK};
use tandem_text::Detokenizer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::kv_blocks::KvBlocks;
use crate::logprobs::{logprobs, Logprobs};
use crate::request::{EngineConfig, EngineStats, Event, FinishReason, GenRequest, Priority};
use crate::stop::{StopMatcher, StopOutcome};
use crate::{EngineError, LoadedModel, ModelDrafter, Prediction, Result, Sampler, SpecMode, SpecState};

mod kv;
mod speculate;

enum Cmd {
    Submit(Box<GenRequest>, UnboundedSender<Event>, std::time::Instant),
    /// Embed a token sequence (see `EngineHandle::embed`).
    Embed(Vec<u32>, tokio::sync::oneshot::Sender<Result<Vec<f32>>>),
}

/// Longest token sequence `embed` reads; the rest of a text is cut.
pub const EMBED_MAX_TOKENS: usize = 512;

/// The server's side of a scheduler: cheap to clone, usable from async code.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
    pub model: Arc<LoadedModel>,
    pub config: EngineConfig,
    pub stats: Arc<EngineStats>,
}

impl EngineHandle {
    /// Starts the scheduler thread for `model` (speculation `off` or `ngram`; a `draft` mode
    /// without a draft model decodes plainly).
    pub fn spawn(model: Arc<LoadedModel>, config: EngineConfig) -> Self {
        Self::spawn_with_draft(model, config, None).expect("no draft model to check")
    }

    /// Starts the scheduler thread for `model`, with `draft` proposing tokens when
    /// `config.spec.mode` is `SpecMode::Draft`. Refuses a draft model whose tokenizer differs.
    pub fn spawn_with_draft(
        model: Arc<LoadedModel>,
        config: EngineConfig,
        draft: Option<Arc<LoadedModel>>,
    ) -> std::result::Result<Self, String> {
        let drafter = match draft {
            Some(d) if config.spec.mode == SpecMode::Draft => Some(ModelDrafter::new(
                d,
                &model,
                config.slots,
                config.ctx,
                config.step_tokens,
            )?),
            _ => None,
        };
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(EngineStats::default());
        let mut sched = Scheduler::new(model.clone(), config.clone(), stats.clone(), drafter);
        std::thread::Builder::new()
            .name(format!("sched-{}", model.model.config.name))
            .spawn(move || sched.run(rx))
            .expect("spawning the scheduler thread");
        Ok(Self {
            tx,
            model,
            config,
            stats,
        })
    }

    /// A text's embedding (mean of the final normed hidden states, `Model::embed`) of the first
    /// `EMBED_MAX_TOKENS` tokens. It runs on the scheduler thread between two steps — a pause like
    /// one prompt's prefill — so it needs no KV slot and shares the machine fairly.
    pub fn embed(&self, mut tokens: Vec<u32>) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<f32>>>> {
        let vocab = self.model.model.config.vocab;
        if tokens.is_empty() {
            return Err(EngineError::BadParam {
                param: "input",
                problem: "is empty".into(),
            });
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::BadParam {
                param: "input",
                problem: format!("token id {t} is outside the vocabulary of {vocab}"),
            });
        }
        tokens.truncate(EMBED_MAX_TOKENS.min(self.config.ctx));
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Embed(tokens, tx)).map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// Queues a request; events arrive on the returned receiver. Dropping the receiver cancels it.
    pub fn submit(&self, req: GenRequest) -> Result<UnboundedReceiver<Event>> {
        let vocab = self.model.model.config.vocab;
        req.params.validate(vocab)?;
        if req.prompt.is_empty() {
            return Err(EngineError::BadParam {
                param: "prompt",
                problem: "is empty".into(),
            });
        }
        if let Some(&t) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::BadParam {
                param: "prompt",
                problem: format!("token id {t} is outside the vocabulary of {vocab}"),
            });
        }
        if req.prompt.len() >= self.config.ctx {
            return Err(EngineError::PromptTooLong {
                prompt: req.prompt.len(),
                ctx: self.config.ctx,
            });
        }
        if let Some(&t) = req.prediction.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::BadParam {
                param: "prediction",
                problem: format!("token id {t} is outside the vocabulary of {vocab}"),
            });
        }
        if req.n == 0 || req.n > self.config.slots {
            return Err(EngineError::BadParam {
                param: "n",
                problem: format!("{} is not in [1, {}]", req.n, self.config.slots),
            });
        }
        let need = self.config.blocks_needed(req.prompt.len(), req.max_tokens, req.n);
        if need > self.config.pool_blocks() {
            return Err(EngineError::BadParam {
                param: "n",
                problem: format!(
                    "{} choices of up to {} tokens need {} KV blocks of {KV_BLOCK} positions; this model has {}",
                    req.n,
                    req.max_tokens,
                    need,
                    self.config.pool_blocks()
                ),
            });
        }
        // Admission control: a bounded queue, so overload is refused early instead of piling up.
        // Batch work is paced by its worker and never refused here.
        let queued = self.stats.waiting.fetch_add(1, Ordering::AcqRel);
        if queued >= self.config.max_queue && req.priority == Priority::Interactive {
            self.stats.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Overloaded { waiting: queued });
        }
        let (etx, erx) = unbounded_channel();
        if self
            .tx
            .send(Cmd::Submit(Box::new(req), etx, std::time::Instant::now()))
            .is_err()
        {
            self.stats.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Stopped);
        }
        Ok(erx)
    }
}

struct Waiting {
    req: Box<GenRequest>,
    tx: UnboundedSender<Event>,
    since: std::time::Instant,
}

/// Where one active sequence keeps its place: its blocks, and what they hold.
#[derive(Default)]
struct Slot {
    table: BlockTable,
    /// The tokens whose K/V are at positions `0..table.len`.
    cached: Vec<u32>,
    /// Leading blocks of `table` offered to the prefix index already (shared ones included).
    indexed: usize,
    /// Blocks still reserved for this sequence's growth.
    reserve: usize,
    busy: bool,
}

enum Phase {
    /// Waiting for choice 0 of its request to finish the shared prompt.
    Fork,
    /// Processing the prompt from `table.len`.
    Prefill,
    /// The next token to feed.
    Decode(u32),
}

struct Seq {
    request: u64,
    choice: usize,
    slot: usize,
    prompt: Arc<Vec<u32>>,
    phase: Phase,
    sampler: Sampler,
    detok: Detokenizer,
    stop: StopMatcher,
    generated: usize,
    max_tokens: usize,
    top_logprobs: Option<usize>,
    priority: Priority,
    tenant: u64,
    /// Masks each step's logits to the request's grammar.
    matcher: Option<llguidance::Matcher>,
    /// A grammar waiting for its trigger token.
    pending: Option<(u32, crate::Grammar)>,
    tx: UnboundedSender<Event>,
    done: bool,
    /// Speculative decoding's acceptance estimate for this sequence.
    spec: SpecState,
    /// The request's Predicted Output, followed along the answer.
    prediction: Option<Prediction>,
    /// The request's early end, with the choice's text so far (kept only when there is one).
    end_check: Option<(crate::EndCheck, String)>,
}

struct Scheduler {
    lm: Arc<LoadedModel>,
    cfg: EngineConfig,
    stats: Arc<EngineStats>,
    slots: Vec<Slot>,
    /// The KV blocks of every sequence, and who holds which.
    pool: KvPool,
    blocks: KvBlocks,
    st: RunState,
    waiting: VecDeque<Waiting>,
    active: Vec<Seq>,
    next_request: u64,
    /// Requests admitted per tenant (fair-queuing virtual time; see `command`).
    served: std::collections::HashMap<u64, u64>,
    /// The cache `embed` runs in, made on first use: [EMBED_MAX_TOKENS] positions.
    embed_kv: Option<KvCache>,
    /// The draft model (speculation mode `draft`).
    drafter: Option<ModelDrafter>,
}

impl Scheduler {
    fn new(lm: Arc<LoadedModel>, cfg: EngineConfig, stats: Arc<EngineStats>, drafter: Option<ModelDrafter>) -> Self {
        let mc = &lm.model.config;
        let slots = (0..cfg.slots).map(|_| Slot::default()).collect();
        let n_blocks = cfg.pool_blocks();
        let pool = KvPool::new(mc, n_blocks, cfg.kv_type);
        stats.kv_blocks_total.store(n_blocks, Ordering::Relaxed);
        // Logit rows: one per sequence, plus the verification rows of speculation (a request's
        // prediction drafts even when the configured speculation is off).
        let spec_rows = match cfg.spec.mode {
            SpecMode::Off => crate::PREDICTION_MAX_DRAFT,
            _ => cfg.spec.max_rows.max(crate::PREDICTION_MAX_DRAFT),
        };
        let st = RunState::new(mc, cfg.step_tokens.max(cfg.slots), cfg.slots, cfg.ctx)
            .with_logit_rows(cfg.slots + spec_rows);
        Self {
            lm,
            cfg,
            stats,
            slots,
            pool,
            blocks: KvBlocks::new(n_blocks),
            st,
            waiting: VecDeque::new(),
            active: Vec::new(),
            next_request: 0,
            served: Default::default(),
            embed_kv: None,
            drafter,
        }
    }

    fn run(&mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            // Block only when there is nothing to do.
            if self.active.is_empty() && self.waiting.is_empty() {
                match rx.recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(_) => return, // every handle dropped: shut down
                }
            }
            while let Ok(cmd) = rx.try_recv() {
                self.command(cmd);
            }
            self.drop_cancelled();
            self.admit();
            if !self.active.is_empty() {
                self.step();
            }
            self.stats.active.store(self.active.len(), Ordering::Relaxed);
            let used = self.slots.iter().filter(|s| s.busy).map(|s| s.table.len).sum();
            self.stats.kv_used.store(used, Ordering::Relaxed);
            self.stats
                .kv_blocks_in_use
                .store(self.blocks.in_use(), Ordering::Relaxed);
            self.stats
                .kv_blocks_cached
                .store(self.blocks.cached(), Ordering::Relaxed);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Embed(tokens, tx) => {
                let mc = &self.lm.model.config;
                let ctx = EMBED_MAX_TOKENS.min(self.cfg.ctx);
                let kv = self.embed_kv.get_or_insert_with(|| KvCache::new(mc, ctx));
                let r = self
                    .lm
                    .model
                    .embed(&mut self.st, kv, &tokens)
                    .map_err(EngineError::from);
                let _ = tx.send(r);
            }
            Cmd::Submit(req, tx, since) => {
                // A tenant with nothing queued or running starts level with the least-served
                // tenant that is waiting: it neither jumps ahead by its idle time nor waits behind
                // a burst that arrived before it.
                let t = req.tenant;
                let backlogged = |x: u64| self.waiting.iter().any(|w| w.req.tenant == x);
                if !backlogged(t) && !self.active.iter().any(|s| s.tenant == t) {
                    let floor = self
                        .waiting
                        .iter()
                        .map(|w| self.served.get(&w.req.tenant).copied().unwrap_or(0))
                        .min();
                    let mine = self.served.entry(t).or_insert(0);
                    if let Some(f) = floor {
                        *mine = (*mine).max(f);
                    }
                }
                // Interactive requests go ahead of queued batch work.
                let at = self
                    .waiting
                    .iter()
                    .position(|w| w.req.priority > req.priority)
                    .unwrap_or(self.waiting.len());
                self.waiting.insert(at, Waiting { req, tx, since });
            }
        }
    }

    /// Drops waiting requests whose client left or whose queue time ran out, and finished or
    /// abandoned sequences.
    fn drop_cancelled(&mut self) {
        let timeout = self.cfg.queue_timeout;
        let before = self.waiting.len();
        self.waiting.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            if w.req.priority == Priority::Interactive && w.since.elapsed() > timeout {
                let _ = w.tx.send(Event::TimedOut);
                return false;
            }
            true
        });
        self.stats
            .waiting
            .fetch_sub(before - self.waiting.len(), Ordering::AcqRel);
        for s in self.active.iter_mut() {
            if s.tx.is_closed() {
                s.done = true;
            }
        }
        self.reap();
    }

    /// The next waiting request to admit: of the front's priority, the one whose tenant has been
    /// served least (FIFO among equals).
    fn next_waiting(&self) -> Option<usize> {
        let p = self.waiting.front()?.req.priority;
        self.waiting
            .iter()
            .enumerate()
            .take_while(|(_, w)| w.req.priority == p)
            .min_by_key(|(i, w)| (self.served.get(&w.req.tenant).copied().unwrap_or(0), *i))
            .map(|(i, _)| i)
    }

    /// Moves waiting requests into free slots while their KV blocks can be reserved. A prompt
    /// starts from the cached blocks it begins with: the full ones are shared; where the reuse
    /// ends inside a block (a partial match, or the block of the prompt's last token, which must
    /// run to give logits) the matching rows are copied into a block of the sequence's own.
    fn admit(&mut self) {
        while let Some(at) = self.next_waiting() {
            let w = &self.waiting[at];
            let free: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].busy).collect();
            let keep = match w.req.priority {
                Priority::Interactive => 0,
                Priority::Batch => self.cfg.batch_reserve,
            };
            if free.len() < w.req.n + keep {
                return;
            }
            let Some(start) = self.plan_start(&w.req) else {
                return; // not enough KV blocks yet
            };
            let Waiting { req, tx, .. } = self.waiting.remove(at).expect("index from next_waiting");
            *self.served.entry(req.tenant).or_insert(0) += 1;
            self.stats.waiting.fetch_sub(1, Ordering::AcqRel);
            let prompt = Arc::new(req.prompt);
            let id = self.next_request;
            self.next_request += 1;
            // One matcher per choice, compiled now (the server compiled it once already to
            // refuse what llguidance cannot express, so this does not fail in practice).
            let matchers: std::result::Result<Vec<_>, String> = match &req.grammar {
                None => Ok((0..req.n).map(|_| None).collect()),
                Some(_) if req.grammar_trigger.is_some() => Ok((0..req.n).map(|_| None).collect()),
                Some(g) => self
                    .lm
                    .grammars()
                    .and_then(|gs| (0..req.n).map(|_| gs.matcher(g).map(Some)).collect()),
            };
            let mut matchers = match matchers {
                Ok(m) => m.into_iter(),
                Err(e) => {
                    let _ = tx.send(Event::Failed(format!("grammar: {e}")));
                    continue;
                }
            };
            self.take_start(free[0], &prompt, &start);
            for (choice, &slot) in free.iter().take(req.n).enumerate() {
                let s = &mut self.slots[slot];
                s.busy = true;
                if choice > 0 {
                    // Forks share the lead's prompt once it is prefilled (`start_forks`).
                    assert!(self.blocks.reserve(start.fork), "checked by plan_start");
                    s.reserve = start.fork;
                }
                // Choices of a seeded request get distinct, reproducible seeds.
                let mut params = req.params.clone();
                params.seed = params.seed.map(|x| x.wrapping_add(choice as u64));
                self.active.push(Seq {
                    request: id,
                    choice,
                    slot,
                    prompt: prompt.clone(),
                    phase: if choice == 0 { Phase::Prefill } else { Phase::Fork },
                    sampler: Sampler::new(params, &prompt),
                    detok: Detokenizer::new(),
                    stop: StopMatcher::new(req.stop.clone()),
                    generated: 0,
                    max_tokens: req.max_tokens,
                    top_logprobs: req.top_logprobs,
                    priority: req.priority,
                    tenant: req.tenant,
                    matcher: matchers.next().flatten(),
                    pending: req.grammar_trigger.zip(req.grammar.clone()),
                    tx: tx.clone(),
                    done: false,
                    spec: SpecState::for_mode(self.cfg.spec.mode),
                    prediction: (!req.prediction.is_empty()).then(|| Prediction::new(req.prediction.clone())),
                    end_check: req.end_check.clone().map(|e| (e, String::new())),
                });
            }
            self.stats
                .prompt_tokens
                .fetch_add(prompt.len() as u64, Ordering::Relaxed);
            self.stats
                .cached_tokens
                .fetch_add(start.reuse as u64, Ordering::Relaxed);
            let _ = tx.send(Event::Prefilled {
                prompt_tokens: prompt.len(),
                cached_tokens: start.reuse,
            });
        }
    }

    fn step(&mut self) {
        // Plan: every decoding sequence feeds one token; prefilling ones share what is left of the
        // token budget, oldest first (chunked prefill keeps long prompts from stalling decodes).
        // A step that prefills an interactive prompt carries no batch work at all (its time is
        // that request's time to first token); batch prompts run in small chunks otherwise.
        let prefilling = |s: &Seq, p: Priority| matches!(s.phase, Phase::Prefill) && s.priority == p;
        let interactive_prefill = self.active.iter().any(|s| prefilling(s, Priority::Interactive));
        let mut budget = self.st.max_batch;
        let mut plan: Vec<(usize, usize, usize)> = Vec::new(); // (active index, from, to) in its token stream
        let decoders: Vec<usize> = (0..self.active.len())
            .filter(|&i| {
                let s = &self.active[i];
                matches!(s.phase, Phase::Decode(_)) && !(interactive_prefill && s.priority == Priority::Batch)
            })
            .collect();
        // What each decoding sequence feeds: its next token, then any draft tokens to verify.
        let mut feeds: Vec<Vec<u32>> = Vec::with_capacity(decoders.len());
        for (&i, draft) in decoders.iter().zip(self.drafts(&decoders)) {
            let Phase::Decode(t) = self.active[i].phase else {
                unreachable!("decoders decode")
            };
            let mut f = Vec::with_capacity(1 + draft.len());
            f.push(t);
            f.extend(draft);
            plan.push((i, 0, f.len()));
            budget -= f.len();
            feeds.push(f);
        }
        let mut batch_budget = if interactive_prefill {
            0
        } else {
            self.cfg.batch_prefill_chunk.max(1)
        };
        for p in [Priority::Interactive, Priority::Batch] {
            for (i, s) in self.active.iter().enumerate() {
                if !prefilling(s, p) {
                    continue;
                }
                let cap = if p == Priority::Batch {
                    budget.min(batch_budget)
                } else {
                    budget
                };
                if cap == 0 {
                    break;
                }
                let from = self.slots[s.slot].table.len;
                let to = (from + cap).min(s.prompt.len());
                plan.push((i, from, to));
                budget -= to - from;
                if p == Priority::Batch {
                    batch_budget -= to - from;
                }
            }
        }
        if plan.is_empty() {
            return;
        }
        // Blocks for this step's positions, from each sequence's reservation.
        let mut short = false;
        for (k, &(i, _, to)) in plan.iter().enumerate() {
            let slot = self.active[i].slot;
            let end = match self.active[i].phase {
                Phase::Decode(_) => self.slots[slot].table.len + feeds[k].len(),
                _ => to,
            };
            if !self.grow(slot, end) {
                let _ = self.active[i]
                    .tx
                    .send(Event::Failed("the KV cache has no block left for this sequence".into()));
                self.active[i].done = true;
                short = true;
            }
        }
        if short {
            self.reap();
            return;
        }

        {
            // Disjoint mutable borrows of the planned slots' tables.
            let mut kvs: Vec<Option<&mut BlockTable>> = self.slots.iter_mut().map(|s| Some(&mut s.table)).collect();
            let mut steps: Vec<SeqStep> = Vec::with_capacity(plan.len());
            for (k, &(i, from, to)) in plan.iter().enumerate() {
                let s = &self.active[i];
                let kv = kvs[s.slot].take().expect("one sequence per slot");
                let (tokens, logits, prompt) = match s.phase {
                    Phase::Decode(_) if feeds[k].len() > 1 => (&feeds[k][..], Logits::Every, false),
                    Phase::Decode(_) => (&feeds[k][..], Logits::Last, false),
                    _ => (&s.prompt[from..to], Logits::last_if(to == s.prompt.len()), true),
                };
                steps.push(SeqStep {
                    kv,
                    tokens,
                    logits,
                    prompt,
                });
            }
            if let Err(e) = self.lm.model.step(&mut self.st, &mut self.pool, &mut steps) {
                drop(steps);
                for &(i, _, _) in &plan {
                    let _ = self.active[i]
                        .tx
                        .send(Event::Failed(format!("forward step failed: {e}")));
                    self.active[i].done = true;
                }
                self.reap();
                return;
            }
        }
        let n_seqs = plan.len();
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats.step_seqs.fetch_add(n_seqs as u64, Ordering::Relaxed);
        self.stats.max_step_seqs.fetch_max(n_seqs, Ordering::Relaxed);

        for (k, &(i, from, to)) in plan.iter().enumerate() {
            let slot = self.active[i].slot;
            if let Phase::Decode(_) = self.active[i].phase {
                self.verify(k, i, &feeds[k]);
                continue;
            }
            let p = self.active[i].prompt.clone();
            self.slots[slot].cached.extend_from_slice(&p[from..to]);
            let Some(logits) = self.st.logits_of_mut(k) else {
                continue;
            };
            let raw =
                (self.active[i].choice == 0 && matches!(self.active[i].phase, Phase::Prefill)).then(|| logits.to_vec());
            if let Some(raw) = raw {
                self.start_forks(i, &raw);
            }
            let logits = self.st.logits_of_mut(k).expect("checked above");
            let tok = sample(&mut self.active[i], logits, &self.lm);
            self.accept(i, tok);
        }
        for &(i, _, _) in &plan {
            self.index_full_blocks(self.active[i].slot);
        }
        self.reap();
    }

    /// Choice 0 of a request finished the prompt: its other choices share the prompt's full blocks
    /// (and copy the filled part of the last one) and sample their first token from the same
    /// logits.
    fn start_forks(&mut self, lead: usize, raw: &[f32]) {
        let (request, lead_slot, plen) = (
            self.active[lead].request,
            self.active[lead].slot,
            self.active[lead].prompt.len(),
        );
        let forks: Vec<usize> = (0..self.active.len())
            .filter(|&j| self.active[j].request == request && matches!(self.active[j].phase, Phase::Fork))
            .collect();
        for j in forks {
            let slot = self.active[j].slot;
            self.share_prompt(lead_slot, slot, plen);
            let mut logits = raw.to_vec();
            let tok = sample(&mut self.active[j], &mut logits, &self.lm);
            self.accept(j, tok);
        }
    }

    /// Takes a sampled token: emits its text, checks the end conditions, or queues it for decoding.
    /// Returns the token taken (`EndCheck::go_on` may take another in place of an end).
    fn accept(&mut self, i: usize, sampled: (u32, Option<Logprobs>)) -> u32 {
        let lm = &self.lm;
        let s = &mut self.active[i];
        let (mut tok, mut lp) = sampled;
        if let Some((check, text)) = s.end_check.as_ref().filter(|_| lm.tokenizer.is_eog(tok)) {
            if let Some((instead, _)) = check.go_on.as_ref().filter(|(_, judge)| judge(text)) {
                tok = *instead;
                lp = None; // not what was sampled
            }
        }
        let kv_len = self.slots[s.slot].table.len;
        let finish = |s: &mut Seq, reason: FinishReason| {
            let rest = format!("{}{}", s.stop.finish(), s.detok.finish());
            if !rest.is_empty() {
                let _ = s.tx.send(Event::Token {
                    choice: s.choice,
                    text: rest,
                    logprobs: None,
                });
            }
            let _ = s.tx.send(Event::Finished {
                choice: s.choice,
                reason,
                completion_tokens: s.generated,
                prediction: s.prediction.as_ref().map(Prediction::usage),
            });
            s.done = true;
        };
        if lm.tokenizer.is_eog(tok) {
            // The end-of-generation token counts as generated (OpenAI counts it too) but has no text.
            s.generated += 1;
            self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
            finish(s, FinishReason::Stop);
            return tok;
        }
        s.generated += 1;
        self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
        s.sampler.accept(tok);
        if let Some(p) = s.prediction.as_mut() {
            p.observe(tok);
        }
        // The grammar is complete after this token: nothing may follow, so the choice ends here.
        let grammar_done = s
            .matcher
            .as_mut()
            .is_some_and(|m| m.consume_token(tok).is_err() || m.is_stopped());
        if s.pending.as_ref().is_some_and(|(t, _)| *t == tok) {
            let (_, g) = s.pending.take().expect("checked");
            match lm.grammars().and_then(|gs| gs.matcher(&g)) {
                Ok(m) => s.matcher = Some(m),
                Err(e) => {
                    let _ = s.tx.send(Event::Failed(format!("grammar: {e}")));
                    s.done = true;
                    return tok;
                }
            }
        }
        let piece = s.detok.push(&lm.tokenizer, tok);
        let ended_early = match s.end_check.as_mut() {
            Some((check, text)) => {
                text.push_str(&piece);
                tok == check.token && (check.judge)(text)
            }
            None => false,
        };
        match s.stop.push(&piece) {
            StopOutcome::Emit(text) => {
                let _ = s.tx.send(Event::Token {
                    choice: s.choice,
                    text,
                    logprobs: lp,
                });
            }
            StopOutcome::Stopped(text) => {
                let _ = s.tx.send(Event::Token {
                    choice: s.choice,
                    text,
                    logprobs: lp,
                });
                s.stop = StopMatcher::default();
                s.detok = Detokenizer::new();
                let _ = s.tx.send(Event::Finished {
                    choice: s.choice,
                    reason: FinishReason::Stop,
                    completion_tokens: s.generated,
                    prediction: s.prediction.as_ref().map(Prediction::usage),
                });
                s.done = true;
                return tok;
            }
        }
        if grammar_done || ended_early {
            finish(s, FinishReason::Stop);
            return tok;
        }
        if s.generated >= s.max_tokens || kv_len >= self.cfg.ctx {
            finish(s, FinishReason::Length);
            return tok;
        }
        s.phase = Phase::Decode(tok);
        tok
    }
}

/// Samples the next token of `s` from `logits` (modified in place by bias and penalties); with
/// logprobs requested they are computed from the raw logits first.
fn sample(s: &mut Seq, logits: &mut [f32], lm: &LoadedModel) -> (u32, Option<Logprobs>) {
    let raw = s.top_logprobs.map(|_| logits.to_vec());
    if let Some(m) = s.matcher.as_mut() {
        // The mask comes first: bias and penalties then act only among the allowed tokens.
        if let Ok(g) = lm.grammars() {
            if !g.mask(m, logits) {
                s.matcher = None;
            }
        }
    }
    match s.top_logprobs {
        None => (s.sampler.sample(logits), None),
        Some(k) => {
            let raw = raw.expect("copied when logprobs are on");
            let tok = s.sampler.sample(logits);
            (tok, Some(logprobs(&lm.tokenizer, &raw, tok, k)))
        }
    }
}
