//! Who holds which KV block, and the prefix cache over them (`tandem_model::KvPool` holds the
//! numbers themselves).
//!
//! A block is free, held (by one or more sequences: a reference count), or cached (held by none,
//! but its positions are a known token prefix, so a later prompt that starts the same way takes
//! it instead of recomputing it). A full block whose tokens are known is entered in the index
//! under the hash of its whole prefix: the chain `h_i = H(h_{i-1}, tokens of block i)`. A lookup
//! walks a prompt's full blocks from the start and checks each candidate exactly (its tokens, and
//! that its parent is the block matched before it, generation included), so a hash collision can
//! never hand out the wrong keys and values. After the full blocks, the prompt's next tokens can
//! still match the start of an indexed block that follows the last match (a prompt asked again,
//! or one that ends inside a block of an earlier conversation): that block's matching rows are
//! copied, so reuse is exact to the token there. Cached blocks are evicted least recently
//! released first when a free block is needed; evicting one bumps its generation, which orphans
//! its descendants in the index (they no longer match and age out in turn).
//!
//! Admission reserves the blocks a sequence can grow into (its prompt and `max_tokens`, within
//! the context), so a running sequence never finds the cache full: when the blocks are not there,
//! a request waits in the queue instead.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

#[cfg(test)]
use tandem_model::blocks_for;
use tandem_model::{Rope, KV_BLOCK};

/// A cached block's identity: what its positions hold.
struct Content {
    hash: u64,
    /// How its keys were rotated (a first block's own; its descendants' through the chain).
    rope: Rope,
    /// The block before it in the prefix (block, generation); `None` for a first block.
    parent: Option<(u32, u32)>,
    tokens: Box<[u32]>,
}

#[derive(Default)]
struct Meta {
    refs: u32,
    /// Bumped when the block is evicted: references to its old content stop matching.
    generation: u32,
    content: Option<Content>,
    /// Key in `lru` while the block is cached.
    released: u64,
}

/// The allocation state of a pool of `n` blocks.
pub struct KvBlocks {
    meta: Vec<Meta>,
    /// Blocks with nothing worth keeping, most recently freed last (their pages are warm).
    free: Vec<u32>,
    /// Cached blocks by release time, oldest first.
    lru: BTreeMap<u64, u32>,
    index: HashMap<u64, u32>,
    /// Indexed blocks by what they follow (`None`: first blocks), for partial matches.
    children: HashMap<Option<(u32, u32)>, Vec<u32>>,
    clock: u64,
    /// Blocks promised to admitted sequences and not yet taken.
    reserved: usize,
}

/// What a prompt can start from (`KvBlocks::lookup`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prefix {
    /// Full blocks, in order: positions `0..found.len() · KV_BLOCK`.
    pub found: Vec<u32>,
    /// The block after them whose first rows are the prompt's next tokens, and how many.
    pub partial: Option<(u32, usize)>,
}

impl Prefix {
    /// Positions that can be reused, at most `limit`.
    pub fn reusable(&self, limit: usize) -> usize {
        (self.found.len() * KV_BLOCK + self.partial.map_or(0, |(_, rows)| rows)).min(limit)
    }

    /// The block that holds position `pos` (< `reusable`) of the prefix.
    pub fn block_at(&self, pos: usize) -> u32 {
        match self.found.get(pos / KV_BLOCK) {
            Some(&b) => b,
            None => self.partial.expect("pos is within the prefix").0,
        }
    }
}

