"""Models, completions (incl. fill-in-the-middle), tokenize, health, metrics, disconnects."""
import json
import re
import concurrent.futures
import time

import httpx
import openai
import pytest

MINI = "qwen2.5-coder-0.5b-instruct"


def test_models(client):
    models = client.models.list().data
    # The served tier, then the sentence encoder, the speech model and the voice (each with its own
    # tier name). Whisper base joins when `tandem pull speech-base` put it in the cache (CI has
    # tiny.en only).
    models = [m for m in models if m.id != "whisper-base"]
    assert [m.id for m in models] == [MINI, "all-minilm-l6-v2", "whisper-tiny-en", "piper-joe"]
    assert [m.model_extra["tier"] for m in models] == ["mini", "embeddings", "speech", "voice"]
    m = client.models.retrieve(MINI)
    assert m.id == MINI and m.object == "model" and m.owned_by
    assert client.models.retrieve("mini").id == MINI
    assert client.models.retrieve("tts-1").id == "piper-joe"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_completions_text_tokens_echo_and_logprobs(client, http):
    r = client.completions.create(model="mini", prompt="def add(a, b):\n    return", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.model == MINI and r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    toks = http.post("/tokenize", json={"model": "mini", "prompt": "def add(a, b):\n    return"}).json()["tokens"]
    r2 = client.completions.create(model="mini", prompt=toks, max_tokens=6, temperature=0)
    assert r2.choices[0].text == r.choices[0].text
    r3 = client.completions.create(model="mini", prompt="1, 2, 3,", max_tokens=3, temperature=0, echo=True, logprobs=2)
    assert r3.choices[0].text.startswith("1, 2, 3,")
    lp = r3.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) >= 1
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    chunks = list(client.completions.create(model="mini", prompt="def add(a, b):\n    return", max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text


def test_fill_in_the_middle(client):
    r = client.completions.create(model="mini", prompt="def square(x):\n    return ", suffix="\n\nprint(square(3))\n", max_tokens=8, temperature=0)
    assert "x" in r.choices[0].text


def test_tokenize_round_trip(http):
    text = "héllo wörld <|im_start|> 🦀"
    toks = http.post("/tokenize", json={"model": "mini", "prompt": text}).json()
    assert toks["count"] == len(toks["tokens"]) and 151644 not in toks["tokens"]
    assert http.post("/detokenize", json={"model": "mini", "tokens": toks["tokens"]}).json()["prompt"] == text
    chat = http.post("/tokenize", json={"model": "mini", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert chat["tokens"][0] == 151644


def series(text, name, **labels):
    """The value of the series `name` with exactly these labels (in any order), or None."""
    for line in text.splitlines():
        m = re.fullmatch(r'(\w+)\{(.*)\} (\S+)', line)
        if m and m.group(1) == name and dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))) == labels:
            return float(m.group(3))
    return None


def test_health_and_metrics_show_batching(server, client):
    assert httpx.get(server + "/health").json()["status"] == "ok"
    msgs = [[{"role": "user", "content": f"Tell me a fact about the number {i}."}] for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda m: client.chat.completions.create(model="mini", messages=m, max_tokens=16, temperature=0), msgs))
    text = httpx.get(server + "/metrics").text
    values = {l.split(" ")[0]: float(l.split(" ")[1]) for l in text.splitlines() if l and not l.startswith("#")}
    assert values[f'tandem_forward_step_sequences_max{{model="{MINI}"}}'] > 1
    # Latency per tier, requests by route template and status.
    assert values[f'tandem_time_to_first_token_seconds_count{{model="{MINI}"}}'] >= 4
    assert values[f'tandem_response_duration_seconds_count{{model="{MINI}"}}'] >= 4
    assert series(text, "tandem_http_requests_total", route="/v1/chat/completions", method="POST", status="200") >= 4
    assert "tandem_queue_depth" in text and "tandem_kv_cache_used_positions" in text
    httpx.get(server + "/v1/models/no-such-model")
    text = httpx.get(server + "/metrics").text
    assert series(text, "tandem_http_requests_total", route="/v1/models/{*id}", method="GET", status="404") >= 1


