"""/v1/audio/transcriptions and /translations on Whisper tiny.en through the official SDK: every
response format, streaming (a delta per 30-s window, before the next window is decoded), the usage shapes of whisper-1 and the gpt-4o transcribe names, each input container
word timestamps, prompts, temperature and token logprobs (wav, 44.1 kHz stereo flac, mp3, ogg/vorbis, m4a/aac, ogg/opus, stereo webm/opus — re-encodings of a pocketsphinx-testdata clip,
tests/data/audio/README.md), corrupt, empty and oversized audio, and the 400/404s naming the field."""
import io
import os

import httpx
import openai
import pytest

DATA = os.path.join(os.path.dirname(__file__), "../data/audio")
CLIP = "sense_and_sensibility_01_austen_64kb-0930"
SAID = "He might even have been made amiable himself."


def audio(name):
    return open(os.path.join(DATA, name), "rb")


def test_json_text_and_usage_in_seconds(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"))
    assert r.text == SAID
    assert r.usage.type == "duration" and r.usage.seconds == 4  # 3.3 s, rounded up as OpenAI does
    text = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"), response_format="text")
    assert text.strip() == SAID


def test_gpt4o_names_report_tokens(client):
    r = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=audio(CLIP + ".wav"))
    assert r.text == SAID
    u = r.usage
    assert u.type == "tokens" and u.input_tokens == 165 and u.input_token_details.audio_tokens == 165
    assert u.output_tokens > 5 and u.total_tokens == u.input_tokens + u.output_tokens


def test_verbose_json_srt_and_vtt_carry_segments(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"),
                                           response_format="verbose_json", timestamp_granularities=["segment"])
    assert (r.task, r.language, r.text) == ("transcribe", "english", SAID)
    assert 3.2 < r.duration < 3.4
    seg = r.segments[0]
    assert seg.id == 0 and seg.start < 1.0 < seg.end <= 3.4 and seg.tokens and seg.temperature == 0
    assert seg.avg_logprob < 0 and 0 <= seg.no_speech_prob < 0.5 and seg.compression_ratio > 0
    srt = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"), response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> 00:00:0" in srt and SAID in srt
    vtt = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:0") and ".000 --> " not in vtt.split("\n")[0] and SAID in vtt


def test_word_timestamps(client):
    r = client.audio.transcriptions.create(model="whisper-tiny-en", file=audio(CLIP + ".wav"),
                                           response_format="verbose_json", timestamp_granularities=["word"])
    assert r.text == SAID and not r.segments
    words = r.words
    assert " ".join(w.word for w in words) == SAID
    assert all(w.start <= w.end for w in words)
    assert all(a.end <= b.start + 0.02 for a, b in zip(words, words[1:]))
    assert 0 <= words[0].start < 1.2 and 2.0 < words[-1].end <= 3.4
    both = client.audio.transcriptions.create(model="whisper-tiny-en", file=audio(CLIP + ".wav"),
                                              response_format="verbose_json",
                                              timestamp_granularities=["word", "segment"])
    assert both.segments and [w.word for w in both.words] == [w.word for w in words]


def test_temperature_and_token_logprobs(client):
    """A temperature above 0 samples (seeded: the same file gives the same text) and is reported
    per segment; include[]=logprobs gives each text token with its log-probability and bytes."""
    a = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"), temperature=0.3,
                                           response_format="verbose_json")
    b = client.audio.transcriptions.create(model="whisper-1", file=audio(CLIP + ".wav"), temperature=0.3,
                                           response_format="verbose_json")
    assert a.text and a.text == b.text and all(abs(s.temperature - 0.3) < 1e-6 for s in a.segments)
    r = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=audio(CLIP + ".wav"),
                                           include=["logprobs"])
    assert r.text == SAID
    lp = r.logprobs
    assert "".join(t.token for t in lp).strip() == SAID
    assert all(t.logprob <= 0 and bytes(int(b) for b in t.bytes).decode() == t.token for t in lp)


def test_a_prompt_steers_what_the_speech_leaves_open(client):
    clip = audio("sense_and_sensibility_01_austen_64kb-0880.wav")
    plain = client.audio.transcriptions.create(model="whisper-tiny-en", file=clip)
    assert plain.text == "He was not an old-sposed young man."
    clip = audio("sense_and_sensibility_01_austen_64kb-0880.wav")
    r = client.audio.transcriptions.create(model="whisper-tiny-en", file=clip,
                                           prompt="Sense and Sensibility: ill-disposed, cold-hearted, amiable.")
    assert r.text == "He was not an ill-disposed young man."


@pytest.mark.parametrize("name", [CLIP + "-44k-stereo.flac", CLIP + ".mp3", CLIP + ".ogg", CLIP + ".m4a",
                                  CLIP + ".opus.ogg", CLIP + "-stereo.webm"])
def test_every_container_and_rate_is_heard(client, name):
    r = client.audio.transcriptions.create(model="whisper-1", file=audio(name))
    assert r.text.lower().rstrip(".") == SAID.lower().rstrip("."), name


