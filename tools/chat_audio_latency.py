"""Chat answers that talk: from the request, the time to the first text token of a plain stream
and to the first audio delta of the same request with modalities ["text", "audio"] (pcm16), and
the time from the first text token to the first audio. Medians of 5, against a running
`tandem serve` (default http://127.0.0.1:8080).

Run: python3 -m tools.chat_audio_latency [BASE_URL]
"""
import json
import statistics
import sys
import time

import httpx

PROMPT = "Tell me, in three short sentences, why the sky is blue."


def first(url, audio):
    body = {"model": "mini", "temperature": 0, "max_tokens": 80, "stream": True,
            "messages": [{"role": "user", "content": PROMPT}]}
    if audio:
        body.update(modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"})
    t = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            d = json.loads(line[6:])["choices"]
            delta = d[0]["delta"] if d else {}
            if (audio and delta.get("audio")) or (not audio and delta.get("content")):
                return time.perf_counter() - t
    return float("nan")


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    first(url, False)
    text = statistics.median(first(url, False) for _ in range(5))
    audio = statistics.median(first(url, True) for _ in range(5))
    print(f"first text token {text:.3f} s · first audio delta {audio:.3f} s · "
          f"first text → first audio {audio - text:.3f} s")


if __name__ == "__main__":
    main()
