"""Nearest neighbours of a query image among a set, in pixel space and in the classifier's penultimate
features: pixels find images of similar colour and layout, features find images of the same thing."""
from __future__ import annotations

import torch

from .common import penultimate_features


def _nearest(query: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    distances = torch.cdist(query[None], items)[0]
    values, indices = distances.topk(min(k, len(items)), largest=False)
    return indices, values


@torch.no_grad()
def nearest_neighbors(model, query: torch.Tensor, images: torch.Tensor, k: int = 5) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"pixels": (indices, distances), "features": (indices, distances)}: the k images (of `images`,
    (N, 3, S, S)) closest to `query` (1, 3, S, S) by L2 distance, nearest first."""
    pixels = _nearest(query.flatten(), images.flatten(1), k)
    feats = penultimate_features(model, torch.cat([query, images]))
    return {"pixels": pixels, "features": _nearest(feats[0], feats[1:], k)}
