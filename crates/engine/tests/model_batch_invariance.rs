//! A sequence's logits are bit-identical whether it runs alone or in a step with other sequences
//! (prefilling or decoding), so greedy and seeded requests do not change with server load.

mod common;

use tandem_engine::argmax;
use tandem_model::{BlockTable, KvCache, KvPool, KvType, Logits, RunState, SeqStep, TokenPath, KV_BLOCK};

#[test]
fn logits_do_not_depend_on_the_batch() {
    let lm = common::mini();
    let cfg = &lm.model.config;
    let tok = |s: &str| lm.tokenizer.encode(s, tandem_text::SpecialMode::None);
    let prompt = tok("fn main() { let v = vec![1, 2, 3]; println!(\"{:?}\", v");
    let others = [
        tok("The capital of France"),
        tok("def add(a, b):\n    return"),
        tok("1, 2, 3, 5, 8, 13,"),
    ];

    // Alone: prefill, then 6 greedy decode steps.
    let mut st = RunState::new(cfg, 256, 4, 128);
    let mut kv = KvCache::new(cfg, 128);
    let mut alone = vec![lm.model.forward(&mut st, &mut kv, &prompt).unwrap().to_vec()];
    for _ in 0..6 {
        let next = argmax(alone.last().unwrap());
        alone.push(lm.model.decode(&mut st, &mut kv, next).unwrap().to_vec());
    }

    // Together: the same prompt prefilled beside another prompt and two decoding sequences.
    // One pool for all of them, as the scheduler has it.
    let (mut pool, mut tables) = KvPool::with_tables(cfg, KvType::F16, 128, 5);
    let (mut kv_a, mut kv_c) = (tables.pop().unwrap(), tables.pop().unwrap());
    let mut kvs = tables;
    for (kv, p) in kvs.iter_mut().zip(&others).skip(1) {
        let mut one = [SeqStep {
            kv,
            tokens: p,
            logits: Logits::None,
            path: TokenPath::Prompt,
        }];
        lm.model.step(&mut st, &mut pool, &mut one).unwrap();
    }
    let [kv1, kv2, kv3] = &mut kvs[..] else { unreachable!() };
    let mut steps = vec![
        SeqStep {
            kv: &mut kv_a,
            tokens: &prompt,
            logits: Logits::Last,
            path: TokenPath::Prompt,
        },
        SeqStep {
            kv: kv1,
            tokens: &others[0],
            logits: Logits::Last,
            path: TokenPath::Prompt,
        },
        SeqStep {
            kv: kv2,
            tokens: &[17],
            logits: Logits::Last,
            path: TokenPath::Generated,
        },
        SeqStep {
            kv: kv3,
            tokens: &[18],
            logits: Logits::Last,
            path: TokenPath::Generated,
        },
    ];
    lm.model.step(&mut st, &mut pool, &mut steps).unwrap();
    assert_eq!(
        st.logits_of(0).unwrap(),
        &alone[0][..],
        "prefill logits changed in company"
    );
    // The prompt in two chunks (5 tokens beside a decoding sequence, then the rest): the prompt
    // path's numbers do not depend on the chunking either.
    let [kv1, ..] = &mut kvs[..] else { unreachable!() };
    let filler = [19u32];
    let mut steps = vec![
        SeqStep {
            kv: kv1,
            tokens: &filler,
            logits: Logits::Last,
            path: TokenPath::Generated,
        },
        SeqStep {
            kv: &mut kv_c,
            tokens: &prompt[..5],
            logits: Logits::None,
            path: TokenPath::Prompt,
        },
    ];
    lm.model.step(&mut st, &mut pool, &mut steps).unwrap();
    let mut steps = vec![SeqStep {
        kv: &mut kv_c,
        tokens: &prompt[5..],
        logits: Logits::Last,
        path: TokenPath::Prompt,
    }];
    lm.model.step(&mut st, &mut pool, &mut steps).unwrap();
    assert_eq!(
        st.logits_of(0).unwrap(),
        &alone[0][..],
        "chunked prefill logits changed"
    );

    let mut next = argmax(&alone[0]);
    for (i, want) in alone.iter().enumerate().skip(1) {
        let fillers = [20 + i as u32, 30 + i as u32, 40 + i as u32];
        let [kv1, kv2, kv3] = &mut kvs[..] else { unreachable!() };
        let mut steps = vec![
            SeqStep {
                kv: kv1,
                tokens: &fillers[0..1],
                logits: Logits::Last,
                path: TokenPath::Generated,
            },
            SeqStep {
                kv: &mut kv_a,
                tokens: std::slice::from_ref(&next),
                logits: Logits::Last,
                path: TokenPath::Generated,
            },
            SeqStep {
                kv: kv2,
                tokens: &fillers[1..2],
                logits: Logits::None,
                path: TokenPath::Generated,
            },
            SeqStep {
                kv: kv3,
                tokens: &fillers[2..3],
                logits: Logits::Last,
                path: TokenPath::Generated,
            },
        ];
        lm.model.step(&mut st, &mut pool, &mut steps).unwrap();
        assert_eq!(
            st.logits_of(1).unwrap(),
            &want[..],
            "decode step {i} logits changed in company"
        );
        next = argmax(want);
    }
}

