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


def test_predicted_outputs_keep_the_answer_and_count_the_prediction(plain):
    """`prediction` drafts even with speculation off; the answer is the one without it, and usage
    says how much of the prediction the answer kept (streamed or not)."""
    p = PROMPTS[0]
    prediction = {"type": "content", "content": CODE}
    for stream in (False, True):
        assert answer(plain, p, stream, temperature=0, prediction=prediction) == answer(plain, p, stream, temperature=0)
    r = plain.chat.completions.create(model="mini", messages=[{"role": "user", "content": p}], max_tokens=80,
                                      temperature=0, prediction=prediction)
    d = r.usage.completion_tokens_details
    assert d.accepted_prediction_tokens > 0, d
    assert d.accepted_prediction_tokens + d.rejected_prediction_tokens == len_tokens(plain, CODE)
    parts = {"type": "content", "content": [{"type": "text", "text": CODE[:20]}, {"type": "text", "text": CODE[20:]}]}
    r2 = plain.chat.completions.create(model="mini", messages=[{"role": "user", "content": p}], max_tokens=80,
                                       temperature=0, prediction=parts)
    assert r2.choices[0].message.content == r.choices[0].message.content
    plain_usage = plain.chat.completions.create(model="mini", messages=[{"role": "user", "content": p}],
                                                max_tokens=80, temperature=0).usage
    assert plain_usage.completion_tokens_details.accepted_prediction_tokens == 0
    # Rejected prediction tokens are reported, not charged: the same answer costs the same.
    assert r.usage.model_extra["cost"]["output"] == plain_usage.model_extra["cost"]["output"]


def len_tokens(c, text):
    """Tokens of `text` as a completion prompt (echo, no generation) counts them."""
    r = c.completions.create(model="mini", prompt=text, max_tokens=1)
    return r.usage.prompt_tokens


@pytest.mark.parametrize("prediction, param", [
    ({"type": "static", "content": "x"}, "prediction.type"),
    ({"type": "content", "content": 5}, "prediction.content"),
    ({"type": "content", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, "prediction.content"),
    ("def f(): pass", "prediction"),
])
def test_bad_predictions_are_refused(plain, prediction, param):
    with pytest.raises(openai.BadRequestError) as e:
        plain.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                      prediction=prediction)
    assert e.value.body["param"] == param, e.value.body
