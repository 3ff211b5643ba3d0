//! ONNX Runtime for the graphs tandem does not run on its own kernels (the Piper voice, the
//! PP-OCR reader): the shared library from the pinned PyPI `onnxruntime` wheel, loaded at run
//! time through `ort` (`load-dynamic`: no build-time C dependency) once per process, and sessions
//! on it with a given number of intra-op threads. `tract` cannot analyse these graphs
//! (docs/voice.md has the measurements behind the choice).

use std::path::Path;
use std::sync::OnceLock;

pub use ort;
use ort::session::Session;

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The runtime in `lib` (the first call loads it; later calls reuse it, whatever `lib` they name).
fn runtime(lib: &Path) -> Result<&'static ort::environment::Environment, String> {
    let env = ENV.get_or_init(|| {
        let builder = ort::init_from(lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
        builder.with_name("tandem").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|e| e.clone())
}

/// A session of the graph in `model` on `threads` intra-op threads.
pub fn session(model: &Path, lib: &Path, threads: usize) -> Result<Session, String> {
    let env = runtime(lib)?;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", model.display());
    let mut builder = Session::builder(env)
        .map_err(|e| fail(&e))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| fail(&e))?;
    builder.commit_from_file(model).map_err(|e| fail(&e))
}
