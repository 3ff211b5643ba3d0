#!/usr/bin/env python3
"""llama.cpp's reference outputs for Gemma 3 270M (base): greedy continuations of raw prompts
(`llama-completion --temp 0 -n 32`, BOS added by llama.cpp as the model asks), appended to
tests/golden/greedy_llama_cpp.json as tier "gemma3-270m" with the prompt as tandem reads it
("<bos>" + text), and `llama-tokenize` ids of the SentencePiece test texts, added to
crates/text/tests/data/spm_gemma3.json as "llama_cpp_ids".

    python3 -m tools.llama_greedy_gemma3 LLAMA_BIN_DIR

llama.cpp built as tools/llama_cpp_reference.md says."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = pathlib.Path(os.environ.get("TANDEM_HOME", pathlib.Path.home() / ".cache/tandem")) / "models/gemma-3-270m-q4_k_m.gguf"
PROMPTS = [
    ("capital", "The capital of France is"),
    ("counting", "One, two, three, four,"),
    ("fibonacci", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("story", "Once upon a time, in a small village by the sea,"),
]
END = " [end of text]"


def greedy(bin_dir):
    out = []
    for name, text in PROMPTS:
        r = subprocess.run([f"{bin_dir}/llama-completion", "-m", str(MODEL), "-n", "32", "--temp", "0", "-no-cnv",
                            "--no-display-prompt", "-t", "2", "-p", text], capture_output=True, text=True, check=True)
        gen = r.stdout
        stopped = END in gen
        gen = gen.split(END)[0] if stopped else gen.rstrip("\n")
        out.append({"tier": "gemma3-270m", "name": name, "prompt": "<bos>" + text, "text": gen, "stopped": stopped})
        print(name, repr(gen[:80]), "stopped" if stopped else "")
    path = ROOT / "tests/golden/greedy_llama_cpp.json"
    cases = [c for c in json.loads(path.read_text()) if c["tier"] != "gemma3-270m"] + out
    path.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")


def tokens(bin_dir):
    path = ROOT / "crates/text/tests/data/spm_gemma3.json"
    doc = json.loads(path.read_text())
    for c in doc["cases"]:
        if not c["text"]:
            c["llama_cpp_ids"] = []
            continue
        r = subprocess.run([f"{bin_dir}/llama-tokenize", "-m", str(MODEL), "--prompt", c["text"], "--ids",
                            "--no-bos", "--log-disable"], capture_output=True, text=True, check=True)
        c["llama_cpp_ids"] = json.loads(r.stdout.strip().splitlines()[-1])
        print(repr(c["text"][:30]), c["llama_cpp_ids"] == c["ids"])
    path.write_text(json.dumps(doc, ensure_ascii=False))


if __name__ == "__main__":
    greedy(sys.argv[1])
    tokens(sys.argv[1])
