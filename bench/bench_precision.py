"""fp32 against bf16, side by side in one run: conv throughput, a style-training step, feed-forward inference.

    python bench/bench_precision.py             # prints the section and writes it into BENCHMARKS.md
    python bench/bench_precision.py --no-write  # prints only
    python bench/bench_precision.py psnr starry paintings8   # rows of bf16 against fp32 output, every style

The bf16 numbers are what `--precision bf16` (and `auto` on a CPU with AMX or AVX512-BF16) runs: autocast
around the networks, Gram matrices, losses and norm statistics in fp32. FLOP bounds are the architecture's
conv FLOPs over the conv throughput measured in the same run, in the same format. On a CPU without bf16
support the bf16 columns still run (slowly, emulated), and the section says that the CPU has none.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lossnet import fast, precision  # noqa: E402
from lossnet.train import _step  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
DATA = Path(os.environ.get("LOSSNET_DATA", ROOT.parent / "shared" / "data"))
FORMATS = {"fp32": precision.Precision("fp32", "cpu"), "bf16": precision.Precision("bf16", "cpu")}


def best_s(fn, repeats: int, warmup: int = 1) -> float:
    """bench_fast.best_ms in seconds: the fastest of `repeats` runs after `warmup`."""
    from bench_fast import best_ms
    return best_ms(fn, repeats, warmup) / 1000


def conv_throughput(fmt: precision.Precision, backward: bool = False) -> float:
    """GFLOP/s of a 3x3 conv, 128 -> 128 channels at 64x64, batch 4, channels-last, under `fmt`'s autocast;
    with `backward` the forward plus both gradients (3x the forward FLOPs)."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.rand(4, 128, 64, 64).contiguous(memory_format=torch.channels_last).requires_grad_(backward)
    flops = 2 * 128 * 128 * 9 * 64 * 64 * 4 * (3 if backward else 1)

    def run():
        with fmt.autocast():
            y = conv(x)
        if backward:
            y.backward(torch.ones_like(y))
    if backward:
        seconds = best_s(run, 10, 2)
    else:
        with torch.inference_mode():
            seconds = best_s(run, 20, 3)
    return flops / seconds / 1e9


