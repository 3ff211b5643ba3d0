"""Starting a real `tandem serve` for the tests: one way, shared by the session server and the
tests that need a server of their own (other flags)."""
import contextlib
import os
import pathlib
import shutil
import signal
import tempfile
import subprocess
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary():
    return os.environ.get("TANDEM_BIN") or str(ROOT / "target/release/tandem")


def start(*args, log=None, port=0, env=None):
    """`tandem serve --port PORT ARGS…` (0: any free port); returns (process, base URL) once it
    listens. Its stderr is drained in the background so it never blocks on a full pipe (into the
    file `log` if given)."""
    proc = subprocess.Popen([binary(), "serve", "--port", str(port), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=None if env is None else {**os.environ, **env})
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("tandem serve exited: " + proc.stderr.read())
            continue
        if "listening on" in line:
            def drain():
                if log is None:
                    proc.stderr.read()
                    return
                with open(log, "a") as f:
                    for line in proc.stderr:
                        f.write(line)
                        f.flush()
            threading.Thread(target=drain, daemon=True).start()
            return proc, line.strip().split("listening on ")[1]
    proc.kill()
    raise RuntimeError("tandem serve did not start within 120 s")


@contextlib.contextmanager
def serving(prefix, *args):
    """A `tandem serve ARGS… --data-dir TMP` for one test: yields (openai client, data dir); stopped
    with SIGTERM and its data dir removed afterwards."""
    import openai
    data = tempfile.mkdtemp(prefix=prefix)
    proc, base = start(*args, "--data-dir", data)
    try:
        yield openai.OpenAI(base_url=base + "/v1", api_key="sk-unused", max_retries=0, timeout=120), data
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
