"""The playground in a real browser: Debian's headless Chromium driven through its chromedriver (both
named by path — driver managers that download browsers fail here), against a real `tandem serve`
with the mini tier and an admin key. axe-core comes from npm (scripts/test.sh sets TANDEM_AXE_JS).
With TANDEM_SCREENSHOTS=DIR set, each view is also saved at desktop and phone width (docs/playground
holds the committed ones) with the page's measured first contentful paint."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import httpx
import pytest

import serverproc

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
SHOTS = os.environ.get("TANDEM_SCREENSHOTS")


@pytest.fixture(scope="module")
def site():
    data = tempfile.mkdtemp(prefix="tandem-playground-")
    key = subprocess.run([serverproc.binary(), "keys", "create", "--name", "ops", "--admin", "--data-dir", data],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    proc, base = serverproc.start("--models", "mini", "--parallel", "2", "--ctx-size", "1024",
                                  "--default-max-tokens", "48", "--data-dir", data)
    try:
        yield {"base": base, "key": key, "auth": {"Authorization": f"Bearer {key}"}}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.fail("the playground's browser tests need Debian's chromium and chromium-driver (apt-get install)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-extensions", "--no-first-run", "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_window_size(1280, 900)
    d.set_script_timeout(60)
    try:
        yield d
    finally:
        d.quit()


def js(b, script, *args):
    return b.execute_script(script, *args)


def wait(b, script, timeout=90, *args):
    """Polls a JS expression (`return …`) until it is truthy; returns its value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = js(b, script, *args)
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def el(b, css):
    from selenium.webdriver.common.by import By
    return b.find_element(By.CSS_SELECTOR, css)


def enter_key(b, site):
    """Opens the page; the server has keys, so the page asks for one in its dialog."""
    b.get(site["base"] + "/")
    if not js(b, "return sessionStorage.getItem('tandem.key')"):
        wait(b, "return document.getElementById('key-dialog').open")
        el(b, "#key-input").send_keys(site["key"])
        el(b, "#key-form button[type=submit]").click()
    wait(b, "return document.querySelector('#chat-prompt')")


def send(b, text):
    box = el(b, "#chat-prompt")
    box.clear()
    box.send_keys(text)
    el(b, "#chat-send").click()


def wait_answer(b, state, timeout=90):
    """Waits until the newest assistant message is in `state` (streaming, done, stopped, error)."""
    wait(b, "const a = [...document.querySelectorAll('article.msg-assistant')].pop(); "
            "return a && a.dataset.state === arguments[0]", timeout, state)


def new_chat(b):
    from selenium.webdriver.common.by import By
    b.find_element(By.XPATH, "//button[text()='New chat']").click()


def test_page_is_served_offline_under_a_strict_csp_and_the_budget(site):
    r = httpx.get(site["base"] + "/")
    assert r.status_code == 200, "the page needs no key"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assets = ["/"] + ["/assets/" + a for a in
                      ("style.css", "app.js", "api.js", "chat.js", "compare.js", "conversations.js", "dashboard.js",
                       "charts.js", "dom.js", "highlight.js", "markdown.js", "media.js", "tools.js", "widgets.js",
                       "icon.svg")]
    total = 0
    for a in assets:
        g = httpx.get(site["base"] + a, headers={"Accept-Encoding": "gzip"})
        assert g.status_code == 200 and g.headers["content-encoding"] == "gzip", a
        total += int(g.headers["content-length"])
        again = httpx.get(site["base"] + a, headers={"If-None-Match": g.headers["etag"]})
        assert again.status_code == 304, a
    assert total <= 300 * 1024, f"first load {total} bytes gzipped"
    assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text, "no CDN"
    missing = httpx.get(site["base"] + "/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    # The API itself still needs a key.
    assert httpx.get(site["base"] + "/v1/models").status_code == 401
    if SHOTS:
        pathlib.Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(SHOTS) / "first-load.json").write_text(json.dumps({"gzip_bytes": total}))


