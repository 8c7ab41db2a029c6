"""What a layer holds: the first layer's filters as pictures, and a layer's activation maps for an image."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LossnetError
from .figures import colorize, grid, normalize


def first_conv(model) -> nn.Conv2d:
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return module
    raise LossnetError("the model has no convolution on RGB input to show")


def filters(model, scale: int = 16) -> torch.Tensor:
    """(1, 3, H, W) grid of the first convolution's kernels as colour patches, each scaled to [0, 1].

    Kernels act on the preprocessed input; those of a BGR network are flipped back to RGB to be seen.
    """
    weight = first_conv(model).weight.detach().float()
    if getattr(getattr(model, "preprocess", None), "bgr", False):
        weight = weight.flip(1)
    patches = F.interpolate(normalize(weight, "each"), scale_factor=scale, mode="nearest")
    return grid(patches, columns=min(8, len(patches)), pad=scale // 2)


@torch.no_grad()
def activations(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """(C, h, w) activation maps of `layer` for the first image of x."""
    act = model.taps(x[:1], [layer])[layer][0]
    if act.dim() != 3:
        raise LossnetError(f"layer {layer} has no spatial maps (its output is {tuple(act.shape)}): pick a convolutional layer")
    return act


def activation_grid(maps: torch.Tensor, count: int = 32, tile: int = 64, cmap: str = "viridis") -> torch.Tensor:
    """The `count` most active channels (by mean), each coloured on its own scale, as one grid image;
    small maps are enlarged (nearest, so each unit stays a visible square) to about `tile` pixels."""
    chosen = maps[maps.mean((1, 2)).argsort(descending=True)[:count]]
    factor = max(1, tile // max(chosen.shape[-2:]))
    return grid(F.interpolate(colorize(chosen, cmap), scale_factor=factor, mode="nearest"), columns=8)
