"""The Files and Batch APIs through the official SDK, on the real mini: the upload → batch → poll →
download flow, cancel, invalid input, expiry, and a real SIGKILL in the middle of a batch."""
import io
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import time

import openai
import pytest

import serverproc

# End-of-generation tokens of the Qwen2.5 vocabulary, banned where a line must run to max_tokens.
NO_EOG = {"151643": -100, "151645": -100}


def jsonl(lines):
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def chat_line(cid, text, max_tokens=8, **extra):
    body = {"model": "mini", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "temperature": 0, **extra}
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}


def wait(client, batch_id, until, timeout=240):
    deadline = time.time() + timeout
    while True:
        b = client.batches.retrieve(batch_id)
        if until(b):
            return b
        assert time.time() < deadline, f"batch stuck in {b.status}: {b}"
        time.sleep(0.3)


def results(client, file_id):
    if file_id is None:
        return []
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines() if x.strip()]


def upload(client, lines, name="requests.jsonl"):
    return client.files.create(file=(name, io.BytesIO(jsonl(lines))), purpose="batch")


def test_files_upload_list_content_delete(client):
    data = b"any bytes \x00\xff at all\n"
    f = client.files.create(file=("notes.bin", io.BytesIO(data)), purpose="user_data")
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == ("file", len(data), "notes.bin", "user_data",
                                                                     "processed")
    assert f.id.startswith("file-")
    assert client.files.retrieve(f.id).bytes == len(data)
    assert client.files.content(f.id).content == data
    assert f.id in [x.id for x in client.files.list(purpose="user_data")]
    assert f.id not in [x.id for x in client.files.list(purpose="batch")]
    gone = client.files.delete(f.id)
    assert (gone.id, gone.deleted) == (f.id, True)
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(f.id)
    assert f.id in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)


def test_files_refuse_bad_uploads(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("r.txt", io.BytesIO(b"{}\n")), purpose="batch")
    assert e.value.body["param"] == "file" and ".jsonl" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("r.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    assert e.value.body["param"] == "purpose"


def test_batch_flow_end_to_end(client):
    prompts = [f"Say the number {i} in words." for i in range(20)]
    lines = [chat_line(f"req-{i}", p) for i, p in enumerate(prompts)]
    lines.append(chat_line("bad-temperature", "hi", temperature=5))
    # Structured outputs hold in batch lines too.
    person = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    lines.append(chat_line("json", "Invent a person.", max_tokens=40, temperature=1.0, seed=3, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": person}}))
    f = upload(client, lines)
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"job": "nightly"})
    assert (b.object, b.status, b.endpoint, b.input_file_id) == ("batch", "validating", "/v1/chat/completions", f.id)
    assert b.metadata == {"job": "nightly"} and b.expires_at == b.created_at + 24 * 3600
    assert b.id in [x.id for x in client.batches.list(limit=5)]
    b = wait(client, b.id, lambda b: b.status in ("completed", "failed", "expired"))
    assert b.status == "completed", b
    assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (22, 21, 1)
    assert b.in_progress_at and b.finalizing_at and b.completed_at and b.model == "qwen2.5-coder-0.5b-instruct"
    out, err = results(client, b.output_file_id), results(client, b.error_file_id)
    assert sorted(r["custom_id"] for r in out) == sorted([f"req-{i}" for i in range(20)] + ["json"])
    js = next(r for r in out if r["custom_id"] == "json")["response"]["body"]["choices"][0]
    if js["finish_reason"] == "stop":
        assert set(json.loads(js["message"]["content"])) == {"name", "age"}
    pricing = client.models.retrieve("mini").model_extra["pricing"]
    prompt_total = completion_total = 0
    for r in out:
        assert r["id"].startswith("batch_req_") and r["error"] is None
        assert r["response"]["status_code"] == 200 and r["response"]["request_id"]
        body = r["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        u = body["usage"]
        # Batch tokens cost half the tier's price.
        want = ((u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"]) * pricing["input"]
                + u["prompt_tokens_details"]["cached_tokens"] * pricing["cached_input"]
                + u["completion_tokens"] * pricing["output"]) / 2e6
        assert u["cost"]["total"] == pytest.approx(want, rel=1e-9)
        prompt_total += u["prompt_tokens"]
        completion_total += u["completion_tokens"]
    assert [r["custom_id"] for r in err] == ["bad-temperature"]
    assert err[0]["response"]["status_code"] == 400
    assert err[0]["response"]["body"]["error"]["param"] == "temperature"
    assert (b.usage.input_tokens, b.usage.output_tokens) == (prompt_total, completion_total)
    # The same request run interactively gives the same greedy answer.
    direct = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": prompts[3]}],
                                            max_tokens=8, temperature=0)
    line3 = next(r for r in out if r["custom_id"] == "req-3")
    assert line3["response"]["body"]["choices"][0]["message"]["content"] == direct.choices[0].message.content


def test_completions_batch(client):
    lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "mini", "prompt": f"def add_{i}(a, b):", "max_tokens": 6, "temperature": 0}}
             for i in range(3)]
    b = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/completions",
                              completion_window="24h")
    b = wait(client, b.id, lambda b: b.status == "completed")
    out = results(client, b.output_file_id)
    assert {r["custom_id"] for r in out} == {"c0", "c1", "c2"}
    assert all(r["response"]["body"]["object"] == "text_completion" for r in out)
    assert b.error_file_id is None


