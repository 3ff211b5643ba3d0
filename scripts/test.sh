#!/usr/bin/env bash
# The project's test command (README): builds optimised, makes sure the mini tier, Gemma 3 270M, the sentence
# encoder, Whisper tiny.en, the voice, ONNX Runtime and the image classifier are in the model cache (`tandem pull`: a no-op when already there and verified), runs every Rust test
# (model-backed ones one at a time, .config/nextest.toml), then the OpenAI-SDK conformance suite
# against a real `tandem serve` on 127.0.0.1 (tests/conformance, pinned in its requirements.txt,
# installed into a venv outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --locked
"$target/release/tandem" pull mini
"$target/release/tandem" pull embeddings
"$target/release/tandem" pull speech
"$target/release/tandem" pull vision
"$target/release/tandem" pull gemma3-270m
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --workspace --no-fail-fast
else
  cargo test --release --locked --workspace --no-fail-fast
fi

venv="${TANDEM_TEST_VENV:-$HOME/.cache/tandem-ci/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/conformance/requirements.txt
# axe-core (accessibility rules) for the playground's browser tests, vendored from npm outside the clone.
axe="${TANDEM_AXE_DIR:-$HOME/.cache/tandem-ci/axe}"
if [ ! -f "$axe/node_modules/axe-core/axe.min.js" ]; then
  npm install --silent --no-audit --no-fund --prefix "$axe" axe-core@4.14.1
fi
export TANDEM_AXE_JS="$axe/node_modules/axe-core/axe.min.js"
TANDEM_BIN="$target/release/tandem" "$venv/bin/python" -m pytest -q tests/conformance

# A bench smoke run: the benchmark path works end to end (a depth filled once and reused, the
# memory-ceiling probe). No thresholds — speed is judged by benchmarks, never by tests — and its
# results go to a scratch TANDEM_HOME, so the stored measurements `tandem report` reads are left
# alone.
models="${TANDEM_HOME:-$HOME/.cache/tandem}/models"
scratch="$(mktemp -d)"
TANDEM_HOME="$scratch" "$target/release/tandem" bench -m "$models/qwen2.5-coder-0.5b-instruct.gguf" -p 32 -n 8 -d 0,40 -r 2 --bandwidth
rm -rf "$scratch"
# A soak smoke run: 4 streams for 15 s with mixed prompts and clients that hang up mid-stream; it
# fails on any error but a 429 or on a KV block still in use once the server is idle.
"$target/release/tandem" bench soak --streams 4 --minutes 0.25 --every 15 --max-tokens 16 --disconnect-every 2
