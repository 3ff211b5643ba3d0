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

use tandem_model::{BlockTable, Logits, SeqStep, TokenPath, KV_BLOCK};
use tandem_text::Detokenizer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::kv_blocks::KvBlocks;
use crate::request::{EngineConfig, EngineStats, Event, GenRequest, Priority};
use crate::stop::StopMatcher;
use crate::{EngineError, LoadedModel, ModelDrafter, Prediction, Result, Sampler, SpecMode, SpecState};
use forward::{Forward, ModelForward, TextSide};
use output::sample;
use plan::{Plan, Work};

mod forward;
mod kv;
mod output;
mod plan;
mod speculate;
#[cfg(test)]
mod tests;

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
        let forward = Box::new(ModelForward::new(model.clone(), &config));
        let mut sched = Scheduler::new(model.clone(), forward, config.clone(), stats.clone(), drafter);
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
    /// The vocabulary: detokenising, end of generation, grammars.
    text: Arc<dyn TextSide>,
    /// The model's steps and the numbers in its KV pool.
    model: Box<dyn Forward>,
    cfg: EngineConfig,
    stats: Arc<EngineStats>,
    slots: Vec<Slot>,
    /// Who holds which KV block of the pool.
    blocks: KvBlocks,
    waiting: VecDeque<Waiting>,
    active: Vec<Seq>,
    next_request: u64,
    /// Requests admitted per tenant (fair-queuing virtual time; see `command`).
    served: std::collections::HashMap<u64, u64>,
    /// The draft model (speculation mode `draft`).
    drafter: Option<ModelDrafter>,
}

impl Scheduler {
    fn new(
        text: Arc<dyn TextSide>,
        model: Box<dyn Forward>,
        cfg: EngineConfig,
        stats: Arc<EngineStats>,
        drafter: Option<ModelDrafter>,
    ) -> Self {
        let slots = (0..cfg.slots).map(|_| Slot::default()).collect();
        let n_blocks = cfg.pool_blocks();
        stats.kv_blocks_total.store(n_blocks, Ordering::Relaxed);
        Self {
            text,
            model,
            cfg,
            stats,
            slots,
            blocks: KvBlocks::new(n_blocks),
            waiting: VecDeque::new(),
            active: Vec::new(),
            next_request: 0,
            served: Default::default(),
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
            self.tick(std::time::Instant::now());
        }
    }