/// The hash of a prefix whose last block holds `tokens` and whose earlier blocks hash to `parent`.
fn chain(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

/// The hash the chain starts from, one per RoPE: the same tokens rotated another way are other
/// keys.
fn root(rope: Rope) -> u64 {
    match rope {
        Rope::Plain => 0x7a6e_6474_6b76_0001,
        Rope::Yarn => 0x7a6e_6474_6b76_0002,
    }
}

impl KvBlocks {
    pub fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize);
        Self {
            meta: (0..n).map(|_| Meta::default()).collect(),
            // Popped from the end: block 0 first.
            free: (0..n as u32).rev().collect(),
            lru: BTreeMap::new(),
            index: HashMap::new(),
            children: HashMap::new(),
            clock: 0,
            reserved: 0,
        }
    }

    /// Blocks a new reservation can still have (free or cached, less those already promised).
    pub fn available(&self) -> usize {
        self.free.len() + self.lru.len() - self.reserved
    }

    /// Blocks that some sequence holds.
    pub fn in_use(&self) -> usize {
        self.meta.len() - self.free.len() - self.lru.len()
    }

    /// Blocks that no sequence holds but whose prefix is kept for reuse.
    pub fn cached(&self) -> usize {
        self.lru.len()
    }

    /// What `tokens` can start from: the longest run of indexed full blocks it begins with
    /// (their ids, in order), then the indexed block after them whose first rows match the
    /// tokens that follow longest (block, rows matched; rows < KV_BLOCK when it is a full match
    /// that `found` could not take). Takes nothing: `acquire` what is used.
    pub fn lookup(&self, tokens: &[u32], rope: Rope) -> Prefix {
        let mut found = Vec::new();
        let (mut hash, mut parent) = (root(rope), None);
        for chunk in tokens.chunks_exact(KV_BLOCK) {
            hash = chain(hash, chunk);
            let Some(&b) = self.index.get(&hash) else {
                break;
            };
            let m = &self.meta[b as usize];
            match &m.content {
                Some(c) if c.parent == parent && c.rope == rope && *c.tokens == *chunk => {}
                _ => break,
            }
            found.push(b);
            parent = Some((b, m.generation));
        }
        let rest = &tokens[found.len() * KV_BLOCK..];
        let partial = self
            .children
            .get(&parent)
            .into_iter()
            .flatten()
            .filter_map(|&b| {
                let c = self.meta[b as usize].content.as_ref().expect("children are indexed");
                (c.rope == rope).then(|| (b, c.tokens.iter().zip(rest).take_while(|(x, y)| x == y).count()))
            })
            .filter(|&(_, rows)| rows > 0)
            .max_by_key(|&(b, rows)| (rows, std::cmp::Reverse(b)));
        Prefix { found, partial }
    }

    /// How many of `blocks` no sequence holds (acquiring them takes them out of `available`).
    pub fn unheld(&self, blocks: &[u32]) -> usize {
        blocks.iter().filter(|&&b| self.meta[b as usize].refs == 0).count()
    }

    /// One more holder of `b` (a cached block stops being evictable).
    pub fn acquire(&mut self, b: u32) {
        let m = &mut self.meta[b as usize];
        if m.refs == 0 {
            let at = m.released;
            assert!(
                self.lru.remove(&at) == Some(b),
                "acquiring block {b}: neither held nor cached"
            );
        }
        m.refs += 1;
    }

    /// One holder fewer: at none, the block is cached if its content is indexed, else free.
    pub fn release(&mut self, b: u32) {
        let m = &mut self.meta[b as usize];
        assert!(m.refs > 0, "releasing block {b}, which nobody holds");
        m.refs -= 1;
        if m.refs > 0 {
            return;
        }
        if m.content.is_some() {
            self.clock += 1;
            m.released = self.clock;
            self.lru.insert(self.clock, b);
        } else {
            self.free.push(b);
        }
    }

    /// Promises `n` blocks to a sequence; false (and nothing promised) if they are not there.
    pub fn reserve(&mut self, n: usize) -> bool {
        if n > self.available() {
            return false;
        }
        self.reserved += n;
        true
    }

    /// Gives back what is left of a reservation.
    pub fn unreserve(&mut self, n: usize) {
        assert!(n <= self.reserved);
        self.reserved -= n;
    }

    /// Takes one block of a reservation, held once: a free one, else the least recently released
    /// cached one (forgotten).
    pub fn take_reserved(&mut self) -> u32 {
        assert!(self.reserved > 0, "taking a block nobody reserved");
        self.reserved -= 1;
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self
                    .lru
                    .pop_first()
                    .expect("reservations never exceed the free and cached blocks");
                self.forget(b);
                b
            }
        };
        self.meta[b as usize].refs = 1;
        b
    }

    /// Takes the cached content of `b` out of the index; its descendants can no longer be reached.
    fn forget(&mut self, b: u32) {
        let m = &mut self.meta[b as usize];
        let c = m.content.take().expect("forgetting a block with no content");
        if self.index.get(&c.hash) == Some(&b) {
            self.index.remove(&c.hash);
        }
        if let Some(siblings) = self.children.get_mut(&c.parent) {
            siblings.retain(|&x| x != b);
            if siblings.is_empty() {
                self.children.remove(&c.parent);
            }
        }
        self.children.remove(&Some((b, m.generation)));
        m.generation = m.generation.wrapping_add(1);
    }

    /// Enters the full block `b`, which follows `parent` (`None`: first block) and holds
    /// `tokens`, in the index. Where another block stands for the same prefix already, a held
    /// one wins (two sequences prefilled the same prompt at once: the later one's block stays
    /// out), and an unheld one gives way and is freed, so the prefix lives on in the block that a
    /// running sequence extends (a prompt asked again would otherwise leave its whole answer
    /// unindexed behind its first block's cached twin).
    pub fn register(&mut self, b: u32, parent: Option<u32>, tokens: &[u32], rope: Rope) {
        assert_eq!(tokens.len(), KV_BLOCK);
        let parent = match parent {
            None => None,
            Some(p) => match &self.meta[p as usize].content {
                // A parent that is not indexed itself: its children could never be found.
                None => return,
                Some(c) => Some((p, c.hash, self.meta[p as usize].generation)),
            },
        };
        if self.meta[b as usize].content.is_some() {
            return;
        }
        let hash = chain(parent.map_or(root(rope), |(_, h, _)| h), tokens);
        if let Some(&old) = self.index.get(&hash) {
            let m = &self.meta[old as usize];
            if m.refs > 0 {
                return;
            }
            let at = m.released;
            assert!(self.lru.remove(&at) == Some(old), "an unheld indexed block is cached");
            self.forget(old);
            self.free.push(old);
        }
        self.index.insert(hash, b);
        self.children.entry(parent.map(|(p, _, g)| (p, g))).or_default().push(b);
        self.meta[b as usize].content = Some(Content {
            hash,
            rope,
            parent: parent.map(|(p, _, g)| (p, g)),
            tokens: tokens.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(seed: u32, blocks: usize) -> Vec<u32> {
        (0..(blocks * KV_BLOCK) as u32).map(|i| seed * 1000 + i).collect()
    }

    /// A sequence of `tokens`: its blocks taken and registered, as the scheduler does.
    fn fill(kb: &mut KvBlocks, tokens: &[u32]) -> Vec<u32> {
        let n = tokens.len() / KV_BLOCK;
        assert!(kb.reserve(n));
        let mut got: Vec<u32> = Vec::new();
        for (i, chunk) in tokens.chunks_exact(KV_BLOCK).enumerate() {
            let b = kb.take_reserved();
            kb.register(b, i.checked_sub(1).map(|j| got[j]), chunk, Rope::Plain);
            got.push(b);
        }
        got
    }

    /// A prefix rotated one way is never handed to a prompt rotated the other: not its full
    /// blocks, not a partial match of its first block.
    #[test]
    fn a_prefix_is_found_only_under_its_own_rope() {
        let mut kb = KvBlocks::new(8);
        let a = toks(1, 2);
        let held = fill(&mut kb, &a);
        assert_eq!(kb.lookup(&a, Rope::Plain).found, held);
        assert_eq!(kb.lookup(&a, Rope::Yarn), Prefix::default());
        assert_eq!(kb.lookup(&a[..5], Rope::Yarn), Prefix::default());
        // The same tokens registered under YaRN are a prefix of their own.
        assert!(kb.reserve(2));
        let (b0, b1) = (kb.take_reserved(), kb.take_reserved());
        kb.register(b0, None, &a[..KV_BLOCK], Rope::Yarn);
        kb.register(b1, Some(b0), &a[KV_BLOCK..], Rope::Yarn);
        assert_eq!(kb.lookup(&a, Rope::Yarn).found, vec![b0, b1]);
        assert_eq!(kb.lookup(&a, Rope::Plain).found, held);
        assert_eq!(kb.lookup(&a[..5], Rope::Yarn).partial, Some((b0, 5)));
    }

    #[test]
    fn a_prefix_is_found_block_by_block_while_held_and_after() {
        let mut kb = KvBlocks::new(8);
        let a = toks(1, 3);
        let held = fill(&mut kb, &a);
        assert_eq!(kb.in_use(), 3);
        // The same start, another continuation: the first two blocks match.
        let mut b = a[..2 * KV_BLOCK].to_vec();
        b.extend(toks(2, 1));
        assert_eq!(kb.lookup(&b, Rope::Plain).found, held[..2]);
        // A partial block never matches; a different first token matches nothing.
        let p = kb.lookup(&a[..KV_BLOCK + 5], Rope::Plain);
        assert_eq!((p.found, p.partial), (held[..1].to_vec(), Some((held[1], 5))));
        let mut c = a.clone();
        c[0] += 1;
        assert_eq!(kb.lookup(&c, Rope::Plain), Prefix::default());
        // Released (last block first, as the scheduler does), the blocks stay cached.
        for &x in held.iter().rev() {
            kb.release(x);
        }
        assert_eq!((kb.in_use(), kb.cached(), kb.available()), (0, 3, 8));
        assert_eq!(kb.lookup(&a, Rope::Plain).found, held);
        // Acquiring a cached block makes it held again: no longer available to others.
        assert_eq!(kb.unheld(&held[..2]), 2);
        kb.acquire(held[0]);
        assert_eq!((kb.in_use(), kb.cached(), kb.available()), (1, 2, 7));
    }

    #[test]
    fn the_same_tokens_after_a_different_prefix_are_not_a_match() {
        let mut kb = KvBlocks::new(8);
        let (x, y) = (toks(1, 1), toks(2, 1));
        let first = fill(&mut kb, &[x.clone(), y.clone()].concat());
        // y alone, or after another block, is not the cached y (its keys depend on what came before).
        assert_eq!(kb.lookup(&y, Rope::Plain), Prefix::default());
        let other = fill(&mut kb, &[toks(3, 1), y.clone()].concat());
        assert_eq!(kb.lookup(&[x, y.clone()].concat(), Rope::Plain).found, first);
        assert_eq!(kb.lookup(&[toks(3, 1), y].concat(), Rope::Plain).found, other);
    }

    #[test]
    fn eviction_takes_the_oldest_cached_block_and_orphans_its_descendants() {
        let mut kb = KvBlocks::new(4);
        let a = toks(1, 2);
        let held = fill(&mut kb, &a);
        for &x in held.iter().rev() {
            kb.release(x);
        }
        // Two free blocks, then the cached ones: the last block of `a` was released first.
        assert!(kb.reserve(3));
        let (f1, f2, e) = (kb.take_reserved(), kb.take_reserved(), kb.take_reserved());
        assert!(!held.contains(&f1) && !held.contains(&f2));
        assert_eq!(e, held[1], "the deepest block goes first");
        assert_eq!(kb.lookup(&a, Rope::Plain).found, held[..1]);
        // Evict the first block too and refill it with other content: a's second block, had it
        // survived, could not be reached through it.
        assert!(kb.reserve(1));
        assert_eq!(kb.take_reserved(), held[0]);
        assert_eq!(kb.lookup(&a, Rope::Plain), Prefix::default());
        assert_eq!(kb.available(), 0);
        assert!(!kb.reserve(1), "nothing left to promise");
    }

    #[test]
    fn a_prefix_computed_twice_keeps_one_index_entry() {
        let mut kb = KvBlocks::new(4);
        let a = toks(1, 1);
        let first = fill(&mut kb, &a);
        let second = fill(&mut kb, &a); // computed by a request admitted before the first finished
        assert_ne!(first, second);
        assert_eq!(
            kb.lookup(&a, Rope::Plain).found,
            first,
            "the held block keeps the entry"
        );
        // The duplicate is not indexed, so released it is free again, not cached.
        kb.release(second[0]);
        assert_eq!((kb.cached(), kb.available()), (0, 3));
        // Once the first is cached (unheld), a new copy of the same prefix takes its place: the
        // old one is freed, not kept as a second cached block.
        kb.release(first[0]);
        assert_eq!(kb.cached(), 1);
        let third = fill(&mut kb, &a);
        assert_eq!(kb.lookup(&a, Rope::Plain).found, third);
        assert_eq!((kb.cached(), kb.in_use(), kb.available()), (0, 1, 3));
    }

    #[test]
    fn reservations_bound_what_can_be_taken() {
        let mut kb = KvBlocks::new(3);
        assert!(kb.reserve(2));
        assert!(!kb.reserve(2));
        assert!(kb.reserve(1));
        let b = kb.take_reserved();
        kb.unreserve(2);
        assert_eq!(kb.available(), 2);
        kb.release(b);
        assert_eq!(kb.available(), 3);
    }

    /// The accounts stay consistent under a long random run of what the scheduler does —
    /// sequences starting from what `lookup` offers (shared blocks, a copied partial block),
    /// growing, filling and indexing blocks, finishing in any order — and every block `lookup`
    /// hands out really holds the prompt's tokens (checked against a model of the pool's rows
    /// that only the simulated writes change).
    #[test]
    fn random_runs_keep_the_accounts_and_hand_out_only_true_prefixes() {
        const N: usize = 24;
        let mut kb = KvBlocks::new(N);
        // What each block's rows hold, as the forward pass would have written them.
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); N];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // A few shared beginnings, so prompts often share blocks or parts of them.
        let bases: Vec<Vec<u32>> = (0..4).map(|i| toks(i + 1, 3)).collect();
        let mut active: Vec<(Vec<u32>, usize)> = Vec::new(); // (blocks, reserve left)
        for _ in 0..3000 {
            if active.len() < 5 && rand(3) > 0 {
                let base = &bases[rand(bases.len())];
                let mut prompt = base[..rand(base.len() + 1)].to_vec();
                prompt.extend((0..1 + rand(40)).map(|_| 9000 + rand(3) as u32));
                let total: Vec<u32> = prompt
                    .iter()
                    .copied()
                    .chain((0..rand(50)).map(|_| 7000 + rand(5) as u32))
                    .collect();
                let p = kb.lookup(&prompt, Rope::Plain);
                for (i, &b) in p.found.iter().enumerate() {
                    assert_eq!(
                        rows[b as usize],
                        prompt[i * KV_BLOCK..(i + 1) * KV_BLOCK],
                        "block {b} handed out for the wrong tokens"
                    );
                }
                if let Some((b, r)) = p.partial {
                    let at = p.found.len() * KV_BLOCK;
                    assert_eq!(rows[b as usize][..r], prompt[at..at + r], "partial block {b}");
                }
                let reuse = p.reusable(prompt.len() - 1);
                let shared = reuse / KV_BLOCK;
                let grown = blocks_for(total.len());
                let need = grown - shared + kb.unheld(&p.found[..shared]);
                if need > kb.available() {
                    continue;
                }
                for &b in &p.found[..shared] {
                    kb.acquire(b);
                }
                assert!(kb.reserve(grown - shared));
                let mut blocks = p.found[..shared].to_vec();
                if reuse > shared * KV_BLOCK {
                    let src = p.block_at(shared * KV_BLOCK);
                    let dst = kb.take_reserved();
                    let r = reuse - shared * KV_BLOCK;
                    if dst != src {
                        rows[dst as usize] = rows[src as usize][..r].to_vec();
                    } else {
                        rows[dst as usize].truncate(r);
                    }
                    blocks.push(dst);
                }
                // Grow and fill to the end, indexing each block as it fills.
                let mut left = grown - blocks.len();
                for i in shared..grown {
                    if i >= blocks.len() {
                        blocks.push(kb.take_reserved());
                        left -= 1;
                        rows[blocks[i] as usize].clear();
                    }
                    let b = blocks[i] as usize;
                    let end = total.len().min((i + 1) * KV_BLOCK);
                    let have = rows[b].len();
                    rows[b].extend_from_slice(&total[i * KV_BLOCK + have..end]);
                    if rows[b].len() == KV_BLOCK {
                        kb.register(
                            blocks[i],
                            i.checked_sub(1).map(|j| blocks[j]),
                            &total[i * KV_BLOCK..end],
                            Rope::Plain,
                        );
                    }
                }
                active.push((blocks, left));
            } else if !active.is_empty() {
                let (blocks, left) = active.swap_remove(rand(active.len()));
                for &b in blocks.iter().rev() {
                    kb.release(b);
                }
                kb.unreserve(left);
            }
            // The accounts.
            let held: usize = kb.meta.iter().filter(|m| m.refs > 0).count();
            assert_eq!(kb.free.len() + kb.lru.len() + held, N);
            let refs: u32 = kb.meta.iter().map(|m| m.refs).sum();
            assert_eq!(refs as usize, active.iter().map(|(b, _)| b.len()).sum::<usize>());
            for &b in &kb.free {
                let m = &kb.meta[b as usize];
                assert!(m.refs == 0 && m.content.is_none(), "free block {b}");
            }
            for (&at, &b) in &kb.lru {
                let m = &kb.meta[b as usize];
                assert!(
                    m.refs == 0 && m.content.is_some() && m.released == at,
                    "cached block {b}"
                );
            }
            for (&h, &b) in &kb.index {
                assert_eq!(kb.meta[b as usize].content.as_ref().map(|c| c.hash), Some(h));
            }
            for (parent, kids) in &kb.children {
                for &b in kids {
                    assert_eq!(kb.meta[b as usize].content.as_ref().map(|c| c.parent), Some(*parent));
                }
            }
        }
    }
}
