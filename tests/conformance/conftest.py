"""Starts a real `tandem serve` (the mini tier) on 127.0.0.1 for the whole session and points the
official OpenAI SDK at it. The server binary comes from TANDEM_BIN (scripts/test.sh sets it)."""
import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time

import httpx
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("TANDEM_BIN") or str(ROOT / "target/release/tandem")
    data = tempfile.mkdtemp(prefix="tandem-conformance-")
    proc = subprocess.Popen(
        [binary, "serve", "--port", "0", "--models", "mini", "--parallel", "4", "--ctx-size", "1024",
         "--step-tokens", "256", "--default-max-tokens", "64", "--data-dir", data, "--drain-seconds", "10",
         "--cors-origin", "http://playground.test"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("tandem serve exited: " + proc.stderr.read())
            continue
        if "listening on" in line:
            base = line.strip().split("listening on ")[1]
            break
    assert base, "the server did not start"
    # Keep draining stderr so the server never blocks on a full pipe.
    errors = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, "SIGTERM should end the server cleanly"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="sk-unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server, timeout=120) as c:
        yield c
