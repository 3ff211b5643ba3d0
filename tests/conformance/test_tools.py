"""Function calling through the official SDK: tool_choice honoured, calls always name a declared
function with arguments valid against its schema (enforced by the grammar, not hoped for)."""
import json

import openai
import pytest

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"],
                       "additionalProperties": False}}},
]
ASK = [{"role": "user", "content": "What is the weather in Oslo right now?"}]


def check_call(call):
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert set(args) == {"city", "unit"} and isinstance(args["city"], str) and args["unit"] in ("c", "f")
    else:
        assert call.function.name == "get_time" and set(args) == {"tz"} and isinstance(args["tz"], str)
    return args


def test_named_function_is_called_with_valid_arguments(client):
    for seed in range(3):
        r = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS, temperature=1.0, seed=seed,
                                           tool_choice={"type": "function", "function": {"name": "get_time"}},
                                           max_tokens=60)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        assert [t.function.name for t in c.message.tool_calls] == ["get_time"]
        check_call(c.message.tool_calls[0])
        assert c.message.content is None


def test_required_gives_exactly_one_call_without_parallel(client):
    r = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=False, temperature=0, max_tokens=80)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and len(c.message.tool_calls) == 1
    check_call(c.message.tool_calls[0])


def test_parallel_calls(client):
    r = client.chat.completions.create(model="mini", tools=TOOLS, tool_choice="required", temperature=0,
                                       messages=[{"role": "user", "content": "Weather in Oslo and in Paris?"}],
                                       max_tokens=120)
    calls = r.choices[0].message.tool_calls
    assert len(calls) >= 2
    for t in calls:
        check_call(t)
    assert len({t.id for t in calls}) == len(calls)


def test_none_means_no_calls(client):
    r = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=30)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_streamed_tool_call_deltas_assemble_in_the_sdk(client):
    with client.chat.completions.stream(model="mini", messages=ASK, tools=TOOLS, temperature=0, max_tokens=60,
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}}) as s:
        final = s.get_final_completion()
    c = final.choices[0]
    assert c.finish_reason == "tool_calls"
    args = check_call(c.message.tool_calls[0])
    assert c.message.tool_calls[0].function.name == "get_weather" and "oslo" in args["city"].lower()


def test_multi_turn_call_result_answer(client):
    first = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS, temperature=0, max_tokens=60,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    messages = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 7, "sky": "rain"})},
    ]
    r = client.chat.completions.create(model="mini", messages=messages, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=40)
    c = r.choices[0]
    assert c.message.tool_calls is None and c.message.content
    assert "7" in c.message.content or "rain" in c.message.content.lower()


def test_auto_answers_in_text_or_valid_calls(client):
    r = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS, tool_choice="auto", temperature=0,
                                       max_tokens=60)
    c = r.choices[0]
    if c.message.tool_calls:
        assert c.finish_reason == "tool_calls"
        for t in c.message.tool_calls:
            check_call(t)
    else:
        assert c.message.content


@pytest.mark.parametrize("kw,param", [
    (dict(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice"),
    (dict(tool_choice="required"), "tool_choice"),
    (dict(tools=[{"type": "retrieval"}]), "tools[0].type"),
    (dict(tools=[{"type": "function", "function": {"name": "has space"}}]), "tools[0].function.name"),
    (dict(tools=TOOLS, tool_choice="sometimes"), "tool_choice"),
])
def test_bad_tool_requests_name_the_parameter(client, kw, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", messages=ASK, max_tokens=5, **kw)
    assert e.value.body["param"] == param, e.value.body
