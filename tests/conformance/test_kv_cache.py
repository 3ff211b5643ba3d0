"""The paged KV cache through the API: concurrent requests that share a system prompt all start
from its cached blocks; a small pool makes requests wait for blocks (never fail) and shows in
/metrics; a request that could never fit is a clear 400."""
import concurrent.futures
import re
import threading
import time

import httpx
import openai
import pytest

from serverproc import serving

SYSTEM = " ".join(f"Rule {i}: answer briefly, name the trade-off, and prefer the standard library." for i in range(20))


def metric(text, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def test_concurrent_requests_share_a_cached_system_prompt(client):
    ask = lambda q: client.chat.completions.create(
        model="mini", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
        max_tokens=4, temperature=0)
    first = ask("What is a mutex?")
    assert first.usage.prompt_tokens > 256
    # Three at once, each in its own slot: every one starts from the first request's blocks
    # (the old per-slot reuse gave at most one of them the prefix).
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        rs = list(pool.map(ask, ["What is a channel?", "What is an arena?", "What is a trait object?"]))
    for r in rs:
        cached = r.usage.prompt_tokens_details.cached_tokens
        assert 256 <= cached < r.usage.prompt_tokens, cached


def test_a_small_pool_queues_requests_and_serves_them_all():
    # --kv-budget-mib 1 is below one context: the pool holds exactly one context of 512 positions
    # (16 blocks), so with max_tokens 200 only two requests fit at once, though 4 slots are free.
    with serving("tandem-kv-", "--models", "mini", "--parallel", "4", "--ctx-size", "512",
                 "--kv-budget-mib", "1") as (client, _):
        base = str(client.base_url).rstrip("/").removesuffix("/v1")
        assert metric(httpx.get(base + "/metrics").text, "tandem_kv_cache_blocks") == 16
        seen = {"active": 0, "queued": 0}
        done = threading.Event()

        def watch():
            while not done.is_set():
                t = httpx.get(base + "/metrics").text
                seen["active"] = max(seen["active"], metric(t, "tandem_active_sequences"))
                seen["queued"] = max(seen["queued"], metric(t, "tandem_queue_depth"))
                time.sleep(0.05)

        w = threading.Thread(target=watch)
        w.start()
        ask = lambda i: client.chat.completions.create(
            model="mini", messages=[{"role": "user", "content": f"Story {i}: tell a long story about a fox."}],
            max_tokens=200, temperature=0, logit_bias={"151645": -100, "151643": -100})
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                rs = list(pool.map(ask, range(4)))
        finally:
            done.set()
            w.join()
        assert all(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 200 for r in rs)
        assert seen["active"] <= 2, seen
        assert seen["queued"] >= 1, seen
        # Four choices of 400 tokens could never fit in 16 blocks: refused at once, naming n.
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=400, n=4)
        assert e.value.body["param"] == "n" and "KV blocks" in e.value.body["message"]
