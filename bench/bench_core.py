"""Core benchmark: the project's pixel loop against a naive reference loop, and the peak memory of a large run.

Both loops optimise the same objective with the same weights, images and L-BFGS settings (one iteration
per step, history 20, lr 1), so the time per iteration compares the machinery alone:

* project: `lossnet.style.stylize` -> `optimize_pixels` on an objective built from a `LossNetwork`
  (content relu4_2, style relu1_1..relu5_1, TV; weights 1 / 10 / 1, the `StyleConfig` defaults);
* naive (written here, sharing no lossnet code but the weights and their input normalisation): the whole
  VGG16 `features` stack (all 31 layers) as a plain `nn.Sequential` with forward hooks on the taps,
  out-of-place ReLUs, parameters left trainable as a fresh module has them, and every step it recomputes
  the targets (content features, style Grams) from the content and style images (without a graph).

The first iteration's loss of both loops is printed: equal values show they optimise the same thing.
Peak memory: a 1024x1024 `stylize` run in a fresh process, max RSS from `resource.getrusage`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
HEADING = "Core: pixel loop"
CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1.0, 10.0, 1.0
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-image's astronaut (content) and lossnet's procedural 'swirls' (style), size x size."""
    from lossnet.io import bundled_photo
    from lossnet.procedural import make_style

    return bundled_photo("astronaut", size), make_style("swirls", size).contiguous()


# --- the project's loop -------------------------------------------------------------------------------

def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is what other jobs on shared cores disturb least."""
    return time.perf_counter(), time.process_time()


def per_iteration(stamps: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each iteration after the first."""
    wall, cpu = np.diff(np.array(stamps), axis=0).T
    return list(wall), list(cpu)


def project_loop(content, style, iters: int) -> tuple[tuple[list[float], list[float]], float]:
    """Wall and CPU seconds of each iteration after the first, and the first iteration's loss."""
    from lossnet.optimize import LoopConfig
    from lossnet.style import StyleConfig, stylize

    stamps = []
    loop = LoopConfig(iters=iters, progress=False, project=lambda x, it: stamps.append(clock()))
    cfg = StyleConfig(sizes=[max(content.shape[-2:])], content_layers=[CONTENT_LAYER], style_layers=STYLE_LAYERS,
                      content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT, loop=loop)
    result = stylize(content, [style], cfg)
    return per_iteration(stamps), result.history[0]["loss"]


# --- the naive reference loop -------------------------------------------------------------------------

