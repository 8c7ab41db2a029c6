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
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import photo

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `make test` installs it (scripts/install-chromium.sh)")


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
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True)
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


def test_the_server_binds_to_loopback_and_says_so(server):
    assert server[0].startswith("http://127.0.0.1:") and "loopback only" in server[1]


def test_feed_forward_style_result_shows_and_downloads_at_the_right_size(page, images, tmp_path):
    choose(page, "fast-style", {"content": [images["photo"]]}, model="starry-lite", size=80)
    page.click("#run")
    card = page.wait_for_selector(".job[data-state=done]", timeout=60_000)
    result = card.query_selector(".job-result")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=result)
    assert result.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [80, 80]
    with page.expect_download() as download:
        card.query_selector(".job-download").click()
    saved = tmp_path / "download.png"
    download.value.save_as(saved)
    assert Image.open(saved).size == (80, 80)


def test_gatys_progress_moves_and_the_live_preview_changes(page, images):
    choose(page, "stylize", {"content": [images["photo"]], "style": [images["painting"]]}, size=64, iters=60)
    page.click("#run")
    card = page.wait_for_selector(".job[data-state=running]", timeout=30_000)
    preview = card.query_selector(".job-preview")
    page.wait_for_function("img => !img.hidden && img.complete && img.naturalWidth > 0", arg=preview, timeout=30_000)
    first_src, first_progress = preview.get_attribute("src"), card.query_selector(".job-progress").evaluate("p => p.value")
    first_pixels = preview.screenshot()
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src && img.complete && img.naturalWidth > 0",
                           arg=[preview, first_src], timeout=30_000)
    assert card.query_selector(".job-progress").evaluate("p => p.value") > first_progress
    assert preview.screenshot() != first_pixels  # the iterate changed on the page
    assert "left" in card.query_selector(".job-info").inner_text()  # an ETA is shown
    page.wait_for_selector(".job[data-state=done]", timeout=60_000)


def test_cancel_a_running_job(page, images):
    choose(page, "stylize", {"content": [images["photo"]], "style": [images["painting"]]}, size=64, iters=2000)
    page.click("#run")
    card = page.wait_for_selector(".job[data-state=running]", timeout=30_000)
    page.wait_for_function("card => card.querySelector('.job-progress').value > 0", arg=card, timeout=30_000)
    card.query_selector(".cancel").click()
    page.wait_for_selector(".job[data-state=cancelled]", timeout=30_000)
    assert card.query_selector(".job-result").is_hidden() and card.query_selector(".job-download").is_hidden()


def test_a_bad_file_shows_the_servers_error_on_the_page(page, images):
    choose(page, "fast-style", {"content": [images["fake"]]}, model="starry-lite")
    page.click("#run")
    error = page.wait_for_selector("#form-error:not([hidden])", timeout=10_000)
    assert "not an image lossnet can read" in error.inner_text()
    assert page.query_selector_all(".job") == []


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
    page.click("#run")
    page.wait_for_selector(".job[data-state=done]", timeout=60_000)
