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
    return {p.name for p in Path(client.run_dir).iterdir() if len(p.name) == 32 or p.name.startswith(".")}


def test_health_and_methods_come_from_the_cli_parser(studio):
    health = studio.get("/api/health").json()
    assert health["status"] == "ok" and health["workers"] == 1 and health["max_queued"] == 2
    methods = {m["name"]: m for m in studio.get("/api/methods").json()["methods"]}
    assert {"stylize", "fast-style", "wct", "adain", "superres", "pix2pix", "texture", "saliency", "guided", "occlusion",
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
    size_help = {name: next(p["help"] for p in methods[name]["params"] if p["name"] == "size")
                 for name in ("stylize", "wct", "adain")}
    assert "coarse to fine" in size_help["stylize"]  # the optimisation's stages; one pass has none
    assert size_help["wct"] == size_help["adain"] == "longest side of the output"
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


def test_any_painting_in_one_pass_with_a_mask_and_two_paintings(studio):
    import numpy as np
    mask = Image.new("L", (96, 96), 0)
    mask.paste(255, (0, 0, 48, 96))  # the left half takes the first painting
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    files = {"content": [("c.png", png_bytes(96))],
             "style": [("a.png", png_bytes(96, "coffee")), ("b.png", png_bytes(96, "chelsea"))],
             "mask": [("m.png", buffer.getvalue())]}
    results = {}
    for method in ("wct", "adain"):
        r = submit(studio, method, files, size=96, alpha=0.8)
        assert r.status_code == 202, r.text
        done = wait(studio, r.json()["id"])
        assert done["state"] == "done", done
        results[method] = np.asarray(Image.open(io.BytesIO(studio.get(done["result_url"]).content)), dtype=float)
        assert results[method].shape == (96, 96, 3)
    assert np.abs(results["wct"] - results["adain"]).mean() > 2  # each studio method runs its own transform
    refused = submit(studio, "wct", files, iters=50)  # the optimisation's options are not on its page
    assert refused.status_code == 400 and "iters" in refused.json()["error"]


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
        assert studio.post(f"/api/jobs/{r.json()['id']}/cancel").json()["state"] == "cancelled"
    studio.post(f"/api/jobs/{running}/cancel")
    state = wait(studio, running)
    assert state["state"] == "cancelled"
    folder = Path(studio.run_dir) / running
    assert not (folder / "result.png").exists() and not any(p.name.startswith(".") for p in folder.iterdir())
    again = studio.post(f"/api/jobs/{running}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["error"]
    listed = {j["id"]: j["state"] for j in studio.get("/api/jobs").json()["jobs"]}
    assert listed[running] == "cancelled"  # a cancelled job stays in the history until it is deleted


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
    assert studio.post("/api/jobs/nope/cancel").status_code == 404
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


# ----------------------------------------------------------------------------- history, delete, before/after
def test_a_finished_job_keeps_its_input_for_the_before_after_slider_and_delete_removes_everything(studio):
    photo_png = png_bytes(96)
    r = submit(studio, "fast-style", {"content": [("photo.png", photo_png)]}, model="starry-lite", size=64)
    done = wait(studio, r.json()["id"])
    assert done["state"] == "done" and done["params"] == {"model": "starry-lite", "size": "64"}
    assert done["title"] == "Feed-forward style (Johnson et al.)"
    before = studio.get(done["input_url"])
    assert before.status_code == 200 and before.content == photo_png  # the upload itself, as sent
    folder = Path(studio.run_dir) / done["id"]
    assert folder.is_dir()
    gone = studio.delete(f"/api/jobs/{done['id']}")
    assert gone.status_code == 200 and gone.json() == {"deleted": done["id"]}
    assert not folder.exists() and studio.get(f"/api/jobs/{done['id']}").status_code == 404
    assert done["id"] not in {j["id"] for j in studio.get("/api/jobs").json()["jobs"]}
    # a running job is cancelled, then removed with its folder
    content = {"content": [("c.png", png_bytes(64))], "style": [("s.png", png_bytes(64, "coffee"))]}
    running = submit(studio, "stylize", content, size=64, iters=2000).json()["id"]
    wait(studio, running, ("running",), until=lambda s: s["progress"] > 0)
    assert studio.delete(f"/api/jobs/{running}").status_code == 200
    assert not (Path(studio.run_dir) / running).exists() and studio.get(f"/api/jobs/{running}").status_code == 404
    assert studio.get("/api/health").json()["running"] == 0


def test_the_history_is_one_wal_database_that_threads_write_together_and_a_reopen_reads(tmp_path):
    import sqlite3
    import threading

    from lossnet.studio.history import History
    history = History(tmp_path)
    assert history.notice is None

    def write(first: int) -> None:
        for n in range(first, first + 25):
            job_id = f"{n:032x}"
            history.add({"id": job_id, "method": "fast-style", "argv": ["fast-style"], "stages": 1, "params": {"n": n},
                         "state": "queued", "created": float(n)})
            history.update(job_id, state="done", finished=float(n))
    writers = [threading.Thread(target=write, args=(25 * i,)) for i in range(6)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    with sqlite3.connect(tmp_path / "studio.sqlite3") as other:  # what a restarted server reads, the log included
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done'").fetchone()[0] == 150
    history.close()
    again = History(tmp_path)
    jobs = again.jobs()
    assert [j["params"]["n"] for j in jobs] == list(range(150)) and {j["state"] for j in jobs} == {"done"}
    assert again.notice is None
    again.close()


def test_a_restart_ignores_records_whose_id_or_input_would_leave_the_run_folder(tmp_path):
    from lossnet.studio.history import History
    from lossnet.studio.jobs import JobQueue
    run_dir = tmp_path / "run"
    good = "0" * 31 + "1"
    (run_dir / good).mkdir(parents=True)
    (run_dir / good / "result.png").write_bytes(png_bytes(32))
    history = History(run_dir)
    common = {"method": "fast-style", "argv": [], "stages": 1, "params": {}, "state": "done", "created": 1.0}
    history.add({**common, "id": "../outside"})
    history.add({**common, "id": good, "input": "../../../etc/passwd"})
    history.close()
    queue = JobQueue(run_dir)
    try:
        assert list(queue.jobs) == [good] and queue.jobs[good].state == "done" and queue.jobs[good].input is None
    finally:
        queue.close()


def test_one_studio_per_run_folder(studio):
    from lossnet.errors import LossnetError
    with pytest.raises(LossnetError, match="another lossnet studio is serving"):
        create_app(Settings(run_dir=studio.run_dir))


def test_a_missing_or_corrupt_database_is_reported_and_rebuilt_from_the_job_folders(tmp_path):
    run_dir = tmp_path / "run"
    settings = Settings(run_dir=run_dir, workers=1, threads=1)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").json()["notice"] is None  # a new run folder: nothing to report
        first = wait(client, submit(client, "fast-style", {"content": [("p.png", png_bytes(64))]},
                                    model="starry-lite", size=48).json()["id"])
        assert first["state"] == "done"
    result = (run_dir / first["id"] / "result.png").read_bytes()
    (run_dir / "studio.sqlite3").write_bytes(b"these bytes are not an SQLite database" * 100)
    for part in ("studio.sqlite3-wal", "studio.sqlite3-shm"):
        (run_dir / part).unlink(missing_ok=True)
    with TestClient(create_app(settings)) as client:
        notice = client.get("/api/health").json()["notice"]
        assert "could not be read" in notice and "rebuilt from the job folders (1 job)" in notice
        jobs = client.get("/api/jobs").json()
        assert jobs["notice"] == notice and [(j["id"], j["state"]) for j in jobs["jobs"]] == [(first["id"], "done")]
        assert jobs["jobs"][0]["params"] == {"model": "starry-lite", "size": "48"}
        assert client.get(f"/api/jobs/{first['id']}/result").content == result
    assert len(list(run_dir.glob("studio.sqlite3.corrupt-*"))) == 1  # kept aside, never read again
    for part in run_dir.glob("studio.sqlite3*"):
        part.unlink()
    with TestClient(create_app(settings)) as client:
        notice = client.get("/api/health").json()["notice"]
        assert "was missing" in notice and client.get(f"/api/jobs/{first['id']}").json()["state"] == "done"


class Server:
    """A real `lossnet serve` process on a free port, talked to over HTTP."""

    def __init__(self, run_dir: Path):
        import os
        import socket
        import subprocess
        import sys
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "lossnet", "serve", "--port", str(port), "--run-dir",
                                         str(run_dir), "--threads", "1", "--max-queued", "4"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
        for _ in range(300):
            try:
                self.get("/api/health")
                return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"the server did not start: {self.process.stdout.read()!r}")

    def get(self, path: str):
        import json
        import urllib.request
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            data = r.read()
        return json.loads(data) if r.headers.get_content_type() == "application/json" else data

    def submit(self, method: str, files: dict, **fields) -> str:
        import json
        import urllib.request
        import uuid
        boundary = uuid.uuid4().hex
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                        for k, v in {"method": method, **fields}.items())
        for key, (name, data) in files.items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url + "/api/jobs", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())["id"]

    def wait(self, job_id: str, until, timeout: float = 120) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            state = self.get(f"/api/jobs/{job_id}")
            if until(state):
                return state
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {state}")

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no shutdown code runs
        self.process.wait(timeout=10)
        self.process.stdout.close()


