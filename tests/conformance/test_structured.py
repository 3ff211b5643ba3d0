"""Structured outputs enforced by token masking: every sample parses and fits the schema, even at
temperature 1 on a 0.5B model; what cannot be enforced is refused with a 400 naming it."""
import json

import openai
import pydantic
import pytest

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "languages": {"type": "array", "items": {"type": "string", "enum": ["rust", "python", "go"]}, "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": PERSON}}
ASK = [{"role": "user", "content": "Invent a programmer and describe them."}]


def check_person(text):
    p = json.loads(text)
    assert set(p) == {"name", "age", "languages"}, p
    assert isinstance(p["name"], str) and len(p["name"]) <= 20
    assert isinstance(p["age"], int) and 0 <= p["age"] <= 150
    assert isinstance(p["languages"], list) and len(p["languages"]) <= 3
    assert all(x in ("rust", "python", "go") for x in p["languages"])
    return p


def test_json_schema_holds_for_every_sample(client):
    r = client.chat.completions.create(model="mini", messages=ASK, response_format=FORMAT, n=4, temperature=1.0,
                                       seed=7, max_tokens=80)
    for c in r.choices:
        assert c.finish_reason == "stop", c
        check_person(c.message.content)
        assert "\n" not in c.message.content, "whitespace is constrained"


def test_json_object_is_an_object(client):
    for seed in range(3):
        r = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "Three colours, please."}],
                                           response_format={"type": "json_object"}, temperature=1.0, seed=seed,
                                           max_tokens=60)
        if r.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_sdk_parse_with_a_pydantic_model(client):
    class Point(pydantic.BaseModel):
        x: int
        y: int
        label: str

    r = client.chat.completions.parse(model="mini", messages=[{"role": "user", "content": "A point on a map."}],
                                      response_format=Point, max_tokens=60, temperature=0)
    p = r.choices[0].message.parsed
    assert isinstance(p, Point)


def test_streamed_structured_output_assembles_to_valid_json(client):
    s = client.chat.completions.create(model="mini", messages=ASK, response_format=FORMAT, stream=True,
                                       max_tokens=80, temperature=0.7, seed=1)
    text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    check_person(text)


def test_completions_take_the_same_constraint(client):
    r = client.completions.create(model="mini", prompt="A user record:", max_tokens=80, temperature=1.0, seed=2,
                                  extra_body={"response_format": FORMAT})
    check_person(r.choices[0].text)


def test_unenforceable_schemas_are_refused_by_name(client):
    bad = {"type": "object", "properties": {"a": {"type": "string"}}, "if": {"required": ["a"]}, "then": {}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", messages=ASK, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": bad}})
    assert e.value.body["param"] == "response_format.json_schema.schema"
    assert "if" in e.value.body["message"] and "then" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", messages=ASK, response_format={"type": "json_schema",
                                                                                     "json_schema": {"schema": {}}})
    assert e.value.body["param"] == "response_format.json_schema.name"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", messages=ASK, response_format={"type": "yaml"})
    assert e.value.body["param"] == "response_format"


def test_mask_cost_is_measured(client, http):
    client.chat.completions.create(model="mini", messages=ASK, response_format=FORMAT, max_tokens=40)
    m = {line.split("{")[0]: float(line.split()[-1]) for line in http.get("/metrics").text.splitlines()
         if line.startswith("tandem_grammar_mask")}
    assert m["tandem_grammar_masks_total"] > 0 and m["tandem_grammar_mask_seconds_total"] > 0
