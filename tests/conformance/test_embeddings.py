"""/v1/embeddings on the sentence encoder (all-MiniLM-L6-v2), through the official SDK and raw HTTP:
every input form, float and base64, truncation at 256 word pieces, `dimensions`, the errors, a batch
line, and usage recorded per project with batches 404 to another project's key."""
import base64
import math
import shutil
import signal
import struct
import tempfile
import time

import httpx
import openai
import pytest

import batchrun
import serverproc
from test_projects import make_key, make_project

MODEL = "all-minilm-l6-v2"


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def vectors(http, **body):
    r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_sdk_gets_unit_vectors_of_384_under_openai_names(client):
    for name in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002", MODEL):
        r = client.embeddings.create(model=name, input="hello world")  # the SDK asks for base64
        assert r.model == MODEL
        v = r.data[0].embedding
        assert len(v) == 384 and abs(sum(x * x for x in v) - 1) < 1e-4
        assert r.usage.prompt_tokens == r.usage.total_tokens == 4  # [CLS] hello world [SEP]
    listed = {m.id for m in client.models.list().data}
    assert MODEL in listed
    assert client.models.retrieve("text-embedding-3-small").id == MODEL


def test_similar_sentences_are_closer_than_unrelated_ones(client):
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    r = client.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    v = [d.embedding for d in r.data]
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3, (cos(v[0], v[1]), cos(v[0], v[2]))


def test_float_base64_and_token_arrays_agree(http):
    f = vectors(http, input="hello world", encoding_format="float")["data"][0]["embedding"]
    b64 = vectors(http, input="hello world", encoding_format="base64")["data"][0]["embedding"]
    raw = base64.b64decode(b64)
    assert len(raw) == 384 * 4
    # JSON carries each f32 as its shortest decimal: back to f32, the bits are base64's.
    assert struct.unpack("<384f", raw) == struct.unpack("<384f", struct.pack("<384f", *f))
    # This model's WordPiece ids: hello 7592, world 2088.
    tok = vectors(http, input=[7592, 2088], encoding_format="float")
    assert tok["data"][0]["embedding"] == pytest.approx(f, abs=1e-6)
    many = vectors(http, input=[[7592, 2088], [7592]], encoding_format="float")
    assert len(many["data"]) == 2 and many["usage"]["prompt_tokens"] == 4 + 3
    assert many["data"][0]["embedding"] == pytest.approx(f, abs=1e-6)
    assert vectors(http, input="hello world", dimensions=384)["data"][0]["embedding"]


def test_long_inputs_are_truncated_at_256_word_pieces(http):
    r = vectors(http, input=["word " * 1000, "short"], encoding_format="float")
    assert r["usage"]["prompt_tokens"] == 256 + 3
    cost = r["usage"]["cost"]
    assert cost["total"] == pytest.approx(cost["input"]) and cost["total"] > 0


@pytest.mark.parametrize("body, param, status", [
    ({"input": "x", "dimensions": 256}, "dimensions", 400),
    ({"input": ""}, "input", 400),
    ({"input": []}, "input", 400),
    ({"input": ["ok", ""]}, "input[1]", 400),
    ({"input": [[1, -1]]}, "input[0][1]", 400),
    ({"input": [[99999999]]}, "input[0]", 400),
    ({"input": [{"text": "x"}]}, "input[0]", 400),
    ({"input": 5}, "input", 400),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format", 400),
    ({"input": ["x"] * 2049}, "input", 400),
    ({}, "input", 400),
    ({"input": "x", "model": "text-embedding-4"}, "model", 404),
    ({"input": "x", "model": "mini"}, "model", 404),
])
def test_bad_requests_name_the_parameter(http, body, param, status):
    r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", **body})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param, r.json()


def test_a_batch_line_embeds_at_the_batch_price(client, http):
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": [f"sentence number {i}", "another"]}}
             for i in range(3)]
    b = batchrun.run_batch(client, lines, "/v1/embeddings")
    assert b.status == "completed", b
    out = {x["custom_id"]: x["response"] for x in batchrun.results(client, b.output_file_id)}
    assert set(out) == {"e0", "e1", "e2"}
    body = out["e0"]["body"]
    assert out["e0"]["status_code"] == 200 and len(body["data"]) == 2 and len(body["data"][0]["embedding"]) == 384
    direct = vectors(http, input=["sentence number 0", "another"])
    assert body["usage"]["cost"]["total"] == pytest.approx(direct["usage"]["cost"]["total"] / 2)
    bad = [{"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {"model": "mini", "input": "x"}}]
    failed = batchrun.run_batch(client, bad, "/v1/embeddings")
    assert failed.status == "failed" and failed.errors.data[0].code == "model_not_found", failed


def test_usage_is_recorded_per_project_and_batches_stay_in_theirs():
    data = tempfile.mkdtemp(prefix="tandem-embed-")
    acme, globex = make_project(data, "acme"), make_project(data, "globex")
    keys = {"acme": make_key(data, "a", "--project", acme), "globex": make_key(data, "g", "--project", globex),
            "admin": make_key(data, "root", "--admin")}
    proc, base = serverproc.start("--models", "mini", "--parallel", "1", "--ctx-size", "256", "--data-dir", data)
    try:
        sdk = lambda who: openai.OpenAI(base_url=base + "/v1", api_key=keys[who], max_retries=0, timeout=60)
        r = sdk("acme").embeddings.create(model=MODEL, input=["one two three", "four"])
        time.sleep(0.5)  # usage is written just after the answer
        rows = httpx.get(base + "/v1/usage", params={"by": "project"},
                         headers={"Authorization": f"Bearer {keys['admin']}"}).json()["data"]
        by = {x["project_id"]: x for x in rows}
        assert by[acme]["input_tokens"] == r.usage.prompt_tokens and globex not in by, rows
        assert by[acme]["cost"] == pytest.approx(r.usage.model_extra["cost"]["total"])
        lines = [{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": MODEL, "input": "x"}}]
        b = batchrun.run_batch(sdk("acme"), lines, "/v1/embeddings")
        assert b.status == "completed"
        with pytest.raises(openai.NotFoundError):
            sdk("globex").batches.retrieve(b.id)
        with pytest.raises(openai.NotFoundError):
            sdk("globex").files.content(b.output_file_id)
        assert httpx.post(base + "/v1/embeddings", json={"model": MODEL, "input": "x"}).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
