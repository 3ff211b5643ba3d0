//! A sequence's logits are bit-identical whether it runs alone or in a step with other sequences
//! (prefilling or decoding), so greedy and seeded requests do not change with server load.

mod common;

use tandem_engine::argmax;
use tandem_model::{KvCache, Logits, RunState, SeqStep};

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
    let mut kv_a = KvCache::new(cfg, 128);
    let mut kvs: Vec<KvCache> = (0..3).map(|_| KvCache::new(cfg, 128)).collect();
    for (kv, p) in kvs.iter_mut().zip(&others).skip(1) {
        lm.model.forward(&mut st, kv, p).unwrap();
    }
    let [kv1, kv2, kv3] = &mut kvs[..] else { unreachable!() };
    let mut steps = vec![
        SeqStep {
            kv: &mut kv_a,
            tokens: &prompt,
            logits: Logits::Last,
            prompt: true,
        },
        SeqStep {
            kv: kv1,
            tokens: &others[0],
            logits: Logits::Last,
            prompt: true,
        },
        SeqStep {
            kv: kv2,
            tokens: &[17],
            logits: Logits::Last,
            prompt: false,
        },
        SeqStep {
            kv: kv3,
            tokens: &[18],
            logits: Logits::Last,
            prompt: false,
        },
    ];
    lm.model.step(&mut st, &mut steps).unwrap();
    assert_eq!(
        st.logits_of(0).unwrap(),
        &alone[0][..],
        "prefill logits changed in company"
    );
    // The prompt in two chunks (5 tokens beside a decoding sequence, then the rest): the prompt
    // path's numbers do not depend on the chunking either.
    let mut kv_c = KvCache::new(cfg, 128);
    let [kv1, ..] = &mut kvs[..] else { unreachable!() };
    let filler = [19u32];
    let mut steps = vec![
        SeqStep {
            kv: kv1,
            tokens: &filler,
            logits: Logits::Last,
            prompt: false,
        },
        SeqStep {
            kv: &mut kv_c,
            tokens: &prompt[..5],
            logits: Logits::None,
            prompt: true,
        },
    ];
    lm.model.step(&mut st, &mut steps).unwrap();
    let mut steps = vec![SeqStep {
        kv: &mut kv_c,
        tokens: &prompt[5..],
        logits: Logits::Last,
        prompt: true,
    }];
    lm.model.step(&mut st, &mut steps).unwrap();
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
                prompt: false,
            },
            SeqStep {
                kv: &mut kv_a,
                tokens: std::slice::from_ref(&next),
                logits: Logits::Last,
                prompt: false,
            },
            SeqStep {
                kv: kv2,
                tokens: &fillers[1..2],
                logits: Logits::None,
                prompt: false,
            },
            SeqStep {
                kv: kv3,
                tokens: &fillers[2..3],
                logits: Logits::Last,
                prompt: false,
            },
        ];
        lm.model.step(&mut st, &mut steps).unwrap();
        assert_eq!(
            st.logits_of(1).unwrap(),
            &want[..],
            "decode step {i} logits changed in company"
        );
        next = argmax(want);
    }
}