def test_key_dialog_then_an_answer_streams_in_several_renders(site, browser):
    b = browser
    enter_key(b, site)
    fcp = js(b, "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p && p.startTime")
    assert fcp, "the browser measured a first contentful paint"
    print(f"first contentful paint: {fcp:.0f} ms")
    if SHOTS:
        p = pathlib.Path(SHOTS) / "first-load.json"
        d = json.loads(p.read_text()) if p.exists() else {}
        d["first_contentful_paint_ms"] = round(fcp)
        p.write_text(json.dumps(d))
    # The key lives in sessionStorage only (no opt-in), never in the URL.
    assert js(b, "return localStorage.getItem('tandem.key')") is None
    assert site["key"] not in b.current_url
    # Only what is served: the mini and auto, no image/speech buttons.
    opts = js(b, "return [...document.querySelectorAll('#chat-model option')].map(o => o.value)")
    assert opts[0].startswith("qwen2.5-coder-0.5b") or opts[0] == "mini", opts
    assert "auto" in opts
    # This server serves Whisper, the voice and the perception stage: their buttons are there.
    assert js(b, "return !!document.querySelector('label[for=chat-image]') && [...document.querySelectorAll('button')]"
                 ".some(x => x.innerText === 'Speak')")
    js(b, """window.__renders = 0;
        new MutationObserver(rs => { for (const r of rs) {
          const a = r.target.closest && r.target.closest('article.msg-assistant');
          if (a && a.dataset.state === 'streaming' && r.target.classList.contains('msg-body')) window.__renders++; } })
        .observe(document.querySelector('.messages'), {childList: true, subtree: true});""")
    send(b, "Count from 1 to 30, separated by commas.")
    wait_answer(b, 'done')
    renders = js(b, "return window.__renders")
    assert renders >= 3, f"{renders} intermediate renders"
    stats = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.stats').innerText")
    assert "tok/s" in stats and "tokens" in stats and "$" in stats, stats
    body = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.msg-body').innerText")
    assert "1" in body and "5" in body, body


def test_stop_ends_the_stream_and_frees_the_server(site, browser):
    b = browser
    enter_key(b, site)
    new_chat(b)
    send(b, "Write a very long story about a lighthouse keeper, with many chapters.")
    wait(b, "const a = [...document.querySelectorAll('article.msg-assistant')].pop();"
            "return a && a.dataset.state === 'streaming' && a.querySelector('.msg-body').innerText.length > 40")
    el(b, "#chat-stop").click()
    wait_answer(b, 'stopped', 20)
    first = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.msg-body').innerText")
    time.sleep(1.5)
    later = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.msg-body').innerText")
    assert first == later and len(first) > 40, "no tokens after stop"
    deadline = time.time() + 10
    while time.time() < deadline:
        m = httpx.get(site["base"] + "/metrics").text
        active = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("tandem_active_sequences"))
        if active == 0:
            break
        time.sleep(0.2)
    assert active == 0, "the server stopped generating for the closed stream"


def test_an_api_error_is_shown_readably(site, browser):
    b = browser
    enter_key(b, site)
    new_chat(b)
    el(b, "details.settings summary").click()
    t = el(b, "#chat-temperature")
    t.clear()
    t.send_keys("7")
    el(b, "#chat-prompt").click()
    send(b, "Hello")
    wait_answer(b, 'error', 30)
    err = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.error').innerText")
    assert "400" in err and "temperature" in err, err


def test_switch_model_to_auto_shows_the_tier_and_why(site, browser):
    from selenium.webdriver.support.ui import Select
    b = browser
    enter_key(b, site)
    new_chat(b)
    Select(el(b, "#chat-model")).select_by_value("auto")
    send(b, "Say hello in French.")
    wait_answer(b, 'done')
    stats = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.stats').innerText")
    assert "routed:" in stats and "reason=" in stats, stats
    # The choice is kept with the conversation.
    b.refresh()
    wait(b, "return document.querySelector('#chat-model')")
    assert js(b, "return document.querySelector('#chat-model').value") == "auto"
    # An alias reaches its tier; the answer names the model that answered.
    Select(el(b, "#chat-model")).select_by_value("gpt-4o-mini")
    send(b, "Say bonjour.")
    wait_answer(b, 'done')
    stats = js(b, "return [...document.querySelectorAll('article.msg-assistant')].pop().querySelector('.stats').innerText")
    assert "0.5b" in stats and "routed:" not in stats, stats


def test_compare_streams_mini_and_auto_side_by_side(site, browser):
    from selenium.webdriver.support.ui import Select
    b = browser
    enter_key(b, site)
    b.get(site["base"] + "/#compare")
    wait(b, "return document.querySelector('#compare-prompt')")
    Select(el(b, "#compare-model-b")).select_by_value("auto")
    el(b, "#compare-prompt").send_keys("Name three colours.")
    el(b, ".compare-form button[type=submit]").click()
    wait(b, "return [...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'done')")
    panes = js(b, "return [...document.querySelectorAll('.pane')].map(p => p.querySelector('.pane-foot').innerText)")
    for p in panes:
        assert "tok/s" in p and "tokens" in p and "$" in p and "sharing the CPU" in p, p
    assert "routed:" in panes[1] and "routed:" not in panes[0]