def test_cancel_keeps_finished_results_and_answers_every_line(client):
    lines = [chat_line(f"long-{i}", "Tell a long story.", max_tokens=48, logit_bias=NO_EOG) for i in range(8)]
    b = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions",
                              completion_window="24h")
    wait(client, b.id, lambda b: b.status == "in_progress", timeout=60)
    c = client.batches.cancel(b.id)
    assert c.status in ("cancelling", "cancelled") and c.cancelling_at
    b = wait(client, b.id, lambda b: b.status == "cancelled", timeout=60)
    assert b.cancelled_at and b.request_counts.total == 8
    out, err = results(client, b.output_file_id), results(client, b.error_file_id)
    assert sorted(r["custom_id"] for r in out + err) == sorted(f"long-{i}" for i in range(8))
    assert b.request_counts.completed == len(out) and b.request_counts.failed == len(err)
    assert err and all(r["error"]["code"] == "batch_cancelled" for r in err)
    with pytest.raises(openai.APIStatusError) as e:
        client.batches.cancel(wait(client, upload_and_run(client), lambda b: b.status == "completed").id)
    assert e.value.status_code == 409


def upload_and_run(client):
    b = client.batches.create(input_file_id=upload(client, [chat_line("one", "hi", max_tokens=2)]).id,
                              endpoint="/v1/chat/completions", completion_window="24h")
    return b.id


def test_invalid_input_fails_the_batch_with_line_errors(client):
    raw = b"\n".join([
        json.dumps(chat_line("a", "hi")).encode(),
        b"{not json",
        json.dumps(chat_line("a", "again")).encode(),
        json.dumps({**chat_line("b", "hi"), "url": "/v1/embeddings"}).encode(),
        json.dumps(chat_line("c", "hi") | {"body": {"model": "flagship-nope", "messages": []}}).encode(),
        json.dumps({"custom_id": "d", "method": "GET", "url": "/v1/chat/completions", "body": {}}).encode(),
    ]) + b"\n"
    f = client.files.create(file=("bad.jsonl", io.BytesIO(raw)), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    b = wait(client, b.id, lambda b: b.status == "failed", timeout=30)
    assert b.failed_at and b.output_file_id is None
    got = {(e.code, e.line) for e in b.errors.data}
    assert got == {("invalid_json_line", 2), ("duplicate_custom_id", 3), ("invalid_url", 4),
                   ("mismatched_model", 5), ("invalid_method", 6)}, got
    assert all(e.message for e in b.errors.data)

    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=f.id, endpoint="/v1/images/generations", completion_window="24h")
    assert e.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="1h")
    assert e.value.body["param"] == "completion_window"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def _usage_rows(data_dir, batch_id):
    con = sqlite3.connect(f"file:{os.path.join(data_dir, 'tandem.sqlite')}?mode=ro", uri=True)
    try:
        return con.execute("SELECT line, COUNT(*) FROM usage WHERE batch_id = ? GROUP BY line", (batch_id,)).fetchall()
    finally:
        con.close()


