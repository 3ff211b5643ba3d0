#!/usr/bin/env bash
# The project's test command (README): builds optimised, makes sure the mini tier is in the model
# cache (`tandem pull mini`: a no-op when it is already there and verified), then runs every test.
# Model-backed tests run one at a time (.config/nextest.toml); all run in release mode because they
# run the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
cargo run --release --locked -q -- pull mini
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --workspace --no-fail-fast
else
  cargo test --release --locked --workspace --no-fail-fast
fi