def processes_using(folder: Path) -> list[int]:
    """Processes whose command line names `folder` (a job's worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process in /proc")
def test_history_survives_kill_9_queued_jobs_run_and_the_running_one_is_marked_interrupted(tmp_path):
    run_dir = tmp_path / "run"
    ended = lambda s: s["state"] in ("done", "failed", "cancelled")  # noqa: E731
    server = Server(run_dir)
    try:
        done = server.submit("fast-style", {"content": ("p.png", png_bytes(64))}, model="starry-lite", size=48)
        assert server.wait(done, ended)["state"] == "done"
        result = server.get(f"/api/jobs/{done}/result")
        long = server.submit("stylize", {"content": ("c.png", png_bytes(64)), "style": ("s.png", png_bytes(64, "coffee"))},
                             size=64, iters=2000)
        queued = server.submit("fast-style", {"content": ("q.png", png_bytes(64, "coffee"))}, model="wave", size=48)
        server.wait(long, lambda s: s["state"] == "running" and s["progress"] > 0)
        assert server.get(f"/api/jobs/{queued}")["state"] == "queued"
        assert processes_using(run_dir / long)
    finally:
        server.kill()
    end = time.time() + 10
    while processes_using(run_dir / long) and time.time() < end:  # the job process follows its server
        time.sleep(0.1)
    assert not processes_using(run_dir / long)

    server = Server(run_dir)
    try:
        jobs = {j["id"]: j for j in server.get("/api/jobs")["jobs"]}
        assert list(jobs) == [done, long, queued] and server.get("/api/health")["notice"] is None
        assert jobs[done]["state"] == "done" and server.get(f"/api/jobs/{done}/result") == result
        assert jobs[long]["state"] == "failed" and jobs[long]["error"] == "interrupted by a restart"
        assert jobs[long]["params"] == {"size": "64", "iters": "2000"}
        assert server.wait(queued, ended)["state"] == "done"  # it was waiting: it runs after the restart
        assert max(Image.open(io.BytesIO(server.get(f"/api/jobs/{queued}/result"))).size) == 48
    finally:
        server.kill()

    for part in run_dir.glob("studio.sqlite3-*"):  # and now a broken database (its log gone: it would mend it)
        part.unlink()
    (run_dir / "studio.sqlite3").write_bytes(b"\0garbage" * 4096)
    server = Server(run_dir)
    try:
        assert "could not be read" in server.get("/api/health")["notice"]
        jobs = {j["id"]: j["state"] for j in server.get("/api/jobs")["jobs"]}
        assert jobs == {done: "done", long: "failed", queued: "done"}
        assert server.get(f"/api/jobs/{done}/result") == result
    finally:
        server.kill()


# ----------------------------------------------------------------------------- the gallery
def test_the_gallery_shows_every_style_model_once_per_style_and_caches_thumbnails_by_file_hash(studio):
    from lossnet.registry import bundled
    from lossnet.weights import file_sha256
    models = {m["key"]: m for m in studio.get("/api/gallery").json()["models"]}
    style_models = bundled("style")
    assert set(style_models) <= set(models) and not {"x4-pixel", "facades-label2photo"} & set(models)
    paintings = models["paintings8"]
    assert len(paintings["thumbs"]) == 8 and paintings["styles"][2] == "the scream"
    assert paintings["description"] == style_models["paintings8"].description
    first = studio.get(paintings["thumbs"][0])
    assert first.status_code == 200 and Image.open(io.BytesIO(first.content)).size == (160, 160)
    cached = Path(studio.run_dir) / "gallery" / f"{file_sha256(style_models['paintings8'].path)}-0.png"
    made = cached.stat().st_mtime_ns
    assert studio.get(paintings["thumbs"][0]).content == first.content and cached.stat().st_mtime_ns == made
    other = studio.get(paintings["thumbs"][2]).content
    assert other != first.content  # another style, another picture
    assert studio.get("/api/gallery/paintings8/8.png").status_code == 404
    assert studio.get("/api/gallery/no-such-model/0.png").status_code == 404


def test_an_uploaded_model_joins_the_gallery_and_runs_by_its_key(studio, tmp_path):
    from lossnet.registry import bundled, set_description
    mine = tmp_path / "my-starry.safetensors"
    mine.write_bytes(bundled("style")["starry-lite"].path.read_bytes())
    set_description(mine, "my own starry night")  # another file: another hash
    r = studio.post("/api/models", files=[("model", ("my-starry.safetensors", mine.read_bytes(), "application/octet-stream"))])
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["key"].startswith("upload-") and entry["name"] == "my-starry" and entry["description"] == "my own starry night"
    again = studio.post("/api/models", files=[("model", ("copy.safetensors", mine.read_bytes(), "application/octet-stream"))])
    assert again.json()["key"] == entry["key"]  # the same file is one entry
    assert [m["key"] for m in studio.get("/api/gallery").json()["models"]].count(entry["key"]) == 1
    assert Image.open(io.BytesIO(studio.get(entry["thumbs"][0]).content)).size == (160, 160)
    job = wait(studio, submit(studio, "fast-style", {"content": [("p.png", png_bytes(64))]}, model=entry["key"],
                              size=48).json()["id"])
    assert job["state"] == "done", job
    bad = studio.post("/api/models", files=[("model", ("m.safetensors", b"not a model at all", "application/octet-stream"))])
    assert bad.status_code == 400 and "m.safetensors" in bad.json()["error"]
    assert not any(p.name.startswith(".upload-") for p in Path(studio.run_dir).iterdir())


# ----------------------------------------------------------------------------- live mode
def jpeg_bytes(size=(96, 64), name="astronaut") -> bytes:
    from lossnet.io import to_pil
    buffer = io.BytesIO()
    to_pil(photo(name, max(size))).resize(size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def live_result(ws) -> tuple[dict, Image.Image]:
    import json
    import struct
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            data = message["bytes"]
            length = struct.unpack(">I", data[:4])[0]
            return json.loads(data[4:4 + length]), Image.open(io.BytesIO(data[4 + length:])).convert("RGB")
        text = json.loads(message["text"])
        assert text["type"] != "error", text


def test_live_mode_stylises_the_newest_frame_and_drops_the_rest(studio):
    import json
    import struct

    import numpy as np
    frame = jpeg_bytes()
    source = np.asarray(Image.open(io.BytesIO(frame)).convert("RGB"), dtype=np.float32)
    with studio.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "settings", "model": "starry-lite"}))
        assert json.loads(ws.receive_text())["model"] == "starry-lite"
        ws.send_bytes(struct.pack(">I", 1) + frame)
        header, first = live_result(ws)
        assert header["seq"] == 1 and header["model"] == "starry-lite" and first.size == (96, 64)
        assert np.abs(np.asarray(first, dtype=np.float32) - source).mean() > 20  # stylised, not echoed
        for seq in range(2, 12):  # ten frames at once: only the newest are worked on
            ws.send_bytes(struct.pack(">I", seq) + frame)
        answered = []
        while not answered or answered[-1]["seq"] != 11:
            answered.append(live_result(ws)[0])
        assert len(answered) < 10 and answered[-1]["dropped"] == 10 - len(answered)
        ws.send_text(json.dumps({"type": "settings", "model": "wave"}))
        ws.send_bytes(struct.pack(">I", 12) + frame)
        header, waved = live_result(ws)
        assert header["model"] == "wave" and np.abs(np.asarray(waved, dtype=np.float32) - np.asarray(first, dtype=np.float32)).mean() > 10
        ws.send_text(json.dumps({"type": "settings", "model": "paintings8", "blend": [1, 2]}))
        assert "2 weights given for 8 items" in json.loads(ws.receive_text())["error"]
        ws.send_text(json.dumps({"type": "settings", "model": "paintings8", "blend": [float("nan")] * 8}))
        assert "finite" in json.loads(ws.receive_text())["error"]  # JSON lets NaN through; the check does not
        ws.send_text(json.dumps({"type": "settings", "model": "../../etc/passwd"}))
        assert "no style model" in json.loads(ws.receive_text())["error"]
        ws.send_bytes(struct.pack(">I", 13) + b"not a picture")
        assert json.loads(ws.receive_text()) == {"type": "error", "error": "a frame could not be decoded as an image", "seq": 13}
        ws.send_text(json.dumps({"type": "settings", "model": "starry-lite", "stabilise": True}))
        ws.receive_text()
        for seq in (14, 15):
            ws.send_bytes(struct.pack(">I", seq) + frame)
            assert live_result(ws)[0]["seq"] == seq
        ws.send_text(json.dumps({"type": "snapshot"}))
        snap = json.loads(ws.receive_text())
    assert snap["type"] == "snapshot" and snap["job"]["state"] == "done" and snap["job"]["title"] == "Live snapshot"
    listed = studio.get(f"/api/jobs/{snap['job']['id']}").json()
    assert listed["params"] == {"model": "starry-lite", "stabilise": True}
    assert Image.open(io.BytesIO(studio.get(listed["result_url"]).content)).size == (96, 64)
    assert Image.open(io.BytesIO(studio.get(listed["input_url"]).content)).size == (96, 64)


def test_live_mode_slows_down_while_a_job_runs_and_refuses_other_sites(studio):
    import struct
    content = {"content": [("c.png", png_bytes(64))], "style": [("s.png", png_bytes(64, "coffee"))]}
    running = submit(studio, "stylize", content, size=64, iters=2000).json()["id"]
    wait(studio, running, ("running",))
    try:
        with studio.websocket_connect("/api/live") as ws:
            ws.send_bytes(struct.pack(">I", 1) + jpeg_bytes())
            assert live_result(ws)[0]["paced"] is True
    finally:
        studio.post(f"/api/jobs/{running}/cancel")
    wait(studio, running)
    with studio.websocket_connect("/api/live") as ws:
        ws.send_bytes(struct.pack(">I", 1) + jpeg_bytes())
        assert live_result(ws)[0]["paced"] is False
    from starlette.websockets import WebSocketDisconnect
    with pytest.raises(WebSocketDisconnect) as refused:
        with studio.websocket_connect("/api/live", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_text()
    assert refused.value.code == 1008


def test_live_mode_takes_a_bounded_number_of_pages_and_bounded_frames(studio):
    import contextlib
    import json
    import struct

    from starlette.websockets import WebSocketDisconnect

    from lossnet.studio.live import MAX_MESSAGE_BYTES
    with contextlib.ExitStack() as pages:
        first = pages.enter_context(studio.websocket_connect("/api/live"))
        for _ in range(3):  # Settings.live_connections is 4
            pages.enter_context(studio.websocket_connect("/api/live"))
        with pytest.raises(WebSocketDisconnect) as refused:
            with studio.websocket_connect("/api/live") as ws:
                ws.receive_text()
        assert refused.value.code == 1013
        first.send_bytes(struct.pack(">I", 1) + b"\xff" * MAX_MESSAGE_BYTES)
        assert json.loads(first.receive_text()) == {"type": "error", "error": f"a frame is at most {MAX_MESSAGE_BYTES >> 20} MB"}
    with studio.websocket_connect("/api/live") as ws:  # the pages that left made room again
        ws.send_bytes(struct.pack(">I", 1) + jpeg_bytes())
        assert live_result(ws)[0]["seq"] == 1