@pytest.mark.parametrize("body, param, status", [
    ({"model": "whisper-1", "file": ("x.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")}, "file", 400),
    ({"model": "whisper-1", "file": ("x.mp3", os.urandom(2048))}, "file", 400),
    ({"model": "whisper-1"}, "file", 400),
    ({"file": ("a.wav", b"x")}, "model", 400),
    ({"model": "whisper-9", "file": ("a.wav", b"x")}, "model", 404),
    ({"model": "whisper-1", "file": ("a.wav", b"x"), "response_format": "xml"}, "response_format", 400),
    ({"model": "whisper-tiny-en", "file": ("a.wav", b"x"), "language": "fr"}, "language", 400),
    ({"model": "whisper-tiny-en", "file": ("a.wav", b"x"), "language": "xx"}, "language", 400),
    ({"model": "whisper-1", "file": ("a.wav", b"x"), "timestamp_granularities[]": "word"},
     "timestamp_granularities", 400),
    ({"model": "whisper-1", "file": ("a.wav", b"x"), "temperature": "7"}, "temperature", 400),
    ({"model": "whisper-1", "file": ("a.wav", b"x"), "include[]": "segments"}, "include", 400),
    ({"model": "whisper-1", "file": ("a.wav", b"x"), "include[]": "logprobs", "response_format": "text"},
     "include", 400),
])
def test_bad_requests_name_the_field(http, body, param, status):
    # Always multipart (as the SDK sends it), with or without a file part.
    parts = [(k, v if k == "file" else (None, v)) for k, v in body.items()]
    r = http.post("/v1/audio/transcriptions", files=parts)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param, r.json()


def test_oversized_audio_is_refused(http):
    r = http.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                  files={"file": ("big.wav", b"\0" * (26 << 20))})
    assert r.status_code == 413, r.text


def test_translation_says_the_model_is_english_only(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.translations.create(model="whisper-tiny-en", file=audio(CLIP + ".wav"))
    assert "English-only" in e.value.body["message"]


def test_the_speech_model_is_listed(client):
    assert "whisper-tiny-en" in {m.id for m in client.models.list().data}
    # whisper-1 means base when `tandem pull speech-base` put it in the cache (CI has tiny.en only).
    assert client.models.retrieve("whisper-1").id in ("whisper-tiny-en", "whisper-base")
    assert client.models.retrieve("gpt-4o-mini-transcribe").id == "whisper-tiny-en"


def b64(name):
    import base64
    return base64.b64encode(open(os.path.join(DATA, name), "rb").read()).decode()


def test_spoken_input_in_chat_reaches_the_tier_as_its_transcript(client, http):
    """The tier answers the words: asked (by voice) to repeat what was said, the mini's greedy answer
    contains the sentence; /tokenize of the same messages with the transcript as text shows the
    prompt the tier saw."""
    spoken = [{"type": "text", "text": "Repeat exactly what this recording says:"},
              {"type": "input_audio", "input_audio": {"data": b64(CLIP + ".mp3"), "format": "mp3"}}]
    r = client.chat.completions.create(model="gpt-4o-mini-audio-preview", temperature=0, max_tokens=30,
                                       messages=[{"role": "user", "content": spoken}])
    assert r.model == "qwen2.5-coder-0.5b-instruct"
    assert "amiable himself" in r.choices[0].message.content.lower(), r.choices[0].message.content
    written = [{"type": "text", "text": "Repeat exactly what this recording says:"}, {"type": "text", "text": SAID}]
    w = client.chat.completions.create(model="mini", temperature=0, max_tokens=30,
                                       messages=[{"role": "user", "content": written}])
    assert w.usage.prompt_tokens == r.usage.prompt_tokens
    assert w.choices[0].message.content == r.choices[0].message.content


@pytest.mark.parametrize("part, param", [
    ({"data": "!!notbase64", "format": "wav"}, "messages[0].content[0].input_audio.data"),
    ({"data": "", "format": "flac"}, "messages[0].content[0].input_audio.format"),
    ({"format": "wav"}, "messages[0].content[0].input_audio.data"),
    ({"data": "UklGRgAAAABXQVZF", "format": "wav"}, "messages[0].content[0].input_audio.data"),
])
def test_bad_audio_parts_name_the_field(client, part, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mini", max_tokens=2, messages=[
            {"role": "user", "content": [{"type": "input_audio", "input_audio": part}]}])
    assert e.value.body["param"] == param, e.value.body


def test_streaming_sends_each_window_before_the_next_is_decoded(client, tmp_path):
    """75 s of speech (the five long clips three times): the first delta arrives well before the
    whole is done — each window is sent as soon as it is decoded — and the deltas add up to the text."""
    import time
    import wave
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        for _ in range(3):
            for c in ("0870", "0880", "0890", "0920", "0930"):
                with wave.open(os.path.join(DATA, f"sense_and_sensibility_01_austen_64kb-{c}.wav")) as w:
                    out.writeframes(w.readframes(w.getnframes()))
    start = time.time()
    stream = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=open(path, "rb"), stream=True)
    arrivals, deltas, done = [], [], None
    for e in stream:
        if e.type == "transcript.text.delta":
            arrivals.append(time.time() - start)
            deltas.append(e.delta)
        elif e.type == "transcript.text.done":
            done = e
            end = time.time() - start
    assert done is not None and len(deltas) >= 3, deltas
    assert "".join(deltas).strip() == done.text and done.text.lower().count("dashwood") == 3
    assert done.usage.type == "tokens" and done.usage.input_tokens > 3500
    # Each window takes a similar time: the first delta comes within the first half of the wait.
    assert arrivals[0] < end / 2, (arrivals, end)
