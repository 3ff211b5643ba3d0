//! The scheduler's side of the paged KV cache: where a new sequence starts (the cached prefix it
//! shares, the blocks it reserves), how its table grows, which blocks enter the prefix index, and
//! what a finished sequence gives back. `KvBlocks` keeps the accounts; the model's pool holds the numbers.

use tandem_model::{BlockTable, Rope, KV_BLOCK};

use super::{Scheduler, Slot};
use crate::GenRequest;

/// Where an admitted request's first choice starts.
pub(super) struct Start {
    /// Cached full blocks it shares: positions `0..found.len() · KV_BLOCK`.
    found: Vec<u32>,
    /// The block after them whose first rows it reuses, copied into a block of its own.
    copy: Option<(u32, usize)>,
    /// Prompt positions already computed (the response's `cached_tokens`).
    pub reuse: usize,
    /// Blocks the first choice reserves, and each further choice.
    lead: usize,
    pub fork: usize,
    /// Its RoPE (the prefix it shares was rotated the same way).
    rope: Rope,
}

impl Scheduler {
    /// Where `req` would start, if the blocks it can grow into can be reserved now.
    pub(super) fn plan_start(&self, req: &GenRequest) -> Option<Start> {
        let plen = req.prompt.len();
        let rope = self.cfg.rope_for(plen + req.max_tokens);
        let prefix = self.blocks.lookup(&req.prompt, rope);
        // Reuse at most plen - 1 positions: the last prompt token must run to give logits.
        let reuse = prefix.reusable(plen - 1);
        let shared = reuse / KV_BLOCK;
        let found = prefix.found[..shared].to_vec();
        let copy = (reuse > shared * KV_BLOCK).then(|| (prefix.block_at(shared * KV_BLOCK), reuse - shared * KV_BLOCK));
        let (grown, fork) = self.cfg.growth(plen, req.max_tokens);
        let lead = grown - shared;
        // Shared cached blocks stop being available when taken (the copied one is only read).
        let need = lead + (req.n - 1) * fork + self.blocks.unheld(&found);
        (need <= self.blocks.available()).then_some(Start {
            found,
            copy,
            reuse,
            lead,
            fork,
            rope,
        })
    }

    /// Sets `slot` up for the first choice of `prompt`: the shared blocks held, the copied rows
    /// in a block of its own, the rest reserved.
    pub(super) fn take_start(&mut self, slot: usize, prompt: &[u32], start: &Start) {
        for &b in &start.found {
            self.blocks.acquire(b);
        }
        assert!(self.blocks.reserve(start.lead), "checked by plan_start");
        let s = &mut self.slots[slot];
        s.table = BlockTable::new(start.found.clone()).with_rope(start.rope);
        s.reserve = start.lead;
        if let Some((src, rows)) = start.copy {
            let dst = self.blocks.take_reserved();
            s.reserve -= 1;
            // Taking a block evicts at most one cached block: when that was `src` itself, it is
            // now ours with its rows as they were, and there is nothing to copy.
            if dst != src {
                self.model.copy_block(src, dst, rows);
            }
            s.table.blocks.push(dst);
        }
        s.table.len = start.reuse;
        s.cached = prompt[..start.reuse].to_vec();
        s.indexed = start.found.len();
    }

    /// A further choice in `slot` takes the prompt (`plen` positions) that its first choice in
    /// `lead_slot` has just computed: the full blocks shared, the last one's filled rows copied.
    pub(super) fn share_prompt(&mut self, lead_slot: usize, slot: usize, plen: usize) {
        let full = plen / KV_BLOCK;
        let lead = &self.slots[lead_slot];
        let (shared, cached) = (lead.table.blocks[..full].to_vec(), lead.cached[..plen].to_vec());
        let rope = lead.table.rope;
        let tail = (!plen.is_multiple_of(KV_BLOCK)).then(|| lead.table.blocks[full]);
        for &b in &shared {
            self.blocks.acquire(b);
        }
        let s = &mut self.slots[slot];
        s.table = BlockTable::new(shared).with_rope(rope);
        if let Some(src) = tail {
            // The fork's reservation holds this block: it grows to at least the whole prompt.
            let dst = self.blocks.take_reserved();
            s.reserve -= 1;
            self.model.copy_block(src, dst, plen % KV_BLOCK);
            s.table.blocks.push(dst);
        }
        s.table.len = plen;
        s.cached = cached;
        s.indexed = full;
    }

    /// Frees the slots of finished sequences and lets go of their blocks (the indexed ones stay
    /// cached for prefix reuse; the last block is released first, so a prefix is evicted from its
    /// end).
    pub(super) fn reap(&mut self) {
        let (slots, blocks) = (&mut self.slots, &mut self.blocks);
        self.active.retain(|s| {
            if s.done {
                let slot = &mut slots[s.slot];
                for &b in slot.table.blocks.iter().rev() {
                    blocks.release(b);
                }
                blocks.unreserve(slot.reserve);
                *slot = Slot::default();
            }
            !s.done
        });
    }

    /// Gives the slot's table blocks for positions up to `positions`, from its reservation;
    /// false if there are none left.
    pub(super) fn grow(&mut self, slot: usize, positions: usize) -> bool {
        let s = &mut self.slots[slot];
        while s.table.capacity() < positions {
            if s.reserve == 0 {
                // Reservations cover a sequence's prompt and max_tokens within the context, so a
                // sequence never needs more; take a spare block if there is one all the same.
                if !self.blocks.reserve(1) {
                    return false;
                }
                s.reserve += 1;
            }
            s.reserve -= 1;
            s.table.blocks.push(self.blocks.take_reserved());
        }
        true
    }

    /// Offers the slot's newly filled blocks to the prefix index.
    pub(super) fn index_full_blocks(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        while (s.indexed + 1) * KV_BLOCK <= s.table.len {
            let i = s.indexed;
            let parent = i.checked_sub(1).map(|j| s.table.blocks[j]);
            self.blocks.register(
                s.table.blocks[i],
                parent,
                &s.cached[i * KV_BLOCK..(i + 1) * KV_BLOCK],
                s.table.rope,
            );
            s.indexed += 1;
        }
    }
}
