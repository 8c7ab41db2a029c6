"""What every visualisation shares: targets (a class or an intermediate neuron), scores, folders of images.

A target is what captum's `target` is, plus names and neurons:
  * an int or a class name: the same class for every image in the batch;
  * a list / 1-D tensor: one class per image;
  * None: each image's top-scoring class;
  * `Neuron("blocks.8", channel=5)`: one unit of an intermediate layer (its strongest position, or (y, x)).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import torch

from ..errors import LossnetError
from ..io import list_images, load_image


@dataclass(frozen=True)
class Neuron:
    layer: str
    channel: int
    y: int | None = None  # None: the channel's maximum over positions
    x: int | None = None


Target = Union[int, str, Sequence[Union[int, str]], torch.Tensor, Neuron, None]


def class_indices(model, target, logits: torch.Tensor) -> torch.Tensor:
    """(N,) class indices for a class target, checked against the model's classes."""
    n, count = logits.shape
    if target is None:
        return logits.argmax(1)
    if isinstance(target, torch.Tensor):
        target = target.tolist()
    items = list(target) if isinstance(target, (list, tuple)) else [target] * n
    if len(items) != n:
        raise LossnetError(f"{len(items)} targets for a batch of {n} images")
    if hasattr(model, "class_index"):
        return torch.tensor([model.class_index(t) for t in items])
    for t in items:
        if not isinstance(t, int) or not 0 <= t < count:
            raise LossnetError(f"class {t!r} is out of range: the model has classes 0-{count - 1}")
    return torch.tensor(items)


def neuron_scores(model, x: torch.Tensor, neuron: Neuron) -> torch.Tensor:
    """(N,) values of one unit of an intermediate layer."""
    act = model.taps(x, [neuron.layer])[neuron.layer]
    if not 0 <= neuron.channel < act.shape[1]:
        raise LossnetError(f"channel {neuron.channel} is out of range: {neuron.layer} has channels 0-{act.shape[1] - 1}")
    act = act[:, neuron.channel]
    if neuron.y is None or act.dim() == 1:
        return act.flatten(1).amax(1) if act.dim() > 1 else act
    if not (0 <= neuron.y < act.shape[1] and 0 <= neuron.x < act.shape[2]):
        raise LossnetError(f"position ({neuron.y}, {neuron.x}) is outside {neuron.layer}'s {act.shape[1]}x{act.shape[2]} map")
    return act[:, neuron.y, neuron.x]


def scores(model, x: torch.Tensor, target: Target = None, softmax: bool = False) -> torch.Tensor:
    """(N,) differentiable score of the target for each image: a logit (or probability), or a neuron's value."""
    if isinstance(target, Neuron):
        return neuron_scores(model, x, target)
    logits = model(x)
    values = logits.softmax(1) if softmax else logits
    return values.gather(1, class_indices(model, target, logits.detach())[:, None].to(x.device))[:, 0]


def input_gradient(model, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """d score / d x for each image of the batch (images are independent: the model is in eval mode)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(scores(model, x, target).sum(), x)
    return grad


def load_folder(folder, model, size: int | None = None) -> tuple[list[Path], torch.Tensor]:
    """Every image of a folder as the model sees it: (paths, (N, 3, S, S) central crops)."""
    paths = list_images(folder)
    return paths, torch.cat([model.prepare(load_image(p), size) for p in paths])


@torch.no_grad()
def penultimate_features(model, images: torch.Tensor, batch: int = 4) -> torch.Tensor:
    """(N, D) features of the model's penultimate layer (what its last linear layer classifies)."""
    name = model.penultimate
    return torch.cat([model.taps(images[i:i + batch], [name])[name].flatten(1) for i in range(0, len(images), batch)])
