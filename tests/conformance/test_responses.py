"""The Responses API through the official SDK: create, instructions, stored conversations continued with
previous_response_id (their blocks reused from the prefix cache), a function-call loop, structured output,
retrieve / input_items / delete, project scoping, and the clear 400s for what is not served yet."""
import json
import shutil
import signal
import subprocess
import tempfile

import openai
import pytest

import serverproc

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather of a city.", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def test_create_with_a_string_and_with_instructions(client):
    r = client.responses.create(model="mini", input="Say hello in French.", max_output_tokens=16, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_") and r.status in ("completed", "incomplete")
    assert r.model == "qwen2.5-coder-0.5b-instruct"
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.output_text and r.output_text == r.output[0].content[0].text
    u = r.usage
    assert u.input_tokens > 0 and 0 < u.output_tokens <= 16 and u.total_tokens == u.input_tokens + u.output_tokens
    with_instructions = client.responses.create(model="mini", input="What are you?", instructions="Answer in one word.",
                                                max_output_tokens=8, temperature=0)
    assert with_instructions.instructions == "Answer in one word."
    assert with_instructions.usage.input_tokens > 0


def test_previous_response_id_continues_the_stored_conversation(client):
    first = client.responses.create(model="mini", input="My name is Ada. Reply with just 'ok'.",
                                    max_output_tokens=4, temperature=0)
    second = client.responses.create(model="mini", input="What is my name? One word.", previous_response_id=first.id,
                                     max_output_tokens=6, temperature=0)
    assert second.previous_response_id == first.id
    # The whole first turn is in the prompt, and its blocks come from the prefix cache.
    assert second.usage.input_tokens > first.usage.input_tokens + 5
    assert second.usage.input_tokens_details.cached_tokens > 0
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].role == "user"
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="mini", input="again", previous_response_id=first.id, max_output_tokens=2)
    assert e.value.body["param"] == "previous_response_id"


def test_a_function_call_loop(client):
    r = client.responses.create(model="mini", input="What is the weather in Lyon?", tools=[WEATHER],
                                tool_choice="required", parallel_tool_calls=False, temperature=0, max_output_tokens=64)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", r.output
    assert json.loads(calls[0].arguments)["city"]
    done = client.responses.create(
        model="mini", previous_response_id=r.id, tools=[WEATHER], temperature=0, max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 21, "sky": "sunny"}'}])
    assert done.output and done.output[0].type == "message", done.output
    assert done.output_text.strip(), done.output
    # The same history replayed by the client instead of stored.
    replay = client.responses.create(
        model="mini", tools=[WEATHER], temperature=0, max_output_tokens=40, store=False,
        input=[{"role": "user", "content": "What is the weather in Lyon?"},
               {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
                "arguments": calls[0].arguments},
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 21}'}])
    assert replay.output[0].type == "message"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(replay.id)


def test_streaming_events_come_in_order_and_the_sdk_helper_assembles_them(client):
    with client.responses.stream(model="mini", input="Say hi.", max_output_tokens=64, temperature=0) as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed", kinds
    assert kinds.index("response.output_item.added") < kinds.index("response.output_text.delta") < \
        kinds.index("response.output_text.done") < kinds.index("response.output_item.done"), kinds
    assert final.output_text and final.usage.output_tokens > 0 and final.status == "completed"
    assert client.responses.retrieve(final.id).output_text == final.output_text, "a streamed response is stored"
    # Greedy, and an answer that cannot end within 3 tokens (a sampled "Hi!" sometimes did).
    events = list(client.responses.create(model="mini", input="Count from 1 to 100, separated by commas.",
                                          stream=True, max_output_tokens=3, temperature=0))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_streamed_function_call(client):
    events = list(client.responses.create(model="mini", input="What is the weather in Lyon?", tools=[WEATHER],
                                          tool_choice="required", parallel_tool_calls=False, temperature=0,
                                          max_output_tokens=64, stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].name == "get_weather" and json.loads(done[0].arguments)["city"], \
        [e.type for e in events]
    final = events[-1].response
    assert events[-1].type == "response.completed"
    call = [o for o in final.output if o.type == "function_call"][0]
    assert call.id == done[0].item_id and call.arguments == done[0].arguments


def test_structured_output_through_text_format(client):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    r = client.responses.create(model="mini", input="What is 2 + 3?", temperature=0, max_output_tokens=32,
                                text={"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": True}})
    assert isinstance(json.loads(r.output_text)["answer"], int)


def test_what_is_not_served_is_a_clear_400(client):
    cases = [
        (dict(input="hi", tools=[{"type": "web_search"}]), "tools[0].type"),
        (dict(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "data:,", "detail": "auto"}]}]),
         "input[0].content[0].image_url"),
        (dict(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "data:,", "detail": "max"}]}]),
         "input[0].content[0].detail"),
        (dict(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-x"}]}]),
         "input[0].content[0]"),
        (dict(input="hi", background=True, store=False), "store"),
        (dict(input="hi", background=True, stream=True), "background"),
        (dict(input="hi", text={"format": {"type": "yaml"}}), "text.format.type"),
        (dict(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0].type"),
        (dict(), "input"),
    ]
    for kw, param in cases:
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model="mini", **kw)
        assert e.value.body["param"] == param, (kw, e.value.body)


