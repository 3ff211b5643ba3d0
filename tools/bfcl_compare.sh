#!/usr/bin/env bash
# The BFCL comparison of docs/tools.md: for each tier, tandem with its grammar and call reading
# (`--tool-calls enforced`, the default), tandem plain (`--tool-calls plain`: no grammar, tags
# only) and llama-server --jinja on the same GGUF, each asked the same converted requests by
# `tandem eval bfcl`, one server at a time (2 cores). Results resume from
# $TANDEM_HOME/eval/bfcl/LABEL.jsonl; the table comes last.
#
#   tools/bfcl_compare.sh LLAMA_SERVER [TIERS]     (TIERS default: "mini flagship")
#
# LLAMA_SERVER: llama-server built as tools/llama_cpp_reference.md says.
set -euo pipefail
cd "$(dirname "$0")/.."
llama="$1"
tiers="${2:-mini flagship}"
bin=target/release/tandem
models="${TANDEM_HOME:-$HOME/.cache/tandem}/models"
port=18090
pid=

stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap stop EXIT

wait_ready() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && return 0
    sleep 1
  done
  echo "server on $port did not come up" >&2; return 1
}

NO_CALL=no_call_code,no_call_json
run() { # label model: BFCL's categories (100 each), then the false-call sets (50 each)
  "$bin" eval bfcl --url "http://127.0.0.1:$port/v1" --model "$2" --label "$1" --parallel 4
  "$bin" eval bfcl --url "http://127.0.0.1:$port/v1" --model "$2" --label "$1" --parallel 4 \
    --categories $NO_CALL --per-category 50 --max-tokens 384
}

labels=
for tier in $tiers; do
  gguf="$models/qwen2.5-coder-$([ "$tier" = mini ] && echo 0.5b || echo 1.5b)-instruct.gguf"
  for mode in enforced plain; do
    "$bin" serve --models "$tier" --port $port --tool-calls $mode --ctx-size 4096 >/tmp/bfcl-serve.log 2>&1 &
    pid=$!; wait_ready; run "tandem-$tier-$mode" "$tier"
    if [ $mode = enforced ]; then # the runaway check: tool_choice required, parallel calls on
      "$bin" eval bfcl --url "http://127.0.0.1:$port/v1" --model "$tier" --label "tandem-$tier-required" \
        --parallel 4 --tool-choice required --categories simple,parallel
      labels_required="${labels_required:-},tandem-$tier-required"
    fi
    stop
    labels="$labels,tandem-$tier-$mode"
  done
  "$llama" -m "$gguf" --jinja -t 2 -c 16384 -np 4 --port $port >/tmp/bfcl-llama.log 2>&1 &
  pid=$!; wait_ready; run "llama-server-$tier" "$tier"; stop
  labels="$labels,llama-server-$tier"
done
"$bin" eval bfcl --report "${labels#,}"
"$bin" eval bfcl --report "${labels#,}" --categories $NO_CALL --per-category 50
"$bin" eval bfcl --report "${labels_required#,}" --categories simple,parallel