def test_a_clients_request_id_is_kept_and_a_bad_one_replaced(server):
    r = httpx.get(server + "/v1/models", headers={"x-request-id": "trace-7f3a.42"})
    assert r.headers["x-request-id"] == "trace-7f3a.42"
    r = httpx.get(server + "/v1/models", headers={"x-request-id": "has spaces"})
    assert r.headers["x-request-id"].startswith("req_") and len(r.headers["x-request-id"]) == 4 + 32
    assert httpx.get(server + "/v1/models").headers["x-request-id"].startswith("req_")


def test_a_client_that_disconnects_frees_its_sequence(server, client):
    stream = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "Write a very long essay."}],
                                            max_tokens=500, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    deadline = time.time() + 20
    active = None
    while time.time() < deadline:
        text = httpx.get(server + "/metrics").text
        active = [l for l in text.splitlines() if l.startswith("tandem_active_sequences{")][0]
        if active.endswith(" 0"):
            break
        time.sleep(0.2)
    assert active.endswith(" 0"), active


def test_cors_for_the_configured_origin_only(http):
    pre = http.options("/v1/chat/completions", headers={"Origin": "http://playground.test",
                                                        "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "content-type,authorization"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://playground.test"
    r = http.get("/v1/models", headers={"Origin": "http://playground.test"})
    assert r.headers["access-control-allow-origin"] == "http://playground.test"
    other = http.get("/v1/models", headers={"Origin": "http://elsewhere.test"})
    assert "access-control-allow-origin" not in other.headers


def test_openai_model_names_are_aliases_of_the_tiers(client):
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.model == MINI
    r = client.responses.create(model="gpt-4o-mini-2024-07-18", input="hi", max_output_tokens=2)
    assert r.model == MINI
    # This server serves the mini only: gpt-4o stands for the flagship, and the 404 says so.
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert e.value.body["param"] == "model" and "flagship" in e.value.body["message"]
    assert "serves: mini" in e.value.body["message"]
    assert client.models.retrieve("gpt-4o-mini").id == MINI


def test_top_k_min_p_and_repetition_penalty_are_accepted_extensions(client):
    msgs = [{"role": "user", "content": "Name three colours."}]
    greedy = client.chat.completions.create(model="mini", messages=msgs, max_tokens=12, temperature=0)
    top1 = client.chat.completions.create(model="mini", messages=msgs, max_tokens=12, temperature=1, seed=3,
                                          extra_body={"top_k": 1})
    assert top1.choices[0].message.content == greedy.choices[0].message.content, "top_k=1 is greedy"
    r = client.completions.create(model="mini", prompt="def add(a, b):", max_tokens=8,
                                  extra_body={"min_p": 0.1, "repetition_penalty": 1.2, "top_k": 40})
    assert r.choices[0].text
    for bad in [{"min_p": 2}, {"top_k": -1}, {"repetition_penalty": 0}]:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="mini", messages=msgs, max_tokens=2, extra_body=bad)
        assert e.value.body["param"] == next(iter(bad)), e.value.body


def test_flex_runs_on_the_batch_lane_at_half_price(client):
    msgs = [{"role": "user", "content": "Count from one to five."}]
    plain = client.chat.completions.with_raw_response.create(model="mini", messages=msgs, max_tokens=8, temperature=0)
    flex = client.chat.completions.with_raw_response.create(model="mini", messages=msgs, max_tokens=8, temperature=0,
                                                           service_tier="flex")
    p, f = plain.parse(), flex.parse()
    assert p.service_tier == "default" and f.service_tier == "flex"
    assert f.choices[0].message.content == p.choices[0].message.content, "the same greedy answer"
    pc, fc = json.loads(plain.text)["usage"]["cost"], json.loads(flex.text)["usage"]["cost"]
    assert f.usage.completion_tokens == p.usage.completion_tokens
    assert abs(fc["output"] - pc["output"] / 2) < 1e-12, (pc, fc)
    r = client.responses.create(model="mini", input="hi", max_output_tokens=4, service_tier="flex")
    assert r.service_tier == "flex"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", messages=msgs, max_tokens=2, service_tier="premium")
    assert e.value.body["param"] == "service_tier"


def test_liveness_and_readiness_for_orchestrators(server):
    live = httpx.get(server + "/livez")
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = httpx.get(server + "/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["store"] == "ok" and body["models"]
