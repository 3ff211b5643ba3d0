"""Chat Completions through the official SDK: every supported field, streaming, usage."""
import concurrent.futures

import openai
import pytest

MINI = "qwen2.5-coder-0.5b-instruct"
Q = [{"role": "user", "content": "Name three primary colours, comma separated."}]


def greedy(client, **kw):
    args = dict(model="mini", messages=Q, temperature=0, max_tokens=12)
    args.update(kw)
    return client.chat.completions.create(**args)


def test_non_stream_object_field_by_field(client):
    r = greedy(client)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == MINI, "an alias resolves to the canonical id"
    assert isinstance(r.created, int) and r.created > 1_700_000_000
    assert r.system_fingerprint and r.system_fingerprint.startswith("fp_")
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens >= 0


def test_canonical_id_is_accepted_and_unknown_model_is_404(client):
    assert greedy(client, model=MINI, max_tokens=2).model == MINI
    with pytest.raises(openai.NotFoundError) as e:
        greedy(client, model="gpt-5")
    assert e.value.body["code"] == "model_not_found"


def test_stream_matches_non_stream_and_reports_usage(client):
    full = greedy(client, max_tokens=16)
    chunks = list(greedy(client, max_tokens=16, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == full.usage.completion_tokens
    assert last.usage.prompt_tokens == full.usage.prompt_tokens


def test_max_tokens_and_max_completion_tokens_cut_with_length(client):
    long_q = [{"role": "user", "content": "Write a long story about a robot."}]
    for kw in ({"max_tokens": 5}, {"max_completion_tokens": 5}):
        r = client.chat.completions.create(model="mini", messages=long_q, temperature=0, **kw)
        assert r.choices[0].finish_reason == "length"
        assert r.usage.completion_tokens == 5


def test_stop_strings_are_never_emitted(client):
    base = greedy(client, max_tokens=16).choices[0].message.content
    assert len(base) > 6
    stop = base[3:6]
    r = greedy(client, max_tokens=16, stop=[stop, "\u2603never"])
    out = r.choices[0].message.content
    assert stop not in out and base.startswith(out) and r.choices[0].finish_reason == "stop"
    chunks = list(greedy(client, max_tokens=16, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == out


def test_seed_reproduces_and_n_gives_independent_choices(client):
    kw = dict(temperature=1.0, seed=1234, max_tokens=10)
    a, b = greedy(client, **kw), greedy(client, **kw)
    assert a.choices[0].message.content == b.choices[0].message.content
    r = greedy(client, n=3, **kw)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens >= 3, "usage counts every choice's tokens"
    assert r.choices[0].message.content == a.choices[0].message.content, "choice 0 keeps the seed"
    assert len({c.message.content for c in r.choices}) > 1


def test_logprobs_and_top_logprobs(client):
    r = greedy(client, logprobs=True, top_logprobs=3, max_tokens=4)
    content = r.choices[0].logprobs.content
    assert len(content) >= 1
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert t.top_logprobs[0].token == t.token, "greedy picks the most likely token"
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token


def test_logit_bias_and_penalties(client, http):
    tok = http.post("/tokenize", json={"model": "mini", "prompt": " banana"}).json()["tokens"]
    assert len(tok) == 1
    r = greedy(client, logit_bias={str(tok[0]): 100}, max_tokens=3)
    assert r.choices[0].message.content == " banana" * 3
    r = greedy(client, presence_penalty=1.5, frequency_penalty=1.0, max_tokens=8)
    assert r.choices[0].message.content


def test_roles_parts_and_tool_history(client):
    msgs = [
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "What colour is the sky"}, {"type": "text", "text": "on a clear day?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"at\": \"sky\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "blue"},
        {"role": "user", "content": "So?", "name": "alice"},
    ]
    r = client.chat.completions.create(model="mini", messages=msgs, temperature=0, max_tokens=5, user="alice")
    assert r.choices[0].message.content


def test_shared_prefix_is_cached(client):
    system = {"role": "system", "content": "You are a terse assistant that answers questions about geography. " * 4}
    client.chat.completions.create(model="mini", messages=[system, {"role": "user", "content": "Capital of France?"}], max_tokens=2, temperature=0)
    r = client.chat.completions.create(model="mini", messages=[system, {"role": "user", "content": "Capital of Peru?"}], max_tokens=2, temperature=0)
    assert r.usage.prompt_tokens_details.cached_tokens > 20


def test_batch_invariance_under_concurrent_load(client):
    alone = greedy(client, max_tokens=12).choices[0].message.content
    others = [[{"role": "user", "content": f"Count from {i} to {i + 20}."}] for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        busy = [ex.submit(client.chat.completions.create, model="mini", messages=m, max_tokens=24, temperature=0.7) for m in others]
        mine = ex.submit(greedy, client, max_tokens=12)
        together = mine.result().choices[0].message.content
        for f in busy:
            f.result()
    assert together == alone


def test_request_id_header(client):
    raw = client.chat.completions.with_raw_response.create(model="mini", messages=Q, max_tokens=1)
    assert raw.headers.get("x-request-id", "").startswith("req_")


def test_every_response_reports_its_cost(client, http):
    prices = http.get("/v1/models").json()["data"][0]["pricing"]
    assert prices["input"] > 0 and prices["output"] > 0 and prices["cached_input"] <= prices["input"]
    raw = client.chat.completions.with_raw_response.create(model="mini", messages=Q, max_tokens=4, temperature=0)
    r = raw.parse()
    cost = r.usage.model_extra["cost"]
    u = r.usage
    cached = u.prompt_tokens_details.cached_tokens
    assert cost["input"] == pytest.approx((u.prompt_tokens - cached) * prices["input"] / 1e6)
    assert cost["cached_input"] == pytest.approx(cached * prices["cached_input"] / 1e6)
    assert cost["output"] == pytest.approx(u.completion_tokens * prices["output"] / 1e6)
    assert cost["total"] == pytest.approx(cost["input"] + cost["cached_input"] + cost["output"])
    assert float(raw.headers["x-tandem-cost"]) == pytest.approx(cost["total"], rel=1e-6, abs=1e-12)
    chunks = list(greedy(client, max_tokens=4, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.model_extra["cost"]["total"] > 0
