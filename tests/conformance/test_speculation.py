"""Speculative decoding (on by default: n-gram drafts) changes speed, never answers: the session
server and one with `--speculation off` give identical greedy and seeded completions, streamed or
not, and /metrics shows that drafts were proposed and kept."""
import re
import signal
import subprocess
import tempfile

import openai
import pytest

import serverproc

CODE = """def area(w, h):
    return w * h


def perimeter(w, h):
    return 2 * (w + h)
"""

PROMPTS = [
    f"Rename `w` to `width` and `h` to `height` in this code and print the whole code:\n```python\n{CODE}```",
    f"Add a docstring to each function and print the whole code:\n```python\n{CODE}```",
]


@pytest.fixture(scope="module")
def plain():
    proc, base = serverproc.start("--models", "mini", "--parallel", "2", "--ctx-size", "1024",
                                  "--speculation", "off", "--data-dir", tempfile.mkdtemp())
    yield openai.OpenAI(base_url=base + "/v1", api_key="sk-unused", max_retries=0, timeout=120)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def answer(c, prompt, stream=False, **kw):
    args = dict(model="mini", messages=[{"role": "user", "content": prompt}], max_tokens=80, **kw)
    if not stream:
        r = c.chat.completions.create(**args)
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens
    text, reason = "", None
    for chunk in c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            reason = chunk.choices[0].finish_reason or reason
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return text, reason, tokens


def spec_counter(http, name):
    m = re.search(rf'^{name}{{model="[^"]+"}} (\S+)$', http.get("/metrics").text, re.M)
    return float(m.group(1))


def test_speculation_does_not_change_answers(client, http, plain):
    before = spec_counter(http, "tandem_spec_accepted_tokens_total")
    for i, p in enumerate(PROMPTS):
        greedy = dict(temperature=0)
        seeded = dict(temperature=0.7, seed=5)
        assert answer(client, p, **greedy) == answer(plain, p, **greedy)
        assert answer(client, p, stream=True, **seeded) == answer(plain, p, stream=True, **seeded)
    proposed = spec_counter(http, "tandem_spec_draft_tokens_total")
    accepted = spec_counter(http, "tandem_spec_accepted_tokens_total")
    assert accepted > before, "code edits repeat the prompt: n-gram drafts should be kept"
    assert proposed >= accepted


def test_bad_speculation_mode_is_refused():
    r = subprocess.run([serverproc.binary(), "serve", "--port", "0", "--models", "mini", "--speculation", "fast",
                        "--data-dir", tempfile.mkdtemp()], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "--speculation" in r.stderr and "ngram" in r.stderr, r.stderr
