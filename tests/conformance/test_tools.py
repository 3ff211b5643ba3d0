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


# The tiers' own habits (issue: auto, runaway parallel calls, code kept as text).
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                   "required": ["a", "b"]}}}
CODE = [{"role": "user", "content": "Complete this Python function and explain it briefly:\n"
                                    "```python\ndef is_even(n):\n```"}]
JSON_ANSWER = [{"role": "user", "content": "Show me how a city with its name, country and population would look as JSON."}]


def test_auto_reads_the_minis_own_call_forms(client):
    # Under auto the mini writes its calls as a ```json block or a bare object, not <tool_call> tags.
    for messages, tools, name in [(ASK, TOOLS, "get_weather"),
                                  ([{"role": "user", "content": "What is 2+2?"}], [ADD], "add")]:
        r = client.chat.completions.create(model="mini", messages=messages, tools=tools, temperature=0, max_tokens=80)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls" and c.message.content is None, c
        assert [t.function.name for t in c.message.tool_calls] == [name]
        if name == "get_weather":
            assert "oslo" in check_call(c.message.tool_calls[0])["city"].lower()
        else:
            assert json.loads(c.message.tool_calls[0].function.arguments) == {"a": 2, "b": 2}


def test_auto_parallel_calls_go_on_after_the_minis_own_form(client):
    # The mini writes one ```json call and would end; the server lets it go on with tags while the
    # calls add something.
    r = client.chat.completions.create(model="mini", tools=TOOLS + [ADD], temperature=0, max_tokens=300,
                                       messages=[{"role": "user", "content": "Weather in Oslo and in Paris?"}])
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.content is None, c
    assert sorted(check_call(t)["city"].lower() for t in c.message.tool_calls) == ["oslo", "paris"]


def test_required_parallel_calls_end_by_themselves(client):
    one = client.chat.completions.create(model="mini", messages=ASK, tools=TOOLS + [ADD], tool_choice="required",
                                         temperature=0, max_tokens=300)
    c = one.choices[0]
    assert c.finish_reason == "tool_calls" and len(c.message.tool_calls) == 1, c
    assert one.usage.completion_tokens < 100
    two = client.chat.completions.create(model="mini", tools=TOOLS + [ADD], tool_choice="required", temperature=0,
                                         messages=[{"role": "user", "content": "Weather in Oslo and in Paris?"}],
                                         max_tokens=300)
    c = two.choices[0]
    assert c.finish_reason == "tool_calls", c
    cities = sorted(check_call(t)["city"].lower() for t in c.message.tool_calls)
    assert cities == ["oslo", "paris"]


def test_code_and_json_answers_stay_text_with_tools_declared(client):
    for messages, start in [(CODE, "```python"), (JSON_ANSWER, "```json")]:
        r = client.chat.completions.create(model="mini", messages=messages, tools=TOOLS + [ADD], temperature=0,
                                           max_tokens=120)
        c = r.choices[0]
        assert c.message.tool_calls is None and c.finish_reason in ("stop", "length"), c
        assert c.message.content.startswith(start)


def chunks(client, **kw):
    with client.chat.completions.stream(model="mini", temperature=0, **kw) as s:
        events = [e for e in s if e.type == "content.delta" and e.delta]
        return events, s.get_final_completion()


def test_streams_hold_text_only_while_a_call_is_possible(client):
    # A call in the mini's own form: no text goes out, the call comes as tool_calls deltas.
    events, final = chunks(client, messages=ASK, tools=TOOLS, max_tokens=80)
    c = final.choices[0]
    assert events == [] and c.finish_reason == "tool_calls"
    assert c.message.tool_calls[0].function.name == "get_weather"
    # Tags (required): the same.
    events, final = chunks(client, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=200)
    assert events == [] and final.choices[0].finish_reason == "tool_calls"
    # Code and JSON answers stream as they come: released once they cannot be calls.
    for messages in (CODE, JSON_ANSWER):
        events, final = chunks(client, messages=messages, tools=TOOLS + [ADD], max_tokens=120)
        plain = client.chat.completions.create(model="mini", messages=messages, tools=TOOLS + [ADD], temperature=0,
                                               max_tokens=120)
        assert final.choices[0].message.tool_calls is None
        assert len(events) > 10, "held back to the end"
        assert "".join(e.delta for e in events) == plain.choices[0].message.content
