"""/v1/audio/speech on the Piper voice through the official SDK: every response format (mp3 by
default), both stream formats, speed, OpenAI's model and voice names, the round trip through
Whisper, and the 400s naming the field (unknown voice, unknown model, unknown format, oversized input)."""
import base64
import io
import json
import wave

import pytest

SAID = "The quick brown fox jumps over the lazy dog."


def speak(client, **kw):
    args = {"model": "tts-1", "voice": "alloy", "input": SAID}
    args.update(kw)
    return client.audio.speech.create(**args).content


def test_mp3_by_default_and_every_format(client):
    mp3 = speak(client)
    assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0)
    wav = speak(client, response_format="wav")
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        seconds = w.getnframes() / 22050
    assert 1.5 < seconds < 5
    pcm = speak(client, response_format="pcm")
    # OpenAI's pcm: 24 kHz 16-bit. (Durations vary a little between calls: the voice samples them.)
    assert len(pcm) % 2 == 0 and 0.8 * seconds < len(pcm) / 2 / 24000 < 1.25 * seconds
    assert speak(client, response_format="flac")[:4] == b"fLaC"
    opus = speak(client, response_format="opus")
    assert opus[:4] == b"OggS" and b"OpusHead" in opus[:64]


@pytest.mark.parametrize("fmt", ["wav", "aac", "flac", "mp3"])
def test_spoken_words_are_heard_back(client, fmt):
    """Each encoding decodes (by the server's own decoder) to the same words."""
    audio = speak(client, response_format=fmt)
    if fmt == "aac":
        assert audio[0] == 0xFF and audio[1] & 0xF6 == 0xF0  # ADTS sync word, layer 0
    r = client.audio.transcriptions.create(model="whisper-tiny-en", file=(f"s.{fmt}", audio))
    # The voice samples its noise (Piper's noise_scale 0.667), so each synthesis differs a little
    # and Whisper tiny sometimes hears one word differently ("quit" for "quick"): one word of nine
    # may differ, position by position.
    heard, said = r.text.lower().strip(" .").split(), SAID.lower().strip(" .").split()
    assert len(heard) == len(said) and sum(a != b for a, b in zip(heard, said)) <= 1, r.text


def test_aac_streams_as_adts_frames(client):
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="echo", input="One sentence. And another one.", response_format="aac",
            extra_body={"stream_format": "audio"}) as r:
        assert r.headers["content-type"] == "audio/aac"
        body = b"".join(r.iter_bytes())
    assert body[0] == 0xFF and body[1] & 0xF6 == 0xF0 and len(body) > 2000


def test_speed_changes_the_length(client):
    def secs(speed):
        with wave.open(io.BytesIO(speak(client, response_format="wav", speed=speed))) as w:
            return w.getnframes() / 22050
    assert secs(2.0) < 0.7 * secs(1.0)


def test_audio_stream_arrives_in_sentences(client):
    text = "First sentence here. Second sentence there. And a third one."
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="nova", input=text, response_format="pcm",
            extra_body={"stream_format": "audio"}) as r:
        chunks = [c for c in r.iter_bytes() if c]
    assert len(chunks) >= 3 and sum(map(len, chunks)) > 24000 * 2 * 2


def test_sse_stream(http):
    r = http.post("/v1/audio/speech", json={"model": "gpt-4o-mini-tts", "voice": "coral", "input": "One. Two.",
                                            "stream_format": "sse", "response_format": "pcm"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(l[6:]) for l in r.text.splitlines() if l.startswith("data: ")]
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    assert all(e["type"] == "speech.audio.delta" and e["audio"] for e in events[:-1]) and len(events) >= 3
    assert events[-1]["usage"]["input_tokens"] == len("One. Two.")


@pytest.mark.parametrize("body, param, status", [
    ({"model": "tts-1", "voice": "robot", "input": "hi"}, "voice", 400),
    ({"model": "tts-9", "voice": "alloy", "input": "hi"}, "model", 404),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "m4a"}, "response_format", 400),
    ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, "input", 400),
    ({"model": "tts-1", "voice": "alloy", "input": ""}, "input", 400),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}, "speed", 400),
    ({"model": "tts-1", "input": "hi"}, "voice", 400),
])
def test_bad_requests_name_the_field(http, body, param, status):
    r = http.post("/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_chat_answers_that_talk(client):
    """modalities ["text", "audio"]: the answer spoken into message.audio (content null, the words
    in audio.transcript); a later turn names it by id."""
    r = client.chat.completions.create(model="mini", temperature=0, max_tokens=20,
                                       modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"},
                                       messages=[{"role": "user", "content": "Say hello in one short sentence."}])
    m = r.choices[0].message
    assert m.content is None and m.audio.transcript.strip()
    with wave.open(io.BytesIO(base64.b64decode(m.audio.data))) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 2000
    assert m.audio.expires_at > r.created
    again = client.chat.completions.create(model="mini", temperature=0, max_tokens=5, messages=[
        {"role": "user", "content": "Say hello in one short sentence."},
        {"role": "assistant", "audio": {"id": m.audio.id}},
        {"role": "user", "content": "Thanks."}])
    assert again.choices[0].message.content is not None


def test_chat_audio_streams_while_the_text_is_written(client):
    stream = client.chat.completions.create(
        model="mini", temperature=0, max_tokens=60, stream=True, modalities=["text", "audio"],
        audio={"voice": "nova", "format": "pcm16"},
        messages=[{"role": "user", "content": "Write two short sentences about the sea."}])
    chunks = [c for c in stream if c.choices]
    audio = [c.choices[0].delta.audio for c in chunks if c.choices[0].delta.audio]
    assert audio and all(p.id == audio[0].id for p in audio)
    # As OpenAI orders them: the finish reason after the choice's last audio.
    assert chunks[-1].choices[0].finish_reason and not chunks[-1].choices[0].delta.audio
    assert chunks[-2].choices[0].delta.audio and chunks[-2].choices[0].delta.audio.expires_at
    assert sum(len(base64.b64decode(p.data)) for p in audio) > 24000  # > 0.5 s of pcm16
    assert "".join(p.transcript for p in audio).strip() and audio[-1].expires_at


def test_each_streamed_choice_speaks_under_its_own_id(client):
    stream = client.chat.completions.create(
        model="mini", temperature=1, seed=3, n=2, max_tokens=12, stream=True, modalities=["text", "audio"],
        audio={"voice": "nova", "format": "pcm16"},
        messages=[{"role": "user", "content": "Name a colour in one short sentence."}])
    ids = {}
    for c in stream:
        for ch in c.choices:
            if ch.delta.audio and getattr(ch.delta.audio, "id", None):
                ids.setdefault(ch.index, set()).add(ch.delta.audio.id)
    assert sorted(ids) == [0, 1] and all(len(v) == 1 for v in ids.values())
    assert ids[0] != ids[1]


@pytest.mark.parametrize("extra, param", [
    ({"modalities": ["text", "audio"]}, "audio"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "robot", "format": "wav"}}, "audio.voice"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}, "stream": True}, "audio.format"),
    ({"messages": [{"role": "assistant", "audio": {"id": "audio_nope"}}, {"role": "user", "content": "hi"}]},
     "messages[0].audio.id"),
])
def test_bad_chat_audio_names_the_field(http, extra, param):
    body = {"model": "mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    body.update(extra)
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
