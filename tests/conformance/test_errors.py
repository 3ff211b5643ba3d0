"""Error paths: OpenAI's status codes and error shape, the parameter named, the server unharmed."""
import json
import time

import openai
import pytest

import serverproc

Q = [{"role": "user", "content": "hi"}]


def bad(client, **kw):
    args = dict(model="mini", messages=Q, max_tokens=2)
    args.update(kw)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    return e.value


@pytest.mark.parametrize("kw,param", [
    (dict(temperature=3), "temperature"),
    (dict(top_p=1.5), "top_p"),
    (dict(n=0), "n"),
    (dict(presence_penalty=-3), "presence_penalty"),
    (dict(frequency_penalty=2.5), "frequency_penalty"),
    (dict(top_logprobs=25, logprobs=True), "top_logprobs"),
    (dict(top_logprobs=2), "top_logprobs"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(stop=["a", "b", "c", "d", "e"]), "stop"),
    (dict(logit_bias={"999999999": 1}), "logit_bias"),
    (dict(logit_bias={"5": 500}), "logit_bias"),
    (dict(messages=[]), "messages"),
    (dict(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (dict(messages=[{"role": "user"}]), "messages[0].content"),
    (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]),
     "messages[0].content[0].image_url.url"),
    (dict(tools=[{"type": "function"}]), "tools[0].function"),
    (dict(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (dict(stream_options={"include_usage": True}), "stream_options"),
])
def test_invalid_values_name_the_parameter(client, kw, param):
    e = bad(client, **kw)
    assert e.status_code == 400
    assert e.body["param"] == param, e.body
    assert e.body["type"] == "invalid_request_error"


def test_unknown_fields_are_refused_like_openai(client):
    e = bad(client, extra_body={"frobnicate": 1})
    assert "Unrecognized request argument supplied: frobnicate" in e.message


def test_context_overflow(client):
    e = bad(client, messages=[{"role": "user", "content": "word " * 2000}])
    assert e.body["code"] == "context_length_exceeded" and "1024" in e.message
    e = bad(client, max_tokens=1000, messages=[{"role": "user", "content": "word " * 100}])
    assert e.body["code"] == "context_length_exceeded"


def test_two_hundred_malformed_requests_get_4xx_and_the_server_keeps_serving(http, client):
    bodies = []
    base = {"model": "mini", "messages": Q, "max_tokens": 1}
    for i in range(40):
        bodies.append(("not json at all " * (i + 1)).encode())
        bodies.append(json.dumps({**base, "temperature": "hot" if i % 2 else [i]}).encode())
        bodies.append(json.dumps({**base, "model": f"nope-{i}"}).encode())
        bodies.append(json.dumps({**base, "messages": [{"role": "user", "content": i}]}).encode())
        bodies.append(json.dumps([base, i]).encode())
    assert len(bodies) == 200
    for b in bodies:
        r = http.post("/v1/chat/completions", content=b, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (r.status_code, b[:80])
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
    huge = b'{"model": "mini", "messages": [{"role": "user", "content": "' + b"x" * (9 << 20) + b'"}]}'
    r = http.post("/v1/chat/completions", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["message"]
    assert r.headers["connection"] == "close", "the unread body makes the connection unusable"
    # The same keep-alive client goes on: its next requests must not land on the dropped connection.
    for _ in range(3):
        assert http.get("/nope").status_code == 404 and http.get("/nope").json()["error"]
        r = http.post("/v1/chat/completions", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413
    assert client.chat.completions.create(model="mini", messages=Q, max_tokens=1).choices


def test_a_refused_oversized_body_closes_its_connection_with_a_complete_answer(server):
    """Raw socket, keep-alive asked for, the body sent past the limit but not whole: the 413 arrives whole,
    says `Connection: close`, and the server then closes the connection (instead of leaving the client to
    find out on its next request)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(server)
    with socket.create_connection((u.hostname, u.port), timeout=20) as s:
        size = 9 << 20
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                  b"Content-Type: application/json\r\nContent-Length: " + str(size).encode() + b"\r\n\r\n"
                  + b"{" + b" " * ((8 << 20) + (128 << 10)))  # past the 8 MiB limit, short of the whole
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), got[:200]
    assert b"connection: close" in head.lower(), head
    assert json.loads(body)["error"]["message"]


def test_a_full_queue_gets_429_and_a_long_wait_gets_503(tmp_path):
    """A second server with one slot, a queue of one and a 2 s queue timeout."""
    import threading

    import httpx

    proc, base = serverproc.start("--models", "mini", "--parallel", "1", "--max-queue", "1", "--queue-timeout", "2",
                                  "--ctx-size", "4096", "--data-dir", tmp_path)
    try:
        # Greedy, and the end-of-generation tokens banned: it holds the only slot for all 3,500
        # tokens (its repetitive text speculates well: 400 took under 2 s).
        long_req = {"model": "mini", "messages": [{"role": "user", "content": "Write a long essay about rivers."}],
                    "max_tokens": 3500, "stream": True, "temperature": 0, "logit_bias": {"151645": -100, "151643": -100}}
        with httpx.Client(base_url=base, timeout=60) as c, c.stream("POST", "/v1/chat/completions", json=long_req) as busy:
            assert busy.status_code == 200
            lines = busy.iter_lines()  # keep the iterator: dropping it closes the connection
            next(lines)  # the slot is now taken
            waited = {}

            def queued():
                waited["r"] = httpx.post(base + "/v1/chat/completions", timeout=60,
                                         json={"model": "mini", "messages": Q, "max_tokens": 1})

            t = threading.Thread(target=queued)
            t.start()
            deadline = time.time() + 10
            while True:
                m = httpx.get(base + "/metrics").text
                if 'tandem_queue_depth{model="qwen2.5-coder-0.5b-instruct"} 1' in m:
                    break
                assert time.time() < deadline, "the second request never queued"
                time.sleep(0.05)
            r = httpx.post(base + "/v1/chat/completions", json={"model": "mini", "messages": Q, "max_tokens": 1}, timeout=60)
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "queue_full"
            t.join(30)
            assert waited["r"].status_code == 503 and waited["r"].json()["error"]["code"] == "queue_timeout"
            assert any(next(lines).startswith("data: {") for _ in range(4)), "the running stream is unaffected"
    finally:
        proc.terminate()
        proc.wait(30)