def naive_network(state_dict, ceil_mode: bool) -> tuple[nn.Sequential, dict[str, int]]:
    """All of VGG16's `features` (31 layers) and the index of every named layer."""
    layers, names, block, conv, channels = [], {}, 1, 1, 3
    for v in VGG16:
        if v == "M":
            names[f"pool{block}"] = len(layers)
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = len(layers)
            layers.append(nn.Conv2d(channels, v, 3, padding=1))
            names[f"relu{block}_{conv}"] = len(layers)
            layers.append(nn.ReLU())
            channels, conv = v, conv + 1
    net = nn.Sequential(*layers)
    net.load_state_dict({k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")})
    return net, names


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def relative(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).mean() / (target.pow(2).mean() + 1e-8)


def naive_loop(content, style, iters: int, weights) -> tuple[tuple[list[float], list[float]], float]:
    """The same objective, done the simple way: whole network, targets recomputed every step."""
    net, index = naive_network(weights.state_dict, weights.ceil_mode)
    net.eval()
    taps: dict[str, torch.Tensor] = {}
    for name in [CONTENT_LAYER] + STYLE_LAYERS:
        net[index[name]].register_forward_hook(lambda m, i, out, name=name: taps.__setitem__(name, out))

    def features(image):
        taps.clear()
        net(weights.preprocess(image))
        return dict(taps)

    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=20)
    losses = []

    def closure():
        opt.zero_grad()
        with torch.no_grad():
            content_target = features(content)[CONTENT_LAYER]
            style_targets = {k: gram(v) for k, v in features(style).items() if k in STYLE_LAYERS}
        f = features(x)
        style_loss = sum(relative(gram(f[k]), style_targets[k]) for k in STYLE_LAYERS) / len(STYLE_LAYERS)
        tv = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
        loss = CONTENT_WEIGHT * relative(f[CONTENT_LAYER], content_target) + STYLE_WEIGHT * style_loss + TV_WEIGHT * tv
        loss.backward()
        losses.append(loss.item())
        return loss

    stamps = []
    for _ in range(iters):
        opt.step(closure)
        stamps.append(clock())
    return per_iteration(stamps), losses[0]


# --- peak memory --------------------------------------------------------------------------------------

def memory_child(size: int, iters: int) -> None:
    """Run in a fresh process: one `stylize` at size x size; print its peak RSS as JSON."""
    from lossnet.optimize import LoopConfig
    from lossnet.style import StyleConfig, stylize

    content, style = images(size)
    start = time.perf_counter()
    stylize(content, [style], StyleConfig(sizes=[size], loop=LoopConfig(iters=iters, progress=False)))
    seconds = time.perf_counter() - start
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    hwm_kb = next((int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")), None) \
        if Path("/proc/self/status").is_file() else None
    print(json.dumps({"maxrss_mb": maxrss_kb / 1024, "vmhwm_mb": hwm_kb / 1024 if hwm_kb else None, "seconds": seconds}))


def peak_memory(size: int, iters: int) -> dict:
    """Spawned while this process is still small: a child inherits its parent's RSS high-water mark."""
    env = {**os.environ, "LOSSNET_OFFLINE": os.environ.get("LOSSNET_OFFLINE", "1"),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(size), str(iters)], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- driver -------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="bench_core", description="project pixel loop vs a naive loop")
    p.add_argument("--sizes", default="256,512", help="square sizes to time (default 256,512)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per loop (default 10)")
    p.add_argument("--memory-size", type=int, default=1024)
    p.add_argument("--memory-iters", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    p.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import busy, conditions, record

    from lossnet.weights import vgg_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    about = conditions()
    print(about, flush=True)
    print(f"peak memory: {args.memory_size}x{args.memory_size} stylize, {args.memory_iters} iterations ...", flush=True)
    memory = peak_memory(args.memory_size, args.memory_iters)
    print(f"  max RSS {memory['maxrss_mb'] / 1024:.2f} GB in {memory['seconds']:.0f} s", flush=True)

    weights = vgg_weights("vgg16", quiet=True)  # the same weights for both loops
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        content, style = images(size)
        n = args.warmup + 1 + args.iters  # the first diff is the time of iteration 2
        print(f"{size}x{size}: project loop ...", flush=True)
        t_project, loss_project = project_loop(content, style, n)
        print(f"{size}x{size}: naive loop ...", flush=True)
        t_naive, loss_naive = naive_loop(content, style, n, weights)
        (project, naive), (cpu_project, cpu_naive) = [
            (statistics.median(a[args.warmup:]), statistics.median(b[args.warmup:])) for a, b in zip(t_project, t_naive)]
        rows.append((size, project, naive, cpu_project, cpu_naive, loss_project, loss_naive))
        print(f"  wall: project {project:.3f} s/iter, naive {naive:.3f} s/iter, {naive / project:.2f}x; "
              f"CPU: {cpu_project:.3f} vs {cpu_naive:.3f}, {cpu_naive / cpu_project:.2f}x; "
              f"first loss {loss_project:.6g} vs {loss_naive:.6g}", flush=True)

    gb = memory["maxrss_mb"] / 1024
    table = ["| measurement | project | naive reference | project speed-up | goal |", "|---|---|---|---|---|"]
    for size, project, naive, cpu_project, cpu_naive, loss_project, loss_naive in rows:
        table.append(f"| {size}x{size}, s/iteration (wall) | {project:.3f} | {naive:.3f} | **{naive / project:.2f}x** | >= 1.5x |")
        table.append(f"| {size}x{size}, CPU s/iteration | {cpu_project:.3f} | {cpu_naive:.3f} | {cpu_naive / cpu_project:.2f}x | |")
        table.append(f"| {size}x{size}, loss at the first iteration | {loss_project:.6g} | {loss_naive:.6g} | | equal |")
    table.append(f"| {args.memory_size}x{args.memory_size} stylize, {args.memory_iters} iterations, peak RSS | "
                 f"{gb:.2f} GB | | | <= 6 GB |")
    text = "\n".join([
        *table,
        "",
        f"Median seconds per L-BFGS iteration ({args.iters} timed after {args.warmup} warm-up; wall clock, and the "
        "process's CPU time, which other jobs disturb less) on the same objective, weights (offline VGG16) and "
        "images (scikit-image's astronaut, `make_style('swirls')`): the naive loop runs all 31 layers of VGG16 "
        "with trainable parameters and recomputes its targets every step; the project's stops at relu5_1, frozen, "
        "with targets computed once and in-place ReLUs. Peak RSS is a fresh process's. Run with "
        f"{about}" + (", so other jobs shared the cores and times are inflated." if busy() else "."),
    ])
    print(f"(bench_core took {time.time() - started:.0f} s)")
    record(HEADING, text, "bench_core.py", sys.argv[1:] if argv is None else argv, write=not args.no_write)


if __name__ == "__main__":
    os.environ.setdefault("LOSSNET_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    main()
