"""Settings, once: flags, TANDEM_* variables and tandem.toml with one precedence, shown by `tandem config`;
JSON log lines."""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import httpx

import serverproc


def test_config_shows_each_value_and_where_it_came_from(tmp_path):
    (tmp_path / "tandem.toml").write_text('port = 9100\nparallel = 2\noperator_prompt = "be terse"\n')
    env = {**os.environ, "TANDEM_PARALLEL": "3", "TANDEM_CTX_SIZE": "2048"}
    out = subprocess.run([os.path.abspath(serverproc.binary()), "config", "--ctx-size", "1024"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["ctx_size"] == ["1024", "flag"], "a flag beats the environment"
    assert rows["parallel"] == ["3", "env"], "the environment beats the file"
    assert rows["port"] == ["9100", "file"], "the file beats the default"
    assert rows["host"] == ['"127.0.0.1"', "default"]
    assert "be terse" not in out.stdout and rows["operator_prompt"][-1] == "file", "secrets are masked"
    bad = subprocess.run([os.path.abspath(serverproc.binary()), "config"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, env={**os.environ, "TANDEM_PORT": "not-a-port"})
    assert bad.returncode != 0 and "not-a-port" in bad.stderr, bad.stderr


def test_json_log_lines_carry_the_request_and_never_the_body():
    data = tempfile.mkdtemp(prefix="tandem-log-")
    log = os.path.join(data, "server.log")
    proc, base = serverproc.start("--models", "mini", "--ctx-size", "256", "--parallel", "1", "--data-dir", data,
                                  "--log-format", "json", log=log)
    try:
        secret = "PROMPT-MUST-NOT-BE-LOGGED-31d"
        r = httpx.post(base + "/v1/chat/completions", headers={"x-request-id": "trace-json-1"},
                       json={"model": "mini", "messages": [{"role": "user", "content": secret}], "max_tokens": 1})
        assert r.status_code == 200 and r.headers["x-request-id"] == "trace-json-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = [json.loads(x) for x in open(log) if x.startswith("{")]
    hit = [x for x in lines if x.get("request_id") == "trace-json-1"]
    assert hit and hit[0]["path"] == "/v1/chat/completions" and hit[0]["status"] == 200, lines[-3:]
    assert secret not in open(log).read()
    shutil.rmtree(data, ignore_errors=True)


def test_tandem_chat_streams_keeps_history_and_takes_commands(server):
    script = "\n".join(["/model", "Reply with the single word: pong", "/history", "/system Be brief.",
                        "/model gpt-4o-mini", "What did I ask you to reply?", "/history", "/clear", "/history",
                        "/model no-such-model", "hello", "/exit", "never sent"]) + "\n"
    out = subprocess.run([os.path.abspath(serverproc.binary()), "chat", "--url", server, "--max-tokens", "12",
                          "--temperature", "0"], input=script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [x.removeprefix("> ").strip() for x in out.stdout.splitlines()]
    assert "(model: mini)" in lines and "(model: gpt-4o-mini)" in lines
    assert lines.count("(2 messages)") == 1 and "(4 messages)" in lines, lines
    assert "(conversation cleared)" in lines and "(0 messages)" in lines
    assert any("(error: HTTP 404" in x and "no-such-model" in x for x in lines), lines
    assert "never sent" not in out.stdout
