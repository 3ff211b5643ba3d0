"""Image input through the official SDK: data: URLs and file ids in chat, Responses' input_image,
`detail`, several images, batch lines, /v1/moderations with an image, `/perceive` (the block the
tiers read), bad images (truncated, wrong type, pixel bomb, too many) → 400s naming the part, and
image URLs: refused by default; with fetching on, private and loopback addresses refused and a
public-only rule that a test-only flag relaxes to 127.0.0.1."""
import base64
import http.server
import io
import struct
import threading
import zlib
from pathlib import Path

import openai
import pytest

import batchrun
import serverproc

DATA = Path(__file__).resolve().parent.parent / "data" / "vision"


def data_url(name, mime="image/png"):
    return f"data:{mime};base64," + base64.b64encode((DATA / name).read_bytes()).decode()


CAT = data_url("chelsea.png")
RECEIPT = data_url("receipt.png")


def image(url, detail=None):
    img = {"url": url}
    if detail:
        img["detail"] = detail
    return {"type": "image_url", "image_url": img}


def ask(client, *parts, **kw):
    return client.chat.completions.create(model="mini", temperature=0, max_tokens=kw.pop("max_tokens", 24),
                                          messages=[{"role": "user", "content": list(parts)}], **kw)


def perceive(http, url, detail=None):
    r = http.post("/perceive", json={"image_url": {"url": url, **({"detail": detail} if detail else {})}})
    assert r.status_code == 200, r.text
    return r.json()


def test_models_say_how_the_tiers_see(client):
    m = client.models.retrieve("mini").model_dump()
    assert "image" in m["input_modalities"] and "efficientnet-lite0, pp-ocrv4" in m["vision"]


def test_the_block_says_what_was_seen(http):
    cat = perceive(http, CAT, "low")
    assert cat["width"] == 451 and cat["format"] == "png" and cat["text"] is None
    assert cat["labels"][0]["name"] in ("tiger cat", "tabby", "Egyptian cat")
    assert cat["block"].startswith("[Image 1:") and "the model does not see the pixels" in cat["block"]
    receipt = perceive(http, RECEIPT, "high")
    # PP-OCRv4's recogniser (Chinese + English) drops most spaces between English words.
    lines = [l["text"].replace(" ", "") for l in receipt["text"]]
    assert lines == ["CORNERCAFE", "Espresso2.50", "Croissant3.20", "TOTAL5.70"]
    assert "| CORNERCAFE" in receipt["block"] and any("pp-ocrv4" in e for e in receipt["engines"])
    assert receipt["colours"][0]["name"] == "white"


def test_scripts_pp_ocr_lacks_are_read_by_tesseract(http):
    """.ci/run installs tesseract's Russian pack: Cyrillic, which PP-OCRv4 cannot output, is read."""
    r = perceive(http, data_url("russian.png"), "high")
    assert "pp-ocrv4 + tesseract" in r["engines"]
    assert any("Привет" in l["text"] for l in r["text"]) and any("рублей" in l["text"] for l in r["text"])


def test_detail_decides_the_reading(http):
    assert perceive(http, RECEIPT, "low")["text"] is None
    assert perceive(http, RECEIPT, "auto")["text"]  # text found: read
    assert perceive(http, CAT, "auto")["text"] is None  # none found: left out
    assert perceive(http, CAT, "high")["text"] == []


def test_chat_with_a_data_url(client):
    q = {"type": "text", "text": "What is in this image? Answer in a few words."}
    r = ask(client, q, image(CAT))
    assert "cat" in r.choices[0].message.content.lower()
    plain = ask(client, q)
    # The image's tokens are the block's, counted as prompt tokens.
    assert r.usage.prompt_tokens > plain.usage.prompt_tokens + 40


def test_text_in_an_image_is_read(client):
    r = ask(client, {"type": "text", "text": "What is the TOTAL on this receipt? Answer with the number only."},
            image(RECEIPT, "high"))
    assert "5.70" in r.choices[0].message.content


def test_file_ids_and_several_images(client):
    f = client.files.create(file=("cat.png", (DATA / "chelsea.png").read_bytes()), purpose="vision")
    r = ask(client, {"type": "text", "text": "How many images did I send? Answer with a digit."},
            image(f.id, "low"), image(RECEIPT, "high"), max_tokens=4)
    assert r.choices[0].finish_reason in ("stop", "length")
    # The same file under another project's key is not found: covered by test_projects' scoping.
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, image("file-doesnotexist"))
    assert e.value.body["param"] == "messages[0].content[0].image_url"


def test_responses_input_image(client):
    f = client.files.create(file=("cat.png", (DATA / "chelsea.png").read_bytes()), purpose="vision")
    r = client.responses.create(model="mini", temperature=0, max_output_tokens=16, input=[{
        "role": "user", "content": [
            {"type": "input_text", "text": "What is in this image? Answer in a few words."},
            {"type": "input_image", "image_url": CAT, "detail": "low"},
            {"type": "input_image", "file_id": f.id, "detail": "low"}]}])
    assert "cat" in r.output_text.lower()


