"""pix2pix discriminators (Isola et al., https://arxiv.org/abs/1611.07004) as in junyanz/pytorch-CycleGAN-and-pix2pix.

A PatchGAN classifies every overlapping N x N patch as real or fake and outputs the map of those logits:
it only has to model local texture (the L1 term takes care of low frequencies), has fewer parameters than
a whole-image classifier and runs on any size. `basic` is the paper's 70x70 PatchGAN: on a 256x256 input it
outputs a 30x30 map and has 2,768,705 parameters (6 input channels: the conditional D sees input and output
concatenated). `pixel` is the 1x1 PatchGAN. Outputs are logits (no sigmoid): use BCEWithLogits or LSGAN.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import LossnetError, suggest
from .unet import conv_bias, init_weights, norm_layer


class PatchDiscriminator(nn.Module):
    """`n_layers` stride-2 4x4 convs (channels ndf, 2ndf, ... capped at 8ndf), one stride-1 conv, a 1-channel conv."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise LossnetError(f"a PatchGAN needs at least 1 layer, got {n_layers}")
        bias = conv_bias(norm)
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]  # no norm on the input layer
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1  # the last of these keeps the resolution
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("pixel"): judges each pixel's colour alone; the reference's layer list and keys."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def receptive_field(net: nn.Module | int) -> int:
    """Side of the input patch one output value sees, walking the convs' kernels and strides backwards.

    Takes a network whose convs run in sequence (a PatchGAN) or `n_layers` of a PatchDiscriminator:
    1, 2, 3, 4, 5 layers see 16, 34, 70, 142, 286 pixels.
    """
    if isinstance(net, int):
        net = PatchDiscriminator(n_layers=net, ndf=1, norm="none")  # kernels and strides do not depend on width
    size = 1
    for conv in reversed([m for m in net.modules() if isinstance(m, nn.Conv2d)]):
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        size = (size - 1) * conv.stride[0] + kernel
    return size


DISCRIMINATORS = ("basic", "n_layers", "pixel")


def define_discriminator(name: str = "basic", input_nc: int = 6, ndf: int = 64, n_layers: int = 3,
                         norm: str = "batch", init_type: str = "normal", init_gain: float = 0.02,
                         generator: torch.Generator | None = None) -> nn.Module:
    """A discriminator by its reference name, initialised: basic (70x70), n_layers (any depth), pixel (1x1)."""
    if name == "basic":
        net = PatchDiscriminator(input_nc, ndf, n_layers=3, norm=norm)
    elif name == "n_layers":
        net = PatchDiscriminator(input_nc, ndf, n_layers=n_layers, norm=norm)
    elif name == "pixel":
        net = PixelDiscriminator(input_nc, ndf, norm=norm)
    else:
        raise LossnetError(f"unknown discriminator {name!r}{suggest(name, DISCRIMINATORS)}: "
                           f"choose one of {', '.join(DISCRIMINATORS)}")
    return init_weights(net, init_type, init_gain, generator)
