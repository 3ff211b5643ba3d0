//! Quality evaluations, measured on the user's own machine.
//!
//! Layout
//! - `bfcl`: the Berkeley Function Calling Leaderboard's data, its schemas as OpenAI tools, its AST
//!   checker.
//! - `sandbox`: runs untrusted Python (model-written code with its tests) in fresh namespaces, as an
//!   unprivileged user, with resource and time limits.
//! - `humaneval`: the problems, EvalPlus's instruct prompt, the program the sandbox runs.
//! - `mc`: multiple-choice suites (BIG-bench samples) scored by log-likelihood.
//! - `qa`: short-answer questions (reasoning-gym samples) scored by their final answer.
//! - `safety`: the safety sample, the refusal detector and the judge's prompt and reading.

pub mod bfcl;
pub mod humaneval;
pub mod longctx;
pub mod mc;
pub mod qa;
pub mod safety;
pub mod sandbox;

pub use sandbox::{run_python, Limits, Outcome, SandboxError, Verdict};
