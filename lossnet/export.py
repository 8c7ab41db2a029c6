"""ONNX export of every trained model kind (style, super-resolution, pix2pix), checked before it is kept.

    export_onnx(registry.graph_of(net), "model.onnx")   # the kind's `graph` says what is traced and how

Each graph takes `image` (N, 3, H, W) RGB in [0, 1] with H and W multiples of the network's `multiple`
(`run_onnx` pads and crops, like the torch paths), plus `style` (N, n_styles) for a multi-style network, and
gives `output` in [0, 1]-ish RGB (super-resolution: `scale` times larger). `export_onnx` compares
onnxruntime with torch on an odd-sized image and deletes the file when they differ, so a caller of the
library never gets an unchecked file.

pix2pix graphs are the generator as `pix2pix test` runs it, without its dropout noise: batch norm with each
image's own statistics (the reference's batch-1 test mode) becomes instance norm with the same affine, which
is what it computes, and dropout is off, so the graph is deterministic.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import LossnetError
from .tiling import pad_to_multiple

TOLERANCE = 1e-3  # largest |onnxruntime - torch| accepted, in [0, 1] pixel units


@dataclass
class Graph:
    """What gets traced, and how to feed it: each model kind's `graph(net)` says (`lossnet.registry.Kind`)."""
    module: torch.nn.Module  # forward(image[, style]) on multiples of `multiple`
    multiple: int = 1
    scale: int = 1
    n_styles: int = 1
    centered: bool = False  # padded on both sides (pix2pix.apply) rather than at the end (style)


class StyleBody(torch.nn.Module):
    """A style network without its input checks and padding (which `run_onnx` does), style blend as an input."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image, style=None):
        return self.net.body(image, style)


class UnitRange(torch.nn.Module):
    """[0, 1] in and out around a generator of [-1, 1] images (pix2pix)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return (self.net(image * 2 - 1) + 1) / 2


def per_image_norms(net: torch.nn.Module) -> torch.nn.Module:
    """A copy whose BatchNorm2d layers normalise each image by its own statistics (= instance norm + affine)
    and whose dropout is off."""
    net = copy.deepcopy(net).eval()
    for name, child in list(net.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, torch.nn.BatchNorm2d):
                norm = torch.nn.InstanceNorm2d(sub.num_features, eps=sub.eps, affine=sub.affine)
                if sub.affine:
                    norm.weight, norm.bias = sub.weight, sub.bias
                setattr(child, attr, norm)
            elif isinstance(sub, torch.nn.Dropout):
                setattr(child, attr, torch.nn.Identity())
    return net


def _torch_output(g: Graph, image: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
    x, crop = pad_to_multiple(image, g.multiple, g.centered)
    with torch.no_grad():
        y = g.module(x, style) if g.n_styles > 1 else g.module(x)
    return crop(y, g.scale)


def export_onnx(g: Graph, path: str | os.PathLike, opset: int = 17) -> tuple[Path, float]:
    """Write the graph `g` (a trained network's: `lossnet.registry.graph_of(net)`) as ONNX to `path`
    (atomically) after checking it against torch; (path, max difference)."""
    import warnings

    from .io import atomic_write

    path = Path(path)
    if path.suffix != ".onnx":
        raise LossnetError(f"{path}: the ONNX file needs the .onnx suffix")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise LossnetError(f"output folder does not exist: {path.parent}")
    side = max(g.multiple, 64)
    x = torch.rand(1, 3, side, side)
    names, axes = ["image"], {"image": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}}
    args = (x,)
    style = None
    if g.n_styles > 1:
        style = torch.full((1, g.n_styles), 1.0 / g.n_styles)
        args = (x, style)
        names.append("style")
        axes["style"] = {0: "n"}
    # The check image: odd sides, so padding and cropping are part of what is compared.
    probe = torch.rand(1, 3, g.multiple * 2 + 3 if g.multiple > 4 else 67, 93,
                       generator=torch.Generator().manual_seed(0))
    difference = [float("nan")]

    def write(tmp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(g.module, args, str(tmp), input_names=names, output_names=["output"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False,
                              do_constant_folding=False)  # folding breaks the graph of a fresh (ones/zeros) norm
        got = run_onnx(onnx_session(tmp), probe, style, g.multiple, g.scale, g.centered)
        difference[0] = float((got - _torch_output(g, probe, style)).abs().max())
        if not difference[0] <= TOLERANCE:
            raise LossnetError(f"the ONNX graph does not match torch (max difference {difference[0]:.2g}); nothing written")
    return atomic_write(path, write), difference[0]


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, image: torch.Tensor, style: torch.Tensor | None = None, multiple: int = 4,
             scale: int = 1, centered: bool = False) -> torch.Tensor:
    """Run an exported graph like the torch paths: pad to `multiple` (at the end, or on both sides when
    `centered`), run, crop back (times `scale`). Style: multiple 4; SR: 1 and its scale; pix2pix: the U-Net's
    multiple (2 ** downsamplings), centered."""
    x, crop = pad_to_multiple(image, multiple, centered)
    feed = {"image": x.numpy().astype("float32")}
    inputs = session.get_inputs()
    if any(i.name == "style" for i in inputs):
        n = int(next(i for i in inputs if i.name == "style").shape[1])
        s = style if style is not None else F.one_hot(torch.tensor(0), n).float()
        feed["style"] = s.expand(x.shape[0], -1).numpy().astype("float32")
    return crop(torch.from_numpy(session.run(None, feed)[0]), scale)