def test_answers_with_html_stay_inert(site, browser, tmp_path):
    b = browser
    enter_key(b, site)
    evil = ('Look: <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
            '[click](javascript:window.__pwned=3) **bold**\n\n```html\n<script>window.__pwned=4</script>\n```')
    conv = {"format": "tandem.conversations.v1", "conversations": [
        {"id": "evil1", "title": "evil", "model": "auto", "system": "", "params": {"temperature": 0.7},
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": evil}]},
        # Hand-written: no params, no model, an image part without a url.
        {"id": "sparse1", "messages": [{"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": "x"}]}]}]}
    f = tmp_path / "conv.json"
    f.write_text(json.dumps(conv))
    el(b, "#import-file").send_keys(str(f))
    wait(b, "return [...document.querySelectorAll('.msg-assistant .msg-body')].some(m => m.innerText.includes('<script>'))")
    found = js(b, """const m = document.querySelector('.messages');
        return {imgs: m.querySelectorAll('img[src="x"], script').length,
                js: m.querySelectorAll('a[href^="javascript"]').length,
                bold: m.querySelectorAll('strong').length, pwned: window.__pwned === undefined ? null : window.__pwned}""")
    assert found == {"imgs": 0, "js": 0, "bold": 1, "pwned": None}, found
    # The sparse conversation opens too, and survives a reload.
    from selenium.webdriver.common.by import By
    b.find_element(By.XPATH, "//button[contains(@class, 'conv') and text()='x']").click()
    wait(b, "return [...document.querySelectorAll('.msg-user .msg-body')].some(m => m.innerText === 'x')", 10)
    b.refresh()
    wait(b, "return document.querySelectorAll('.conv').length >= 2", 10)
    # A live answer held by a schema to an HTML string, shown in the tools panel.
    b.get(site["base"] + "/#tools")
    wait(b, "return document.querySelector('#tools-spec')")
    payload = '<img src=x onerror="window.__pwned=5"><script>window.__pwned=6</script>'
    schema = {"name": "h", "schema": {"type": "object", "properties": {"html": {"type": "string", "enum": [payload]}},
                                      "required": ["html"], "additionalProperties": False}}
    js(b, "document.querySelector('#tools-spec').value = arguments[0]", json.dumps(schema))
    el(b, ".tools-form button[type=submit]").click()
    out = wait(b, "const o = document.querySelector('.tools-out pre.output'); return o && o.innerText")
    assert payload in json.loads(out)["html"]
    assert js(b, "return document.querySelectorAll('.tools-out img, .tools-out script').length") == 0
    assert js(b, "return window.__pwned === undefined")


def test_tool_definitions_show_the_calls(site, browser):
    from selenium.webdriver.support.ui import Select
    b = browser
    enter_key(b, site)
    b.get(site["base"] + "/#tools")
    wait(b, "return document.querySelector('#tools-kind')")
    Select(el(b, "#tools-kind")).select_by_value("tools")
    Select(el(b, "#tools-choice")).select_by_value("required")
    el(b, ".tools-form button[type=submit]").click()
    call = wait(b, "const c = document.querySelector('.tools-out .tool-call'); return c && c.innerText")
    assert "get_weather" in call and "city" in call, call


def test_images_speech_and_read_aloud_when_served(site, browser):
    """An image attached from a file, speech recorded from Chromium's fake microphone and
    transcribed, and an answer read aloud: each request succeeds (no error shown)."""
    b = browser
    enter_key(b, site)
    new_chat(b)
    el(b, "#chat-image").send_keys(str(pathlib.Path(__file__).parent.parent.parent / "tests/data/vision/chelsea.png"))
    wait(b, "return document.querySelectorAll('.attachments img').length === 1")
    send(b, "What is in this picture? One sentence.")
    wait_answer(b, 'done', 120)
    assert js(b, "return document.querySelectorAll('.msg-user .msg-images img').length") == 1
    speak = [x for x in b.find_elements("css selector", "form.composer button") if x.text == "Speak"][0]
    speak.click()
    wait(b, "return [...document.querySelectorAll('form.composer button')].some(x => x.innerText === 'Stop recording')", 10)
    time.sleep(1.5)
    [x for x in b.find_elements("css selector", "form.composer button") if x.text == "Stop recording"][0].click()
    wait(b, "return [...document.querySelectorAll('form.composer button')].some(x => x.innerText === 'Speak')", 60)
    assert js(b, "return document.getElementById('banner').hidden"), el(b, "#banner").text
    js(b, "window.__played = 0; const p = HTMLMediaElement.prototype.play;"
          "HTMLMediaElement.prototype.play = function() { window.__played++; return p.call(this); }")
    [x for x in b.find_elements("css selector", "article.msg-assistant button") if x.text == "Read aloud"][-1].click()
    wait(b, "return window.__played === 1", 60)
    assert js(b, "return document.getElementById('banner').hidden"), el(b, "#banner").text