def test_interactive_responses_are_recorded_once(client, data_dir):
    r = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    s = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "yo"}], max_tokens=3,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(s)
    streamed_usage = chunks[-1].usage
    con = sqlite3.connect(f"file:{os.path.join(data_dir, 'tandem.sqlite')}?mode=ro", uri=True)
    try:
        for rid, u in [(r.id, r.usage), (chunks[0].id, streamed_usage)]:
            rows = []
            for _ in range(50):  # written in the background, just after the answer
                rows = con.execute("SELECT prompt_tokens, completion_tokens, cost, tier, batch_id FROM usage "
                                   "WHERE request_id = ?", (rid,)).fetchall()
                if rows:
                    break
                time.sleep(0.1)
            assert rows == [(u.prompt_tokens, u.completion_tokens, pytest.approx(u.model_extra["cost"]["total"]),
                             "mini", None)]
    finally:
        con.close()


def test_sigkill_mid_batch_resumes_exactly_once():
    data = tempfile.mkdtemp(prefix="tandem-crash-")
    args = ("--models", "mini", "--parallel", "3", "--ctx-size", "512", "--data-dir", data)
    proc, base = serverproc.start(*args)
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
        lines = [chat_line(f"k{i}", f"Count from {i} upwards.", max_tokens=16, logit_bias=NO_EOG) for i in range(12)]
        b = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
        mid = wait(client, b.id, lambda b: b.request_counts and b.request_counts.completed >= 3, timeout=120)
        assert mid.request_counts.completed < 12, "the kill must land in the middle of the batch"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc, base = serverproc.start(*args)
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
        done = wait(client, b.id, lambda b: b.status == "completed", timeout=180)
        assert (done.request_counts.total, done.request_counts.completed) == (12, 12)
        out = results(client, done.output_file_id)
        assert sorted(r["custom_id"] for r in out) == sorted(f"k{i}" for i in range(12))
        assert done.error_file_id is None
        rows = _usage_rows(data, b.id)
        assert sorted(rows) == [(i, 1) for i in range(1, 13)], rows
        assert done.usage.output_tokens == 16 * 12
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def test_unfinished_batch_expires_keeping_finished_results():
    data = tempfile.mkdtemp(prefix="tandem-expiry-")
    proc, base = serverproc.start("--models", "mini", "--parallel", "2", "--ctx-size", "512", "--data-dir", data,
                                  "--batch-window-seconds", "4", "--max-file-bytes", "4096")
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
        with pytest.raises(openai.APIStatusError) as e:
            client.files.create(file=("big.jsonl", io.BytesIO(b"x" * 5000)), purpose="batch")
        assert e.value.status_code == 413
        assert client.files.list().data == [], "a refused upload leaves nothing behind"
        lines = [chat_line("quick", "hi", max_tokens=2)]
        lines += [chat_line(f"slow-{i}", "Write an essay.", max_tokens=400, logit_bias=NO_EOG) for i in range(4)]
        b = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
        assert b.expires_at == b.created_at + 4
        b = wait(client, b.id, lambda b: b.status == "expired", timeout=60)
        assert b.expired_at
        out, err = results(client, b.output_file_id), results(client, b.error_file_id)
        assert "quick" in [r["custom_id"] for r in out]
        assert sorted(r["custom_id"] for r in out + err) == sorted(x["custom_id"] for x in lines)
        assert {r["error"]["code"] for r in err} == {"batch_expired"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