    /// One round at time `now`: the queue cleaned, requests admitted, one step run, the gauges
    /// updated.
    fn tick(&mut self, now: std::time::Instant) {
        self.drop_cancelled(now);
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

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Embed(tokens, tx) => {
                let _ = tx.send(self.model.embed(&tokens));
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
    fn drop_cancelled(&mut self, now: std::time::Instant) {
        let timeout = self.cfg.queue_timeout;
        let before = self.waiting.len();
        self.waiting.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            if w.req.priority == Priority::Interactive && now.saturating_duration_since(w.since) > timeout {
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
            let mut matchers = match self.matchers(&req) {
                Ok(m) => m.into_iter(),
                Err(e) => {
                    let _ = tx.send(Event::Failed(format!("grammar: {e}")));
                    continue;
                }
            };
            let prompt = Arc::new(req.prompt);
            let id = self.next_request;
            self.next_request += 1;
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

    /// One grammar matcher per choice of `req`, compiled now (the server compiled the grammar once
    /// already to refuse what llguidance cannot express, so this does not fail in practice); none
    /// where the grammar waits for its trigger.
    fn matchers(&self, req: &GenRequest) -> std::result::Result<Vec<Option<llguidance::Matcher>>, String> {
        match &req.grammar {
            Some(g) if req.grammar_trigger.is_none() => {
                let gs = self.text.grammars()?;
                (0..req.n).map(|_| gs.matcher(g).map(Some)).collect()
            }
            _ => Ok((0..req.n).map(|_| None).collect()),
        }
    }

    /// One forward step: plan it, give each planned sequence the blocks its positions need, run
    /// the model, and take what it computed.
    fn step(&mut self) {
        let plan = self.schedule();
        if plan.is_empty() {
            return;
        }
        if !self.grow_for(&plan) {
            self.reap();
            return;
        }
        if let Err(e) = self.execute(&plan) {
            for w in &plan.items {
                let _ = self.active[w.seq]
                    .tx
                    .send(Event::Failed(format!("forward step failed: {e}")));
                self.active[w.seq].done = true;
            }
            self.reap();
            return;
        }
        let n_seqs = plan.items.len();
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats.step_seqs.fetch_add(n_seqs as u64, Ordering::Relaxed);
        self.stats.max_step_seqs.fetch_max(n_seqs, Ordering::Relaxed);
        self.update(&plan);
        self.reap();
    }

    /// Blocks for the plan's positions, from each sequence's reservation; a sequence that cannot
    /// get them fails (false: the step does not run).
    fn grow_for(&mut self, plan: &Plan) -> bool {
        let mut ok = true;
        for w in &plan.items {
            let slot = self.active[w.seq].slot;
            let end = match &w.work {
                Work::Decode { feed } => self.slots[slot].table.len + feed.len(),
                Work::Prefill { to, .. } => *to,
            };
            if !self.grow(slot, end) {
                let _ = self.active[w.seq]
                    .tx
                    .send(Event::Failed("the KV cache has no block left for this sequence".into()));
                self.active[w.seq].done = true;
                ok = false;
            }
        }
        ok
    }

    /// Runs the model on the plan: the k-th work item is the step's k-th sequence.
    fn execute(&mut self, plan: &Plan) -> Result<()> {
        // Disjoint mutable borrows of the planned slots' tables.
        let mut kvs: Vec<Option<&mut BlockTable>> = self.slots.iter_mut().map(|s| Some(&mut s.table)).collect();
        let mut steps: Vec<SeqStep> = Vec::with_capacity(plan.items.len());
        for w in &plan.items {
            let s = &self.active[w.seq];
            let kv = kvs[s.slot].take().expect("one sequence per slot");
            let (tokens, logits, path) = match &w.work {
                Work::Decode { feed } if feed.len() > 1 => (&feed[..], Logits::Every, TokenPath::Generated),
                Work::Decode { feed } => (&feed[..], Logits::Last, TokenPath::Generated),
                Work::Prefill { from, to } => (
                    &s.prompt[*from..*to],
                    Logits::last_if(*to == s.prompt.len()),
                    TokenPath::Prompt,
                ),
            };
            steps.push(SeqStep {
                kv,
                tokens,
                logits,
                path,
            });
        }
        self.model.step(&mut steps)
    }

    /// Takes the step's outputs: decode rows are sampled (and drafts verified), prompt chunks
    /// extend what the slot holds, and a finished prompt samples its first token (and starts its
    /// forks); newly filled blocks enter the prefix index.
    fn update(&mut self, plan: &Plan) {
        for (k, w) in plan.items.iter().enumerate() {
            let i = w.seq;
            let slot = self.active[i].slot;
            let (from, to) = match &w.work {
                Work::Decode { feed } => {
                    self.verify(k, i, feed);
                    continue;
                }
                Work::Prefill { from, to } => (*from, *to),
            };
            let p = self.active[i].prompt.clone();
            self.slots[slot].cached.extend_from_slice(&p[from..to]);
            let Some(logits) = self.model.logit_row_mut(k, 0) else {
                continue;
            };
            if self.active[i].choice == 0 {
                let raw = logits.to_vec();
                self.start_forks(i, &raw);
            }
            let logits = self.model.logit_row_mut(k, 0).expect("checked above");
            let tok = sample(&mut self.active[i], logits, &*self.text);
            self.accept(i, tok);
        }
        for w in &plan.items {
            self.index_full_blocks(self.active[w.seq].slot);
        }
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
            let tok = sample(&mut self.active[j], &mut logits, &*self.text);
            self.accept(j, tok);
        }
    }
}
