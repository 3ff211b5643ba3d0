"""Projects: tenants that cannot see each other's files, batches or usage. The official SDK over real
HTTP against a real server on the mini: every Files and Batches route by a key of the owning project, a
key of another project and an admin key of a third; project limits, budgets and archiving; a seeded
random run of operations by keys of several projects in which no response may carry another project's
ids or bytes; and the migration of a store written by the release before projects."""
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import httpx
import openai
import pytest

import serverproc

FIXTURE = os.path.join(os.path.dirname(__file__), "../../crates/store/tests/fixtures/store-v3.sqlite")


def cli(data, *args, check=True):
    out = subprocess.run([serverproc.binary(), *args, "--data-dir", data], capture_output=True, text=True,
                         timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def make_key(data, name, *extra):
    return cli(data, "keys", "create", "--name", name, *extra).stdout.strip()


def make_project(data, name, *extra):
    return cli(data, "projects", "create", name, *extra).stdout.strip()


@pytest.fixture(scope="module")
def tenants():
    """Projects acme (two keys), globex (one key), ops (an admin key), each with its own objects."""
    data = tempfile.mkdtemp(prefix="tandem-projects-")
    acme, globex = make_project(data, "acme"), make_project(data, "globex")
    keys = {
        "acme": make_key(data, "acme-1", "--project", acme),
        "acme2": make_key(data, "acme-2", "--project", "acme"),
        "globex": make_key(data, "globex-1", "--project", globex),
        "admin": make_key(data, "root", "--admin"),
    }
    proc, base = serverproc.start("--models", "mini", "--parallel", "2", "--ctx-size", "512", "--data-dir", data,
                                  "--default-max-tokens", "4")
    yield {"data": data, "base": base, "keys": keys, "projects": {"acme": acme, "globex": globex}}
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)


def sdk(t, who):
    return openai.OpenAI(base_url=t["base"] + "/v1", api_key=t["keys"][who], max_retries=0, timeout=120)


def raw(call, *args, **kw):
    """(status, body text) of an SDK call made `with_raw_response`, errors included."""
    try:
        r = call(*args, **kw)
        return r.status_code, r.text
    except openai.APIStatusError as e:
        return e.status_code, e.response.text


def batch_input(lines):
    body = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "mini", "messages": [{"role": "user", "content": text}],
                                        "max_tokens": 2, "temperature": 0}}) + "\n" for cid, text in lines)
    return io.BytesIO(body.encode())


def wait_final(client, batch_id, timeout=180):
    deadline = time.time() + timeout
    while (b := client.batches.retrieve(batch_id)).status not in ("completed", "failed", "cancelled", "expired"):
        assert time.time() < deadline, f"batch stuck in {b.status}"
        time.sleep(0.3)
    return b


