"""Starts a real `tandem serve` (the mini tier) on 127.0.0.1 for the whole session and points the
official OpenAI SDK at it. The server binary comes from TANDEM_BIN (scripts/test.sh sets it); see serverproc.py."""
import shutil
import signal
import tempfile

import httpx
import openai
import pytest

import serverproc


@pytest.fixture(scope="session")
def data_dir():
    d = tempfile.mkdtemp(prefix="tandem-conformance-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(data_dir):
    data = data_dir
    proc, base = serverproc.start("--models", "mini", "--parallel", "4", "--ctx-size", "1024", "--step-tokens", "256",
                                  "--default-max-tokens", "64", "--data-dir", data, "--drain-seconds", "10",
                                  "--cors-origin", "http://playground.test")
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
