//! The compute thread pool. A forward step runs inside it (`install`), so the calling thread is one
//! of the workers: each parallel region then has one fewer thread to wake and no caller to park,
//! which measurably cuts the per-matmul synchronisation cost of decode (a few hundred regions per
//! token).

use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
static THREADS: OnceLock<usize> = OnceLock::new();

/// Sets the number of compute threads; only before the pool is first used.
pub fn set_threads(n: usize) -> Result<(), String> {
    if n == 0 {
        return Err("the thread count must be at least 1".into());
    }
    THREADS
        .set(n)
        .map_err(|_| "the thread count is already set".to_string())?;
    if POOL.get().is_some() {
        return Err("the compute pool is already running".into());
    }
    Ok(())
}

fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let n = *THREADS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("compute-{i}"))
            .build()
            .expect("building the compute pool")
    })
}

/// One forward step at a time in the pool. Two schedulers (two tiers served at once, or a
/// moderation embedding beside generation) must not interleave their steps on the pool's threads: a
/// worker waiting inside a parallel region may steal and run another step's job, re-entering the
/// thread-local scratch (`matmul`'s packed tokens) that its own step still holds — and on the
/// machines we target, two steps sharing the same cores only contend. So a step waits its turn.
static STEP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` on a pool thread, alone in the pool (see `STEP`); parallel iterators inside it use the
/// pool. Must not be called from inside `f`.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // A panic inside a step poisons nothing worth keeping: the lock only orders steps.
    let _turn = STEP.lock().unwrap_or_else(|e| e.into_inner());
    pool().install(f)
}

/// Compute threads.
pub fn threads() -> usize {
    pool().current_num_threads()
}
