#!/usr/bin/env python3
"""Golden greedy continuations from llama.cpp, for tests/golden/greedy_llama_cpp.json.

    python3 -m tools.llama_greedy LLAMA_BIN_DIR

Renders each conversation with Python jinja2 (tools/render_templates.py's environment and message
normalisation), runs `llama-completion --temp 0 -n 32` on the rendered text for each tier, and
records the generated text and whether it ended on an end-of-generation token. See
tools/llama_cpp_reference.md for how llama.cpp was built."""
import json
import os
import pathlib
import subprocess
import sys

from tools.render_templates import DATA, environment, normalize

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = pathlib.Path(os.environ.get("TANDEM_HOME", pathlib.Path.home() / ".cache/tandem")) / "models"
FILES = {"mini": "qwen2.5-coder-0.5b-instruct.gguf", "flagship": "qwen2.5-coder-1.5b-instruct.gguf"}
CONVERSATIONS = [
    ("reverse_string", [{"role": "user", "content": "Write a Python function that reverses a string."}]),
    ("hash_map", [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "Explain what a hash map is in two sentences."}]),
    ("arithmetic", [{"role": "user", "content": "What is 17 * 23? Answer with the number only."}]),
    ("rust_max", [{"role": "user", "content": "Write a Rust function that returns the maximum of a slice of i32."}]),
]
END = " [end of text]"


def main(bin_dir):
    env = environment()
    out = []
    for tier, fname in FILES.items():
        tmpl = env.from_string((DATA / f"{tier}.jinja").read_text())
        for name, messages in CONVERSATIONS:
            prompt = tmpl.render(messages=normalize(messages), add_generation_prompt=True, bos_token="", eos_token="<|im_end|>")
            r = subprocess.run([f"{bin_dir}/llama-completion", "-m", str(MODELS / fname), "-n", "32", "--temp", "0",
                                "-no-cnv", "--no-display-prompt", "-t", "2", "-nr", "-p", prompt],
                               capture_output=True, text=True, check=True)
            text = r.stdout
            stopped = END in text
            text = text.split(END)[0] if stopped else text.rstrip("\n")
            out.append({"tier": tier, "name": name, "prompt": prompt, "text": text, "stopped": stopped})
            print(tier, name, repr(text[:80]), "stopped" if stopped else "")
    (ROOT / "tests/golden/greedy_llama_cpp.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
