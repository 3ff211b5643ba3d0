"""The OpenAI Agents SDK (openai-agents, pinned) running agents against a real tandem serve through the
Responses API: two function tools and a handoff. Tracing is off (it would post to the internet); the
model is named, temperature 0 with a seed. The test asserts the protocol — tool calls executed, their
outputs sent back, a handoff taken, a final message — not the mini's prose."""
import asyncio
import json
import os

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

from agents import (Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool,  # noqa: E402
                    set_tracing_disabled)
from agents.items import HandoffOutputItem, MessageOutputItem, ToolCallItem, ToolCallOutputItem  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

set_tracing_disabled(True)


def agents_for(server, calls):
    model = OpenAIResponsesModel(model="mini",
                                 openai_client=AsyncOpenAI(base_url=server + "/v1", api_key="unused", max_retries=0))

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        calls.append(("get_weather", city))
        return json.dumps({"city": city, "temp_c": 21, "sky": "sunny"})

    @function_tool
    def get_time(city: str) -> str:
        """Local time in a city."""
        calls.append(("get_time", city))
        return "14:05"

    def settings(choice):
        return ModelSettings(temperature=0, tool_choice=choice, parallel_tool_calls=False, max_tokens=200,
                             extra_body={"seed": 7})

    french = Agent(name="French agent", instructions="Answer in French, in one sentence.", model=model,
                   model_settings=ModelSettings(temperature=0, max_tokens=60, extra_body={"seed": 7}))
    tools = Agent(name="Assistant", instructions="Use the tools to answer.", tools=[get_weather, get_time],
                  handoffs=[french], model=model, model_settings=settings("required"))
    triage = Agent(name="Triage", instructions="Hand French speakers to the French agent.", handoffs=[french],
                   tools=[get_time], model=model, model_settings=settings("transfer_to_french_agent"))
    return tools, triage


def test_an_agent_calls_a_tool_gets_its_output_back_and_answers(server):
    calls = []
    tools, _ = agents_for(server, calls)
    r = asyncio.run(Runner.run(tools, "What is the weather in Lyon?", max_turns=4))
    kinds = [type(i) for i in r.new_items]
    assert kinds[:2] == [ToolCallItem, ToolCallOutputItem] and kinds[-1] == MessageOutputItem, kinds
    name = r.new_items[0].raw_item.name
    assert name in ("get_weather", "get_time") and calls and calls[0][0] == name, (name, calls)
    assert calls[0][1], "the tool got its argument"
    assert isinstance(r.final_output, str) and r.final_output
    assert r.last_agent.name == "Assistant"


def test_a_handoff_moves_the_conversation_to_the_other_agent(server):
    calls = []
    _, triage = agents_for(server, calls)
    r = asyncio.run(Runner.run(triage, "Bonjour ! Quelle heure est-il à Paris ?", max_turns=4))
    kinds = [type(i) for i in r.new_items]
    assert HandoffOutputItem in kinds, kinds
    assert r.last_agent.name == "French agent"
    assert kinds[-1] == MessageOutputItem and r.final_output
