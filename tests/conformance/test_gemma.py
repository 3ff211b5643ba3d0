"""A model of a second architecture served beside the tiers: Gemma 3 270M (base), pulled by the
README's test command (`tandem pull gemma3-270m`), through the official SDK. Greedy text is the
model's (its first token equals the numpy reference's top-1, `model_gemma3`)."""
import pytest

import serverproc


@pytest.fixture(scope="module")
def gemma():
    with serverproc.serving("tandem-gemma-", "--models", "mini,gemma3-270m", "--parallel", "2",
                            "--ctx-size", "512") as (client, _):
        yield client


def test_it_is_listed(gemma):
    ids = [m.id for m in gemma.models.list().data]
    # Listed by its canonical id, as the tiers are.
    assert "gemma-3-270m" in ids, ids


def test_a_completion_starts_with_bos_and_continues_the_text(gemma):
    r = gemma.completions.create(model="gemma3-270m", prompt="The capital of France is", max_tokens=8,
                                 temperature=0)
    # 5 text tokens and the BOS the model expects.
    assert r.usage.prompt_tokens == 6, r.usage
    assert r.choices[0].text.startswith(" the capital of"), r.choices[0].text
    assert r.choices[0].finish_reason == "length"


def test_chat_uses_the_gemma_turn_format_and_streams(gemma):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
    r = gemma.chat.completions.create(model="gemma3-270m", messages=msgs, max_tokens=6, temperature=0)
    # <bos><start_of_turn>user\nBe brief.\n\nSay hello.<end_of_turn>\n<start_of_turn>model\n
    assert r.usage.prompt_tokens == 16, r.usage
    assert r.choices[0].message.content
    chunks = list(gemma.chat.completions.create(model="gemma3-270m", messages=msgs, max_tokens=6,
                                                temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
