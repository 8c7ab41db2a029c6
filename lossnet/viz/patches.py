"""Maximally activating patches: the image regions, over a set of images, that drive one channel of a
layer hardest. A unit's patch is its receptive field measured, not assumed: the box of input pixels whose
gradient reaches `threshold` of the largest, so it fits any architecture (padding, strides, depth)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import LossnetError
from .common import Neuron, input_gradient


@dataclass
class Patch:
    image: int  # index into the images
    value: float  # the unit's activation
    box: tuple[int, int, int, int]  # top, left, bottom, right (exclusive) in pixels
    pixels: torch.Tensor  # (3, h, w) crop


@torch.no_grad()
def _channel_maps(model, images: torch.Tensor, layer: str, channel: int, batch: int = 4) -> torch.Tensor:
    maps = []
    for i in range(0, len(images), batch):
        act = model.taps(images[i:i + batch], [layer])[layer]
        if act.dim() != 4:
            raise LossnetError(f"layer {layer} has no spatial maps (its output is {tuple(act.shape[1:])}): pick a convolutional layer")
        if not 0 <= channel < act.shape[1]:
            raise LossnetError(f"channel {channel} is out of range: {layer} has channels 0-{act.shape[1] - 1}")
        maps.append(act[:, channel])
    return torch.cat(maps)


def receptive_box(model, image: torch.Tensor, neuron: Neuron, threshold: float = 0.02) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels whose |gradient| on the unit is >= threshold x the largest."""
    strength = input_gradient(model, image, neuron).abs().amax(1)[0]
    ys, xs = torch.nonzero(strength >= threshold * strength.max().clamp(min=1e-12), as_tuple=True)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def max_patches(model, images: torch.Tensor, layer: str, channel: int, k: int = 8) -> list[Patch]:
    """The k strongest activations of `channel` at `layer`, one per image (so patches do not repeat)."""
    maps = _channel_maps(model, images, layer, channel)
    best = maps.flatten(1).max(1)
    patches = []
    for i in best.values.argsort(descending=True)[:k].tolist():
        y, x = divmod(int(best.indices[i]), maps.shape[-1])
        top, left, bottom, right = receptive_box(model, images[i:i + 1], Neuron(layer, channel, y, x))
        patches.append(Patch(i, float(best.values[i]), (top, left, bottom, right), images[i, :, top:bottom, left:right]))
    return patches
