//! Admission order between interactive requests and batch work, on the real mini: batch work leaves
//! `batch_reserve` slots free, and an interactive request arriving while a batch runs is admitted
//! before the next batch line.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, Priority};
use tandem_text::SpecialMode;
use tokio::sync::mpsc::UnboundedReceiver;

/// The two tests share the machine's cores; under `cargo test` (one process) they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Admitted(char),
    Finished(char),
}

/// Drains every receiver into one timeline until `until` holds or 60 s pass.
fn watch(rxs: &mut [(char, &mut UnboundedReceiver<Event>)], log: &mut Vec<Seen>, until: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !until(log) {
        assert!(Instant::now() < deadline, "timed out; saw {log:?}");
        for (name, rx) in rxs.iter_mut() {
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    Event::Prefilled { .. } => log.push(Seen::Admitted(*name)),
                    Event::Finished { .. } => log.push(Seen::Finished(*name)),
                    Event::Token { .. } => {}
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn interactive_requests_go_before_waiting_batch_lines() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lm = Arc::new(common::mini());
    let prompt = lm
        .tokenizer
        .encode("Write a long story about a lighthouse keeper.", SpecialMode::None);
    // Every sequence runs its full max_tokens: end-of-generation tokens are banned.
    let greedy = common::greedy_without_eog(&lm);
    let req = |priority, max_tokens| GenRequest {
        priority,
        ..GenRequest::new(prompt.clone(), greedy.clone(), max_tokens)
    };
    let cfg = EngineConfig {
        batch_reserve: 1,
        ..EngineConfig::new(2, 256)
    };
    let engine = EngineHandle::spawn(lm.clone(), cfg);
    let mut log = Vec::new();

    let mut a = engine.submit(req(Priority::Batch, 40)).unwrap();
    watch(&mut [('a', &mut a)], &mut log, |l| l.contains(&Seen::Admitted('a')));
    // One slot is free, but it is the reserved one: the second batch line waits ...
    let mut b = engine.submit(req(Priority::Batch, 4)).unwrap();
    // ... and an interactive request arriving now takes the reserved slot at once.
    let mut i = engine.submit(req(Priority::Interactive, 4)).unwrap();
    watch(&mut [('a', &mut a), ('b', &mut b), ('i', &mut i)], &mut log, |l| {
        l.contains(&Seen::Finished('a')) && l.contains(&Seen::Finished('b')) && l.contains(&Seen::Finished('i'))
    });
    let at = |s: Seen| log.iter().position(|&x| x == s).unwrap();
    assert!(at(Seen::Admitted('i')) < at(Seen::Finished('a')), "{log:?}");
    assert!(at(Seen::Admitted('i')) < at(Seen::Admitted('b')), "{log:?}");
    // The waiting batch line starts only when the running one has left a slot beside the reserve.
    assert!(at(Seen::Admitted('b')) > at(Seen::Finished('a')), "{log:?}");

    // With every slot taken, an interactive request that arrives after a batch line is queued goes
    // first when a slot frees.
    let mut c = engine.submit(req(Priority::Batch, 30)).unwrap();
    let mut j = engine.submit(req(Priority::Interactive, 30)).unwrap();
    watch(&mut [('c', &mut c), ('j', &mut j)], &mut log, |l| {
        l.contains(&Seen::Admitted('c')) && l.contains(&Seen::Admitted('j'))
    });
    let mut d = engine.submit(req(Priority::Batch, 2)).unwrap();
    let mut k = engine.submit(req(Priority::Interactive, 2)).unwrap();
    watch(
        &mut [('c', &mut c), ('j', &mut j), ('d', &mut d), ('k', &mut k)],
        &mut log,
        |l| l.contains(&Seen::Finished('d')) && l.contains(&Seen::Finished('k')),
    );
    let at = |s: Seen| log.iter().position(|&x| x == s).unwrap();
    assert!(at(Seen::Admitted('k')) < at(Seen::Admitted('d')), "{log:?}");
}

#[test]
fn one_tenants_burst_does_not_starve_another() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lm = Arc::new(common::mini());
    let prompt = lm.tokenizer.encode("Count to ten.", SpecialMode::None);
    let greedy = common::greedy_without_eog(&lm);
    let req = |tenant| GenRequest {
        tenant,
        ..GenRequest::new(prompt.clone(), greedy.clone(), 6)
    };
    let engine = EngineHandle::spawn(lm.clone(), EngineConfig::new(1, 128));
    let mut log = Vec::new();
    // Tenant 1 bursts five requests; tenant 2 asks once, after the burst is queued.
    let mut burst: Vec<_> = (0..5).map(|_| engine.submit(req(1)).unwrap()).collect();
    let mut other = engine.submit(req(2)).unwrap();
    let names = ['a', 'b', 'c', 'd', 'e'];
    let mut rxs: Vec<(char, &mut UnboundedReceiver<Event>)> = names.iter().copied().zip(burst.iter_mut()).collect();
    rxs.push(('z', &mut other));
    watch(&mut rxs, &mut log, |l| {
        l.iter().filter(|s| matches!(s, Seen::Finished(_))).count() == 6
    });
    let admitted: String = log
        .iter()
        .filter_map(|s| match s {
            Seen::Admitted(c) => Some(*c),
            _ => None,
        })
        .collect();
    // FIFO would give "abcdez"; the other tenant goes right after the burst's first two.
    assert!(admitted.find('z').unwrap() <= 2, "admission order {admitted}");
}
