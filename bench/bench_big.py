"""Large photos: lossnet's feed-forward style path against a plain PyTorch network, side by side.

    python bench/bench_big.py [--sizes 512,1024,2048,4032x3024] [--precisions fp32,bf16] [--repeats 2] [--no-write]

The plain network is pytorch/examples' fast-neural-style TransformerNet written plainly (`plain.py`:
`nn.ReflectionPad2d`, `nn.Conv2d`, `nn.InstanceNorm2d`, nearest upsampling, NCHW, fp32); lossnet runs
`fast.apply` as `lossnet stylize --model starry` does (whole when the image fits in memory, tiles otherwise),
and, on images of 2048 px and more, with `--max-memory 1` (GiB), which forces tiles: their cost per pixel
against the whole image's.
Every run is a fresh process (its peak RSS is the process's), the two alternate A B A B, and the best time of
`--repeats` counts. bf16 only where the CPU has it (AVX512-BF16 or AMX): the plain network then runs under
torch's CPU autocast.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

THREADS = int(os.environ.get("BENCH_THREADS", "2"))

# One run in a fresh process: prints {"seconds": .., "peak_gb": ..}.
RUN = r"""
import json, resource, sys, time, torch
torch.set_num_threads({threads})
torch.manual_seed(0)
sys.path.insert(0, "bench")
from lossnet import fast
from plain import PlainTransformerNet

h, w, which, precision = {h}, {w}, {which!r}, {precision!r}
image = torch.rand(1, 3, h, w)
if which == "plain":
    net = PlainTransformerNet().eval()
    def run():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            return (net(image * 255) / 255).clamp(0, 1).float()
else:
    net = fast.load_transformer("starry")
    budget = {max_memory}
    def run():
        return fast.apply(net, image, precision=precision, max_memory=budget)
start = time.perf_counter()
run()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}}))
"""


def one(which: str, h: int, w: int, precision: str, max_memory: float | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "LOSSNET_OFFLINE": "1"}
    code = RUN.format(threads=THREADS, h=h, w=w, which=which, precision=precision, max_memory=max_memory)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode:
        raise SystemExit(f"{which} {w}x{h} {precision} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(h or w), int(w)


def main(argv=None) -> None:
    from lossnet.precision import cpu_info
    from run import record

    p = argparse.ArgumentParser(prog="bench_big.py")
    p.add_argument("--sizes", default="512,1024,2048,4032x3024")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    flags = cpu_info()[1]
    precisions = [x for x in a.precisions.split(",") if x == "fp32" or {"avx512_bf16", "amx_bf16"} & set(flags)]
    lines = ["| image | precision | plain PyTorch s | lossnet s | lossnet / plain | plain peak GB | lossnet peak GB | "
             "lossnet in tiles, --max-memory 1: s | tiles / whole | peak GB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size in a.sizes.split(","):
        h, w = parse_size(size)
        for precision in precisions:
            runs = {"plain": [], "lossnet": []} | ({"tiles": []} if max(h, w) >= 2048 else {})
            for _ in range(a.repeats):
                for which in runs:
                    runs[which].append(one("lossnet" if which == "tiles" else which, h, w, precision,
                                           1.0 if which == "tiles" else None))
            best = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
            peak = {k: max(r["peak_gb"] for r in v) for k, v in runs.items()}
            tiles = (f"{best['tiles']:.2f} | {best['tiles'] / best['lossnet']:.2f}x | {peak['tiles']:.2f}"
                     if "tiles" in best else "- | - | -")
            lines.append(f"| {w}x{h} | {precision} | {best['plain']:.2f} | {best['lossnet']:.2f} | "
                         f"{best['lossnet'] / best['plain']:.2f}x | {peak['plain']:.2f} | {peak['lossnet']:.2f} | {tiles} |")
            print(lines[-1], flush=True)
    lines += ["", f"Seconds and peak RSS of stylising one image with `starry` ({THREADS} thread{'s' * (THREADS != 1)}; each run a fresh "
              f"process, the two alternating, best of {a.repeats}) against pytorch/examples' network written plainly "
              "(bench/plain.py); `lossnet / plain` below 1 is lossnet faster. lossnet runs an image whole while it "
              "fits in half the available memory; the last three columns force tiles with `--max-memory 1` (GiB), "
              "whose cost includes the statistics pass over a 2 MP copy that keeps tiles in agreement."]
    record("Large photos: lossnet against a plain PyTorch network", "\n".join(lines), "bench_big.py",
           sys.argv[1:] if argv is None else argv, write=not a.no_write)


if __name__ == "__main__":
    main(sys.argv[1:])
