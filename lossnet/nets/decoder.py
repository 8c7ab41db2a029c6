"""The decoder of universal style transfer (Li et al. 2017, https://arxiv.org/abs/1705.08086): VGG mirrored
from one layer back to RGB, trained only to invert the encoder.

    relu4_1 (512) -> conv 256 -> up -> conv 256, 256, 128 -> up -> conv 128, 64 -> up -> conv 64, 3   (VGG16)

Each of the encoder's convs up to the level becomes a conv the other way (its output channels in, its input
channels out) and each pooling a nearest-neighbour x2 upsampling, as Li et al. mirror VGG19. Every conv pads by
reflection, and the conv right after an upsampling runs fused with it (`reflectconv.upsample_conv3x3`: 4/9 of
the multiply-adds and no upsampled copy, the same function). The last conv has no ReLU: it gives the image,
clamped to [0, 1] only when applied. `width` scales the inner channels (never the level's own, nor RGB's):
1 is Li et al.'s decoder; tests train 1/8 of it.

The level's activations are Caffe-scaled ReLU outputs (RMS 10-50 by level, all >= 0, channels of very
different sizes): a least-squares problem Adam solves slowly, the image's brightness last. So the decoder starts
from the data (`calibrate`, on the first training batch): each input channel is shifted and scaled to zero mean
and unit deviation (buffers `input_mean`, `input_scale`), and the last conv's bias is the batch's mean colour.
Against one global input scale, 200 steps on three photos reach 28 instead of 21 dB (relu1_1), 32 instead of 25
(relu2_1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LossnetError
from .reflectconv import reflect_conv2d, upsample_conv3x3
from .vgg import CONFIGS, layer_index, layer_names


def encoder_plan(level: str, arch: str = "vgg16") -> list[tuple[int, int] | str]:
    """The encoder's steps up to `level` (a ReLU layer): (in, out) channels of each conv, "pool" for each pooling."""
    if not level.startswith("relu"):
        raise LossnetError(f"a decoder starts at a ReLU layer (relu3_1, ...), not {level!r}")
    depth = layer_index(arch, level) + 1
    steps: list[tuple[int, int] | str] = []
    cin, covered = 3, 0
    for v in CONFIGS[arch]:
        if covered >= depth:
            break
        if v == "M":
            steps.append("pool")
            covered += 1
        else:
            steps.append((cin, v))
            cin, covered = v, covered + 2  # the conv and its ReLU
    return steps


def pools_before(level: str, arch: str = "vgg16") -> int:
    """How many poolings the encoder applies before `level`: its features are 2**pools times smaller."""
    return encoder_plan(level, arch).count("pool")


class Decoder(nn.Module):
    """The features of `level` -> an RGB image 2**pools times larger (Li et al.'s decoder, see the module)."""

    def __init__(self, level: str = "relu4_1", width: float = 1.0, arch: str = "vgg16"):
        super().__init__()
        if not 0 < width <= 4:
            raise LossnetError(f"decoder width must be in (0, 4], got {width}")
        layer_names(arch)  # an unknown arch is said in vgg's words
        self.level, self.width, self.arch = level, float(width), arch
        plan = list(reversed(encoder_plan(level, arch)))
        convs = [step for step in plan if step != "pool"]

        def inner(c: int) -> int:
            return max(1, round(c * width))

        self.convs = nn.ModuleList()
        self.after_upsampling: list[bool] = []
        upsample = False
        for i, step in enumerate(plan):
            if step == "pool":
                upsample = True
                continue
            encoder_in, encoder_out = step
            cin = encoder_out if not self.convs else inner(encoder_out)  # the level's own channels come in
            cout = encoder_in if len(self.convs) == len(convs) - 1 else inner(encoder_in)  # RGB goes out
            self.convs.append(nn.Conv2d(cin, cout, 3))
            self.after_upsampling.append(upsample)
            upsample = False
        self.in_channels = self.convs[0].in_channels
        self.register_buffer("input_mean", torch.zeros(self.in_channels))
        self.register_buffer("input_scale", torch.ones(self.in_channels))

    @torch.no_grad()
    def calibrate(self, features: torch.Tensor, images: torch.Tensor) -> None:
        """Start from the data: the input channels' mean and deviation, the images' mean colour (see the module)."""
        features = features.float()
        std = features.std((0, 2, 3))
        self.input_mean.copy_(features.mean((0, 2, 3)))
        self.input_scale.copy_(torch.where(std > 1e-3 * std.max(), 1 / std, torch.ones_like(std)))  # dead: any
        self.convs[-1].bias.copy_(images.float().mean((0, 2, 3)))

    @property
    def factor(self) -> int:
        """Output side / input side."""
        return 2 ** sum(self.after_upsampling)

    def config(self) -> dict:
        return {"level": self.level, "width": self.width, "arch": self.arch}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[1] != self.in_channels:
            raise LossnetError(f"the {self.level} decoder takes {self.in_channels} channels, got {features.shape[1]}")
        x, last = features, len(self.convs) - 1
        for i, (conv, upsample) in enumerate(zip(self.convs, self.after_upsampling)):
            weight, bias = conv.weight, conv.bias
            if i == 0 and torch.is_grad_enabled():  # training normalises the input: Adam's steps stay unit-sized
                x = (x - self.input_mean[:, None, None]) * self.input_scale[:, None, None]
            elif i == 0:  # inference folds the normalisation into the kernel: a pass over weights, not features
                weight = conv.weight * self.input_scale[:, None, None]
                bias = conv.bias - (weight * self.input_mean[:, None, None]).sum((1, 2, 3))
            x = (upsample_conv3x3 if upsample else reflect_conv2d)(x, weight, bias)
            if i < last:
                x = F.relu(x)
        return x
