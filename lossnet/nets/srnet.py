"""Johnson et al.'s super-resolution network (https://arxiv.org/abs/1603.08155, supplementary material).

    9x9 conv 64 -> 4 x SRResidualBlock(64) -> log2(scale) x SRUpsampleConv(x2) -> 9x9 conv 3

Fully convolutional: an H x W input gives exactly (scale*H) x (scale*W), for any size of at least 5 pixels.
Two choices differ from the paper, both arguments:

* `residual=True` (default): the network predicts a correction added to the bicubic upsampling of its input,
  instead of the whole image through a scaled tanh. The bicubic image already carries the colours and the
  low frequencies, so the network only learns detail and trains in far fewer steps (what a CPU budget
  allows). The last conv starts at zero, so an untrained network outputs exactly bicubic. The output is not
  clamped (clamping kills gradients); it is [0, 1] up to small overshoots, and `save_image` clamps.
* `norm="instance"` (default; the paper has "batch", "none" is EDSR's choice): instance norm computes the
  same thing in training and at test time, whatever the batch size, whereas batch norm's running statistics
  from CPU-sized batches of 1-4 crops are noisy and shift colours on images unlike the training crops.
  Colour comes through the bicubic path, so normalising the detail branch costs none.

The scale is a buffer (`scale_factor`) in the state dict and in `config()`, so a checkpoint trained for
another scale is refused with a message that says so, not loaded into the wrong number of upsampling stages.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LossnetError
from .reflectconv import ReflectionPad2d, upsample_conv3x3

NORMS = ("instance", "batch", "none")
SCALES = (2, 4, 8, 16)


def johnson_norm(kind: str, channels: int) -> nn.Module:
    """Johnson's instance norm is affine (fast_neural_style does the same); batch norm as in the paper."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise LossnetError(f"unknown norm {kind!r}: choose one of {', '.join(NORMS)}")


class SRConv(nn.Sequential):
    """Reflection padding, then a stride-1 convolution: no zero border for the network to learn around."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size))


class SRResidualBlock(nn.Module):
    """x + (conv-norm-relu-conv-norm)(x), Johnson's residual block (He et al. 2016, no ReLU after the sum)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.block = nn.Sequential(
            SRConv(channels, channels, 3), johnson_norm(norm, channels), nn.ReLU(inplace=True),
            SRConv(channels, channels, 3), johnson_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class SRUpsampleConv(nn.Sequential):
    """Nearest-neighbour x2 upsampling, then a 3x3 conv: the paper's stride-1/2 conv without its artefacts.

    A transposed conv with kernel 3 and stride 2 makes its kernels overlap unevenly, so some output pixels
    get more contributions than their neighbours: a checkerboard that training has to fight (Odena et al.
    2016, https://distill.pub/2016/deconv-checkerboard/). Resize-then-convolve weights every pixel alike.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, factor: int = 2):
        super().__init__(nn.Upsample(scale_factor=factor, mode="nearest"),
                         SRConv(in_channels, out_channels, kernel_size))
        self.collapsed = kernel_size == 3 and factor == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.collapsed:  # the same result without the upsampled copy, at 4/9 of the multiply-adds
            conv = self[1][1]
            return upsample_conv3x3(x, conv.weight, conv.bias)
        return super().forward(x)


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or int(scale) != scale or int(scale) not in SCALES:
        raise LossnetError(f"super-resolution scale must be one of {', '.join(map(str, SCALES))} (x2 steps), got {scale}")
    return int(scale)


def _as_bool(value) -> bool:
    """Config values may come back from safetensors metadata as strings."""
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise LossnetError(f"expected true or false in an SRNet config, got {value!r}")
        return value.lower() in ("true", "1")
    return bool(value)


class SRNet(nn.Module):
    """x`scale` super-resolution, RGB [0, 1] in, RGB [0, 1]-ish out (see the module docstring)."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 4, norm: str = "instance",
                 residual: bool = True):
        super().__init__()
        self.upscale = _check_scale(scale)
        self.channels, self.blocks, self.norm, self.residual = channels, blocks, norm, residual
        self.register_buffer("scale_factor", torch.tensor(self.upscale))
        self.head = nn.Sequential(SRConv(3, channels, 9), johnson_norm(norm, channels), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[SRResidualBlock(channels, norm) for _ in range(blocks)])
        stages = self.upscale.bit_length() - 1  # log2(scale)
        self.upsample = nn.Sequential(*[
            nn.Sequential(SRUpsampleConv(channels, channels), johnson_norm(norm, channels), nn.ReLU(inplace=True))
            for _ in range(stages)])
        self.tail = SRConv(channels, 3, 9)
        if residual:  # start as plain bicubic: the correction grows from zero
            nn.init.zeros_(self.tail[1].weight)
            nn.init.zeros_(self.tail[1].bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        if min(h, w) < 5:  # the 9x9 reflection padding needs 5 pixels
            raise LossnetError(f"SRNet input is {w}x{h}: it needs at least 5 pixels per side")
        y = self.tail(self.upsample(self.body(self.head(lr))))
        if not self.residual:
            return (torch.tanh(y) + 1) / 2
        size = (h * self.upscale, w * self.upscale)
        return F.interpolate(lr, size=size, mode="bicubic", align_corners=False) + y

    def config(self) -> dict:
        """Everything needed to rebuild this network; store it next to the weights."""
        return {"arch": "srnet", "scale": self.upscale, "channels": self.channels, "blocks": self.blocks,
                "norm": self.norm, "residual": self.residual}

    @classmethod
    def from_config(cls, config: dict) -> "SRNet":
        """Inverse of `config()`; values may be strings (safetensors metadata is str -> str)."""
        config = dict(config)
        arch = config.pop("arch", "srnet")
        if arch != "srnet":
            raise LossnetError(f"this checkpoint is a {arch!r} network, not an SR network (srnet)")
        casts = {"scale": int, "channels": int, "blocks": int, "norm": str, "residual": _as_bool}
        unknown = set(config) - set(casts)
        if unknown:
            raise LossnetError(f"unknown SRNet config keys: {', '.join(sorted(unknown))}")
        try:
            kwargs = {key: casts[key](value) for key, value in config.items()}
        except ValueError as e:
            raise LossnetError(f"bad SRNet config {config}: {e}") from None
        return cls(**kwargs)

    def check_state_dict(self, state_dict: dict) -> None:
        """Refuse a checkpoint of another scale before any shape error can hide why."""
        found = state_dict.get("scale_factor")
        if found is not None and int(found) != self.upscale:
            raise LossnetError(f"this checkpoint is for x{int(found)} super-resolution, not x{self.upscale}: "
                               f"use --scale {int(found)} or a x{self.upscale} checkpoint")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.check_state_dict(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
