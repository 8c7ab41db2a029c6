"""VGG16 / VGG19 (Simonyan & Zisserman, https://arxiv.org/abs/1409.1556) with torchvision's state-dict keys.

`features.N.weight` / `classifier.N.weight` match torchvision's `vgg16()` / `vgg19()`, so users' weight files
load with strict=True. Every layer of `features` has a name (`conv3_1`, `relu3_1`, `pool3`, ...) and the
stack can be cut after any of them: a loss network needs nothing past its deepest tap.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import LossnetError, suggest

# Channels per conv layer, "M" for a pooling layer (torchvision's configurations D and E).
CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def layer_names(arch: str) -> list[str]:
    """Names of `features[i]` for every i: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..."""
    if arch not in CONFIGS:
        raise LossnetError(f"unknown network {arch!r}: choose one of {', '.join(CONFIGS)}")
    names, block, conv = [], 1, 1
    for v in CONFIGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def layer_index(arch: str, name: str) -> int:
    names = layer_names(arch)
    if name not in names:
        raise LossnetError(f"unknown layer {name!r} for {arch}{suggest(name, names)}")
    return names.index(name)


def make_features(arch: str, depth: int | None = None, pooling: str = "max", ceil_mode: bool = False,
                  keep: frozenset[int] = frozenset()) -> nn.Sequential:
    """`features[0:depth]` of torchvision's VGG. Pooling 'avg' is Gatys' variant (smoother gradients).

    ReLUs run in place (halving activation memory) except right after a conv whose output index is in
    `keep`: a tap on a conv layer must not see its value overwritten by the ReLU.
    """
    if pooling not in ("max", "avg"):
        raise LossnetError(f"unknown pooling {pooling!r}: choose max or avg")
    layers: list[nn.Module] = []
    in_ch = 3
    for v in CONFIGS[arch]:
        if v == "M":
            pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
            layers.append(pool(2, 2, ceil_mode=ceil_mode))
        else:
            layers.append(nn.Conv2d(in_ch, v, 3, padding=1))
            layers.append(nn.ReLU(inplace=len(layers) - 1 not in keep))
            in_ch = v
    return nn.Sequential(*layers[:depth])


class VGG(nn.Module):
    """torchvision-compatible VGG: `features`, then (optionally) `avgpool` and the 1000-way `classifier`."""

    def __init__(self, arch: str = "vgg16", pooling: str = "max", ceil_mode: bool = False,
                 classifier: bool = True, num_classes: int = 1000):
        super().__init__()
        layer_names(arch)  # validates arch
        self.arch = arch
        self.features = make_features(arch, pooling=pooling, ceil_mode=ceil_mode)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, num_classes),
        ) if classifier else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.classifier is None:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))