def conv_flops_of(modules, run) -> float:
    """FLOPs (2 x multiply-adds) of every nn.Conv2d / lossnet ConvLayer among `modules` during `run()`."""
    total = 0.0

    def hook(layer, inp, out):
        nonlocal total
        m = layer.conv if hasattr(layer, "conv") else layer
        total += 2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] / m.groups
    handles = [m.register_forward_hook(hook) for m in modules
               if isinstance(m, torch.nn.Conv2d) or isinstance(getattr(m, "conv", None), torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def training_task():
    """The paper's setting: default TransformerNet, VGG16 loss to relu4_3, batch 4 of 256x256 crops."""
    from lossnet.procedural import make_style
    from lossnet.io import save_image
    import tempfile

    photos = DATA / "photos" / "BSDS500" / "val"
    folder = Path(tempfile.mkdtemp())
    style = folder / "style.png"
    save_image(make_style("swirls", 256), style)
    if not photos.is_dir():  # without ../shared: a few of scikit-image's photos
        from lossnet.io import bundled_photo
        photos = folder / "photos"
        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            save_image(bundled_photo(name), photos / f"{name}.png")
    cfg = fast.FastStyleConfig(styles=[str(style)], data=[str(photos)], crop=256, batch_size=4)
    return fast.FastStyleTask(cfg, quiet=True)


def training_step_flops(task, batch) -> float:
    """Conv FLOPs of one step: generator forward + its two gradients (3x), the loss network on the output to its
    deepest tap, forward and input gradient (2x; its weights get no gradient), and the content target's pass
    cut at relu2_2 (1x)."""
    gen = conv_flops_of(task.generator.modules(), lambda: task.forward(batch))
    out = batch["input"]
    full = conv_flops_of(task.net.modules(), lambda: task.net(out))
    content = conv_flops_of(task.net.modules(), lambda: task.net(out, task.cfg.content_layers))
    return 3 * gen + 2 * full + content


def training_step_seconds(task, batch, fmt, steps: int = 3) -> float:
    gen = task.generator.train()
    opt = torch.optim.Adam(gen.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def step():
        with fmt.autocast():
            losses = task.generator_loss(batch, task.forward(batch))
        _step(opt, scaler, losses)
    return best_s(step, steps, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a - b).pow(2).mean())
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


def inference_rows(throughput: dict) -> list[str]:
    rows = []
    names = {"full": "starry", "lite": "starry-lite"}
    nets = {arch: fast.load_transformer(name) for arch, name in names.items()}
    for arch, size, batch in (("full", 256, 1), ("full", 1024, 1), ("lite", 256, 1), ("lite", 256, 8)):
        net = nets[arch]
        x = torch.rand(batch, 3, size, size)
        gflop = conv_flops_of(net.modules(), lambda: net(x[:1])) / 1e9 * batch
        cells = []
        for name, fmt in FORMATS.items():
            repeats = 7 if size <= 256 else 3
            with torch.inference_mode():
                s = best_s(lambda: fast.apply(net, x, tile=0, precision=fmt), repeats)
            bound = gflop / throughput[name]
            cells += [f"{s * 1000:.0f}", f"{s / bound:.2f}x", f"{batch / s:.1f}"]
        rows.append(f"| {arch} | {size}x{size} | {batch} | {gflop:.1f} | " + " | ".join(cells) + " |")
    rows += ["", *psnr_rows({names[arch]: net for arch, net in nets.items()})]
    return rows


def psnr_rows(models: dict) -> list[str]:
    """A table of bf16 against fp32 output per model ({name: a bundled name, a file or a network}), its range
    over the styles of a multi-style one."""
    rows = ["| model | bf16 against fp32 output, PSNR | goal |", "|---|---|---|"]
    for name, model in models.items():
        values = model_psnr(model)
        cell = f"{values[0]:.1f} dB" if len(values) == 1 else \
            f"{min(values):.1f}-{max(values):.1f} dB over {len(values)} styles"
        rows.append(f"| `{name}` | **{cell}** | >= 40 dB |")
    return rows


def section() -> str:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    support = precision.bf16_support("cpu")
    thr = {n: conv_throughput(f) for n, f in FORMATS.items()}
    thr_bwd = {n: conv_throughput(f, backward=True) for n, f in FORMATS.items()}
    lines = ["| conv 3x3 128->128, 64x64, batch 4, channels-last | fp32 GFLOP/s | bf16 GFLOP/s | bf16 / fp32 |",
             "|---|---|---|---|",
             f"| forward | {thr['fp32']:.0f} | {thr['bf16']:.0f} | {thr['bf16'] / thr['fp32']:.2f}x |",
             f"| forward + both gradients | {thr_bwd['fp32']:.0f} | {thr_bwd['bf16']:.0f} | "
             f"{thr_bwd['bf16'] / thr_bwd['fp32']:.2f}x |", ""]
    task = training_task()
    batch = task.batch(0)
    flops = training_step_flops(task, batch)
    seconds = {n: training_step_seconds(task, batch, f) for n, f in FORMATS.items()}
    lines += [f"| style-training step ({flops / 1e9:.0f} GFLOP of convs) | fp32 | bf16 | fp32 / bf16 |",
              "|---|---|---|---|",
              f"| seconds per step | {seconds['fp32']:.2f} | {seconds['bf16']:.2f} | **{seconds['fp32'] / seconds['bf16']:.2f}x** |",
              f"| FLOP bound (forward+backward conv throughput) | {flops / 1e9 / thr_bwd['fp32']:.2f} s | "
              f"{flops / 1e9 / thr_bwd['bf16']:.2f} s | |",
              f"| step / bound | {seconds['fp32'] / (flops / 1e9 / thr_bwd['fp32']):.2f}x | "
              f"{seconds['bf16'] / (flops / 1e9 / thr_bwd['bf16']):.2f}x | |", "",
              "| net | size | batch | GFLOPs | fp32 ms | fp32 / bound | fp32 images/s | bf16 ms | bf16 / bound | bf16 images/s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += inference_rows(thr)
    lines += ["", f"{THREADS} thread{'s' * (THREADS != 1)}. The training step is the default TransformerNet with the VGG16 loss to relu4_3, "
              "a batch of 4 at 256x256 and Adam, best of 3; inference is `fast.apply` on the bundled `starry` / "
              "`starry-lite` without tiles, best of 3-7; each bound is the conv FLOPs over the conv throughput "
              "measured above in the same format. PSNR: bf16 against fp32 output on scikit-image's astronaut at 512 "
              "px; " + (f"bf16 is fast on this CPU ({support})." if support else
                        "**this CPU has no AMX or AVX512-BF16: bf16 is emulated and slower, and `auto` picks fp32.**")]
    return "\n".join(lines)


def model_psnr(name: str | fast.TransformerNet, size: int = 512) -> list[float]:
    """PSNR of a model's bf16 output against its fp32 output on the astronaut at `size` px, one per style (`name`: a
    bundled name, a file, or a loaded network)."""
    from lossnet.io import bundled_photo
    net, photo = fast.load_transformer(name), bundled_photo("astronaut", size)
    with torch.inference_mode():
        return [psnr(*(fast.apply(net, photo, fast.style_weights(net, s), precision=FORMATS[f]) for f in ("fp32", "bf16")))
                for s in range(net.n_styles)]


def main(argv=None) -> None:
    from run import command, record, stamp

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["psnr"]:  # rows for the section's PSNR table, one model at a time
        torch.set_num_threads(THREADS)
        print(stamp("\n".join(psnr_rows({name: name for name in argv[1:]})), command("bench_precision.py", argv)))
        return
    record("fp32 and bf16", section(), "bench_precision.py", argv, write="--no-write" not in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
