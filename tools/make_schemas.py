"""Writes tests/conformance/data/schemas.json: 50 varied JSON schemas with a prompt each, for the
structured-output evaluation (tools/schema_eval.py, and a subset in the conformance suite).
Deterministic: built from fixed building blocks and a seeded RNG."""
import json
import pathlib
import random

rng = random.Random(20261127)

FIELDS = {
    "name": {"type": "string", "maxLength": 40},
    "title": {"type": "string", "minLength": 3, "maxLength": 60},
    "email": {"type": "string", "maxLength": 60},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
    "price": {"type": "number", "minimum": 0, "maximum": 10000},
    "score": {"type": "number", "minimum": -1, "maximum": 1},
    "rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
    "active": {"type": "boolean"},
    "status": {"type": "string", "enum": ["open", "closed", "pending"]},
    "color": {"type": "string", "enum": ["red", "green", "blue", "yellow"]},
    "language": {"type": "string", "enum": ["rust", "python", "go", "c", "java"]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 4},
    "scores": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100}, "maxItems": 5},
    "nickname": {"type": ["string", "null"], "maxLength": 30},
    "manager": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 30}]},
    "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                                 "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"], "additionalProperties": False},
    "point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
              "required": ["x", "y"], "additionalProperties": False},
    "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
        "type": "object", "properties": {"sku": {"type": "string", "maxLength": 12},
                                         "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
        "required": ["sku", "qty"], "additionalProperties": False}},
    "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
}
SUBJECTS = ["a library book", "a customer order", "a software release", "an employee", "a weather report",
            "a restaurant review", "a bug report", "a city", "a movie", "a chess player"]

schemas = []
names = list(FIELDS)
for i in range(50):
    k = rng.randint(2, 6)
    chosen = rng.sample(names, k)
    required = [f for f in chosen if rng.random() < 0.7] or [chosen[0]]
    props = {f: FIELDS[f] for f in chosen}
    if i % 10 == 9:  # some nesting two levels deep
        props["meta"] = {"type": "object", "properties": {"created": FIELDS["year"], "owner": FIELDS["name"],
                                                          "labels": FIELDS["tags"]},
                         "required": ["created"], "additionalProperties": False}
        required.append("meta")
    subject = SUBJECTS[i % len(SUBJECTS)]
    schemas.append({
        "name": f"s{i:02d}",
        "prompt": f"Describe {subject} as JSON with the fields {', '.join(props)}.",
        "schema": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
    })

out = pathlib.Path(__file__).resolve().parents[1] / "tests/conformance/data/schemas.json"
out.write_text(json.dumps(schemas, indent=1) + "\n")
print(f"wrote {len(schemas)} schemas to {out}")
