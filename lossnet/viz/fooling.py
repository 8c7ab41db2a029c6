"""Fooling images (Szegedy et al. 2013, https://arxiv.org/abs/1312.6199): the smallest-looking change
that makes the classifier see a chosen class. Targeted projected gradient descent on the pixel loop: a
margin objective (the best other logit minus the target's, until the target leads by `margin`), Adam
steps, and a projection back into the L-inf ball of radius `eps` around the original after every step.
The loop stops as soon as every image of the batch is fooled.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..classifier import LOGITS
from ..objectives import Objective
from ..optimize import LoopConfig, optimize_pixels
from .common import class_indices


@dataclass
class Fooled:
    images: torch.Tensor  # (N, 3, H, W) perturbed
    targets: torch.Tensor  # (N,) wanted classes
    predicted: torch.Tensor  # (N,) what the model now says
    linf: torch.Tensor  # (N,) max |change| in [0, 1] pixel units
    l2: torch.Tensor  # (N,) L2 norm of the change, same units
    steps: int

    @property
    def success(self) -> torch.Tensor:
        return self.predicted == self.targets


def margin_objective(targets: torch.Tensor, margin: float) -> Objective:
    """Mean over images of relu(best other logit - target logit + margin): zero once every image is fooled."""
    def term(feats, image):
        logits = feats[LOGITS]
        wanted = logits.gather(1, targets[:, None])[:, 0]
        others = logits.scatter(1, targets[:, None], float("-inf")).amax(1)
        return (others - wanted + margin).clamp(min=0).mean()
    return Objective([(1.0, "fool", term)], (LOGITS,))


def fooling(model, x: torch.Tensor, target, eps: float = 8 / 255, iters: int = 100, lr: float | None = None,
            margin: float = 1.0, progress: bool = False) -> Fooled:
    """Perturb each image of x (by at most eps per pixel) until the model classifies it as its target."""
    with torch.no_grad():
        targets = class_indices(model, target, model(x)).to(x.device)
    original = x.detach()

    def project(pixels: torch.Tensor, it: int) -> None:  # back into the eps-ball (the loop clamps to [0, 1])
        pixels.copy_(torch.maximum(torch.minimum(pixels, original + eps), original - eps))

    loop = LoopConfig(iters=iters, optimizer="adam", lr=lr or eps / 8, project=project, progress=progress,
                      stop=lambda row: row["fool"] == 0, desc="fooling")
    objective = margin_objective(targets, margin)
    images, history = optimize_pixels(objective, model, original, loop)
    change = (images - original).flatten(1)
    with torch.no_grad():
        predicted = model(images).argmax(1)
    return Fooled(images, targets, predicted, change.abs().amax(1), change.norm(dim=1), len(history))