def test_every_files_and_batches_route_by_own_other_and_admin_key(tenants):
    t = tenants
    alice, alice2 = sdk(t, "acme"), sdk(t, "acme2")
    secret = "ACME-SECRET-PROMPT-7d1f"
    doc = alice.files.create(file=("notes.txt", io.BytesIO(f"{secret} notes".encode())), purpose="user_data")
    inp = alice.files.create(file=("in.jsonl", batch_input([("acme-line-1", secret)])), purpose="batch")
    batch = alice.batches.create(input_file_id=inp.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_final(alice2, batch.id)
    assert done.status == "completed", done
    out = done.output_file_id
    assert all(len(i.split("-", 1)[1].split("_")[-1]) >= 24 for i in [doc.id, inp.id, out])  # >= 96 random bits
    owned = [doc.id, inp.id, batch.id, out]

    def check(who, status, text, own):
        if own:
            return
        for thing in owned + [secret, "acme-line-1", t["projects"]["acme"]]:
            # A 404 repeats the id the caller sent; nothing else of acme's may appear.
            assert thing not in text.replace(f"object: {thing}", ""), (who, status, text)

    for who, own in [("acme2", True), ("globex", False), ("admin", False)]:
        c = sdk(t, who).with_raw_response
        expect = 200 if own else 404
        for fid in [doc.id, inp.id, out]:
            for call in (c.files.retrieve, c.files.content):
                status, text = raw(call, fid)
                assert status == expect, (who, call, fid, status, text)
                check(who, status, text, own)
        status, text = raw(c.batches.retrieve, batch.id)
        assert status == expect, (who, text)
        check(who, status, text, own)
        for call, kw in [(c.files.list, {}), (c.files.list, {"purpose": "batch"}), (c.batches.list, {}),
                         (c.files.list, {"after": doc.id}), (c.batches.list, {"after": batch.id})]:
            status, text = raw(call, **kw)
            assert status == 200
            check(who, status, text, own)
            ids = [x["id"] for x in json.loads(text)["data"]]
            if not own:
                assert not set(ids) & set(owned), (who, ids)
        if own:
            assert {doc.id, inp.id, out} <= {f.id for f in alice2.files.list()}
            assert batch.id in {b.id for b in alice2.batches.list()}
            assert secret.encode() in alice2.files.content(doc.id).content
        else:
            # Another project cannot cancel, delete, or run a batch on acme's objects either.
            status, text = raw(c.batches.cancel, batch.id)
            assert status == 404, text
            status, text = raw(c.batches.create, input_file_id=inp.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
            assert status == 404 and json.loads(text)["error"]["param"] == "input_file_id", text
            for fid in [doc.id, out]:
                status, text = raw(c.files.delete, fid)
                assert status == 404, text
                check(who, status, text, own)
    # acme still has everything; its own second key may delete.
    assert alice.files.retrieve(doc.id).id == doc.id
    assert alice2.files.delete(doc.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(doc.id)


def test_admin_reads_usage_by_project_and_manages_projects(tenants):
    t = tenants
    base, admin = t["base"], {"Authorization": f"Bearer {t['keys']['admin']}"}
    for who in ("acme", "globex"):
        sdk(t, who).chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    time.sleep(0.5)  # usage is written just after the answer
    rows = httpx.get(base + "/v1/usage", params={"by": "project"}, headers=admin).json()["data"]
    by = {r["project_id"]: r for r in rows}
    assert t["projects"]["acme"] in by and t["projects"]["globex"] in by, rows
    for who in ("acme", "globex"):
        r = httpx.get(base + "/v1/usage", params={"by": "project"},
                      headers={"Authorization": f"Bearer {t['keys'][who]}"})
        assert r.status_code == 403
        r = httpx.get(base + "/v1/organization/projects", headers={"Authorization": f"Bearer {t['keys'][who]}"})
        assert r.status_code == 403
    r = httpx.post(base + "/v1/organization/projects", json={"name": "initech", "rpm": 5}, headers=admin)
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["object"], p["name"], p["status"], p["rpm"]) == ("organization.project", "initech", "active", 5)
    assert p["id"].startswith("proj_")
    listed = httpx.get(base + "/v1/organization/projects", headers=admin).json()["data"]
    assert {"acme", "globex", "initech"} <= {x["name"] for x in listed}
    r = httpx.post(base + f"/v1/organization/projects/{p['id']}", json={"rpm": None, "budget": 2}, headers=admin)
    assert (r.json()["rpm"], r.json()["budget"]) == (None, 2)
    k = httpx.post(base + "/v1/keys", json={"name": "ini", "project_id": p["id"]}, headers=admin).json()
    assert k["project_id"] == p["id"]
    bad = httpx.post(base + "/v1/keys", json={"name": "x", "project_id": "proj_nope"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "project_id", bad.text
    assert httpx.get(base + "/v1/organization/projects/proj_nope", headers=admin).status_code == 404
    r = httpx.post(base + "/v1/organization/projects", json={"rpm": 5}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    # Archiving revokes its keys at once and keeps it listed as archived.
    r = httpx.post(base + f"/v1/organization/projects/{p['id']}/archive", headers=admin).json()
    assert (r["status"], r["keys_revoked"]) == ("archived", 1)
    r = httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {k['value']}"})
    assert r.status_code == 401
    bad = httpx.post(base + "/v1/keys", json={"name": "late", "project_id": p["id"]}, headers=admin)
    assert bad.status_code == 400 and "archived" in bad.json()["error"]["message"]


def test_project_limits_and_budgets_hold_across_its_keys(tenants):
    t = tenants
    data, base = t["data"], t["base"]
    proj = make_project(data, "limited", "--rpm", "2")
    k1, k2 = make_key(data, "l1", "--project", proj), make_key(data, "l2", "--project", proj)
    msg = [{"role": "user", "content": "hi"}]
    c1 = openai.OpenAI(base_url=base + "/v1", api_key=k1, max_retries=0)
    c2 = openai.OpenAI(base_url=base + "/v1", api_key=k2, max_retries=0)
    c1.chat.completions.create(model="mini", messages=msg, max_tokens=1)
    c2.chat.completions.create(model="mini", messages=msg, max_tokens=1)
    with pytest.raises(openai.RateLimitError) as e:
        c1.chat.completions.create(model="mini", messages=msg, max_tokens=1)
    assert e.value.body["code"] == "rate_limit_exceeded" or "requests" in e.value.body["message"]
    # Another project is not held back by this one's limit.
    sdk(t, "globex").chat.completions.create(model="mini", messages=msg, max_tokens=1)
    poor = make_project(data, "poor", "--budget", "0.0000001")
    p1, p2 = make_key(data, "p1", "--project", poor), make_key(data, "p2", "--project", poor)
    openai.OpenAI(base_url=base + "/v1", api_key=p1, max_retries=0).chat.completions.create(
        model="mini", messages=msg, max_tokens=2)
    time.sleep(0.5)
    with pytest.raises(openai.RateLimitError) as e:
        openai.OpenAI(base_url=base + "/v1", api_key=p2, max_retries=0).chat.completions.create(
            model="mini", messages=msg, max_tokens=1)
    assert e.value.body["code"] == "insufficient_quota" and "project" in e.value.body["message"]


class World:
    """What each project owns, for the random run: ids, and the marker strings in its bytes."""

    def __init__(self, names):
        self.ids = {n: set() for n in names}
        self.marks = {n: set() for n in names}
        self.inputs = {n: [] for n in names}
        self.batches = {n: [] for n in names}
        self.deleted = set()

    def foreign(self, who):
        return [x for n in self.ids if n != who for x in self.ids[n] | self.marks[n]]

    def any_id(self, rng):
        every = sorted(x for s in self.ids.values() for x in s)
        return rng.choice(every) if every else "file-none"

    def owner(self, obj):
        return next((n for n, s in self.ids.items() if obj in s), None)

    def listed(self, who, ids):
        """Ids a list showed `who`: its own, or the output/error files of its own batches (learned here)."""
        for i in ids - self.ids[who]:
            m = re.fullmatch(r"file-(?:output|error)-(\w+)", i)
            assert m and f"batch_{m.group(1)}" in self.batches[who], (who, i)
            self.ids[who].add(i)


def test_random_operations_never_show_one_project_another_projects_data(tenants):
    """A seeded random run of uploads, batches that really run, lists, downloads, deletes and cancels by
    keys of three projects. Every response is checked: it names no other project's id (but the one the
    request itself sent, which a 404 repeats) and carries none of its bytes."""
    t = tenants
    data = t["data"]
    names = ["umbrella", "initrode", "hooli"]
    keys = {n: make_key(data, f"{n}-1", "--project", make_project(data, n)) for n in names}
    clients = {n: openai.OpenAI(base_url=t["base"] + "/v1", api_key=keys[n], max_retries=0,
                                timeout=120).with_raw_response for n in names}
    w = World(names)
    rng = random.Random(20261205)
    checked = 0

    def check(who, sent, status, text):
        nonlocal checked
        assert status < 500, (who, status, text)
        for thing in w.foreign(who):
            if thing != sent:
                assert thing not in text, (who, sent, status, thing, text[:400])
        checked += 1

    for step in range(150):
        who = rng.choice(names)
        c = clients[who]
        op = rng.choice(["upload", "upload", "batch", "list", "list_batches", "retrieve", "content", "delete",
                         "cancel", "batch_foreign", "after_foreign", "retrieve_batch"])
        sent = None
        if op == "upload":
            mark = f"MARK-{who}-{step}-{rng.getrandbits(32):08x}"
            if rng.random() < 0.5:
                status, text = raw(c.files.create, file=("d.txt", io.BytesIO(mark.encode())), purpose="user_data")
            else:
                status, text = raw(c.files.create, file=("in.jsonl", batch_input([(mark, "Say ok.")])),
                                   purpose="batch")
                if status == 200:
                    w.inputs[who].append(json.loads(text)["id"])
            if status == 200:
                w.ids[who].add(json.loads(text)["id"])
                w.marks[who].add(mark)
        elif op == "batch" and w.inputs[who]:
            sent = rng.choice(w.inputs[who])
            status, text = raw(c.batches.create, input_file_id=sent, endpoint="/v1/chat/completions",
                               completion_window="24h")
            if status == 200:
                bid = json.loads(text)["id"]
                w.ids[who].add(bid)
                w.batches[who].append(bid)
            else:
                assert status == 404 and sent not in w.ids[who], text  # the input was deleted
        elif op == "batch_foreign":
            others = [f for n in names if n != who for f in w.inputs[n]]
            sent = rng.choice(others) if others else "file-none"
            status, text = raw(c.batches.create, input_file_id=sent, endpoint="/v1/chat/completions",
                               completion_window="24h")
            assert status == 404, text
        elif op in ("list", "list_batches"):
            status, text = raw(c.files.list if op == "list" else c.batches.list)
            w.listed(who, {x["id"] for x in json.loads(text)["data"]})
        elif op == "after_foreign":
            sent = w.any_id(rng)
            call = c.batches.list if sent.startswith("batch_") else c.files.list
            status, text = raw(call, after=sent)
            w.listed(who, {x["id"] for x in json.loads(text)["data"]})
        elif op in ("retrieve", "content", "delete", "cancel", "retrieve_batch"):
            sent = w.any_id(rng)
            if op in ("cancel", "retrieve_batch"):
                batches = [b for n in names for b in w.batches[n]]
                sent = rng.choice(batches) if batches else "batch_none"
            call = {"retrieve": c.files.retrieve, "content": c.files.content, "delete": c.files.delete,
                    "cancel": c.batches.cancel, "retrieve_batch": c.batches.retrieve}[op]
            if op in ("retrieve", "content", "delete") and sent.startswith("batch_"):
                call = c.batches.retrieve
            status, text = raw(call, sent)
            mine = sent in w.ids[who]
            if mine:
                assert status in (200, 409), (op, status, text)  # 409: cancelling a finished batch
                if op == "delete" and call == c.files.delete:
                    w.ids[who].discard(sent)
                    w.deleted.add(sent)
                    if sent in w.inputs[who]:
                        w.inputs[who].remove(sent)
            else:
                assert status == 404, (who, op, sent, w.owner(sent), status, text)
        else:
            continue
        if op != "upload":
            check(who, sent, status, text)
    # Every batch ends; its owner downloads the results, nobody else sees them.
    ran = 0
    for who in names:
        for bid in w.batches[who]:
            status, text = raw(clients[who].batches.retrieve, bid)
            deadline = time.time() + 180
            while json.loads(text)["status"] not in ("completed", "cancelled", "failed", "expired"):
                assert time.time() < deadline, text
                time.sleep(0.3)
                status, text = raw(clients[who].batches.retrieve, bid)
            b = json.loads(text)
            ran += b["status"] == "completed" and b["request_counts"]["completed"] == 1
            for fid in filter(None, [b["output_file_id"], b["error_file_id"]]):
                w.ids[who].add(fid)
                status, body = raw(clients[who].files.content, fid)
                assert status == (404 if fid in w.deleted else 200), (fid, body)
                check(who, fid, status, body)
                for other in names:
                    if other != who:
                        status, body = raw(clients[other].files.content, fid)
                        assert status == 404
                        check(other, fid, status, body)
    assert sum(len(b) for b in w.batches.values()) >= 5, "the run should have made batches"
    assert ran >= 3, "batches should have really run"
    assert checked >= 120


def test_a_store_from_the_previous_release_migrates_and_orphans_can_be_assigned():
    data = tempfile.mkdtemp(prefix="tandem-migrate-")
    try:
        shutil.copy(FIXTURE, os.path.join(data, "tandem.sqlite"))
        out = cli(data, "projects", "list")
        assert "store migrated to projects: 3 keys" in out.stderr, out.stderr
        assert {"alice", "bob", "ops"} <= set(re.findall(r"proj_\w+\s+(\w+)", out.stdout)), out.stdout
        assert "store migrated" not in cli(data, "projects", "list").stderr, "migrated once"
        orphans = cli(data, "files", "list", "--unassigned").stdout
        assert "file-orphan-1" in orphans and "file-alice-in" not in orphans, orphans
        cli(data, "files", "assign", "file-orphan-1", "--project", "bob")
        assert "file-orphan-1" in cli(data, "files", "list", "--project", "bob").stdout
        assert cli(data, "files", "assign", "file-alice-in", "--project", "bob", check=False).returncode != 0
        cli(data, "files", "delete", "file-orphan-2")
        assert "file-orphan-2" not in cli(data, "files", "list", "--unassigned").stdout
    finally:
        shutil.rmtree(data, ignore_errors=True)
