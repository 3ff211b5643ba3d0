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

/// Runs `f` on a pool thread; parallel iterators inside it use the pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Compute threads.
pub fn threads() -> usize {
    pool().current_num_threads()
}
