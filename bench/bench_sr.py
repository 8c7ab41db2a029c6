"""Super-resolution speed: ms per 512x512 output (x4 from 128x128, x8 from 64x64) on 2 CPU threads,
eager PyTorch and ONNX Runtime. `main()` prints a markdown table (bench/run.py calls it by module name)."""
from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from lossnet.nets.srnet import SRNet
from lossnet.superres import bundled_models, load_srnet

THREADS = 2
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


def main(argv=None) -> None:
    torch.set_num_threads(THREADS)
    models = bundled_models()
    rows = []
    for scale in (4, 8):
        name = f"x{scale}-feature"
        net = load_srnet(name) if name in models else SRNet(scale).eval()  # speed does not depend on the weights
        x = torch.rand(1, 3, OUT // scale, OUT // scale)
        with torch.no_grad():
            eager = _time(lambda: net(x))
            want = net(x).numpy()
        try:
            run = _onnx(net, x)
            err = float(abs(run() - want).max())
            ort_ms, note = _time(run), f"max diff vs torch {err:.1e}"
        except Exception as e:  # onnxruntime missing, or an export problem: report, do not fail the bench
            ort_ms, note = float("nan"), f"ONNX Runtime: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        with torch.no_grad():
            bic = _time(lambda: torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic"))
        rows.append(f"| SRNet x{scale} ({OUT // scale}² -> {OUT}²) | {eager:.0f} | {ort_ms:.0f} | {bic:.1f} | {note} |")
    print(f"### Super-resolution, ms per {OUT}x{OUT} output ({THREADS} threads, median of 5)\n")
    print("| network | eager PyTorch | ONNX Runtime | bicubic (torch) | note |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