/// The paged cache changes no number: a prompt whose blocks are scattered over the pool, one that
/// starts from another sequence's shared blocks, and one that starts from a copied part of a
/// block all give the logits of one contiguous cache, bit for bit, on the prompt path (chunks
/// across block boundaries) and the decode path (crossing into a new block).
#[test]
fn paged_blocks_shared_or_copied_give_the_contiguous_logits() {
    let lm = common::mini();
    let cfg = &lm.model.config;
    let text = "Write a Rust function that parses a comma-separated list of integers, ignores blank \
                entries, and returns the sum; explain each step of the parsing and why errors are \
                reported with the offending field, then give two unit tests that cover the edge cases.";
    let mut prompt = lm
        .tokenizer
        .encode(&format!("{text}\n{text}"), tandem_text::SpecialMode::None);
    let plen = 3 * KV_BLOCK - 2; // decoding then crosses into the fourth block
    assert!(prompt.len() >= plen, "prompt of {} tokens", prompt.len());
    prompt.truncate(plen);
    let mut st = RunState::new(cfg, 256, 4, 256);

    // Contiguous: prefill, then 4 greedy steps.
    let mut kv = KvCache::new(cfg, 256);
    let mut want = vec![lm.model.forward(&mut st, &mut kv, &prompt).unwrap().to_vec()];
    for _ in 0..4 {
        let next = argmax(want.last().unwrap());
        want.push(lm.model.decode(&mut st, &mut kv, next).unwrap().to_vec());
    }

    let mut pool = KvPool::new(cfg, 16, KvType::F16);
    let mut run = |pool: &mut KvPool, table: &mut BlockTable, from: usize, chunk: usize| -> Vec<Vec<f32>> {
        let mut got = Vec::new();
        let mut at = from;
        while at < plen {
            let to = (at + chunk).min(plen);
            let mut s = [SeqStep {
                kv: &mut *table,
                tokens: &prompt[at..to],
                logits: Logits::last_if(to == plen),
                path: TokenPath::Prompt,
            }];
            lm.model.step(&mut st, pool, &mut s).unwrap();
            at = to;
        }
        got.push(st.logits_of(0).unwrap().to_vec());
        for _ in 0..4 {
            let next = argmax(got.last().unwrap());
            let mut s = [SeqStep {
                kv: &mut *table,
                tokens: &[next],
                logits: Logits::Last,
                path: TokenPath::Generated,
            }];
            lm.model.step(&mut st, pool, &mut s).unwrap();
            got.push(st.logits_of(0).unwrap().to_vec());
        }
        got
    };

    // Scattered blocks, prompt chunks of 37 (each boundary inside a block).
    let mut a = BlockTable::new(vec![9, 3, 14, 1]);
    assert!(
        run(&mut pool, &mut a, 0, 37) == want,
        "scattered blocks changed the logits"
    );
    // Two full blocks shared with `a` (its first 64 positions), the rest in blocks of its own.
    let mut b = BlockTable::new(vec![a.blocks[0], a.blocks[1], 11, 10]);
    b.len = 2 * KV_BLOCK;
    assert!(
        run(&mut pool, &mut b, 2 * KV_BLOCK, 256) == want,
        "shared blocks changed the logits"
    );
    // One shared block, then the first 20 positions of `a`'s second block copied.
    pool.copy_block(a.blocks[1], 8, 20);
    let mut c = BlockTable::new(vec![a.blocks[0], 8, 7, 6]);
    c.len = KV_BLOCK + 20;
    assert!(
        run(&mut pool, &mut c, KV_BLOCK + 20, 256) == want,
        "a copied block changed the logits"
    );
    // A table without blocks for its positions is refused, not written past.
    let mut short = BlockTable::new(vec![5]);
    let mut s = [SeqStep {
        kv: &mut short,
        tokens: &prompt[..KV_BLOCK + 1],
        logits: Logits::Last,
        path: TokenPath::Prompt,
    }];
    assert!(lm.model.step(&mut st, &mut pool, &mut s).is_err());
}
