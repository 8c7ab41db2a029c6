"""The studio's live mode over its WebSocket on loopback: frames per second and latency, with and without a job
running, and the server's memory over the whole run.

    python bench/bench_live.py                  # 30 s per case (2 minutes of live frames); writes BENCHMARKS.md
    python bench/bench_live.py --duration 10    # shorter cases
    python bench/bench_live.py --no-write       # prints only
    python bench/bench_live.py --soak 120       # then 2 minutes at 320x240: is the server's memory flat?

`lossnet serve --threads 1`; one client sends frames as a camera would, 30 a second whether or not the last
was answered (the server keeps only the newest), each a JPEG of a real photo shifted a few pixels from the
last, and times every answer from its frame's sending. Cases: 320x240 and 640x480 with starry-lite, first with
nothing else running, then with a Gatys job (stylize, 128 px, 2000 iterations) running, during which live mode
takes at most a quarter of a core (lossnet/studio/live.py). The server's own RSS is sampled every second
from its start to its end.
"""
from __future__ import annotations

import io
import json
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_studio import multipart, percentile, request, rss_mb, start_server  # noqa: E402

CAMERA_FPS = 30
SIZES = ((320, 240), (640, 480))
MODEL = "starry-lite"
WARMUP_S = 3.0


def frames(size: tuple[int, int], count: int = 30) -> list[bytes]:
    """`count` JPEGs of the astronaut, each a few pixels right of the last (a slow pan)."""
    from lossnet.io import bundled_photo, to_pil
    w, h = size
    photo = to_pil(bundled_photo("astronaut", 2 * max(w, h)))
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        photo.crop((3 * i, h // 2, 3 * i + w, h // 2 + h)).save(buffer, format="JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def live_case(url: str, size: tuple[int, int], duration: float) -> dict:
    """Send at the camera's rate for `duration` s (after a warm-up); fps and latency of the answers."""
    from websockets.sync.client import connect
    pictures = frames(size)
    sent: dict[int, float] = {}
    answers: list[tuple[float, float, dict]] = []  # (time answered, latency s, header)
    stop = threading.Event()
    with connect(url.replace("http://", "ws://") + "/api/live", max_size=None) as ws:
        ws.send(json.dumps({"type": "settings", "model": MODEL}))
        json.loads(ws.recv())

        def camera():
            seq, next_at = 0, time.perf_counter()
            while not stop.is_set():
                seq += 1
                sent[seq] = time.perf_counter()
                ws.send(struct.pack(">I", seq) + pictures[seq % len(pictures)])
                next_at += 1 / CAMERA_FPS
                time.sleep(max(0.0, next_at - time.perf_counter()))
        sender = threading.Thread(target=camera, daemon=True)
        start = time.perf_counter()
        sender.start()
        end = start + WARMUP_S + duration
        while time.perf_counter() < end:
            try:
                message = ws.recv(timeout=max(0.01, end - time.perf_counter()))
            except TimeoutError:
                break
            if isinstance(message, str):
                continue
            now = time.perf_counter()
            length = struct.unpack(">I", message[:4])[0]
            header = json.loads(message[4:4 + length])
            answers.append((now, now - sent[header["seq"]], header))
        stop.set()
        sender.join()
        frames_sent = max(sent)
    measured = [a for a in answers if a[0] >= start + WARMUP_S]
    latencies = [a[1] for a in measured]
    dropped = measured[-1][2]["dropped"] - measured[0][2]["dropped"] if measured else 0
    return {"size": f"{size[0]}x{size[1]}", "fps": len(measured) / duration, "sent": frames_sent,
            "answered": len(answers), "dropped_share": dropped / max(1, dropped + len(measured)),
            "p50_ms": 1000 * percentile(latencies, 0.5), "p95_ms": 1000 * percentile(latencies, 0.95),
            "server_ms": percentile([a[2]["server_ms"] for a in measured], 0.5),
            "paced": sum(a[2]["paced"] for a in measured) / max(1, len(measured))}


def start_job(url: str) -> str:
    from lossnet.io import bundled_photo, to_pil
    pictures = {}
    for field, name in (("content", "astronaut"), ("style", "coffee")):
        buffer = io.BytesIO()
        to_pil(bundled_photo(name, 128)).save(buffer, format="PNG")
        pictures[field] = (f"{name}.png", buffer.getvalue())
    body, ctype = multipart({"method": "stylize", "size": "128", "iters": "2000"}, pictures)
    status, _, job, _ = request(url + "/api/jobs", body, ctype)
    if status != 202:
        raise RuntimeError(f"the job was refused: {job}")
    while request(f"{url}/api/jobs/{job['id']}")[2]["state"] != "running":
        time.sleep(0.2)
    return job["id"]


def run(duration: float, soak: float = 0.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp), threads=1)
        rss: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample():
            begin = time.time()
            while not stop.is_set():
                rss.append((time.time() - begin, rss_mb(server.pid)[0]))
                time.sleep(1.0)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cases = []
        try:
            for size in SIZES:
                cases.append({"job": "none", **live_case(url, size, duration)})
            for size in SIZES:
                job = start_job(url)
                try:
                    cases.append({"job": "Gatys, 128 px", **live_case(url, size, duration)})
                finally:
                    request(f"{url}/api/jobs/{job}/cancel", b"", method="POST")
            if soak:  # one size, nothing else: the RSS of this stretch alone says whether frames leak
                soak_from = len(rss)
                soak_case = {"job": "none", **live_case(url, SIZES[0], soak)}
        finally:
            stop.set()
            sampler.join()
            server.terminate()
            server.wait(timeout=30)
    out = {"cases": cases, "rss": rss, "duration": duration}
    if soak:
        out["soak"] = {"seconds": soak, "case": soak_case, "rss": rss[soak_from:]}
    return out


def rss_summary(rss: list[tuple[float, float]]) -> dict:
    """After the first case's warm-up (models loaded): first, last, peak, and the fitted slope in MB/min."""
    later = [(t, m) for t, m in rss if m > 0][5:] or rss
    n = len(later)
    mean_t, mean_m = sum(t for t, _ in later) / n, sum(m for _, m in later) / n
    spread = sum((t - mean_t) ** 2 for t, _ in later)
    slope = 60 * sum((t - mean_t) * (m - mean_m) for t, m in later) / spread if spread else 0.0
    return {"from_s": later[0][0], "to_s": later[-1][0], "first": later[0][1], "last": later[-1][1],
            "peak": max(m for _, m in later), "slope_mb_min": slope}


def section(stats: dict, conditions: str) -> str:
    r = rss_summary(stats["rss"])
    ms = lambda v: "-" if v != v else f"{v:.0f} ms"  # noqa: E731 - nan: no frame answered
    rows = [f"| {c['size']} | {c['job']} | {c['fps']:.1f} | {ms(c['p50_ms'])} | {ms(c['p95_ms'])} | "
            f"{ms(c['server_ms'])} | {100 * c['dropped_share']:.0f} % | {100 * c['paced']:.0f} % |" for c in stats["cases"]]
    return "\n".join([
        "| frame | job running | fps | latency p50 | latency p95 | server per frame | dropped | paced |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"`lossnet serve --threads 1`; one WebSocket client sends JPEG frames at {CAMERA_FPS} fps without waiting "
        f"for answers; {MODEL}; {stats['duration']:g} s per case after a {WARMUP_S:g} s warm-up. Latency: from a "
        "frame's sending to its stylised frame's arrival. Dropped: frames the server replaced with a newer one "
        "before starting on them. Paced: answers given while a job ran (live mode then keeps to a quarter of a "
        "core, at nice +10). "
        f"{conditions}.",
        "",
        f"Server RSS from {r['from_s']:.0f} s to {r['to_s']:.0f} s: {r['first']:.0f} MB -> {r['last']:.0f} MB "
        f"(peak {r['peak']:.0f} MB, fitted slope {r['slope_mb_min']:+.1f} MB/min)." + soak_line(stats),
    ])


def soak_line(stats: dict) -> str:
    if "soak" not in stats:
        return ""
    soak = stats["soak"]
    r, c = rss_summary(soak["rss"]), soak["case"]
    return (f" Then {soak['seconds']:g} s of {c['size']} frames alone ({c['fps']:.1f} fps): server RSS from "
            f"{r['from_s']:.0f} s to {r['to_s']:.0f} s of that stretch {r['first']:.0f} MB -> {r['last']:.0f} MB "
            f"(peak {r['peak']:.0f} MB, fitted slope {r['slope_mb_min']:+.1f} MB/min).")


def main(argv=None) -> None:
    from run import conditions, record
    import argparse
    argv = list(argv or [])
    parser = argparse.ArgumentParser(prog="bench_live.py", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per case (default 30)")
    parser.add_argument("--soak", type=float, default=0.0,
                        help="then this many seconds at 320x240 alone, for the server's memory (default 0: none)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    start = conditions()
    record("Studio live mode", section(run(args.duration, args.soak), start), "bench_live.py", argv,
           write=not args.no_write)


if __name__ == "__main__":
    main(sys.argv[1:])