def test_media_buttons_are_hidden_when_not_served(browser):
    with serverproc.serving("tandem-playground-text-", "--models", "mini", "--ctx-size", "512", "--speech", "false",
                            "--vision", "false") as (client, _):
        base = str(client.base_url).removesuffix("/v1/")
        b = browser
        b.get(base + "/")
        wait(b, "return document.querySelector('#chat-prompt')")
        assert js(b, "return document.querySelector('label[for=chat-image], #chat-image')") is None
        assert not js(b, "return [...document.querySelectorAll('button')].some(x => ['Speak', 'Read aloud'].includes(x.innerText))")


def page_rows(b, dim):
    return js(b, """return [...document.querySelectorAll(`table[data-dim="${arguments[0]}"] tbody tr`)].map(tr => ({
        id: tr.dataset.id,
        values: Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.col, [td.dataset.value, td.innerText]]))}))""",
              dim)


def test_dashboard_numbers_equal_the_usage_api(site, browser, tmp_path):
    from selenium.webdriver.support.ui import Select
    b = browser
    enter_key(b, site)
    b.get(site["base"] + "/#dashboard")
    wait(b, "return document.querySelector('#usage-range')")
    Select(el(b, "#usage-range")).select_by_value("0")
    wait(b, "return document.querySelectorAll('table[data-dim=\"model\"] tbody tr').length > 0")
    time.sleep(0.5)
    for dim, by in (("model", "model"), ("key_id", "key"), ("project_id", "project")):
        api = httpx.get(site["base"] + f"/v1/usage?by={by}&since=0", headers=site["auth"]).json()["data"]
        rows = {r["id"]: r["values"] for r in page_rows(b, dim)}
        assert set(rows) == {a[dim] for a in api}, (rows, api)
        for a in api:
            v = rows[a[dim]]
            for col in ("requests", "input_tokens", "cached_tokens", "output_tokens"):
                assert int(v[col][0]) == a[col] and v[col][1].replace(",", "") == str(a[col]), (col, v, a)
            assert float(v["cost"][0]) == a["cost"] and abs(float(v["cost"][1]) - a["cost"]) <= 1e-5 * a["cost"] + 1e-12
    assert sum(a["requests"] for a in httpx.get(site["base"] + "/v1/usage?by=model&since=0",
                                                headers=site["auth"]).json()["data"]) >= 5, "the tests' own requests"
    # The chart split by key names the test's key.
    key_id = page_rows(b, "key_id")[0]["id"]
    Select(el(b, "#usage-split")).select_by_value("key")
    wait(b, "return document.querySelector('.legend') && document.querySelector('.legend').innerText.includes(arguments[0])",
         30, key_id)
    # The tiers' report, live state from /metrics, and a batch uploaded and finished from the page.
    wait(b, "return document.querySelectorAll('table.report tbody tr').length >= 10")
    wait(b, "return document.querySelectorAll('.live-grid dd').length >= 6")
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "mini", "messages": [{"role": "user", "content": f"Say {i}."}], "max_tokens": 8}}
             for i in range(2)]
    f = tmp_path / "batch.jsonl"
    f.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    el(b, "#batch-file").send_keys(str(f))
    el(b, ".batch-form button[type=submit]").click()
    wait(b, "return [...document.querySelectorAll('table.batches tbody tr')].some(tr => "
            "tr.innerText.includes('completed') && tr.innerText.includes('Results'))", 120)
    assert "2/2" in js(b, "return document.querySelector('table.batches tbody tr').innerText")