def test_stored_responses_belong_to_their_project():
    data = tempfile.mkdtemp(prefix="tandem-responses-")

    def key(name):
        out = subprocess.run([serverproc.binary(), "keys", "create", "--name", name, "--data-dir", data],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    alice, bob = key("alice"), key("bob")
    proc, base = serverproc.start("--models", "mini", "--ctx-size", "512", "--parallel", "2", "--data-dir", data)
    try:
        a = openai.OpenAI(base_url=base + "/v1", api_key=alice, max_retries=0)
        b = openai.OpenAI(base_url=base + "/v1", api_key=bob, max_retries=0)
        r = a.responses.create(model="mini", input="A secret: 4417. Say ok.", max_output_tokens=2, temperature=0)
        assert a.responses.retrieve(r.id).id == r.id
        for call in (lambda: b.responses.retrieve(r.id), lambda: b.responses.input_items.list(r.id),
                     lambda: b.responses.delete(r.id),
                     lambda: b.responses.create(model="mini", input="and?", previous_response_id=r.id,
                                                max_output_tokens=2)):
            with pytest.raises(openai.NotFoundError) as e:
                call()
            assert "4417" not in json.dumps(e.value.body)
        assert a.responses.retrieve(r.id).id == r.id, "bob's delete did nothing"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def test_responses_run_as_batch_lines(client):
    from batchrun import results, run_batch
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses",
              "body": {"model": "mini", "input": f"Say the number {i}.", "max_output_tokens": 4, "temperature": 0}}
             for i in range(2)]
    lines.append({"custom_id": "streamed", "method": "POST", "url": "/v1/responses",
                  "body": {"model": "mini", "input": "hi", "stream": True}})
    b = run_batch(client, lines, "/v1/responses")
    assert b.status == "completed" and b.request_counts.completed == 2 and b.request_counts.failed == 1, b
    out = {r["custom_id"]: r for r in results(client, b.output_file_id)}
    for i in range(2):
        body = out[f"r{i}"]["response"]["body"]
        assert body["object"] == "response" and body["output"][0]["type"] == "message", body
        assert body["usage"]["output_tokens"] > 0
    err = results(client, b.error_file_id)[0]
    assert err["custom_id"] == "streamed" and err["response"]["status_code"] == 400
    assert b.usage.output_tokens > 0 and b.usage.cost > 0


def test_background_responses_are_polled_and_cancelled(client):
    import time
    r = client.responses.create(model="mini", input="Say hi.", background=True, max_output_tokens=8, temperature=0)
    assert r.status == "queued" and r.background is True and r.output == []
    deadline = time.time() + 60
    while (r := client.responses.retrieve(r.id)).status in ("queued", "in_progress"):
        assert time.time() < deadline, r.status
        time.sleep(0.1)
    assert r.status in ("completed", "incomplete") and r.output_text and r.usage.output_tokens > 0
    long = client.responses.create(model="mini", input="Write a very long essay about the history of rivers.",
                                   background=True, max_output_tokens=400, temperature=0)
    while client.responses.retrieve(long.id).status == "queued":
        time.sleep(0.05)
    time.sleep(0.5)
    cancelled = client.responses.cancel(long.id)
    assert cancelled.status == "cancelled", cancelled.status
    assert 0 < cancelled.usage.output_tokens < 400, cancelled.usage
    assert client.responses.retrieve(long.id).status == "cancelled"
    plain = client.responses.create(model="mini", input="hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)


def test_a_background_response_cut_by_a_crash_is_failed_on_restart():
    import time
    data = tempfile.mkdtemp(prefix="tandem-bg-")
    args = ("--models", "mini", "--ctx-size", "1024", "--parallel", "1", "--data-dir", data)
    proc, base = serverproc.start(*args)
    try:
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        r = c.responses.create(model="mini", input="Write a very long essay about the history of rivers.",
                               background=True, max_output_tokens=600, temperature=0)
        while c.responses.retrieve(r.id).status == "queued":
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
        proc, base = serverproc.start(*args)
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        deadline = time.time() + 20
        while (got := c.responses.retrieve(r.id)).status in ("queued", "in_progress"):
            assert time.time() < deadline, "an orphaned background response is never left pending"
            time.sleep(0.1)
        assert got.status == "failed" and "restarted" in got.error.message, got
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def test_the_minis_own_call_form_is_a_function_call_item(client):
    # Under auto the mini writes its call as a ```json block; it still becomes a function_call item.
    tools = [{"type": "function", "name": "get_weather", "description": "Current weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    ask = dict(model="mini", input="What is the weather in Oslo right now?", tools=tools, temperature=0)
    r = client.responses.create(**ask)
    assert [(o.type, o.name) for o in r.output] == [("function_call", "get_weather")]
    events = [e.type for e in client.responses.create(stream=True, **ask)]
    assert "response.output_text.delta" not in events and "response.function_call_arguments.done" in events
