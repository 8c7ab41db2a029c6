"""The studio's API (lossnet.studio) with Starlette's TestClient: real job processes, real bundled models.

Every endpoint, and every bad input the server must refuse with a 4xx JSON error and nothing stored.
"""
from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("httpx2")
from starlette.testclient import TestClient  # noqa: E402

from lossnet.studio import Settings, create_app  # noqa: E402
from lossnet.studio import methods as M  # noqa: E402

from conftest import photo  # noqa: E402


def png_bytes(size: int = 96, name: str = "astronaut") -> bytes:
    from lossnet.io import to_pil
    buffer = io.BytesIO()
    to_pil(photo(name, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int = 30000) -> bytes:
    """A valid PNG header claiming side x side pixels (900 MP) with a few bytes of data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("studio")
    app = create_app(Settings(run_dir=run_dir, workers=1, max_queued=2, max_upload_mb=5, max_pixels=1_000_000, threads=1,
                                  preview_every_s=0.0))  # every iterate: a fast CPU finishes in under a second
    with TestClient(app) as client:
        client.run_dir = run_dir
        yield client


def submit(client, method: str, files: dict | None = None, **fields):
    parts = [(key, (name, data, "application/octet-stream")) for key, items in (files or {}).items()
             for name, data in items]
    return client.post("/api/jobs", data={"method": method, **{k: str(v) for k, v in fields.items()}},
                       files=parts or None)


def wait(client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 120, until=None) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        state = client.get(f"/api/jobs/{job_id}").json()
        if state["state"] in states and (until is None or until(state)):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {state} after {timeout} s")


def job_folders(client) -> set[str]:
    return {p.name for p in Path(client.run_dir).iterdir()}


def test_health_and_methods_come_from_the_cli_parser(studio):
    health = studio.get("/api/health").json()
    assert health["status"] == "ok" and health["workers"] == 1 and health["max_queued"] == 2
    methods = {m["name"]: m for m in studio.get("/api/methods").json()["methods"]}
    assert {"stylize", "fast-style", "superres", "pix2pix", "texture", "saliency", "guided", "occlusion",
            "class-model", "deepdream"} <= set(methods)
    for name, described in methods.items():
        m = M.method(name)
        for row in described["params"]:
            action = M.action(m, row["name"])
            assert row["cli_default"] == action.default  # the CLI's default, read from its parser
            assert row["default"] == m.defaults.get(row["name"], action.default)
            assert row["flag"] in action.option_strings or not action.option_strings
    fast = methods["fast-style"]
    model = next(p for p in fast["params"] if p["name"] == "model")
    assert {"starry", "starry-lite"} <= set(model["choices"]) and model["default"] == "starry"
    assert fast["models"]["scream-kandinsky"]["styles"] == ["the_scream.jpg", "composition_vii.jpg"]
    iters = next(p for p in methods["stylize"]["params"] if p["name"] == "iters")
    assert iters["type"] == "integers" and iters["maximum"] == 2000 and iters["cli_default"] == [150, 100]
    assert not any(p["name"] in ("weights", "device", "output", "run_dir") for m in methods.values() for p in m["params"])


def test_feed_forward_job_runs_to_a_result_at_the_asked_size(studio):
    r = submit(studio, "fast-style", {"content": [("photo.png", png_bytes(96))]}, model="starry-lite", size=80)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/jobs/{job['id']}" and job["state"] in ("queued", "running")
    done = wait(studio, job["id"])
    assert done["state"] == "done", done
    assert done["progress"] == 1.0 and done["result_url"] == f"/api/jobs/{job['id']}/result"
    result = studio.get(done["result_url"])
    assert result.headers["content-type"] == "image/png" and result.headers["content-disposition"].startswith("inline")
    assert Image.open(io.BytesIO(result.content)).size == (80, 80)
    attachment = studio.get(done["result_url"] + "?download=1")
    assert attachment.headers["content-disposition"].startswith("attachment") and attachment.content == result.content
    assert any(j["id"] == job["id"] for j in studio.get("/api/jobs").json()["jobs"])


def test_pixel_loop_job_streams_progress_and_live_previews(studio):
    r = submit(studio, "stylize", {"content": [("c.png", png_bytes(64))], "style": [("s.png", png_bytes(64, "coffee"))]},
               size=64, iters=30)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    import json
    seen = []
    with studio.stream("GET", f"/api/jobs/{job_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        for line in events.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert seen[-1]["state"] == "done", seen[-1]
    progress = [s["progress"] for s in seen if s["state"] == "running"]
    assert progress == sorted(progress) and len(set(progress)) >= 3  # it moved, and never backwards
    assert any(s["eta_s"] for s in seen if s["state"] == "running")
    previews = {s["preview_url"] for s in seen if s["preview_url"]}
    assert len(previews) >= 2  # the iterate was shown more than once while it ran
    preview = studio.get(f"/api/jobs/{job_id}/preview")
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (64, 64)
    assert Image.open(io.BytesIO(studio.get(f"/api/jobs/{job_id}/result").content)).size == (64, 64)


def test_cancel_a_running_and_a_queued_job_and_the_full_queue_answers_503(studio):
    content = {"content": [("c.png", png_bytes(64))], "style": [("s.png", png_bytes(64, "coffee"))]}
    running = submit(studio, "stylize", content, size=64, iters=2000).json()["id"]
    wait(studio, running, ("running",), until=lambda s: s["progress"] > 0)
    queued = [submit(studio, "stylize", content, size=64, iters=2000) for _ in range(2)]
    assert [r.status_code for r in queued] == [202, 202] and queued[1].json()["position"] == 1
    before = job_folders(studio)
    full = submit(studio, "stylize", content, size=64, iters=10)
    assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1 and "queue is full" in full.json()["error"]
    assert job_folders(studio) == before  # nothing stored for the refused job
    early = studio.get(f"/api/jobs/{running}/result")
    assert early.status_code == 409 and "running" in early.json()["error"]
    for r in queued:
        assert studio.delete(f"/api/jobs/{r.json()['id']}").json()["state"] == "cancelled"
    studio.delete(f"/api/jobs/{running}")
    state = wait(studio, running)
    assert state["state"] == "cancelled"
    folder = Path(studio.run_dir) / running
    assert not (folder / "result.png").exists() and not any(p.name.startswith(".") for p in folder.iterdir())
    again = studio.delete(f"/api/jobs/{running}")
    assert again.status_code == 409 and "already ended" in again.json()["error"]


def test_a_failed_job_reports_its_one_line_error_and_the_server_keeps_serving(studio):
    r = submit(studio, "class-model", target="no-such-class-anywhere", iters=2)
    assert r.status_code == 202, r.text
    state = wait(studio, r.json()["id"])
    assert state["state"] == "failed" and "no-such-class-anywhere" in state["error"] and "\n" not in state["error"]
    assert studio.get("/api/health").json()["status"] == "ok"
    missing = studio.get(f"/api/jobs/{r.json()['id']}/result")
    assert missing.status_code == 409 and "failed" in missing.json()["error"]


BAD_UPLOADS = {
    "text named .png": (b"just some text, not pixels\n" * 10, "photo.png", "not an image lossnet can read"),
    "empty": (b"", "photo.jpg", "is empty"),
    "truncated PNG": (png_bytes(96)[:900], "photo.png", "cannot decode"),
    "decompression bomb": (bomb_png(), "bomb.png", "over the 1 MP limit"),
    "tiny": (png_bytes(8), "tiny.png", "at least 16 pixels"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_by_content_and_nothing_is_stored(studio, case):
    data, name, expected = BAD_UPLOADS[case]
    before = job_folders(studio)
    r = submit(studio, "fast-style", {"content": [(name, data)]}, model="starry-lite")
    assert r.status_code == 400 and expected in r.json()["error"], r.text
    assert "\n" not in r.json()["error"] and str(studio.run_dir) not in r.json()["error"]
    assert job_folders(studio) == before


@pytest.mark.parametrize("fields, files, expected", [
    ({"method": "no-such-method"}, {}, "unknown method 'no-such-method'"),
    ({}, {}, "say which method"),
    ({"method": "fast-style", "weights": "/etc/passwd"}, {"content": 1}, "unknown parameter 'weights'"),
    ({"method": "fast-style", "model": "../../etc/passwd"}, {"content": 1}, "parameter model: '../../etc/passwd' is not one of"),
    ({"method": "stylize", "iters": "0"}, {"content": 1, "style": 1}, "parameter iters: expected comma-separated positive"),
    ({"method": "stylize", "iters": "100000"}, {"content": 1, "style": 1}, "parameter iters: at most 2000"),
    ({"method": "stylize", "size": "abc"}, {"content": 1, "style": 1}, "parameter size: expected integer"),
    ({"method": "stylize", "init": "/etc/passwd"}, {"content": 1, "style": 1}, "parameter init: '/etc/passwd' is not one of"),
    ({"method": "stylize", "original_colors": "maybe"}, {"content": 1, "style": 1}, "parameter original_colors: expected true or false"),
    ({"method": "stylize"}, {"content": 1}, "stylize needs a file in 'style'"),
    ({"method": "stylize"}, {"content": 1, "style": 5}, "'style' takes at most 4 files"),
    ({"method": "saliency"}, {"image": 1, "style": 1}, "saliency takes no file 'style'"),
    ({"method": "fast-style"}, {"content": 1, "model_file": 1}, "model_file (m.safetensors): cannot read weights 'm.safetensors': not a valid safetensors"),
    ({"method": "superres"}, {"input": 1}, "over the 1 MP limit"),
])
def test_bad_parameters_are_refused_with_the_parameter_named(studio, fields, files, expected):
    image = png_bytes(64)
    parts = []
    for key, count in files.items():
        for i in range(count):
            parts.append((key, ("m.safetensors", b"\x10\0\0\0\0\0\0\0{}" + b" " * 8, "application/octet-stream")
                          if key == "model_file" else (f"{key}{i}.png", image, "image/png")))
    if fields.get("method") == "superres":  # over the method's own, tighter input limit (x4 of it is the output)
        parts = [("input", ("big.png", bomb_png(1200), "image/png"))]
    before = job_folders(studio)
    r = studio.post("/api/jobs", data=fields, files=parts or None)
    assert r.status_code == 400, r.text
    assert expected in r.json()["error"], r.json()
    assert job_folders(studio) == before


def test_unknown_jobs_routes_and_oversized_requests_get_json_errors(studio):
    assert studio.get("/api/jobs/0123456789abcdef").json() == {"error": "no such job"}
    assert studio.get("/api/jobs/../../etc/passwd").status_code == 404
    assert studio.delete("/api/jobs/nope").status_code == 404
    assert studio.get("/api/nothing-here").status_code == 404
    big = studio.post("/api/jobs", data={"method": "fast-style"},
                      files=[("content", ("big.png", b"\0" * 6_000_000, "image/png"))])
    assert big.status_code == 413 and "5 MB" in big.json()["error"]
    chunked = studio.post("/api/jobs", content=iter([b"method=fast-style"]),
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert chunked.status_code == 411
    page = studio.get("/")
    assert page.status_code == 200 and "lossnet studio" in page.text
    assert studio.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("method, files, fields", [
    ("superres", {"input": [("lr.png", png_bytes(32))]}, {"model": "x4-pixel"}),
    ("pix2pix", {"input": [("labels.png", png_bytes(64))]}, {}),
    ("texture", {"style": [("t.png", png_bytes(48, "coffee"))]}, {"size": 48, "iters": 3}),
    ("saliency", {"image": [("i.png", png_bytes(64))]}, {}),
    ("guided", {"image": [("i.png", png_bytes(64))]}, {"target": "1"}),
    ("occlusion", {"image": [("i.png", png_bytes(64))]}, {"patch": 64, "stride": 64}),
    ("class-model", {}, {"target": "goldfish", "iters": 2}),
    ("deepdream", {"image": [("i.png", png_bytes(64))]}, {"size": 48, "iters": 1, "octaves": 2}),
])
def test_every_method_runs_through_the_studio(studio, method, files, fields):
    r = submit(studio, method, files, **fields)
    assert r.status_code == 202, r.text
    state = wait(studio, r.json()["id"])
    assert state["state"] == "done", state
    image = Image.open(io.BytesIO(studio.get(state["result_url"]).content))
    if method == "superres":
        assert image.size == (128, 128)
    assert min(image.size) >= 32
