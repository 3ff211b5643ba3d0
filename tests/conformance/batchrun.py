"""Running a batch through the SDK for tests: upload the lines, create the batch, wait for its end."""
import io
import json
import time


def run_batch(client, lines, endpoint, timeout=120):
    """The finished batch (completed or failed) of `lines` (request dicts) against `endpoint`."""
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    f = client.files.create(file=("lines.jsonl", io.BytesIO(body)), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h")
    deadline = time.time() + timeout
    while (b := client.batches.retrieve(b.id)).status not in ("completed", "failed", "cancelled", "expired"):
        assert time.time() < deadline, b.status
        time.sleep(0.3)
    return b


def results(client, file_id):
    """The lines of an output or error file, as dicts."""
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines() if x.strip()]
