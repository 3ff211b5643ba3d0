"""`tandem serve --tls-cert/--tls-key`: HTTPS with a self-signed certificate made here by openssl."""
import shutil
import ssl
import subprocess

import httpx
import openai
import pytest

import serverproc


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_with_the_official_client(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    proc, base = serverproc.start("--models", "mini", "--parallel", "1", "--ctx-size", "512", "--tls-cert", cert,
                                  "--tls-key", key, "--data-dir", tmp_path / "data")
    try:
        assert base and base.startswith("https://")
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0,
                               http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=60))
        r = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert r.choices[0].message.content
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https://", "http://") + "/health", timeout=5)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
