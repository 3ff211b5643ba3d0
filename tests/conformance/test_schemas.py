"""Structured outputs over 50 varied schemas (tools/make_schemas.py: nested objects, bounded arrays,
enums, bounded numbers, patterns, optional and nullable fields) on the mini at temperature 0.7:
every output that stops validates against its schema (checked by the independent `jsonschema`
package), and at least 98% stop within 512 tokens. Also: logit_bias pushing hard toward invalid
tokens still yields valid JSON — the mask does the work, not luck."""
import concurrent.futures
import json
import os
import pathlib

import jsonschema

SCHEMAS = json.loads((pathlib.Path(__file__).parent / "data/schemas.json").read_text())


def run_one(client, i, s):
    r = client.chat.completions.create(
        model="mini", messages=[{"role": "user", "content": s["prompt"]}], max_tokens=512, temperature=0.7, seed=i,
        response_format={"type": "json_schema", "json_schema": {"name": s["name"], "schema": s["schema"],
                                                                 "strict": True}})
    c = r.choices[0]
    return s, c.finish_reason, c.message.content, r.usage.completion_tokens


def test_fifty_schemas_validate_and_stop(client):
    n = int(os.environ.get("TANDEM_SCHEMA_EVAL_N", len(SCHEMAS)))
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda a: run_one(client, *a), enumerate(SCHEMAS[:n])))
    stopped = [r for r in results if r[1] == "stop"]
    for s, _, text, _ in stopped:
        jsonschema.validate(json.loads(text), s["schema"])
    tokens = sorted(r[3] for r in results)
    print(f"\n{len(stopped)}/{len(results)} stopped within 512 tokens; all {len(stopped)} valid; "
          f"completion tokens median {tokens[len(tokens) // 2]}, max {tokens[-1]}")
    assert len(stopped) >= 0.98 * len(results), [(r[0]["name"], r[1], r[3]) for r in results if r[1] != "stop"]


def test_logit_bias_toward_invalid_tokens_cannot_break_the_json(client, http):
    # Push hard toward tokens that would break JSON: prose, a code fence, a stray brace.
    ids = []
    for text in ["Sure", "```", " Here", "}", "Hello"]:
        ids += http.post("/tokenize", json={"model": "mini", "prompt": text}).json()["tokens"]
    bias = {str(t): 100 for t in set(ids)}
    schema = SCHEMAS[3]
    for seed in range(3):
        r = client.chat.completions.create(
            model="mini", messages=[{"role": "user", "content": schema["prompt"]}], max_tokens=256, seed=seed,
            temperature=0.7, logit_bias=bias,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema["schema"]}})
        c = r.choices[0]
        if c.finish_reason == "stop":
            jsonschema.validate(json.loads(c.message.content), schema["schema"])
        else:
            assert c.message.content.startswith("{")
    unconstrained = client.chat.completions.create(
        model="mini", messages=[{"role": "user", "content": schema["prompt"]}], max_tokens=8, temperature=0,
        logit_bias=bias)
    text = unconstrained.choices[0].message.content
    assert not text.startswith("{"), f"the bias alone must derail the output (got {text!r})"
