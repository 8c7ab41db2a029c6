"""Occlusion sensitivity (Zeiler & Fergus 2013, https://arxiv.org/abs/1311.2901): slide a grey square over
the image and record how much the target's score drops. `occlusion(model, x, target, patch, stride, fill)`
returns (N, H, W): each pixel's mean drop over the windows that cover it (captum's Occlusion, averaged per
pixel); for a class, the score is its probability, so the map reads "how much less sure without this part".
"""
from __future__ import annotations

import torch

from ..errors import LossnetError
from ..progress import progress
from .common import Neuron, Target, class_indices, scores


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Window offsets along one side; the last window touches the edge so every pixel is covered."""
    if patch > length:
        raise LossnetError(f"occlusion patch {patch} is larger than the image side {length}: use --patch <= {length}")
    if patch < 1 or stride < 1:
        raise LossnetError(f"occlusion patch and stride must be >= 1, got {patch} and {stride}")
    starts = list(range(0, length - patch + 1, stride))
    return starts + [length - patch] if starts[-1] != length - patch else starts


@torch.no_grad()
def occlusion(model, x: torch.Tensor, target: Target = None, patch: int = 16, stride: int = 8,
              fill: float = 0.5, batch: int = 4, progress_bar: bool = True) -> torch.Tensor:
    """(N, H, W) mean drop in the target's score when a patch x patch square of `fill` covers each pixel.

    Small batches: on a CPU, EfficientNet at 224 runs ~45 ms per image in batches of 1-4 and ~125 ms in
    batches of 32 (its wide activations overflow the caches).
    """
    n, _, h, w = x.shape
    windows = [(top, left) for top in window_starts(h, patch, stride) for left in window_starts(w, patch, stride)]
    softmax = not isinstance(target, Neuron)
    if softmax:  # fix the class once, so occluding the top class does not switch to another
        target = class_indices(model, target, model(x))
    drop, count = torch.zeros(n, h, w), torch.zeros(h, w)
    for top, left in windows:
        count[top:top + patch, left:left + patch] += 1
    base = scores(model, x, target, softmax)
    bar = progress(n * len(windows), "occlusion", progress_bar, faster="a larger --stride")  # ~45 ms a window: minutes for a fine stride
    for i in range(n):
        t = target[i:i + 1] if softmax else target
        for start in range(0, len(windows), batch):
            chunk = windows[start:start + batch]
            covered = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
            for j, (top, left) in enumerate(chunk):
                covered[j, :, top:top + patch, left:left + patch] = fill
            values = scores(model, covered, t.expand(len(chunk)) if softmax else t, softmax)
            for (top, left), value in zip(chunk, values):
                drop[i, top:top + patch, left:left + patch] += base[i] - value
            bar.update(len(chunk))
    bar.close()
    return drop / count
