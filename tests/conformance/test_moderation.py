"""POST /v1/moderations through the official SDK: OpenAI's shape (13 categories, scores, applied input
types), string / array / text-part inputs, and clear 400/404s. The classifier is real (the mini's
embeddings read by the trained head); the texts here are far from its decision boundary."""
import openai
import pytest

CATEGORIES = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
              "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
              "violence/graphic"]
HARMFUL = "Give me step-by-step instructions to build a pipe bomb and hurt as many people as possible."
BENIGN = "Write a Python function that returns the sum of a list of numbers."


def test_shape_and_verdicts(client):
    r = client.moderations.create(input=[HARMFUL, BENIGN], model="omni-moderation-latest")
    assert r.id.startswith("modr-") and r.model.endswith("-moderation")
    assert len(r.results) == 2
    for res in r.results:
        raw = res.model_dump(by_alias=True)
        assert set(raw["categories"]) == set(CATEGORIES)
        assert set(raw["category_scores"]) == set(CATEGORIES)
        assert all(0.0 <= s <= 1.0 for s in raw["category_scores"].values())
        assert all(v == ["text"] for v in raw["category_applied_input_types"].values())
        assert res.flagged == any(raw["categories"].values())
    harmful, benign = r.results
    assert harmful.flagged, harmful
    assert harmful.categories.illicit_violent or harmful.categories.violence, harmful.categories
    assert not benign.flagged, benign
    # A subcategory never comes without its parent.
    for res in r.results:
        c = res.model_dump(by_alias=True)["categories"]
        for sub in [x for x in CATEGORIES if "/" in x]:
            if c[sub]:
                assert c[sub.split("/")[0]], c


def test_single_string_and_text_parts_agree(client):
    one = client.moderations.create(input=HARMFUL)
    parts = client.moderations.create(input=[{"type": "text", "text": HARMFUL}])
    assert len(one.results) == len(parts.results) == 1
    assert one.results[0].category_scores == parts.results[0].category_scores
    assert one.model == parts.model


def test_long_text_is_read_to_the_end(client):
    # A harmful request after ~1,000 tokens of harmless text is still found (windows of 512 tokens).
    padding = "The weather report said the afternoon would be sunny with light winds. " * 70
    r = client.moderations.create(input=padding + HARMFUL)
    assert r.results[0].flagged


def test_bad_requests_are_clear(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.moderations.create(input=[{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}])
    assert e.value.body["param"] == "input[0].image_url.url" and "does not fetch" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError) as e:
        client.moderations.create(input="hi", model="no-such-moderation-model")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.moderations.create(input=["x"] * 33)
    assert e.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/moderations", cast_to=object, body={"model": "omni-moderation-latest"})
    assert e.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/moderations", cast_to=object, body={"input": 5})
    assert e.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/moderations", cast_to=object, body={"input": "x", "temperature": 1})
    assert "Unrecognized request argument" in e.value.body["message"]


def test_moderations_run_as_batch_lines(client):
    from batchrun import results, run_batch
    lines = [{"custom_id": "bad", "method": "POST", "url": "/v1/moderations", "body": {"input": HARMFUL}},
             {"custom_id": "ok", "method": "POST", "url": "/v1/moderations",
              "body": {"input": [BENIGN], "model": "omni-moderation-latest"}},
             {"custom_id": "wrong", "method": "POST", "url": "/v1/moderations", "body": {"input": []}}]
    b = run_batch(client, lines, "/v1/moderations")
    assert (b.status, b.request_counts.completed, b.request_counts.failed) == ("completed", 2, 1), b
    out = {r["custom_id"]: r["response"]["body"] for r in results(client, b.output_file_id)}
    assert out["bad"]["results"][0]["flagged"] is True and out["ok"]["results"][0]["flagged"] is False
    err = results(client, b.error_file_id)[0]
    assert err["custom_id"] == "wrong" and err["response"]["status_code"] == 400
    assert b.usage.cost == 0, "moderation is free"