def test_batch_lines_with_images(client):
    line = {"custom_id": "img", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "mini", "max_tokens": 8, "temperature": 0, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What animal? One word."}, image(CAT, "low")]}]}}
    bad = {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": "mini", "max_tokens": 8, "messages": [{"role": "user", "content": [
               image("data:image/png;base64,aGVsbG8=")]}]}}
    b = batchrun.run_batch(client, [line, bad], "/v1/chat/completions")
    assert b.status == "completed"
    out = {x["custom_id"]: x for x in batchrun.results(client, b.output_file_id)}
    assert out["img"]["response"]["status_code"] == 200
    errors = batchrun.results(client, b.error_file_id) if b.error_file_id else []
    bad_line = out.get("bad") or next(x for x in errors if x["custom_id"] == "bad")
    assert bad_line["response"]["status_code"] == 400


def test_moderation_reads_images(client):
    r = client.moderations.create(input=[{"type": "image_url", "image_url": {"url": RECEIPT}}])
    applied = r.results[0].category_applied_input_types.model_dump()
    assert applied["violence"] == ["image"] and not r.results[0].flagged


def png_header(w, h):
    """A valid PNG signature and IHDR claiming w × h pixels, then one tiny IDAT."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("url, code", [
    ("data:image/png;base64," + base64.b64encode((DATA / "chelsea.png").read_bytes()[:5000]).decode(), "invalid_image"),
    ("data:image/png;base64," + base64.b64encode(png_header(100_000, 100_000)).decode(), "invalid_image"),
    ("data:image/bmp;base64," + base64.b64encode(b"BM" + bytes(60)).decode(), "invalid_image"),
    ("data:text/plain;base64," + base64.b64encode(b"just some text").decode(), "invalid_image"),
    ("data:image/png;base64,***", "invalid_image"),
    ("data:image/png,notbase64", "invalid_image"),
    ("ftp://example.com/a.png", "invalid_value"),
])
def test_bad_images_name_the_part(http, url, code):
    r = http.post("/v1/chat/completions", json={"model": "mini", "max_tokens": 4, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, image(url)]}]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"].startswith("messages[0].content[1].image_url") and err["code"] == code, err


def test_bad_detail_and_too_many_images(http):
    r = http.post("/v1/chat/completions", json={"model": "mini", "messages": [
        {"role": "user", "content": [image(CAT, "ultra")]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content[0].image_url.detail"
    r = http.post("/v1/chat/completions", json={"model": "mini", "messages": [
        {"role": "user", "content": [image(RECEIPT, "low")] * 9}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"


def test_image_urls_are_not_fetched_by_default(http):
    r = http.post("/v1/chat/completions", json={"model": "mini", "messages": [
        {"role": "user", "content": [image("https://example.com/cat.png")]}]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "messages[0].content[0].image_url.url" and "does not fetch" in err["message"]


@pytest.fixture(scope="module")
def image_host():
    """A plain HTTP server on 127.0.0.1 serving the test images, and a redirect."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            f = DATA / self.path.lstrip("/")
            if not f.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(f.read_bytes())

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def fetching_server(mode, tmp_path_factory):
    d = tmp_path_factory.mktemp("fetch")
    return serverproc.start("--models", "mini", "--ctx-size", "1024", "--data-dir", d, "--image-urls", mode,
                            "--embeddings", "false", "--speech", "false")


def post_url(base, url):
    import httpx
    return httpx.post(base + "/perceive", json={"image_url": {"url": url, "detail": "low"}}, timeout=60)


def test_ssrf_is_refused_when_fetching_is_on(image_host, tmp_path_factory):
    proc, base = fetching_server("on", tmp_path_factory)
    try:
        for url in [image_host + "/chelsea.png", "http://localhost:9/x.png", "http://10.0.0.1/x.png",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]:80/x.png", "http://0.0.0.0/x.png",
                    "http://[::ffff:127.0.0.1]/x.png", "http://100.64.0.1/x.png"]:
            r = post_url(base, url)
            assert r.status_code == 400, (url, r.text)
            assert r.json()["error"]["code"] == "invalid_image_url", (url, r.text)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_fetching_from_an_allowed_host(image_host, tmp_path_factory):
    proc, base = fetching_server("on-allow-loopback", tmp_path_factory)
    try:
        r = post_url(base, image_host + "/chelsea.png")
        assert r.status_code == 200 and r.json()["width"] == 451
        assert post_url(base, image_host + "/missing.png").status_code == 400
        # A redirect is not followed (it could lead inside the network).
        r = post_url(base, image_host + "/redirect")
        assert r.status_code == 400 and "302" in r.json()["error"]["message"]
        assert post_url(base, "http://10.0.0.1/x.png").json()["error"]["code"] == "invalid_image_url"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
