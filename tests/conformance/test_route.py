"""`model: "auto"`: the router's documented choices on fixed examples. Two tiers are served from
the mini's file (the second under another name, `big`, a symlink) so the head and the cascade run
for real without the flagship's download (the head reads the small tier's embeddings, the mini's;
what the large tier then answers does not matter here). The cascade's escalation threshold is set
so each path is taken for sure."""
import os
import sqlite3
import pathlib
import signal
import tempfile
import time

import httpx
import pytest

import serverproc

Q = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}],
     "max_tokens": 12, "temperature": 0}


def mini_file():
    home = pathlib.Path(os.environ.get("TANDEM_HOME", pathlib.Path.home() / ".cache/tandem"))
    return home / "models/qwen2.5-coder-0.5b-instruct.gguf"


@pytest.fixture(scope="module")
def two_tiers():
    d = tempfile.mkdtemp()
    big = pathlib.Path(d) / "big.gguf"
    big.symlink_to(mini_file())
    servers = {}
    for name, policy in [("escalate", ["--auto-policy", "cascade", "--auto-threshold", "0"]),
                         ("keep", ["--auto-policy", "cascade", "--auto-threshold", "-100"]),
                         ("head", [])]:
        data = tempfile.mkdtemp()
        proc, base = serverproc.start("--models", f"mini,{big}", "--parallel", "2", "--ctx-size", "512",
                                      *policy, "--data-dir", data)
        servers[name] = (proc, httpx.Client(base_url=base, timeout=120))
        servers[name][1].data_dir = data
    yield {k: c for k, (_, c) in servers.items()}
    for proc, c in servers.values():
        c.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def route(r):
    return r.headers["x-tandem-route"]


def test_one_tier_serves_every_auto_request(http):
    r = http.post("/v1/chat/completions", json=Q)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "qwen2.5-coder-0.5b-instruct"
    assert route(r) == "mini; reason=only-tier"


def test_bad_quality_header_is_named(http):
    r = http.post("/v1/chat/completions", json=Q, headers={"x-tandem-quality": "best"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "x-tandem-quality"


def test_quality_header_and_streams_pick_the_tier(two_tiers):
    c = two_tiers["escalate"]
    high = c.post("/v1/chat/completions", json=Q, headers={"x-tandem-quality": "high"})
    assert (high.json()["model"], route(high)) == ("big", "big; reason=quality-high")
    low = c.post("/v1/chat/completions", json=Q, headers={"x-tandem-quality": "low"})
    assert (low.json()["model"], route(low)) == ("qwen2.5-coder-0.5b-instruct", "mini; reason=quality-low")
    with c.stream("POST", "/v1/chat/completions", json={**Q, "stream": True}) as s:
        assert route(s) == "mini; reason=stream"
        assert any('"model":"qwen2.5-coder-0.5b-instruct"' in line for line in s.iter_lines())
    # A completions request routes the same way.
    r = c.post("/v1/completions", json={"model": "auto", "prompt": "def add(a, b):", "max_tokens": 8,
                                         "temperature": 0}, headers={"x-tandem-quality": "high"})
    assert (r.json()["model"], route(r)) == ("big", "big; reason=quality-high")


def test_cascade_escalates_below_the_threshold(two_tiers):
    c = two_tiers["escalate"]
    r = c.post("/v1/chat/completions", json=Q)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "big"
    assert route(r).startswith("big; reason=low-confidence; mean_logprob=-"), route(r)
    # The escalated answer is the large tier's own answer.
    direct = c.post("/v1/chat/completions", json={**Q, "model": "big"})
    assert r.json()["choices"] == direct.json()["choices"]
    assert r.json()["usage"]["completion_tokens"] == direct.json()["usage"]["completion_tokens"]
    # The small tier's attempt was paid for too: usage has records of both models (written in the
    # background, so give it a moment).
    for _ in range(50):
        rows = c.get("/v1/usage", params={"by": "model"}).json()["data"]
        models = {row["model"] for row in rows}
        if {"qwen2.5-coder-0.5b-instruct", "big"} <= models:
            break
        time.sleep(0.1)
    assert {"qwen2.5-coder-0.5b-instruct", "big"} <= models, rows
    # The attempt's record carries its own generation time, not zero.
    with sqlite3.connect(f"file:{os.path.join(c.data_dir, 'tandem.sqlite')}?mode=ro", uri=True) as con:
        ms = [row[0] for row in con.execute("SELECT latency_ms FROM usage WHERE model = 'qwen2.5-coder-0.5b-instruct'")]
    assert ms and all(m > 0 for m in ms), ms


def test_cascade_keeps_a_confident_answer(two_tiers):
    c = two_tiers["keep"]
    r = c.post("/v1/chat/completions", json={**Q, "logprobs": True, "top_logprobs": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "qwen2.5-coder-0.5b-instruct"
    assert route(r).startswith("mini; reason=confident; mean_logprob=")
    # The cascade asked for logprobs internally; the caller gets what it asked for, no more.
    assert all(t["top_logprobs"] == [] for t in body["choices"][0]["logprobs"]["content"])
    plain = c.post("/v1/chat/completions", json={**Q}).json()
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["message"] == body["choices"][0]["message"]


EASY = {**Q, "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
# A QA item of the head's own kind (reasoning-gym basic_arithmetic/2, as `tandem eval qa` asks it):
# predicted gain 0.31 against the head's threshold 0.12.
HARD = {**Q, "max_tokens": 4, "messages": [{"role": "user", "content": (
    "Calculate 73 - -18 + 58 - -40 * 33 * 54.\n\nThink it through step by step, then give the final "
    "answer on the last line in the form `Answer: <answer>`.")}]}


def test_head_keeps_a_trivial_prompt_on_the_small_tier(two_tiers):
    c = two_tiers["head"]
    r = c.post("/v1/chat/completions", json=EASY)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "qwen2.5-coder-0.5b-instruct"
    assert route(r).startswith("mini; reason=head; p_small="), route(r)
    # The head routes streams too: the decision comes before any token.
    with c.stream("POST", "/v1/chat/completions", json={**EASY, "stream": True}) as s:
        assert route(s).startswith("mini; reason=head; p_small=")


def test_head_sends_a_hard_prompt_to_the_large_tier(two_tiers):
    c = two_tiers["head"]
    r = c.post("/v1/chat/completions", json=HARD)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "big", route(r)
    assert route(r).startswith("big; reason=head; p_small="), route(r)
    with c.stream("POST", "/v1/chat/completions", json={**HARD, "stream": True}) as s:
        assert route(s).startswith("big; reason=head")
    # The quality header still wins over the head.
    low = c.post("/v1/chat/completions", json=HARD, headers={"x-tandem-quality": "low"})
    assert route(low) == "mini; reason=quality-low"


def test_head_without_user_text_stays_small(two_tiers):
    c = two_tiers["head"]
    r = c.post("/v1/chat/completions", json={**Q, "messages": [{"role": "system", "content": "Say hi."}]})
    assert r.status_code == 200, r.text
    assert route(r) == "mini; reason=no-text"
