"""The studio end to end in a real Chromium (Playwright driving Debian's `chromium`), against `lossnet serve`.

`make test` installs Chromium when it is missing (scripts/install-chromium.sh); without it these tests skip.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import photo

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `make test` installs it (scripts/install-chromium.sh)")


# Chromium's own test camera (a moving pattern with a clock), granted without asking.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
SCREENSHOTS = Path(os.environ.get("LOSSNET_SCREENSHOTS", "/tmp"))  # the gallery, slider and live mode, to look at


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, run_dir = free_port(), tmp_path_factory.mktemp("studio-run")
    process = subprocess.Popen([sys.executable, "-m", "lossnet", "serve", "--port", str(port), "--run-dir", str(run_dir),
                                "--threads", "1", "--max-queued", "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    first = process.stdout.readline()
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError(f"the server did not start: {first}{process.stdout.read()}")
    yield url, first
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    from lossnet.io import save_image
    folder = tmp_path_factory.mktemp("browser-images")
    fake = folder / "not-a-photo.png"
    fake.write_text("this is text with an image's name\n")
    return {"photo": save_image(photo("astronaut", 96), folder / "photo.png"),
            "painting": save_image(photo("coffee", 96), folder / "painting.png"), "fake": fake}


@pytest.fixture()
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", *FAKE_CAMERA])
        page = browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 1000})
        page.goto(server[0] + "/")
        page.wait_for_selector("body[data-ready=true]")
        yield page
        browser.close()


def choose(page, method: str, files: dict[str, list[Path]], **params) -> None:
    page.select_option("#method", method)
    for field, paths in files.items():
        page.set_input_files(f"input[type=file][name={field}]", [str(p) for p in paths])
    for name, value in params.items():
        selector = f"#param-{name}"
        if page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            page.select_option(selector, str(value))
        else:
            page.fill(selector, str(value))


def run_new_job(page, timeout: int = 30_000):
    """Press Run; the card of the new job (the page also lists every earlier job of the history)."""
    known = page.eval_on_selector_all(".job", "cards => cards.map(c => c.dataset.id)")
    page.click("#run")
    page.wait_for_function("known => [...document.querySelectorAll('.job')].some(c => !known.includes(c.dataset.id))",
                           arg=known, timeout=timeout)
    return page.query_selector(".job:first-child")


def wait_state(page, card, state: str, timeout: int = 60_000) -> None:
    page.wait_for_function("([card, state]) => card.dataset.state === state", arg=[card, state], timeout=timeout)


def test_the_server_binds_to_loopback_and_says_so(server):
    assert server[0].startswith("http://127.0.0.1:") and "loopback only" in server[1]


def test_feed_forward_style_result_shows_and_downloads_at_the_right_size(page, images, tmp_path):
    choose(page, "fast-style", {"content": [images["photo"]]}, model="starry-lite", size=80)
    card = run_new_job(page)
    wait_state(page, card, "done")
    result = card.query_selector(".job-result")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=result)
    assert result.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [80, 80]
    with page.expect_download() as download:
        card.query_selector(".job-download").click()
    saved = tmp_path / "download.png"
    download.value.save_as(saved)
    assert Image.open(saved).size == (80, 80)


def test_any_painting_in_one_pass_gets_a_slider_per_painting_and_a_result(page, images):
    choose(page, "adain", {"content": [images["photo"]], "style": [images["painting"], images["photo"]]}, size=96)
    assert len(page.query_selector_all("[data-param=style_weights] input[type=range]")) == 2
    card = run_new_job(page)
    wait_state(page, card, "done")
    result = card.query_selector(".job-result")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=result)
    assert result.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [96, 96]


def test_gatys_progress_moves_and_the_live_preview_changes(page, images):
    choose(page, "stylize", {"content": [images["photo"]], "style": [images["painting"]]}, size=64, iters=60)
    card = run_new_job(page)
    wait_state(page, card, "running", 30_000)
    preview = card.query_selector(".job-preview")
    page.wait_for_function("img => !img.hidden && img.complete && img.naturalWidth > 0", arg=preview, timeout=30_000)
    first_src, first_progress = preview.get_attribute("src"), card.query_selector(".job-progress").evaluate("p => p.value")
    first_pixels = preview.screenshot()
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src && img.complete && img.naturalWidth > 0",
                           arg=[preview, first_src], timeout=30_000)
    assert card.query_selector(".job-progress").evaluate("p => p.value") > first_progress
    assert preview.screenshot() != first_pixels  # the iterate changed on the page
    assert "left" in card.query_selector(".job-info").inner_text()  # an ETA is shown
    wait_state(page, card, "done")


def test_cancel_a_running_job(page, images):
    choose(page, "stylize", {"content": [images["photo"]], "style": [images["painting"]]}, size=64, iters=2000)
    card = run_new_job(page)
    wait_state(page, card, "running", 30_000)
    page.wait_for_function("card => card.querySelector('.job-progress').value > 0", arg=card, timeout=30_000)
    card.query_selector(".cancel").click()
    wait_state(page, card, "cancelled", 30_000)
    assert card.query_selector(".job-result").is_hidden() and card.query_selector(".job-download").is_hidden()


def test_a_bad_file_shows_the_servers_error_on_the_page(page, images):
    choose(page, "fast-style", {"content": [images["fake"]]}, model="starry-lite")
    before = len(page.query_selector_all(".job"))
    page.click("#run")
    error = page.wait_for_selector("#form-error:not([hidden])", timeout=10_000)
    assert "not an image lossnet can read" in error.inner_text()
    assert len(page.query_selector_all(".job")) == before


def test_a_multi_style_model_gets_one_blend_slider_per_style(page, images):
    choose(page, "fast-style", {"content": [images["photo"]]}, model="scream-kandinsky", size=64)
    sliders = page.query_selector_all("[data-param=blend] input[type=range]")
    assert len(sliders) == 2 and page.is_hidden("#param-blend")
    sliders[0].fill("0.8")
    sliders[1].fill("0.2")
    assert page.input_value("#param-blend") == "0.8,0.2"
    page.select_option("#param-model", "starry")  # one style: no sliders
    assert page.query_selector_all("[data-param=blend] input[type=range]") == []
    page.select_option("#param-model", "scream-kandinsky")
    page.query_selector_all("[data-param=blend] input[type=range]")[1].fill("1")
    wait_state(page, run_new_job(page), "done")


def test_the_before_after_slider_compares_the_input_with_the_result(page, images):
    choose(page, "fast-style", {"content": [images["photo"]]}, model="starry", size=96)  # drawn at 256 px
    card = run_new_job(page)
    wait_state(page, card, "done")
    before, result = card.query_selector(".job-input"), card.query_selector(".job-result")
    for image in (before, result):
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    assert before.is_visible() and card.query_selector(".divider").is_visible()
    box = card.query_selector(".compare").bounding_box()
    assert before.bounding_box() == box  # the input lies exactly on the result
    at_half = card.query_selector(".compare").screenshot()
    # drag the divider to a fifth of the width: the input shows only left of it
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    split = float(card.query_selector(".compare").evaluate("c => parseFloat(c.style.getPropertyValue('--split'))"))
    assert 10 <= split <= 30, split
    divider = card.query_selector(".divider").bounding_box()
    assert abs(divider["x"] + 1 - (box["x"] + box["width"] * split / 100)) < 3
    assert card.query_selector(".compare").screenshot() != at_half
    card.query_selector(".compare-range").fill("45")
    card.screenshot(path=str(SCREENSHOTS / "studio-slider.png"))


def test_the_history_is_on_the_page_after_a_reload_and_delete_removes_a_job(page, images, server):
    choose(page, "fast-style", {"content": [images["photo"]]}, model="wave", size=64)
    card = run_new_job(page)
    wait_state(page, card, "done")
    job_id = card.get_attribute("data-id")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    card = page.wait_for_selector(f".job[data-id='{job_id}'][data-state=done]")
    assert "model wave" in card.query_selector(".job-params").inner_text()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=card.query_selector(".job-result"))
    card.query_selector(".delete").click()
    page.wait_for_selector(f".job[data-id='{job_id}']", state="detached")
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(f"{server[0]}/api/jobs/{job_id}")
    assert gone.value.code == 404


def test_the_gallery_shows_every_style_model_and_a_thumbnail_picks_the_model_and_style(page):
    from lossnet.registry import bundled
    page.wait_for_function("() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=120_000)
    shown = set(page.eval_on_selector_all("#gallery-list .model", "ms => ms.map(m => m.dataset.model)"))
    assert set(bundled("style")) <= shown
    assert len(page.query_selector_all(".thumb[data-model=paintings8]")) == 8
    line = page.inner_text(".model[data-model=starry] .model-description")
    assert line == bundled("style")["starry"].description
    page.select_option("#method", "saliency")
    page.click(".thumb[data-model=paintings8][data-style='2']")  # the scream
    assert page.input_value("#method") == "fast-style" and page.input_value("#param-model") == "paintings8"
    assert page.input_value("#param-blend") == "0,0,1,0,0,0,0,0"
    assert page.input_value("#live-model") == "paintings8"
    assert page.get_attribute(".thumb.picked", "data-style") == "2"
    page.click(".thumb[data-model=starry]")
    assert page.input_value("#param-model") == "starry" and page.query_selector_all("[data-param=blend] input[type=range]") == []
    page.query_selector("#gallery").screenshot(path=str(SCREENSHOTS / "studio-gallery.png"))


LIVE_STATS = """() => {
  const out = document.querySelector('#live-output'), video = document.querySelector('#live-video');
  const w = out.width, h = out.height, a = out.getContext('2d').getImageData(0, 0, w, h).data;
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const ctx = c.getContext('2d'); ctx.drawImage(video, 0, 0, w, h);
  const b = ctx.getImageData(0, 0, w, h).data;
  let diff = 0; const mean = [0, 0, 0];
  for (let i = 0; i < a.length; i += 4) {
    for (let k = 0; k < 3; k++) { diff += Math.abs(a[i + k] - b[i + k]); mean[k] += a[i + k]; }
  }
  const n = a.length / 4;
  return { diff: diff / (3 * n), mean: mean.map(m => m / n), frames: Number(document.querySelector('#live-fps').dataset.frames),
           fps: parseFloat(document.querySelector('#live-fps').textContent), model: out.dataset.model };
}"""


KEEP_OUTPUT = "() => { const o = document.querySelector('#live-output'); " \
              "window.keptOutput = o.getContext('2d').getImageData(0, 0, o.width, o.height).data.slice(); }"
CHANGE_SINCE_KEPT = """() => {
  const o = document.querySelector('#live-output'), a = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (i % 4 !== 3) diff += Math.abs(a[i] - window.keptOutput[i]);
  return diff / (a.length * 3 / 4);
}"""


def test_live_mode_with_a_fake_camera(page):
    page.wait_for_function("() => document.querySelector('#live-model').options.length > 0")
    page.select_option("#live-model", "starry-lite")
    page.click("#live-camera")
    page.wait_for_function("() => Number(document.querySelector('#live-fps').dataset.frames) >= 5", timeout=60_000)
    first = page.evaluate(LIVE_STATS)
    assert first["model"] == "starry-lite" and first["diff"] > 20  # the camera's frames come back stylised
    page.wait_for_function("n => Number(document.querySelector('#live-fps').dataset.frames) >= n + 5", arg=first["frames"],
                           timeout=60_000)
    second = page.evaluate(LIVE_STATS)
    assert second["fps"] > 0 and second["frames"] > first["frames"]  # the counter moves
    assert "latency" in page.inner_text("#live-latency")
    page.query_selector("#live").screenshot(path=str(SCREENSHOTS / "studio-live.png"))
    # The camera's picture moves; held still, one model gives one picture, and another model another one.
    page.evaluate("() => document.querySelector('#live-video').pause()")
    frames = lambda: page.evaluate(LIVE_STATS)["frames"]  # noqa: E731
    page.wait_for_function("n => Number(document.querySelector('#live-fps').dataset.frames) >= n + 3", arg=frames())
    page.evaluate(KEEP_OUTPUT)
    page.wait_for_function("n => Number(document.querySelector('#live-fps').dataset.frames) >= n + 3", arg=frames())
    same_model = page.evaluate(CHANGE_SINCE_KEPT)
    page.select_option("#live-model", "wave")  # switching the model while it runs
    page.wait_for_function("() => document.querySelector('#live-output').dataset.model === 'wave'", timeout=60_000)
    page.wait_for_function("n => Number(document.querySelector('#live-fps').dataset.frames) >= n + 2", arg=frames())
    other_model = page.evaluate(CHANGE_SINCE_KEPT)
    assert same_model < 2 and other_model > 10, (same_model, other_model)
    known = page.eval_on_selector_all(".job", "cards => cards.map(c => c.dataset.id)")
    page.click("#live-snapshot")
    page.wait_for_function("known => [...document.querySelectorAll('.job')].some(c => !known.includes(c.dataset.id))",
                           arg=known)
    assert page.inner_text(".job:first-child .job-title") == "Live snapshot"
    page.click("#live-stop")
    tracks = "studioLive.stream.getTracks()"
    assert page.evaluate(f"() => {tracks}.length > 0 && {tracks}.every(t => t.readyState === 'ended')")
    assert page.evaluate("() => document.querySelector('#live-video').srcObject === null")
    assert page.get_attribute("body", "data-live") == "off"


def test_a_refused_live_connection_says_why_and_turns_the_camera_off(page):
    """Live mode's pages are counted (4 at once): the fifth hears why, and its camera goes off again."""
    opened = page.evaluate("""async () => {
      const url = `ws://${location.host}/api/live`;
      window.otherPages = await Promise.all([0, 1, 2, 3].map(() => new Promise(done => {
        const ws = new WebSocket(url);
        ws.onopen = () => done(ws);
        ws.onclose = () => done(ws);
      })));
      return window.otherPages.filter(ws => ws.readyState === WebSocket.OPEN).length;
    }""")
    assert opened == 4
    page.click("#live-camera")
    page.wait_for_function("() => !document.querySelector('#live-error').hidden", timeout=30_000)
    assert "try again later" in page.inner_text("#live-error")
    tracks = "studioLive.stream.getTracks()"
    page.wait_for_function(f"() => {tracks}.length > 0 && {tracks}.every(t => t.readyState === 'ended')")
    assert page.get_attribute("body", "data-live") == "off"
    page.evaluate("() => window.otherPages.forEach(ws => ws.close())")
