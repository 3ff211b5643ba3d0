#!/usr/bin/env python3
"""Golden chat-template renderings by Python jinja2, configured as HF transformers renders chat
templates (trim_blocks, lstrip_blocks, loopcontrols, tojson = json.dumps(ensure_ascii=False)), after
normalising OpenAI messages as MODELS.md prescribes — implemented here independently of tandem.

    python3 -m tools.render_templates   # writes crates/text/tests/data/chat_golden.json"""
import json
import pathlib

import jinja2

DATA = pathlib.Path(__file__).resolve().parent.parent / "crates/text/tests/data"

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                                                               "unit": {"type": "string", "enum": ["c", "f"]}},
                               "required": ["city"]}}}

CASES = [
    ("user_only", [{"role": "user", "content": "Write a Python function that reverses a string."}], None, True),
    ("system_user", [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}], None, True),
    ("developer_becomes_system", [{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": "hello"}], None, True),
    ("system_and_developer_merged", [{"role": "system", "content": "Be safe."}, {"role": "developer", "content": "Be brief."},
                                     {"role": "user", "content": "what is 2+2?"}], None, True),
    ("multi_turn", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "tell me a joke"}], None, True),
    ("content_parts", [{"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part"}]}], None, True),
    ("no_generation_prompt", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], None, False),
    ("tools_no_system", [{"role": "user", "content": "Weather in Paris?"}], [WEATHER_TOOL], True),
    ("tool_round_trip", [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Zürich, in celsius?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Zürich\", \"unit\": \"c\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        {"role": "tool", "tool_call_id": "call_2", "content": "second result"},
        {"role": "user", "content": "thanks"},
    ], [WEATHER_TOOL], True),
    ("special_looking_user_text", [{"role": "user", "content": "print('<|im_start|>system\\nhi<|im_end|>') <tool_call> </tool_call>"}], None, True),
    ("unicode", [{"role": "user", "content": "héllo 世界 🦀 ﷽ e\u0301 \t tabs\n\n  spaces"}], None, True),
    ("mid_conversation_system", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"},
                                 {"role": "system", "content": "From now on, answer in Spanish."}, {"role": "user", "content": "how are you?"}], None, True),
]


def normalize(messages):
    out, leading = [], None
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        c = m.get("content")
        if c is None:
            c = ""
        elif isinstance(c, list):
            c = "\n".join(p["text"] for p in c)
        if role == "system" and not out:
            leading = c if leading is None else leading + "\n\n" + c
            continue
        if leading is not None:
            out.append({"role": "system", "content": leading})
            leading = None
        n = {"role": role, "content": c}
        if "tool_calls" in m:
            calls = []
            for call in m["tool_calls"]:
                call = json.loads(json.dumps(call))
                try:
                    call["function"]["arguments"] = json.loads(call["function"]["arguments"])
                except (KeyError, TypeError, ValueError):
                    pass
                calls.append(call)
            n["tool_calls"] = calls
        if "tool_call_id" in m:
            n["tool_call_id"] = m["tool_call_id"]
        out.append(n)
    if leading is not None:
        out.append({"role": "system", "content": leading})
    return out


def environment():
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    golden = []
    for tier in ["mini", "flagship"]:
        tmpl = env.from_string((DATA / f"{tier}.jinja").read_text())
        for name, messages, tools, agp in CASES:
            ctx = {"messages": normalize(messages), "add_generation_prompt": agp, "bos_token": "", "eos_token": "<|im_end|>"}
            if tools:
                ctx["tools"] = tools
            golden.append({"template": tier, "name": name, "messages": messages, "tools": tools,
                           "add_generation_prompt": agp, "expected": tmpl.render(**ctx)})
    (DATA / "chat_golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(golden)} renderings")


if __name__ == "__main__":
    main()
