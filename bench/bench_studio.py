"""The studio under load, and a screenshot of the page mid-run.

    python bench/bench_studio.py             # prints the section and writes it into BENCHMARKS.md
    python bench/bench_studio.py --no-write  # prints only
    python bench/bench_studio.py --screenshot docs/studio/studio.png   # also the README's picture (Chromium)

Load: `lossnet serve` with one worker and 8 waiting places; CLIENTS clients submit a feed-forward job at once
(starry-lite, 128 px), then each polls `GET /api/jobs/{id}` every 0.2 s until its job ends. Every job must end
done or be refused with 503 (none lost, none stuck). Peak RSS is sampled every 0.1 s for the server alone
and for the server with its job processes; latency is of the polls and of `GET /` during the load.
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CLIENTS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, threads: int = 1, max_queued: int = 8):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lossnet", "serve", "--port", str(port), "--run-dir", str(run_dir),
                                "--threads", str(threads), "--max-queued", str(max_queued)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the studio did not start")


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for key, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    for key, (name, data) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
                  f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(url: str, body: bytes | None = None, content_type: str | None = None, method: str | None = None):
    """(status, headers, json body, seconds)."""
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            data, status, headers = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        data, status, headers = e.read(), e.code, dict(e.headers)
    elapsed = time.perf_counter() - start
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    return status, headers, parsed, elapsed


def rss_mb(pid: int) -> tuple[float, float]:
    """(the process's RSS, with all its descendants') in MB, from /proc."""
    def rss(p: int) -> float:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def children(p: int) -> list[int]:
        found = []
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                found += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except OSError:
            pass
        return found
    own, total, stack = rss(pid), 0.0, [pid]
    while stack:
        p = stack.pop()
        total += rss(p)
        stack += children(p)
    return own, total


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def load_test(photo: bytes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp))
        peaks, stop = [0.0, 0.0], threading.Event()

        def sample():
            while not stop.is_set():
                own, total = rss_mb(server.pid)
                peaks[0], peaks[1] = max(peaks[0], own), max(peaks[1], total)
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        body, ctype = multipart({"method": "fast-style", "model": "starry-lite", "size": "128"}, {"content": ("p.png", photo)})
        barrier, results, polls, page_times = threading.Barrier(CLIENTS), [None] * CLIENTS, [], []

        def client(i: int):
            barrier.wait()
            status, headers, job, _ = request(url + "/api/jobs", body, ctype)
            if status != 202:
                results[i] = (status, {k.lower(): v for k, v in headers.items()}.get("retry-after"), None)
                return
            deadline = time.time() + 600
            while time.time() < deadline:
                _, _, state, seconds = request(f"{url}/api/jobs/{job['id']}")
                polls.append(seconds)
                if state["state"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.2)
            results[i] = (status, None, state["state"])

        def page_client():
            while not stop.is_set():
                page_times.append(request(url + "/")[3])
                time.sleep(0.5)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        watcher = threading.Thread(target=page_client, daemon=True)
        start = time.time()
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - start
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    accepted = [r for r in results if r and r[0] == 202]
    refused = [r for r in results if r and r[0] == 503]
    return {"clients": CLIENTS, "accepted": len(accepted), "done": sum(r[2] == "done" for r in accepted),
            "refused_503": len(refused), "retry_after": sorted({r[1] for r in refused}),
            "lost_or_stuck": CLIENTS - len(accepted) - len(refused) + sum(r[2] != "done" for r in accepted),
            "wall_s": wall, "polls": len(polls), "poll_p50_ms": 1000 * percentile(polls, 0.5),
            "poll_p95_ms": 1000 * percentile(polls, 0.95), "page_p95_ms": 1000 * percentile(page_times, 0.95),
            "peak_server_mb": peaks[0], "peak_total_mb": peaks[1]}


def screenshot(path: Path, content: Path, style: Path) -> None:
    """The page with a Gatys job at the studio's defaults caught mid-run, under a finished feed-forward one."""
    import shutil

    from playwright.sync_api import sync_playwright
    chromium = next(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n))
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp), threads=2)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url + "/")
                page.wait_for_selector("body[data-ready=true]")
                page.select_option("#method", "fast-style")
                page.set_input_files("input[name=content]", str(content))
                page.select_option("#param-model", "starry")
                page.fill("#param-size", "256")
                page.click("#run")
                page.wait_for_selector(".job[data-state=done]", timeout=120_000)
                page.select_option("#method", "stylize")
                page.set_input_files("input[name=content]", str(content))
                page.set_input_files("input[name=style]", str(style))
                page.click("#run")
                page.wait_for_function("() => { const c = document.querySelector('.job[data-state=running]');"
                                       " return c && c.querySelector('.job-progress').value > 0.4; }", timeout=300_000)
                page.wait_for_timeout(1200)  # the latest preview decoded
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


def section(stats: dict, load: str) -> str:
    """The section's table and what it means; `load`: the load average at the start."""
    s = stats
    return "\n".join([
        "| clients | accepted (202) | done | refused (503) | Retry-After (s) | lost or stuck | wall | "
        "status polls | poll p50 | poll p95 | `GET /` p95 | peak RSS server | peak RSS server + jobs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['clients']} | {s['accepted']} | {s['done']} | {s['refused_503']} | {', '.join(map(str, s['retry_after']))} "
        f"| {s['lost_or_stuck']} | {s['wall_s']:.1f} s | {s['polls']} | {s['poll_p50_ms']:.1f} ms | "
        f"{s['poll_p95_ms']:.1f} ms | {s['page_p95_ms']:.1f} ms | {s['peak_server_mb']:.0f} MB | {s['peak_total_mb']:.0f} MB |",
        "",
        f"`lossnet serve --workers 1 --max-queued 8 --threads 1`; {s['clients']} clients submit a feed-forward job "
        "(starry-lite, 128 px) at the same moment, then poll it every 0.2 s while one more client loads `/` every "
        "0.5 s: every job must end done or refused with 503 and a Retry-After, none lost or stuck. Load average "
        f"{load} at the start.",
    ])


def main(argv=None) -> None:
    from lossnet.io import to_pil
    from run import load_average, record
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import photo
    buffer = io.BytesIO()
    to_pil(photo("astronaut", 128)).save(buffer, format="PNG")
    load = load_average()
    stats = load_test(buffer.getvalue())
    record("Studio under load", section(stats, load), "bench_studio.py", write="--no-write" not in argv)
    if "--screenshot" in argv:
        from lossnet.io import save_image
        out = Path(argv[argv.index("--screenshot") + 1])
        with tempfile.TemporaryDirectory() as tmp:
            data = ROOT.parent / "shared" / "data"
            content = next(iter(sorted((data / "photos" / "BSDS500" / "test").glob("*.jpg"))), None)
            style = data / "styles" / "starry_night.jpg"
            if content is None or not style.is_file():
                content, style = save_image(photo("astronaut", 512), Path(tmp) / "astronaut.png"), \
                    save_image(photo("coffee", 512), Path(tmp) / "coffee.png")
            screenshot(out, content, style)
        print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
