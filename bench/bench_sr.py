"""Super-resolution and pix2pix speed: ms per 512x512 output (x4 from 128x128, x8 from 64x64; pix2pix 256x256
for unet_256-sized inputs) on BENCH_THREADS CPU threads (default 2), eager PyTorch in fp32 and bf16 (the library's
own `upscale` / `apply` with `precision=`) and ONNX Runtime. `main()` writes the section of BENCHMARKS.md
(bench/run.py calls it by module name; `--no-write` prints only)."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from lossnet import pix2pix, precision, registry
from lossnet.nets.srnet import SRNet
from lossnet.superres import bundled_models, load_srnet, upscale

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
OUT = 512


def _time(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _onnx(net: SRNet, x: torch.Tensor):
    import onnxruntime as ort

    path = Path(tempfile.mkdtemp()) / "sr.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), input_names=["lr"], output_names=["sr"],
                          dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"lr": x.numpy()})[0]


def _bf16_ms(fn) -> str:
    """ms of `fn(precision)` in bf16, or why not (a CPU without bf16 support)."""
    try:
        fmt = precision.resolve("bf16", "cpu")
    except Exception as e:  # noqa: BLE001 - the CPU lacks bf16: say so in the cell
        return f"n/a ({str(e).splitlines()[0][:40]})"
    return f"{_time(lambda: fn(fmt)):.0f}"


def main(argv=None) -> None:
    from run import record

    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(THREADS)
    models = bundled_models()
    rows = []
    for name in [n for n in models if n.startswith(("x4", "x8"))] or ["x4", "x8"]:
        net = load_srnet(name) if name in models else SRNet(int(name[1])).eval()  # speed does not depend on weights
        scale = net.upscale
        x = torch.rand(1, 3, OUT // scale, OUT // scale)
        with torch.no_grad():
            eager = _time(lambda: upscale(net, x, precision="fp32"))
            want = net(x).numpy()
        bf16 = _bf16_ms(lambda fmt: upscale(net, x, precision=fmt))
        try:
            run = _onnx(net, x)
            err = float(abs(run() - want).max())
            ort_ms, note = _time(run), f"max diff vs torch {err:.1e}"
        except Exception as e:  # onnxruntime missing, or an export problem: report, do not fail the bench
            ort_ms, note = float("nan"), f"ONNX Runtime: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        with torch.no_grad():
            bic = _time(lambda: torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic"))
        rows.append(f"| `{name}` ({OUT // scale}² -> {OUT}²) | {eager:.0f} | {bf16} | {ort_ms:.0f} | {bic:.1f} | {note} |")
    # the bundled pix2pix models, and the reference's unet_256 / ngf 64 (too large to bundle; its speed does not
    # depend on its weights)
    reference = {"netG": "unet_256", "ngf": 64, "norm": "batch", "dropout": True}
    nets = {f"`{name}`": pix2pix.load_generator(name) for name in registry.bundled(pix2pix.KIND)}
    nets["at the reference's size, not bundled"] = pix2pix.build_generator(reference).train()
    nets["at the reference's size, not bundled"].config = reference
    for name, net in nets.items():
        x = torch.rand(1, 3, 256, 256)
        eager = _time(lambda: pix2pix.apply(net, x, precision="fp32"))
        bf16 = _bf16_ms(lambda fmt: pix2pix.apply(net, x, precision=fmt))
        rows.append(f"| pix2pix {name} ({net.config.get('netG')}, ngf {net.config.get('ngf')}; 256² -> 256²) | "
                    f"{eager:.0f} | {bf16} | | | |")
    text = "\n".join([
        "| network | eager fp32 ms | eager bf16 ms | ONNX Runtime fp32 ms | bicubic (torch) ms | note |",
        "|---|---|---|---|---|---|", *rows, "",
        f"Milliseconds per output, the median of 5 on {THREADS} thread{'s' * (THREADS != 1)}: the library's own `superres.upscale` / "
        "`pix2pix.apply` with `precision=`, ONNX Runtime on the exported graph, and torch's bicubic as the floor. "
        "A network's speed does not depend on its weights; the reference-size pix2pix generator (unet_256, ngf 64) "
        "is too large to bundle and is timed as built."])
    record("Super-resolution (lossnet.superres)", text, "bench_sr.py", argv, write="--no-write" not in argv)


if __name__ == "__main__":
    main()