def test_a_keyboard_only_flow(site, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    b = browser
    enter_key(b, site)
    b.get(site["base"] + "/#compare")
    b.refresh()
    wait(b, "return document.querySelector('#compare-prompt')")
    # The skip link moves focus to the content without leaving the view.
    ActionChains(b).send_keys(Keys.TAB).perform()
    assert js(b, "return document.activeElement.className") == "skip"
    ActionChains(b).send_keys(Keys.ENTER).perform()
    time.sleep(0.3)
    assert js(b, "return !document.querySelector('#view-compare').hidden && document.activeElement.id === 'main'")
    b.get(site["base"] + "/#chat")
    b.refresh()
    wait(b, "return document.querySelector('#chat-prompt')")

    def tab_to(pred, limit=60):
        for _ in range(limit):
            ActionChains(b).send_keys(Keys.TAB).perform()
            if js(b, "const a = document.activeElement; return " + pred):
                return
        raise AssertionError("focus never reached " + pred)

    tab_to("a.id === 'chat-prompt'")
    ActionChains(b).send_keys("Say hi.").send_keys(Keys.ENTER).perform()
    wait_answer(b, 'done')
    tab_to("a.getAttribute('href') === '#compare'", 200)
    ActionChains(b).send_keys(Keys.ENTER).perform()
    wait(b, "return !document.querySelector('#view-compare').hidden && document.activeElement.id === 'compare-prompt'", 10)
    ActionChains(b).send_keys("Say yes.").send_keys(Keys.ENTER).perform()
    wait(b, "return [...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'done')")


def axe_violations(b):
    src = os.environ.get("TANDEM_AXE_JS")
    if not src:
        pytest.fail("TANDEM_AXE_JS names axe.min.js (scripts/test.sh installs axe-core from npm)")
    if not js(b, "return !!window.axe"):
        js(b, pathlib.Path(src).read_text() + "\n;return true;")
    return b.execute_async_script("""const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v =>
          ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))));""")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_serious_violations(site, browser, theme):
    b = browser
    enter_key(b, site)
    js(b, "localStorage.setItem('tandem.theme', arguments[0])", theme)
    bad = {}
    for view in ("chat", "compare", "tools", "dashboard"):
        b.get(site["base"] + f"/#{view}")
        b.refresh()
        wait(b, f"return !document.querySelector('#view-{view}').hidden && document.querySelector('#view-{view}').children.length")
        time.sleep(1.0)
        v = [x for x in axe_violations(b) if x["impact"] in ("serious", "critical")]
        if v:
            bad[view] = v
    js(b, "localStorage.removeItem('tandem.theme')")
    assert not bad, json.dumps(bad, indent=1)


def populate(b, view):
    """Gives a view something to show: a comparison run, a constrained answer."""
    if view == "compare":
        el(b, "#compare-prompt").send_keys("Write a Python function that reverses a string.")
        el(b, ".compare-form button[type=submit]").click()
        wait(b, "return [...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'done')")
    elif view == "tools":
        el(b, ".tools-form button[type=submit]").click()
        wait(b, "return document.querySelector('.tools-out .stats')")
    elif view == "dashboard":
        wait(b, "return document.querySelectorAll('table.report tbody tr').length && document.querySelector('.live-grid dd')")


def test_phone_width_and_screenshots(site, browser):
    b = browser
    enter_key(b, site)
    for view in ("chat", "compare", "tools", "dashboard"):
        b.set_window_size(1280, 900)
        b.get(site["base"] + f"/#{view}")
        b.refresh()
        wait(b, f"return !document.querySelector('#view-{view}').hidden && document.querySelector('#view-{view}').children.length")
        if SHOTS:
            populate(b, view)
        for width, height, name in ((1280, 900, "desktop"), (390, 844, "phone")):
            b.set_window_size(width, height)
            time.sleep(0.5)
            # Neither the page nor the view scrolls sideways (wide tables scroll inside their own box).
            overflow = js(b, "const v = document.querySelector(`#view-${arguments[0]}`), d = document.documentElement;"
                             "return Math.max(d.scrollWidth - d.clientWidth, v.scrollWidth - v.clientWidth)", view)
            assert overflow <= 1, f"{view} at {width}px scrolls sideways by {overflow}px"
            if SHOTS:
                b.save_screenshot(str(pathlib.Path(SHOTS) / f"{view}-{name}.png"))
    if SHOTS:
        b.set_window_size(1280, 900)
        el(b, "#theme-toggle").click()
        b.get(site["base"] + "/#chat")
        time.sleep(1.0)
        b.save_screenshot(str(pathlib.Path(SHOTS) / "chat-dark-desktop.png"))
        js(b, "localStorage.removeItem('tandem.theme')")
    b.set_window_size(1280, 900)
